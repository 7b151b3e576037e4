"""gRPC ⇄ domain translation for boards."""

from __future__ import annotations

import grpc

from shequtong.boards.v1 import boards_pb2, boards_pb2_grpc
from shequtong_boards.models import Board
from shequtong_boards.service import BoardsService
from shequtong_kit import auth
from shequtong_kit.proto import ts


def board_to_proto(board: Board) -> boards_pb2.Board:
    return boards_pb2.Board(
        id=board.id,
        neighbourhood_id=board.neighbourhood_id,
        kind=board.kind,
        name=board.name,
        created_at=ts(board.created_at),
    )


class BoardsServicer(boards_pb2_grpc.BoardsServiceServicer):
    def __init__(self, service: BoardsService) -> None:
        self.service = service

    async def ListBoards(
        self, request: boards_pb2.ListBoardsRequest, context: grpc.aio.ServicerContext
    ) -> boards_pb2.ListBoardsResponse:
        boards = await self.service.list_boards(auth.current(), request.neighbourhood_id)
        return boards_pb2.ListBoardsResponse(boards=[board_to_proto(b) for b in boards])

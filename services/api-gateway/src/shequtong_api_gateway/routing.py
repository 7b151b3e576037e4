"""The gateway's route table: every route of `routes/` directly on the app, each rejecting a path of the
wrong shape before its regular expression runs.

Measured on the home feed (bench/README.md): FastAPI 0.165 matches an included router's routes twice per
request (once to choose the router, again to handle it), with scope bookkeeping around every candidate — a
sixth of the gateway's CPU for a table of ~180 routes. Flat, the table is walked once, and the shape test
turns most candidates away with a tuple comparison."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import ORJSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match, get_route_path
from starlette.types import Scope

_SEGMENTS = "shequtong.path_segments"


class _Shape:
    """How many segments a route's path has and its literal ones, compared with a request's in C."""

    __slots__ = ("count", "expected", "literals")

    def __init__(self, path: str) -> None:
        segments = path.split("/")
        self.count = len(segments)
        # Index 0 (the empty segment before the leading slash) is always literal, so there is at least one.
        self.literals = itemgetter(*(i for i, s in enumerate(segments) if "{" not in s))
        self.expected = self.literals(segments)

    def admits(self, segments: list[str]) -> bool:
        return len(segments) == self.count and self.literals(segments) == self.expected


def _request_segments(scope: Scope) -> list[str]:
    """The request path's segments, split once per path (a slash redirect asks again with another path)."""
    path = scope["path"]
    kept = scope.get(_SEGMENTS)
    if kept is not None and kept[0] is path:
        return kept[1]  # type: ignore[no-any-return]
    segments = get_route_path(scope).split("/")
    scope[_SEGMENTS] = (path, segments)
    return segments


class ShapedRoute(APIRoute):
    """An APIRoute that answers NONE for a path whose segment count or literal segments differ from its own
    — exactly the paths its regular expression cannot match (a `{parameter}` never holds a slash; a
    `{parameter:path}` may, and its route is matched by the expression alone)."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._shape = None if ":path}" in self.path else _Shape(self.path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._shape is not None and scope["type"] == "http" and not self._shape.admits(_request_segments(scope)):
            return Match.NONE, {}
        return super().matches(scope)


def gateway_router(**kwargs: Any) -> APIRouter:
    """The router each `routes/` module declares its resource on."""
    return APIRouter(route_class=ShapedRoute, default_response_class=ORJSONResponse, **kwargs)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """`router`'s routes on `app` itself, in their order (their prefix, tags and response class are already
    theirs). Unlike `include_router`, app-level dependency overrides do not reach them; the gateway has none."""
    for route in router.routes:
        if not isinstance(route, ShapedRoute):
            raise TypeError(f"{route!r} was not declared on a gateway_router()")
        app.router.routes.append(route)

"""Domain errors with stable codes, and their mapping to gRPC status (with ErrorInfo details).

Handlers raise these; the error interceptor turns them into a status. The gateway turns the status
back into RFC 9457 problem+json using the same stable `code`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "shequtong"


class DomainError(Exception):
    status: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION
    default_code: ClassVar[str] = "failed_precondition"

    def __init__(self, message: str, code: str | None = None, **metadata: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.metadata = {k: str(v) for k, v in metadata.items()}

    def to_status(self) -> status_pb2.Status:
        info = error_details_pb2.ErrorInfo(reason=self.code, domain=ERROR_DOMAIN, metadata=self.metadata)
        detail = any_pb2.Any()
        detail.Pack(info)
        return status_pb2.Status(code=self.status.value[0], message=self.message, details=[detail])


class InvalidArgument(DomainError):
    status = grpc.StatusCode.INVALID_ARGUMENT
    default_code = "invalid_argument"


class NotFound(DomainError):
    status = grpc.StatusCode.NOT_FOUND
    default_code = "not_found"


class AlreadyExists(DomainError):
    status = grpc.StatusCode.ALREADY_EXISTS
    default_code = "already_exists"


class Conflict(DomainError):
    status = grpc.StatusCode.ABORTED
    default_code = "conflict"


class FailedPrecondition(DomainError):
    status = grpc.StatusCode.FAILED_PRECONDITION
    default_code = "failed_precondition"


class PermissionDenied(DomainError):
    status = grpc.StatusCode.PERMISSION_DENIED
    default_code = "forbidden"


class Unauthenticated(DomainError):
    status = grpc.StatusCode.UNAUTHENTICATED
    default_code = "unauthenticated"


class ResourceExhausted(DomainError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_code = "rate_limited"


class Unavailable(DomainError):
    status = grpc.StatusCode.UNAVAILABLE
    default_code = "unavailable"


def error_info(exc: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """(stable code, metadata) from a failed call; falls back to the status name."""
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            break
    else:
        return exc.code().name.lower(), {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return exc.code().name.lower(), {}


def status_trailer(err: DomainError) -> tuple[tuple[str, bytes], ...]:
    return (("grpc-status-details-bin", err.to_status().SerializeToString()),)

"""The one place the API turns barque's error categories into Docker's statuses and `{"message": …}` bodies."""

from __future__ import annotations

from barque import errors

__all__ = ["ApiError", "status_of", "BadParameter", "NotFoundError", "ConflictError"]


class ApiError(Exception):
    """An HTTP error with Docker's body. Raised by handlers; rendered by the app's middleware."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def BadParameter(message: str) -> ApiError:  # noqa: N802 - reads as the error it makes
    return ApiError(400, message)


def NotFoundError(message: str) -> ApiError:  # noqa: N802
    return ApiError(404, message)


def ConflictError(message: str) -> ApiError:  # noqa: N802
    return ApiError(409, message)


#: barque's categories (by class name, as they cross the zygote's pipe) → Docker's statuses
STATUS = {
    "NotFound": 404,
    "AlreadyExists": 409,
    "Conflict": 409,
    "InvalidArgument": 400,
    "DataCorruption": 400,
    "FailedPrecondition": 409,
    "Unavailable": 503,
    "StartFailed": 400,
    "ExecFailed": 400,
    "BarqueError": 500,
}


def kind_of(exc: BaseException) -> str:
    """The category name of an exception: the nearest class in STATUS up its hierarchy, else "internal"."""
    for cls in type(exc).__mro__:
        if cls.__name__ in STATUS:
            return cls.__name__
    return "internal"


def status_of(kind: str) -> int:
    return STATUS.get(kind, 500)


def from_exception(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, errors.BarqueError):
        return ApiError(status_of(kind_of(exc)), exc.message)
    if isinstance(exc, OSError):
        return ApiError(500, str(exc))
    return ApiError(500, f"{type(exc).__name__}: {exc}")

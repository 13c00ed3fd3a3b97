"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

    400 invalid_request_error   bad field, unknown voice / format / sampler option, empty input
    401 authentication_error    wrong or missing API key (when the server has one)
    404 invalid_request_error   unknown route
    413 invalid_request_error   input (or body) over the limit
    503 server_error            queue full or shutting down (with Retry-After)
    500 server_error            anything unexpected: logged with an id; the body names the id, never a traceback
"""
from __future__ import annotations

import logging
import uuid

log = logging.getLogger("llada_tts.server")


class ApiError(Exception):
    """An error the client sees: status, one-line message and OpenAI's type / param / code."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def overloaded(message: str, retry_after: int = 1, code: str = "queue_full") -> ApiError:
    return ApiError(503, message, type="server_error", code=code, headers={"Retry-After": str(retry_after)})


def internal(exc: BaseException | None = None, what: str = "request") -> ApiError:
    """A 500 whose body names an id; the traceback goes to the server log under that id only."""
    error_id = uuid.uuid4().hex[:12]
    if exc is not None:
        log.error("internal error %s while handling a %s", error_id, what, exc_info=exc)
    return ApiError(500, f"internal server error (id {error_id}); the server log has the details",
                    type="server_error", code="internal_error")

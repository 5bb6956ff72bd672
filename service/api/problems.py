"""Every HTTP error as an RFC 9457 problem+json body whose detail names the field."""

from __future__ import annotations

import http
import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from ..errors import BrokerUnavailable, InvalidInput, PublishUnconfirmed

log = logging.getLogger("herald.api")
# RFC 9457's default type: the status code says it all.
_TYPE = "about:blank"


def _title(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _from_invalid(exc: InvalidInput) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=exc.status,
        title=_title(exc.status),
        detail=f"{exc.field}: {exc.detail}",
        extra={"field": exc.field},
        type_=_TYPE,
    )


def _from_unconfirmed(exc: PublishUnconfirmed) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=504,
        title=_title(504),
        detail=str(exc),
        headers={"Retry-After": "2"},
        type_=_TYPE,
    )


def _from_unavailable(exc: BrokerUnavailable) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=503,
        title=_title(503),
        detail=f"broker unavailable, retry later: {exc}",
        headers={"Retry-After": "2"},
        type_=_TYPE,
    )


def _from_http(exc: HTTPException) -> ProblemDetailsException:
    detail = exc.detail
    extra = exc.extra
    field = None
    if isinstance(extra, list) and extra:
        # Litestar's validation errors list {"message", "key", "source"}.
        first = extra[0]
        if isinstance(first, dict) and "key" in first:
            field = str(first["key"])
            detail = f"{field}: {first.get('message', detail)}"
    headers = exc.headers
    if exc.status_code == 413:
        # Litestar's request_max_body_size refusal names no field, and comes
        # before the body is read: close, or a client may reuse a connection
        # the server is about to drop.
        field = "body"
        detail = "body: larger than this endpoint takes"
        headers = {**(headers or {}), "Connection": "close"}
    return ProblemDetailsException(
        status_code=exc.status_code,
        title=_title(exc.status_code),
        detail=detail,
        headers=headers,
        extra={"field": field} if field else None,
        type_=_TYPE,
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log an unexpected error and answer 500 without leaking internals."""
    log.error("request failed", exc_info=exc, extra={"path": request.url.path})
    return ProblemDetailsException(
        status_code=500, title=_title(500), detail="internal error, logged", type_=_TYPE
    ).to_response(request)


def plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                InvalidInput: _from_invalid,
                PublishUnconfirmed: _from_unconfirmed,
                BrokerUnavailable: _from_unavailable,
                HTTPException: _from_http,
            }
        )
    )

"""The error path of callbox's HTTP servers (the REST API, the session server): every
refusal as ``{"error": {"code", "message"[, "field"]}}`` with its status; a bug is a logged
500, never a traceback to the client."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from appliance.errors import CallboxError, is_storage_full
from appliance.jsonwire import json_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Translate = Callable[[Exception], CallboxError | None]


def error_response(
    code: str,
    message: str,
    status: int,
    field: str | None = None,
    *,
    challenge: str | None = None,
) -> web.Response:
    """``challenge``: the WWW-Authenticate header a 401 carries."""
    detail = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    headers = {"WWW-Authenticate": challenge} if status == 401 and challenge else None
    return json_response({"error": detail}, status=status, headers=headers)


def json_errors(
    log: logging.Logger,
    *,
    storage_full: str,
    translate: Translate | None = None,
    challenge: str | None = None,
) -> Middleware:
    """The middleware: ``CallboxError`` as its code and status (and ``field``, if it names
    one); aiohttp's HTTP errors by their reason; what ``translate`` recognises (errors of
    layers below the hierarchy, like the HAL's); a full disk as 507 saying ``storage_full``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except CallboxError as err:
            field = getattr(err, "field", None)
            return error_response(err.code, err.message, err.status, field, challenge=challenge)
        except web.HTTPException as err:
            if err.status < 400:
                raise
            code = (err.reason or "error").lower().replace(" ", "-")  # Not Found: not-found
            return error_response(code, err.reason or "error", err.status, challenge=challenge)
        except Exception as err:
            known = translate(err) if translate is not None else None
            if known is not None:
                return error_response(known.code, known.message, known.status)
            if is_storage_full(err):
                log.error("%s %s: the storage is full: %s", request.method, request.path, err)
                return error_response("storage-full", storage_full, 507)
            log.exception("%s %s failed", request.method, request.path)
            return error_response("internal", "internal error", 500)

    return middleware

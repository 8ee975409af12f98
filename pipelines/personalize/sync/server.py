"""The sync server: a Starlette app (served by uvicorn) in front of one ``DeltaStore``.

Routes (JSON answers; errors are ``{"error": {type, message, where, hint}}``)::

    GET  /v1/health                             -> {"ok": true, "max_bytes": <largest delta accepted>}
    GET  /v1/users/{user}/status                -> the store's status
    GET  /v1/users/{user}/deltas/latest         -> the delta's bytes (headers X-Pippin-Version, X-Pippin-SHA256)
    GET  /v1/users/{user}/deltas/{version}      -> the same for one version
    POST /v1/users/{user}/deltas?parent=P&device=D   body: the delta's bytes, header X-Pippin-SHA256
                                                -> 201 {"version", "base_sha256", "delta_sha256", "device"}

Every ``/v1/users`` route needs ``Authorization: Bearer <token>``. A missing or
unknown token gets 401; a valid token for another user gets 403 with the same body
whether that user exists or not (the server never says which users it has). An
upload's size is checked from its ``Content-Length`` and again while it streams in, so
an oversized body is refused (413) before it is read whole. Everything else is the
store's checks (see ``store``).
"""

from __future__ import annotations

import hashlib
import logging

from .store import DeltaStore, SyncError

__all__ = ["make_app", "serve"]

log = logging.getLogger(__name__)
FORBIDDEN = {"error": {"type": "Forbidden", "message": "this token may not access that user", "where": None,
                       "hint": "use the token 'pippin sync add-user' printed for this user"}}


def make_app(store: DeltaStore):
    """The ASGI application serving ``store``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def error(exc: SyncError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)

    async def authorized(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        owner = await run_in_threadpool(store.user_of_token, token)
        if owner is None:
            return JSONResponse({"error": {"type": "Unauthorized", "message": "a valid token is required",
                                           "where": None, "hint": "give --token"}}, status_code=401)
        if owner != request.path_params["user"]:
            return JSONResponse(FORBIDDEN, status_code=403)
        return None

    async def health(request: Request):
        return JSONResponse({"ok": True, "max_bytes": store.max_bytes})

    async def status(request: Request):
        denied = await authorized(request)
        if denied is not None:
            return denied
        try:
            return JSONResponse(await run_in_threadpool(store.status, request.path_params["user"]))
        except SyncError as exc:
            return error(exc)

    async def fetch(request: Request):
        denied = await authorized(request)
        if denied is not None:
            return denied
        which = request.path_params["version"]
        try:
            version = None if which == "latest" else _int(which, "version")
            number, data = await run_in_threadpool(store.fetch, request.path_params["user"], version)
        except SyncError as exc:
            return error(exc)
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Pippin-Version": str(number), "X-Pippin-SHA256": hashlib.sha256(data).hexdigest()})

    async def push(request: Request):
        denied = await authorized(request)
        if denied is not None:
            return denied
        try:
            parent = _int(request.query_params.get("parent", ""), "parent")
            device = request.query_params.get("device", "default")
            data = await _body(request, store.max_bytes)
            result = await run_in_threadpool(store.push, request.path_params["user"], data, parent=parent,
                                             sha256=request.headers.get("x-pippin-sha256", ""), device=device)
        except SyncError as exc:
            return error(exc)
        log.info("stored version %s for a user (device %r)", result["version"], result["device"])
        return JSONResponse(result, status_code=201)

    routes = [Route("/v1/health", health),
              Route("/v1/users/{user}/status", status),
              Route("/v1/users/{user}/deltas/{version}", fetch, methods=["GET"]),
              Route("/v1/users/{user}/deltas", push, methods=["POST"])]
    return Starlette(routes=routes)


def _int(text: str, name: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise SyncError(f"{name} is {text!r}, expected a whole number >= 0") from None
    if value < 0:
        raise SyncError(f"{name} is {value}, expected a whole number >= 0")
    return value


async def _body(request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to pass ``limit`` bytes."""
    too_big = SyncError(f"the upload is larger than the server's limit of {limit} bytes", status=413,
                        hint="personalize fewer parameters, or start the server with a larger --max-bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, n_bytes = [], 0
    async for chunk in request.stream():
        n_bytes += len(chunk)
        if n_bytes > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def serve(store: DeltaStore, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Serve ``store`` over HTTP until interrupted (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(make_app(store), host=host, port=port, log_level=log_level)

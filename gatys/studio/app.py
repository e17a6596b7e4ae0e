"""The studio's web application (Starlette): the page, its JSON API and its event stream,
behind a guard that lets through only requests carrying this launch's token, addressed to this
server by name (against DNS rebinding) and, when a browser says where they come from, from this
server's own page."""
from __future__ import annotations

import asyncio
import contextlib
import html
import importlib.resources
import json
import logging
import secrets
import signal
import threading
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from gatys.errors import GatysError, InputError
from gatys.model.objective import DEFAULT_STYLE_LAYERS
from gatys.studio import folder as pictures
from gatys.studio import form
from gatys.studio.requests import RunRequest
from gatys.studio.runs import Studio

log = logging.getLogger("gatys")
STATIC = {"studio.js": "text/javascript", "studio.css": "text/css"}
TOKEN_HEADER = "x-gatys-token"


class TooLarge(InputError):
    """An upload over the size the studio accepts."""


class Guard:
    """ASGI middleware: 403 unless the request has the token (header or ``token`` query), a
    Host among ``hosts`` (None: any, when listening on every address) and an Origin, if any,
    of the same host."""

    def __init__(self, app: Any, token: str, hosts: set[str] | None) -> None:
        self.app, self.token, self.hosts = app, token, hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        origin = headers.get("origin")
        given = headers.get(TOKEN_HEADER) or \
            (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
        if self.hosts is not None and host not in self.hosts:
            why = (f"this studio answers to {' or '.join(sorted(self.hosts))}, not "
                   f"{host or 'no Host'}: open the URL it printed")
        elif origin is not None and origin != f"http://{host}":
            why = f"requests from another site ({origin}) are refused"
        elif not secrets.compare_digest(given.encode(), self.token.encode()):
            why = "this studio needs its token: open the URL it printed (ending in ?token=...)"
        else:
            return await self.app(scope, receive, send)
        await JSONResponse({"error": why}, status_code=403)(scope, receive, send)


def _error(e: Exception) -> JSONResponse:
    if isinstance(e, GatysError):
        return JSONResponse({"error": str(e)}, status_code=413 if isinstance(e, TooLarge)
                            else 400 if isinstance(e, InputError) else 500)
    log.error("studio request failed", exc_info=e)
    return JSONResponse({"error": f"internal error ({type(e).__name__}); the server's log has "
                                  "the details"}, status_code=500)


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused once it passes ``limit`` bytes (before all of it is read)."""
    size = f"more than the {limit / 1e6:g} MB the studio accepts (--max-upload-mb)"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(f"the upload is {int(length) / 1e6:.1f} MB, {size}")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"the upload is {size}")
    return bytes(data)


def _static(name: str) -> str:
    return importlib.resources.files("gatys.studio").joinpath("static", name).read_text("utf-8")


def create_app(folder: Path, token: str, hosts: set[str] | None, max_upload_mb: float = 50.0,
               studio: Studio | None = None) -> Guard:
    """The application over ``folder``, guarded; ``studio`` (its queue of runs) is made if not
    given. The application's ``state`` (``Guard.app.state``) holds the studio, ``stopping``
    (set to end the event streams), ``signum``, the signal that stopped the server, and
    ``stopped``, the run it stopped."""
    studio = studio or Studio(folder)
    hub = studio.hub
    limit = int(max_upload_mb * 1e6)
    stopping = threading.Event()

    async def page(request: Request) -> Response:
        text = _static("index.html").replace("{{TOKEN}}", html.escape(token, quote=True))
        return HTMLResponse(text, headers={"Cache-Control": "no-store",
                                           "Content-Security-Policy": _CSP,
                                           "Referrer-Policy": "no-referrer"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return JSONResponse({"error": f"no file {json.dumps(name)}"}, status_code=404)
        return Response(_static(name), media_type=STATIC[name],
                        headers={"Cache-Control": "no-store"})

    async def options(request: Request) -> Response:
        return JSONResponse({"fields": form.fields(), "style_layers": list(DEFAULT_STYLE_LAYERS),
                             "max_upload_mb": max_upload_mb, "folder": str(folder)})

    async def listing(request: Request) -> Response:
        def read() -> dict[str, Any]:
            return {"pictures": pictures.pictures(folder), "history": pictures.history(folder)}
        return JSONResponse(await run_in_threadpool(read))

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name", "upload")
        data = await _body(request, limit)
        stored = await run_in_threadpool(pictures.store_upload, folder, data, name, limit)
        return JSONResponse({"name": stored})

    async def mask(request: Request) -> Response:
        stem = request.query_params.get("name", "region")
        data = await _body(request, limit)
        return JSONResponse({"name": await run_in_threadpool(pictures.store_mask, folder, data,
                                                             limit, stem)})

    async def start(request: Request) -> Response:
        try:
            body = json.loads(await _body(request, limit))
        except ValueError:
            raise InputError("a run is asked for as JSON") from None
        run_request = await run_in_threadpool(RunRequest.parse, body, folder)
        return JSONResponse(studio.submit(run_request).summary())

    async def runs(request: Request) -> Response:
        return JSONResponse({"runs": [r.summary(with_history=True) for r in studio.runs]})

    async def stop(request: Request) -> Response:
        return JSONResponse(studio.stop(int(request.path_params["id"])).summary())

    async def preview(request: Request) -> Response:
        run = studio.run(int(request.path_params["id"]))
        if run.preview is None:
            raise InputError("no picture yet")
        return Response(run.preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def inside(request: Request) -> Response:
        try:
            region = int(request.query_params.get("region", "1")) - 1
        except ValueError:
            raise InputError("region must be a number") from None
        future = studio.inspect(int(request.path_params["id"]),
                                request.query_params.get("layer", DEFAULT_STYLE_LAYERS[0]),
                                region)
        return JSONResponse(await asyncio.wrap_future(future))

    async def files(request: Request) -> Response:
        path = pictures.resolve(folder, request.path_params["name"], "the file")
        headers = {"Cache-Control": "no-store"}
        if request.query_params.get("download"):
            return FileResponse(path, filename=path.name, headers=headers)
        return FileResponse(path, headers=headers)

    async def events(request: Request) -> Response:
        q = hub.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                snapshot = {"type": "runs", "runs": [r.summary(with_history=True)
                                                     for r in studio.runs]}
                yield f"retry: 1000\nevent: runs\ndata: {json.dumps(snapshot)}\n\n"
                while not stopping.is_set():
                    try:
                        event = await asyncio.wait_for(q.get(), 0.5)
                    except asyncio.TimeoutError:
                        yield ": still here\n\n"
                        continue
                    yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            finally:
                hub.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        yield
        stopping.set()
        signum = app.state.signum or signal.SIGINT
        await run_in_threadpool(studio.close, signum)

    def route(path: str, endpoint: Any, methods: list[str] | None = None) -> Route:
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Exception as e:
                return _error(e)
        return Route(path, guarded, methods=methods)

    app = Starlette(routes=[
        route("/", page), route("/static/{name}", static),
        route("/api/options", options), route("/api/pictures", listing),
        route("/api/upload", upload, ["POST"]), route("/api/masks", mask, ["POST"]),
        route("/api/runs", start, ["POST"]), route("/api/runs", runs, ["GET"]),
        route("/api/runs/{id:int}/stop", stop, ["POST"]),
        route("/api/runs/{id:int}/preview.png", preview),
        route("/api/runs/{id:int}/inside", inside),
        route("/api/events", events), route("/files/{name}", files),
    ], lifespan=lifespan)
    app.state.studio, app.state.stopping, app.state.signum = studio, stopping, 0
    app.state.stopped = None  # the run a signal stopped
    return Guard(app, token, hosts)


# The page loads only its own script and style, and pictures from itself (data: for the Inside
# view's heat maps, blob: for a photo being painted on).
_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'none'")

"""The dock screen over HTTP (Starlette on uvicorn, in a thread of the daemon).

Read-only and without login, so it shows nothing a passer-by may not see:
per slot the camera's serial and state (tiles.py), no names, no footage.
Routes: `/` the page (`?lang=en` for English; Chinese by default), its
`/screen.css` and `/screen.js`, `/events` (Server-Sent Events: the tiles
whenever they change, and a comment line every 15 s so proxies keep the
stream open), `/api/tiles` (the same, once), `/healthz`, and `/metrics`
(runner/metrics.py) when the daemon hands it over.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dockd.clock import Clock
from dockd.runner.screen.page import CSS, JS, page
from dockd.runner.screen.tiles import LANGS, tiles

log = structlog.get_logger("dockd.screen")

Status = Callable[[], dict[str, Any]]
# (ready, reasons): what `/healthz` answers.
Health = Callable[[], tuple[bool, list[str]]]
POLL_S = 0.25  # how often the stream looks for a change
KEEPALIVE_S = 15.0


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang", "zh")
    return lang if lang in LANGS else "zh"


def make_app(
    status: Status, health: Health, clock: Clock, metrics: Callable[[], bytes] | None = None
) -> Starlette:
    # Set by ScreenServer.stop(): open streams end, so that uvicorn stops at once.
    closing = threading.Event()

    def snapshot(lang: str) -> str:
        shown = [t.as_json() for t in tiles(status(), clock.now(), lang)]
        return json.dumps({"tiles": shown}, ensure_ascii=False, sort_keys=True)

    async def index(request: Request) -> Response:
        return HTMLResponse(page(_lang(request)), headers={"Cache-Control": "no-store"})

    async def css(_: Request) -> Response:
        return Response(CSS, media_type="text/css")

    async def js(_: Request) -> Response:
        return Response(JS, media_type="text/javascript")

    async def api_tiles(request: Request) -> Response:
        return Response(snapshot(_lang(request)), media_type="application/json")

    async def events(request: Request) -> Response:
        lang = _lang(request)

        async def stream() -> AsyncIterator[str]:
            last, quiet = "", 0.0
            while not closing.is_set() and not await request.is_disconnected():
                now = snapshot(lang)
                if now != last:
                    yield f"data: {now}\n\n"
                    last, quiet = now, 0.0
                elif quiet >= KEEPALIVE_S:
                    yield ": still here\n\n"
                    quiet = 0.0
                await asyncio.sleep(POLL_S)
                quiet += POLL_S

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def healthz(_: Request) -> Response:
        ready, reasons = health()
        return JSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)

    async def metrics_text(_: Request) -> Response:
        assert metrics is not None
        # The figures read the catalog: not on the event loop's thread.
        body = await asyncio.to_thread(metrics)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/screen.css", css),
            Route("/screen.js", js),
            Route("/api/tiles", api_tiles),
            Route("/events", events),
            Route("/healthz", healthz),
            *([Route("/metrics", metrics_text)] if metrics is not None else []),
        ]
    )
    app.state.closing = closing
    return app


class ScreenServer:
    """uvicorn serving the app on host:port in a thread; `stop()` ends it."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.app = app
        self.thread = threading.Thread(target=self.server.run, name="dockd-screen", daemon=True)
        self.host, self.port = host, port

    def start(self, wait_s: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + wait_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise OSError(f"the dock screen could not listen on {self.host}:{self.port}")
        log.info("screen.listening", host=self.host, port=self.port)

    def stop(self) -> None:
        self.app.state.closing.set()
        self.server.should_exit = True
        self.thread.join(10)

"""The dock screen over HTTP (Starlette routes; runner/front.py serves them).

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
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dockd.clock import Clock
from dockd.runner.screen.page import CSS, JS, page
from dockd.runner.screen.tiles import LANGS, tiles

Status = Callable[[], dict[str, Any]]
# (ready, reasons): what `/healthz` answers.
Health = Callable[[], tuple[bool, list[str]]]
POLL_S = 0.25  # how often the stream looks for a change
KEEPALIVE_S = 15.0


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang", "zh")
    return lang if lang in LANGS else "zh"


def make_app(
    status: Status,
    health: Health,
    clock: Clock,
    metrics: Callable[[], bytes] | None = None,
    more: Sequence[BaseRoute] = (),
) -> Starlette:
    """The screen's routes, and `more` (the API's, runner/api.py, on the daemon's front)."""
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
            *more,
        ]
    )
    app.state.closing = closing
    return app

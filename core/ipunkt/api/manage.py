"""``/manage``: health with liveness, readiness, plugins and channels, as Spring's actuator."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ipunkt.api.middlewares import dumps
from ipunkt.appkeys import CHANNELS, ENGINE, PLUGINS, READY
from ipunkt.delivery.metrics import CONTENT_TYPE
from ipunkt.plugins import PluginStatus

UP, DOWN, OUT_OF_SERVICE, DEGRADED = "UP", "DOWN", "OUT_OF_SERVICE", "DEGRADED"


async def health(request: web.Request) -> web.Response:
    """The whole picture: overall status and one component per concern."""
    app = request.app
    components = {
        "liveness": {"status": UP},
        "readiness": {"status": _readiness(app)},
        "plugins": _plugins(app),
        "channels": await _channels(app),
        "webhooks": await app[ENGINE].webhooks.health(),
    }
    status = UP if components["readiness"]["status"] == UP else OUT_OF_SERVICE
    return _answer({"status": status, "components": components})


async def liveness(request: web.Request) -> web.Response:
    """The process answers: nothing more is claimed."""
    return _answer({"status": UP})


async def readiness(request: web.Request) -> web.Response:
    """Ready to take traffic: started and not shutting down."""
    return _answer({"status": _readiness(request.app)})


def _readiness(app: web.Application) -> str:
    return UP if app[READY]["ready"] else OUT_OF_SERVICE


def _plugins(app: web.Application) -> dict[str, Any]:
    records = app[PLUGINS].records
    failed = [r for r in records if r.status is PluginStatus.FAILED]
    return {
        "status": DEGRADED if failed else UP,
        "details": {r.name: r.as_json() for r in records},
    }


async def _channels(app: web.Application) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for service, state in app[CHANNELS].states.items():
        entry: dict[str, Any] = {
            "enabled": state.config.enabled,
            "transport": state.transport,
        }
        if state.channel is not None:
            channel_health = await state.channel.health()
            entry["status"] = UP if channel_health.ok else DOWN
            if channel_health.detail:
                entry["detail"] = channel_health.detail
        details[service] = entry
    down = any(entry.get("status") == DOWN for entry in details.values())
    return {"status": DOWN if down else UP, "details": details}


def _answer(body: dict[str, Any]) -> web.Response:
    status = 200 if body["status"] == UP else 503
    return web.json_response(body, status=status, dumps=dumps)


async def prometheus(request: web.Request) -> web.Response:
    """The delivery engine's figures in Prometheus' text format."""
    body = await request.app[ENGINE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/manage/health", health)
    app.router.add_get("/manage/health/liveness", liveness)
    app.router.add_get("/manage/health/readiness", readiness)
    app.router.add_get("/manage/prometheus", prometheus)

"""The aiohttp application factory: state under typed keys, resources in ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import structlog
from aiohttp import web

from ipunkt.api import capabilities, manage, nextmove, subscriptions
from ipunkt.api.middlewares import errors, request_context
from ipunkt.api.nextmove import NEXTMOVE
from ipunkt.appkeys import ADDRESS_BOOK, CHANNELS, ENGINE, PLUGINS, READY, ROUTER, SETTINGS
from ipunkt.channels import ChannelSet
from ipunkt.config import Settings
from ipunkt.delivery.engine import DeliveryEngine
from ipunkt.lookup.assembly import build_address_book
from ipunkt.lookup.routing import Router
from ipunkt.maskinporten.tokens import MaskinportenTokens
from ipunkt.messages.subscriptions import Subscriptions
from ipunkt.package.keys import OrganisationKey
from ipunkt.plugin import ChannelConfig
from ipunkt.plugins import PluginHost

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings,
    plugins: PluginHost,
    channel_configs: Mapping[str, ChannelConfig],
    key: OrganisationKey | None = None,
) -> web.Application:
    """Build the gateway's application; nothing starts until aiohttp runs its cleanup_ctx."""
    app = web.Application(middlewares=[request_context, errors])
    app[SETTINGS] = settings
    app[PLUGINS] = plugins
    tokens = None
    if key is not None and settings.maskinporten.token_url is not None:
        tokens = MaskinportenTokens(settings.maskinporten, settings.organisation.number, key)
        app.on_cleanup.append(lambda _app: tokens.close())
    app[CHANNELS] = ChannelSet(
        settings.organisation.number,
        plugins.channels,
        channel_configs,
        key=key,
        tokens=tokens,
        organisation_name=settings.organisation.name,
    )
    app[ADDRESS_BOOK] = build_address_book(
        settings.lookup,
        plugins,
        organisation=settings.organisation.number,
        services=app[CHANNELS].enabled(),
        tokens=tokens,
    )
    app[ROUTER] = Router(
        app[ADDRESS_BOOK],
        app[CHANNELS],
        settings.routing,
        allow_synthetic_identifiers=settings.lookup.allow_synthetic_identifiers,
    )
    app[READY] = {"ready": False}
    app.cleanup_ctx.append(_channels_running)
    app.cleanup_ctx.append(_lookup_running)
    nextmove.install(app, key)
    _install_delivery(app)
    app.cleanup_ctx.append(_readiness)
    app.on_shutdown.append(_not_ready)
    manage.setup_routes(app)
    capabilities.setup_routes(app)
    return app


async def _channels_running(app: web.Application) -> AsyncIterator[None]:
    await app[CHANNELS].start()
    yield
    await app[CHANNELS].stop()


async def _lookup_running(app: web.Application) -> AsyncIterator[None]:
    await app[ADDRESS_BOOK].start()
    log.info("lookup sources", sources=app[ADDRESS_BOOK].describe())
    app[ROUTER].log_table()
    yield
    await app[ADDRESS_BOOK].stop()


def _install_delivery(app: web.Application) -> None:
    """The engine runs once the store is open, and stops before it closes."""
    services = app[NEXTMOVE]
    app[ENGINE] = DeliveryEngine(
        services.store,
        services.outgoing,
        services.incoming,
        services.statuses.rules,
        app[CHANNELS],
        app[ROUTER],
        app[SETTINGS].delivery,
        app[SETTINGS].webhooks,
        key_folder=app[SETTINGS].store.path,
    )
    app.cleanup_ctx.append(_delivery_running)
    subscriptions.setup_routes(app, Subscriptions(services.store, app[ENGINE].webhooks))


async def _delivery_running(app: web.Application) -> AsyncIterator[None]:
    await app[ENGINE].start()
    yield
    await app[ENGINE].stop()


async def _readiness(app: web.Application) -> AsyncIterator[None]:
    """Ready once everything before it in cleanup_ctx has started; not ready while stopping."""
    app[READY]["ready"] = True
    log.info(
        "ipunkt ready",
        organisation=app[SETTINGS].organisation.number,
        channels=app[CHANNELS].enabled(),
        failed_plugins=[r.name for r in app[PLUGINS].failed()],
    )
    yield


async def _not_ready(app: web.Application) -> None:
    """Shutdown has begun: tell load balancers before connections close."""
    app[READY]["ready"] = False

"""The delivery engine: outbox workers, pollers, status replies, the lifetime sweeper and
webhooks, together.

It starts after the store and the channels, and stops before them: on SIGTERM the workers
stop claiming, sends in flight get a grace period and are then released (they come back at
the next start), so that nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ipunkt.channels import ChannelSet
from ipunkt.delivery.inbound import ChannelSink, IncomingPoller
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.outbox import Outbox
from ipunkt.delivery.replies import ReplySender
from ipunkt.delivery.settings import DeliverySettings, WebhookSettings
from ipunkt.delivery.status_polling import StatusPoller
from ipunkt.delivery.sweeper import LifetimeSweeper
from ipunkt.delivery.webhooks import WebhookDispatcher
from ipunkt.lookup.routing import Router
from ipunkt.messages.incoming import IncomingMessages
from ipunkt.messages.outgoing import OutgoingMessages
from ipunkt.messages.statuses import StatusRules
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import MessageStore

log = structlog.get_logger(__name__)


class DeliveryEngine:
    """Everything that moves messages without a client asking, for one gateway process."""

    def __init__(
        self,
        store: MessageStore,
        outgoing: OutgoingMessages,
        incoming: IncomingMessages,
        rules: StatusRules,
        channels: ChannelSet,
        router: Router,
        settings: DeliverySettings,
        webhooks: WebhookSettings,
        *,
        key_folder: Path,
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.store = store
        self.channels = channels
        self.metrics = Metrics(store.outbox_depth)
        self.webhooks = WebhookDispatcher(store, webhooks, self.metrics, key_folder=key_folder,
                                          clock=clock)
        self.outbox = Outbox(store, channels, router, rules, settings, self.metrics, clock=clock)
        self.sweeper = LifetimeSweeper(store, rules, settings.sweep_seconds, clock=clock)
        self.replies = ReplySender(store, channels, settings, self.metrics, clock=clock)
        self.grace_seconds = settings.shutdown_grace_seconds
        self.incoming_pollers: dict[str, IncomingPoller] = {}
        self.status_pollers: dict[str, StatusPoller] = {}
        for service, state in channels.states.items():
            channel = state.channel
            if channel is None:
                continue
            if channel.replies:
                incoming.replies[service] = frozenset(channel.replies)
            sink = ChannelSink(service, store, incoming, rules, self.metrics, clock=clock)
            if channel.incoming_poll_interval is not None:
                self.incoming_pollers[service] = IncomingPoller(service, channel, sink,
                                                                self.metrics)
            if channel.status_poll_interval is not None:
                self.status_pollers[service] = StatusPoller(
                    service, channel, store, rules, settings, self.metrics, sink=sink,
                    clock=clock,
                )
        outgoing.on_queued.append(lambda _message_id: self.outbox.nudge())
        incoming.on_reply_queued.append(self.replies.nudge)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loops: dict[str, Coroutine[Any, Any, None]] = {
            "outbox": self.outbox.run(),
            "sweeper": self.sweeper.run(),
            "replies": self.replies.run(),
            "webhooks": self.webhooks.run(),
        }
        for service, incoming in self.incoming_pollers.items():
            loops[f"incoming {service}"] = incoming.run()
        for service, status in self.status_pollers.items():
            loops[f"status {service}"] = status.run()
        for name, loop in loops.items():
            self._tasks.append(asyncio.create_task(_logged(name, loop), name=name))
        log.info("delivery started", loops=sorted(loops))

    async def stop(self) -> None:
        """Stop the pollers, let sends and replies in flight finish or release them, then stop
        the rest."""
        finishing = {"outbox", "webhooks", "replies"}
        for task in self._tasks:
            if task.get_name() not in finishing:
                task.cancel()
        self.replies.stop()
        await asyncio.gather(self.outbox.stop(), self.webhooks.stop())
        replies = [task for task in self._tasks if task.get_name() == "replies"]
        if replies:
            await asyncio.wait(replies, timeout=self.grace_seconds)
        for task in self._tasks:
            if task.get_name() != "webhooks":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        log.info("delivery stopped")


async def _logged(name: str, loop: Coroutine[Any, Any, None]) -> None:
    try:
        await loop
    except asyncio.CancelledError:
        raise
    except Exception:  # a loop that dies must be seen in the log, not vanish silently
        log.exception("delivery loop stopped unexpectedly", loop=name)

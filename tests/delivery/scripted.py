"""A channel that fails in scripted ways, for the delivery engine's tests.

Each message's attempts follow a script read from its ``avtalt`` body's ``identifier``:
comma-separated steps, one per attempt, the last repeating: ``ok``, ``delivered`` (SENDT and
LEVERT at once, as DPF reports), ``transient``, ``retry-after:N``, ``permanent``, ``slow:N``
(then ok), ``hang`` (never answers), ``crash`` (an unexpected exception). The channel records
every attempt and every message that arrived, and answers the senders of incoming messages
with status replies (MOTTATT, LEVERT) as DPO does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ipunkt.plugin import (
    Channel,
    ChannelContext,
    ChannelInfo,
    IncomingMessage,
    IncomingSink,
    OutgoingMessage,
    PermanentError,
    PollableConversation,
    ReceiptStatus,
    SendResult,
    StatusUpdate,
    TransientError,
    hookimpl,
)

SERVICE = "DPT"


@dataclass
class Remote:
    """The scripted channel's "other side": what arrived, and what it will answer."""

    attempts: Counter[str] = field(default_factory=Counter)
    delivered: list[str] = field(default_factory=list)
    statuses: dict[str, list[StatusUpdate]] = field(default_factory=dict)
    polled: list[list[str]] = field(default_factory=list)
    inbox: list[IncomingMessage] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    replies: list[tuple[str, str]] = field(default_factory=list)
    """(message id, status) of each status reply sent to a sender."""
    reply_failures: int = 0
    """Replies to refuse with a transient error before sending any."""


REMOTE = Remote()


def script_of(message: OutgoingMessage) -> list[str]:
    body = message.sbd.get("avtalt") or {}
    return str(body.get("identifier") or "ok").split(",")


class ScriptedChannel(Channel):
    status_poll_interval = 0.05
    incoming_poll_interval = 0.05
    replies = frozenset({ReceiptStatus.MOTTATT, ReceiptStatus.LEVERT})

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.remote = REMOTE

    async def send(self, message: OutgoingMessage) -> SendResult:
        attempt = self.remote.attempts[message.message_id]
        self.remote.attempts[message.message_id] += 1
        script = script_of(message)
        step = script[min(attempt, len(script) - 1)]
        kind, _, argument = step.partition(":")
        if kind == "transient":
            raise TransientError("remote answered 503")
        if kind == "retry-after":
            raise TransientError("remote answered 429", retry_after=float(argument))
        if kind == "permanent":
            raise PermanentError("remote answered 400: receiver has no inbox")
        if kind == "crash":
            raise RuntimeError("bug in the channel")
        if kind == "hang":
            await asyncio.Event().wait()
        if kind == "slow":
            await asyncio.sleep(float(argument))
        chunks = [chunk for attachment in message.attachments async for chunk in attachment.open()]
        assert sum(len(c) for c in chunks) == sum(a.size for a in message.attachments)
        self.remote.delivered.append(message.message_id)
        if kind == "delivered":
            return SendResult((ReceiptStatus.SENDT, ReceiptStatus.LEVERT),
                              external_reference=f"remote-{message.message_id}")
        return SendResult(external_reference=f"remote-{message.message_id}")

    async def poll_statuses(
        self, conversations: Sequence[PollableConversation]
    ) -> Sequence[StatusUpdate]:
        self.remote.polled.append([c.message_id for c in conversations])
        updates = []
        for conversation in conversations:
            updates.extend(self.remote.statuses.pop(conversation.message_id, []))
        return updates

    async def poll_incoming(self, sink: IncomingSink) -> None:
        while self.remote.inbox:
            message = self.remote.inbox[0]
            await sink.receive(message)
            self.remote.inbox.pop(0)
            self.remote.confirmed.append(str(message.sbd["standardBusinessDocumentHeader"]
                                             ["documentIdentification"]["instanceIdentifier"]))

    async def send_reply(self, message: Mapping[str, Any], status: ReceiptStatus) -> None:
        if self.remote.reply_failures > 0:
            self.remote.reply_failures -= 1
            raise TransientError("remote answered 503")
        header = message["standardBusinessDocumentHeader"]
        self.remote.replies.append((header["documentIdentification"]["instanceIdentifier"],
                                    status.value))


INFO = ChannelInfo(
    service=SERVICE,
    name="Scripted test channel",
    message_types=frozenset({"avtalt", "arkivmelding", "arkivmelding_kvittering", "status"}),
    max_size=10 * 1024 * 1024,
    factory=ScriptedChannel,
)


@hookimpl
def register_channels(register):  # type: ignore[no-untyped-def]
    register(INFO)


__all__ = ["INFO", "REMOTE", "SERVICE", "ReceiptStatus", "Remote"]

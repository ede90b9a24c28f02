"""A channel plugin for process-level tests: each send is an HTTP POST to a receiver that
the test runs, with the message id as the idempotency key, as real channels use theirs.

It is installed as a plugin distribution into a throwaway site folder, so that a real
``ipunkt serve`` process loads it through its entry point.
"""

from __future__ import annotations

import aiohttp
from ipunkt.plugin import (
    Channel,
    ChannelConfig,
    ChannelContext,
    ChannelInfo,
    OutgoingMessage,
    PermanentError,
    ReceiptStatus,
    SendResult,
    TransientError,
    hookimpl,
)


class RelayConfig(ChannelConfig):
    receiver_url: str = "http://127.0.0.1:1"
    """Where the test's receiving side listens."""


class RelayChannel(Channel):
    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.config: RelayConfig = context.config  # type: ignore[assignment]
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, message: OutgoingMessage) -> SendResult:
        assert self.session is not None
        try:
            async with self.session.post(
                f"{self.config.receiver_url}/deliver",
                json={"messageId": message.message_id},
                headers={"Idempotency-Key": message.message_id},
            ) as response:
                if response.status >= 500:
                    raise TransientError(f"receiver answered {response.status}")
                if response.status >= 400:
                    raise PermanentError(f"receiver answered {response.status}")
        except aiohttp.ClientError as exc:
            raise TransientError(f"receiver unreachable: {exc}") from exc
        return SendResult(statuses=(ReceiptStatus.SENDT, ReceiptStatus.LEVERT))


@hookimpl
def register_channels(register):
    register(ChannelInfo(service="DPR", name="Relay test channel",
                         message_types=frozenset({"avtalt"}), max_size=1024 * 1024,
                         config_schema=RelayConfig, factory=RelayChannel))


class RelayReceiver:
    """The relay channel's fake remote side in the sandbox: it records each delivery once."""

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}

    def app(self):  # type: ignore[no-untyped-def]
        from aiohttp import web

        async def deliver(request: web.Request) -> web.Response:
            key = request.headers["Idempotency-Key"]
            self.delivered[key] = self.delivered.get(key, 0) + 1
            return web.json_response({"accepted": key})

        app = web.Application()
        app.router.add_post("/deliver", deliver)
        return app


RECEIVER = RelayReceiver()


async def sandbox_setup(environment):  # type: ignore[no-untyped-def]
    from ipunkt.plugin import SandboxChannel

    url = await environment.serve("relay-receiver", RECEIVER.app())
    parties = environment.organisations
    record = {
        "service": "DPR",
        "processes": ["urn:no:difi:profile:avtalt:avtalt:ver1.0"],
        "document_types": ["urn:no:difi:avtalt:xsd::avtalt"],
    }
    return SandboxChannel(
        service="DPR",
        channel_configs={p.number: {"receiver_url": url} for p in parties},
        receivers=[{"identifier": p.number, "record": [record]} for p in parties],
        samples=[{"identifier": parties[1].number, "name": parties[1].name, "note": "relay"}],
        fakes={"relay-receiver": url},
    )


@hookimpl
def register_sandbox(register):
    from ipunkt.plugin import SandboxPart

    register(SandboxPart("DPR", sandbox_setup))

"""How SvarUt's and the network's failures reach the core: worth a retry, or never."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from ipunkt.plugin import PermanentError, TransientError
from ipunkt.testing import free_port
from ipunkt_dpf.client import SvarUtClient, UploadDocument


async def test_unavailable_svarut_is_retried_after_what_it_asks(
    channel: Any, messages: Any, svarut: Any
) -> None:
    svarut.fake.faults.fail("send", 503, retry_after=7)
    with pytest.raises(TransientError) as failed:
        await channel.send(messages.make())
    assert failed.value.retry_after == 7
    assert "SvarUt send: HTTP 503" in str(failed.value)
    assert svarut.fake.forsendelser == {}


async def test_too_many_requests_is_transient(channel: Any, messages: Any, svarut: Any) -> None:
    svarut.fake.faults.fail("eksternref", 429, retry_after=3, message="For mange kall")
    with pytest.raises(TransientError) as failed:
        await channel.send(messages.make())
    assert failed.value.retry_after == 3
    assert "For mange kall" in str(failed.value)


async def test_a_refusal_is_permanent_with_svarut_reason(
    channel: Any, messages: Any, svarut: Any
) -> None:
    svarut.fake.faults.fail("send", 400, message="Mottaker finnes ikke i Enhetsregisteret")
    with pytest.raises(PermanentError) as refused:
        await channel.send(messages.make())
    assert "HTTP 400" in str(refused.value)
    assert "Mottaker finnes ikke i Enhetsregisteret" in str(refused.value)
    assert "errorId" in str(refused.value)


async def test_wrong_integration_password_is_retried_not_blamed_on_the_message(
    make_channel: Any, messages: Any
) -> None:
    channel = await make_channel(integration_password="feil")
    with pytest.raises(TransientError, match=r"HTTP 401 .*Ukjent integrasjon"):
        await channel.send(messages.make())


async def test_an_account_the_integration_may_not_use_is_permanent(
    make_channel: Any, messages: Any, svarut: Any
) -> None:
    channel = await make_channel(account_id=svarut.receiver.konto_id)
    with pytest.raises(PermanentError, match=r"HTTP 403 .*har ikke tilgang"):
        await channel.send(messages.make())


async def test_a_slow_answer_times_out_as_transient(
    make_channel: Any, messages: Any, svarut: Any
) -> None:
    channel = await make_channel(request_timeout=0.3)
    svarut.fake.faults.slow("eksternref", 2.0)
    with pytest.raises(TransientError, match="eksternRef search"):
        await channel.send(messages.make())


async def test_a_send_svarut_stops_taking_fails_after_the_stall_timeout(kit: Any) -> None:
    """A SvarUt that no longer reads the upload leaves aiohttp writing for ever (its read
    timeout starts only once the body is sent): the send fails once its bytes stand still."""
    held: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def chunks() -> AsyncIterator[bytes]:
        yield kit.pdf
        for _ in range(64):
            yield bytes(1 << 20)

    try:
        async with aiohttp.ClientSession() as session:
            client = SvarUtClient(
                session, base_url=f"http://127.0.0.1:{port}", account_id=str(uuid.uuid4()),
                integration_id=str(uuid.uuid4()), integration_password="x",
                tokens=kit.tokens(), stall_timeout=0.5,
            )
            started = time.monotonic()
            with pytest.raises(TransientError, match="SvarUt send: the upload stood still"):
                await client.send({"tittel": "Stor"},
                                  [UploadDocument("stor.pdf", "application/pdf", chunks)])
            assert time.monotonic() - started < 4
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_no_svarut_at_all_is_transient(make_channel: Any, messages: Any) -> None:
    channel = await make_channel(svarut_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match="ClientConnectorError"):
        await channel.send(messages.make())


async def test_a_cut_answer_is_transient(channel: Any, messages: Any, svarut: Any) -> None:
    message = messages.make()
    reference = (await channel.send(message)).external_reference
    svarut.fake.faults.truncate("status")
    with pytest.raises(TransientError, match="status search"):
        await channel.poll_statuses([messages.pollable(message, reference)])


async def test_a_token_svarut_does_not_accept_is_retried(
    channel: Any, messages: Any, svarut: Any
) -> None:
    def verify(token: str) -> bool:
        raise ValueError("the token lacks scope ks:fiks")

    svarut.fake.token_check = verify
    with pytest.raises(TransientError, match="Ugyldig Maskinporten-token: the token lacks scope"):
        await channel.send(messages.make())

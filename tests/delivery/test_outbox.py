"""The outbox workers against a channel that fails in scripted ways."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

from delivery_harness import avtalt
from ipunkt import testing
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.outbox import Outbox
from ipunkt.delivery.settings import DeliverySettings
from ipunkt.messages.statuses import StatusRules
from ipunkt.sbd import parse_sbd
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import Direction, NewMessage, StatusChange
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import Keyring, MasterKey
from ipunkt.store.sqlite import SqliteStore


async def test_a_message_is_sent_once_and_leaves_the_outbox(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("ok"))
    assert await gateway.wait_for(message_id, "SENDT") == ["OPPRETTET", "SENDT"]
    assert gateway.remote.delivered == [message_id]
    response = await gateway.client.get(f"/api/messages/out/{message_id}")
    assert response.status == 404
    conversation = await (await gateway.client.get(
        f"/api/conversations/messageId/{message_id}")).json()
    assert conversation["messageStatuses"][-1]["status"] == "SENDT"


async def test_transient_failures_are_retried_until_success(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("transient,transient,retry-after:0.2,ok"))
    await gateway.wait_for(message_id, "SENDT")
    assert gateway.remote.attempts[message_id] == 4
    assert gateway.remote.delivered == [message_id]


async def test_a_permanent_failure_is_feil_at_once_with_the_reason(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("permanent"))
    names = await gateway.wait_for(message_id, "FEIL")
    assert names == ["OPPRETTET", "FEIL"]
    feil = (await gateway.statuses(message_id))[-1]
    assert feil["description"] == "remote answered 400: receiver has no inbox"
    assert gateway.remote.attempts[message_id] == 1
    conversation = await (await gateway.client.get(
        f"/api/conversations/messageId/{message_id}")).json()
    assert conversation["finished"] is True


async def test_timeouts_and_channel_bugs_are_retried(make_gateway) -> None:
    gateway = await make_gateway(send_timeout_seconds=0.2)
    hung = await gateway.send(avtalt("hang,ok"))
    crashed = await gateway.send(avtalt("crash,ok"))
    await gateway.wait_for(hung, "SENDT")
    await gateway.wait_for(crashed, "SENDT")
    assert gateway.remote.attempts[hung] == 2
    assert gateway.remote.attempts[crashed] == 2


async def test_retries_stop_when_the_lifetime_ends(make_gateway) -> None:
    gateway = await make_gateway(retry_initial_seconds=1, retry_max_seconds=1)
    expires = now_oslo() + timedelta(seconds=1.5)
    message_id = await gateway.send(avtalt("transient", expires=expires))
    names = await gateway.wait_for(message_id, "LEVETID_UTLOPT")
    assert names == ["OPPRETTET", "LEVETID_UTLOPT"]
    assert gateway.remote.delivered == []
    assert 1 <= gateway.remote.attempts[message_id] <= 2


async def test_a_slow_channel_does_not_hold_up_other_messages(make_gateway) -> None:
    gateway = await make_gateway(concurrency=4)
    slow = await gateway.send(avtalt("slow:1.5"))
    quick = [await gateway.send(avtalt("ok")) for _ in range(3)]
    for message_id in quick:
        await gateway.wait_for(message_id, "SENDT", timeout=1.2)
    assert "SENDT" not in await gateway.status_names(slow)
    await gateway.wait_for(slow, "SENDT")


async def test_a_burst_is_each_delivered_exactly_once(make_gateway) -> None:
    gateway = await make_gateway(concurrency=8)
    sent = await asyncio.gather(*(gateway.send(avtalt("ok")) for _ in range(60)))
    for message_id in sent:
        await gateway.wait_for(message_id, "SENDT")
    assert sorted(gateway.remote.delivered) == sorted(sent)


async def test_metrics_count_sends_and_queue_depth(make_gateway) -> None:
    gateway = await make_gateway()
    ok = await gateway.send(avtalt("ok"))
    failed = await gateway.send(avtalt("permanent"))
    await gateway.wait_for(ok, "SENDT")
    await gateway.wait_for(failed, "FEIL")
    response = await gateway.client.get("/manage/prometheus")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'ipunkt_sends_total{channel="DPT",outcome="sent"} 1.0' in text
    assert 'ipunkt_sends_total{channel="DPT",outcome="failed"} 1.0' in text
    assert "ipunkt_send_seconds_count" in text
    assert "ipunkt_outbox_depth" in text


async def test_a_claim_that_returns_after_stop_is_handed_back_unsent(tmp_path) -> None:
    """stop() comes while a claim is on its way (its commit, say): the claimed message must
    not be sent after stop() released the leases (it would be sent again after a restart)."""
    store = SqliteStore(tmp_path / "db.sqlite3",
                        BlobStore(tmp_path / "payloads", Keyring(MasterKey(b"o" * 32))))
    await store.open()
    now = now_oslo()
    message_id = "5f0a4b4e-1111-4222-8333-444455556666"
    text = parse_sbd(testing.sbd("910075918", message_id, sender="910077473",
                                 conversation_id="5f0a4b4e-1111-4222-8333-444455556667")).to_text()
    await store.create_message(
        NewMessage(Direction.OUTGOING, message_id, "c1", "p", "arkivmelding", "d", None, None,
                   None, None, "DPO", text, now + timedelta(days=1)),
        StatusChange("OPPRETTET", now), queue_at=now)
    sent: list[str] = []

    class Channel:
        status_poll_interval = None

        async def send(self, message):
            sent.append(message.message_id)
            return SimpleNamespace(statuses=[], external_reference=None)

    class Router:
        async def route(self, **_):
            return SimpleNamespace(service="DPO", record=None)

    claim = store.claim_due
    claimed = asyncio.Event()

    async def slow_claim(*args):
        claims = await claim(*args)
        claimed.set()
        await asyncio.sleep(0.2)
        return claims

    store.claim_due = slow_claim  # type: ignore[method-assign]
    outbox = Outbox(store, SimpleNamespace(states={"DPO": SimpleNamespace(channel=Channel())}),
                    Router(), StatusRules(), DeliverySettings(),
                    Metrics(store.outbox_depth))
    running = asyncio.ensure_future(outbox.run())
    await asyncio.wait_for(claimed.wait(), 5)
    await outbox.stop()
    await asyncio.wait_for(running, 5)
    await asyncio.sleep(0.3)
    assert sent == []
    store.claim_due = claim  # type: ignore[method-assign]
    again = await store.claim_due("next", now_oslo(), now_oslo() + timedelta(minutes=1), 5)
    assert [c.message.message_id for c in again] == [message_id]
    await store.close()

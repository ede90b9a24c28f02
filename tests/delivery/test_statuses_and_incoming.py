"""Statuses from polling and from receipts, incoming messages, and lifetimes that run out."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from delivery_harness import OWN, RECEIVER, RESPONSE_PROCESS, avtalt
from ipunkt.delivery.inbound import ChannelSink
from ipunkt.plugin import IncomingMessage, PermanentError, ReceiptStatus, StatusUpdate
from ipunkt.sbd.times import now_oslo
from ipunkt.store.base import StoreError


def reply(kind: str, body: dict, *, message_id: str | None = None,
          conversation_id: str | None = None, expires: str | None = None) -> dict:
    standards = {
        "status": "urn:no:difi:eformidling:xsd::status",
        "arkivmelding_kvittering": "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
        "avtalt": "urn:no:difi:avtalt:xsd::avtalt",
    }
    scope = {"type": "ConversationId", "instanceIdentifier": conversation_id or str(uuid.uuid4()),
             "identifier": RESPONSE_PROCESS if kind != "avtalt"
             else "urn:no:difi:profile:avtalt:avtalt:ver1.0",
             "scopeInformation": [{"expectedResponseDateTime": expires or
                                   (now_oslo() + timedelta(hours=1)).isoformat()}]}
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"value": f"0192:{RECEIVER}",
                                       "authority": "iso6523-actorid-upis"}}],
            "receiver": [{"identifier": {"value": f"0192:{OWN}",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {"standard": standards[kind], "typeVersion": "1.0",
                                       "instanceIdentifier": message_id or str(uuid.uuid4()),
                                       "type": kind},
            "businessScope": {"scope": [scope]},
        },
        kind: body,
    }


async def chunks(data: bytes):
    yield data


async def test_polled_statuses_insert_mottatt_before_levert(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("ok"))
    await gateway.wait_for(message_id, "SENDT")
    gateway.remote.statuses[message_id] = [StatusUpdate(message_id, ReceiptStatus.LEVERT)]
    names = await gateway.wait_for(message_id, "LEVERT")
    assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    gateway.remote.statuses[message_id] = [
        StatusUpdate(message_id, ReceiptStatus.LEST),
        StatusUpdate(message_id, ReceiptStatus.LEST),
    ]
    names = await gateway.wait_for(message_id, "LEST")
    assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]
    conversation = await (await gateway.client.get(
        f"/api/conversations/messageId/{message_id}")).json()
    assert conversation["finished"] is True
    polled_before = len(gateway.remote.polled)
    await asyncio.sleep(0.3)
    assert all(message_id not in batch for batch in gateway.remote.polled[polled_before:])


async def test_a_message_delivered_at_send_is_polled_until_read(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("delivered"))
    assert await gateway.wait_for(message_id, "LEVERT") == [
        "OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    gateway.remote.statuses[message_id] = [StatusUpdate(message_id, ReceiptStatus.LEST)]
    names = await gateway.wait_for(message_id, "LEST")
    assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]


async def test_stop_polling_when_the_remote_says_so(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("ok"))
    await gateway.wait_for(message_id, "SENDT")
    gateway.remote.statuses[message_id] = [
        StatusUpdate(message_id, ReceiptStatus.ANNET, "Melding slettet i Altinn, stopper polling.",
                     stop_polling=True)]
    await gateway.wait_for(message_id, "ANNET")
    await asyncio.sleep(0.2)
    queue = await (await gateway.client.get("/api/conversations/queue")).json()
    assert message_id not in [c["messageId"] for c in queue["content"]]


async def test_idle_conversations_are_polled_less_often(make_gateway) -> None:
    gateway = await make_gateway()
    poller = gateway.engine.status_pollers["DPT"]
    conversation = type("C", (), {"last_update": now_oslo()})
    fresh = poller.next_interval(conversation, now_oslo())
    conversation.last_update = now_oslo() - timedelta(days=15)
    half = poller.next_interval(conversation, now_oslo())
    conversation.last_update = now_oslo() - timedelta(days=90)
    idle = poller.next_interval(conversation, now_oslo())
    assert fresh.total_seconds() < 1
    assert 29 * 60 < half.total_seconds() < 31 * 60
    assert idle == timedelta(minutes=60)


async def test_incoming_message_is_stored_then_confirmed_and_duplicates_dropped(
    make_gateway,
) -> None:
    gateway = await make_gateway()
    message_id = str(uuid.uuid4())
    sbd = reply("avtalt", {"identifier": "x", "content": {}}, message_id=message_id)
    gateway.remote.inbox.append(IncomingMessage(sbd, chunks(b"PK asic bytes")))
    gateway.remote.inbox.append(IncomingMessage(sbd, chunks(b"PK asic bytes")))
    for _ in range(100):
        if len(gateway.remote.confirmed) == 2:
            break
        await asyncio.sleep(0.05)
    assert gateway.remote.confirmed == [message_id, message_id]
    page = await (await gateway.client.get("/api/messages/in")).json()
    assert [m["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
            for m in page["content"]] == [message_id]
    assert await gateway.status_names(message_id) == ["OPPRETTET", "INNKOMMENDE_MOTTATT"]
    peeked = await gateway.client.get("/api/messages/in/peek")
    assert peeked.status == 200
    popped = await gateway.client.get(f"/api/messages/in/pop/{message_id}")
    assert await popped.read() == b"PK asic bytes"
    deleted = await gateway.client.delete(f"/api/messages/in/{message_id}")
    assert deleted.status == 200
    assert (await gateway.status_names(message_id))[-1] == "INNKOMMENDE_LEVERT"
    await _replies(gateway, 2)
    assert gateway.remote.replies == [(message_id, "MOTTATT"), (message_id, "LEVERT")]


async def _replies(gateway, count: int) -> None:
    for _ in range(200):
        if len(gateway.remote.replies) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"replies sent: {gateway.remote.replies}")


async def test_a_status_reply_that_fails_is_sent_later(make_gateway) -> None:
    gateway = await make_gateway()
    gateway.remote.reply_failures = 2
    message_id = str(uuid.uuid4())
    sbd = reply("avtalt", {"identifier": "x", "content": {}}, message_id=message_id)
    gateway.remote.inbox.append(IncomingMessage(sbd, chunks(b"PK asic bytes")))
    await _replies(gateway, 1)
    assert gateway.remote.replies == [(message_id, "MOTTATT")]
    assert gateway.remote.reply_failures == 0


async def test_status_replies_survive_a_restart(make_gateway) -> None:
    gateway = await make_gateway(retry_initial_seconds=1)
    gateway.remote.reply_failures = 1
    message_id = str(uuid.uuid4())
    sbd = reply("avtalt", {"identifier": "x", "content": {}}, message_id=message_id)
    gateway.remote.inbox.append(IncomingMessage(sbd, chunks(b"PK asic bytes")))
    for _ in range(200):
        if gateway.remote.reply_failures == 0:
            break
        await asyncio.sleep(0.02)
    await gateway.client.close()
    assert gateway.remote.replies == [], "the reply waits a second before its retry"

    again = await make_gateway()
    await _replies(again, 1)
    assert again.remote.replies == [(message_id, "MOTTATT")]


async def test_status_messages_update_the_conversation_and_are_not_queued(make_gateway) -> None:
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("ok"))
    await gateway.wait_for(message_id, "SENDT")
    gateway.remote.inbox.append(IncomingMessage(reply("status", {"status": "LEVERT"},
                                                      message_id=message_id)))
    names = await gateway.wait_for(message_id, "LEVERT")
    assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    page = await (await gateway.client.get("/api/messages/in")).json()
    assert page["content"] == []
    await asyncio.sleep(0.2)
    assert gateway.remote.replies == [], "a status is never answered"


async def test_arkivmelding_receipts_make_the_original_lest_or_feil(make_gateway) -> None:
    gateway = await make_gateway()
    good = await gateway.send(avtalt("ok"))
    bad = await gateway.send(avtalt("ok"))
    await gateway.wait_for(good, "SENDT")
    await gateway.wait_for(bad, "SENDT")
    for original, receipt in ((good, "OK"), (bad, "ERROR")):
        gateway.remote.inbox.append(IncomingMessage(reply(
            "arkivmelding_kvittering",
            {"receiptType": receipt, "relatedToMessageId": original, "messages": []},
        )))
    await gateway.wait_for(good, "LEST")
    await gateway.wait_for(bad, "FEIL")
    feil = (await gateway.statuses(bad))[-1]
    assert feil["description"] == "ArkivmeldingKvittering: ERROR"
    page = await (await gateway.client.get("/api/messages/in")).json()
    assert len(page["content"]) == 2


async def test_a_malformed_incoming_sbd_is_refused_with_a_reason(make_gateway) -> None:
    gateway = await make_gateway()
    sink: ChannelSink = gateway.engine.incoming_pollers["DPT"].sink
    with pytest.raises(PermanentError, match="the incoming SBD is not valid"):
        await sink.receive(IncomingMessage({"standardBusinessDocumentHeader": "nonsense"}))
    page = await (await gateway.client.get("/api/messages/in")).json()
    assert page["content"] == []


async def test_lifetimes_run_out_in_both_directions(make_gateway) -> None:
    gateway = await make_gateway(retry_initial_seconds=30, retry_max_seconds=30)
    soon = (now_oslo() + timedelta(seconds=1)).isoformat()
    incoming_id = str(uuid.uuid4())
    sbd = reply("avtalt", {"identifier": "x", "content": {}}, message_id=incoming_id,
                expires=soon)
    gateway.remote.inbox.append(IncomingMessage(sbd, chunks(b"asic")))
    outgoing = avtalt("ok")
    outgoing["standardBusinessDocumentHeader"]["businessScope"]["scope"][0][
        "scopeInformation"] = [{"expectedResponseDateTime": soon}]
    response = await gateway.client.post("/api/messages/out", json=outgoing)
    assert response.status == 200
    outgoing_id = outgoing["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"]
    await gateway.wait_for(incoming_id, "LEVETID_UTLOPT")
    await gateway.wait_for(outgoing_id, "LEVETID_UTLOPT")
    description = (await gateway.statuses(incoming_id))[-1]["description"]
    assert description == "Levetiden for meldingen er utgått. Må sendes på nytt"
    page = await (await gateway.client.get("/api/messages/in")).json()
    assert page["content"] == []
    assert (await gateway.client.get(f"/api/messages/out/{outgoing_id}")).status == 404
    assert json.loads(await (await gateway.client.get(
        f"/api/conversations/messageId/{outgoing_id}")).text())["finished"] is True


async def test_a_busy_channel_is_polled_again_at_once() -> None:
    from ipunkt.delivery.inbound import IncomingPoller
    from ipunkt.delivery.metrics import Metrics

    class Sink:
        received = 0

        async def receive(self, message: IncomingMessage) -> bool:
            self.received += 1
            return True

    class OneAtATime:
        """Hands over one waiting message per poll, as a remote that lists one at a time."""

        incoming_poll_interval = 30.0
        waiting = 3

        async def poll_incoming(self, sink: Sink) -> None:
            if self.waiting:
                self.waiting -= 1
                await sink.receive(IncomingMessage({}))

    async def depth() -> dict[str, int]:
        return {}

    sink, channel = Sink(), OneAtATime()
    poller = IncomingPoller("DPT", channel, sink, Metrics(depth))  # type: ignore[arg-type]
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.5)
    task.cancel()
    assert sink.received == 3, "the poller waited the interval between busy polls"


@pytest.mark.parametrize("loop", ["incoming", "status"])
async def test_a_remote_failing_for_now_is_a_warning_and_a_bug_a_traceback(loop: str) -> None:
    """A channel's TransientError while polling is the remote side's passing trouble: it is
    logged as a warning with the reason, not as an error with a traceback (which a bug gets),
    and polling goes on either way."""
    import structlog
    from ipunkt.delivery.inbound import IncomingPoller
    from ipunkt.delivery.metrics import Metrics
    from ipunkt.delivery.settings import DeliverySettings
    from ipunkt.delivery.status_polling import StatusPoller
    from ipunkt.plugin import TransientError

    class Failing:
        incoming_poll_interval = 0.01
        status_poll_interval = 0.01
        polls = 0

        def poll(self) -> None:
            self.polls += 1
            if self.polls == 1:
                raise TransientError("SvarInn hentNyeForsendelser: HTTP 503")
            if self.polls == 2:
                raise KeyError("a bug")

        async def poll_incoming(self, sink: object) -> None:
            self.poll()

    class Poller(StatusPoller):
        async def poll_once(self) -> int:
            channel.poll()
            return 0

    class Sink:
        received = 0

    async def depth() -> dict[str, int]:
        return {}

    channel = Failing()
    metrics = Metrics(depth)
    poller = (
        IncomingPoller("DPT", channel, Sink(), metrics)  # type: ignore[arg-type]
        if loop == "incoming" else
        Poller("DPT", channel, None, None, DeliverySettings(), metrics)  # type: ignore[arg-type]
    )
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(0.2)
        task.cancel()
    failures = [e for e in logs if "polling" in e["event"] and "failed" in e["event"]]
    assert [(e["log_level"], e.get("error"), "exc_info" in e) for e in failures] == [
        ("warning", "SvarInn hentNyeForsendelser: HTTP 503", False),
        ("error", None, True),
    ]
    assert channel.polls > 2


async def test_a_status_that_brings_a_receipt_counts_only_once_the_receipt_is_stored(
    make_gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the integration point died between the two: storing the receipt fails, so the
    status is not registered either, and the next poll brings both (DPV's receipt on LEVERT)."""
    gateway = await make_gateway()
    message_id = await gateway.send(avtalt("ok"))
    await gateway.wait_for(message_id, "SENDT")
    store = gateway.engine.store
    create = store.create_message
    failed = asyncio.Event()

    async def fail_once(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise RuntimeError("the disk went away")
        return await create(*args, **kwargs)

    monkeypatch.setattr(store, "create_message", fail_once)
    receipt_id = str(uuid.uuid4())
    receipt = IncomingMessage(reply(
        "arkivmelding_kvittering",
        {"receiptType": "OK", "relatedToMessageId": message_id, "messages": []},
        message_id=receipt_id,
    ))
    levert = StatusUpdate(message_id, ReceiptStatus.LEVERT, incoming=receipt)
    gateway.remote.statuses[message_id] = [levert]
    await asyncio.wait_for(failed.wait(), 5)
    await asyncio.sleep(0.3)
    assert "LEVERT" not in await gateway.status_names(message_id)
    gateway.remote.statuses[message_id] = [levert]
    await gateway.wait_for(message_id, "LEVERT")
    page = await (await gateway.client.get("/api/messages/in")).json()
    assert [m["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
            for m in page["content"]] == [receipt_id]


async def test_status_replies_go_on_after_the_store_fails_to_claim_them(
    make_gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await make_gateway()
    store = gateway.engine.store
    claim = store.claim_replies
    failed = asyncio.Event()

    async def fail_once(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise StoreError("the database refused the change: disk I/O error")
        return await claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_replies", fail_once)
    await asyncio.wait_for(failed.wait(), 5)
    message_id = str(uuid.uuid4())
    sbd = reply("avtalt", {"identifier": "x", "content": {}}, message_id=message_id)
    gateway.remote.inbox.append(IncomingMessage(sbd, chunks(b"PK asic bytes")))
    await _replies(gateway, 1)
    assert gateway.remote.replies == [(message_id, "MOTTATT")]

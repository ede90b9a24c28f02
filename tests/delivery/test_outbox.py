"""The outbox workers against a channel that fails in scripted ways."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from delivery_harness import avtalt
from ipunkt.sbd.times import now_oslo


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

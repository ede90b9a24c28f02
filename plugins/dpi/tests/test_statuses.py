"""Statuses and receipts: the access point's status list and the signed receipts in the inbox."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ipunkt.plugin import ReceiptStatus
from ipunkt_dpi.fake import Fault, Step
from structlog.testing import capture_logs

S = ReceiptStatus


async def _send(channel: Any, fake: Any, kit: Any, kind: str = "digital", **body: Any) -> Any:
    if kind == "digital":
        outgoing = kit.message(
            "digital",
            kit.service_record(fake),
            kit.digital_body(**body),
            [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        )
    else:
        outgoing = kit.message(
            "print",
            kit.service_record(fake, printing=True),
            kit.print_body(**body),
            [kit.attachment("brev.pdf", kit.PDF, primary=True)],
        )
    await channel.send(outgoing)
    return outgoing


def _statuses(updates: Any) -> list[ReceiptStatus]:
    return [u.status for u in updates]


async def test_digital_post_reaches_levert_and_with_aapningskvittering_lest(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    opened = await _send(
        channel,
        fake,
        kit,
        digitalPostInfo={"virkningsdato": "2026-12-01", "aapningskvittering": True},
    )
    plain = await _send(channel, fake, kit)
    updates = await channel.poll_statuses([kit.conversation(opened), kit.conversation(plain)])

    by_message: dict[str, list[Any]] = {}
    for update in updates:
        by_message.setdefault(update.message_id, []).append(update)
    assert _statuses(by_message[opened.message_id]) == [S.MOTTATT, S.LEVERT, S.LEST]
    assert _statuses(by_message[plain.message_id]) == [S.MOTTATT, S.LEVERT]
    mottatt, levert, lest = by_message[opened.message_id]
    assert mottatt.description == "Hjørne 3 har mottatt meldingen"
    assert levert.description.startswith("Kvittering på at digital post er tilgjengeliggjort")
    assert json.loads(levert.raw_receipt)["standardBusinessDocument"]["leveringskvittering"]
    assert not levert.stop_polling
    assert lest.stop_polling
    assert json.loads(lest.raw_receipt)["standardBusinessDocument"]["aapningskvittering"]


async def test_receipts_are_marked_read_on_the_next_poll_and_not_applied_twice(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    sent = await _send(channel, fake, kit)
    first = await channel.poll_statuses([kit.conversation(sent)])
    assert _statuses(first) == [S.MOTTATT, S.LEVERT]
    assert [entry.read for entry in fake.inbox] == [False]

    second = await channel.poll_statuses([kit.conversation(sent, S.SENDT, S.MOTTATT, S.LEVERT)])
    assert second == []
    assert [entry.read for entry in fake.inbox] == [True]


async def test_a_receipt_seen_again_before_it_was_marked_read_maps_to_nothing_new(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    sent = await _send(channel, fake, kit)
    fake.add_fault(Fault(status=503, method="POST", path="/read"))
    await channel.poll_statuses([kit.conversation(sent)])
    stored = kit.conversation(sent, S.SENDT, S.MOTTATT, S.LEVERT)
    assert await channel.poll_statuses([stored]) == []
    assert not fake.inbox[0].read
    assert not (await channel.health()).ok
    assert await channel.poll_statuses([stored]) == []
    assert fake.inbox[0].read
    assert (await channel.health()).ok


async def test_print_reaches_levert_through_the_print_receipt_then_returned_mail_is_feil(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    fake.script(
        "Kari Nordmann",
        [Step("SENDT"), Step("mottakskvittering"), Step("returpostkvittering", after=0.3)],
    )
    sent = await _send(channel, fake, kit, kind="print")
    updates = await channel.poll_statuses([kit.conversation(sent)])
    assert _statuses(updates) == [S.MOTTATT, S.LEVERT]
    assert updates[1].description.startswith(
        "Kvittering fra utskrift og forsendelsestjenesten om at melding er mottatt"
    )

    await asyncio.sleep(0.35)
    later = await channel.poll_statuses([kit.conversation(sent, S.SENDT, S.MOTTATT, S.LEVERT)])
    assert _statuses(later) == [S.FEIL]
    assert "ikke har blitt levert til Mottaker" in later[0].description
    assert later[0].stop_polling
    assert json.loads(later[0].raw_receipt)["standardBusinessDocument"]["returpostkvittering"]


async def test_error_receipts_become_feil_with_their_details(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    unnotified = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(
        unnotified.conversation_id,
        [
            Step("SENDT"),
            Step("leveringskvittering"),
            Step(
                "varslingfeiletkvittering", varslingskanal="epost", detail="Ugyldig e-postadresse"
            ),
        ],
    )
    broken = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(
        broken.conversation_id, [Step("feil", feiltype="KLIENT", detail="Postkassen er slettet")]
    )
    await channel.send(unnotified)
    await channel.send(broken)

    updates = await channel.poll_statuses([kit.conversation(m) for m in (unnotified, broken)])
    found = {(u.message_id, u.status): u for u in updates}
    assert _statuses(updates) == [S.MOTTATT, S.LEVERT, S.FEIL, S.FEIL]
    notice = found[(unnotified.message_id, S.FEIL)]
    assert notice.description == (
        "Kvittering for at en spesifisert varsling ikke har blitt sendt (epost): "
        "Ugyldig e-postadresse"
    )
    error = found[(broken.message_id, S.FEIL)]
    assert error.description == (
        "Generell melding om at det har skjedd en feil (KLIENT): Postkassen er slettet"
    )
    assert error.stop_polling


async def test_feilet_at_the_access_point_is_feil(make_channel: Any, fake: Any, kit: Any) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(outgoing.message_id, [Step("FEILET", detail="Mottakers aksesspunkt svarer ikke")])
    await channel.send(outgoing)
    (update,) = await channel.poll_statuses([kit.conversation(outgoing)])
    assert update.status is S.FEIL
    assert update.description.endswith(": Mottakers aksesspunkt svarer ikke")
    assert update.stop_polling


async def test_leveringskvittering_before_the_access_point_said_sendt_adds_mottatt_first(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(outgoing.message_id, [Step("leveringskvittering")])
    await channel.send(outgoing)
    updates = await channel.poll_statuses([kit.conversation(outgoing)])
    assert _statuses(updates) == [S.MOTTATT, S.LEVERT]


async def test_steps_happen_on_their_schedule(make_channel: Any, fake: Any, kit: Any) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(kit.CITIZEN, [Step("SENDT", after=0.2), Step("leveringskvittering", after=0.2)])
    await channel.send(outgoing)
    assert await channel.poll_statuses([kit.conversation(outgoing)]) == []
    await asyncio.sleep(0.25)
    assert _statuses(await channel.poll_statuses([kit.conversation(outgoing)])) == [S.MOTTATT]
    await asyncio.sleep(0.2)
    stored = kit.conversation(outgoing, S.SENDT, S.MOTTATT)
    assert _statuses(await channel.poll_statuses([stored])) == [S.LEVERT]


async def test_receipts_with_a_bad_signature_are_refused_logged_and_left_unread(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    with capture_logs() as logs:
        channel = await make_channel()
        outgoing = kit.message(
            "digital",
            kit.service_record(fake),
            kit.digital_body(),
            [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        )
        fake.script(
            outgoing.message_id,
            [
                Step("leveringskvittering", signature="untrusted"),
                Step("aapningskvittering", signature="tampered"),
            ],
        )
        await channel.send(outgoing)
        assert await channel.poll_statuses([kit.conversation(outgoing)]) == []
        assert await channel.poll_statuses([kit.conversation(outgoing)]) == []
    refused = [e for e in logs if e["event"] == "DPI receipt refused and left unread"]
    assert len(refused) == 2, logs
    assert all(e["log_level"] == "error" for e in refused)
    assert "not trusted" in refused[0]["reason"]
    assert "does not verify" in refused[1]["reason"]
    assert [entry.read for entry in fake.inbox] == [False, False]


async def test_receipts_wait_for_the_poll_that_has_their_conversation(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    first = await _send(channel, fake, kit)
    second = await _send(channel, fake, kit)
    batch = await channel.poll_statuses([kit.conversation(first)])
    assert {u.message_id for u in batch} == {first.message_id}
    await channel.poll_statuses([kit.conversation(first, S.SENDT, S.MOTTATT, S.LEVERT)])
    assert {e.conversation_id: e.read for e in fake.inbox} == {
        first.conversation_id: True,
        second.conversation_id: False,
    }
    later = await channel.poll_statuses([kit.conversation(second)])
    assert _statuses(later) == [S.MOTTATT, S.LEVERT]
    assert all(u.message_id == second.message_id for u in later)


async def test_receipts_no_poll_claims_are_dropped_after_a_while(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    with capture_logs() as logs:
        channel = await make_channel(unmatched_receipt_hours=0.0001)
        await _send(channel, fake, kit)
        assert await channel.poll_statuses([]) == []
        assert [entry.read for entry in fake.inbox] == [False]
        await asyncio.sleep(0.4)
        await channel.poll_statuses([])
        await channel.poll_statuses([])
    assert [entry.read for entry in fake.inbox] == [True]
    assert any("no poll claimed" in e["event"] for e in logs)


async def test_each_kanal_gets_only_its_own_receipts(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    first = await make_channel(kanal="ip-1")
    second = await make_channel(kanal="IP-2")
    mine = await _send(first, fake, kit)
    theirs = await _send(second, fake, kit)
    both = [kit.conversation(mine), kit.conversation(theirs)]
    seen_by_first = await first.poll_statuses(both)
    assert {u.message_id for u in seen_by_first if u.status is S.LEVERT} == {mine.message_id}
    await first.poll_statuses(both)
    assert {e.conversation_id: e.read for e in fake.inbox} == {
        mine.conversation_id: True,
        theirs.conversation_id: False,
    }


async def test_receipts_are_fetched_per_avsenderidentifikator(
    make_channel: Any, fake: Any, kit: Any, recorder: Any
) -> None:
    channel = await make_channel(
        avsenderidentifikatorer=("skatt-innkreving",), poll_without_avsenderidentifikator=False
    )
    named = await _send(channel, fake, kit, avsenderId="skatt-innkreving")
    anonymous = await _send(channel, fake, kit)
    updates = await channel.poll_statuses([kit.conversation(named), kit.conversation(anonymous)])
    assert {u.message_id for u in updates if u.status is S.LEVERT} == {named.message_id}
    inbox_requests = [e for e in recorder.exchanges if e.url.path.endswith("/messages/in")]
    assert [dict(e.url.query) for e in inbox_requests] == [
        {
            "page_size": "100",
            "kanal": "no_difi_move_integrasjonspunkt",
            "avsenderidentifikator": "skatt-innkreving",
        }
    ]


async def test_access_point_statuses_are_not_asked_once_the_receiver_has_the_message(
    make_channel: Any, fake: Any, kit: Any, recorder: Any
) -> None:
    channel = await make_channel()
    sent = await _send(channel, fake, kit)
    await channel.poll_statuses([kit.conversation(sent, S.SENDT, S.MOTTATT)])
    assert not [e for e in recorder.exchanges if e.url.path.endswith("/statuses")]


async def test_a_failing_access_point_is_reported_and_the_poll_goes_on(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    sent = await _send(channel, fake, kit)
    fake.add_fault(Fault(status=502, method="GET", path="/messages/in"))
    updates = await channel.poll_statuses([kit.conversation(sent)])
    assert _statuses(updates) == [S.MOTTATT]
    health = await channel.health()
    assert not health.ok
    assert "HTTP 502" in health.detail
    later = await channel.poll_statuses([kit.conversation(sent, S.SENDT, S.MOTTATT)])
    assert _statuses(later) == [S.LEVERT]
    assert (await channel.health()).ok


async def test_a_truncated_answer_is_transient_and_retried(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(outgoing.message_id, [Step("SENDT")])
    await channel.send(outgoing)
    fake.add_fault(Fault(kind="truncate", method="GET", path="/statuses"))
    assert await channel.poll_statuses([kit.conversation(outgoing)]) == []
    health = await channel.health()
    assert not health.ok
    assert "give statuses failed" in health.detail
    assert _statuses(await channel.poll_statuses([kit.conversation(outgoing)])) == [S.MOTTATT]

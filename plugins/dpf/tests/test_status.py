"""Statuses from SvarUt's status search: LEST, and FEIL with the reason, in batches."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from ipunkt.plugin import ReceiptStatus, TransientError
from ipunkt.sbd import header_violations, parse_sbd


async def _sent(channel: Any, messages: Any) -> tuple[Any, str]:
    message = messages.make()
    return message, (await channel.send(message)).external_reference


async def test_nothing_changes_while_the_forsendelse_waits(
    channel: Any, messages: Any, svarut: Any
) -> None:
    message, reference = await _sent(channel, messages)
    assert svarut.fake.forsendelser[reference].status == "KLAR_FOR_MOTTAK"
    assert await channel.poll_statuses([messages.pollable(message, reference)]) == []
    svarut.fake.set_status(reference, "VARSLET", "Varslet i Altinn")
    assert await channel.poll_statuses([messages.pollable(message, reference)]) == []


async def test_read_in_svarut_is_lest(channel: Any, messages: Any, svarut: Any) -> None:
    message, reference = await _sent(channel, messages)
    svarut.fake.set_status(reference, "LEST", "Lest i Altinn")

    (update,) = await channel.poll_statuses([messages.pollable(message, reference)])

    assert (update.message_id, update.status, update.stop_polling) == (
        message.message_id, ReceiptStatus.LEST, True
    )
    assert json.loads(update.raw_receipt)["status"] == "LEST"
    already = messages.pollable(message, reference,
                                (ReceiptStatus.SENDT, ReceiptStatus.LEVERT, ReceiptStatus.LEST))
    assert await channel.poll_statuses([already]) == []


@pytest.mark.parametrize(
    ("status", "explained"),
    [("AVVIST", "SvarUt refused the forsendelse (AVVIST)"),
     ("IKKE_LEVERT", "SvarUt could not deliver the forsendelse (IKKE_LEVERT)"),
     ("FEILET_UNDER_MOTTAK", "failed while it was being received (FEILET_UNDER_MOTTAK)")],
)
async def test_failures_are_feil_with_svarut_reason(
    status: str, explained: str, channel: Any, messages: Any, svarut: Any
) -> None:
    message, reference = await _sent(channel, messages)
    svarut.fake.set_status(reference, status, "Mottakers adresse er ukjent")

    (update,) = await channel.poll_statuses([messages.pollable(message, reference)])

    assert update.status is ReceiptStatus.FEIL
    assert update.stop_polling
    assert explained in update.description
    assert "Mottakers adresse er ukjent" in update.description


async def test_deleted_in_svarut_stops_polling(channel: Any, messages: Any, svarut: Any) -> None:
    message, reference = await _sent(channel, messages)
    svarut.fake.set_status(reference, "SLETTET")
    (update,) = await channel.poll_statuses([messages.pollable(message, reference)])
    assert (update.status, update.stop_polling) == (ReceiptStatus.ANNET, True)


async def test_statuses_are_searched_in_batches(
    make_channel: Any, messages: Any, svarut: Any
) -> None:
    channel = await make_channel(status_batch_size=2)
    sent = [await _sent(channel, messages) for _ in range(5)]
    for _, reference in sent:
        svarut.fake.set_status(reference, "LEST")

    updates = await channel.poll_statuses([messages.pollable(m, r) for m, r in sent])

    assert sorted(u.message_id for u in updates) == sorted(m.message_id for m, _ in sent)
    searches = svarut.sent("/status/sok")
    assert [len(json.loads(s.body)["id"]) for s in searches] == [2, 2, 1]


async def test_a_conversation_without_reference_is_found_by_its_message_id(
    channel: Any, messages: Any, svarut: Any
) -> None:
    message, reference = await _sent(channel, messages)
    svarut.fake.set_status(reference, "LEST")
    unknown = messages.make()

    updates = await channel.poll_statuses(
        [messages.pollable(message, None), messages.pollable(unknown, None)]
    )

    by_message = {u.message_id: u for u in updates}
    assert by_message[message.message_id].status is ReceiptStatus.LEST
    assert by_message[unknown.message_id].status is ReceiptStatus.FEIL
    assert by_message[unknown.message_id].description == "forsendelseId finnes ikke i SvarUt."


async def test_a_failed_search_keeps_what_other_batches_found(
    make_channel: Any, messages: Any, svarut: Any
) -> None:
    channel = await make_channel(status_batch_size=1)
    sent = [await _sent(channel, messages) for _ in range(2)]
    for _, reference in sent:
        svarut.fake.set_status(reference, "LEST")
    svarut.fake.faults.fail("status", 502)

    updates = await channel.poll_statuses([messages.pollable(m, r) for m, r in sent])
    assert [u.message_id for u in updates] == [sent[1][0].message_id]

    svarut.fake.faults.fail("status", 503, times=2)
    with pytest.raises(TransientError):
        await channel.poll_statuses([messages.pollable(m, r) for m, r in sent])


async def test_lest_brings_an_arkivmelding_kvittering_when_asked_for(
    make_channel: Any, messages: Any, svarut: Any, kit: Any
) -> None:
    quiet = await make_channel()
    asked = await make_channel(generate_arkivmelding_receipts=True)
    message, reference = await _sent(asked, messages)
    svarut.fake.set_status(reference, "LEST")
    conversation = replace(messages.pollable(message, reference),
                           document_type="urn:no:difi:arkivmelding:xsd::arkivmelding")

    (plain,) = await quiet.poll_statuses([conversation])
    (update,) = await asked.poll_statuses([conversation])
    (again,) = await asked.poll_statuses([conversation])

    assert plain.incoming is None
    assert update.status is ReceiptStatus.LEST
    receipt = update.incoming.sbd
    header = receipt["standardBusinessDocumentHeader"]
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.receiver}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{kit.sender}"
    assert header["documentIdentification"]["type"] == "arkivmelding_kvittering"
    assert receipt["arkivmelding_kvittering"] == {
        "receiptType": "OK", "relatedToMessageId": message.message_id, "messages": []
    }
    assert again.incoming.sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"] == header["documentIdentification"]["instanceIdentifier"]
    assert header_violations(parse_sbd(receipt), datetime.now(UTC)) == []

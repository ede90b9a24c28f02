"""Status polling: Altinn's overview becomes LEVERT, LEST or ANNET, for every Altinn status."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from ipunkt.plugin import PollableConversation, ReceiptStatus, StatusUpdate
from ipunkt.testing import specs_dir
from ipunkt_dpv.channel import NO_REFERENCE, DPVChannel
from ipunkt_dpv.fake import Fault, Lifecycle
from ipunkt_dpv.receipts import ARKIVMELDING_STANDARD, arkivmelding_kvittering, receipt_id
from ipunkt_dpv.spec_check import CorrespondenceSpec
from ipunkt_dpv.statuses import GONE, MEANINGS, updates_for
from jsonschema import Draft7Validator

from .conftest import BUSINESS, ORG, Altinn, outgoing

LEVERT, LEST, ANNET, SENDT = (ReceiptStatus.LEVERT, ReceiptStatus.LEST, ReceiptStatus.ANNET,
                              ReceiptStatus.SENDT)


def conversation(reference: str | None, *statuses: ReceiptStatus) -> PollableConversation:
    return PollableConversation(
        message_id=str(uuid.uuid4()), conversation_id=str(uuid.uuid4()), receiver=BUSINESS,
        external_reference=reference, statuses=statuses or (ReceiptStatus.OPPRETTET, SENDT))


async def sent(altinn: Altinn, channel: DPVChannel) -> PollableConversation:
    result = await channel.send(outgoing("digital_dpv"))
    return conversation(result.external_reference)


def summary(updates: list[StatusUpdate] | tuple[StatusUpdate, ...]) -> list[tuple[str, bool]]:
    return [(u.status.value, u.stop_polling) for u in updates]


EXPECTED = {
    "Initialized": [],
    "ReadyForPublish": [],
    "Published": [("LEVERT", False)],
    "Fetched": [("LEVERT", False)],
    "AttachmentsDownloaded": [("LEVERT", False)],
    "Archived": [("LEVERT", False)],
    "Read": [("LEVERT", False), ("LEST", False)],
    "Replied": [("LEVERT", False), ("LEST", False)],
    "Confirmed": [("LEVERT", False), ("LEST", False)],
    "PurgedByRecipient": [("ANNET", True)],
    "PurgedByAltinn": [("ANNET", True)],
    "Reserved": [("ANNET", True)],
    "Failed": [("ANNET", True)],
}


def test_every_status_altinn_publishes_has_a_meaning(spec: CorrespondenceSpec) -> None:
    published = spec.document["components"]["schemas"]["CorrespondenceStatusExt"]["enum"]
    assert set(MEANINGS) == set(published) == set(EXPECTED)


@pytest.mark.parametrize("status", list(EXPECTED))
async def test_each_altinn_status_over_http(altinn: Altinn, status: str) -> None:
    channel = await altinn.channel()
    polled = await sent(altinn, channel)
    assert polled.external_reference is not None
    altinn.fake.set_status(polled.external_reference, status)
    updates = await channel.poll_statuses([polled])
    assert summary(updates) == EXPECTED[status]
    assert all(u.message_id == polled.message_id for u in updates)
    if EXPECTED[status] and EXPECTED[status][0] == ("ANNET", True):
        assert updates[0].description


async def test_the_scripted_lifecycle_published_then_read_then_purged(altinn: Altinn) -> None:
    altinn.fake.lifecycle = Lifecycle(publish_after=10, read_after=30)
    channel = await altinn.channel()
    polled = await sent(altinn, channel)
    assert await channel.poll_statuses([polled]) == []
    altinn.clock.advance(10)
    assert summary(await channel.poll_statuses([polled])) == [("LEVERT", False)]
    polled = conversation(polled.external_reference, SENDT, LEVERT)
    assert await channel.poll_statuses([polled]) == []
    altinn.clock.advance(30)
    assert summary(await channel.poll_statuses([polled])) == [("LEST", False)]
    polled = conversation(polled.external_reference, SENDT, LEVERT, LEST)
    assert polled.external_reference is not None
    altinn.fake.purge(polled.external_reference)
    assert summary(await channel.poll_statuses([polled])) == [("ANNET", True)]


async def test_a_purge_before_reading_still_reports_the_delivery(altinn: Altinn) -> None:
    altinn.fake.lifecycle = Lifecycle(publish_after=0)
    channel = await altinn.channel()
    polled = await sent(altinn, channel)
    assert polled.external_reference is not None
    altinn.clock.advance(1)
    altinn.fake.purge(polled.external_reference, by_recipient=False)
    updates = await channel.poll_statuses([polled])
    assert summary(updates) == [("LEVERT", False), ("ANNET", True)]
    assert updates[1].description == "Meldingen er slettet av Altinn."


async def test_a_correspondence_altinn_forgot_gives_annet_and_stops(altinn: Altinn) -> None:
    channel = await altinn.channel()
    forgotten, gone_410 = await sent(altinn, channel), await sent(altinn, channel)
    assert forgotten.external_reference is not None
    altinn.fake.forget(forgotten.external_reference)
    assert [(u.status, u.description, u.stop_polling)
            for u in await channel.poll_statuses([forgotten])] == [(ANNET, GONE, True)]
    altinn.fake.inject(Fault("overview", status=410))
    assert [(u.status, u.description, u.stop_polling)
            for u in await channel.poll_statuses([gone_410])] == [(ANNET, GONE, True)]


async def test_without_a_correspondence_id_polling_stops_without_asking(altinn: Altinn) -> None:
    channel = await altinn.channel()
    updates = await channel.poll_statuses([conversation(None), conversation("not-a-uuid")])
    assert [(u.status, u.description, u.stop_polling) for u in updates] == [
        (ANNET, NO_REFERENCE, True), (ANNET, NO_REFERENCE, True)]
    assert altinn.fake.requests == []


# aiohttp retries a GET once when a kept-alive connection drops, so that fault comes twice.
@pytest.mark.parametrize("fault", [Fault("overview", status=503), Fault("overview", status=429),
                                   Fault("overview", truncate=True),
                                   Fault("overview", disconnect=True, times=2)],
                         ids=["503", "429", "truncated", "dropped"])
async def test_a_failing_poll_reports_nothing_and_the_next_one_works(
    altinn: Altinn, fault: Fault
) -> None:
    altinn.fake.lifecycle = Lifecycle(publish_after=0)
    channel = await altinn.channel()
    polled = await sent(altinn, channel)
    altinn.fake.inject(fault)
    assert await channel.poll_statuses([polled]) == []
    assert summary(await channel.poll_statuses([polled])) == [("LEVERT", False)]


async def test_a_refused_poll_reports_nothing(altinn: Altinn) -> None:
    channel = await altinn.channel()
    polled = await sent(altinn, channel)
    altinn.fake.accept_token = lambda token: False
    assert await channel.poll_statuses([polled]) == []


async def test_many_conversations_in_one_poll(altinn: Altinn) -> None:
    altinn.fake.lifecycle = Lifecycle(publish_after=0)
    channel = await altinn.channel()
    polled = [await sent(altinn, channel) for _ in range(20)]
    for item in polled[:5]:
        assert item.external_reference is not None
        altinn.fake.set_status(item.external_reference, "Read")
    updates = await channel.poll_statuses(polled)
    lest = {u.message_id for u in updates if u.status is LEST}
    levert = {u.message_id for u in updates if u.status is LEVERT}
    assert lest == {p.message_id for p in polled[:5]}
    assert levert == {p.message_id for p in polled}


def test_a_status_altinn_adds_later_gives_annet_once_and_polling_goes_on() -> None:
    overview = {"status": "Escalated", "published": "2026-03-02T10:00:00.123456"}
    polled = conversation(str(uuid.uuid4()))
    updates = updates_for(polled, overview)
    assert summary(updates) == [("LEVERT", False), ("ANNET", False)]
    assert updates[1].description == "Ukjent status i Altinn: Escalated"
    again = conversation(polled.external_reference, SENDT, LEVERT, ANNET)
    assert updates_for(again, overview) == []


def test_timestamps_alone_tell_delivery_and_reading_as_the_original_reads_them() -> None:
    polled = conversation(str(uuid.uuid4()))
    assert summary(updates_for(polled, {"status": "Initialized", "published": "x"})) == [
        ("LEVERT", False)]
    assert summary(updates_for(polled, {"status": "Archived", "read": "x"})) == [
        ("LEVERT", False), ("LEST", False)]


def test_the_arkivmelding_kvittering_is_the_receivers_ok_with_a_stable_id() -> None:
    polled = conversation(str(uuid.uuid4()))
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    receipt = arkivmelding_kvittering(polled, ORG, now)
    header = receipt.sbd["standardBusinessDocumentHeader"]
    schema = json.loads((specs_dir() / "dpi" / "schemas" / "sbdh.schema.json").read_text())
    validator = Draft7Validator({**schema, "$ref": "#/definitions/standardBusinessDocumentHeader"})
    assert list(validator.iter_errors(header)) == []
    assert header["sender"][0]["identifier"]["value"] == f"0192:{BUSINESS}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{ORG}"
    assert header["documentIdentification"]["type"] == "arkivmelding_kvittering"
    assert header["documentIdentification"]["instanceIdentifier"] == receipt_id(
        polled.message_id)
    assert header["businessScope"]["scope"][0]["instanceIdentifier"] == polled.conversation_id
    assert header["businessScope"]["scope"][0]["identifier"] == (
        "urn:no:difi:profile:arkivmelding:response:ver1.0")
    assert receipt.sbd["arkivmelding_kvittering"] == {
        "receiptType": "OK", "relatedToMessageId": polled.message_id, "messages": []}
    assert arkivmelding_kvittering(polled, ORG, now).sbd == receipt.sbd
    assert receipt.payload is None


@pytest.mark.parametrize("generate", [True, False], ids=["generated", "off"])
async def test_levert_of_an_arkivmelding_carries_its_receipt_only_when_asked(
    altinn: Altinn, generate: bool
) -> None:
    altinn.fake.lifecycle = Lifecycle(publish_after=0)
    channel = await altinn.channel(generate_arkivmelding_receipts=generate)
    arkiv, digital = outgoing("arkivmelding"), outgoing("digital_dpv")
    polled_arkiv = replace(conversation((await channel.send(arkiv)).external_reference),
                           document_type=arkiv.document_type)
    polled_digital = replace(conversation((await channel.send(digital)).external_reference),
                             document_type=digital.document_type)
    assert polled_arkiv.document_type == ARKIVMELDING_STANDARD
    altinn.clock.advance(1)
    updates = {u.message_id: u for u in await channel.poll_statuses([polled_arkiv,
                                                                     polled_digital])}
    assert summary(list(updates.values())) == [("LEVERT", False), ("LEVERT", False)]
    assert updates[polled_digital.message_id].incoming is None
    receipt = updates[polled_arkiv.message_id].incoming
    if not generate:
        assert receipt is None
        return
    assert receipt is not None and receipt.payload is None
    header = receipt.sbd["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["instanceIdentifier"] == receipt_id(
        polled_arkiv.message_id)
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{ORG}"
    assert receipt.sbd["arkivmelding_kvittering"]["relatedToMessageId"] == (
        polled_arkiv.message_id)

    assert polled_arkiv.external_reference is not None
    altinn.fake.set_status(polled_arkiv.external_reference, "Read")
    delivered = replace(polled_arkiv, statuses=(SENDT, LEVERT))
    [lest] = await channel.poll_statuses([delivered])
    assert (lest.status, lest.incoming) == (LEST, None)


async def test_read_at_the_first_poll_gives_one_receipt_with_levert(altinn: Altinn) -> None:
    channel = await altinn.channel(generate_arkivmelding_receipts=True)
    message = outgoing("arkivmelding")
    sent_one = await channel.send(message)
    assert sent_one.external_reference is not None
    altinn.fake.set_status(sent_one.external_reference, "Read")
    polled = replace(conversation(sent_one.external_reference),
                     document_type=message.document_type)
    levert, lest = await channel.poll_statuses([polled])
    assert (levert.status, lest.status) == (LEVERT, LEST)
    assert levert.incoming is not None and lest.incoming is None


async def test_the_config_sets_how_often_statuses_are_polled(altinn: Altinn) -> None:
    assert (await altinn.channel()).status_poll_interval == 60.0
    assert (await altinn.channel(status_poll_interval=2.5)).status_poll_interval == 2.5

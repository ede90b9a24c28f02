"""Sending: one streamed multipart upload with the fields the original sends, idempotently."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from ipunkt.plugin import Attachment, PermanentError, ReceiptStatus, TransientError
from ipunkt_dpv.fake import Fault

from .conftest import (
    ARKIVMELDING_XML,
    BUSINESS,
    DIGITAL_VEDTAK,
    ORG,
    PERSON,
    TAUSHETSBELAGT,
    Altinn,
    arkivmelding_files,
    attachment,
    outgoing,
)


def _near(value: str, expected: datetime, slack: float = 60) -> bool:
    return abs((datetime.fromisoformat(value) - expected).total_seconds()) < slack


async def test_arkivmelding_becomes_one_correspondence_with_the_originals_fields(
    altinn: Altinn,
) -> None:
    channel = await altinn.channel()
    message = outgoing("arkivmelding")
    result = await channel.send(message)

    assert result.statuses == (ReceiptStatus.SENDT,)
    stored = altinn.fake.correspondences[result.external_reference or ""]
    assert stored.senders_reference == message.message_id
    form = altinn.form()
    now = datetime.now(UTC)
    assert form["Correspondence.ResourceId"] == "eformidling-dpv-administrasjon"
    assert form["Correspondence.Sender"] == f"0192:{ORG}"
    assert form["Correspondence.SendersReference"] == message.message_id
    assert form["Correspondence.MessageSender"] == "Testkommune"
    assert form["Correspondence.Content.Language"] == "nb"
    assert form["Correspondence.Content.MessageTitle"] == "Vedtak i byggesak Storgata 5"
    assert form["Correspondence.Content.MessageSummary"] == "Vedtak i byggesak Storgata 5"
    assert form["Correspondence.Content.MessageBody"] == (
        "Vedtak i byggesak Storgata 5, gnr 12 bnr 3")
    # Only the files the journalpost names, in dokumentnummer order; not arkivmelding.xml.
    assert form["Correspondence.Content.Attachments[0].fileName"] == "vedtak.pdf"
    assert form["Correspondence.Content.Attachments[0].displayName"] == "Vedtaket"
    assert form["Correspondence.Content.Attachments[1].fileName"] == "kart.png"
    assert form["Correspondence.Content.Attachments[1].displayName"] == "Situasjonskart"
    assert "Correspondence.Content.Attachments[2].fileName" not in form
    assert form["Correspondence.Content.Attachments[0].isEncrypted"] == "false"
    assert form["Correspondence.Content.Attachments[0].dataLocationType"] == (
        "NewCorrespondenceAttachment")
    assert _near(form["Correspondence.RequestedPublishTime"], now)
    assert _near(form["Correspondence.DueDateTime"], now + timedelta(days=7))
    assert form["Correspondence.PropertyList.senderOrgNumber"] == ORG
    assert form["Correspondence.IgnoreReservation"] == "false"
    assert form["Correspondence.IsConfirmationNeeded"] == "false"
    assert form["Correspondence.IsConfidential"] == "false"
    assert form["Recipients[0]"] == f"urn:altinn:organization:identifier-no:{BUSINESS}"
    assert form["IdempotentKey"] == message.message_id
    text = "$correspondenceRecipientName$: Du har mottatt en melding fra Testkommune."
    assert form["Correspondence.Notification.NotificationTemplate"] == "CustomMessage"
    assert form["Correspondence.Notification.EmailSubject"] == "Melding mottatt i Altinn"
    assert form["Correspondence.Notification.EmailBody"] == text
    assert form["Correspondence.Notification.SmsBody"] == text
    assert form["Correspondence.Notification.EmailContentType"] == "Plain"
    assert form["Correspondence.Notification.NotificationChannel"] == "EmailAndSms"
    assert form["Correspondence.Notification.SendReminder"] == "true"
    assert form["Correspondence.Notification.ReminderSmsBody"] == text
    assert form["Correspondence.Notification.ReminderNotificationChannel"] == "EmailAndSms"
    assert _near(form["Correspondence.Notification.RequestedSendTime"],
                 now + timedelta(minutes=5))
    # The bytes arrived intact, and Altinn shows the correspondence to the business.
    for file in message.attachments[1:]:
        expected = b"".join([chunk async for chunk in file.open()])
        assert await altinn.download(stored.id, file.filename) == expected
    assert altinn.fake.overview(stored.id)["recipient"] == form["Recipients[0]"]
    assert altinn.tokens.asked == [(("eformidling:dpv",), True)]
    upload = next(r for r in altinn.fake.requests if r.operation == "upload")
    assert upload.headers["Authorization"] == "Bearer altinn-token"
    assert [name for name, _, _ in upload.files] == ["attachments", "attachments"]


async def test_digital_dpv_to_a_person_uses_its_body_and_ignores_reservation_for_info(
    altinn: Altinn,
) -> None:
    channel = await altinn.channel()
    result = await channel.send(outgoing("digital_dpv", receiver=PERSON))
    form = altinn.form()
    assert result.external_reference in altinn.fake.correspondences
    assert form["Recipients[0]"] == f"urn:altinn:person:identifier-no:{PERSON}"
    assert form["Correspondence.Content.MessageTitle"] == "Vedtak om bostøtte"
    assert form["Correspondence.Content.MessageSummary"] == "Du har fått svar"
    assert form["Correspondence.Content.MessageBody"] == "Søknaden din er innvilget."
    assert form["Correspondence.Content.Attachments[0].fileName"] == "vedtak.pdf"
    assert form["Correspondence.IgnoreReservation"] == "true"


async def test_digital_dpv_vedtak_respects_reservation_and_blank_body_gets_the_default(
    altinn: Altinn,
) -> None:
    altinn.fake.reserved.add(PERSON)
    channel = await altinn.channel()
    body = {"tittel": "Vedtak", "sammendrag": "Svar", "innhold": "  "}
    with pytest.raises(PermanentError, match=r"HTTP 422 \(1030\).*reserved"):
        await channel.send(outgoing("digital_dpv", receiver=PERSON, business=body,
                                    process=DIGITAL_VEDTAK))
    form = altinn.form()
    assert form["Correspondence.IgnoreReservation"] == "false"
    assert form["Correspondence.Content.MessageBody"] == "Ingen innhold"
    assert altinn.fake.correspondences == {}


async def test_taushetsbelagt_goes_to_the_confidential_resource_whatever_the_record_says(
    altinn: Altinn,
) -> None:
    channel = await altinn.channel()
    await channel.send(outgoing("arkivmelding", process=TAUSHETSBELAGT))
    form = altinn.form()
    assert form["Correspondence.ResourceId"] == "eformidling-dpv-taushetsbelagt"
    assert form["Correspondence.IsConfidential"] == "true"
    assert form["Correspondence.Notification.EmailBody"].startswith(
        "$correspondenceRecipientName$, har mottatt en taushetsbelagt melding fra Testkommune.")
    assert len(form["Correspondence.Notification.SmsBody"]) == 160
    assert form["Correspondence.Notification.SmsBody"].endswith("…")


async def test_the_messages_dpv_settings_win_over_the_config(altinn: Altinn) -> None:
    channel = await altinn.channel()
    settings = {"varselType": "VarselDPVUtenRevarsel", "varselTransportType": "SMS",
                "varselTekst": "Ny post fra $reporterName$", "dagerTilSvarfrist": 0}
    await channel.send(outgoing("arkivmelding",
                                business={"hoveddokument": "vedtak.pdf", "dpv": settings}))
    form = altinn.form()
    assert form["Correspondence.Notification.SmsBody"] == "Ny post fra Testkommune"
    assert form["Correspondence.Notification.NotificationChannel"] == "Sms"
    assert form["Correspondence.Notification.SendReminder"] == "false"
    assert "Correspondence.Notification.ReminderSmsBody" not in form
    assert "Correspondence.DueDateTime" not in form

    settings = {"dagerTilSvarfrist": 3, "varselTransportType": "Epost"}
    await channel.send(outgoing("arkivmelding",
                                business={"hoveddokument": "vedtak.pdf", "dpv": settings}))
    form = altinn.form()
    assert _near(form["Correspondence.DueDateTime"], datetime.now(UTC) + timedelta(days=3))
    assert form["Correspondence.Notification.NotificationChannel"] == "Email"


async def test_config_without_due_dates_sender_name_or_record_resource(altinn: Altinn) -> None:
    channel = await altinn.channel(enable_due_date=False, sender_name=None,
                                   default_resource="eformidling-dpv-lokal")
    await channel.send(outgoing("arkivmelding", resource=None,
                                sender=f"0192:{ORG}:974720760"))
    form = altinn.form()
    assert "Correspondence.DueDateTime" not in form
    assert "Correspondence.MessageSender" not in form
    assert form["Correspondence.ResourceId"] == "eformidling-dpv-lokal"
    assert form["Correspondence.PropertyList.senderOrgNumber"] == "974720760"
    assert form["Correspondence.Notification.EmailBody"].endswith(f"fra {ORG}.")


async def test_sent_twice_after_a_crash_the_second_send_finds_the_first(altinn: Altinn) -> None:
    """The process died after Altinn created the correspondence but before the id was
    recorded: a new process sends the same message again and gets the same id."""
    message = outgoing("arkivmelding")
    first = await (await altinn.channel()).send(message)
    restarted = await altinn.channel()
    second = await restarted.send(message)
    assert second.external_reference == first.external_reference
    assert second.statuses == (ReceiptStatus.SENDT,)
    assert len(altinn.fake.correspondences) == 1
    assert len(altinn.fake.by_senders_reference(message.message_id)) == 1
    uploads = [r for r in altinn.fake.requests if r.operation == "upload"]
    lookups = [r for r in altinn.fake.requests if r.operation == "list"]
    assert len(uploads) == 2
    assert dict(lookups[0].query) == {"resourceId": "eformidling-dpv-administrasjon",
                                      "role": "Sender", "sendersReference": message.message_id}


@pytest.mark.parametrize("fault", [
    Fault("upload", status=503, after_processing=True),
    Fault("upload", disconnect=True, after_processing=True),
    Fault("upload", truncate=True, after_processing=True),
], ids=["5xx", "dropped", "truncated"])
async def test_a_lost_answer_is_retried_into_the_same_correspondence(
    altinn: Altinn, fault: Fault
) -> None:
    channel = await altinn.channel()
    message = outgoing("digital_dpv")
    altinn.fake.inject(fault)
    with pytest.raises(TransientError):
        await channel.send(message)
    assert len(altinn.fake.correspondences) == 1
    result = await channel.send(message)
    assert result.external_reference == next(iter(altinn.fake.correspondences))
    assert len(altinn.fake.correspondences) == 1


async def test_an_answer_too_slow_after_altinn_made_it_is_retried_into_the_same_one(
    altinn: Altinn,
) -> None:
    channel = await altinn.channel(request_timeout=0.3)
    message = outgoing("digital_dpv")
    altinn.fake.inject(Fault("upload", delay=1.0, after_processing=True))
    with pytest.raises(TransientError, match="timed out"):
        await channel.send(message)
    [made] = altinn.fake.correspondences
    result = await channel.send(message)
    assert result.external_reference == made
    assert len(altinn.fake.correspondences) == 1


async def test_409_with_nothing_to_find_is_still_sent_but_has_no_reference(
    altinn: Altinn,
) -> None:
    channel = await altinn.channel()
    message = outgoing("digital_dpv")
    first = await channel.send(message)
    altinn.fake.forget(first.external_reference or "")
    result = await channel.send(message)
    assert result == type(result)(statuses=(ReceiptStatus.SENDT,), external_reference=None)


@pytest.mark.parametrize(("fault", "retry_after"), [
    (Fault("upload", status=503), None),
    (Fault("upload", status=500), None),
    (Fault("upload", status=429, retry_after=7), 7.0),
    (Fault("upload", disconnect=True), None),
], ids=["503", "500", "429", "dropped"])
async def test_transient_failures_are_retryable_and_create_nothing(
    altinn: Altinn, fault: Fault, retry_after: float | None
) -> None:
    channel = await altinn.channel()
    altinn.fake.inject(fault)
    with pytest.raises(TransientError) as caught:
        await channel.send(outgoing("digital_dpv"))
    assert caught.value.retry_after == retry_after
    assert altinn.fake.correspondences == {}


async def test_a_slow_answer_times_out_as_transient(altinn: Altinn) -> None:
    channel = await altinn.channel(request_timeout=0.3)
    altinn.fake.inject(Fault("upload", delay=1.5))
    with pytest.raises(TransientError, match="timed out"):
        await channel.send(outgoing("digital_dpv"))


async def test_an_upload_altinn_stops_taking_fails_after_the_request_timeout(
    altinn: Altinn,
) -> None:
    """Altinn no longer reading the upload leaves aiohttp writing for ever (its read timeout
    starts only once the body is sent): the upload fails once its bytes stand still."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield bytes(1 << 20)

    big = Attachment("stor.pdf", "application/pdf", 64 << 20, chunks, title="Stor")
    channel = await altinn.channel(request_timeout=0.5)
    altinn.fake.inject(Fault("upload", delay=5.0))
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"the upload stood still for 0\.5 s"):
        await channel.send(outgoing("digital_dpv", files=[big]))
    assert time.monotonic() - started < 4


async def test_unreachable_altinn_is_transient(altinn: Altinn) -> None:
    channel = await altinn.channel(correspondence_url="http://127.0.0.1:9/correspondence/api/v1")
    with pytest.raises(TransientError):
        await channel.send(outgoing("digital_dpv"))


@pytest.mark.parametrize(("change", "reason"), [
    ({"recipients": {"987654321"}}, r"HTTP 404 \(1029\): Could not find partyId .*910075946"),
    ({"resources": {"eformidling-dpv-annen": False}},
     r"HTTP 400 \(1036\): ResourceId must match"),
], ids=["unknown-recipient", "unknown-resource"])
async def test_altinns_refusals_are_permanent_with_altinns_reason(
    altinn: Altinn, change: dict[str, object], reason: str
) -> None:
    for name, value in change.items():
        setattr(altinn.fake, name, value)
    channel = await altinn.channel()
    with pytest.raises(PermanentError, match=reason):
        await channel.send(outgoing("arkivmelding"))
    assert altinn.fake.correspondences == {}


async def test_a_title_altinn_refuses_is_permanent(altinn: Altinn) -> None:
    channel = await altinn.channel()
    body = {"tittel": "x" * 256, "sammendrag": "s", "innhold": "i"}
    with pytest.raises(PermanentError, match=r"\(1037\): Message title cannot exceed 255"):
        await channel.send(outgoing("digital_dpv", business=body))


async def test_an_empty_file_is_refused_by_altinn(altinn: Altinn) -> None:
    channel = await altinn.channel()
    with pytest.raises(PermanentError, match=r"\(2004\): File must have content"):
        await channel.send(outgoing("digital_dpv", files=[attachment("tom.pdf", b"")]))


async def test_an_unauthorised_token_is_permanent(altinn: Altinn) -> None:
    altinn.fake.accept_token = lambda token: token == "something else"
    channel = await altinn.channel()
    with pytest.raises(PermanentError, match="HTTP 401"):
        await channel.send(outgoing("digital_dpv"))


BAD_XML = {
    "dtd": ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "boom">]><arkivmelding>&x;'
            "</arkivmelding>", "DTD or entities"),
    "broken": ("<arkivmelding><mappe>", "not well-formed"),
    "no-journalpost": ('<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/'
                       'arkivmelding"><system>x</system></arkivmelding>', "no journalpost"),
    "wrong-root": ("<melding/>", "not <arkivmelding>"),
}


@pytest.mark.parametrize("case", list(BAD_XML))
async def test_bad_arkivmelding_xml_is_permanent_and_nothing_is_sent(
    altinn: Altinn, case: str
) -> None:
    xml, reason = BAD_XML[case]
    channel = await altinn.channel()
    with pytest.raises(PermanentError, match=reason):
        await channel.send(outgoing("arkivmelding", files=arkivmelding_files(xml)))
    assert altinn.fake.requests == []


@pytest.mark.parametrize(("message", "reason"), [
    (lambda: outgoing("arkivmelding", files=arkivmelding_files()[1:]),
     "needs the file arkivmelding.xml"),
    (lambda: outgoing("arkivmelding", files=arkivmelding_files()[:2]),
     "names the file 'kart.png', which the message lacks"),
    (lambda: outgoing("arkivmelding", message_id="not-a-uuid"), "not a UUID"),
    (lambda: outgoing("arkivmelding", receiver="0192:12345"),
     "neither an organisation number nor"),
    (lambda: outgoing("digital_dpv", business={"sammendrag": "s"}), "needs a tittel"),
    (lambda: outgoing("digital", business={}), "not 'digital'"),
    (lambda: outgoing("digital_dpv", files=[attachment('brev"1".pdf', b"x")]),
     "characters Altinn refuses"),
], ids=["no-xml", "missing-file", "message-id", "receiver", "no-title", "type", "filename"])
async def test_messages_dpv_cannot_carry_are_permanent_before_any_upload(
    altinn: Altinn, message: object, reason: str
) -> None:
    channel = await altinn.channel()
    assert callable(message)
    with pytest.raises(PermanentError, match=reason):
        await channel.send(message())
    assert [r for r in altinn.fake.requests if r.operation == "upload"] == []


async def test_the_journalpost_without_offentlig_tittel_uses_its_tittel(altinn: Altinn) -> None:
    channel = await altinn.channel()
    xml = ARKIVMELDING_XML.replace(
        "<offentligTittel>Vedtak i byggesak Storgata 5</offentligTittel>", "")
    await channel.send(outgoing("arkivmelding", files=arkivmelding_files(xml)))
    assert altinn.form()["Correspondence.Content.MessageTitle"] == (
        "Vedtak i byggesak Storgata 5, gnr 12 bnr 3")


async def test_health_probes_altinn(altinn: Altinn) -> None:
    assert (await (await altinn.channel()).health()).ok
    broken = await altinn.channel(health_url="http://127.0.0.1:9/health-probe")
    health = await broken.health()
    assert not health.ok and "health probe failed" in health.detail


async def test_a_message_id_is_the_idempotent_key_for_each_message(altinn: Altinn) -> None:
    channel = await altinn.channel()
    a = await channel.send(outgoing("digital_dpv"))
    b = await channel.send(outgoing("digital_dpv", message_id=str(uuid.uuid4())))
    assert a.external_reference != b.external_reference
    assert len(altinn.fake.correspondences) == 2

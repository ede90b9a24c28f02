"""The fake Altinn itself: it holds requests to the spec and answers as Altinn does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ipunkt.plugin import ChannelContext, PermanentError, PollableConversation, ReceiptStatus
from ipunkt.testing import free_port, specs_dir
from ipunkt_dpv.channel import DPVChannel
from ipunkt_dpv.config import DPVConfig
from ipunkt_dpv.fake import API, INBOX, FakeCorrespondence, Fault, Lifecycle

from .conftest import BUSINESS, ORG, Altinn, ServerFactory, StaticTokens, outgoing

HEADERS = {"Authorization": "Bearer t", "Accept": "application/json"}


def form(fields: list[tuple[str, str]], files: list[tuple[str, bytes]] = ()) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields:
        data.add_field(name, value)
    for filename, content in files:
        data.add_field("attachments", content, filename=filename,
                       content_type="application/pdf")
    return data


def minimal(key: str | None = None, **extra: str) -> list[tuple[str, str]]:
    """The smallest upload Altinn accepts, named as the original names it (camelCase)."""
    fields = {
        "correspondence.resourceId": "eformidling-dpv-administrasjon",
        "correspondence.sendersReference": key or str(uuid.uuid4()),
        "correspondence.content.language": "nb",
        "correspondence.content.messageTitle": "Tittel",
        "correspondence.content.messageSummary": "Sammendrag",
        "correspondence.content.messageBody": "Innhold",
        "correspondence.notification.notificationTemplate": "CustomMessage",
        "correspondence.notification.emailSubject": "Emne",
        "correspondence.notification.emailBody": "Tekst",
        "correspondence.notification.notificationChannel": "Email",
        "recipients[0]": "urn:altinn:organization:identifier-no:910075946",
        **extra,
    }
    if key is not None:
        fields["idempotentKey"] = key
    return list(fields.items())


async def post(altinn: Altinn, data: aiohttp.FormData,
               headers: dict[str, str] = HEADERS) -> tuple[int, Any]:
    url = f"{altinn.base}/correspondence/upload"
    async with altinn.session.post(url, data=data, headers=headers) as response:
        body = await response.read()
        kind = response.content_type
        return response.status, (await response.json(content_type=None)
                                 if body and "json" in kind else body.decode())


async def get(altinn: Altinn, path: str, **params: str) -> tuple[int, Any]:
    async with altinn.session.get(f"{altinn.base}{path}", params=params,
                                  headers=HEADERS) as response:
        return response.status, await response.json(content_type=None)


async def test_the_originals_camel_case_names_bind_as_altinn_binds_them(altinn: Altinn) -> None:
    key = str(uuid.uuid4())
    status, body = await post(altinn, form(minimal(key)))
    assert status == 200, body
    created = body["correspondences"][0]
    assert created["status"] == "Initialized"
    assert created["recipient"] == "urn:altinn:organization:identifier-no:910075946"
    assert body["attachmentIds"] == []
    status, again = await post(altinn, form(minimal(key)))
    assert status == 409
    assert again["errorCode"] == 1034 and again["code"] == "CORR-01034"
    assert again["title"] == "Conflict" and again["status"] == 409
    assert again["detail"] == "A correspondence with the same idempotent key already exists"
    assert again["traceId"]
    assert len(altinn.fake.correspondences) == 1


async def test_a_request_breaking_the_spec_is_refused_and_recorded(altinn: Altinn) -> None:
    fields = [*minimal(), ("correspondence.content.titel", "typo"),
              ("correspondence.notification.smsBody", "x" * 161),
              ("correspondence.isConfidential", "maybe")]
    status, body = await post(altinn, form(fields))
    assert status == 400
    problems = " | ".join(body["errors"]["request"])
    assert "'correspondence.content.titel' is not in the spec" in problems
    assert "SmsBody: " in problems and "is too long" in problems
    assert "'maybe' is not of type 'boolean'" in problems
    assert len(altinn.broke_spec_on_purpose()) == 3
    assert altinn.fake.correspondences == {}


async def test_missing_required_fields_and_gaps_in_indices(altinn: Altinn) -> None:
    fields = [f for f in minimal() if f[0] != "correspondence.content.messageBody"]
    fields.append(("recipients[2]", "urn:altinn:organization:identifier-no:910075918"))
    status, body = await post(altinn, form(fields))
    assert status == 400
    problems = " | ".join(body["errors"]["request"])
    assert "'Correspondence.Content.MessageBody' is a required property" in problems
    assert "Recipients[1] is missing" in problems
    assert len(altinn.broke_spec_on_purpose()) == 3


@pytest.mark.parametrize(("extra", "files", "code"), [
    ({"correspondence.content.messageTitle": " "}, [], 1020),
    ({"correspondence.content.language": "sv"}, [], 1023),
    ({"correspondence.dueDateTime": "2020-01-01T00:00:00+00:00"}, [], 1008),
    ({"correspondence.isConfidential": "true"}, [], 1061),
    ({"correspondence.resourceId": "eformidling-dpv-taushetsbelagt"}, [], 1060),
    ({"correspondence.notification.notificationChannel": "EmailAndSms"}, [], 3024),
    ({"correspondence.notification.sendReminder": "true"}, [], 3003),
    ({"recipients[1]": "urn:altinn:organization:identifier-no:910075946"}, [], 1006),
    ({"correspondence.content.attachments[0].fileName": "a.pdf",
      "correspondence.content.attachments[0].sendersReference": "a",
      "correspondence.content.attachments[0].dataLocationType": "NewCorrespondenceAttachment"},
     [("b.pdf", b"data")], 1005),
    ({"correspondence.content.attachments[0].fileName": "a.exe",
      "correspondence.content.attachments[0].sendersReference": "a",
      "correspondence.content.attachments[0].dataLocationType": "NewCorrespondenceAttachment"},
     [("a.exe", b"data")], 2013),
    ({"correspondence.content.attachments[0].fileName": "CON.pdf",
      "correspondence.content.attachments[0].sendersReference": "a",
      "correspondence.content.attachments[0].dataLocationType": "NewCorrespondenceAttachment"},
     [("CON.pdf", b"data")], 2012),
], ids=["empty-title", "language", "due-date", "not-confidential", "confidential",
        "notification", "reminder", "duplicate-recipient", "file-mismatch", "file-type",
        "reserved-name"])
async def test_altinns_own_rules(
    altinn: Altinn, extra: dict[str, str], files: list[tuple[str, bytes]], code: int
) -> None:
    status, body = await post(altinn, form(minimal(**extra), files))
    assert status == 400, body
    assert body["errorCode"] == code, body
    assert altinn.fake.correspondences == {}
    assert list((altinn.fake.storage).iterdir()) == []


async def test_no_token_no_entry_and_accept_must_allow_json(altinn: Altinn) -> None:
    status, _ = await post(altinn, form(minimal()), headers={"Accept": "application/json"})
    assert status == 401
    status, body = await post(altinn, form(minimal()),
                              headers={"Authorization": "Bearer t", "Accept": "text/xml"})
    assert status == 406 and "Accept header" in body
    assert altinn.fake.correspondences == {}


async def test_the_lookup_needs_resource_and_role_as_altinn_binds_it(altinn: Altinn) -> None:
    key = str(uuid.uuid4())
    status, body = await post(altinn, form(minimal(key)))
    assert status == 200
    status, body = await get(altinn, "/correspondence", sendersReference=key)
    assert status == 400 and set(body["errors"]) == {"resourceId", "role"}
    status, body = await get(altinn, "/correspondence", sendersReference=key, role="Sender",
                             resourceId="eformidling-dpv-administrasjon")
    assert status == 200 and body == {"ids": [body["ids"][0]]}
    status, body = await get(altinn, "/correspondence", sendersReference="other",
                             role="Sender", resourceId="eformidling-dpv-administrasjon")
    assert body == {"ids": []}
    status, body = await get(altinn, "/correspondence", role="Bogus",
                             resourceId="eformidling-dpv-administrasjon")
    assert status == 400
    assert len(altinn.broke_spec_on_purpose()) == 1


async def test_unknown_and_malformed_ids(altinn: Altinn) -> None:
    status, body = await get(altinn, f"/correspondence/{uuid.uuid4()}")
    assert status == 404 and body["errorCode"] == 1001
    status, body = await get(altinn, "/correspondence/12")
    assert status == 400 and "is not a 'uuid'" in body["errors"]["request"][0]
    assert len(altinn.broke_spec_on_purpose()) == 1


async def test_the_overview_of_a_sent_message_matches_the_spec(altinn: Altinn) -> None:
    """The teardown checks every answer against the spec; this one has everything in it."""
    channel = await altinn.channel()
    result = await channel.send(outgoing("arkivmelding"))
    status, body = await get(altinn, f"/correspondence/{result.external_reference}")
    assert status == 200
    assert body["status"] == "ReadyForPublish" and body["published"] is None
    assert [a["fileName"] for a in body["content"]["attachments"]] == ["vedtak.pdf", "kart.png"]
    assert body["notification"]["sendReminder"] is True
    assert body["propertyList"] == {"senderOrgNumber": "910077473"}


async def test_the_inbox_view_shows_a_recipients_correspondences_without_a_token(
    altinn: Altinn,
) -> None:
    altinn.fake.lifecycle = Lifecycle(publish_after=10)
    channel = await altinn.channel()
    kept = await channel.send(outgoing("arkivmelding"))
    forgotten = await channel.send(outgoing("arkivmelding"))
    to_person = await channel.send(outgoing("digital_dpv", receiver="17912099997"))
    altinn.fake.forget(forgotten.external_reference or "")
    altinn.clock.advance(10)

    async def inbox(**params: str) -> list[dict[str, Any]]:
        async with altinn.session.get(altinn.server.make_url(INBOX), params=params) as answer:
            assert answer.status == 200
            return list(await answer.json())

    [held] = await inbox(recipient=BUSINESS)
    assert held["correspondenceId"] == kept.external_reference
    assert held["recipient"] == f"urn:altinn:organization:identifier-no:{BUSINESS}"
    assert (held["status"], held["title"]) == ("Published", "Vedtak i byggesak Storgata 5")
    assert [f["fileName"] for f in held["files"]] == ["vedtak.pdf", "kart.png"]
    assert [c["correspondenceId"] for c in await inbox()] == [
        kept.external_reference, to_person.external_reference]
    assert await inbox(recipient="987654321") == []
    assert not [r for r in altinn.fake.requests if r.path.endswith(INBOX)]


async def test_an_answer_held_after_processing_comes_late_but_the_deed_is_done(
    altinn: Altinn,
) -> None:
    altinn.fake.inject(Fault("upload", delay=0.5, after_processing=True))
    loop = asyncio.get_running_loop()
    started = loop.time()
    sending = asyncio.ensure_future(post(altinn, form(minimal(str(uuid.uuid4())))))
    while not altinn.fake.correspondences:
        await asyncio.sleep(0.01)
    assert not sending.done()
    status, body = await sending
    assert status == 200 and loop.time() - started >= 0.5
    assert body["correspondences"][0]["correspondenceId"] in altinn.fake.correspondences


async def test_a_slow_answer_is_slow(altinn: Altinn) -> None:
    altinn.fake.inject(Fault("list", delay=0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _ = await get(altinn, "/correspondence", role="Sender",
                          resourceId="eformidling-dpv-administrasjon")
    assert status == 200 and loop.time() - started >= 0.5


async def test_faults_are_spent_and_matched_by_operation(altinn: Altinn) -> None:
    fault = altinn.fake.inject(Fault("overview", status=502, times=2))
    status, _ = await get(altinn, "/correspondence", role="Sender",
                          resourceId="eformidling-dpv-administrasjon")
    assert status == 200 and fault.times == 2
    for _ in range(2):
        status, body = await get(altinn, f"/correspondence/{uuid.uuid4()}")
        assert status == 502 and body["status"] == 502
    status, _ = await get(altinn, f"/correspondence/{uuid.uuid4()}")
    assert status == 404


async def test_health_probe(altinn: Altinn) -> None:
    async with altinn.session.get(str(altinn.server.make_url("/health-probe"))) as response:
        assert response.status == 200 and await response.text() == "Healthy"


def test_the_fake_runs_alone_and_checks_against_the_spec() -> None:
    port = free_port()
    env = {**os.environ, "IPUNKT_SPECS": str(specs_dir())}
    process = subprocess.Popen(
        [sys.executable, "-m", "ipunkt_dpv.fake", "--port", str(port), "--publish-after", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert f"http://127.0.0.1:{port}/correspondence/api/v1" in line

        async def exercise() -> tuple[int, int]:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{port}/correspondence/api/v1"
                async with session.post(f"{base}/correspondence/upload", headers=HEADERS,
                                        data=form(minimal())) as good:
                    await good.read()
                async with session.post(f"{base}/correspondence/upload", headers=HEADERS,
                                        data=form([*minimal(), ("x.y", "z")])) as bad:
                    await bad.read()
                return good.status, bad.status

        assert asyncio.run(exercise()) == (200, 400)
    finally:
        process.terminate()
        process.wait(10)


async def test_without_the_published_spec_the_fake_still_keeps_altinns_rules(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    """As in a sandbox where ../shared/specs is missing: nothing is checked against the spec,
    but the service behaves the same."""
    fake = FakeCorrespondence(storage=tmp_path, lifecycle=Lifecycle(publish_after=0))
    server = await aiohttp_server(fake.app)
    config = DPVConfig(enabled=True, correspondence_url=str(server.make_url(API)))
    channel = DPVChannel(ChannelContext(organisation=ORG, config=config, tokens=StaticTokens()))
    await channel.start()
    try:
        message = outgoing("arkivmelding")
        first = await channel.send(message)
        assert (await channel.send(message)).external_reference == first.external_reference
        updates = await channel.poll_statuses([PollableConversation(
            message.message_id, message.conversation_id, BUSINESS, first.external_reference,
            (ReceiptStatus.SENDT,))])
        assert [u.status for u in updates] == [ReceiptStatus.LEVERT]
        with pytest.raises(PermanentError, match=r"\(1037\)"):
            await channel.send(outgoing("digital_dpv", business={
                "tittel": "t" * 300, "sammendrag": "s", "innhold": "i"}))
    finally:
        await channel.stop()
    assert len(fake.correspondences) == 1 and fake.violations == []

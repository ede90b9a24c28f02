"""Sending over the fake broker: the initialize body, sbd.zip, sealing, limits, resends, errors."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from ipunkt.package import testcerts
from ipunkt.package.seal import open_package
from ipunkt.plugin import (
    ConfigurationError,
    OutgoingMessage,
    PermanentError,
    ReceiptStatus,
    TransientError,
)
from ipunkt.testing import free_port
from ipunkt_dpo.channel import DPOChannel
from ipunkt_dpo.fake import Fault, FaultKind
from ipunkt_dpo.status_messages import status_reply

ARKIVMELDING = (
    b'<?xml version="1.0" encoding="utf-8"?><arkivmelding><system>LandLord</system></arkivmelding>'
)


def _initializations(world: Any) -> list[dict[str, Any]]:
    return [
        json.loads(e.body)
        for e in world.broker.journal
        if e.method == "POST" and e.path.endswith("/filetransfer") and e.status == 200
    ]


def _zip(world: Any, transfer_id: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(world.broker.file_of(transfer_id).read_bytes()))


def _message(
    world: Any, kit: Any, sender: str | None = None, receiver: str | None = None, **sbd: Any
) -> Any:
    receiver = receiver or kit.ORG_B
    return kit.outgoing(
        kit.arkivmelding_sbd(sender or f"0192:{kit.ORG_A}", f"0192:{receiver}", **sbd),
        [
            kit.attachment("arkivmelding.xml", ARKIVMELDING),
            kit.attachment("test.txt", b"Testing 1 2 3", "text/plain"),
        ],
        world.service_record(receiver),
    )


async def test_send_initializes_exactly_as_the_original_and_uploads_sealed_sbd_zip(
    world: Any, kit: Any, tmp_path: Path
) -> None:
    channel = await world.channel(kit.ORG_A)
    message = _message(world, kit)

    result = await channel.send(message)

    assert result.statuses == (ReceiptStatus.SENDT,)
    assert _initializations(world) == [
        {
            "fileName": "sbd.zip",
            "resourceId": "eformidling-dpo-meldingsutveksling",
            "sendersFileTransferReference": message.message_id,
            "sender": f"0192:{kit.ORG_A}",
            "recipients": [f"0192:{kit.ORG_B}"],
            "propertyList": {},
            "checksum": None,
            "disableVirusScan": None,
        }
    ]
    upload = [e for e in world.broker.journal if e.path.endswith("/upload")]
    assert upload[0].content_type == "application/octet-stream"
    assert upload[0].headers["Authorization"].startswith("Bearer ey")
    transfer = world.broker.transfers[result.external_reference]
    assert transfer.status.value == "Published"
    with _zip(world, transfer.id) as archive:
        assert archive.namelist() == ["sbd.json", "asic.zip"]
        assert json.loads(archive.read("sbd.json")) == message.sbd
        (tmp_path / "asic.zip").write_bytes(archive.read("asic.zip"))
    opened = open_package(
        (tmp_path / "asic.zip").open("rb"),
        key=world.pki[kit.ORG_B],
        trust=world.pki.trust,
        destination=tmp_path / "out",
    )
    assert opened.contents.trusted
    assert opened.contents.signer.subject == world.pki[kit.ORG_A].certificate.subject
    assert opened.manifest.receiver == f"0192:{kit.ORG_B}"
    assert opened.manifest.sender == f"0192:{kit.ORG_A}"
    assert opened.manifest.main_document.href == "arkivmelding.xml"
    assert (tmp_path / "out" / "arkivmelding.xml").read_bytes() == ARKIVMELDING
    assert (tmp_path / "out" / "test.txt").read_bytes() == b"Testing 1 2 3"
    assert world.tokens[kit.ORG_A].calls[0] == (("altinn:broker.write",), kit.ORG_A)


async def test_the_package_opens_with_openssl(world: Any, kit: Any, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    channel = await world.channel(kit.ORG_A)
    result = await channel.send(_message(world, kit))
    with _zip(world, result.external_reference) as archive:
        (tmp_path / "asic.cms").write_bytes(archive.read("asic.zip"))
    key = tmp_path / "b.key"
    key.write_bytes(
        world.pki[kit.ORG_B].private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "asic.cms"),
            "-inkey",
            str(key),
            "-out",
            str(tmp_path / "asic.asice"),
        ],
        check=True,
        capture_output=True,
    )
    with zipfile.ZipFile(tmp_path / "asic.asice") as asic:
        assert asic.namelist()[0] == "mimetype"
        assert asic.read("mimetype") == b"application/vnd.etsi.asic-e+zip"
        assert asic.read("arkivmelding.xml") == ARKIVMELDING


async def test_a_message_without_files_is_sbd_json_alone(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A)
    original = kit.arkivmelding_sbd(f"0192:{kit.ORG_B}", f"0192:{kit.ORG_A}")
    receipt = kit.arkivmelding_sbd(
        f"0192:{kit.ORG_A}",
        f"0192:{kit.ORG_B}",
        kind="arkivmelding_kvittering",
        body={"receiptType": "OK", "relatedToMessageId": "x", "messages": []},
    )
    for sbd in (status_reply(original, ReceiptStatus.LEVERT), receipt):
        result = await channel.send(kit.outgoing(sbd))
        with _zip(world, result.external_reference) as archive:
            assert archive.namelist() == ["sbd.json"]
            assert json.loads(archive.read("sbd.json")) == sbd


async def test_on_behalf_of_a_reportee_with_a_part_identifier(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A, reportees=(kit.REPORTEE,))
    message = _message(world, kit, sender=f"0192:{kit.ORG_A}:{kit.REPORTEE}")

    result = await channel.send(message)

    [initialize] = _initializations(world)
    assert initialize["sender"] == f"0192:{kit.REPORTEE}"
    transfer = world.broker.transfers[result.external_reference]
    assert transfer.sender == f"0192:{kit.REPORTEE}"
    with _zip(world, transfer.id) as archive:
        sent = json.loads(archive.read("sbd.json"))
    header = sent["standardBusinessDocumentHeader"]
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.REPORTEE}"
    assert (("altinn:broker.write",), kit.REPORTEE) in world.tokens[kit.ORG_A].calls
    assert message.sbd["standardBusinessDocumentHeader"]["sender"][0]["identifier"]["value"] == (
        f"0192:{kit.ORG_A}:{kit.REPORTEE}"
    ), "the caller's SBD is left as it was"


async def test_a_sender_that_is_neither_we_nor_a_reportee_is_refused(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A)
    with pytest.raises(PermanentError, match="neither this organisation"):
        await channel.send(_message(world, kit, sender=f"0192:{kit.REPORTEE}"))
    assert len(world.broker.journal) == 0


async def test_without_maskinporten_or_a_key_the_channel_does_not_start(
    world: Any, kit: Any
) -> None:
    context = world.context(kit.ORG_A)
    context.tokens = None
    with pytest.raises(ConfigurationError, match="Maskinporten"):
        await DPOChannel(context).start()
    context = world.context(kit.ORG_A)
    context.key = None
    with pytest.raises(ConfigurationError, match="key"):
        await DPOChannel(context).start()


async def test_the_size_limit_is_checked_before_anything_is_sent(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A, upload_size_limit=1000)
    message = kit.outgoing(
        kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}"),
        [kit.attachment("big.bin", b"x" * 600), kit.attachment("more.bin", b"y" * 600)],
        world.service_record(kit.ORG_B),
    )
    with pytest.raises(PermanentError, match="1200 bytes; DPO takes at most 1000"):
        await channel.send(message)
    assert len(world.broker.journal) == 0


async def test_the_brokers_own_size_limit_is_a_permanent_refusal(world: Any, kit: Any) -> None:
    world.broker.max_upload_size = 2000
    channel = await world.channel(kit.ORG_A)
    message = kit.outgoing(
        kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}"),
        [kit.attachment("noise.bin", bytes(range(256)) * 40, "application/octet-stream")],
        world.service_record(kit.ORG_B),
    )
    with pytest.raises(PermanentError, match="File size exceeds maximum"):
        await channel.send(message)
    [transfer] = world.broker.transfers.values()
    assert transfer.status.value == "Failed"


@pytest.mark.parametrize("problem", ["missing", "garbage", "no key encipherment", "expired"])
async def test_a_receiver_certificate_that_cannot_seal_is_permanent(
    world: Any, kit: Any, problem: str
) -> None:
    channel = await world.channel(kit.ORG_A)
    record = world.service_record(kit.ORG_B)
    if problem == "missing":
        del record["pemCertificate"]
    elif problem == "garbage":
        record["pemCertificate"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    else:
        issued = (
            world.pki.ca.issue(kit.ORG_B, key_usage=frozenset({"digital_signature"}))
            if problem == "no key encipherment"
            else world.pki.ca.issue(
                kit.ORG_B,
                valid_days=1,
                not_before=datetime.now(UTC) - timedelta(days=10),
            )
        )
        record["pemCertificate"] = testcerts.pem(issued.certificate).decode()
    message = kit.outgoing(
        kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}"),
        [kit.attachment("a.xml", b"<a/>")],
        record,
    )
    with pytest.raises(PermanentError, match=r"certificate|pemCertificate"):
        await channel.send(message)
    assert len(world.broker.journal) == 0, "refused before any transfer is made"


# -- idempotency ------------------------------------------------------------------------------


def _retried(message: OutgoingMessage) -> OutgoingMessage:
    """The message as the delivery engine hands it over again after a crash."""
    return dataclasses.replace(message, attempt=2)


async def test_an_upload_whose_answer_was_lost_is_not_sent_twice(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A)
    message = _message(world, kit)
    world.broker.inject(Fault(FaultKind.DROP, path="/upload$"))

    with pytest.raises(TransientError):
        await channel.send(message)
    [transfer] = world.broker.transfers.values()
    assert transfer.status.value == "Published", "the broker did take the file"

    result = await channel.send(message)

    assert result.external_reference == transfer.id
    assert len(world.broker.transfers) == 1
    assert len(_initializations(world)) == 1


async def test_after_a_crash_a_resend_finds_the_transfer_that_was_sent(
    world: Any, kit: Any
) -> None:
    message = _message(world, kit)
    first = await (await world.channel(kit.ORG_A)).send(message)

    restarted = await world.channel(kit.ORG_A)
    result = await restarted.send(_retried(message))

    assert result.external_reference == first.external_reference
    assert [t.id for t in world.broker.transfers_with_reference(message.message_id)] == [
        first.external_reference
    ]
    assert len(_initializations(world)) == 1


@pytest.mark.parametrize("retry", ["in the same process", "after a restart"])
async def test_an_initialize_whose_answer_was_lost_gets_its_file_later(
    world: Any, kit: Any, retry: str
) -> None:
    message = _message(world, kit)
    channel = await world.channel(kit.ORG_A)
    world.broker.inject(Fault(FaultKind.DROP, method="POST", path="/filetransfer$"))
    with pytest.raises(TransientError):
        await channel.send(message)
    [transfer] = world.broker.transfers.values()
    assert transfer.status.value == "Initialized"

    if retry == "in the same process":
        result = await channel.send(message)
    else:
        result = await (await world.channel(kit.ORG_A)).send(_retried(message))

    assert result.external_reference == transfer.id
    assert transfer.status.value == "Published"
    assert len(world.broker.transfers) == 1


async def test_a_resend_reads_through_passing_failures(world: Any, kit: Any) -> None:
    """A broker failing some reads (a 503, a cut answer) does not keep a resend from finding
    its earlier transfer: each read is tried again at once."""
    message = _message(world, kit)
    channel = await world.channel(kit.ORG_A)
    world.broker.inject(Fault(FaultKind.DROP, method="POST", path="/filetransfer$"))
    with pytest.raises(TransientError):
        await channel.send(message)
    world.broker.inject(Fault(status=503, method="GET", path="/filetransfer$"))
    world.broker.inject(Fault(FaultKind.TRUNCATE, method="GET", path="/filetransfer/[^/]+$"))

    result = await channel.send(_retried(message))

    [transfer] = world.broker.transfers.values()
    assert result.external_reference == transfer.id
    assert transfer.status.value == "Published"


async def test_a_search_that_could_not_look_everywhere_waits_and_then_goes_on(
    world: Any, kit: Any
) -> None:
    """While a transfer that may be the earlier attempt cannot be looked at, the resend waits
    rather than send again; its next try looks only at what it has not seen yet."""
    channel = await world.channel(kit.ORG_A)
    for _ in range(5):
        await channel.send(_message(world, kit))
    message = _message(world, kit)
    world.broker.inject(Fault(FaultKind.DROP, method="POST", path="/filetransfer$"))
    with pytest.raises(TransientError):
        await channel.send(message)
    [earlier] = world.broker.transfers_with_reference(message.message_id)
    world.broker.inject(Fault(status=503, method="GET", path=f"/filetransfer/{earlier.id}$",
                              times=3))

    with pytest.raises(TransientError, match="could not look at 1 of the transfers"):
        await channel.send(_retried(message))
    assert len(world.broker.transfers) == 6, "no new transfer while one is not looked at"

    looked = len(world.broker.journal)
    result = await channel.send(_retried(message))
    reads = [e.path for e in list(world.broker.journal)[looked:] if e.method == "GET"]

    assert result.external_reference == earlier.id
    assert len(world.broker.transfers) == 6
    assert reads == ["/broker/api/v1/filetransfer", f"/broker/api/v1/filetransfer/{earlier.id}",
                     f"/broker/api/v1/filetransfer/{earlier.id}"]


async def test_a_transfer_purged_during_a_search_is_passed_over(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A)
    await channel.send(_message(world, kit))
    message = _message(world, kit)
    world.broker.inject(Fault(FaultKind.DROP, method="POST", path="/filetransfer$"))
    with pytest.raises(TransientError):
        await channel.send(message)
    other = next(t for t in world.broker.transfers.values() if t.reference != message.message_id)
    world.broker.inject(Fault(status=404, method="GET", path=f"/filetransfer/{other.id}$"))

    result = await channel.send(_retried(message))

    assert result.external_reference == world.broker.transfers_with_reference(
        message.message_id)[0].id
    assert len(world.broker.transfers) == 2


async def test_a_failed_earlier_transfer_is_replaced(world: Any, kit: Any) -> None:
    message = _message(world, kit)
    world.broker.max_upload_size = 100
    with pytest.raises(PermanentError):
        await (await world.channel(kit.ORG_A)).send(message)
    world.broker.max_upload_size = 1 << 30

    result = await (await world.channel(kit.ORG_A)).send(_retried(message))

    assert len(world.broker.transfers) == 2
    assert world.broker.transfers[result.external_reference].status.value == "Published"


async def test_a_first_attempt_does_not_search(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A)
    await channel.send(_message(world, kit))
    assert not [e for e in world.broker.journal if e.method == "GET"]


# -- errors -----------------------------------------------------------------------------------


async def test_429_408_and_5xx_are_transient_with_retry_after(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A)
    world.broker.inject(Fault(status=429, retry_after="7", method="POST"))
    with pytest.raises(TransientError) as caught:
        await channel.send(_message(world, kit))
    assert caught.value.retry_after == 7.0
    assert "429" in str(caught.value)
    world.broker.inject(Fault(status=503, path="/upload$"))
    with pytest.raises(TransientError, match="503"):
        await channel.send(_message(world, kit))
    world.broker.inject(Fault(status=500))
    with pytest.raises(TransientError, match="500"):
        await channel.send(_message(world, kit))
    world.broker.inject(Fault(status=408, method="POST"))
    with pytest.raises(TransientError, match="408"):
        await channel.send(_message(world, kit))


async def test_a_refusal_is_permanent_with_the_brokers_reason(world: Any, kit: Any) -> None:
    channel = await world.channel(kit.ORG_A, resource="no-such-resource")
    with pytest.raises(PermanentError, match=r"400.*The resource has not been configured"):
        await channel.send(_message(world, kit))


async def test_a_token_the_broker_refuses_is_permanent(world: Any, kit: Any) -> None:
    class Forged:
        async def token(
            self, scopes: Sequence[str], *, altinn: bool = False, organisation: str | None = None
        ) -> str:
            return "eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImFsdGlubjpicm9rZXIud3JpdGUifQ."

    context = world.context(kit.ORG_A)
    context.tokens = Forged()
    channel = DPOChannel(context)
    await channel.start()
    world.channels.append(channel)
    with pytest.raises(PermanentError, match="401"):
        await channel.send(_message(world, kit))


async def test_maskinporten_refusing_the_grant_is_permanent(world: Any, kit: Any) -> None:
    world.maskinporten.clients.pop(f"client-{kit.ORG_A}")
    channel = await world.channel(kit.ORG_A)
    with pytest.raises(PermanentError, match="invalid_client"):
        await channel.send(_message(world, kit))


async def test_an_unreachable_slow_or_cut_broker_is_transient(world: Any, kit: Any) -> None:
    unreachable = DPOChannel(
        world.context(kit.ORG_A, broker_url=f"http://127.0.0.1:{free_port()}/broker/api/v1")
    )
    await unreachable.start()
    world.channels.append(unreachable)
    with pytest.raises(TransientError, match="Connect"):
        await unreachable.send(_message(world, kit))

    impatient = await world.channel(kit.ORG_A, request_timeout=0.3)
    world.broker.inject(Fault(FaultKind.SLOW, delay=2.0, method="POST"))
    with pytest.raises(TransientError, match="Timeout"):
        await impatient.send(_message(world, kit))

    channel = await world.channel(kit.ORG_A)
    world.broker.inject(Fault(FaultKind.TRUNCATE, method="POST", path="/filetransfer$"))
    with pytest.raises(TransientError):
        await channel.send(_message(world, kit))


async def test_an_upload_the_broker_stops_taking_fails_after_the_request_timeout(
    world: Any, kit: Any
) -> None:
    """A broker that stops reading an upload leaves aiohttp writing for ever (its read timeout
    starts only once the body is sent): the upload fails once its bytes stand still."""
    channel = await world.channel(kit.ORG_A, request_timeout=0.5)
    big = os.urandom(24 << 20)
    message = kit.outgoing(
        kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}"),
        [kit.attachment("arkivmelding.xml", ARKIVMELDING), kit.attachment("big.bin", big)],
        world.service_record(kit.ORG_B),
    )
    world.broker.inject(Fault(FaultKind.SLOW, delay=5.0, path="/upload$"))
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"the upload stood still for 0\.5 s"):
        await channel.send(message)
    assert time.monotonic() - started < 4


async def test_health_and_poll_interval_follow_the_broker_and_the_config(
    world: Any, kit: Any
) -> None:
    channel = await world.channel(kit.ORG_A, poll_interval=2.5)
    assert channel.incoming_poll_interval == 2.5
    assert (await channel.health()).ok
    world.broker.inject(Fault(status=503, method="POST"))
    with pytest.raises(TransientError):
        await channel.send(_message(world, kit))
    health = await channel.health()
    assert not health.ok and "503" in health.detail
    await channel.send(_message(world, kit))
    assert (await channel.health()).ok
    await channel.stop()
    assert not (await channel.health()).ok

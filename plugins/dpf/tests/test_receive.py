"""Receiving through SvarInn: what one organisation sends, the other takes in, sealed for it."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
import zipfile
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package.cms import encrypt
from ipunkt.package.manifest import IpManifest
from ipunkt.package.seal import open_package
from ipunkt.plugin import ReceiptStatus, TransientError
from ipunkt.sbd import business_violations, header_violations, parse_sbd
from ipunkt_dpf.incoming import Unprocessable, read_forsendelse, scan_order, seal_forsendelse
from lxml import etree


def _scopes(sbd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["type"]: s for s in sbd["standardBusinessDocumentHeader"]["businessScope"]["scope"]}


async def test_what_one_sends_the_other_receives_sealed_for_itself(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any, kit: Any,
    receiver_key: Any, arkivmelding_schema: etree.XMLSchema, tmp_path: Path,
) -> None:
    message = messages.make()
    sent = await channel.send(message)

    await receiving.poll_incoming(sink)

    assert len(sink.received) == 1
    received = sink.received[0]
    header = received.sbd["standardBusinessDocumentHeader"]
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.sender}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{kit.receiver}"
    identification = header["documentIdentification"]
    assert identification["instanceIdentifier"] == sent.external_reference
    assert identification["type"] == "arkivmelding"
    assert identification["standard"] == "urn:no:difi:arkivmelding:xsd::arkivmelding"
    scopes = _scopes(received.sbd)
    assert scopes["ConversationId"]["instanceIdentifier"] == sent.external_reference
    assert scopes["ConversationId"]["identifier"] == (
        "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
    )
    assert scopes["SenderRef"]["instanceIdentifier"] == message.message_id
    assert "ReceiverRef" not in scopes
    assert received.sbd["arkivmelding"] == {"sikkerhetsnivaa": 3}
    parsed = parse_sbd(received.sbd)  # as the core reads it: no rule of the original broken
    assert header_violations(parsed, datetime.now(UTC)) == []
    assert business_violations(parsed, "DPF") == []

    with received.package.open("rb") as package:
        opened = open_package(package, key=receiver_key, trust=None,
                              destination=tmp_path / "unpacked")
    assert opened.contents.signer == receiver_key.certificate
    assert isinstance(opened.manifest, IpManifest)
    assert opened.manifest.sender == f"0192:{kit.sender}"
    assert opened.manifest.receiver == f"0192:{kit.receiver}"
    files = {p.name: p.read_bytes() for p in opened.paths}
    assert files["vedtak.pdf"] == kit.pdf
    assert files["kart.png"] == b"\x89PNG\r\n\x1a\nbilde"
    arkivmelding = etree.fromstring(files["arkivmelding.xml"])
    arkivmelding_schema.assertValid(arkivmelding)
    ns = {"a": "http://www.arkivverket.no/standarder/noark5/arkivmelding"}
    assert arkivmelding.findtext(".//a:offentligTittel", namespaces=ns) == "Søknad om byggeløyve"
    assert arkivmelding.xpath(".//a:referanseDokumentfil/text()", namespaces=ns) == [
        "vedtak.pdf", "kart.png"
    ]
    assert arkivmelding.findtext(".//a:journalposttype", namespaces=ns) == "Utgående dokument"
    assert arkivmelding.findtext(".//a:journalpostnummer", namespaces=ns) == "13"

    # Confirmed only now: SvarUt marks it read, and the sender learns it.
    assert svarut.fake.forsendelser[sent.external_reference].status == "LEST"
    updates = await channel.poll_statuses([messages.pollable(message, sent.external_reference)])
    assert [(u.message_id, u.status) for u in updates] == [(message.message_id, ReceiptStatus.LEST)]
    await receiving.poll_incoming(sink)
    assert len(sink.received) == 1


async def test_a_reply_names_the_forsendelse_it_answers(
    channel: Any, receiving: Any, messages: Any, sink: Any, kit: Any
) -> None:
    original = await channel.send(messages.make())
    await receiving.poll_incoming(sink)
    reply = messages.make(sender=kit.receiver, receiver=kit.sender,
                          receiver_ref=original.external_reference)
    answered = await receiving.send(reply)

    await channel.poll_incoming(sink)

    assert len(sink.received) == 2
    scopes = _scopes(sink.received[1].sbd)
    assert scopes["ReceiverRef"]["instanceIdentifier"] == original.external_reference
    assert scopes["ConversationId"]["instanceIdentifier"] == answered.external_reference


def _reports(svarut: Any) -> list[Any]:
    return [s for s in svarut.spec.seen if "/mottakFeilet/" in s.path]


async def test_a_forsendelse_we_cannot_open_is_refused_and_the_sender_learns_why(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any, kit: Any,
    sender_key: Any,
) -> None:
    # SvarUt holds the wrong certificate for the receiver's mottakersystem.
    mailbox = svarut.receiver_mailbox
    svarut.fake.add_mailbox(kit.receiver, sender_key.certificate, username=mailbox.username,
                            password=mailbox.password)
    message = messages.make()
    reference = (await channel.send(message)).external_reference

    await receiving.poll_incoming(sink)

    assert sink.received == []
    (report,) = _reports(svarut)
    body = json.loads(report.body)
    assert body["permanent"] is True
    assert "not encrypted to our certificate" in body["feilmelding"]
    assert svarut.fake.forsendelser[reference].status == "FEILET_UNDER_MOTTAK"
    (update,) = await channel.poll_statuses([messages.pollable(message, reference)])
    assert update.status is ReceiptStatus.FEIL
    assert "not encrypted to our certificate" in update.description
    await receiving.poll_incoming(sink)
    assert len(_reports(svarut)) == 1  # no longer offered


async def test_when_the_core_cannot_store_it_svarut_keeps_it_for_later(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    sink.failures.append(OSError("disk full"))

    await receiving.poll_incoming(sink)

    (report,) = _reports(svarut)
    assert json.loads(report.body) == {
        "feilmelding": "the integration point could not store the forsendelse: disk full",
        "permanent": False,
    }
    assert svarut.fake.forsendelser[reference].status == "KLAR_FOR_MOTTAK"
    await receiving.poll_incoming(sink)
    assert len(sink.received) == 1
    assert svarut.fake.forsendelser[reference].status == "LEST"


async def test_a_lost_confirmation_does_not_store_twice(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    svarut.fake.faults.fail("kvitter", 503)
    await receiving.poll_incoming(sink)
    assert svarut.fake.forsendelser[reference].status == "KLAR_FOR_MOTTAK"

    await receiving.poll_incoming(sink)

    assert len(sink.received) == 1
    assert svarut.fake.forsendelser[reference].status == "LEST"
    assert _reports(svarut) == []


@pytest.mark.parametrize("fault", ["truncate", "fail"])
async def test_a_broken_download_is_tried_again_at_the_next_poll(
    fault: str, channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    getattr(svarut.fake.faults, fault)("download")

    await receiving.poll_incoming(sink)

    assert sink.received == []
    assert _reports(svarut) == []
    assert list(receiving.config.work_dir and Path(receiving.config.work_dir).iterdir()) == []
    await receiving.poll_incoming(sink)
    assert len(sink.received) == 1
    assert svarut.fake.forsendelser[reference].status == "LEST"


async def test_a_document_that_does_not_match_its_digest_is_refused(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    stored = svarut.fake.forsendelser[reference]
    stored.files[1] = replace(stored.files[1], sha256="00" * 32)

    await receiving.poll_incoming(sink)

    (report,) = _reports(svarut)
    assert "kart.png does not match its sha256hash" in json.loads(report.body)["feilmelding"]
    assert sink.received == []


async def test_documents_in_another_order_than_announced_are_still_taken(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any, receiver_key: Any,
    tmp_path: Path, kit: Any,
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    svarut.fake.forsendelser[reference].files.reverse()

    await receiving.poll_incoming(sink)

    (received,) = sink.received
    with received.package.open("rb") as package:
        opened = open_package(package, key=receiver_key, trust=None, destination=tmp_path / "x")
    assert {p.name: p.read_bytes() for p in opened.paths}["vedtak.pdf"] == kit.pdf
    downloads = [s for s in svarut.spec.seen
                 if s.path.startswith("/tjenester/svarinn/forsendelse/")]
    assert len(downloads) == 3  # the first try, the scan of the order, the second try


async def test_a_file_svarinn_did_not_announce_is_refused(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    svarut.fake.forsendelser[reference].files.pop()

    await receiving.poll_incoming(sink)

    (report,) = _reports(svarut)
    assert "holds kart.png, not in filmetadata" in json.loads(report.body)["feilmelding"]


async def test_svarinn_unavailable_is_transient(receiving: Any, svarut: Any, sink: Any) -> None:
    svarut.fake.faults.fail("hent", 503)
    with pytest.raises(TransientError, match="hentNyeForsendelser: HTTP 503"):
        await receiving.poll_incoming(sink)


async def test_a_receive_only_poll_without_forsendelser_does_nothing(
    receiving: Any, svarut: Any, sink: Any
) -> None:
    await receiving.poll_incoming(sink)
    assert sink.received == []
    (poll,) = svarut.spec.seen
    assert poll.path == "/tjenester/svarinn/mottaker/hentNyeForsendelser"
    assert poll.headers["Authorization"].startswith("Basic ")


async def test_without_a_reply_address_svarut_answers_to_the_account(
    channel: Any, receiving: Any, messages: Any, svarut: Any, sink: Any, kit: Any
) -> None:
    files = [kit.attachment("vedtak.pdf", kit.pdf, "application/pdf")]
    arkivmelding = kit.arkivmelding_xml([("vedtak.pdf", "Hoveddokument")], sender_address=False)
    reference = (await channel.send(messages.make(files, arkivmelding=arkivmelding)))
    assert "svarSendesTil" not in svarut.fake.forsendelser[reference.external_reference].forsendelse

    await receiving.poll_incoming(sink)

    header = sink.received[0].sbd["standardBusinessDocumentHeader"]
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.sender}"


def test_a_single_document_may_come_unzipped(
    receiver_key: Any, kit: Any, tmp_path: Path
) -> None:
    forsendelse = read_forsendelse({
        "id": "9b45ab9e-e13a-489e-832d-56e836c9a8bc", "tittel": "Vedtak",
        "mottaker": {"orgnr": kit.receiver, "navn": "Mottaker"},
        "svarSendesTil": {"orgnr": kit.sender, "navn": "Avsender"},
        "downloadUrl": "/forsendelse/9b45ab9e-e13a-489e-832d-56e836c9a8bc",
        "filmetadata": [{"filnavn": "vedtak.pdf", "mimetype": "application/pdf",
                         "sha256hash": hashlib.sha256(kit.pdf).hexdigest(),
                         "size": len(kit.pdf)}],
    }, fallback_sender=None)
    download = list(encrypt([kit.pdf], receiver_key.certificate))
    package = tmp_path / "package.cms"
    with package.open("wb") as out:
        sealed = seal_forsendelse(forsendelse, download, key=receiver_key, out=out,
                                  received=datetime.now(UTC), limit=1 << 20)
    assert [f.name for f in sealed.files] == ["manifest.xml", "arkivmelding.xml", "vedtak.pdf"]
    with package.open("rb") as source:
        opened = open_package(source, key=receiver_key, trust=None, destination=tmp_path / "x")
    assert (tmp_path / "x" / "vedtak.pdf").read_bytes() == kit.pdf
    assert opened.manifest is not None


def test_more_than_announced_is_refused_while_it_streams(
    receiver_key: Any, kit: Any, tmp_path: Path
) -> None:
    forsendelse = read_forsendelse({
        "id": "9b45ab9e-e13a-489e-832d-56e836c9a8bc",
        "mottaker": {"orgnr": kit.receiver}, "svarSendesTil": {"orgnr": kit.sender},
        "downloadUrl": "/forsendelse/9b45ab9e-e13a-489e-832d-56e836c9a8bc",
        "filmetadata": [{"filnavn": "vedtak.pdf", "mimetype": "application/pdf", "size": 10}],
    }, fallback_sender=None)
    download = list(encrypt([kit.pdf], receiver_key.certificate))
    with (tmp_path / "p.cms").open("wb") as out, pytest.raises(
        Unprocessable, match=r"vedtak\.pdf is larger than the 10 bytes filmetadata says"
    ):
        seal_forsendelse(forsendelse, download, key=receiver_key, out=out,
                         received=datetime.now(UTC), limit=1 << 20)


def _zip(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _bomb_zip(listed: tuple[str, bytes], bomb_name: str, size: int) -> bytes:
    """A ZIP of ``listed`` and then ``size`` bytes of zeros under ``bomb_name``, deflated to
    about a thousandth: one MiB's deflate blocks flushed to a byte boundary, repeated, in an
    entry whose sizes come after it (as streaming writers do)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = segment * (size >> 20) + b"\x03\x00"
    head = _zip(listed)
    head = head[: head.index(b"PK\x01\x02")]  # the local entry, without its directory
    name = bomb_name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0x0808, 8, 0, 0x21, 0, 0, 0,
                        len(name), 0)
    return head + local + name + stream + struct.pack("<4sIII", b"PK\x07\x08", 0, 0, 0)


def _forsendelse(kit: Any, files: list[dict[str, Any]]) -> Any:
    return read_forsendelse({
        "id": "9b45ab9e-e13a-489e-832d-56e836c9a8bc",
        "mottaker": {"orgnr": kit.receiver}, "svarSendesTil": {"orgnr": kit.sender},
        "downloadUrl": "/forsendelse/9b45ab9e-e13a-489e-832d-56e836c9a8bc",
        "filmetadata": files,
    }, fallback_sender=None)


BOMB = 4 << 30


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("a bomb after the announced file", r"holds bomb\.bin, not in filmetadata"),
        ("the announced file is a bomb of no announced size", r"over 100:1\): a zip bomb"),
        ("more files than announced", r"holds x1, not in filmetadata"),
    ],
)
def test_a_hostile_download_is_refused_within_its_limits(
    receiver_key: Any, kit: Any, tmp_path: Path, case: str, reason: str
) -> None:
    """Extra files are not unpacked to learn their names, and what is unpacked is held to the
    channel's limit and to a compression ratio: a bomb stops within its first megabytes."""
    vedtak = ("vedtak.pdf", kit.pdf)
    files: list[dict[str, Any]] = [{"filnavn": "vedtak.pdf", "mimetype": "application/pdf"}]
    if case == "a bomb after the announced file":
        plaintext = _bomb_zip(vedtak, "bomb.bin", BOMB)
    elif case == "the announced file is a bomb of no announced size":
        plaintext = _bomb_zip(("a.txt", b"a"), "vedtak.pdf", BOMB)
        files = [{"filnavn": "a.txt", "mimetype": "text/plain"}, *files]
    else:
        plaintext = _zip(vedtak, *((f"x{i}", b"") for i in range(1, 50_000)))
    forsendelse = _forsendelse(kit, files)
    download = list(encrypt([plaintext], receiver_key.certificate))
    started = time.monotonic()
    with (tmp_path / "p.cms").open("wb") as out, pytest.raises(Unprocessable, match=reason):
        seal_forsendelse(forsendelse, download, key=receiver_key, out=out,
                         received=datetime.now(UTC), limit=1 << 30)
    assert time.monotonic() - started < 5
    assert (tmp_path / "p.cms").stat().st_size < 64 << 20, "the bomb was not sealed to disk"


def test_looking_for_the_order_is_held_to_the_limits(receiver_key: Any, kit: Any) -> None:
    forsendelse = _forsendelse(kit, [{"filnavn": "vedtak.pdf"}, {"filnavn": "kart.png"}])
    plaintext = _bomb_zip(("kart.png", b"png"), "vedtak.pdf", BOMB)
    download = list(encrypt([plaintext], receiver_key.certificate))
    started = time.monotonic()
    with pytest.raises(Unprocessable, match="a zip bomb"):
        scan_order(download, forsendelse, receiver_key, limit=1 << 30)
    assert time.monotonic() - started < 5

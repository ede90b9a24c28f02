"""Sending through SvarUt: the forsendelse, its encrypted documents, the headers, no duplicates."""

from __future__ import annotations

import email
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from ipunkt.plugin import PermanentError, ReceiptStatus, TransientError
from ipunkt_dpf.fake import stored_documents


async def test_a_message_becomes_a_forsendelse_with_encrypted_documents(
    channel: Any, messages: Any, svarut: Any, kit: Any, svarut_key: Any, receiver_key: Any
) -> None:
    files = [kit.attachment("kart.png", b"\x89PNG\r\n\x1a\nbilde", "image/png"),
             kit.attachment("vedtak.pdf", kit.pdf, "application/pdf")]
    arkivmelding = kit.arkivmelding_xml(
        [("kart.png", "Vedlegg"), ("vedtak.pdf", "Hoveddokument")],
        extra={"gaardsnummer": "12", "bruksnummer": "7"},
    )
    answered_ref = "27991054-77b4-48ed-bf9b-ae36bb1b41d1"
    message = messages.make(files, arkivmelding=arkivmelding, security_level=4,
                            receiver_ref=answered_ref, forsendelse_type="Byggesøknad")

    result = await channel.send(message)

    assert result.statuses == (ReceiptStatus.SENDT, ReceiptStatus.LEVERT)
    stored = svarut.fake.forsendelser[result.external_reference]
    sent = stored.forsendelse
    assert sent["tittel"] == "Søknad om byggeløyve"
    assert sent["eksternReferanse"] == message.message_id
    assert sent["svarPaForsendelseId"] == answered_ref
    assert sent["sikkerhetsniva"] == "HOYESTE"
    assert sent["kryptert"] is True
    assert sent["forsendelsestype"] == "Byggesøknad"
    assert sent["mottaker"] == {"navn": "Mottaker kommune", "digitalId": kit.receiver}
    assert sent["svarSendesTil"] == {
        "navn": "Avsender kommune", "type": "ORGANISASJON", "digitalId": kit.sender,
        "adresse": {"adresselinje1": "Rådhusgata 1", "postnummer": "0151", "poststed": "Oslo"},
    }
    assert sent["metadataFraAvleverendeSystem"] == {
        "mappeSystemId": "43fbe161-7aac-4c9f-a888-d8167aab4144",
        "saksaar": 2024,
        "sakssekvensnummer": 7,
        "systemId": "430a6710-a3d4-4863-8bd0-5eb1021bee45",
        "journalaar": 2024,
        "journalsekvensnummer": 25,
        "journalpostnummer": 13,
        "journalposttype": "U",
        "journalstatus": "E",
        "journaldato": "2024-01-16T00:00:00+01:00",
        "dokumentetsDato": "2024-01-15T00:00:00+01:00",
        "tittel": "Søknad om byggeløyve",
        "saksbehandler": "Kari Nordmann",
        "ekstraMetadata": [{"key": "gaardsnummer", "value": "12"},
                           {"key": "bruksnummer", "value": "7"}],
    }
    # The main document first; what cannot be printed is excluded from print.
    assert sent["dokumenter"] == [
        {"filnavn": "vedtak.pdf", "mimeType": "application/pdf", "dokumentType": "Søknad"},
        {"filnavn": "kart.png", "mimeType": "image/png", "skalEkskluderesFraUtskrift": True,
         "dokumentType": "Søknad"},
    ]
    # SvarUt decrypted them with its key and queued them, re-encrypted, for the receiver.
    assert dict(stored_documents(stored.package, receiver_key)) == {
        "vedtak.pdf": kit.pdf, "kart.png": b"\x89PNG\r\n\x1a\nbilde",
    }
    assert stored.status == "KLAR_FOR_MOTTAK"


async def test_every_call_carries_the_token_and_the_integration(
    make_channel: Any, messages: Any, svarut: Any, kit: Any
) -> None:
    tokens = kit.tokens()
    channel = await make_channel(tokens=tokens)
    await channel.send(messages.make())
    calls = [s for s in svarut.spec.seen if s.path.startswith("/api/")]
    assert [c.path.rsplit("/", 1)[-1] for c in calls] == ["forsendelser", "organisasjon"]
    for call, token in zip(calls, tokens.issued, strict=True):
        assert call.headers["Authorization"] == f"Bearer {token}"
        assert call.headers["IntegrasjonId"] == svarut.sender.integration_id
        assert call.headers["IntegrasjonPassord"] == svarut.sender.integration_password
    assert tokens.scopes == [("ks:fiks",), ("ks:fiks",)]


def _parts(seen: Any) -> list[Any]:
    """The multipart parts of a recorded upload, as the email parser reads them."""
    head = f"Content-Type: {seen.headers['Content-Type']}\r\n\r\n".encode()
    return email.message_from_bytes(head + seen.body).get_payload()


async def test_openssl_decrypts_the_uploaded_documents_with_svarut_key(
    channel: Any, messages: Any, svarut: Any, kit: Any, svarut_key: Any, tmp_path: Path
) -> None:
    await channel.send(messages.make())
    (upload,) = svarut.sent("/organisasjon")
    forsendelse, *documents = _parts(upload)
    assert forsendelse.get_param("name", header="content-disposition") == "forsendelse"
    assert forsendelse.get_content_type() == "application/json"
    assert [d.get_filename() for d in documents] == ["vedtak.pdf", "kart.png"]
    assert [d.get_content_type() for d in documents] == ["application/pdf", "image/png"]
    (tmp_path / "svarut.pem").write_bytes(svarut_key.certificate.public_bytes(Encoding.PEM))
    (tmp_path / "svarut.key").write_bytes(svarut_key.private_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    plain = []
    for document in documents:
        (tmp_path / "part.cms").write_bytes(document.get_payload(decode=True))
        result = subprocess.run(
            ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(tmp_path / "part.cms"),
             "-recip", str(tmp_path / "svarut.pem"), "-inkey", str(tmp_path / "svarut.key")],
            capture_output=True, check=True,
        )
        plain.append(result.stdout)
    assert plain == [kit.pdf, b"\x89PNG\r\n\x1a\nbilde"]


async def test_a_resend_after_a_lost_answer_finds_the_first_forsendelse(
    channel: Any, messages: Any, svarut: Any
) -> None:
    message = messages.make()
    svarut.fake.faults.drop("send")
    with pytest.raises(TransientError):
        await channel.send(message)
    assert len(svarut.fake.forsendelser) == 1  # SvarUt took it; the answer was lost

    result = await channel.send(message)

    (first,) = svarut.fake.forsendelser
    assert result.external_reference == first
    assert result.statuses == (ReceiptStatus.SENDT, ReceiptStatus.LEVERT)
    assert len(svarut.sent("/organisasjon")) == 1
    assert [s.query for s in svarut.sent("/forsendelser") if s.method == "GET"] == [
        {"eksternRef": message.message_id}, {"eksternRef": message.message_id}
    ]


async def test_receipts_do_not_travel_by_svarut(channel: Any, messages: Any, svarut: Any,
                                                kit: Any) -> None:
    message = messages.make()
    receipt = replace(message, sbd=kit.sbd(message.message_id, message.conversation_id,
                                            kind="arkivmelding_kvittering"))
    result = await channel.send(receipt)
    assert result.statuses == (ReceiptStatus.SENDT, ReceiptStatus.LEVERT, ReceiptStatus.LEST)
    assert svarut.spec.seen == []


async def test_digital_only_sends_any_file_type_unprinted(
    make_channel: Any, messages: Any, svarut: Any, kit: Any
) -> None:
    channel = await make_channel(digital_only=True, konteringskode="IKT-42")
    files = [kit.attachment("notat.txt", b"hei", "text/plain")]
    result = await channel.send(messages.make(files))
    sent = svarut.fake.forsendelser[result.external_reference].forsendelse
    assert sent["kunDigitalLevering"] is True
    assert sent["konteringskode"] == "IKT-42"
    assert sent["dokumenter"] == [
        {"filnavn": "notat.txt", "mimeType": "text/plain", "dokumentType": "Søknad"}
    ]


def _pdf(kit: Any) -> Any:
    return kit.attachment("vedtak.pdf", kit.pdf, "application/pdf")


REJECTIONS: dict[str, tuple[Callable[[Any], dict[str, Any]], str]] = {
    "forbidden character": (
        lambda kit: {"files": [kit.attachment("vedtak?.pdf", kit.pdf, "application/pdf")]},
        "vedtak?.pdf' contains ?",
    ),
    "file name too long": (
        lambda kit: {"files": [kit.attachment("a" * 223 + ".pdf", kit.pdf, "application/pdf")]},
        "SvarUt takes at most 226",
    ),
    "no PDF to print": (
        lambda kit: {"files": [kit.attachment("notat.txt", b"hei", "text/plain")]},
        "none of its documents is a PDF",
    ),
    "PDF that is not one": (
        lambda kit: {"files": [kit.attachment("vedtak.pdf", b"<html>", "application/pdf")]},
        "vedtak.pdf is declared application/pdf but is not a PDF",
    ),
    "missing file": (
        lambda kit: {"files": [_pdf(kit)], "arkivmelding": kit.arkivmelding_xml(
            [("vedtak.pdf", "Hoveddokument"), ("borte.pdf", "Vedlegg")])},
        "names 'borte.pdf', which is not among the message's files",
    ),
    "file named twice": (
        lambda kit: {"files": [_pdf(kit)], "arkivmelding": kit.arkivmelding_xml(
            [("vedtak.pdf", "Hoveddokument"), ("vedtak.pdf", "Vedlegg")])},
        "names 'vedtak.pdf' twice",
    ),
    "no title": (
        lambda kit: {"files": [_pdf(kit)], "arkivmelding": kit.arkivmelding_xml(
            [("vedtak.pdf", "Hoveddokument")], title=None)},
        "has no offentligTittel or tittel",
    ),
    "too much metadata": (
        lambda kit: {"files": [_pdf(kit)], "arkivmelding": kit.arkivmelding_xml(
            [("vedtak.pdf", "Hoveddokument")], extra={f"felt{i}": "x" for i in range(21)})},
        "has 21 simple elements; SvarUt takes at most 20",
    ),
    "no arkivmelding.xml": (
        lambda kit: {"files": [_pdf(kit)], "drop": "arkivmelding.xml"},
        "a DPF message needs arkivmelding.xml",
    ),
    "broken arkivmelding.xml": (
        lambda kit: {"files": [_pdf(kit)], "arkivmelding": b"<arkivmelding"},
        "arkivmelding.xml cannot be used",
    ),
    "no certificate": (
        lambda kit: {"files": [_pdf(kit)], "record": {"service": {"identifier": "DPF"}}},
        "has no pemCertificate",
    ),
    "receiver not an organisation": (
        lambda kit: {"files": [_pdf(kit)], "receiver": "12345"},
        "not a 9-digit organisation number",
    ),
}


@pytest.mark.parametrize("case", REJECTIONS)
async def test_what_svarut_would_refuse_fails_before_anything_is_sent(
    case: str, channel: Any, messages: Any, svarut: Any, kit: Any
) -> None:
    build, reason = REJECTIONS[case]
    options = build(kit)
    drop = options.pop("drop", None)
    message = messages.make(options.pop("files"), **options)
    if drop:
        message = replace(message, attachments=[a for a in message.attachments
                                                if a.filename != drop])
    with pytest.raises(PermanentError) as refused:
        await channel.send(message)
    assert reason in str(refused.value)
    assert svarut.spec.seen == []


async def test_too_large_to_print_is_refused_unless_digital_only(
    make_channel: Any, messages: Any, svarut: Any, kit: Any
) -> None:
    files = [kit.attachment("vedtak.pdf", kit.pdf + b"x" * 1000, "application/pdf")]
    limited = await make_channel(printable_limit=1000)
    with pytest.raises(PermanentError, match="prints forsendelser of at most 1000 bytes"):
        await limited.send(messages.make(files))
    digital = await make_channel(printable_limit=1000, digital_only=True)
    assert (await digital.send(messages.make(files))).external_reference

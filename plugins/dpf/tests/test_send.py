"""Sending through SvarUt: the forsendelse, its encrypted documents, the headers, no duplicates."""

from __future__ import annotations

from typing import Any

from ipunkt.plugin import ReceiptStatus
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

"""Receiving through SvarInn: what one organisation sends, the other takes in, sealed for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ipunkt.package.manifest import IpManifest
from ipunkt.package.seal import open_package
from ipunkt.plugin import ReceiptStatus
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

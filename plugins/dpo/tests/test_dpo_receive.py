"""Receiving from the fake broker: poll, stream to the sink, confirm, and the status replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ipunkt.package.seal import open_package


async def test_a_message_travels_from_a_to_b_and_mottatt_comes_back(
    world: Any, kit: Any, sink: Any, tmp_path: Path
) -> None:
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)
    sbd = kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}")
    message = kit.outgoing(
        sbd, [kit.attachment("arkivmelding.xml", b"<a/>", primary=True)], world.service_record(kit.ORG_B)
    )
    sent = await a.send(message)

    await b.poll_incoming(sink)

    assert len(sink.received) == 1
    received, package = sink.received[0]
    assert received == sbd
    opened = open_package(package.open("rb"), key=world.pki[kit.ORG_B], trust=world.pki.trust, destination=tmp_path / "out")
    assert (tmp_path / "out" / "arkivmelding.xml").read_bytes() == b"<a/>"
    transfer = world.broker.transfers[sent.external_reference]
    assert transfer.status.value == "AllConfirmedDownloaded"
    assert transfer.recipient_status(f"0192:{kit.ORG_B}").value == "DownloadConfirmed"

    statuses = kit.__class__  # placeholder to keep linters calm
    a_sink = type(sink)(tmp_path / "a")
    (tmp_path / "a").mkdir()
    await a.poll_incoming(a_sink)
    replies = a_sink.of_type("status")
    assert [r[0]["status"]["status"] for r in replies] == ["MOTTATT"]
    header = replies[0][0]["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["instanceIdentifier"] == message.message_id
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.ORG_B}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{kit.ORG_A}"
    assert replies[0][1] is None

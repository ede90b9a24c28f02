"""Sending over the fake broker: the initialize body, sbd.zip, sealing, limits, resends."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package.seal import open_package
from ipunkt.plugin import ReceiptStatus


def _uploaded_zip(world: Any, transfer_id: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(world.broker.file_of(transfer_id).read_bytes()))


async def test_send_initializes_exactly_as_the_original_and_uploads_sbd_zip(
    world: Any, kit: Any, tmp_path: Path
) -> None:
    channel = await world.channel(kit.ORG_A)
    sbd = kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}")
    arkivmelding = b"<arkivmelding>...</arkivmelding>"
    message = kit.outgoing(
        sbd,
        [kit.attachment("arkivmelding.xml", arkivmelding), kit.attachment("test.txt", b"Testing 1 2 3", "text/plain")],
        world.service_record(kit.ORG_B),
    )

    result = await channel.send(message)

    assert result.statuses == (ReceiptStatus.SENDT,)
    initialize = [e for e in world.broker.journal if e.method == "POST" and e.path.endswith("/filetransfer")]
    assert len(initialize) == 1
    assert json.loads(initialize[0].body) == {
        "fileName": "sbd.zip",
        "resourceId": "eformidling-dpo-meldingsutveksling",
        "sendersFileTransferReference": message.message_id,
        "sender": f"0192:{kit.ORG_A}",
        "recipients": [f"0192:{kit.ORG_B}"],
        "propertyList": {},
        "checksum": None,
        "disableVirusScan": None,
    }
    transfer = world.broker.transfers[result.external_reference]
    assert transfer.status.value == "Published"
    with _uploaded_zip(world, transfer.id) as archive:
        assert archive.namelist() == ["sbd.json", "asic.zip"]
        assert json.loads(archive.read("sbd.json")) == sbd
        (tmp_path / "asic.zip").write_bytes(archive.read("asic.zip"))
    opened = open_package(
        (tmp_path / "asic.zip").open("rb"),
        key=world.pki[kit.ORG_B],
        trust=world.pki.trust,
        destination=tmp_path / "out",
    )
    assert opened.contents.trusted
    assert opened.manifest.receiver == f"0192:{kit.ORG_B}"
    assert opened.manifest.sender == f"0192:{kit.ORG_A}"
    assert opened.manifest.main_document.href == "arkivmelding.xml"
    assert (tmp_path / "out" / "arkivmelding.xml").read_bytes() == arkivmelding
    assert (tmp_path / "out" / "test.txt").read_bytes() == b"Testing 1 2 3"

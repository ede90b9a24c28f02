"""Receiving from the fake broker: poll, stream to the sink, confirm, and the status replies."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import structlog
from ipunkt.package.seal import open_package
from ipunkt.plugin import PermanentError, ReceiptStatus, TransientError
from ipunkt_dpo.fake import Fault, FaultKind

ARKIVMELDING = b"<arkivmelding>saksmappe</arkivmelding>"


async def _send(
    world: Any, kit: Any, channel: Any, sender: str, receiver: str, *,
    record: dict[str, Any] | None = None, **sbd: Any,
) -> Any:
    message = kit.outgoing(
        kit.arkivmelding_sbd(f"0192:{sender}", f"0192:{receiver}", **sbd),
        [kit.attachment("arkivmelding.xml", ARKIVMELDING, primary=True)],
        record or world.service_record(receiver),
    )
    await channel.send(message)
    return message


def _recipient_status(world: Any, transfer_id: str, organisation: str) -> str:
    return world.broker.transfers[transfer_id].recipient_status(f"0192:{organisation}").value


async def test_a_message_reaches_b_sealed_and_its_mottatt_reply_comes_back(
    world: Any, kit: Any, make_sink: Any, tmp_path: Path
) -> None:
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)
    message = await _send(world, kit, a, kit.ORG_A, kit.ORG_B)
    transfer_id = next(iter(world.broker.transfers))
    b_sink = make_sink()

    await b.poll_incoming(b_sink)

    [(received, package)] = b_sink.received
    assert received == message.sbd
    open_package(
        package.open("rb"),
        key=world.pki[kit.ORG_B],
        trust=world.pki.trust,
        destination=tmp_path / "out",
    )
    assert (tmp_path / "out" / "arkivmelding.xml").read_bytes() == ARKIVMELDING
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"
    assert world.broker.transfers[transfer_id].status.value == "AllConfirmedDownloaded"
    assert len(world.broker.transfers) == 1, "the core, not the poll, sends the reply"

    await b.send_reply(received, ReceiptStatus.MOTTATT)
    a_sink = make_sink()
    await a.poll_incoming(a_sink)
    [(reply, payload)] = a_sink.received
    assert payload is None
    assert reply["status"] == {"status": "MOTTATT"}
    header = reply["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["instanceIdentifier"] == message.message_id
    assert header["documentIdentification"]["standard"] == "urn:no:difi:eformidling:xsd::status"
    assert header["businessScope"]["scope"][0]["instanceIdentifier"] == message.conversation_id
    assert (
        header["businessScope"]["scope"][0]["identifier"]
        == "urn:no:difi:profile:arkivmelding:response:ver1.0"
    )
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.ORG_B}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{kit.ORG_A}"

    await a.poll_incoming(make_sink())
    assert len(world.broker.transfers) == 2, "a status message is not answered"


async def test_replies_mottatt_and_levert_are_separate_sends(
    world: Any, kit: Any, make_sink: Any
) -> None:
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)
    message = await _send(world, kit, a, kit.ORG_A, kit.ORG_B)
    b_sink = make_sink()
    await b.poll_incoming(b_sink)

    await b.send_reply(b_sink.received[0][0], ReceiptStatus.MOTTATT)
    await b.send_reply(b_sink.received[0][0], ReceiptStatus.LEVERT)

    a_sink = make_sink()
    await a.poll_incoming(a_sink)
    assert [s["status"]["status"] for s, _ in a_sink.of_type("status")] == ["MOTTATT", "LEVERT"]
    assert {
        s["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
        for s, _ in a_sink.received
    } == {message.message_id}


async def test_a_reply_to_a_message_without_parties_is_given_up(
    world: Any, kit: Any
) -> None:
    b = await world.channel(kit.ORG_B)
    sbd = kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}")
    del sbd["standardBusinessDocumentHeader"]["sender"]

    with pytest.raises(PermanentError, match="no status reply"):
        await b.send_reply(sbd, ReceiptStatus.LEVERT)


async def test_nothing_is_confirmed_before_the_sink_has_stored_it(
    world: Any, kit: Any, make_sink: Any
) -> None:
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)
    await _send(world, kit, a, kit.ORG_A, kit.ORG_B)
    transfer_id = next(iter(world.broker.transfers))
    failing = make_sink()
    failing.fail_with = TransientError("the store is full")

    with pytest.raises(TransientError, match="the store is full"):
        await b.poll_incoming(failing)

    assert failing.received == []
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadStarted"
    assert len(world.broker.transfers) == 1, "no MOTTATT for what was not stored"
    working = make_sink()
    await b.poll_incoming(working)
    assert len(working.received) == 1
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"


async def test_a_download_that_breaks_off_is_taken_at_the_next_poll(
    world: Any, kit: Any, make_sink: Any
) -> None:
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)
    await _send(world, kit, a, kit.ORG_A, kit.ORG_B)
    transfer_id = next(iter(world.broker.transfers))
    world.broker.inject(Fault(FaultKind.TRUNCATE, method="GET", path="/download$"))
    sink = make_sink()

    with pytest.raises(TransientError, match=r"broke off|not completed|payload"):
        await b.poll_incoming(sink)

    assert sink.received == []
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadStarted"
    await b.poll_incoming(sink)
    assert len(sink.received) == 1
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"


def _valid_sbd(kit: Any, **changes: Any) -> bytes:
    return json.dumps(
        kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}", **changes)
    ).encode()


def _valid_file(world: Any, kit: Any, **changes: Any) -> bytes:
    """A sound ``sbd.zip`` from A to B: the SBD and a package sealed for B."""
    package = kit.package(world.pki[kit.ORG_A], world.pki[kit.ORG_B])
    return kit.sbd_zip(("sbd.json", _valid_sbd(kit, **changes)), ("asic.zip", package))


def _replies(world: Any, kit: Any) -> list[dict[str, Any]]:
    """The SBDs of the status replies B put on the broker."""
    found = []
    for transfer in world.broker.transfers.values():
        if transfer.sender == f"0192:{kit.ORG_B}":
            with zipfile.ZipFile(transfer.path) as archive:
                found.append(json.loads(archive.read("sbd.json")))
    return found


@pytest.mark.parametrize(
    ("case", "reason", "told"),
    [
        ("not a zip", "not a readable ZIP", False),
        ("no sbd", "neither sbd.json nor content.xml", False),
        ("sbd not json", "sbd.json is not JSON", False),
        ("message id not a uuid", "messageId 'ikke-en-uuid' is not a UUID", False),
        ("no business message", "no 'arkivmelding' business message", True),
        ("two sbds", "more than one SBD", True),
        ("no package", "holds no asic.zip, which a arkivmelding message needs", True),
        # A's file says a third organisation sent it: neither stored under that name nor told.
        ("sbd names another sender", "the SBD says 0192:974720760 sent it; the broker says",
         False),
    ],
)
async def test_a_broken_file_is_confirmed_and_discarded_with_the_reason(
    world: Any, kit: Any, make_sink: Any, case: str, reason: str, told: bool
) -> None:
    build = {
        "not a zip": lambda: b"PK\x03\x04 this is not a zip file at all",
        "no sbd": lambda: kit.sbd_zip(("asic.zip", b"0\x80 sealed")),
        "sbd not json": lambda: kit.sbd_zip(("sbd.json", b"{not json")),
        "message id not a uuid": lambda: kit.sbd_zip(
            ("sbd.json", _valid_sbd(kit, message_id="ikke-en-uuid"))
        ),
        "no business message": lambda: kit.sbd_zip(("sbd.json", _valid_sbd(kit, body=[]))),
        "two sbds": lambda: kit.sbd_zip(
            ("sbd.json", _valid_sbd(kit)), ("sbd.json", _valid_sbd(kit))
        ),
        "no package": lambda: kit.sbd_zip(("sbd.json", _valid_sbd(kit))),
        "sbd names another sender": lambda: kit.sbd_zip(
            ("sbd.json", json.dumps(kit.arkivmelding_sbd("0192:974720760",
                                                         f"0192:{kit.ORG_B}")).encode()),
            ("asic.zip", kit.package(world.pki[kit.ORG_A], world.pki[kit.ORG_B])),
        ),
    }
    data = build[case]()
    transfer_id = await world.put_file(kit.ORG_A, kit.ORG_B, data)
    b = await world.channel(kit.ORG_B)
    sink = make_sink()

    with structlog.testing.capture_logs() as logs:
        await b.poll_incoming(sink)

    assert sink.received == []
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"
    discarded = [e for e in logs if e["event"] == "dpo: discarding a broken file"]
    assert len(discarded) == 1 and reason in discarded[0]["reason"], logs
    assert discarded[0]["file_transfer_id"] == transfer_id
    replies = _replies(world, kit)
    if not told:
        assert replies == [], "the sender cannot be read: nobody is told"
        return
    [reply] = replies
    archive = zipfile.ZipFile(io.BytesIO(data))
    sent = json.loads(archive.read(archive.infolist()[0]))  # the first SBD is the one read
    header = reply["standardBusinessDocumentHeader"]
    assert reply["status"]["status"] == "FEIL"
    assert reason in reply["status"]["description"]
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{kit.ORG_A}"
    assert (
        header["documentIdentification"]["instanceIdentifier"]
        == sent["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
    )


async def test_a_refused_file_is_confirmed_only_once_its_sender_was_told(
    world: Any, kit: Any, make_sink: Any
) -> None:
    """The FEIL reply goes out before the confirmation: if the broker cannot take it now, the
    file stays unconfirmed and is taken, refused and answered again at the next poll."""
    transfer_id = await world.put_file(kit.ORG_A, kit.ORG_B, kit.sbd_zip(("sbd.json",
                                                                          _valid_sbd(kit))))
    b = await world.channel(kit.ORG_B)
    world.broker.inject(Fault(status=503, method="POST", path="/filetransfer$"))

    with pytest.raises(TransientError):
        await b.poll_incoming(make_sink())

    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadStarted"
    assert _replies(world, kit) == []
    sink = make_sink()
    await b.poll_incoming(sink)
    assert sink.received == []
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"
    [reply] = _replies(world, kit)
    assert reply["status"]["status"] == "FEIL"
    assert "holds no asic.zip" in reply["status"]["description"]


@pytest.mark.parametrize("wrap_errors", [False, True])
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("the zip's crc", "CRC32IntegrityError"),
        ("the package", "container"),
    ],
)
async def test_a_file_found_broken_while_stored_is_confirmed_and_discarded(
    world: Any, kit: Any, make_sink: Any, wrap_errors: bool, damage: str, reason: str
) -> None:
    document = bytes(range(256)) * 400
    package = bytearray(
        kit.package(world.pki[kit.ORG_A], world.pki[kit.ORG_B], {"data.bin": document})
    )
    if damage == "the package":
        package[len(package) // 2] ^= 0x01  # one bit: a block of the document decrypts to noise
    data = bytearray(
        kit.sbd_zip(
            ("sbd.json", _valid_sbd(kit)), ("asic.zip", bytes(package)),
            compression=zipfile.ZIP_STORED,
        )
    )
    if damage == "the zip's crc":
        data[data.index(b"asic.zip") - 30 + 14] ^= 0xFF  # the local header's CRC-32
    transfer_id = await world.put_file(kit.ORG_A, kit.ORG_B, bytes(data))
    b = await world.channel(kit.ORG_B)
    sink = make_sink()
    sink.wrap_errors = wrap_errors

    with structlog.testing.capture_logs() as logs:
        await b.poll_incoming(sink)

    assert sink.received == []
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"
    [discarded] = [e for e in logs if e["event"] == "dpo: discarding a broken file"]
    assert reason in discarded["reason"], discarded
    [reply] = _replies(world, kit)
    assert reply["status"]["status"] == "FEIL" and reason in reply["status"]["description"]


async def test_a_file_left_unconfirmed_by_a_crash_is_taken_after_a_restart(
    world: Any, kit: Any, make_sink: Any
) -> None:
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)
    await _send(world, kit, a, kit.ORG_A, kit.ORG_B)
    transfer_id = next(iter(world.broker.transfers))
    failing = make_sink()
    failing.fail_with = TransientError("killed while storing")
    with pytest.raises(TransientError):
        await b.poll_incoming(failing)
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadStarted"

    restarted = await world.channel(kit.ORG_B)
    sink = make_sink()
    await restarted.poll_incoming(sink)

    assert len(sink.received) == 1
    assert _recipient_status(world, transfer_id, kit.ORG_B) == "DownloadConfirmed"
    listed = [
        e.query.get("recipientStatus")
        for e in world.broker.journal
        if e.path.endswith("/filetransfer") and e.method == "GET"
    ]
    assert ["DownloadStarted"] in listed, "a restarted channel looks for unconfirmed downloads"


async def test_legacy_content_xml_is_read(world: Any, kit: Any, make_sink: Any) -> None:
    content = f"""<?xml version="1.0" encoding="UTF-8"?>
<StandardBusinessDocument xmlns="http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader">
  <StandardBusinessDocumentHeader>
    <HeaderVersion>1.0</HeaderVersion>
    <Sender><Identifier Authority="iso6523-actorid-upis">9908:{kit.ORG_A}</Identifier></Sender>
    <Receiver><Identifier Authority="iso6523-actorid-upis">9908:{kit.ORG_B}</Identifier></Receiver>
    <DocumentIdentification>
      <Standard>urn:no:difi:arkivmelding:xsd::arkivmelding</Standard>
      <TypeVersion>2.0</TypeVersion>
      <InstanceIdentifier>ff88849c-e281-4809-8555-7cd54952b919</InstanceIdentifier>
      <Type>arkivmelding</Type>
      <CreationDateAndTime>2019-03-25T11:35:00+01:00</CreationDateAndTime>
    </DocumentIdentification>
    <BusinessScope>
      <Scope>
        <Type>ConversationId</Type>
        <InstanceIdentifier>37efbd4c-413d-4e2c-bbc5-257ef4a65a45</InstanceIdentifier>
        <Identifier>urn:no:difi:profile:arkivmelding:administrasjon:ver1.0</Identifier>
        <ScopeInformation><ExpectedResponseDateTime>2019-05-10T01:31:52+02:00</ExpectedResponseDateTime></ScopeInformation>
      </Scope>
    </BusinessScope>
  </StandardBusinessDocumentHeader>
  <arkivmelding xmlns="urn:no:difi:meldingsutveksling:2.0">
    <sikkerhetsnivaa>3</sikkerhetsnivaa>
    <hoveddokument>arkivmelding.xml</hoveddokument>
  </arkivmelding>
</StandardBusinessDocument>""".encode()
    package = kit.package(world.pki[kit.ORG_A], world.pki[kit.ORG_B])
    await world.put_file(
        kit.ORG_A, kit.ORG_B, kit.sbd_zip(("content.xml", content), ("asic.zip", package))
    )
    b = await world.channel(kit.ORG_B)
    sink = make_sink()

    await b.poll_incoming(sink)

    [(sbd, stored)] = sink.received
    header = sbd["standardBusinessDocumentHeader"]
    assert header["sender"] == [
        {"identifier": {"authority": "iso6523-actorid-upis", "value": f"9908:{kit.ORG_A}"}}
    ]
    assert (
        header["documentIdentification"]["instanceIdentifier"]
        == "ff88849c-e281-4809-8555-7cd54952b919"
    )
    assert header["businessScope"]["scope"][0] == {
        "type": "ConversationId",
        "instanceIdentifier": "37efbd4c-413d-4e2c-bbc5-257ef4a65a45",
        "identifier": "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
        "scopeInformation": [{"expectedResponseDateTime": "2019-05-10T01:31:52+02:00"}],
    }
    assert sbd["arkivmelding"] == {"sikkerhetsnivaa": "3", "hoveddokument": "arkivmelding.xml"}
    assert stored.read_bytes() == package


async def test_a_package_before_its_sbd_is_spooled(world: Any, kit: Any, make_sink: Any) -> None:
    sealed = kit.package(
        world.pki[kit.ORG_A], world.pki[kit.ORG_B], {"data.bin": bytes(range(256)) * 5000}
    )
    await world.put_file(
        kit.ORG_A, kit.ORG_B, kit.sbd_zip(("asic.zip", sealed), ("sbd.json", _valid_sbd(kit)))
    )
    b = await world.channel(kit.ORG_B)
    sink = make_sink()

    await b.poll_incoming(sink)

    [(_, package)] = sink.received
    assert package.read_bytes() == sealed


async def test_a_duplicate_is_confirmed_but_handed_on_once(
    world: Any, kit: Any, make_sink: Any
) -> None:
    data = _valid_file(world, kit, message_id="0a8f3d1c-5a4b-4bb0-9f5e-1d2c3b4a5f60")
    first = await world.put_file(kit.ORG_A, kit.ORG_B, data)
    second = await world.put_file(kit.ORG_A, kit.ORG_B, data)
    b = await world.channel(kit.ORG_B)
    sink = make_sink()

    await b.poll_incoming(sink)

    assert len(sink.received) == 1
    assert _recipient_status(world, first, kit.ORG_B) == "DownloadConfirmed"
    assert _recipient_status(world, second, kit.ORG_B) == "DownloadConfirmed"


async def test_oldest_first(world: Any, kit: Any, make_sink: Any) -> None:
    ids = [
        "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
        "2b4e28ba-2fa1-41d2-883f-0016d3cca427",
        "3b4e28ba-2fa1-41d2-883f-0016d3cca427",
    ]
    for message_id in ids:
        await world.put_file(kit.ORG_A, kit.ORG_B, _valid_file(world, kit, message_id=message_id))
    b = await world.channel(kit.ORG_B)
    sink = make_sink()

    await b.poll_incoming(sink)

    taken = [
        s["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
        for s, _ in sink.received
    ]
    assert taken == ids


async def test_message_channels_split_the_files_of_one_organisation(
    world: Any, kit: Any, make_sink: Any
) -> None:
    plain = await world.put_file(kit.ORG_A, kit.ORG_B, _valid_file(world, kit))
    channelled = await world.put_file(
        kit.ORG_A, kit.ORG_B, _valid_file(world, kit), reference="saksbehandling"
    )
    other = await world.put_file(
        kit.ORG_A, kit.ORG_B, _valid_file(world, kit), reference="arkiv"
    )
    without = await world.channel(kit.ORG_B)
    with_channel = await world.channel(kit.ORG_B, message_channel="saksbehandling")

    first, second = make_sink(), make_sink()
    await without.poll_incoming(first)
    await with_channel.poll_incoming(second)

    assert len(first.received) == 1 and len(second.received) == 1
    assert _recipient_status(world, plain, kit.ORG_B) == "DownloadConfirmed"
    assert _recipient_status(world, channelled, kit.ORG_B) == "DownloadConfirmed"
    assert _recipient_status(world, other, kit.ORG_B) == "Initialized", "nobody's channel"


async def test_the_status_reply_goes_back_on_the_message_channel(
    world: Any, kit: Any, make_sink: Any
) -> None:
    channel_scope = {
        "type": "MessageChannel",
        "identifier": "saksbehandling",
        "instanceIdentifier": "",
    }
    a_channel = await world.channel(kit.ORG_A, message_channel="saksbehandling")
    a_plain = await world.channel(kit.ORG_A)
    b = await world.channel(kit.ORG_B)
    await _send(world, kit, a_channel, kit.ORG_A, kit.ORG_B, extra_scopes=[channel_scope])
    b_sink = make_sink()
    await b.poll_incoming(b_sink)
    await b.send_reply(b_sink.received[0][0], ReceiptStatus.MOTTATT)

    reply = [t for t in world.broker.transfers.values() if t.sender == f"0192:{kit.ORG_B}"]
    assert [t.reference for t in reply] == ["saksbehandling"]
    plain_sink, channel_sink = make_sink(), make_sink()
    await a_plain.poll_incoming(plain_sink)
    await a_channel.poll_incoming(channel_sink)
    assert plain_sink.received == []
    [(status, _)] = channel_sink.received
    assert status["status"] == {"status": "MOTTATT"}
    assert status["standardBusinessDocumentHeader"]["businessScope"]["scope"][1] == channel_scope


async def test_files_for_a_reportee_are_taken_with_its_system_user(
    world: Any, kit: Any, make_sink: Any
) -> None:
    b = await world.channel(kit.ORG_B)
    a = await world.channel(kit.ORG_A, reportees=(kit.REPORTEE,))
    # The reportee's record names the certificate of the integration point that takes its
    # files: packages for it are opened with A's key.
    record = {**world.service_record(kit.REPORTEE),
              "pemCertificate": world.service_record(kit.ORG_A)["pemCertificate"]}
    message = await _send(world, kit, b, kit.ORG_B, kit.REPORTEE, record=record)
    sink = make_sink()

    await a.poll_incoming(sink)

    [(sbd, _)] = sink.received
    assert sbd == message.sbd
    assert ((("altinn:broker.read",), kit.REPORTEE)) in world.tokens[kit.ORG_A].calls
    await a.send_reply(sbd, ReceiptStatus.MOTTATT)
    [reply] = [t for t in world.broker.transfers.values() if t.sender == f"0192:{kit.REPORTEE}"]
    assert reply.recipients == [f"0192:{kit.ORG_B}"]
    b_sink = make_sink()
    await b.poll_incoming(b_sink)
    assert [s["status"]["status"] for s, _ in b_sink.received] == ["MOTTATT"]


async def test_a_poll_takes_more_than_the_broker_lists_at_once(
    world: Any, kit: Any, make_sink: Any
) -> None:
    package = kit.package(world.pki[kit.ORG_A], world.pki[kit.ORG_B])
    for _ in range(105):
        await world.put_file(
            kit.ORG_A, kit.ORG_B, kit.sbd_zip(("sbd.json", _valid_sbd(kit)), ("asic.zip", package))
        )
    b = await world.channel(kit.ORG_B)
    sink = make_sink()

    await b.poll_incoming(sink)

    assert len(sink.received) == 105
    lists = [
        e for e in world.broker.journal if e.method == "GET" and e.path.endswith("/filetransfer")
    ]
    assert [
        len(json.loads(e.response_body))
        for e in lists
        if e.query.get("recipientStatus") == ["Initialized"]
    ] == [100, 5]

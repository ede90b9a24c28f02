"""Sending digital post and letters for print through the fake access point, over HTTP."""

from __future__ import annotations

import base64
import dataclasses
import email.parser
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package import jws
from ipunkt.package.testcerts import make_ca, pem
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import PermanentError, ReceiptStatus, TransientError
from ipunkt_dpi.fake import Fault
from ipunkt_dpi.published_schemas import PublishedSchemas


def _parts(exchange: Any) -> dict[str, Any]:
    """The multipart form of a recorded request, part by name."""
    raw = f"Content-Type: {exchange.headers['Content-Type']}\r\n\r\n".encode() + bytes(
        exchange.body
    )
    form = email.parser.BytesParser().parsebytes(raw)
    return {
        part.get_param("name", header="content-disposition"): part for part in form.get_payload()
    }


async def test_digital_message_reaches_the_mailbox(
    make_channel: Any, fake: Any, kit: Any, recorder: Any, specs: Path, our_key: Any
) -> None:
    channel = await make_channel()
    attachment_bytes = b"attachment " * 5000
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [
            kit.attachment("vedtak.pdf", kit.PDF, primary=True, title="Vedtak"),
            kit.attachment("vedlegg.txt", attachment_bytes, mime="text/plain"),
        ],
    )
    result = await channel.send(outgoing)

    assert result.statuses == (ReceiptStatus.SENDT,)
    assert result.external_reference == outgoing.message_id
    shipment = fake.shipments[outgoing.message_id]
    assert shipment.kind == "digital"
    assert shipment.files["vedtak.pdf"].read_bytes() == kit.PDF
    assert shipment.files["vedlegg.txt"].read_bytes() == attachment_bytes
    assert shipment.manifest.postkasseadresse == kit.CITIZEN
    assert shipment.manifest.main_document.title == "Vedtak"
    assert [d.href for d in shipment.manifest.attachments] == ["vedlegg.txt"]
    assert shipment.manifest.attachments[0].title == "Missing title"
    assert [s["status"] for s in shipment.statuses] == ["OPPRETTET"]
    assert shipment.kanal == "no_difi_move_integrasjonspunkt"

    (post,) = [e for e in recorder.exchanges if e.method == "POST"]
    assert post.url.path == "/dpi/messages/out"
    assert post.url.query["kanal"] == "no_difi_move_integrasjonspunkt"
    assert post.status == 201
    parts = _parts(post)
    assert list(parts) == ["forretningsmelding", "dokumentpakke"]
    assert parts["forretningsmelding"].get_content_type() == "application/jwt"
    assert parts["forretningsmelding"].get_filename() == "sbd.jwt"
    assert parts["dokumentpakke"].get_content_type() == "application/cms"
    assert parts["dokumentpakke"].get_filename() == "asic.cms"

    token = parts["forretningsmelding"].get_payload(decode=True).decode()
    verified = jws.verify(token, trust=TrustStore([our_key.chain[-1]]))
    assert verified.header["alg"] == "RS256"
    assert verified.certificate == our_key.certificate
    document = verified.json()
    assert PublishedSchemas(specs).errors("digital", document) == []
    digital = document["standardBusinessDocument"]["digital"]
    package = parts["dokumentpakke"].get_payload(decode=True)
    assert digital["dokumentpakkefingeravtrykk"] == {
        "digestMethod": "http://www.w3.org/2001/04/xmlenc#sha256",
        "digestValue": base64.b64encode(hashlib.sha256(package).digest()).decode(),
    }
    bearer = post.headers["Authorization"].removeprefix("Bearer ")
    assert digital["maskinportentoken"] == bearer
    header = document["standardBusinessDocument"]["standardBusinessDocumentHeader"]
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.ORG}"
    assert (
        header["receiver"][0]["identifier"]["value"] == f"0192:{fake.mailbox.organisation_number}"
    )
    assert header["documentIdentification"]["instanceIdentifier"] == outgoing.message_id
    assert header["businessScope"]["scope"][0]["instanceIdentifier"] == outgoing.conversation_id


async def test_print_letter_goes_to_the_print_provider(
    make_channel: Any, fake: Any, kit: Any, specs: Path
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "print",
        kit.service_record(fake, printing=True),
        kit.print_body(utskriftsfarge="FARGE", posttype="A_PRIORITERT"),
        [kit.attachment("brev.pdf", kit.PDF, primary=True)],
    )
    await channel.send(outgoing)

    shipment = fake.shipments[outgoing.message_id]
    assert shipment.kind == "utskrift"
    assert shipment.provider == fake.printer.organisation_number
    assert shipment.manifest.postkasseadresse is None
    assert shipment.files["brev.pdf"].read_bytes() == kit.PDF
    assert PublishedSchemas(specs).errors("utskrift", shipment.business_message) == []
    utskrift = shipment.business_message["standardBusinessDocument"]["utskrift"]
    assert utskrift["utskriftstype"] == "FARGE"
    assert utskrift["posttype"] == "A"
    assert utskrift["mottaker"] == {
        "navn": "Kari Nordmann",
        "adresselinje1": "Storgata 1",
        "postnummer": "0155",
        "poststed": "Oslo",
    }
    assert utskrift["retur"]["returposthaandtering"] == "DIREKTE_RETUR"


async def test_print_without_a_receiver_goes_to_the_configured_print_provider(
    make_channel: Any, fake: Any, kit: Any, tmp_path: Path
) -> None:
    certificate = tmp_path / "print-provider.pem"
    certificate.write_bytes(pem(fake.printer.certificate))
    channel = await make_channel(
        print_provider=fake.printer.organisation_number, print_certificate=certificate
    )
    letter = dataclasses.replace(
        kit.message("print", None, kit.print_body(), [kit.attachment("brev.pdf", kit.PDF)]),
        receiver="",
    )
    await channel.send(letter)
    shipment = fake.shipments[letter.message_id]
    assert (shipment.kind, shipment.provider) == ("utskrift", fake.printer.organisation_number)
    assert shipment.files["brev.pdf"].read_bytes() == kit.PDF


async def test_metadata_documents_travel_as_the_documents_data(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(metadataFiler={"vedtak.pdf": "lenke.xml"}),
        [
            kit.attachment("vedtak.pdf", kit.PDF, primary=True),
            kit.attachment("lenke.xml", b"<lenke/>", mime="application/vnd.difi.dpi.lenke+xml"),
        ],
    )
    await channel.send(outgoing)
    manifest = fake.shipments[outgoing.message_id].manifest
    assert manifest.attachments == ()
    assert manifest.main_document.metadata_href == "lenke.xml"
    assert manifest.main_document.metadata_mime == "application/vnd.difi.dpi.lenke+xml"


async def test_kanal_is_configurable_and_optional(
    make_channel: Any, fake: Any, kit: Any, recorder: Any
) -> None:
    for kanal, expected in (("my.ip.1", "my_ip_1"), (None, None)):
        channel = await make_channel(kanal=kanal)
        outgoing = kit.message(
            "digital",
            kit.service_record(fake),
            kit.digital_body(),
            [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        )
        await channel.send(outgoing)
        assert fake.shipments[outgoing.message_id].kanal == expected
        assert recorder.exchanges[-1].url.query.get("kanal") == expected


async def test_package_sealed_to_a_certificate_the_mailbox_cannot_open_is_refused(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    stranger = make_ca("another CA").issue("999999999")
    record = kit.service_record(fake, pemCertificate=pem(stranger.certificate).decode())
    channel = await make_channel()
    outgoing = kit.message(
        "digital", record, kit.digital_body(), [kit.attachment("vedtak.pdf", kit.PDF, primary=True)]
    )
    with pytest.raises(PermanentError, match=r"HTTP 400.*dokumentpakke"):
        await channel.send(outgoing)
    assert outgoing.message_id not in fake.shipments


async def test_signed_by_a_certificate_the_access_point_does_not_trust_is_refused(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    fake.sender_trust = TrustStore([make_ca("someone else").certificate])
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    with pytest.raises(PermanentError, match=r"HTTP 400.*not trusted"):
        await channel.send(outgoing)


async def test_resending_the_same_message_delivers_it_once(
    make_channel: Any, fake: Any, kit: Any
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    await channel.send(outgoing)
    await channel.send(outgoing)
    assert len(fake.shipments) == 1
    assert [s["status"] for s in fake.shipments[outgoing.message_id].statuses] == ["OPPRETTET"]


@pytest.mark.parametrize(
    ("fault", "error", "retry_after"),
    [
        (Fault(status=429, retry_after="7"), TransientError, 7.0),
        (Fault(status=503), TransientError, None),
        (Fault(status=403), PermanentError, None),
    ],
)
async def test_access_point_errors_are_classified(
    make_channel: Any,
    fake: Any,
    kit: Any,
    fault: Fault,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    fake.add_fault(fault)
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    with pytest.raises(error, match=f"HTTP {fault.status}") as raised:
        await channel.send(outgoing)
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after
    assert outgoing.message_id not in fake.shipments
    await channel.send(outgoing)
    assert outgoing.message_id in fake.shipments


async def test_spool_files_are_removed(
    make_channel: Any, fake: Any, kit: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    channel = await make_channel(spool_directory=spool)
    good = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    await channel.send(good)
    fake.add_fault(Fault(status=500))
    with pytest.raises(TransientError):
        await channel.send(
            kit.message(
                "digital",
                kit.service_record(fake),
                kit.digital_body(),
                [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
            )
        )
    assert list(spool.iterdir()) == []


async def test_unreachable_access_point_is_transient(
    kit: Any, fake: Any, our_key: Any, anchors: Path
) -> None:
    from ipunkt.plugin import ChannelContext
    from ipunkt.testing import free_port
    from ipunkt_dpi.channel import DPIChannel
    from ipunkt_dpi.config import DPIConfig

    config = DPIConfig(
        enabled=True,
        access_point_url=f"http://127.0.0.1:{free_port()}/dpi",
        trust_anchors=(anchors,),
    )
    channel = DPIChannel(
        ChannelContext(organisation=kit.ORG, config=config, key=our_key, tokens=kit.Tokens())
    )
    await channel.start()
    try:
        with pytest.raises(TransientError, match="take the message failed"):
            await channel.send(
                kit.message(
                    "digital",
                    kit.service_record(fake),
                    kit.digital_body(),
                    [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
                )
            )
    finally:
        await channel.stop()


def test_the_openapi_check_catches_requests_and_answers_the_spec_does_not_allow(
    access_point_spec: Any, kit: Any
) -> None:
    from yarl import URL

    wrong_path = kit.Exchange("POST", URL("http://127.0.0.1:1/dpi/messages/out/123"))
    assert access_point_spec.errors(wrong_path)
    wrong_body = kit.Exchange(
        "POST",
        URL("http://127.0.0.1:1/dpi/messages/out"),
        {"Content-Type": "application/json"},
        bytearray(json.dumps({"forretningsmelding": 1}).encode()),
    )
    assert access_point_spec.errors(wrong_body)
    wrong_answer = kit.Exchange(
        "GET",
        URL("http://127.0.0.1:1/dpi/messages/in"),
        status=200,
        response_headers={"Content-Type": "application/json"},
        response_body=bytearray(b'{"forretningsmelding": "x"}'),
    )
    assert access_point_spec.errors(wrong_answer)
    right_answer = kit.Exchange(
        "GET",
        URL("http://127.0.0.1:1/dpi/messages/in?kanal=a&page_size=1"),
        {"Authorization": "Bearer token"},
        status=200,
        response_headers={"Content-Type": "application/json"},
        response_body=bytearray(b'[{"forretningsmelding": "x"}]'),
    )
    assert access_point_spec.errors(right_answer) == []


async def test_the_channel_will_not_start_without_key_tokens_or_trust_anchors(
    kit: Any, our_key: Any, anchors: Path, tmp_path: Path
) -> None:
    from ipunkt.plugin import ChannelContext, ConfigurationError
    from ipunkt_dpi.channel import DPIChannel
    from ipunkt_dpi.config import DPIConfig

    config = DPIConfig(enabled=True, trust_anchors=(anchors,))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("no certificate here")
    cases = {
        "organisation's key": ChannelContext(kit.ORG, config, tokens=kit.Tokens()),
        "Maskinporten": ChannelContext(kit.ORG, config, key=our_key),
        "trust_anchors is empty": ChannelContext(
            kit.ORG, DPIConfig(enabled=True), key=our_key, tokens=kit.Tokens()
        ),
        "channels.dpi.trust_anchors: ": ChannelContext(
            kit.ORG,
            DPIConfig(enabled=True, trust_anchors=(not_pem,)),
            key=our_key,
            tokens=kit.Tokens(),
        ),
    }
    cases["channels.dpi.print_certificate: "] = ChannelContext(
        kit.ORG,
        DPIConfig(
            enabled=True,
            trust_anchors=(anchors,),
            print_provider="974761076",
            print_certificate=not_pem,
        ),
        key=our_key,
        tokens=kit.Tokens(),
    )
    for reason, context in cases.items():
        with pytest.raises(ConfigurationError, match=reason):
            await DPIChannel(context).start()
    with pytest.raises(ValueError, match="print_provider and print_certificate together"):
        DPIConfig(enabled=True, print_provider="974761076")


async def test_sending_on_behalf_of_another_organisation(
    make_channel: Any, fake: Any, kit: Any, recorder: Any
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        sender=f"0192:{kit.ORG}:987654321",
    )
    await channel.send(outgoing)
    shipment = fake.shipments[outgoing.message_id]
    sbd = shipment.business_message["standardBusinessDocument"]
    assert sbd["standardBusinessDocumentHeader"]["sender"][0]["identifier"]["value"] == (
        f"0192:{kit.ORG}"
    )
    assert sbd["digital"]["avsender"]["virksomhetsidentifikator"]["value"] == "0192:987654321"
    assert shipment.manifest.sender == "0192:987654321"
    claims = json.loads(
        base64.urlsafe_b64decode(sbd["digital"]["maskinportentoken"].split(".")[1] + "==")
    )
    assert claims["consumer"]["ID"] == "0192:987654321"

    undelegated = await make_channel(tokens=kit.Tokens(delegations=False))
    other = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        sender=f"0192:{kit.ORG}:987654321",
    )
    with pytest.raises(PermanentError, match="HTTP 403: Forbidden: the token acts for"):
        await undelegated.send(other)

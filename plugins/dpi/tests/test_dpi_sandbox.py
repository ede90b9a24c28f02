"""DPI through ``ipunkt sandbox``, driven as a fagsystem drives integration point A: the Next
Move API over HTTP (create a ``digital`` or ``print`` message, upload a PDF, send, watch
``/api/statuses``), to the sandbox's sample citizens behind the fake access point. What the
access point received is read from its control API, as a sandbox user would."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.testing import free_port, specs_dir
from ipunkt_dpi.fake import DEFAULT_MAILBOX, DEFAULT_PRINT
from ipunkt_dpi.published_schemas import PublishedSchemas
from ipunkt_dpi.sandbox import (
    DIGITAL_CITIZEN,
    INFO,
    MOVED_CITIZEN,
    RESERVED_CITIZEN,
    VEDTAK,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STANDARDS = {
    "digital": "urn:no:difi:digitalpost:xsd:digital::digital",
    "print": "urn:no:difi:digitalpost:xsd:fysisk::print",
    "digital_dpv": "urn:no:difi:digitalpost:xsd:digital::digital_dpv",
}
PDF = b"%PDF-1.7\n% vedtak\n" + bytes(range(256)) * 256 + b"\n%%EOF\n"


class Fagsystem:
    """Integration point A as its fagsystem talks to it, and the fake access point's control
    API as a sandbox user reads it."""

    def __init__(self, session: aiohttp.ClientSession, state: dict[str, Any]) -> None:
        a = state["organisations"][0]
        self.session = session
        self.url = a["url"]
        self.organisation = a["organisation"]
        self.access_point = state["fakes"]["dpi-access-point"]
        self.auth = {"Authorization": aiohttp.encode_basic_auth(a["username"], a["password"])}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        async with self.session.request(
            method, f"{self.url}{path}", headers=headers, **kwargs
        ) as response:
            body = await response.json() if response.content_type.endswith("json") else None
            return response.status, body

    def sbd(
        self, kind: str, citizen: str, body: dict[str, Any], *, process: str = VEDTAK
    ) -> dict[str, Any]:
        return {
            "standardBusinessDocumentHeader": {
                "headerVersion": "1.0",
                "sender": [
                    {
                        "identifier": {
                            "value": f"0192:{self.organisation}",
                            "authority": "iso6523-actorid-upis",
                        }
                    }
                ],
                "receiver": [
                    {"identifier": {"value": citizen, "authority": "iso6523-actorid-upis"}}
                ],
                "documentIdentification": {
                    "standard": STANDARDS[kind],
                    "typeVersion": "1.0",
                    "instanceIdentifier": str(uuid.uuid4()),
                    "type": kind,
                },
                "businessScope": {
                    "scope": [
                        {
                            "type": "ConversationId",
                            "instanceIdentifier": str(uuid.uuid4()),
                            "identifier": process,
                        }
                    ]
                },
            },
            kind: body,
        }

    async def create(self, sbd: dict[str, Any]) -> tuple[int, Any]:
        return await self.call("POST", "/api/messages/out", json=sbd)

    async def send(self, sbd: dict[str, Any], *, before_send: Any = None) -> str:
        """Create, upload the PDF, send; the message id."""
        status, created = await self.create(sbd)
        assert status == 200, json.dumps(created)
        message_id = created["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"
        ]
        status, body = await self.call(
            "PUT",
            f"/api/messages/out/{message_id}",
            params={"title": "Vedtak"},
            data=PDF,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": 'attachment; filename="vedtak.pdf"',
            },
        )
        assert status == 200, body
        if before_send is not None:
            await before_send(created)
        status, body = await self.call("POST", f"/api/messages/out/{message_id}")
        assert status == 200, body
        return message_id

    async def statuses(self, message_id: str) -> list[dict[str, Any]]:
        status, page = await self.call(
            "GET", "/api/statuses", params={"messageId": message_id, "size": "50"}
        )
        assert status == 200, page
        return list(page["content"])

    async def wait_for(self, message_id: str, wanted: str, timeout: float = 60) -> list[str]:
        names: list[str] = []
        for _ in range(int(timeout * 5)):
            names = [s["status"] for s in await self.statuses(message_id)]
            if wanted in names:
                return names
            await asyncio.sleep(0.2)
        raise AssertionError(f"{message_id} never reached {wanted}: {names}")

    async def shipment(self, message_id: str) -> dict[str, Any]:
        """What the fake access point took for this message (and gave its providers)."""
        async with self.session.get(f"{self.access_point}/_fake/shipments") as response:
            shipments = await response.json()
        return next(s for s in shipments if s["messageId"] == message_id)

    async def shipments(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.access_point}/_fake/shipments") as response:
            return list(await response.json())

    async def script(self, key: str, *steps: dict[str, Any]) -> None:
        async with self.session.post(
            f"{self.access_point}/_fake/scripts", json={"key": key, "steps": list(steps)}
        ) as response:
            assert response.status == 204, await response.text()


@pytest.fixture(scope="module")
def specs() -> Path:
    return specs_dir()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def a(tmp_path_factory: pytest.TempPathFactory, specs: Path) -> AsyncIterator[Fagsystem]:
    """The sandbox with only the DPI plugin's part; its fake checks uploads against the specs."""
    folder = tmp_path_factory.mktemp("sandbox")
    box = Sandbox(folder, load_plugins(allow=["dpi"]), (free_port(), free_port()), specs=specs)
    state = await box.start()
    try:
        assert {s["identifier"] for s in state["receivers"]["DPI"]} == {
            DIGITAL_CITIZEN.number,
            RESERVED_CITIZEN.number,
            MOVED_CITIZEN.number,
        }
        async with aiohttp.ClientSession() as session:
            yield Fagsystem(session, state)
    finally:
        await box.stop()


def digital(**info: Any) -> dict[str, Any]:
    return {
        "sikkerhetsnivaa": 4,
        "hoveddokument": "vedtak.pdf",
        "tittel": "Vedtak om barnehageplass",
        "spraak": "NO",
        "digitalPostInfo": {"virkningsdato": "2026-12-01", "aapningskvittering": False, **info},
        "varsler": {"epostTekst": "Du har fått post", "smsTekst": "Du har fått post"},
    }


async def test_digital_post_reaches_levert_and_lest_when_an_opening_receipt_is_asked_for(
    a: Fagsystem,
) -> None:
    plain, opened = await asyncio.gather(
        a.send(a.sbd("digital", DIGITAL_CITIZEN.number, digital())),
        a.send(a.sbd("digital", DIGITAL_CITIZEN.number, digital(aapningskvittering=True))),
    )
    assert await a.wait_for(opened, "LEST") == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]
    assert await a.wait_for(plain, "LEVERT") == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    await asyncio.sleep(2)  # past the step an opening receipt would have come in
    assert [s["status"] for s in await a.statuses(plain)][-1] == "LEVERT"

    shipment = await a.shipment(opened)
    assert (shipment["type"], shipment["provider"]) == ("digital", DEFAULT_MAILBOX)
    assert shipment["receipts"] == ["leveringskvittering", "aapningskvittering"]
    assert shipment["files"] == ["manifest.xml", "vedtak.pdf"]
    sbd = shipment["forretningsmelding"]["standardBusinessDocument"]
    receiver = sbd["standardBusinessDocumentHeader"]["receiver"][0]["identifier"]["value"]
    assert receiver == f"0192:{DEFAULT_MAILBOX}"
    body = sbd["digital"]
    assert body["mottaker"] == {"postkasseadresse": DIGITAL_CITIZEN.mailbox_address}
    assert body["aapningskvittering"] is True and body["sikkerhetsnivaa"] == 4
    assert body["varsler"]["epostvarsel"]["epostadresse"] == "kari.digital@example.org"
    assert body["varsler"]["smsvarsel"]["mobiltelefonnummer"] == "+4799999999"
    status, conversation = await a.call("GET", f"/api/conversations/messageId/{opened}")
    assert status == 200 and conversation["serviceIdentifier"] == "DPI"


async def test_a_letter_to_a_reserved_citizen_reaches_levert_through_the_print_receipt(
    a: Fagsystem,
) -> None:
    message_id = await a.send(
        a.sbd("print", RESERVED_CITIZEN.number, {"hoveddokument": "vedtak.pdf"})
    )
    assert await a.wait_for(message_id, "LEVERT") == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    shipment = await a.shipment(message_id)
    assert (shipment["type"], shipment["provider"]) == ("utskrift", DEFAULT_PRINT)
    assert shipment["receipts"] == ["mottakskvittering"]
    utskrift = shipment["forretningsmelding"]["standardBusinessDocument"]["utskrift"]
    assert utskrift["mottaker"] == {
        "navn": RESERVED_CITIZEN.name,
        "adresselinje1": RESERVED_CITIZEN.street,
        "postnummer": RESERVED_CITIZEN.postal_code,
        "poststed": RESERVED_CITIZEN.postal_area,
    }
    assert utskrift["retur"]["mottaker"]["navn"] == "Sandkasse A"
    assert (utskrift["utskriftstype"], utskrift["posttype"]) == ("SORT_HVIT", "B")


async def test_a_letter_without_a_receiver_goes_to_the_print_provider(a: Fagsystem) -> None:
    letter = a.sbd(
        "print",
        "",
        {
            "hoveddokument": "vedtak.pdf",
            "mottaker": {
                "navn": "Ola Uten Nummer",
                "adresselinje1": "Kaiveien 2",
                "postnummer": "5003",
                "poststed": "BERGEN",
            },
            "retur": {
                "mottaker": {
                    "navn": "Sandkasse A",
                    "adresselinje1": "Postboks 1",
                    "postnummer": "0101",
                    "poststed": "OSLO",
                },
                "returhaandtering": "MAKULERING_MED_MELDING",
            },
        },
    )
    del letter["standardBusinessDocumentHeader"]["receiver"]
    message_id = await a.send(letter)
    assert await a.wait_for(message_id, "LEVERT") == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    shipment = await a.shipment(message_id)
    assert (shipment["type"], shipment["provider"]) == ("utskrift", DEFAULT_PRINT)
    utskrift = shipment["forretningsmelding"]["standardBusinessDocument"]["utskrift"]
    assert utskrift["mottaker"]["navn"] == "Ola Uten Nummer"
    assert utskrift["retur"]["returposthaandtering"] == "MAKULERING_MED_MELDING"


async def test_returned_mail_turns_a_delivered_letter_feil(a: Fagsystem) -> None:
    async def returned(created: dict[str, Any]) -> None:
        scope = created["standardBusinessDocumentHeader"]["businessScope"]["scope"][0]
        await a.script(
            scope["instanceIdentifier"],
            {"event": "SENDT", "after": 0.3},
            {"event": "mottakskvittering", "after": 0.3},
            {"event": "returpostkvittering", "after": 1.5},
        )

    on_demand = await a.send(
        a.sbd("print", RESERVED_CITIZEN.number, {"hoveddokument": "vedtak.pdf"}),
        before_send=returned,
    )
    moved = await a.send(a.sbd("print", MOVED_CITIZEN.number, {"hoveddokument": "vedtak.pdf"}))
    for message_id in (on_demand, moved):
        names = await a.wait_for(message_id, "FEIL")
        assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "FEIL"]
        feil = (await a.statuses(message_id))[-1]
        assert "posten ikke har blitt levert til mottaker" in feil["description"].lower()


async def test_routing_follows_the_citizens_records(a: Fagsystem) -> None:
    status, error = await a.create(a.sbd("digital", RESERVED_CITIZEN.number, digital()))
    assert status == 400 and error["status"] == 400 and error["path"] == "/api/messages/out"
    assert "Receiver do not accept the document process" in error["message"]
    status, error = await a.create(
        a.sbd("print", DIGITAL_CITIZEN.number, {"hoveddokument": "vedtak.pdf"})
    )
    assert status == 400 and STANDARDS["print"] in error["description"]

    status, capabilities = await a.call("GET", f"/api/capabilities/{RESERVED_CITIZEN.number}")
    assert status == 200
    offered = {
        (c["process"], c["serviceIdentifier"], d["type"])
        for c in capabilities["capabilities"]
        for d in c["documentTypes"]
    }
    assert offered == {
        (VEDTAK, "DPI", "print"),
        (INFO, "DPI", "print"),
        (INFO, "DPV", "digital_dpv"),
    }
    status, error = await a.create(
        a.sbd(
            "digital_dpv",
            RESERVED_CITIZEN.number,
            {"tittel": "Info", "sammendrag": "Info", "innhold": "Info"},
            process=INFO,
        )
    )
    assert status == 400 and "Service DPV is not enabled" in error["message"]  # routed to DPV


async def test_every_business_message_keeps_the_published_schemas(
    a: Fagsystem, specs: Path
) -> None:
    await asyncio.gather(
        a.send(a.sbd("digital", DIGITAL_CITIZEN.number, digital())),
        a.send(a.sbd("print", RESERVED_CITIZEN.number, {"hoveddokument": "vedtak.pdf"})),
    )
    schemas = PublishedSchemas(specs)
    shipments = await a.shipments()
    assert {s["type"] for s in shipments} == {"digital", "utskrift"}
    for shipment in shipments:
        assert schemas.errors(shipment["type"], shipment["forretningsmelding"]) == []

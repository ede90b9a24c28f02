"""A to B over the fake Altinn broker, through the sandbox's two integration points, exactly as
fagsystemer drive them: the Next Move API over HTTP."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.testing import Fagsystem, free_port

ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
RESPONSE = "urn:no:difi:profile:arkivmelding:response:ver1.0"
ARKIVMELDING_XML = """<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>sak-1</systemID>
    <registrering><systemID>jp-1</systemID>
    <offentligTittel>Søknad om byggetillatelse</offentligTittel>
      <journalpostnummer>42</journalpostnummer>
      <dokumentbeskrivelse><dokumentobjekt>
        <referanseDokumentfil>soknad.pdf</referanseDokumentfil>
      </dokumentobjekt></dokumentbeskrivelse>
      <dokumentbeskrivelse><dokumentobjekt>
        <referanseDokumentfil>vedlegg.txt</referanseDokumentfil>
      </dokumentobjekt></dokumentbeskrivelse>
    </registrering>
  </mappe>
</arkivmelding>""".encode()
PDF = b"%PDF-1.4\n% test document\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


class Party(Fagsystem):
    """One sandbox integration point, as its fagsystem talks to it."""

    async def send_arkivmelding(self, receiver: str, files: dict[str, tuple[str, bytes]],
                                *, kind: str = "arkivmelding", body: dict | None = None,
                                process: str = ADMINISTRASJON) -> str:
        message_id = str(uuid.uuid4())
        standards = {"arkivmelding": "urn:no:difi:arkivmelding:xsd::arkivmelding",
                     "arkivmelding_kvittering":
                         "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"}
        sbd = {
            "standardBusinessDocumentHeader": {
                "headerVersion": "1.0",
                "sender": [{"identifier": {"value": f"0192:{self.number}",
                                           "authority": "iso6523-actorid-upis"}}],
                "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                             "authority": "iso6523-actorid-upis"}}],
                "documentIdentification": {"standard": standards[kind], "typeVersion": "1.0",
                                           "instanceIdentifier": message_id, "type": kind},
                "businessScope": {"scope": [{"type": "ConversationId",
                                             "instanceIdentifier": str(uuid.uuid4()),
                                             "identifier": process}]},
            },
            kind: body if body is not None else {"hoveddokument": "soknad.pdf"},
        }
        response = await self.call("POST", "/api/messages/out", json=sbd)
        assert response.status == 200, await response.text()
        for name, (mime, data) in files.items():
            response = await self.call(
                "PUT", f"/api/messages/out/{message_id}", data=data,
                headers={"Content-Type": mime,
                         "Content-Disposition": f'attachment; filename="{name}"'},
            )
            assert response.status == 200, await response.text()
        response = await self.call("POST", f"/api/messages/out/{message_id}")
        assert response.status == 200, await response.text()
        return message_id

    async def statuses(self, message_id: str) -> list[str]:
        response = await self.call("GET", f"/api/statuses/{message_id}", params={"size": 50})
        return [s["status"] for s in (await response.json())["content"]]

    async def wait_for(self, message_id: str, status: str, timeout: float = 30) -> list[str]:
        for _ in range(int(timeout * 10)):
            names = await self.statuses(message_id)
            if status in names:
                return names
            await asyncio.sleep(0.1)
        raise AssertionError(f"{message_id} never reached {status}: {names}")

    async def take(self, timeout: float = 30) -> tuple[dict[str, Any], bytes | None]:
        """Peek, pop and delete the next incoming message, as a fagsystem does."""
        for _ in range(int(timeout * 10)):
            response = await self.call("GET", "/api/messages/in/peek")
            if response.status == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("nothing arrived")
        sbd = await response.json()
        message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"]
        popped = await self.call("GET", f"/api/messages/in/pop/{message_id}")
        asic = await popped.read() if popped.status == 200 else None
        deleted = await self.call("DELETE", f"/api/messages/in/{message_id}")
        assert deleted.status == 200
        return sbd, asic


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[Party, Party]]:
    box = Sandbox(tmp_path, load_plugins(allow=["dpo"]), (free_port(), free_port()))
    state = await box.start()
    try:
        async with aiohttp.ClientSession() as session:
            a, b = (Party(session, o) for o in state["organisations"])
            yield a, b
    finally:
        await box.stop()


async def test_a_to_b_with_attachments_then_receipt_and_reply(sandbox) -> None:
    a, b = sandbox
    message_id = await a.send_arkivmelding(b.number, {
        "arkivmelding.xml": ("application/xml", ARKIVMELDING_XML),
        "soknad.pdf": ("application/pdf", PDF),
        "vedlegg.txt": ("text/plain", "Vedlegg med æøå".encode()),
    })
    assert await a.wait_for(message_id, "MOTTATT") == ["OPPRETTET", "SENDT", "MOTTATT"]

    sbd, asic = await b.take()
    header = sbd["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["instanceIdentifier"] == message_id
    assert header["sender"][0]["identifier"]["value"] == f"0192:{a.number}"
    assert asic is not None
    with zipfile.ZipFile(io.BytesIO(asic)) as package:
        names = package.namelist()
        assert names[0] == "mimetype"
        assert package.read("soknad.pdf") == PDF
        assert package.read("vedlegg.txt").decode() == "Vedlegg med æøå"
        assert package.read("arkivmelding.xml") == ARKIVMELDING_XML
        assert "META-INF/signature.p7s" in names or any("signature" in n for n in names)

    names = await a.wait_for(message_id, "LEVERT")
    assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    assert (await b.statuses(message_id))[-1] == "INNKOMMENDE_LEVERT"

    receipt_id = await b.send_arkivmelding(
        a.number, {}, kind="arkivmelding_kvittering", process=RESPONSE,
        body={"receiptType": "OK", "relatedToMessageId": message_id, "messages": []},
    )
    assert (await a.wait_for(message_id, "LEST"))[-1] == "LEST"
    receipt, _ = await a.take()
    assert receipt["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"] == receipt_id

    reply_id = await b.send_arkivmelding(a.number, {
        "arkivmelding.xml": ("application/xml", ARKIVMELDING_XML),
        "soknad.pdf": ("application/pdf", PDF),
        "vedlegg.txt": ("text/plain", b"svar"),
    })
    reply, reply_asic = await a.take()
    assert reply["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"] == reply_id
    assert reply_asic is not None and zipfile.ZipFile(io.BytesIO(reply_asic)).read(
        "vedlegg.txt") == b"svar"
    assert (await b.wait_for(reply_id, "LEVERT"))[-1] == "LEVERT"


async def test_an_error_receipt_makes_the_original_feil(sandbox) -> None:
    a, b = sandbox
    message_id = await a.send_arkivmelding(b.number, {
        "arkivmelding.xml": ("application/xml", ARKIVMELDING_XML),
        "soknad.pdf": ("application/pdf", PDF),
        "vedlegg.txt": ("text/plain", b"x"),
    })
    await b.take()
    await a.wait_for(message_id, "LEVERT")
    await b.send_arkivmelding(
        a.number, {}, kind="arkivmelding_kvittering", process=RESPONSE,
        body={"receiptType": "ERROR", "relatedToMessageId": message_id,
              "messages": [{"code": "E1", "text": "Kunne ikke arkivere"}]},
    )
    names = await a.wait_for(message_id, "FEIL")
    assert names[-1] == "FEIL"
    response = await a.call("GET", f"/api/statuses/{message_id}")
    feil = (await response.json())["content"][-1]
    assert feil["description"] == "ArkivmeldingKvittering: ERROR"

"""DPF through the sandbox: A (or B) writes to the sample municipality over SvarUt, exactly as a
fagsystem drives an integration point (the Next Move API over HTTP), and the municipality's
reply comes back through SvarInn, linked to what it answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from ipunkt.package.keys import organisation_number
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.testing import Fagsystem, free_port
from ipunkt_dpf.fake.service import KS_ORGANISATION
from ipunkt_dpf.sandbox import MUNICIPALITY
from lxml import etree

ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
NS = {"a": "http://www.arkivverket.no/standarder/noark5/arkivmelding"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class Party(Fagsystem):
    """One sandbox integration point, as its fagsystem talks to it."""

    async def send(self, receiver: str, files: dict[str, tuple[str, bytes]], *,
                   security_level: int = 3, answers: str | None = None) -> str:
        """Create, upload each file, send: the message id. ``answers`` is the ReceiverRef."""
        message_id = str(uuid.uuid4())
        scopes: list[dict[str, Any]] = [{"type": "ConversationId",
                                         "instanceIdentifier": str(uuid.uuid4()),
                                         "identifier": ADMINISTRASJON}]
        if answers is not None:
            scopes.append({"type": "ReceiverRef", "instanceIdentifier": answers})
        sbd = {
            "standardBusinessDocumentHeader": {
                "headerVersion": "1.0",
                "sender": [{"identifier": {"value": f"0192:{self.number}",
                                           "authority": "iso6523-actorid-upis"}}],
                "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                             "authority": "iso6523-actorid-upis"}}],
                "documentIdentification": {"standard": ARKIVMELDING, "typeVersion": "2.0",
                                           "instanceIdentifier": message_id,
                                           "type": "arkivmelding"},
                "businessScope": {"scope": scopes},
            },
            "arkivmelding": {"hoveddokument": "vedtak.pdf", "sikkerhetsnivaa": security_level},
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

    async def statuses(self, message_id: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"/api/statuses/{message_id}", params={"size": 50})
        return list((await response.json())["content"])

    async def wait_for(self, message_id: str, status: str, timeout: float = 30) -> list[str]:
        names: list[str] = []
        for _ in range(int(timeout * 10)):
            names = [s["status"] for s in await self.statuses(message_id)]
            if status in names:
                return names
            await asyncio.sleep(0.1)
        raise AssertionError(f"{message_id} never reached {status}: {names}")

    async def conversation(self, message_id: str) -> dict[str, Any]:
        response = await self.call("GET", f"/api/conversations/messageId/{message_id}")
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def take(self, timeout: float = 30) -> tuple[dict[str, Any], bytes]:
        """Peek, pop and delete the next incoming message, as a fagsystem does."""
        for _ in range(int(timeout * 10)):
            response = await self.call("GET", "/api/messages/in/peek")
            if response.status == 200:
                break
            assert response.status == 204, await response.text()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"nothing arrived at {self.number}")
        sbd = await response.json()
        message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"]
        popped = await self.call("GET", f"/api/messages/in/pop/{message_id}")
        assert popped.status == 200, await popped.text()
        asic = await popped.read()
        deleted = await self.call("DELETE", f"/api/messages/in/{message_id}")
        assert deleted.status == 200, await deleted.text()
        return sbd, asic


@dataclass
class Box:
    sandbox: Sandbox
    state: dict[str, Any]
    a: Party
    b: Party
    session: aiohttp.ClientSession

    async def municipality(self) -> dict[str, Any]:
        """What the municipality's page says it received and answered."""
        async with self.session.get(self.state["fakes"]["dpf-municipality"]) as response:
            return dict(await response.json())

    async def forsendelser(self) -> list[dict[str, Any]]:
        """Every forsendelse in the fake SvarUt (its inspection endpoint)."""
        async with self.session.get(f"{self.state['fakes']['svarut']}/_fake/forsendelser") as r:
            return list(await r.json())

    async def handled(self, forsendelse_id: str, timeout: float = 30) -> dict[str, Any]:
        """The municipality's entry for a forsendelse, once it imported and answered or
        refused it."""
        for _ in range(int(timeout * 10)):
            for entry in (await self.municipality())["received"]:
                reply = entry["reply"]
                if entry["id"] == forsendelse_id and (
                        entry["outcome"] == "refused" or (reply and reply["id"])):
                    return dict(entry)
            await asyncio.sleep(0.1)
        raise AssertionError(f"the municipality never handled {forsendelse_id}")

    async def status_in_svarut(self, forsendelse_id: str, status: str,
                               timeout: float = 30) -> None:
        seen = None
        for _ in range(int(timeout * 10)):
            seen = next((f["status"] for f in await self.forsendelser()
                         if f["id"] == forsendelse_id), None)
            if seen == status:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{forsendelse_id} is {seen} in SvarUt, never {status}")


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    async with _box(tmp_path, ["dpf"]) as started:
        yield started


@contextlib.asynccontextmanager
async def _box(folder: Path, plugins: list[str]) -> AsyncIterator[Box]:
    host = load_plugins(allow=plugins)
    missing = sorted({p.upper() for p in plugins} - set(host.sandbox_parts))
    if missing:
        pytest.skip(f"no sandbox part installed for {', '.join(missing)}")
    sandbox = Sandbox(folder, host, (free_port(), free_port()))
    state = await sandbox.start()
    try:
        async with aiohttp.ClientSession() as session:
            a, b = (Party(session, o) for o in state["organisations"])
            yield Box(sandbox, state, a, b, session)
    finally:
        await sandbox.stop()


def _documents(kit: SimpleNamespace, files: list[tuple[str, str, bytes]],
               title: str = "Søknad om byggeløyve") -> dict[str, tuple[str, bytes]]:
    """arkivmelding.xml naming ``files`` (name, MIME type, bytes; the first the main one)."""
    xml = kit.arkivmelding_xml(
        [(name, "Hoveddokument" if i == 0 else "Vedlegg") for i, (name, _, _) in enumerate(files)],
        title=title,
    )
    return {"arkivmelding.xml": ("application/xml", xml),
            **{name: (mime, data) for name, mime, data in files}}


def _scopes(sbd: dict[str, Any]) -> dict[str, str]:
    return {s["type"]: s["instanceIdentifier"]
            for s in sbd["standardBusinessDocumentHeader"]["businessScope"]["scope"]}


async def test_a_writes_to_the_municipality_and_its_reply_comes_back(
    box: Box, kit: SimpleNamespace
) -> None:
    a = box.a
    response = await a.call("GET", f"/api/capabilities/{MUNICIPALITY}")
    capabilities = (await response.json())["capabilities"]
    assert {(c["process"], c["serviceIdentifier"]) for c in capabilities} >= {
        (ADMINISTRASJON, "DPF")}

    message_id = await a.send(MUNICIPALITY, _documents(kit, [
        ("vedtak.pdf", "application/pdf", kit.pdf), ("kart.png", "image/png", PNG)]))
    assert await a.wait_for(message_id, "LEST") == [
        "OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]
    conversation = await a.conversation(message_id)
    assert conversation["serviceIdentifier"] == "DPF"
    forsendelse_id = conversation["externalSystemReference"]

    # The municipality decrypted exactly what A uploaded, and answered it.
    entry = await box.handled(forsendelse_id)
    assert entry["outcome"] == "imported"
    assert entry["title"] == "Søknad om byggeløyve"
    assert entry["sender"] == a.number
    assert [(f["name"], f["sha256"]) for f in entry["files"]] == [
        ("vedtak.pdf", hashlib.sha256(kit.pdf).hexdigest()),
        ("kart.png", hashlib.sha256(PNG).hexdigest())]
    reply = entry["reply"]
    assert reply["mottaker"] == a.number and reply["error"] is None

    # The reply is A's incoming message, linked to the forsendelse it answers.
    sbd, asic = await a.take()
    header = sbd["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["instanceIdentifier"] == reply["id"]
    assert header["documentIdentification"]["type"] == "arkivmelding"
    assert header["sender"][0]["identifier"]["value"] == f"0192:{MUNICIPALITY}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{a.number}"
    scopes = _scopes(sbd)
    assert scopes["ReceiverRef"] == forsendelse_id
    assert scopes["SenderRef"] == reply["eksternReferanse"]
    assert scopes["ConversationId"] == reply["id"]
    with zipfile.ZipFile(io.BytesIO(asic)) as package:
        letter = package.read("svar.pdf")
        arkivmelding = etree.fromstring(package.read("arkivmelding.xml"))
    assert letter.startswith(b"%PDF-1.4") and letter.rstrip().endswith(b"%%EOF")
    assert f"Vi har mottatt forsendelsen {forsendelse_id}".encode() in letter
    assert arkivmelding.findtext(".//a:offentligTittel", namespaces=NS) == (
        "Svar: Søknad om byggeløyve")
    assert arkivmelding.findtext(".//a:journalposttype", namespaces=NS) == "Utgående dokument"
    assert arkivmelding.findtext(".//a:referanseDokumentfil", namespaces=NS) == "svar.pdf"

    # A confirmed the reply to SvarInn (the municipality sees it LEST); its fagsystem took it.
    await box.status_in_svarut(reply["id"], "LEST")
    assert [s["status"] for s in await a.statuses(reply["id"])][-1] == "INNKOMMENDE_LEVERT"
    assert (await a.call("GET", "/api/messages/in/peek")).status == 204


async def test_failures_reach_the_sender_as_feil_with_the_reason(
    box: Box, kit: SimpleNamespace
) -> None:
    a = box.a
    # SvarUt's rules are checked before sending: nothing printable, so SvarUt never sees it.
    refused_id = await a.send(MUNICIPALITY, _documents(kit, [
        ("notat.txt", "text/plain", b"Bare tekst")]))
    assert await a.wait_for(refused_id, "FEIL") == ["OPPRETTET", "FEIL"]
    assert "none of its documents is a PDF" in (await a.statuses(refused_id))[-1]["description"]
    assert refused_id not in [f["eksternReferanse"] for f in await box.forsendelser()]

    # The municipality cannot import a document that is not in an archival format.
    message_id = await a.send(MUNICIPALITY, _documents(kit, [
        ("vedtak.pdf", "application/pdf", kit.pdf),
        ("modell.zip", "application/zip", b"PK\x05\x06" + bytes(18))]))
    names = await a.wait_for(message_id, "FEIL")
    assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "FEIL"]
    feil = (await a.statuses(message_id))[-1]
    assert "FEILET_UNDER_MOTTAK" in feil["description"]
    assert "modell.zip (application/zip) er ikke i et arkivformat" in feil["description"]

    forsendelse_id = (await a.conversation(message_id))["externalSystemReference"]
    entry = await box.handled(forsendelse_id)
    assert entry["outcome"] == "refused" and entry["reply"] is None
    assert [f for f in await box.forsendelser() if f["sender"] == MUNICIPALITY] == []


async def test_b_has_its_own_account_and_mailbox_and_answers_the_answer(
    box: Box, kit: SimpleNamespace
) -> None:
    b = box.b
    message_id = await b.send(MUNICIPALITY, _documents(kit, [
        ("brev.pdf", "application/pdf", kit.pdf)], title="Melding fra B"), security_level=4)
    assert (await b.wait_for(message_id, "LEST"))[-1] == "LEST"
    forsendelse_id = (await b.conversation(message_id))["externalSystemReference"]
    sent = next(f for f in await box.forsendelser() if f["id"] == forsendelse_id)
    assert (sent["sender"], sent["eksternReferanse"]) == (b.number, message_id)

    reply, _ = await b.take()
    assert reply["standardBusinessDocumentHeader"]["receiver"][0]["identifier"]["value"] == (
        f"0192:{b.number}")
    assert _scopes(reply)["ReceiverRef"] == forsendelse_id
    assert reply["arkivmelding"]["sikkerhetsnivaa"] == 4
    assert (await box.a.call("GET", "/api/messages/in/peek")).status == 204

    # B answers the reply: its ReceiverRef becomes the new forsendelse's svarPaForsendelseId.
    reply_id = reply["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"]
    answer_id = await b.send(MUNICIPALITY, _documents(kit, [
        ("takk.pdf", "application/pdf", kit.pdf)], title="Takk for svaret"), answers=reply_id)
    await b.wait_for(answer_id, "LEST")
    answer = await box.handled((await b.conversation(answer_id))["externalSystemReference"])
    assert (answer["svarPaForsendelse"], answer["title"]) == (reply_id, "Takk for svaret")


async def test_only_the_municipality_is_routed_to_dpf_with_svaruts_certificate(
    box: Box,
) -> None:
    (dpf,) = box.sandbox.channels
    assert box.state["receivers"]["DPF"] == [dict(sample) for sample in dpf.samples]
    assert [r["identifier"] for r in dpf.receivers] == [MUNICIPALITY]
    (pem,) = {r["certificate_pem"] for r in dpf.receivers[0]["record"]}
    assert organisation_number(x509.load_pem_x509_certificate(pem.encode())) == KS_ORGANISATION
    response = await box.a.call("GET", f"/api/capabilities/{box.b.number}")
    assert response.status == 404


async def test_next_to_dpo_b_stays_on_dpo_and_the_municipality_on_dpf(tmp_path: Path) -> None:
    async with _box(tmp_path, ["dpf", "dpo"]) as both:
        a, b = both.a, both.b

        async def services(receiver: str) -> set[str]:
            response = await a.call("GET", f"/api/capabilities/{receiver}",
                                    params={"process": ADMINISTRASJON})
            assert response.status == 200, await response.text()
            return {c["serviceIdentifier"] for c in (await response.json())["capabilities"]}

        assert await services(b.number) == {"DPO"}
        assert await services(MUNICIPALITY) == {"DPF"}

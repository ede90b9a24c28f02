"""The sandbox's municipality against the fake alone: its requests checked against SvarUt's
OpenAPI, a reply never sent twice, and the letter it answers with."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from ipunkt.package.testcerts import CertificateAuthority
from ipunkt_dpf.channel import DPFChannel
from ipunkt_dpf.fake.letter import letter_pdf
from ipunkt_dpf.fake.municipality import Municipality

MUNICIPALITY = "910076787"
ADDRESS = ("Rådhusplassen 1", "0037", "Oslo")


def _municipality(svarut: Any, ca: CertificateAuthority, kit: SimpleNamespace,
                  folder: Path) -> Municipality:
    key = ca.issue(MUNICIPALITY, "Testkommune")
    return Municipality(
        name="Testkommune", address=ADDRESS, key=key,
        account=svarut.fake.add_account(MUNICIPALITY, name="Testkommune", address=ADDRESS),
        mailbox=svarut.fake.add_mailbox(MUNICIPALITY, key.certificate, name="Testkommune"),
        svarut_url=svarut.url, svarut_certificate=svarut.fake.certificate,
        tokens=kit.tokens(), work_dir=folder,
    )


async def test_a_lost_answer_from_svarut_never_makes_a_second_reply(
    svarut: Any, channel: DPFChannel, messages: Any, ca: CertificateAuthority,
    kit: SimpleNamespace, tmp_path: Path,
) -> None:
    municipality = _municipality(svarut, ca, kit, tmp_path / "kommune")
    sent = await channel.send(messages.make(receiver=MUNICIPALITY))
    svarut.fake.faults.drop("send")
    async with aiohttp.ClientSession() as session:
        municipality.connect(session)
        await municipality.poll_once()
        state = municipality.received[str(sent.external_reference)].state()
        assert state["outcome"] == "imported"
        assert state["reply"]["id"] is None  # SvarUt took it, but the answer was lost
        await municipality.poll_once()
    state = municipality.received[str(sent.external_reference)].state()
    replies = [s for s in svarut.fake.forsendelser.values()
               if s.account.organisation == MUNICIPALITY]
    assert [r.id for r in replies] == [state["reply"]["id"]]
    (reply,) = replies
    assert reply.forsendelse["svarPaForsendelseId"] == sent.external_reference
    assert reply.forsendelse["eksternReferanse"] == state["reply"]["eksternReferanse"]
    assert reply.receiver == kit.sender
    assert svarut.fake.forsendelser[str(sent.external_reference)].status == "LEST"
    assert len(svarut.sent("/forsendelser/organisasjon")) == 2  # A's and the one reply


async def test_a_confirmation_whose_answer_is_lost_still_gets_the_reply(
    svarut: Any, channel: DPFChannel, messages: Any, ca: CertificateAuthority,
    kit: SimpleNamespace, tmp_path: Path,
) -> None:
    """SvarInn took the kvitterMottak but its answer was lost: SvarInn never offers the
    forsendelse again, and the reply goes all the same."""
    municipality = _municipality(svarut, ca, kit, tmp_path / "kommune")
    sent = await channel.send(messages.make(receiver=MUNICIPALITY))
    svarut.fake.faults.drop("kvitter")
    async with aiohttp.ClientSession() as session:
        municipality.connect(session)
        await municipality.poll_once()
        await municipality.poll_once()
    assert svarut.fake.forsendelser[str(sent.external_reference)].status == "LEST"
    replies = [s for s in svarut.fake.forsendelser.values()
               if s.account.organisation == MUNICIPALITY]
    assert [r.forsendelse["svarPaForsendelseId"] for r in replies] == [sent.external_reference]


async def test_a_document_outside_the_archival_formats_is_refused_with_the_reason(
    svarut: Any, channel: DPFChannel, messages: Any, ca: CertificateAuthority,
    kit: SimpleNamespace, tmp_path: Path,
) -> None:
    municipality = _municipality(svarut, ca, kit, tmp_path / "kommune")
    files = [kit.attachment("vedtak.pdf", kit.pdf, "application/pdf"),
             kit.attachment("tegning.dwg", b"AC1027", "image/vnd.dwg")]
    sent = await channel.send(messages.make(files, receiver=MUNICIPALITY))
    async with aiohttp.ClientSession() as session:
        municipality.connect(session)
        await municipality.poll_once()
    stored = svarut.fake.forsendelser[str(sent.external_reference)]
    assert stored.status == "FEILET_UNDER_MOTTAK"
    assert stored.events[-1].text == (
        "Mottak feilet permanent: tegning.dwg (image/vnd.dwg) er ikke i et arkivformat; "
        "arkivet tar bare PDF, XML, tekst, PNG, JPEG, TIFF")
    assert not [s for s in svarut.fake.forsendelser.values()
                if s.account.organisation == MUNICIPALITY]


def test_the_reply_letter_is_a_pdf_whose_cross_references_hold() -> None:
    pdf = letter_pdf(["Sandkasse kommune", "Svar: (søknad) \\ æøå"])
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    table = pdf[xref:].split(b"\n")
    assert table[0] == b"xref"
    count = int(table[1].split()[1])
    entries = table[3 : 2 + count]
    assert all(len(entry) == 19 for entry in entries)  # 20 bytes with the newline
    for number, entry in enumerate(entries, start=1):
        assert pdf[int(entry[:10]):].startswith(b"%d 0 obj\n" % number)
    length = int(re.search(rb"/Length (\d+)", pdf).group(1))  # type: ignore[union-attr]
    stream = pdf.split(b"stream\n", 1)[1].split(b"\nendstream", 1)[0]
    assert len(stream) == length
    assert b"(Svar: \\(s\xf8knad\\) \\\\ \xe6\xf8\xe5) Tj" in stream

"""What is read from an uploaded arkivmelding.xml, in memory that does not grow with the file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

from ipunkt.messages.arkivmelding import NS, summarise

URI = NS.strip("{}")


async def journalpost(documents: int) -> AsyncIterator[bytes]:
    """One saksmappe with one journalpost that describes ``documents`` documents."""
    yield (f'<arkivmelding xmlns="{URI}"><mappe><systemID>43fbe161</systemID>'
           "<registrering><offentligTittel>Byggesak</offentligTittel>"
           "<journalpostnummer>12</journalpostnummer>").encode()
    piece = b"".join(
        b"<dokumentbeskrivelse><tittel>Vedlegg</tittel><dokumentobjekt>"
        b"<referanseDokumentfil>vedlegg-%d.pdf</referanseDokumentfil>"
        b"</dokumentobjekt></dokumentbeskrivelse>" % number
        for number in range(1000))
    for _ in range(documents // 1000):
        yield piece
    yield b"</registrering></mappe></arkivmelding>"


async def test_the_first_journalposts_title_reference_and_files_are_read() -> None:
    summary = await summarise(journalpost(3000))
    assert summary.title == "Byggesak"
    assert summary.reference == "43fbe161-12"
    assert len(summary.files) == 3000
    assert summary.files[:2] == ["vedlegg-0.pdf", "vedlegg-1.pdf"]


MEASURE = """
import asyncio, resource, sys
sys.path.insert(0, sys.argv[1])
from test_arkivmelding_summary import journalpost
from ipunkt.messages.arkivmelding import summarise
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = asyncio.run(summarise(journalpost(400_000)))
assert summary.title == "Byggesak"
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_large_arkivmelding_is_read_in_flat_memory() -> None:
    """About 60 MB of one journalpost's dokumentbeskrivelse: the tree is not kept (it grew
    to several times the file before). The file names it lists are kept, as they must be."""
    from pathlib import Path

    grown = subprocess.run(
        [sys.executable, "-c", MEASURE, str(Path(__file__).parent)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert int(grown) < 80, f"peak RSS grew by {grown} MiB"

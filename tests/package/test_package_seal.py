"""Sealing and opening whole packages, checked end to end by OpenSSL and xmlsec1."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package import cms
from ipunkt.package.asic import SignatureFormat
from ipunkt.package.cms import KeyTransport
from ipunkt.package.errors import DecryptionFailed, IntegrityError, PackageError, UnsafeArchive
from ipunkt.package.manifest import IpManifest, MainDocument, SdpDocument, SdpManifest
from ipunkt.package.seal import Document, from_async, open_package, seal
from ipunkt.package.testcerts import ThrowawayPki, WrittenPki

SENDER = "910077473"
RECEIVER = "910075918"


@pytest.fixture
def documents(tmp_path: Path) -> list[Document]:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "arkivmelding.xml").write_bytes(
        b"<arkivmelding>" + b"<x/>" * 10_000 + b"</arkivmelding>"
    )
    (folder / "vedtak.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(2_000_000))
    return [Document.from_path(folder / name) for name in ("arkivmelding.xml", "vedtak.pdf")]


def _ip_manifest() -> IpManifest:
    return IpManifest(RECEIVER, SENDER, MainDocument("arkivmelding.xml", "application/xml"))


def test_seal_then_open_into_a_directory(
    pki: ThrowawayPki, documents: list[Document], tmp_path: Path
) -> None:
    package = tmp_path / "package.cms"
    with package.open("wb") as out:
        sealed = seal(
            documents,
            key=pki[SENDER],
            recipient=pki[RECEIVER].certificate,
            out=out,
            manifest=_ip_manifest(),
        )
    assert sealed.size == package.stat().st_size
    assert [f.name for f in sealed.files] == ["manifest.xml", "arkivmelding.xml", "vedtak.pdf"]

    with package.open("rb") as source:
        opened = open_package(
            source, key=pki[RECEIVER], trust=pki.trust, destination=tmp_path / "out"
        )
    assert opened.manifest == _ip_manifest()
    assert opened.contents.signer == pki[SENDER].certificate
    for document in documents:
        original = (tmp_path / "documents" / document.name).read_bytes()
        assert (tmp_path / "out" / document.name).read_bytes() == original
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")], (
        "no staging left"
    )


def test_openssl_and_zipfile_unpack_a_sealed_package_and_verify_its_signature(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    documents: list[Document],
    openssl: str,
    run: Callable[..., Any],
    tmp_path: Path,
) -> None:
    package = tmp_path / "package.cms"
    with package.open("wb") as out:
        seal(
            documents,
            key=pki[SENDER],
            recipient=pki[RECEIVER].certificate,
            out=out,
            manifest=_ip_manifest(),
        )
    container = tmp_path / "asic.zip"
    run(
        openssl, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", package, "-out", container,
        "-recip", pki_files[RECEIVER].certificate, "-inkey", pki_files[RECEIVER].private_key,
    )  # fmt: skip
    with zipfile.ZipFile(container) as archive:
        archive.extractall(tmp_path / "unzipped")
        names = archive.namelist()
    signature = next(n for n in names if n.endswith(".p7s"))
    run(
        openssl, "cms", "-verify", "-binary", "-inform", "DER",
        "-in", tmp_path / "unzipped" / signature,
        "-content", tmp_path / "unzipped" / "META-INF" / "ASiCManifest.xml",
        "-CAfile", pki_files.root, "-purpose", "any", "-out", os.devnull,
    )  # fmt: skip
    assert (tmp_path / "unzipped" / "vedtak.pdf").read_bytes() == (
        tmp_path / "documents" / "vedtak.pdf"
    ).read_bytes()


def test_dpi_package_with_xades_checked_by_xmlsec1(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    documents: list[Document],
    openssl: str,
    xmlsec1: str,
    run: Callable[..., Any],
    tmp_path: Path,
) -> None:
    manifest = SdpManifest(
        sender=SENDER,
        main_document=SdpDocument("vedtak.pdf", "application/pdf", "Vedtak"),
        attachments=(SdpDocument("arkivmelding.xml", "application/xml"),),
        postkasseadresse="ola.nordmann#9YDT",
    )
    package = tmp_path / "package.cms"
    with package.open("wb") as out:
        sealed = seal(
            documents, key=pki[SENDER], recipient=pki[RECEIVER].certificate, out=out,
            manifest=manifest, signature=SignatureFormat.XADES, fingerprint=True,
        )  # fmt: skip
    assert sealed.sha256 == hashlib.sha256(package.read_bytes()).digest()
    assert sealed.signature_file == "META-INF/signatures.xml"

    with package.open("rb") as source:
        opened = open_package(
            source, key=pki[RECEIVER], trust=pki.trust, destination=tmp_path / "out"
        )
    assert opened.manifest == manifest
    out = tmp_path / "out"
    command: list[Any] = [xmlsec1, "--verify", "--trusted-pem", pki_files.root]
    command += ["--id-attr:Id", "http://uri.etsi.org/01903/v1.3.2#:SignedProperties"]
    for name in ("manifest.xml", "arkivmelding.xml", "vedtak.pdf"):
        command += [f"--url-map:{name}", out / name]
    run(*command, out / "META-INF" / "signatures.xml")


def test_pkcs1v15_packages_open_too(pki: ThrowawayPki, documents: list[Document]) -> None:
    buffer = io.BytesIO()
    seal(
        documents,
        key=pki[SENDER],
        recipient=pki[RECEIVER].certificate,
        out=buffer,
        key_transport=KeyTransport.PKCS1V15,
    )
    opened = open_package(io.BytesIO(buffer.getvalue()), key=pki[RECEIVER], trust=pki.trust)
    assert [f.name for f in opened.contents.files] == ["arkivmelding.xml", "vedtak.pdf"]
    assert opened.manifest is None and opened.paths == []


def test_a_tampered_package_leaves_nothing_behind(
    pki: ThrowawayPki, documents: list[Document], tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    seal(
        documents,
        key=pki[SENDER],
        recipient=pki[RECEIVER].certificate,
        out=buffer,
        manifest=_ip_manifest(),
    )
    damaged = bytearray(buffer.getvalue())
    damaged[len(damaged) // 2] ^= 0x01
    destination = tmp_path / "out"
    with pytest.raises(PackageError) as caught:
        open_package(
            io.BytesIO(bytes(damaged)), key=pki[RECEIVER], trust=pki.trust, destination=destination
        )
    assert isinstance(caught.value, IntegrityError | PackageError)
    assert list(destination.iterdir()) == []


def test_the_wrong_key_and_untrusted_signers(
    pki: ThrowawayPki, documents: list[Document], tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    seal(documents, key=pki[SENDER], recipient=pki[RECEIVER].certificate, out=buffer)
    with pytest.raises(DecryptionFailed, match="not encrypted to our certificate"):
        open_package(
            io.BytesIO(buffer.getvalue()),
            key=pki[SENDER],
            trust=pki.trust,
            destination=tmp_path / "o",
        )
    assert not (tmp_path / "o").exists()
    opened = open_package(io.BytesIO(buffer.getvalue()), key=pki[RECEIVER], trust=None)
    assert not opened.contents.trusted


def test_manifest_must_name_sealed_documents_and_nothing_is_overwritten(
    pki: ThrowawayPki, documents: list[Document], tmp_path: Path
) -> None:
    wrong = IpManifest(RECEIVER, SENDER, MainDocument("missing.xml", "application/xml"))
    with pytest.raises(PackageError, match=r"not sealed: missing\.xml"):
        seal(
            documents,
            key=pki[SENDER],
            recipient=pki[RECEIVER].certificate,
            out=io.BytesIO(),
            manifest=wrong,
        )
    buffer = io.BytesIO()
    seal(documents, key=pki[SENDER], recipient=pki[RECEIVER].certificate, out=buffer)
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "vedtak.pdf").write_bytes(b"keep me")
    with pytest.raises(PackageError, match="refusing to overwrite"):
        open_package(
            io.BytesIO(buffer.getvalue()),
            key=pki[RECEIVER],
            trust=pki.trust,
            destination=destination,
        )
    assert (destination / "vedtak.pdf").read_bytes() == b"keep me"
    assert sorted(p.name for p in destination.iterdir()) == ["vedtak.pdf"]


MEMORY_PROBE = textwrap.dedent(
    """
    import os, sys, tempfile
    from pathlib import Path
    from ipunkt.package.seal import Document, from_async, open_package, seal
    from ipunkt.package.testcerts import make_pki

    SIZE = int(sys.argv[1])

    def rss_kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    def generated():
        block = os.urandom(1 << 20)
        for i in range(SIZE >> 20):
            yield block[i % 251:] + block[: i % 251]

    pki = make_pki("910077473", "910075918")
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "big.cms"
        seal([Document("tiny.txt", "text/plain", lambda: [b"warm-up"])], key=pki["910077473"],
             recipient=pki["910075918"].certificate, out=open(os.devnull, "wb"))
        idle = rss_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        with package.open("wb") as out:
            sealed = seal([Document("big.bin", "application/octet-stream", generated)],
                          key=pki["910077473"], recipient=pki["910075918"].certificate, out=out)
        with package.open("rb") as source:
            opened = open_package(source, key=pki["910075918"], trust=pki.trust)
        assert opened.contents.files[0].size == SIZE, opened.contents.files
        print("RESULT", rss_kib("VmHWM") - idle, sealed.size)
    """
)


@pytest.mark.slow
def test_sealing_and_opening_200_mb_keeps_memory_flat() -> None:
    size = 200 << 20
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(size)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    growth_kib, package_size = (int(v) for v in line.split()[1:])
    assert package_size > size
    assert growth_kib < 48 * 1024, f"peak RSS grew by {growth_kib / 1024:.1f} MiB"


async def test_sealing_attachments_that_stream_on_the_event_loop(pki: ThrowawayPki) -> None:
    """A plugin's attachments are async iterators; sealing runs in a worker thread."""
    parts = [os.urandom(100_000) for _ in range(5)]

    async def attachment() -> AsyncIterator[bytes]:
        for part in parts:
            await asyncio.sleep(0)
            yield part

    loop = asyncio.get_running_loop()
    document = Document("brev.pdf", "application/pdf", from_async(attachment, loop))
    buffer = io.BytesIO()
    await asyncio.to_thread(
        seal, [document], key=pki[SENDER], recipient=pki[RECEIVER].certificate, out=buffer
    )
    opened = await asyncio.to_thread(
        open_package, io.BytesIO(buffer.getvalue()), key=pki[RECEIVER], trust=pki.trust
    )
    assert opened.contents.files[0].sha256 == hashlib.sha256(b"".join(parts)).digest()


def test_an_entry_below_a_file_is_refused(pki: ThrowawayPki, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("brev.pdf", b"%PDF")
        archive.writestr("brev.pdf/inne.pdf", b"%PDF")
    package = b"".join(cms.encrypt([buffer.getvalue()], pki[RECEIVER].certificate))
    destination = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match="cannot be unpacked"):
        open_package(
            io.BytesIO(package), key=pki[RECEIVER], trust=pki.trust, destination=destination
        )
    assert list(destination.iterdir()) == []

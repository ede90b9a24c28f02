"""ASiC-E containers: what we write, what others write, and what hostile ZIPs try."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package import asic, testcerts
from ipunkt.package.asic import (
    AsicEntry,
    DiscardSink,
    Limits,
    SignatureFormat,
    read_asic,
    write_asic,
)
from ipunkt.package.errors import IntegrityError, SignatureInvalid, UnsafeArchive
from ipunkt.package.testcerts import ThrowawayPki, WrittenPki

SENDER = "910077473"
PDF = os.urandom(300_000)
XML = b"<arkivmelding>" + b"<tittel>Vedtak</tittel>" * 2000 + b"</arkivmelding>"


def _entries() -> list[AsicEntry]:
    return [
        AsicEntry("arkivmelding.xml", "application/xml", [XML[:100], XML[100:]]),
        AsicEntry("vedtak.pdf", "application/pdf", [PDF], len(PDF)),
        AsicEntry("vedlegg/kart æøå.png", "image/png", iter([b"\x89PNG" + os.urandom(5000)])),
    ]


def _container(pki: ThrowawayPki, form: SignatureFormat = SignatureFormat.CADES) -> bytes:
    return b"".join(write_asic(_entries(), pki[SENDER], signature=form))


def _chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("form", list(SignatureFormat))
def test_round_trip(pki: ThrowawayPki, form: SignatureFormat) -> None:
    contents = read_asic(_chunks(_container(pki, form)), DiscardSink(), trust=pki.trust)
    assert [(f.name, f.mime, f.size) for f in contents.files] == [
        ("arkivmelding.xml", "application/xml", len(XML)),
        ("vedtak.pdf", "application/pdf", len(PDF)),
        ("vedlegg/kart æøå.png", "image/png", 5004),
    ]
    assert contents.files[1].sha256 == hashlib.sha256(PDF).digest()
    assert contents.signer == pki[SENDER].certificate
    assert contents.signature_format is form
    assert contents.trusted
    assert contents.unsigned_metadata == ["META-INF/manifest.xml"]


def test_layout_read_by_pythons_zipfile(pki: ThrowawayPki) -> None:
    data = _container(pki)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert infos[0].filename == "mimetype"
        assert infos[0].compress_type == zipfile.ZIP_STORED
        assert data[30:38] == b"mimetype" and data[38:69] == asic.MIMETYPE
        names = [i.filename for i in infos]
        assert names[1:4] == ["arkivmelding.xml", "vedtak.pdf", "vedlegg/kart æøå.png"]
        assert names[4:6] == ["META-INF/manifest.xml", "META-INF/ASiCManifest.xml"]
        assert names[6].startswith("META-INF/signature-") and names[6].endswith(".p7s")
        assert archive.read("vedtak.pdf") == PDF
        compressed = {i.filename: i.compress_size for i in infos}
        assert compressed["arkivmelding.xml"] < len(XML) / 10, "XML is compressed"
        manifest = archive.read("META-INF/ASiCManifest.xml").decode()
        assert base64.b64encode(hashlib.sha256(PDF).digest()).decode() in manifest


def test_a_container_made_by_zipfile_and_signed_by_openssl_is_read(
    pki: ThrowawayPki, pki_files: WrittenPki, openssl: str, run: Callable[..., Any], tmp_path: Path
) -> None:
    """Writer and signer independent of ipunkt: Python's zipfile and ``openssl cms -sign``."""
    document = b"Hello, municipality"
    digest = base64.b64encode(hashlib.sha256(document).digest()).decode()
    manifest = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<ASiCManifest xmlns="http://uri.etsi.org/02918/v1.2.1#" '
        'xmlns:ns2="http://www.w3.org/2000/09/xmldsig#">'
        '<SigReference URI="META-INF/signature.p7s" MimeType="application/x-pkcs7-signature"/>'
        '<DataObjectReference URI="hello.txt" MimeType="text/plain">'
        '<ns2:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        f"<ns2:DigestValue>{digest}</ns2:DigestValue></DataObjectReference></ASiCManifest>"
    ).encode()
    (tmp_path / "manifest.xml").write_bytes(manifest)
    (tmp_path / "chain.pem").write_bytes(testcerts.pem(pki.ca.certificate))
    run(
        openssl, "cms", "-sign", "-binary", "-md", "sha256", "-in", tmp_path / "manifest.xml",
        "-signer", pki_files[SENDER].certificate, "-inkey", pki_files[SENDER].private_key,
        "-certfile", tmp_path / "chain.pem", "-outform", "DER", "-out", tmp_path / "s.p7s",
    )  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), asic.MIMETYPE, zipfile.ZIP_STORED)
        archive.writestr("hello.txt", document)
        archive.writestr("META-INF/asicmanifest.xml", manifest)
        archive.write(tmp_path / "s.p7s", "META-INF/signature.p7s")
    contents = read_asic(_chunks(buffer.getvalue()), DiscardSink(), trust=pki.trust)
    assert [(f.name, f.mime) for f in contents.files] == [("hello.txt", "text/plain")]
    assert contents.signer == pki[SENDER].certificate


def _rebuild(data: bytes, change: Callable[[str, bytes], list[tuple[str, bytes]]]) -> bytes:
    """Copy a container entry by entry through ``change`` (which may drop, alter or add)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(buffer, "w") as target,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # duplicate names are the point of some tests
        for info in source.infolist():
            for name, content in change(info.filename, source.read(info)):
                method = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
                target.writestr(zipfile.ZipInfo(name), content, method)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda n, c: [(n, c + b"!" if n == "vedtak.pdf" else c)],
            IntegrityError,
            "vedtak.pdf was changed after it was signed",
        ),
        (
            lambda n, c: [(n, c)] + ([("extra.exe", b"MZ")] if n == "vedtak.pdf" else []),
            IntegrityError,
            "extra.exe is in the container but not covered",
        ),
        (
            lambda n, c: [] if n == "vedtak.pdf" else [(n, c)],
            IntegrityError,
            "vedtak.pdf is signed but missing",
        ),
        (
            lambda n, c: [(n, c.replace(b"image/png", b"text/html") if "ASiCManifest" in n else c)],
            SignatureInvalid,
            "signed digest does not match",
        ),
        (
            lambda n, c: [] if n.endswith(".p7s") else [(n, c)],
            SignatureInvalid,
            "not signed",
        ),
        (
            lambda n, c: [(n, c)] * (2 if n == "vedtak.pdf" else 1),
            UnsafeArchive,
            "two entries named 'vedtak.pdf'",
        ),
        (
            lambda n, c: [(n, c)] + ([("VEDTAK.PDF", c)] if n == "vedtak.pdf" else []),
            UnsafeArchive,
            "two entries named 'VEDTAK.PDF'",
        ),
        (
            lambda n, c: [(n, c)] + ([("../../etc/cron.d/x", b"x")] if n == "vedtak.pdf" else []),
            UnsafeArchive,
            "path traversal",
        ),
        (
            lambda n, c: [(n, c)] + ([("/etc/passwd", b"x")] if n == "vedtak.pdf" else []),
            UnsafeArchive,
            "absolute path",
        ),
        (
            lambda n, c: [(n, c)] + ([("..\\evil.bat", b"x")] if n == "vedtak.pdf" else []),
            UnsafeArchive,
            "backslash",
        ),
        (
            lambda n, c: [(n, b"application/zip" if n == "mimetype" else c)],
            UnsafeArchive,
            "the mimetype is",
        ),
    ],
    ids=[
        "tampered-file", "added-file", "removed-file", "tampered-manifest", "unsigned",
        "duplicate", "duplicate-by-case", "traversal", "absolute", "backslash", "mimetype",
    ],
)  # fmt: skip
def test_hostile_and_tampered_containers(
    pki: ThrowawayPki,
    change: Callable[[str, bytes], list[tuple[str, bytes]]],
    error: type[Exception],
    message: str,
) -> None:
    hostile = _rebuild(_container(pki), change)
    with pytest.raises(error, match=message):
        read_asic(_chunks(hostile), DiscardSink(), trust=pki.trust)


def test_tampered_xades_container(pki: ThrowawayPki) -> None:
    hostile = _rebuild(
        _container(pki, SignatureFormat.XADES),
        lambda n, c: [(n, c[:-1] + b"?" if n == "arkivmelding.xml" else c)],
    )
    with pytest.raises(IntegrityError, match=r"arkivmelding\.xml was changed"):
        read_asic(_chunks(hostile), DiscardSink(), trust=pki.trust)


def test_zip_bomb_is_refused_by_its_compression_ratio(pki: ThrowawayPki) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), asic.MIMETYPE, zipfile.ZIP_STORED)
        with archive.open("zeros.bin", "w") as member:
            for _ in range(64):
                member.write(bytes(1 << 20))
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        read_asic(_chunks(buffer.getvalue()), DiscardSink(), trust=pki.trust)


def test_meta_inf_files_are_held_to_one_limit_together(pki: ThrowawayPki) -> None:
    """META-INF files are held until the signature is checked: many of them, each under the
    limit, must not add up to any size (no signature needed to send them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), asic.MIMETYPE, zipfile.ZIP_STORED)
        for number in range(8):
            archive.writestr(f"META-INF/extra-{number}.xml", os.urandom(40_000))
    with pytest.raises(UnsafeArchive, match="META-INF files come to more than 100000 bytes"):
        read_asic(_chunks(buffer.getvalue()), DiscardSink(), trust=pki.trust,
                  limits=Limits(max_metadata_bytes=100_000))


def test_size_and_entry_limits(pki: ThrowawayPki) -> None:
    data = _container(pki)
    with pytest.raises(UnsafeArchive, match="more than 100000 bytes"):
        read_asic(
            _chunks(data), DiscardSink(), trust=pki.trust, limits=Limits(max_total_bytes=100_000)
        )
    with pytest.raises(UnsafeArchive, match="more than 3 entries"):
        read_asic(_chunks(data), DiscardSink(), trust=pki.trust, limits=Limits(max_entries=3))


def test_damaged_and_truncated_data(pki: ThrowawayPki) -> None:
    data = bytearray(_container(pki))
    position = data.find(PDF[1000:1100])
    damaged = bytes(data[:position]) + bytes([data[position] ^ 1]) + bytes(data[position + 1 :])
    with pytest.raises(IntegrityError, match="CRC"):
        read_asic(_chunks(damaged), DiscardSink(), trust=pki.trust)
    with pytest.raises(UnsafeArchive, match=r"truncated|not a readable ZIP"):
        read_asic(_chunks(bytes(data[: len(data) // 2])), DiscardSink(), trust=pki.trust)
    with pytest.raises(UnsafeArchive):
        read_asic(_chunks(b"this is not a zip file at all"), DiscardSink(), trust=pki.trust)


def test_writer_refuses_unsafe_or_clashing_names(pki: ThrowawayPki) -> None:
    for name in ("../x.pdf", "META-INF/signatures.xml", "mimetype"):
        with pytest.raises(Exception, match=r"path traversal|may not be named"):
            b"".join(write_asic([AsicEntry(name, "application/pdf", [b"x"])], pki[SENDER]))
    twice = [
        AsicEntry("a.pdf", "application/pdf", [b"x"]),
        AsicEntry("A.pdf", "application/pdf", [b"y"]),
    ]
    with pytest.raises(Exception, match="two documents"):
        b"".join(write_asic(twice, pki[SENDER]))


def _signed_zip(pki: ThrowawayPki, documents: dict[str, bytes]) -> tuple[zipfile.ZipFile,
                                                                          io.BytesIO]:
    """A CAdES-signed container written with the standard library, left open for more."""
    from ipunkt.package import cades

    files = [asic.WrittenFile(name, "application/octet-stream", len(data),
                              hashlib.sha256(data).digest()) for name, data in documents.items()]
    signature_file = "META-INF/signature-1.p7s"
    manifest = asic.asic_manifest(files, signature_file)
    buffer = io.BytesIO()
    archive = zipfile.ZipFile(buffer, "w")
    archive.writestr(zipfile.ZipInfo("mimetype"), asic.MIMETYPE, zipfile.ZIP_STORED)
    for name, data in documents.items():
        archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_STORED)
    archive.writestr("META-INF/ASiCManifest.xml", manifest)
    archive.writestr(signature_file, cades.sign_detached(manifest, pki[SENDER]))
    return archive, buffer


def test_a_signed_container_read_by_a_streaming_reader_passes(pki: ThrowawayPki) -> None:
    archive, buffer = _signed_zip(pki, {"arkivmelding.xml": XML})
    archive.close()
    contents = read_asic(_chunks(buffer.getvalue(), 1000), DiscardSink(), trust=pki.trust)
    assert [f.name for f in contents.files] == ["arkivmelding.xml"]


def test_entries_hidden_behind_a_false_directory_start_are_refused(pki: ThrowawayPki) -> None:
    """Four bytes that look like the directory's start end a streaming read; behind them, an
    unsigned entry under a signed entry's name and a path out of the folder, which a client's
    ZIP library (reading the directory at the end) would see and ipunkt would not."""
    archive, buffer = _signed_zip(pki, {"arkivmelding.xml": XML})
    archive.fp.write(b"PK\x01\x02")  # type: ignore[union-attr]
    archive.start_dir = archive.fp.tell()  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        archive.writestr("arkivmelding.xml", b"<arkivmelding>unsigned</arkivmelding>")
        archive.writestr("../../evil.sh", b"#!/bin/sh\n")
    archive.close()
    hostile = buffer.getvalue()
    assert len(zipfile.ZipFile(io.BytesIO(hostile)).namelist()) == 6  # what a client sees
    with pytest.raises(UnsafeArchive, match="directory lists 6 entries; the container holds 4"):
        read_asic(_chunks(hostile), DiscardSink(), trust=pki.trust)


def test_a_directory_that_places_a_signed_entry_elsewhere_is_refused(pki: ThrowawayPki) -> None:
    """A signed, stored attachment carries a ZIP entry of its own named like a signed entry,
    and the directory points there: a client would read other bytes under the signed name."""
    decoy = io.BytesIO()
    with zipfile.ZipFile(decoy, "w") as inner:
        inner.writestr(zipfile.ZipInfo("arkivmelding.xml"), b"<arkivmelding>other</arkivmelding>")
    archive, buffer = _signed_zip(pki, {"arkivmelding.xml": XML, "vedlegg.zip": decoy.getvalue()})
    archive.close()
    data = bytearray(buffer.getvalue())
    fake = data.find(b"PK\x03\x04", data.find(decoy.getvalue()))
    listed = zipfile.ZipFile(io.BytesIO(bytes(data))).start_dir  # the outer directory
    while data[listed + 46 : listed + 46 + 16] != b"arkivmelding.xml":
        listed = data.find(b"PK\x01\x02", listed + 4)
    data[listed + 42 : listed + 46] = fake.to_bytes(4, "little")
    data[listed + 16 : listed + 28] = data[fake + 14 : fake + 26]  # its CRC and sizes
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).read("arkivmelding.xml") == (
        b"<arkivmelding>other</arkivmelding>")  # what a client would read
    with pytest.raises(UnsafeArchive, match="the central directory"):
        read_asic(_chunks(bytes(data)), DiscardSink(), trust=pki.trust)


def test_documents_that_are_zips_themselves_are_no_trouble(pki: ThrowawayPki) -> None:
    """An OpenDocument or ASiC-E among the documents holds its own ``mimetype`` and
    ``META-INF/manifest.xml`` entries, which deflate leaves readable in the stream."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as document:
        document.writestr(zipfile.ZipInfo("mimetype"), b"application/vnd.oasis.opendocument.text")
        document.writestr(zipfile.ZipInfo("content.xml"), os.urandom(20_000))
        document.writestr(zipfile.ZipInfo("META-INF/manifest.xml"), os.urandom(3000))
    entries = [AsicEntry("arkivmelding.xml", "application/xml", [XML]),
               AsicEntry("brev.odt", "application/vnd.oasis.opendocument.text",
                         [inner.getvalue()], len(inner.getvalue()))]
    for form in SignatureFormat:
        data = b"".join(write_asic(entries, pki[SENDER], signature=form))
        assert data.count(b"PK\x03\x04") > 6  # the document's own headers are in the stream
        contents = read_asic(_chunks(data, 999), DiscardSink(), trust=pki.trust)
        assert [f.name for f in contents.files] == ["arkivmelding.xml", "brev.odt"]


def test_a_header_of_the_same_name_just_before_a_signed_entry_is_no_trouble(
    pki: ThrowawayPki,
) -> None:
    """A stored attachment right before ``zzz.txt`` holds a header of that name too: the read
    knows which of them it took, and the directory names that one."""
    decoy = io.BytesIO()
    with zipfile.ZipFile(decoy, "w") as inner:
        inner.writestr(zipfile.ZipInfo("zzz.txt"), b"other")
    archive, buffer = _signed_zip(pki, {"vedlegg.zip": decoy.getvalue(), "zzz.txt": b"signed"})
    archive.close()
    for size in (7, 1000, 1 << 20):
        contents = read_asic(_chunks(buffer.getvalue(), size), DiscardSink(), trust=pki.trust)
        assert [f.name for f in contents.files] == ["vedlegg.zip", "zzz.txt"]


@pytest.mark.parametrize("form", list(SignatureFormat))
def test_a_container_reads_whatever_its_chunks(pki: ThrowawayPki, form: SignatureFormat) -> None:
    """Chunks may end anywhere: in a signature, a name, an extra field, a descriptor."""
    entries = [AsicEntry("arkivmelding.xml", "application/xml", [b"<a>" + b"x" * 300 + b"</a>"]),
               AsicEntry("b.txt", "text/plain", [b"b" * 50], 50)]
    data = b"".join(write_asic(entries, pki[SENDER], signature=form))
    for size in (1, 2, 3, 5, 7, 11, 13, 29, 31, 37, 61, 64, 127, 1000):
        contents = read_asic(_chunks(data, size), DiscardSink(), trust=pki.trust)
        assert [f.name for f in contents.files] == ["arkivmelding.xml", "b.txt"], size

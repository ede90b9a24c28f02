"""CMS EnvelopedData (RFC 5652), streamed both ways: AES-256-CBC content, RSA key transport.

What eFormidling uses (efm-common ``CreateCMSDocument``, KS ``kryptering``): one
KeyTransRecipientInfo addressed by issuer and serial number, RSAES-OAEP with SHA-256 and
MGF1-SHA-256 (or PKCS#1 v1.5 for peers that need it), AES-256-CBC content encryption.

Writing uses BER indefinite lengths, as BouncyCastle's stream generator does, so that the
envelope can be written before the content's size is known: the encrypted content is a
constructed OCTET STRING of fixed-size segments. Reading accepts BER and DER, parses the small
header with asn1crypto and streams the content through the cipher; it honours the OAEP
parameters it finds, since the SDP specification's defaults (SHA-1) and the implementations'
choice (SHA-256) differ.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO, Protocol

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ipunkt.package import der
from ipunkt.package.errors import DecryptionFailed
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import check_rsa, check_usage, describe

SEGMENT = 1 << 20
"""Plaintext bytes per encrypted OCTET STRING segment."""
HEADER_LIMIT = 1 << 20
"""The most bytes the envelope's header parts (recipients, algorithm) may take."""
MAX_DEPTH = 32
"""The deepest nesting of ASN.1 values accepted (hostile input could nest millions)."""

ENVELOPED_DATA = "1.2.840.113549.1.7.3"
DATA = "1.2.840.113549.1.7.1"
AES_CBC_KEY_SIZES = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
DIGESTS: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class KeyTransport(StrEnum):
    """How the content key is encrypted to the recipient's RSA key."""

    OAEP = "oaep"
    """RSAES-OAEP, SHA-256 and MGF1-SHA-256: what the integrasjonspunkt sends."""
    PKCS1V15 = "pkcs1v15"
    """RSAES-PKCS1-v1_5: the integrasjonspunkt's fallback, and DPE's."""


class Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> Any: ...


def _recipient_info(
    recipient: x509.Certificate, content_key: bytes, transport: KeyTransport
) -> bytes:
    """The RecipientInfos (a SET of one KeyTransRecipientInfo), DER.

    Assembled from cached DER parts: building them with asn1crypto for each message took as
    long as sealing the rest of a small one.
    """
    public_key = check_rsa(recipient)
    check_usage(recipient, ("key_encipherment",))
    rid = _recipient_identifier(recipient.public_bytes(serialization.Encoding.DER))
    if transport is KeyTransport.OAEP:
        encrypted_key = public_key.encrypt(
            content_key,
            rsa_padding.OAEP(rsa_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
        )
    else:
        encrypted_key = public_key.encrypt(content_key, rsa_padding.PKCS1v15())
    info = der.tlv(0x30, b"\x02\x01\x00" + rid + _key_encryption_algorithm(transport)
                + der.tlv(0x04, encrypted_key))
    return der.tlv(0x31, info)


@functools.cache
def _key_encryption_algorithm(transport: KeyTransport) -> bytes:
    if transport is KeyTransport.PKCS1V15:
        return bytes(cms.KeyEncryptionAlgorithm(
            {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}
        ).dump())
    sha256 = {"algorithm": "sha256", "parameters": core.Null()}
    return bytes(cms.KeyEncryptionAlgorithm(
        {
            "algorithm": "rsaes_oaep",
            "parameters": algos.RSAESOAEPParams(
                {
                    "hash_algorithm": sha256,
                    "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": sha256},
                    "p_source_algorithm": {"algorithm": "p_specified", "parameters": b""},
                }
            ),
        }
    ).dump())


@functools.lru_cache(maxsize=256)
def _recipient_identifier(certificate: bytes) -> bytes:
    """The certificate's issuerAndSerialNumber, DER: cached, since asn1crypto takes about as
    long to re-encode an issuer's name as the rest of a small message's sealing."""
    parsed = asn1_x509.Certificate.load(certificate)
    return bytes(cms.RecipientIdentifier(
        name="issuer_and_serial_number",
        value=cms.IssuerAndSerialNumber(
            {"issuer": parsed.issuer, "serial_number": parsed.serial_number}
        ),
    ).dump())


class CmsWriter:
    """Encrypts what is written to it into a CMS EnvelopedData on ``out``, in one pass.

    Use as a context manager, or call :meth:`close` to write the padding and the end of the
    structure. Memory is one segment, whatever the size of the content.
    """

    def __init__(
        self,
        out: Writable,
        recipient: x509.Certificate,
        *,
        key_transport: KeyTransport = KeyTransport.OAEP,
        segment: int = SEGMENT,
    ) -> None:
        if segment % 16 or segment <= 0:
            raise ValueError("segment must be a positive multiple of the AES block size")
        self._out = out
        content_key = os.urandom(32)
        iv = os.urandom(16)
        recipient_infos = _recipient_info(recipient, content_key, key_transport)
        algorithm = cms.EncryptionAlgorithm({"algorithm": "aes256_cbc", "parameters": iv})
        self._encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
        self._segment = segment
        # Both buffers grow on demand: a small message never fills a segment, and allocating
        # two segments up front cost a small message's sealing more than its encryption.
        self._pending = bytearray()
        self._output: bytearray | None = None
        self._closed = False
        out.write(
            b"\x30\x80"
            + core.ObjectIdentifier(ENVELOPED_DATA).dump()
            + b"\xa0\x80\x30\x80"
            + core.Integer(0).dump()
            + recipient_infos
            + b"\x30\x80"
            + core.ObjectIdentifier(DATA).dump()
            + algorithm.dump()
            + b"\xa0\x80"
        )

    def _emit(self, plaintext: bytes | bytearray | memoryview) -> None:
        if self._output is None:
            self._output = bytearray(self._segment + 16)
        n = self._encryptor.update_into(plaintext, self._output)
        if n:
            self._out.write(b"\x04" + der.length(n))
            self._out.write(memoryview(self._output)[:n])

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data``; returns its length, like a file's ``write``."""
        if self._closed:
            raise ValueError("write to a closed CmsWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        start = 0
        if self._pending:
            start = min(self._segment - len(self._pending), size)
            self._pending += view[:start]
            if len(self._pending) == self._segment:
                self._emit(self._pending)
                del self._pending[:]
        while size - start >= self._segment:
            self._emit(view[start : start + self._segment])
            start += self._segment
        if start < size:
            self._pending += view[start:]
        return size

    def close(self) -> None:
        """Pad (PKCS#7), encrypt the rest and end the indefinite-length structure."""
        if self._closed:
            return
        self._closed = True
        padder = padding.PKCS7(128).padder()
        tail = padder.update(bytes(self._pending)) + padder.finalize()
        last = self._encryptor.update(tail) + self._encryptor.finalize()
        self._out.write(b"\x04" + der.length(len(last)) + last)
        self._out.write(b"\x00\x00" * 5)

    def __enter__(self) -> CmsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


class _Collector:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> Iterator[bytes]:
        parts, self.parts = self.parts, []
        return iter(parts)


def encrypt(
    chunks: Iterable[bytes],
    recipient: x509.Certificate,
    *,
    key_transport: KeyTransport = KeyTransport.OAEP,
    segment: int = SEGMENT,
) -> Iterator[bytes]:
    """Encrypt a stream of chunks; yields the CMS bytes as they are made."""
    collector = _Collector()
    writer = CmsWriter(collector, recipient, key_transport=key_transport, segment=segment)
    yield from collector.drain()
    for chunk in chunks:
        writer.write(chunk)
        yield from collector.drain()
    writer.close()
    yield from collector.drain()


@dataclass(frozen=True)
class _Header:
    tag_class: int
    constructed: bool
    number: int
    length: int | None
    raw: bytes


class _BerStream:
    """A forward-only BER reader over a byte source, keeping count of its position."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buffer = bytearray()
        self.position = 0

    def _fill(self, n: int) -> bool:
        while len(self._buffer) < n:
            data = self._read(max(n - len(self._buffer), 1 << 16))
            if not data:
                return False
            self._buffer += data
        return True

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._buffer[:n])

    def take(self, n: int) -> bytes:
        if not self._fill(n):
            raise DecryptionFailed(
                f"the CMS structure is truncated at byte {self.position + len(self._buffer)}"
            )
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self.position += n
        return data

    def take_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes, at least one; unbuffered reads go straight to the source."""
        if self._buffer:
            data = bytes(self._buffer[:limit])
            del self._buffer[: len(data)]
        else:
            data = self._read(limit)
            if not data:
                raise DecryptionFailed(f"the CMS structure is truncated at byte {self.position}")
        self.position += len(data)
        return data

    def at_end(self) -> bool:
        return not self._fill(1)

    def header(self) -> _Header:
        start = self.position
        first = self.take(1)[0]
        raw = bytearray([first])
        number = first & 0x1F
        if number == 0x1F:
            number = 0
            while True:
                byte = self.take(1)[0]
                raw.append(byte)
                number = (number << 7) | (byte & 0x7F)
                if not byte & 0x80:
                    break
                if number > 1 << 28:
                    raise DecryptionFailed(f"an absurd ASN.1 tag at byte {start}")
        length_byte = self.take(1)[0]
        raw.append(length_byte)
        length: int | None
        if length_byte == 0x80:
            if not first & 0x20:
                raise DecryptionFailed(
                    f"a primitive ASN.1 value with indefinite length at byte {start}"
                )
            length = None
        elif length_byte & 0x80:
            count = length_byte & 0x7F
            if count > 8:
                raise DecryptionFailed(f"an ASN.1 length of {count} bytes at byte {start}")
            body = self.take(count)
            raw += body
            length = int.from_bytes(body, "big")
        else:
            length = length_byte
        return _Header(first >> 6, bool(first & 0x20), number, length, bytes(raw))

    def element(self, limit: int = HEADER_LIMIT, depth: int = 0) -> bytes:
        """One complete TLV (nested indefinite lengths included), at most ``limit`` bytes."""
        start = self.position
        if depth > MAX_DEPTH:
            raise DecryptionFailed(f"ASN.1 nested deeper than {MAX_DEPTH} levels at byte {start}")
        header = self.header()
        if header.length is not None:
            if header.length > limit:
                raise DecryptionFailed(
                    f"an ASN.1 element of {header.length} bytes at byte {start} (limit {limit})"
                )
            return header.raw + self.take(header.length)
        parts = [header.raw]
        while not self.at_eoc():
            parts.append(self.element(limit - (self.position - start), depth + 1))
            if self.position - start > limit:
                raise DecryptionFailed(f"an ASN.1 element over {limit} bytes at byte {start}")
        parts.append(self.take(2))
        return b"".join(parts)

    def at_eoc(self) -> bool:
        return self.peek(2) == b"\x00\x00"

    def more(self, end: int | None) -> bool:
        """Whether the container ending at ``end`` (None: indefinite) has more elements."""
        if end is None:
            return not self.at_eoc()
        return self.position < end

    def close(self, end: int | None, what: str) -> None:
        if end is None:
            if self.take(2) != b"\x00\x00":
                raise DecryptionFailed(f"{what} is not terminated")
        elif self.position != end:
            raise DecryptionFailed(f"{what} has the wrong length")


def _end(stream: _BerStream, header: _Header) -> int | None:
    return None if header.length is None else stream.position + header.length


def _expect(header: _Header, tag_class: int, number: int, constructed: bool, what: str) -> None:
    if (header.tag_class, header.number, header.constructed) != (tag_class, number, constructed):
        raise DecryptionFailed(f"not a CMS EnvelopedData: expected {what}")


@dataclass(frozen=True)
class Recipient:
    """Whom an envelope is addressed to, and how its content key is wrapped."""

    key_transport: str
    issuer: bytes | None = None
    """The DER of the issuer's name, for issuerAndSerialNumber."""
    serial_number: int | None = None
    subject_key_identifier: bytes | None = None
    info: cms.KeyTransRecipientInfo | None = None

    def describe(self) -> str:
        if self.issuer is not None:
            issuer = _rfc4514(asn1_x509.Name.load(self.issuer))
            return f"serial {self.serial_number:x} issued by {issuer} ({self.key_transport})"
        if self.subject_key_identifier is not None:
            return f"key id {self.subject_key_identifier.hex()} ({self.key_transport})"
        return self.key_transport

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.issuer is not None:
            parsed = asn1_x509.Certificate.load(
                certificate.public_bytes(serialization.Encoding.DER)
            )
            return (
                self.serial_number == certificate.serial_number
                and self.issuer == parsed.issuer.dump()
            )
        if self.subject_key_identifier is not None:
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                return False
            return ski.value.digest == self.subject_key_identifier
        return False


SHORT_NAMES = {
    "common_name": "CN",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "country_name": "C",
    "locality_name": "L",
    "serial_number": "serialNumber",
    "organization_identifier": "organizationIdentifier",
}


def _rfc4514(name: asn1_x509.Name) -> str:
    """A name as cryptography's ``rfc4514_string`` writes it (most specific first)."""
    parts = []
    for rdn in reversed(list(name.chosen)):
        for pair in rdn:
            label = pair["type"].native
            parts.append(f"{SHORT_NAMES.get(label, pair['type'].dotted)}={pair['value'].native}")
    return ",".join(parts)


def _recipients(raw: bytes) -> list[Recipient]:
    try:
        found = []
        for info in cms.RecipientInfos.load(raw):
            if info.name != "ktri":
                found.append(Recipient(f"unsupported recipient type {info.name}"))
                continue
            ktri = info.chosen
            rid = ktri["rid"]
            transport = ktri["key_encryption_algorithm"]["algorithm"].native
            if rid.name == "issuer_and_serial_number":
                found.append(
                    Recipient(
                        transport,
                        issuer=rid.chosen["issuer"].dump(),
                        serial_number=rid.chosen["serial_number"].native,
                        info=ktri,
                    )
                )
            else:
                found.append(
                    Recipient(transport, subject_key_identifier=rid.chosen.native, info=ktri)
                )
        return found
    except (ValueError, TypeError, KeyError) as exc:
        raise DecryptionFailed(f"the CMS recipient information is malformed: {exc}") from exc


def _oaep(parameters: algos.RSAESOAEPParams) -> tuple[rsa_padding.OAEP, str]:
    hash_name = parameters["hash_algorithm"]["algorithm"].native
    mgf = parameters["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise DecryptionFailed(f"unsupported OAEP mask generation {mgf['algorithm'].native}")
    mgf_hash_name = mgf["parameters"]["algorithm"].native
    source = parameters["p_source_algorithm"]
    if source["algorithm"].native != "p_specified":
        raise DecryptionFailed(f"unsupported OAEP label source {source['algorithm'].native}")
    label = source["parameters"].native or None
    for name in (hash_name, mgf_hash_name):
        if name not in DIGESTS:
            raise DecryptionFailed(f"unsupported OAEP digest {name}")
    scheme = rsa_padding.OAEP(rsa_padding.MGF1(DIGESTS[mgf_hash_name]), DIGESTS[hash_name], label)
    return scheme, f"RSAES-OAEP {hash_name.upper()}/MGF1-{mgf_hash_name.upper()}"


def _unwrap(recipient: Recipient, key: rsa.RSAPrivateKey) -> bytes:
    assert recipient.info is not None
    algorithm = recipient.info["key_encryption_algorithm"]
    encrypted_key = recipient.info["encrypted_key"].native
    name = algorithm["algorithm"].native
    scheme: rsa_padding.AsymmetricPadding
    if name == "rsaes_oaep":
        parameters = algorithm["parameters"]
        if not isinstance(parameters, algos.RSAESOAEPParams):
            parameters = algos.RSAESOAEPParams({})
        scheme, described = _oaep(parameters)
    elif name == "rsaes_pkcs1v15":
        scheme = rsa_padding.PKCS1v15()
        described = "RSAES-PKCS1-v1_5"
    else:
        raise DecryptionFailed(f"unsupported key transport {name}")
    try:
        return key.decrypt(encrypted_key, scheme)
    except ValueError as exc:
        raise DecryptionFailed(
            f"the content key does not decrypt with our private key ({described}): the "
            "package was encrypted to another key, or it is damaged"
        ) from exc


def _reader(source: BinaryIO | Iterable[bytes]) -> Callable[[int], bytes]:
    read = getattr(source, "read", None)
    if read is not None:
        return read  # type: ignore[no-any-return]
    chunks = iter(source)
    pending = bytearray()

    def read_chunks(n: int) -> bytes:
        while not pending:
            chunk = next(chunks, None)
            if chunk is None:
                return b""
            pending.extend(chunk)
        data = bytes(pending[:n])
        del pending[:n]
        return data

    return read_chunks


class CmsReader:
    """Reads a CMS EnvelopedData from a stream: the header at once, the content on demand.

    ``recipients`` and ``content_algorithm`` say what the envelope holds before any key is
    used; :meth:`decrypt` then streams the plaintext.
    """

    def __init__(self, source: BinaryIO | Iterable[bytes], *, chunk_size: int = SEGMENT) -> None:
        self._ber = _BerStream(_reader(source))
        self._chunk_size = chunk_size
        self._used = False
        self._ends: list[tuple[int | None, str]] = []
        if not self._ber.peek(1):
            raise DecryptionFailed("the package is empty")
        try:
            self._read_header()
        except (ValueError, TypeError, KeyError) as exc:
            raise DecryptionFailed(f"the CMS header is malformed: {exc}") from exc

    def _read_header(self) -> None:
        ber = self._ber
        header = ber.header()
        _expect(header, 0, 16, True, "a SEQUENCE (ContentInfo) at the start")
        self._ends.append((_end(ber, header), "the ContentInfo"))
        content_type = core.ObjectIdentifier.load(ber.element(64)).dotted
        if content_type != ENVELOPED_DATA:
            raise DecryptionFailed(
                f"not a CMS EnvelopedData: the content type is {_oid_name(content_type)}"
            )
        header = ber.header()
        _expect(header, 2, 0, True, "[0] after the content type")
        self._ends.append((_end(ber, header), "the ContentInfo's content"))
        header = ber.header()
        _expect(header, 0, 16, True, "the EnvelopedData SEQUENCE")
        self._ends.append((_end(ber, header), "the EnvelopedData"))
        core.Integer.load(ber.element(16))
        if ber.peek(1) == b"\xa0":  # originatorInfo: certificates we do not need
            ber.element()
        self.recipients = _recipients(ber.element())
        header = ber.header()
        _expect(header, 0, 16, True, "the EncryptedContentInfo SEQUENCE")
        self._ends.append((_end(ber, header), "the EncryptedContentInfo"))
        ber.element(64)
        algorithm = cms.EncryptionAlgorithm.load(ber.element(1024))
        self.content_algorithm: str = algorithm["algorithm"].native
        self._iv: bytes = (
            algorithm["parameters"].native if self.content_algorithm in AES_CBC_KEY_SIZES else b""
        )
        if self.content_algorithm not in AES_CBC_KEY_SIZES:
            raise DecryptionFailed(
                f"unsupported content encryption {self.content_algorithm} (ipunkt reads AES-CBC)"
            )
        if len(self._iv) != 16:
            raise DecryptionFailed("the AES-CBC initialisation vector is not 16 bytes")
        if not ber.more(self._ends[-1][0]):
            raise DecryptionFailed(
                "the envelope has no encrypted content (detached content is not supported)"
            )

    def recipient_for(self, certificate: x509.Certificate) -> Recipient:
        for recipient in self.recipients:
            if recipient.info is not None and recipient.matches(certificate):
                return recipient
        listed = "; ".join(r.describe() for r in self.recipients) or "none"
        raise DecryptionFailed(
            f"the package is not encrypted to our certificate {describe(certificate)}; "
            f"it is addressed to: {listed}"
        )

    def decrypt(self, key: OrganisationKey) -> Iterator[bytes]:
        """The plaintext, chunk by chunk; raises :class:`DecryptionFailed` when it is wrong."""
        if self._used:
            raise ValueError("a CmsReader decrypts once")
        self._used = True
        recipient = self.recipient_for(key.certificate)
        content_key = _unwrap(recipient, key.private_key)
        if len(content_key) != AES_CBC_KEY_SIZES[self.content_algorithm]:
            raise DecryptionFailed(
                f"the content key is {len(content_key)} bytes, not what "
                f"{self.content_algorithm} needs: wrong key or damaged package"
            )
        return self._plaintext(content_key)

    def _plaintext(self, content_key: bytes) -> Iterator[bytes]:
        decryptor = Cipher(algorithms.AES(content_key), modes.CBC(self._iv)).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        for piece in self._ciphertext():
            plain = unpadder.update(decryptor.update(piece))
            if plain:
                yield plain
        try:
            tail = unpadder.update(decryptor.finalize()) + unpadder.finalize()
        except ValueError as exc:
            raise DecryptionFailed(
                "the content does not decrypt (bad padding or length): wrong key, or the "
                "package is damaged or was tampered with"
            ) from exc
        if tail:
            yield tail
        self._finish()

    def _ciphertext(self) -> Iterator[bytes]:
        ber = self._ber
        header = ber.header()
        if (header.tag_class, header.number) != (2, 0):
            raise DecryptionFailed("not a CMS EnvelopedData: expected [0] encrypted content")
        if not header.constructed:
            yield from self._primitive(header.length or 0)
        else:
            yield from self._segments(_end(ber, header), 0)

    def _primitive(self, length: int) -> Iterator[bytes]:
        remaining = length
        while remaining:
            data = self._ber.take_some(min(remaining, self._chunk_size))
            remaining -= len(data)
            yield data

    def _segments(self, end: int | None, depth: int) -> Iterator[bytes]:
        ber = self._ber
        if depth > MAX_DEPTH:
            raise DecryptionFailed(f"the encrypted content is nested deeper than {MAX_DEPTH}")
        while ber.more(end):
            header = ber.header()
            if (header.tag_class, header.number) != (0, 4):
                raise DecryptionFailed(
                    "the encrypted content holds something other than OCTET STRINGs"
                )
            if header.constructed:
                yield from self._segments(_end(ber, header), depth + 1)
            else:
                yield from self._primitive(header.length or 0)
        ber.close(end, "the encrypted content")

    def _finish(self) -> None:
        ber = self._ber
        eci_end, what = self._ends.pop()
        ber.close(eci_end, what)
        enveloped_end, what = self._ends.pop()
        while ber.more(enveloped_end):
            if ber.peek(1) != b"\xa1":
                raise DecryptionFailed("unexpected data after the encrypted content")
            ber.element()
        ber.close(enveloped_end, what)
        while self._ends:
            end, what = self._ends.pop()
            ber.close(end, what)
        if not ber.at_end():
            raise DecryptionFailed("unexpected data after the end of the CMS structure")


OID_NAMES = {
    "1.2.840.113549.1.7.1": "data",
    "1.2.840.113549.1.7.2": "signedData",
    "1.2.840.113549.1.7.3": "envelopedData",
    "1.2.840.113549.1.9.16.1.23": "authEnvelopedData",
}


def _oid_name(oid: str) -> str:
    if not oid:
        return "unreadable"
    return f"{OID_NAMES[oid]} ({oid})" if oid in OID_NAMES else oid


def decrypt(source: BinaryIO | Iterable[bytes], key: OrganisationKey) -> Iterator[bytes]:
    """Decrypt a CMS EnvelopedData from a file or a stream of chunks, chunk by chunk."""
    return CmsReader(source).decrypt(key)

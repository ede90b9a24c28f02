"""Hand-written bad inputs to a real ``ipunkt serve`` with authentication on: each is answered
with the status and the documented error body it should have, and after each the same server
still takes a good message end to end (create, upload, send) and delivers it.

Bodies that pass a limit are refused by the limit: a declared length at once, before a byte of
the body is sent (a raw socket sends the headers alone); a chunked one as soon as it passes.
Refused uploads leave no file behind. File names with a path keep only their last part (RFC
6266, as browsers do); names that are unsafe even then are refused before the file is read.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ipunkt import testing
from ipunkt.testing import ADMINISTRASJON, ARKIVMELDING_STANDARD, ServerProcess, free_port

USER, PASSWORD = "bad-inputs", "bad-inputs-secret"
ORG, RECEIVER = "910077473", "910075918"
AVTALT = "urn:no:difi:avtalt:xsd::avtalt"
MIB = 1024 * 1024
CHANNEL_LIMIT = MIB
LETTER = "Hei på deg\n".encode()
BOUND = 10.0
"""Seconds within which every answer must come."""
IDLE = 1.5
"""The server's ``api.body_idle_seconds``: a body that stalls this long is refused."""

OUTBOX_CHANNEL = '''
from datetime import timedelta
from pathlib import Path

from ipunkt.plugin import Channel, ChannelConfig, ChannelInfo, SendResult, hookimpl


class OutboxConfig(ChannelConfig):
    outbox: str = ""


class Outbox(Channel):
    """Delivers each file to <outbox>/<message id>/<file name>, as a careless receiver would."""

    async def send(self, message):
        folder = Path(self.context.config.outbox) / message.message_id
        folder.mkdir(parents=True, exist_ok=True)
        for attachment in message.attachments:
            with (folder / attachment.filename).open("wb") as sink:
                async for chunk in attachment.open():
                    sink.write(chunk)
        return SendResult()


@hookimpl
def register_channels(register):
    register(ChannelInfo(service="DPB", name="outbox", max_size=CHANNEL_LIMIT,
                         message_types=frozenset({"arkivmelding"}), factory=Outbox,
                         config_schema=OutboxConfig, default_ttl=timedelta(hours=1)))
'''.replace("CHANNEL_LIMIT", str(CHANNEL_LIMIT))


@dataclass
class Server:
    process: ServerProcess
    outbox: Path
    payloads: Path

    @property
    def url(self) -> str:
        return self.process.url

    def blobs(self) -> set[Path]:
        return {p for p in self.payloads.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("bad-inputs")
    site = folder / "site"
    info = site / "outbox_channel-1.0.0.dist-info"
    info.mkdir(parents=True)
    (site / "outbox_channel.py").write_text(OUTBOX_CHANNEL)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: outbox-channel\n"
                                   "Version: 1.0.0\nRequires-Dist: ipunkt>=0.1\n")
    (info / "entry_points.txt").write_text("[ipunkt]\noutbox_channel = outbox_channel\n")
    registry = folder / "registry.toml"
    registry.write_text(
        f'[[receiver]]\nidentifier = "{RECEIVER}"\n[[receiver.record]]\nservice = "DPB"\n'
        f'processes = ["{ADMINISTRASJON}"]\n'
        f'document_types = ["{ARKIVMELDING_STANDARD}", "{AVTALT}"]\n')
    outbox = folder / "outbox"
    config = folder / "ipunkt.toml"
    config.write_text(
        f'[organisation]\nnumber = "{ORG}"\n[plugins]\nallow = ["outbox-channel"]\n'
        f'[lookup]\nsources = ["local"]\n[lookup.local]\npath = "{registry}"\n'
        f'[store]\npath = "{folder / "data"}"\n'
        f'[api]\nusername = "{USER}"\npassword = "{PASSWORD}"\nbody_idle_seconds = {IDLE}\n'
        '[delivery]\noutbox_poll_seconds = 0.1\n'
        f'[channels.dpb]\nenabled = true\noutbox = "{outbox}"\n')
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(config, free_port(), env=env) as process:
        yield Server(process, outbox, folder / "data" / "payloads")


# --- talking to it --------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    path: str


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = basic(USER, PASSWORD)


@dataclass
class Api:
    session: aiohttp.ClientSession
    server: Server
    delivered: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """What each message sent should deliver: file name -> bytes."""

    async def call(self, method: str, path: str, *, auth: str | None = AUTH,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Answer:
        sent = {"Authorization": auth} if auth else {}
        async with self.session.request(
            method, self.server.url + path, headers={**sent, **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=BOUND), **kwargs,
        ) as response:
            return Answer(response.status, dict(response.headers), await response.read(),
                          path.split("?")[0])

    async def raw(self, head: str, body: AsyncIterator[bytes] | None = None) -> Answer:
        """One request as bytes on a socket: headers, then ``body``'s chunks while the server
        reads them; the answer as it comes, whether or not the body was all sent."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.process.port)
        try:
            writer.write(head.encode("latin-1").replace(b"\n", b"\r\n") + b"\r\n")
            if body is not None:
                try:
                    async for chunk in body:
                        writer.write(chunk)
                        await writer.drain()
                except ConnectionError:
                    pass
            head_block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            status_line, *lines = head_block.decode("latin-1").strip().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines)
            length = headers.get("Content-Length")
            payload = await asyncio.wait_for(
                reader.readexactly(int(length)) if length else reader.read(), BOUND)
        finally:
            writer.close()
        path = head.split(" ", 2)[1].split("?")[0]
        return Answer(int(status_line.split()[1]), headers, payload, path)

    async def create(self, message: dict[str, Any] | None = None) -> str:
        message = message or sbd()
        answer = await self.call("POST", "/api/messages/out", json=message)
        assert answer.status == 200, answer.body
        return str(message["standardBusinessDocumentHeader"]["documentIdentification"]
                   ["instanceIdentifier"])

    async def upload(self, message_id: str, disposition: str, data: Any = LETTER,
                     **headers: str) -> Answer:
        return await self.call("PUT", f"/api/messages/out/{message_id}", data=data, headers={
            "Content-Type": "text/plain", "Content-Disposition": disposition, **headers})

    async def good_message(self) -> list[str]:
        """Create, upload and send a good message; what went wrong, if anything."""
        message_id = str(uuid.uuid4())
        create = await self.call("POST", "/api/messages/out", json=sbd(message_id))
        upload = await self.upload(message_id, 'attachment; name="Brev"; filename="brev.txt"')
        send = await self.call("POST", f"/api/messages/out/{message_id}")
        wrong = [f"{step}: {answer.status} {answer.body[:300]!r}"
                 for step, answer in (("create", create), ("upload", upload), ("send", send))
                 if answer.status != 200]
        if not wrong:
            self.delivered[message_id] = {"brev.txt": LETTER}
        return wrong


def sbd(message_id: str | None = None, **options: Any) -> dict[str, Any]:
    """An arkivmelding to RECEIVER, under a new message id unless one is given."""
    return testing.sbd(RECEIVER, message_id or str(uuid.uuid4()), **options)


async def repeated(chunk: bytes, times: int) -> AsyncIterator[bytes]:
    for _ in range(times):
        yield chunk


def chunked(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async def framed() -> AsyncIterator[bytes]:
        async for chunk in body:
            yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
        yield b"0\r\n\r\n"

    return framed()


def multipart(*parts: tuple[str, bytes], boundary: str = "b") -> bytes:
    """A multipart body of (part headers, part bytes), closed as it should be."""
    body = b"".join(f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
                    for headers, data in parts)
    return body + f"--{boundary}--\r\n".encode()


SBD_PART = ('Content-Disposition: form-data; name="sbd"\r\nContent-Type: application/json',
            b"")


def with_sbd(*parts: tuple[str, bytes], boundary: str = "b") -> bytes:
    return multipart((SBD_PART[0], json.dumps(sbd()).encode()), *parts, boundary=boundary)


def file_part(name: str, data: bytes) -> tuple[str, bytes]:
    return (f'Content-Disposition: form-data; name="Fil"; filename="{name}"\r\n'
            "Content-Type: text/plain", data)


# --- the bad inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """The answer a bad input should get."""

    status: int
    exception: str | None = None
    """The error body's ``exception``, by its last dotted part."""
    message: str = ""
    """A part of the error body's ``message``."""
    shaped: bool = True
    """False where the HTTP parser refuses the request before ipunkt sees it (text/plain)."""


@dataclass(frozen=True)
class Accepted:
    """A questionable input that is taken as it should be: a path cut off a file name."""

    stored_as: str


Send = Callable[[Api], Awaitable[Answer]]
NOT_READABLE = "HttpMessageNotReadableException"
CONSTRAINT = "ConstraintViolationException"
UNSUPPORTED = "HttpMediaTypeNotSupportedException"
BAD_NAME = "InvalidFilenameException"
JSON_TYPE = {"Content-Type": "application/json"}


def post_sbd(data: bytes | str, headers: dict[str, str] = JSON_TYPE) -> Send:
    return lambda api: api.call("POST", "/api/messages/out", data=data, headers=headers)


def create(message: dict[str, Any]) -> Send:
    return lambda api: api.call("POST", "/api/messages/out", json=message)


def changed(where: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    message = sbd()
    node: Any = message
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    return message


def upload_as(disposition: str) -> Send:
    async def send(api: Api) -> Answer:
        return await api.upload(await api.create(), disposition)

    return send


def raw_upload(disposition: str) -> Send:
    async def send(api: Api) -> Answer:
        message_id = await api.create()
        return await api.raw(
            f"PUT /api/messages/out/{message_id} HTTP/1.1\nHost: x\nAuthorization: {AUTH}\n"
            f"Content-Disposition: {disposition}\nContent-Length: 1\nConnection: close\n",
            repeated(b"x", 1))

    return send


def multipart_post(body: bytes, content_type: str = "multipart/form-data; boundary=b") -> Send:
    return lambda api: api.call("POST", "/api/messages/out/multipart", data=body,
                                headers={"Content-Type": content_type})


def as_user(authorization: str | None, path: str = "/api/statuses") -> Send:
    return lambda api: api.call("GET", path, auth=authorization)


def method(verb: str, path: str) -> Send:
    return lambda api: api.call(verb, path)


async def upload_without_disposition(api: Api) -> Answer:
    message_id = await api.create()
    return await api.call("PUT", f"/api/messages/out/{message_id}", data=LETTER,
                          headers={"Content-Type": "text/plain"})


async def oversize_declared(api: Api) -> Answer:
    """Only the headers are sent: the declared length alone must be refused."""
    message_id = await api.create()
    return await api.raw(
        f"PUT /api/messages/out/{message_id} HTTP/1.1\nHost: x\nAuthorization: {AUTH}\n"
        f"Content-Disposition: attachment; filename=big.bin\nContent-Length: {2 * MIB}\n"
        "Connection: close\n")


async def oversize_streamed(api: Api) -> Answer:
    message_id = await api.create()
    return await api.raw(
        f"PUT /api/messages/out/{message_id} HTTP/1.1\nHost: x\nAuthorization: {AUTH}\n"
        "Content-Disposition: attachment; filename=big.bin\nTransfer-Encoding: chunked\n"
        "Connection: close\n", chunked(repeated(b"x" * 64 * 1024, 32)))


async def gzip_bomb(api: Api) -> Answer:
    bomb = gzip.compress(bytes(64 * MIB), 9)
    return await post_sbd(bomb, {**JSON_TYPE, "Content-Encoding": "gzip"})(api)


HEADER = "standardBusinessDocumentHeader"
RECEIVER_VALUE = (HEADER, "receiver", 0, "identifier", "value")
IDENTIFICATION = (HEADER, "documentIdentification")

BAD_INPUTS: list[tuple[str, Send, Refusal | Accepted]] = [
    # malformed and huge JSON
    ("malformed JSON", post_sbd('{"standardBusinessDocumentHeader": {'),
     Refusal(400, NOT_READABLE, "JSON parse error")),
    ("empty body", post_sbd(b""), Refusal(400, NOT_READABLE, "Required request body is missing")),
    ("JSON that is no object", post_sbd(b"[1, 2]"), Refusal(400, NOT_READABLE, "JSON object")),
    ("NaN", post_sbd(json.dumps(changed((*IDENTIFICATION, "typeVersion"), float("nan")))),
     Refusal(400, NOT_READABLE, "NaN is not a JSON number")),
    ("Infinity", post_sbd(b'{"standardBusinessDocumentHeader": -Infinity}'),
     Refusal(400, NOT_READABLE, "-Infinity is not a JSON number")),
    ("a number of 5,000 digits", post_sbd(b'{"standardBusinessDocumentHeader": ' + b"9" * 5000
                                          + b"}"),
     Refusal(400, NOT_READABLE, "JSON parse error")),
    ("nesting 200,000 deep", post_sbd(b"[" * 200_000 + b"]" * 200_000),
     Refusal(400, NOT_READABLE, "nested too deeply")),
    ("not UTF-8", post_sbd(b'{"a": "\xe6\xf8\xe5"}'), Refusal(400, NOT_READABLE, "utf-8")),
    ("a 64 MiB string, its length declared",
     lambda api: api.raw("POST /api/messages/out HTTP/1.1\nHost: x\n"
                         f"Authorization: {AUTH}\nContent-Type: application/json\n"
                         f"Content-Length: {64 * MIB}\nConnection: close\n",
                         repeated(b'{"a": "', 1)),
     Refusal(400, NOT_READABLE, "larger than 10485760 bytes")),
    ("a 32 MiB string, chunked",
     lambda api: api.raw("POST /api/messages/out HTTP/1.1\nHost: x\n"
                         f"Authorization: {AUTH}\nContent-Type: application/json\n"
                         "Transfer-Encoding: chunked\nConnection: close\n",
                         chunked(repeated(b"x" * MIB, 32))),
     Refusal(400, NOT_READABLE, "larger than 10485760 bytes")),
    ("gzip that does not decode",
     post_sbd(b"not gzip at all", {**JSON_TYPE, "Content-Encoding": "gzip"}),
     Refusal(400, NOT_READABLE, "could not be read")),
    ("a gzip bomb (64 MiB of zeros in 64 kB)", gzip_bomb,
     Refusal(400, NOT_READABLE, "larger than 10485760 bytes")),
    ("a subscription with a 5,000-digit number",
     lambda api: api.call("POST", "/api/subscriptions", headers=JSON_TYPE,
                          data=b'{"name": "x", "filter": ' + b"1" * 5000 + b"}"),
     Refusal(400, NOT_READABLE, "JSON parse error")),
    # wrong content types
    ("an SBD sent as text/plain", post_sbd(json.dumps(sbd()), {"Content-Type": "text/plain"}),
     Refusal(415, UNSUPPORTED, "Content-Type 'text/plain' is not supported")),
    ("an SBD sent as a form", post_sbd(json.dumps(sbd()), {
        "Content-Type": "application/x-www-form-urlencoded"}), Refusal(415, UNSUPPORTED)),
    ("an SBD sent as XML", post_sbd(b"<sbd/>", {"Content-Type": "application/xml"}),
     Refusal(415, UNSUPPORTED)),
    ("a subscription sent as text/plain",
     lambda api: api.call("POST", "/api/subscriptions", data=b"{}",
                          headers={"Content-Type": "text/plain"}), Refusal(415, UNSUPPORTED)),
    ("multipart sent as JSON", multipart_post(json.dumps(sbd()).encode(), "application/json"),
     Refusal(415, UNSUPPORTED)),
    # invalid identifiers
    ("an organisation number of 8 digits", create(changed(RECEIVER_VALUE, "0192:12345678")),
     Refusal(400, CONSTRAINT, "exactly 9 digits")),
    ("an organisation number failing mod 11", create(changed(RECEIVER_VALUE, "0192:910075919")),
     Refusal(400, CONSTRAINT, "check digit")),
    ("an unknown ISO 6523 prefix", create(changed(RECEIVER_VALUE, "9999:910075918")),
     Refusal(400, CONSTRAINT, "ICD 9999")),
    ("a prefix alone", create(changed(RECEIVER_VALUE, "0192:")), Refusal(400, CONSTRAINT)),
    ("a person number failing mod 11", create(changed(RECEIVER_VALUE, "12345678901")),
     Refusal(400, CONSTRAINT, "check digit")),
    ("a message id that is no UUID",
     create(changed((*IDENTIFICATION, "instanceIdentifier"), "../../etc/passwd")),
     Refusal(400, CONSTRAINT, "is not a UUID")),
    ("capabilities of no identifier", method("GET", "/api/capabilities/abc"),
     Refusal(400, CONSTRAINT, "not a valid identifier")),
    ("a conversation id that is no number", method("GET", "/api/conversations/abc"),
     Refusal(404, "ConversationNotFoundException")),
    ("a status id that is no number", method("DELETE", "/api/statuses/abc"),
     Refusal(400, "MethodArgumentTypeMismatchException", "whole number")),
    ("an unknown message", method("GET", f"/api/messages/out/{uuid.uuid4()}"),
     Refusal(404, "MessageNotFoundException")),
    # unknown message types, wrong document types and standards
    ("an unknown message type", create(sbd(kind="telegram", standard="urn:x:telegram")),
     Refusal(400, CONSTRAINT, "Must be a NextMove message type")),
    ("a standard of another type", create(sbd(standard=AVTALT)),
     Refusal(400, "MessageTypeDoesNotFitDocumentTypeException")),
    ("a standard the receiver does not take",
     create(sbd(standard="urn:no:difi:arkivmelding:xsd::arkivmelding2")),
     Refusal(400, "ReceiverDoesNotAcceptProcessException")),
    ("a process the receiver does not take", create(sbd(process="urn:no:x:process")),
     Refusal(400, "ReceiverDoesNotAcceptProcessException", "urn:no:x:process")),
    # file names
    ("a relative path", upload_as('attachment; filename="../../etc/passwd"'),
     Accepted("passwd")),
    ("an absolute path", upload_as('attachment; filename="/etc/hostname"'), Accepted("hostname")),
    ("a Windows path", upload_as('attachment; filename="..\\\\..\\\\boot.ini"'),
     Accepted("boot.ini")),
    ("a path in filename*", upload_as("attachment; filename*=UTF-8''..%2F..%2Fprofile"),
     Accepted("profile")),
    ("a name of two dots", upload_as('attachment; filename=".."'),
     Refusal(400, BAD_NAME, "only dots")),
    ("a name of one dot", upload_as("attachment; filename=."), Refusal(400, BAD_NAME)),
    ("a name of dots after a path", upload_as('attachment; filename="a/..."'),
     Refusal(400, BAD_NAME)),
    ("a NUL byte, encoded", upload_as("attachment; filename*=UTF-8''a%00.txt"),
     Refusal(400, BAD_NAME, "U+0000")),
    ("a NUL byte, raw", raw_upload("attachment; filename=a\x00.txt"),
     Refusal(400, shaped=False)),
    ("a line break", upload_as("attachment; filename*=UTF-8''a%0Ab.txt"),
     Refusal(400, BAD_NAME, "U+000A")),
    ("a right-to-left override", upload_as("attachment; filename*=UTF-8''a%E2%80%AEtxt.exe"),
     Refusal(400, BAD_NAME, "U+202E")),
    ("a name of 300 bytes", upload_as(f'attachment; filename="{"n" * 296}.txt"'),
     Refusal(400, BAD_NAME, "longer than 255 bytes")),
    ("a path and no name", upload_as('attachment; filename="dir/"'),
     Refusal(400, "MissingHttpHeaderException")),
    ("no Content-Disposition",
     upload_without_disposition,
     Refusal(400, "MissingHttpHeaderException", "Content-Disposition")),
    ("a multipart file named ..", multipart_post(with_sbd(file_part("..", LETTER))),
     Refusal(400, BAD_NAME)),
    # uploads beyond the channel's limit
    ("2 MiB declared to a 1 MiB channel",
     oversize_declared, Refusal(400, "MaxFileSizeExceededException")),
    ("2 MiB streamed to a 1 MiB channel",
     oversize_streamed, Refusal(400, "MaxFileSizeExceededException")),
    ("a multipart file over 5 MiB", multipart_post(with_sbd(file_part("big.bin",
                                                                      bytes(6 * MIB)))),
     Refusal(400, "MultipartFileToLargeException")),
    ("a multipart file over the channel's limit",
     multipart_post(with_sbd(file_part("big.bin", bytes(2 * MIB)))),
     Refusal(400, "MaxFileSizeExceededException")),
    # broken multipart
    ("a boundary that is not the one used",
     multipart_post(with_sbd(file_part("a.txt", LETTER)), "multipart/form-data; boundary=zz"),
     Refusal(400, NOT_READABLE, "boundary")),
    ("no boundary", multipart_post(with_sbd(), "multipart/form-data"),
     Refusal(400, NOT_READABLE, "boundary")),
    ("a boundary never closed",
     multipart_post(with_sbd(file_part("a.txt", LETTER))[: -len(b"--b--\r\n")]),
     Refusal(400, NOT_READABLE)),
    ("a part cut in its Content-Disposition", multipart_post(with_sbd()[:40]),
     Refusal(400, "MissingHttpHeaderException", "Content-Disposition")),
    ("a part cut in its bytes", multipart_post(with_sbd(file_part("a.txt", bytes(1000)))[:-500]),
     Refusal(400, NOT_READABLE)),
    ("a boundary of 200 characters",
     multipart_post(with_sbd(boundary="q" * 200), f"multipart/form-data; boundary={'q' * 200}"),
     Refusal(400, NOT_READABLE, "too long")),
    ("a part header of 100 kB",
     multipart_post(multipart(("X-Long: " + "h" * 100_000, LETTER))), Refusal(400, NOT_READABLE)),
    ("no part named sbd", multipart_post(multipart(file_part("a.txt", LETTER))),
     Refusal(400, "MissingHttpHeaderException", "sbd")),
    # missing or wrong credentials
    ("no credentials", as_user(None), Refusal(401)),
    ("a wrong password", as_user(basic(USER, "guess")), Refusal(401)),
    ("a wrong user", as_user(basic("admin", PASSWORD)), Refusal(401)),
    ("a bearer token", as_user("Bearer " + PASSWORD), Refusal(401)),
    ("credentials that are no base64", as_user("Basic !!!"), Refusal(401)),
    ("credentials without a colon",
     as_user("Basic " + base64.b64encode(USER.encode()).decode()), Refusal(401)),
    ("credentials that are no ASCII",
     lambda api: api.raw("GET /api/statuses HTTP/1.1\nHost: x\n"
                         "Authorization: Basic \xe6\xf8\xe5\nConnection: close\n"),
     Refusal(401)),
    ("no credentials for a path that does not exist", as_user(None, "/api/secret"),
     Refusal(401)),
    # methods not allowed
    ("PATCH on messages", method("PATCH", "/api/messages/out"), Refusal(405)),
    ("PUT on statuses", method("PUT", "/api/statuses"), Refusal(405)),
    ("POST on capabilities", method("POST", f"/api/capabilities/{RECEIVER}"), Refusal(405)),
]


def wrong_answer(answer: Answer, expected: Refusal | Accepted) -> str | None:
    """What is wrong with the answer to a bad input, or None."""
    text = answer.body.decode(errors="replace")
    if PASSWORD in text or "Traceback" in text:
        return f"leaks: {text[:300]}"
    if isinstance(expected, Accepted):
        return None if answer.status == 200 else f"{answer.status}: {text[:300]}"
    if answer.status != expected.status:
        return f"{answer.status} instead of {expected.status}: {text[:300]}"
    if expected.status == 401 and answer.headers.get("WWW-Authenticate") != 'Basic realm="Realm"':
        return f"WWW-Authenticate is {answer.headers.get('WWW-Authenticate')!r}"
    if expected.status == 405 and not answer.headers.get("Allow"):
        return "no Allow header"
    if not expected.shaped:
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"not the error body: {text[:300]}"
    problems = [f"no {key}" for key in ("timestamp", "status", "error", "path") if key not in body]
    if body.get("status") != expected.status or body.get("path") != answer.path:
        problems.append(f"status {body.get('status')} at {body.get('path')}")
    if expected.exception and not str(body.get("exception", "")).endswith(expected.exception):
        problems.append(f"exception {body.get('exception')}")
    if expected.message not in str(body.get("message", "")):
        problems.append(f"message {str(body.get('message'))[:200]!r}")
    return "; ".join(problems) or None


async def try_each(api: Api) -> tuple[int, list[str]]:
    """Every bad input, each followed by a good message; (inputs tried, wrong answers)."""
    wrong: list[str] = []
    for name, send, expected in BAD_INPUTS:
        blobs = api.server.blobs()
        started = time.monotonic()
        answer = await send(api)
        took = time.monotonic() - started
        problem = wrong_answer(answer, expected)
        if took > BOUND:
            problem = f"answered after {took:.1f} s"
        if isinstance(expected, Refusal) and answer.status != 200:
            left = api.server.blobs() - blobs
            if left:
                problem = f"left {len(left)} file(s) behind: {sorted(left)}"
        if isinstance(expected, Accepted) and problem is None:
            message_id = answer.path.rsplit("/", 1)[-1]
            sent = await api.call("POST", f"/api/messages/out/{message_id}")
            if sent.status != 200:
                problem = f"the message did not send: {sent.body[:300]!r}"
            else:
                api.delivered[message_id] = {expected.stored_as: LETTER}
        if problem:
            wrong.append(f"{name}: {problem}")
        good = await api.good_message()
        if good:
            wrong.append(f"a good message after {name}: {good}")
    return len(BAD_INPUTS), wrong


async def wait_for_deliveries(api: Api) -> list[str]:
    """Each message sent arrived with exactly its files, and nothing landed elsewhere."""
    outbox = api.server.outbox
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        arrived = {p.relative_to(outbox).parts[0] for p in outbox.rglob("*") if p.is_file()}
        if arrived >= set(api.delivered):
            break
        await asyncio.sleep(0.1)
    wrong = []
    for message_id, files in api.delivered.items():
        folder = outbox / message_id
        found = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}
        if found != files:
            wrong.append(f"{message_id} delivered {sorted(found)} instead of {sorted(files)}")
    strays = [p for p in outbox.parent.rglob("*")
              if p.is_file() and p.name in ("passwd", "hostname", "boot.ini", "profile")
              and outbox not in p.parents]
    return wrong + [f"a file landed outside the outbox: {p}" for p in strays]


async def test_every_bad_input_is_refused_and_the_server_goes_on(
    server: Server, report: Callable[..., None]
) -> None:
    # A connection of its own for each request: a refusal may close its connection before
    # the body was read, and that is no answer to count against the next request.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        api = Api(session, server)
        tried, wrong = await try_each(api)
        wrong += await wait_for_deliveries(api)
        health = await api.call("GET", "/manage/health", auth=None)
    assert server.process.process is not None and server.process.process.poll() is None
    report(scenario="api fuzz: bad inputs", messages=tried, lost=0, duplicated=0,
           errors=len(wrong))
    assert health.status == 200
    assert not wrong, "\n".join(wrong)
    assert not list((server.payloads / "tmp").iterdir()), "half-written uploads left behind"


async def test_a_stalled_upload_is_refused_and_leaves_nothing(server: Server) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        api = Api(session, server)
        message_id = await api.create()

        async def stalls() -> AsyncIterator[bytes]:
            yield b"the first bytes of a long letter"
            await asyncio.sleep(IDLE * 3)

        started = time.monotonic()
        answer = await api.raw(
            f"PUT /api/messages/out/{message_id} HTTP/1.1\nHost: x\nAuthorization: {AUTH}\n"
            "Content-Type: text/plain\nContent-Disposition: attachment; filename=brev.txt\n"
            "Content-Length: 100000\n", stalls())
        waited = time.monotonic() - started
        again = await api.upload(message_id, "attachment; filename=brev.txt")
        assert await api.good_message() == []
    body = json.loads(answer.body)
    assert answer.status == 408
    assert body["exception"] == "java.net.SocketTimeoutException"
    assert "stalled" in body["message"]
    assert waited < IDLE * 3 + BOUND
    assert again.status == 200, "the stalled file was kept under its name"
    assert not list((server.payloads / "tmp").iterdir()), "the half upload was kept"

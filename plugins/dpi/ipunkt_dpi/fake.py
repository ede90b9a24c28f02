"""A fake DPI access point (corner 2) that also plays the mailbox and the print provider.

It speaks the access point's REST API (``corner2-openapi.yaml``): ``POST /messages/out``,
``GET /messages/out/{id}/statuses``, ``GET /messages/in``, ``GET /messages/in/{id}`` and
``POST /messages/in/{id}/read``, with Maskinporten bearer tokens and ``problem+json`` errors.
An upload is taken only if it is sound the whole way down, as the providers would check it: the
business message's JWS verifies (and its ``x5c`` certificate chains to ``sender_trust`` when
given), the SBD keeps the published JSON schema (``specs`` given) or the plugin's models, the
bearer token is the one in the message, the package's SHA-256 is the fingerprint, the package
decrypts with the addressed provider's key, its XAdES signature and digests check out, and its
``manifest.xml`` keeps ``sdp-manifest.xsd`` and names exactly the files in the package.

Then each message follows a script of steps, each due some seconds after the one before:
access point statuses (``SENDT``: the provider has it, ``FEILET``) and receipts, signed with
the provider's key: delivered, opened (by default only when ``aapningskvittering`` was asked
for), received for print, returned mail, notification failed, errors. Scripts are set per
message, conversation, postbox address or print recipient's name; faults (any status such as
429 or 503, slow answers, truncated bodies) are queued on demand.

Receipts wait in the inbox of the organisation that sent the message: a token acting for
another organisation neither sees them nor marks them read, so that several integration points
(the sandbox's A and B) share one fake as they share the real access point.

Run it alone with ``python -m ipunkt_dpi.fake --port 9095 --certs DIR``: it writes its CA and
the providers' certificates to DIR for the integration point's config.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from aiohttp import BodyPartReader, web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from ipunkt.package import jws
from ipunkt.package.errors import PackageError, SignatureInvalid
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.manifest import SdpManifest
from ipunkt.package.seal import open_package
from ipunkt.package.testcerts import CertificateAuthority, make_ca, pem
from ipunkt.package.trust import TrustStore, organisation_number
from pydantic import ValidationError

from ipunkt_dpi.business_messages import (
    RECEIPTS,
    SHA256,
    Avsender,
    BusinessScope,
    Digital,
    DocumentIdentification,
    Feil,
    Header,
    Kvittering,
    Utskrift,
    Varslingfeiletkvittering,
    Virksomhetmottaker,
    Virksomhetsidentifikator,
    standard,
)
from ipunkt_dpi.client import SCOPE
from ipunkt_dpi.published_schemas import PublishedSchemas

STATUS_EVENTS = ("SENDT", "FEILET")
EVENTS = (*STATUS_EVENTS, *RECEIPTS)
KANAL = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
"""The documented rule is at most 28 characters; the original integration point's default kanal
has 30 and is accepted in practice, so the fake accepts 30."""
MAX_BUSINESS_MESSAGE = 1 << 20
DEFAULT_MAILBOX = "984661185"
DEFAULT_PRINT = "974761076"

TOKEN = web.RequestKey("token", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TokenVerifier = Callable[[str], Any]
"""Checks a bearer token: returns (anything) to accept it, raises to refuse it, saying why."""


@dataclass(frozen=True)
class Step:
    """One scripted event: an access point status or a receipt, ``after`` seconds after the
    step before it (the first: after the upload)."""

    event: str
    after: float = 0.0
    detail: str | None = None
    """FEILET's ``beskrivelse``, feil's ``detaljer``, varslingfeiletkvittering's
    ``beskrivelse``."""
    feiltype: Literal["KLIENT", "SERVER"] = "SERVER"
    varslingskanal: Literal["epost", "sms"] = "sms"
    signature: Literal["valid", "untrusted", "tampered"] = "valid"
    """``untrusted``: signed by a certificate from another CA; ``tampered``: payload changed
    after signing. Both must be refused by the integration point."""

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}; one of {', '.join(EVENTS)}")


@dataclass
class Fault:
    """A fault for the next ``times`` requests that match ``method`` and ``path`` (a part of
    the path after the base): an error ``status``, a ``slow`` answer or a ``truncate``d body."""

    kind: Literal["status", "slow", "truncate"] = "status"
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    method: str | None = None
    path: str | None = None
    times: int = 1

    def matches(self, request: web.Request, base: str) -> bool:
        path = request.path.removeprefix(base)
        return (self.method is None or self.method.upper() == request.method) and (
            self.path is None or self.path in path
        )


@dataclass
class ReceivedShipment:
    """A message the fake took, checked, and delivered to its (fake) provider."""

    message_id: str
    conversation_id: str
    kind: str
    sender: str
    provider: str
    kanal: str | None
    avsenderidentifikator: str | None
    business_message: dict[str, Any]
    manifest: SdpManifest
    manifest_xml: bytes
    files: dict[str, Path]
    plan: list[Step]
    accepted_at: float
    statuses: list[dict[str, str]] = field(default_factory=list)
    done: int = 0
    receipts: list[str] = field(default_factory=list)

    @property
    def avsender(self) -> str:
        """The organisation the message is sent for (``0192:<orgnr>``)."""
        body = self.business_message["standardBusinessDocument"][self.kind]
        return str(body["avsender"]["virksomhetsidentifikator"]["value"])


@dataclass
class InboxEntry:
    receipt_id: str
    conversation_id: str
    kind: str
    kanal: str | None
    avsenderidentifikator: str | None
    jwt: str
    owners: frozenset[str] = frozenset()
    """The organisation numbers whose tokens may read it: the sender and the avsender."""
    read: bool = False

    def visible_to(self, consumer: str | None) -> bool:
        """An opaque token (no consumer) sees every receipt, as the fake trusts it."""
        return consumer is None or consumer.split(":")[-1] in self.owners


class Rejected(Exception):
    """The upload is refused: ``problem+json`` with this detail and status."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.status = status


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=headers,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _token_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT bearer token (unverified: the fake trusts its Maskinporten), or
    None if the token is opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _token_scopes(token: str) -> set[str] | None:
    scope = (_token_claims(token) or {}).get("scope")
    return set(scope.split()) if isinstance(scope, str) else None


def _token_consumer(token: str) -> str | None:
    """Maskinporten's ``consumer.ID`` (``0192:<orgnr>``): whom the token acts for."""
    consumer = (_token_claims(token) or {}).get("consumer")
    identifier = consumer.get("ID") if isinstance(consumer, dict) else None
    return identifier if isinstance(identifier, str) else None


async def _drain(request: web.Request) -> None:
    """Read and drop an unread request body, so that an early answer reaches the client."""
    while await request.content.readany():
        pass


class FakeAccessPoint:
    """The fake: its providers' keys, the messages it took, its inbox of receipts."""

    def __init__(
        self,
        *,
        ca: CertificateAuthority | None = None,
        mailbox: str | OrganisationKey = DEFAULT_MAILBOX,
        printer: str | OrganisationKey = DEFAULT_PRINT,
        sender_trust: TrustStore | None = None,
        specs: Path | None = None,
        step_delay: float = 0.0,
        base_path: str = "/dpi",
        storage: Path | None = None,
        max_package: int = 200 << 20,
        token_verifier: TokenVerifier | None = None,
    ) -> None:
        """``token_verifier`` checks bearer tokens (the sandbox's Maskinporten); without one,
        any token whose claims (if it has any) carry the scope is taken."""
        self.ca = ca or make_ca("ipunkt fake DPI CA")
        self.mailbox = (
            mailbox
            if isinstance(mailbox, OrganisationKey)
            else self.ca.issue(mailbox, "FAKE POSTKASSE")
        )
        self.printer = (
            printer
            if isinstance(printer, OrganisationKey)
            else self.ca.issue(printer, "FAKE UTSKRIFT")
        )
        self.providers: dict[str, OrganisationKey] = {
            str(key.organisation_number): key for key in (self.mailbox, self.printer)
        }
        self._impostors: CertificateAuthority | None = None
        self.sender_trust = sender_trust
        self.schemas = PublishedSchemas(specs) if specs is not None else None
        self.step_delay = step_delay
        self.base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.storage = (
            Path(storage) if storage else Path(tempfile.mkdtemp(prefix="ipunkt-fake-dpi-"))
        )
        self.storage.mkdir(parents=True, exist_ok=True)
        self.max_package = max_package
        self.shipments: dict[str, ReceivedShipment] = {}
        self.inbox: list[InboxEntry] = []
        self.scripts: dict[str, list[Step]] = {}
        self.faults: list[Fault] = []
        self.rejections: list[str] = []
        """Why each refused upload was refused, for tests and the sandbox to show."""
        self.token_verifier = token_verifier

    # --- scripting -----------------------------------------------------------------------

    def script(self, key: str, steps: list[Step]) -> None:
        """What happens to a message with this id, conversation id, postbox address or print
        recipient name (checked in that order)."""
        self.scripts[key] = list(steps)

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def _plan(
        self, message_id: str, conversation_id: str, kind: str, body: dict[str, Any]
    ) -> list[Step]:
        recipient = body.get("mottaker", {})
        for key in (
            message_id,
            conversation_id,
            recipient.get("postkasseadresse"),
            recipient.get("navn"),
        ):
            if key and key in self.scripts:
                return list(self.scripts[key])
        delay = self.step_delay
        if kind == "utskrift":
            return [Step("SENDT", delay), Step("mottakskvittering", delay)]
        steps = [Step("SENDT", delay), Step("leveringskvittering", delay)]
        if body.get("aapningskvittering"):
            steps.append(Step("aapningskvittering", delay))
        return steps

    # --- the scripted life of a message ---------------------------------------------------

    def advance(self) -> None:
        """Apply every scripted step that is due."""
        now = time.monotonic()
        for shipment in self.shipments.values():
            due = shipment.accepted_at + sum(s.after for s in shipment.plan[: shipment.done])
            while shipment.done < len(shipment.plan):
                step = shipment.plan[shipment.done]
                due += step.after
                if due > now:
                    break
                self._apply(shipment, step)
                shipment.done += 1

    def _apply(self, shipment: ReceivedShipment, step: Step) -> None:
        if step.event in STATUS_EVENTS:
            status = {"status": step.event, "timestamp": _now()}
            if step.detail:
                status["beskrivelse"] = step.detail
            shipment.statuses.append(status)
            return
        receipt_id = str(uuid.uuid4())
        self.inbox.append(
            InboxEntry(
                receipt_id,
                shipment.conversation_id,
                step.event,
                shipment.kanal,
                shipment.avsenderidentifikator,
                self._receipt(shipment, step, receipt_id),
                frozenset(value.split(":")[-1] for value in (shipment.sender, shipment.avsender)),
            )
        )
        shipment.receipts.append(step.event)

    def _receipt(self, shipment: ReceivedShipment, step: Step, receipt_id: str) -> str:
        """A receipt SBD as the provider signs it: sender and receiver swapped, the original
        ConversationId scope, a new id."""
        original = Header.model_validate(
            shipment.business_message["standardBusinessDocument"]["standardBusinessDocumentHeader"]
        )
        conversation = next(s for s in original.business_scope.scope if s.type == "ConversationId")
        header = Header(
            headerVersion="1.0",
            sender=original.receiver,
            receiver=original.sender,
            documentIdentification=DocumentIdentification(
                standard=standard(step.event),
                typeVersion="1.0",
                instanceIdentifier=receipt_id,
                type=step.event,
                creationDateAndTime=datetime.now(UTC),
            ),
            businessScope=BusinessScope(scope=(conversation,)),
        )
        avsender = shipment.business_message["standardBusinessDocument"][shipment.kind]["avsender"]
        common: dict[str, Any] = {
            "avsender": Avsender(
                virksomhetsidentifikator=Virksomhetsidentifikator(value=f"0192:{shipment.provider}")
            ),
            "mottaker": Virksomhetmottaker(
                virksomhetsidentifikator=Virksomhetsidentifikator.model_validate(
                    avsender["virksomhetsidentifikator"]
                )
            ),
            "tidspunkt": datetime.now(UTC),
        }
        body: Kvittering
        if step.event == "feil":
            body = Feil(**common, feiltype=step.feiltype, detaljer=step.detail)
        elif step.event == "varslingfeiletkvittering":
            body = Varslingfeiletkvittering(
                **common, varslingskanal=step.varslingskanal, beskrivelse=step.detail
            )
        else:
            body = Kvittering(**common)
        payload = {
            "standardBusinessDocument": {
                "standardBusinessDocumentHeader": header.wire(),
                step.event: body.wire(),
            }
        }
        signer = self.providers[shipment.provider]
        if step.signature == "untrusted":
            self._impostors = self._impostors or make_ca("not a trusted CA")
            signer = self._impostors.issue(shipment.provider, "IMPOSTOR")
        token = jws.sign(payload, signer)
        if step.signature == "tampered":
            head, _, signature = token.split(".")
            forged = dict(payload)
            forged["standardBusinessDocument"] = {
                **payload["standardBusinessDocument"],
                step.event: {**body.wire(), "tidspunkt": "2000-01-01T00:00:00Z"},
            }
            body64 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
            token = f"{head}.{body64}.{signature}"
        return token

    # --- taking a message ------------------------------------------------------------------

    async def _send(self, request: web.Request) -> web.StreamResponse:
        kanal = request.query.get("kanal")
        if kanal is not None and not KANAL.fullmatch(kanal):
            await _drain(request)
            return problem(400, f"kanal {kanal!r}: only a-z, A-Z, 0-9, _ and -, at most 30")
        if request.content_type != "multipart/form-data":
            await _drain(request)
            return problem(400, f"expected multipart/form-data, got {request.content_type}")
        work = Path(tempfile.mkdtemp(dir=self.storage, prefix="upload-"))
        try:
            try:
                jwt, package, digest = await self._read_upload(request, work / "asic.cms")
                shipment = await asyncio.to_thread(
                    self._accept, jwt, package, digest, request[TOKEN], kanal
                )
            except Rejected as exc:
                self.rejections.append(str(exc))
                return problem(exc.status, str(exc))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if shipment is not None:
            shipment.statuses.append({"status": "OPPRETTET", "timestamp": _now()})
            self.shipments[shipment.message_id] = shipment
        return web.Response(status=201)

    async def _read_upload(self, request: web.Request, target: Path) -> tuple[str, Path, bytes]:
        reader = await request.multipart()
        jwt: str | None = None
        digest: bytes | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise Rejected("nested multipart bodies are not accepted")
            name = part.name
            if name == "forretningsmelding":
                data = bytearray()
                while chunk := await part.read_chunk():
                    data += chunk
                    if len(data) > MAX_BUSINESS_MESSAGE:
                        raise Rejected("forretningsmelding is larger than 1 MiB")
                jwt = data.decode("ascii", "replace").strip()
            elif name == "dokumentpakke":
                hasher = hashlib.sha256()
                size = 0
                with target.open("wb") as out:
                    while chunk := await part.read_chunk(1 << 16):
                        size += len(chunk)
                        if size > self.max_package:
                            raise Rejected(f"dokumentpakke is larger than {self.max_package} bytes")
                        hasher.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
                digest = hasher.digest()
            else:
                raise Rejected(
                    f"unexpected part {name!r}; expected forretningsmelding and dokumentpakke"
                )
        if jwt is None or digest is None:
            raise Rejected("the upload needs the parts forretningsmelding and dokumentpakke")
        return jwt, target, digest

    def _accept(
        self, jwt: str, package: Path, digest: bytes, token: str, kanal: str | None
    ) -> ReceivedShipment | None:
        """Check an upload all the way down; None if it repeats a message already taken."""
        try:
            header = jws.header_of(jwt)
            certificates = [
                x509.load_der_x509_certificate(base64.b64decode(c)) for c in header.get("x5c", [])
            ]
            if not certificates:
                raise SignatureInvalid("the JWS has no x5c certificate")
            if self.sender_trust is not None:
                verified = jws.verify(jwt, trust=self.sender_trust)
            else:
                key = certificates[0].public_key()
                if not isinstance(key, rsa.RSAPublicKey):
                    raise SignatureInvalid("the JWS certificate has no RSA key")
                verified = jws.verify(jwt, public_key=key)
            document = verified.json()
        except (SignatureInvalid, ValueError) as exc:
            raise Rejected(f"forretningsmelding: {exc}") from exc
        sbd = document.get("standardBusinessDocument") if isinstance(document, dict) else None
        if not isinstance(sbd, dict):
            raise Rejected("forretningsmelding: no standardBusinessDocument")
        kind = str(
            sbd.get("standardBusinessDocumentHeader", {})
            .get("documentIdentification", {})
            .get("type")
        )
        if kind not in ("digital", "utskrift"):
            raise Rejected(
                f"forretningsmelding: the type {kind!r} cannot be sent (digital, utskrift)"
            )
        self._check_schema(kind, document)
        header_model = Header.model_validate(sbd["standardBusinessDocumentHeader"])
        body = sbd[kind]
        if header_model.message_id in self.shipments:
            return None
        if body["maskinportentoken"] != token:
            raise Rejected("maskinportentoken is not the token this request was made with")
        consumer = _token_consumer(token)
        avsender_value = body["avsender"]["virksomhetsidentifikator"]["value"]
        if consumer is not None and consumer != avsender_value:
            raise Rejected(
                f"the token acts for {consumer}, not for the avsender {avsender_value}", 403
            )
        fingerprint = body["dokumentpakkefingeravtrykk"]
        if (
            fingerprint["digestMethod"] != SHA256
            or base64.b64decode(fingerprint["digestValue"]) != digest
        ):
            raise Rejected("dokumentpakkefingeravtrykk is not the SHA-256 of the dokumentpakke")
        sender = header_model.sender[0].identifier.value
        signer_org = organisation_number(verified.certificate or certificates[0])
        if f"0192:{signer_org}" != sender:
            raise Rejected(
                f"the forretningsmelding is signed by {signer_org}, not the sender {sender}"
            )
        provider = header_model.receiver[0].identifier.value.split(":")[-1]
        expected = self.printer if kind == "utskrift" else self.mailbox
        if self.providers.get(provider) is not expected:
            what = "print provider" if kind == "utskrift" else "mailbox provider"
            raise Rejected(f"0192:{provider} is not a {what} of this access point")
        destination = self.storage / header_model.message_id
        try:
            with package.open("rb") as source:
                opened = open_package(
                    source, key=expected, trust=self.sender_trust, destination=destination
                )
        except PackageError as exc:
            raise Rejected(f"dokumentpakke: {exc}") from exc
        try:
            manifest = self._check_package(opened, kind, body, sender)
        except Rejected:
            shutil.rmtree(destination, ignore_errors=True)
            raise
        conversation_id = header_model.conversation_id or ""
        avsender = body["avsender"]
        return ReceivedShipment(
            message_id=header_model.message_id,
            conversation_id=conversation_id,
            kind=kind,
            sender=sender,
            provider=provider,
            kanal=kanal,
            avsenderidentifikator=avsender.get("avsenderidentifikator"),
            business_message=document,
            manifest=manifest,
            manifest_xml=opened.contents.manifest or b"",
            files={
                name: path
                for path in opened.paths
                if not (name := path.relative_to(destination).as_posix()).startswith("META-INF/")
            },
            plan=self._plan(header_model.message_id, conversation_id, kind, body),
            accepted_at=time.monotonic(),
        )

    def _check_schema(self, kind: str, document: dict[str, Any]) -> None:
        if self.schemas is not None:
            errors = self.schemas.errors(kind, document)
            if errors:
                raise Rejected(f"forretningsmelding breaks the {kind} schema: {'; '.join(errors)}")
            return
        sbd = document["standardBusinessDocument"]
        model = Digital if kind == "digital" else Utskrift
        try:
            Header.model_validate(sbd.get("standardBusinessDocumentHeader"))
            model.model_validate(sbd.get(kind))
        except ValidationError as exc:
            raise Rejected(f"forretningsmelding breaks the {kind} schema: {exc}") from exc

    def _check_package(
        self, opened: Any, kind: str, body: dict[str, Any], sender: str
    ) -> SdpManifest:
        xml = opened.contents.manifest
        if xml is None:
            raise Rejected("dokumentpakke: no manifest.xml")
        if self.schemas is not None:
            errors = self.schemas.manifest_errors(xml)
            if errors:
                raise Rejected(f"manifest.xml breaks sdp-manifest.xsd: {'; '.join(errors)}")
        manifest = opened.manifest
        if not isinstance(manifest, SdpManifest):
            raise Rejected("dokumentpakke: manifest.xml is not an SDP manifest")
        names = {f.name for f in opened.contents.files} - {"manifest.xml"}
        referenced = {d.href for d in manifest.documents} | {
            d.metadata_href for d in manifest.documents if d.metadata_href
        }
        if referenced - names:
            raise Rejected(
                f"manifest.xml names files not in the package: {sorted(referenced - names)}"
            )
        if names - referenced:
            raise Rejected(
                f"the package holds files manifest.xml does not name: {sorted(names - referenced)}"
            )
        if manifest.sender != body["avsender"]["virksomhetsidentifikator"]["value"]:
            raise Rejected("manifest.xml's avsender is not the forretningsmelding's avsender")
        if kind == "digital" and manifest.postkasseadresse != body["mottaker"]["postkasseadresse"]:
            raise Rejected("manifest.xml's postkasseadresse is not the forretningsmelding's")
        signer = organisation_number(opened.contents.signer)
        if f"0192:{signer}" != sender:
            raise Rejected(f"the package is signed by {signer}, not the sender {sender}")
        return manifest

    # --- statuses and the inbox ----------------------------------------------------------

    async def _statuses(self, request: web.Request) -> web.StreamResponse:
        message_id = request.match_info["id"]
        try:
            uuid.UUID(message_id)
        except ValueError:
            return problem(400, f"{message_id!r} is not a UUID")
        self.advance()
        shipment = self.shipments.get(message_id)
        return web.json_response(shipment.statuses if shipment else [])

    def _unread(
        self, kanal: str | None, avsenderidentifikator: str | None, consumer: str | None
    ) -> list[InboxEntry]:
        return [
            entry
            for entry in self.inbox
            if not entry.read
            and entry.visible_to(consumer)
            and (kanal is None or (entry.kanal or "").casefold() == kanal.casefold())
            and (
                avsenderidentifikator is None
                or entry.avsenderidentifikator == avsenderidentifikator
            )
        ]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.advance()
        try:
            page_size = int(request.query.get("page_size", "100"))
            page = int(request.query.get("page", "0"))
        except ValueError:
            return problem(400, "page_size and page must be whole numbers")
        if page_size < 1 or page < 0:
            return problem(400, "page_size must be at least 1 and page at least 0")
        unread = self._unread(
            request.query.get("kanal"),
            request.query.get("avsenderidentifikator"),
            _token_consumer(request[TOKEN]),
        )
        selected = unread[page * page_size : (page + 1) * page_size]
        if not selected:
            return web.Response(status=204)
        return web.json_response([{"forretningsmelding": e.jwt} for e in selected])

    async def _package(self, request: web.Request) -> web.StreamResponse:
        receipt_id = request.match_info["id"]
        if any(e.receipt_id == receipt_id for e in self.inbox):
            return problem(404, f"{receipt_id} is a receipt; receipts have no document package")
        return problem(404, f"no incoming message {receipt_id}")

    async def _read(self, request: web.Request) -> web.StreamResponse:
        receipt_id = request.match_info["id"]
        consumer = _token_consumer(request[TOKEN])
        for entry in self.inbox:
            if entry.receipt_id == receipt_id and entry.visible_to(consumer):
                entry.read = True
                return web.Response(status=200)
        return problem(404, f"no incoming message {receipt_id}")

    # --- control ---------------------------------------------------------------------------

    async def _control_shipments(self, request: web.Request) -> web.StreamResponse:
        self.advance()
        return web.json_response(
            [
                {
                    "messageId": s.message_id,
                    "conversationId": s.conversation_id,
                    "type": s.kind,
                    "provider": s.provider,
                    "kanal": s.kanal,
                    "files": sorted(s.files),
                    "statuses": s.statuses,
                    "receipts": s.receipts,
                    "forretningsmelding": s.business_message,
                }
                for s in self.shipments.values()
            ]
        )

    async def _control_script(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            self.script(str(body["key"]), [Step(**step) for step in body["steps"]])
        except (ValueError, KeyError, TypeError) as exc:
            return problem(400, f"a script is {{key, steps: [{{event, after, ...}}]}}: {exc}")
        return web.Response(status=204)

    async def _control_fault(self, request: web.Request) -> web.StreamResponse:
        try:
            self.add_fault(Fault(**await request.json()))
        except (ValueError, TypeError) as exc:
            return problem(400, f"a fault is {list(asdict(Fault()))}: {exc}")
        return web.Response(status=204)

    # --- the gate: faults and authentication ------------------------------------------------

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request, self.base):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)
        fault = self._take_fault(request)
        if fault is not None and fault.kind == "status":
            await _drain(request)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return problem(fault.status, "fault injected by the fake access point", headers)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        authorization = request.headers.get("Authorization", "")
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        if not token:
            await _drain(request)
            return problem(401, "a Maskinporten bearer token is required")
        if self.token_verifier is not None:
            try:
                self.token_verifier(token)
            except Exception as exc:  # a verifier refuses by raising, saying why
                await _drain(request)
                return problem(401, f"the bearer token is not valid: {exc}")
        scopes = _token_scopes(token)
        if scopes is not None and SCOPE not in scopes:
            await _drain(request)
            return problem(403, f"the token lacks the scope {SCOPE}")
        request[TOKEN] = token
        response = await handler(request)
        if fault is not None and fault.kind == "truncate":
            return await self._truncated(request, response)
        return response

    async def _truncated(
        self, request: web.Request, response: web.StreamResponse
    ) -> web.StreamResponse:
        """Promise the whole body, send half of it, and hang up."""
        body = response.body if isinstance(response, web.Response) else None
        data = bytes(body) if isinstance(body, bytes | bytearray) else b""
        stream = web.StreamResponse(status=response.status if data else 200)
        stream.content_type = response.content_type if data else "application/json"
        stream.content_length = max(len(data), 64)
        await stream.prepare(request)
        await stream.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.close()
        return stream

    # --- the application ---------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        base = self.base
        app.router.add_post(f"{base}/messages/out", self._send)
        app.router.add_get(f"{base}/messages/out/{{id}}/statuses", self._statuses)
        app.router.add_get(f"{base}/messages/in", self._messages)
        app.router.add_get(f"{base}/messages/in/{{id}}", self._package)
        app.router.add_post(f"{base}/messages/in/{{id}}/read", self._read)
        app.router.add_get("/_fake/shipments", self._control_shipments)
        app.router.add_post("/_fake/scripts", self._control_script)
        app.router.add_post("/_fake/faults", self._control_fault)
        return app

    def cleanup(self) -> None:
        """Remove the files the fake unpacked."""
        shutil.rmtree(self.storage, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """Run the fake alone; its CA and providers' certificates go to ``--certs``."""
    parser = argparse.ArgumentParser(
        prog="python -m ipunkt_dpi.fake", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--certs", type=Path, default=Path("fake-dpi-certs"))
    parser.add_argument(
        "--specs", type=Path, help="the published specs folder, to check uploads against"
    )
    parser.add_argument(
        "--sender-ca",
        type=Path,
        action="append",
        default=[],
        help="PEM of a CA that senders' certificates must chain to",
    )
    parser.add_argument(
        "--step-delay",
        type=float,
        default=2.0,
        help="seconds between the scripted steps of a message",
    )
    parser.add_argument("--mailbox", default=DEFAULT_MAILBOX, help="the mailbox provider's orgnr")
    parser.add_argument("--printer", default=DEFAULT_PRINT, help="the print provider's orgnr")
    parser.add_argument("--base-path", default="/dpi")
    parser.add_argument(
        "--max-package-mib", type=int, default=200, help="the largest dokumentpakke taken, in MiB"
    )
    args = parser.parse_args(argv)
    fake = FakeAccessPoint(
        mailbox=args.mailbox,
        printer=args.printer,
        sender_trust=TrustStore.load(*args.sender_ca) if args.sender_ca else None,
        specs=args.specs,
        step_delay=args.step_delay,
        base_path=args.base_path,
        max_package=args.max_package_mib << 20,
    )
    args.certs.mkdir(parents=True, exist_ok=True)
    files = {
        "ca": args.certs / "ca.pem",
        "mailbox_certificate": args.certs / f"mailbox-{args.mailbox}.pem",
        "print_certificate": args.certs / f"print-{args.printer}.pem",
    }
    files["ca"].write_bytes(pem(fake.ca.certificate))
    files["mailbox_certificate"].write_bytes(pem(fake.mailbox.certificate))
    files["print_certificate"].write_bytes(pem(fake.printer.certificate))
    started = {
        "url": f"http://{args.host}:{args.port}{fake.base}",
        "mailbox_orgnr": args.mailbox,
        "print_orgnr": args.printer,
        **{name: str(path) for name, path in files.items()},
    }
    print(json.dumps(started), flush=True)
    try:
        web.run_app(fake.app(), host=args.host, port=args.port, print=None)
    finally:
        fake.cleanup()


if __name__ == "__main__":
    main()

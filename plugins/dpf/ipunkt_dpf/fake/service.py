"""The fake KS Fiks SvarUt and SvarInn, one aiohttp service speaking both real protocols.

What an account sends through SvarUt (REST v3, multipart, documents CMS-encrypted to SvarUt's
certificate) is checked as SvarUt checks it, decrypted with SvarUt's key, zipped and encrypted
to the receiving organisation's mottakersystem certificate, and waits in that organisation's
SvarInn queue. Statuses move as SvarUt and the receiver act: MOTTATT when the upload is taken,
KLAR_FOR_MOTTAK once it waits in SvarInn (VARSLET when the receiver has no mottakersystem and
would be told through Altinn), LEST when the mottakersystem confirms it (``kvitterMottak``),
FEILET_UNDER_MOTTAK when it reports a permanent import failure (``mottakFeilet``), whose text
lands in the forsendelse's event history as in SvarUt's log. Anything else can be set by hand.

Every payload is streamed to disk; nothing is held whole in memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ipunkt.package.cms import CmsReader, CmsWriter
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.testcerts import make_ca
from stream_unzip import stream_unzip
from stream_zip import ZIP_AUTO, stream_zip

from ipunkt_dpf.fake import rules
from ipunkt_dpf.fake.faults import Faults, Kind, cut_connection, middleware

OSLO = ZoneInfo("Europe/Oslo")
CHUNK = 1 << 20
KS_ORGANISATION = "971032146"
PRINT_LIMIT = 350 * 1024 * 1024
FORSENDELSE_LIMIT = 1 << 20
"""The most bytes the ``forsendelse`` JSON part may take."""
PDF_MAGIC = b"%PDF-"
ARKIVMELDING_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
STATUSES = frozenset({
    "MOTTATT", "AKSEPTERT", "AVVIST", "FEILET_UNDER_MOTTAK", "VARSLET", "LEST", "SENDT_PRINT",
    "PRINTET", "MANUELT_HANDTERT", "SENDT_DIGITALT", "SENDT_SDP", "LEVERT_SDP",
    "KLAR_FOR_MOTTAK", "IKKE_LEVERT", "SLETTET", "SENDT_NHN_MOTTAKER", "LEVERT_NHN_MOTTAKER",
})
SVARUT_STATUS_TEXT = {"KLAR_FOR_MOTTAK": "Klar for mottak", "LEST": "Lest"}


class Refused(Exception):
    """An answer other than success, with SvarUt's ErrorMessage."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Account:
    """A SvarUt account (kontoId) of a sending organisation, and the integration that uses it."""

    konto_id: str
    organisation: str
    name: str
    integration_id: str
    integration_password: str
    address: tuple[str, str, str] = ("Postboks 1", "0101", "Oslo")
    """adresselinje1, postnummer, poststed: the account's cover-page return address."""


@dataclass(frozen=True)
class Mailbox:
    """A SvarInn mottakersystem of a receiving organisation, with its uploaded certificate."""

    organisation: str
    name: str
    certificate: x509.Certificate
    username: str
    password: str


@dataclass(frozen=True)
class Event:
    at: datetime
    text: str


@dataclass(frozen=True)
class StoredFile:
    name: str
    mime: str
    size: int
    sha256: str
    document_type: str | None


@dataclass
class Stored:
    """A forsendelse SvarUt took."""

    id: str
    account: Account
    forsendelse: dict[str, Any]
    receiver: str
    mailbox: Mailbox | None
    files: list[StoredFile]
    package: Path
    """The documents as a ZIP, CMS-encrypted to the mailbox (or, without one, to SvarUt)."""
    created: datetime
    status: str = "MOTTATT"
    changed: datetime = field(default_factory=lambda: datetime.now(UTC))
    events: list[Event] = field(default_factory=list)
    collected: bool = False
    """Confirmed or refused by the mottakersystem: no longer offered by SvarInn."""

    def move(self, status: str, text: str) -> None:
        self.status = status
        self.changed = datetime.now(UTC)
        self.events.append(Event(self.changed, text))


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def _iso(moment: datetime) -> str:
    return moment.astimezone(OSLO).isoformat(timespec="milliseconds")


def _millis(value: Any) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(str(value)).timestamp() * 1000)
    except ValueError:
        return None


class FakeSvarUt:
    """SvarUt (REST v3) and SvarInn for tests and the sandbox; run ``app()`` on any port."""

    def __init__(
        self,
        storage: Path,
        *,
        key: OrganisationKey | None = None,
        processing_delay: float = 0.0,
        token_check: Callable[[str], bool] | None = None,
    ) -> None:
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.key = key or make_ca("KS Fiks test CA").issue(KS_ORGANISATION, "KS SvarUt")
        self.processing_delay = processing_delay
        """Seconds a new forsendelse stays MOTTATT before it reaches SvarInn."""
        self.token_check = token_check or bool
        """Accepts a bearer token (true) or refuses it (false, or an exception saying why)."""
        self.accounts: dict[str, Account] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.forsendelser: dict[str, Stored] = {}
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()

    # --- set-up -------------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate:
        """SvarUt's certificate: what the DPF service records carry as ``pemCertificate``."""
        return self.key.certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def add_account(
        self,
        organisation: str,
        *,
        name: str | None = None,
        konto_id: str | None = None,
        integration_id: str | None = None,
        integration_password: str | None = None,
        address: tuple[str, str, str] | None = None,
    ) -> Account:
        account = Account(
            konto_id or str(uuid.uuid4()),
            organisation,
            name or f"Organisasjon {organisation}",
            integration_id or str(uuid.uuid4()),
            integration_password or secrets.token_urlsafe(16),
            address or ("Postboks 1", "0101", "Oslo"),
        )
        self.accounts[account.konto_id] = account
        return account

    def add_mailbox(
        self,
        organisation: str,
        certificate: x509.Certificate,
        *,
        name: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> Mailbox:
        mailbox = Mailbox(
            organisation,
            name or f"Organisasjon {organisation}",
            certificate,
            username or organisation,
            password or secrets.token_urlsafe(16),
        )
        self.mailboxes[organisation] = mailbox
        return mailbox

    def service_record(
        self, organisation: str, process: str = ARKIVMELDING_PROCESS
    ) -> dict[str, Any]:
        """A Service Registry DPF record that routes ``organisation`` through this SvarUt."""
        return {
            "organisationNumber": organisation,
            "pemCertificate": self.certificate_pem,
            "process": process,
            "documentTypes": ["urn:no:difi:arkivmelding:xsd::arkivmelding"],
            "service": {"identifier": "DPF", "endpointUrl": "", "securityLevel": 3},
        }

    def set_status(self, forsendelse_id: str, status: str, hendelse: str | None = None) -> None:
        """Move a forsendelse to any SvarUt status, with an event text (a reason)."""
        if status not in STATUSES:
            raise ValueError(f"{status} is not a SvarUt status")
        self.forsendelser[forsendelse_id].move(status, hendelse or status)

    def _advance(self, stored: Stored) -> None:
        if stored.status != "MOTTATT":
            return
        if datetime.now(UTC) - stored.created < timedelta(seconds=self.processing_delay):
            return
        if stored.mailbox is not None:
            stored.move("KLAR_FOR_MOTTAK", f"Klar for mottak i SvarInn ({stored.mailbox.name})")
        else:
            stored.move("VARSLET", "Varslet i Altinn")

    # --- the application ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._record, self._errors, middleware(self.faults, self._error)],
            client_max_size=FORSENDELSE_LIMIT,
        )
        konto = "/api/v3/kontoer/{konto_id}/forsendelser"
        app.router.add_post(f"{konto}/organisasjon", self._send, name="send")
        app.router.add_post(f"{konto}/status/sok", self._statuses, name="status")
        app.router.add_get("/api/v2/kontoer/{konto_id}/forsendelser", self._by_ref,
                           name="eksternref")
        app.router.add_get("/api/v2/forsendelser/{id}/hendelser", self._events, name="hendelser")
        inn = "/tjenester/svarinn"
        app.router.add_get(f"{inn}/mottaker/hentNyeForsendelser", self._waiting, name="hent")
        app.router.add_get(f"{inn}/forsendelse/{{id}}", self._download, name="download")
        app.router.add_post(f"{inn}/kvitterMottak/forsendelse/{{id}}", self._confirm,
                            name="kvitter")
        app.router.add_post(f"{inn}/mottakFeilet/forsendelse/{{id}}", self._failed, name="feilet")
        app.router.add_get("/_fake/forsendelser", self._admin_list, name="fake-list")
        app.router.add_post("/_fake/forsendelser/{id}/status", self._admin_status,
                            name="fake-status")
        app.router.add_post("/_fake/faults", self._admin_fault, name="fake-fault")
        return app

    def _error(self, request: web.Request, status: int, message: str,
               code: str | None = None) -> web.Response:
        """SvarUt's ErrorMessage."""
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        body: dict[str, Any] = {
            "timestamp": int(datetime.now(UTC).timestamp() * 1000),
            "status": status,
            "error": phrase,
            "errorId": str(uuid.uuid4()),
            "path": request.path,
            "originalPath": request.path,
            "message": message,
        }
        if code is not None:
            body["errorCode"] = code
        response = web.json_response(body, status=status)
        if status == 401 and request.path.startswith("/tjenester/svarinn"):
            response.headers["WWW-Authenticate"] = 'Basic realm="SvarInn"'
        return response

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_fake"):
            self.requests.append(
                RecordedRequest(request.method, request.path, dict(request.query),
                                dict(request.headers))
            )
        return await handler(request)  # type: ignore[no-any-return]

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except Refused as refused:
            return self._error(request, refused.status, str(refused), refused.code)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return self._error(request, exc.status, exc.reason)

    # --- SvarUt -------------------------------------------------------------------------

    def _account(self, request: web.Request, konto_id: str | None) -> Account:
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        try:
            accepted = scheme.lower() == "bearer" and self.token_check(token.strip())
        except Exception as exc:  # a verifier that raises refuses the token, saying why
            raise Refused(401, f"Ugyldig Maskinporten-token: {exc}") from exc
        if not accepted:
            raise Refused(401, "Mangler gyldig Maskinporten-token (Authorization: Bearer)")
        integration = request.headers.get("IntegrasjonId")
        password = request.headers.get("IntegrasjonPassord")
        if not integration or not password:
            raise Refused(401, "Mangler IntegrasjonId eller IntegrasjonPassord")
        matching = [
            a for a in self.accounts.values()
            if a.integration_id == integration and a.integration_password == password
        ]
        if not matching:
            raise Refused(401, "Ukjent integrasjon eller feil passord")
        if konto_id is None:
            return matching[0]
        account = next((a for a in matching if a.konto_id == konto_id), None)
        if account is None:
            raise Refused(403, f"Integrasjonen har ikke tilgang til konto {konto_id}")
        return account

    async def _send(self, request: web.Request) -> web.Response:
        account = self._account(request, request.match_info["konto_id"])
        if request.content_type != "multipart/form-data":
            raise Refused(415, "Forventer multipart/form-data")
        reader = await request.multipart()
        first = await reader.next()
        if first is None or getattr(first, "name", None) != "forsendelse":
            raise Refused(400, "Første del må være 'forsendelse' (JSON)")
        raw = bytearray()
        while chunk := await first.read_chunk(CHUNK):  # type: ignore[union-attr]
            raw += chunk
            if len(raw) > FORSENDELSE_LIMIT:
                raise Refused(413, "forsendelse er for stor")
        try:
            forsendelse = json.loads(raw)
        except ValueError as exc:
            raise Refused(400, f"forsendelse er ikke gyldig JSON: {exc}") from exc
        problems = rules.violations(forsendelse)
        if problems:
            raise Refused(400, "; ".join(problems), "VALIDERINGSFEIL")
        documents = forsendelse["dokumenter"]
        upload = self.storage / f"upload-{uuid.uuid4()}"
        upload.mkdir()
        try:
            parts = await self._receive_parts(reader, documents, upload)
            digital_only = forsendelse.get("kunDigitalLevering") is True
            total = sum(path.stat().st_size for path in parts)
            if not digital_only and total > PRINT_LIMIT:
                raise Refused(
                    400, f"Forsendelser som kan printes kan være høyst {PRINT_LIMIT} bytes"
                )
            receiver = str(forsendelse["mottaker"]["digitalId"])
            mailbox = self.mailboxes.get(receiver)
            forsendelse_id = str(uuid.uuid4())
            package = self.storage / f"{forsendelse_id}.zip.cms"
            recipient = mailbox.certificate if mailbox is not None else self.certificate
            files = await asyncio.to_thread(
                self._repack, forsendelse, parts, recipient, package
            )
        finally:
            shutil.rmtree(upload, ignore_errors=True)
        stored = Stored(
            forsendelse_id, account, forsendelse, receiver, mailbox, files, package,
            datetime.now(UTC),
        )
        stored.events.append(Event(stored.created, "Forsendelse mottatt"))
        self.forsendelser[forsendelse_id] = stored
        self._advance(stored)
        return web.json_response({"id": forsendelse_id})

    async def _receive_parts(
        self, reader: Any, documents: list[dict[str, Any]], upload: Path
    ) -> list[Path]:
        parts: list[Path] = []
        while (part := await reader.next()) is not None:
            index = len(parts)
            if index >= len(documents):
                raise Refused(
                    400, f"Forsendelsen har flere filer enn dokumenter ({len(documents)})"
                )
            expected = documents[index]["filnavn"]
            if part.filename != expected:
                raise Refused(
                    400,
                    f"Fil nr. {index + 1} heter {part.filename!r}, men dokumenter[{index}] er "
                    f"{expected!r}: filene må komme i samme rekkefølge som dokumentene",
                )
            path = upload / str(index)
            with path.open("wb") as out:
                while chunk := await part.read_chunk(CHUNK):
                    out.write(chunk)
            parts.append(path)
        if len(parts) != len(documents):
            raise Refused(
                400, f"Forsendelsen har {len(parts)} filer, men {len(documents)} dokumenter"
            )
        return parts

    def _repack(
        self,
        forsendelse: dict[str, Any],
        parts: list[Path],
        recipient: x509.Certificate,
        package: Path,
    ) -> list[StoredFile]:
        """Decrypt each document with SvarUt's key, zip them and encrypt for the receiver."""
        encrypted = forsendelse.get("kryptert") is True
        digital_only = forsendelse.get("kunDigitalLevering") is True
        documents = forsendelse["dokumenter"]
        files: list[StoredFile] = []
        modified = datetime.now()

        def plaintext(document: dict[str, Any], path: Path) -> Iterator[bytes]:
            name = document["filnavn"]
            printable = not digital_only and document.get("skalEkskluderesFraUtskrift") is not True
            digest = hashlib.sha256()
            size = 0
            with path.open("rb") as source:
                try:
                    chunks = (CmsReader(source).decrypt(self.key) if encrypted
                              else iter(lambda: source.read(CHUNK), b""))
                    for chunk in chunks:
                        if size == 0 and printable and not chunk.startswith(PDF_MAGIC):
                            raise Refused(
                                400, f"Dokumentet {name!r} er ikke en PDF og kan ikke printes"
                            )
                        digest.update(chunk)
                        size += len(chunk)
                        yield chunk
                except PackageError as exc:
                    raise Refused(
                        400,
                        f"Dokumentet {name!r} kan ikke dekrypteres med SvarUt sin nøkkel: {exc}",
                    ) from exc
            files.append(StoredFile(name, document["mimeType"], size, digest.hexdigest(),
                                    document.get("dokumentType")))

        def members() -> Iterator[tuple[Any, ...]]:
            for document, path in zip(documents, parts, strict=True):
                yield (document["filnavn"], modified, 0o100644,
                       ZIP_AUTO(path.stat().st_size, level=0), plaintext(document, path))

        try:
            with package.open("wb") as out, CmsWriter(out, recipient) as writer:
                for chunk in stream_zip(members()):
                    writer.write(chunk)
        except BaseException:
            package.unlink(missing_ok=True)
            raise
        return files

    async def _statuses(self, request: web.Request) -> web.Response:
        account = self._account(request, request.match_info["konto_id"])
        try:
            body = await request.json()
        except ValueError as exc:
            raise Refused(400, f"Forventer JSON: {exc}") from exc
        ids = body.get("id") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise Refused(400, "id mangler (liste med forsendelse-id-er)")
        answer = []
        for value in ids:
            try:
                key = str(uuid.UUID(str(value)))
            except ValueError as exc:
                raise Refused(400, f"{value!r} er ikke en UUID") from exc
            stored = self.forsendelser.get(key)
            if stored is None or stored.account.konto_id != account.konto_id:
                continue
            self._advance(stored)
            answer.append(
                {"id": stored.id, "status": stored.status,
                 "sisteStatusEndring": _iso(stored.changed)}
            )
        return web.json_response({"statuser": answer})

    async def _by_ref(self, request: web.Request) -> web.Response:
        account = self._account(request, request.match_info["konto_id"])
        reference = request.query.get("eksternRef")
        if not reference:
            raise Refused(400, "eksternRef mangler")
        ids = [
            s.id for s in self.forsendelser.values()
            if s.account.konto_id == account.konto_id
            and s.forsendelse.get("eksternReferanse") == reference
        ]
        return web.json_response({"forsendelseIds": ids})

    async def _events(self, request: web.Request) -> web.Response:
        account = self._account(request, None)
        stored = self.forsendelser.get(request.match_info["id"])
        if stored is None or stored.account.integration_id != account.integration_id:
            raise Refused(404, "Fant ikke forsendelsen")
        self._advance(stored)
        return web.json_response(
            {"hendelser": [{"tidspunkt": _iso(e.at), "hendelse": e.text} for e in stored.events]}
        )

    # --- SvarInn ------------------------------------------------------------------------

    def _mailbox(self, request: web.Request) -> Mailbox:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            login = password = ""
        if scheme.lower() != "basic" or not login:
            raise Refused(401, "Mangler brukernavn og passord (HTTP Basic)")
        mailbox = next(
            (m for m in self.mailboxes.values()
             if m.username == login and m.password == password),
            None,
        )
        if mailbox is None:
            raise Refused(401, "Feil brukernavn eller passord")
        return mailbox

    def _waiting_for(self, mailbox: Mailbox) -> list[Stored]:
        for stored in self.forsendelser.values():
            self._advance(stored)
        return sorted(
            (s for s in self.forsendelser.values()
             if s.mailbox is mailbox and s.status == "KLAR_FOR_MOTTAK" and not s.collected),
            key=lambda s: s.created,
        )

    def _mine(self, request: web.Request) -> Stored:
        mailbox = self._mailbox(request)
        stored = self.forsendelser.get(request.match_info["id"])
        if stored is None or stored.mailbox is not mailbox or stored.collected:
            raise Refused(404, "Fant ikke forsendelsen")
        return stored

    async def _waiting(self, request: web.Request) -> web.Response:
        mailbox = self._mailbox(request)
        base = str(request.url.origin())
        return web.json_response([self._svarinn_json(s, base) for s in self._waiting_for(mailbox)])

    def _svarinn_json(self, stored: Stored, base: str) -> dict[str, Any]:
        """A forsendelse as ``hentNyeForsendelser`` shows it."""
        f = stored.forsendelse
        account = stored.account
        mottaker = f["mottaker"]
        address = mottaker.get("adresse") or {}
        metadata = f.get("metadataFraAvleverendeSystem") or {}
        imported = f.get("metadataForImport") or {}
        reply = f.get("svarSendesTil")
        if reply is not None:
            reply_address = reply["adresse"]
            svar = {
                "adresse1": reply_address.get("adresselinje1"),
                "adresse2": reply_address.get("adresselinje2"),
                "adresse3": reply_address.get("adresselinje3"),
                "postnr": reply_address.get("postnummer"),
                "poststed": reply_address.get("poststed"),
                "navn": reply["navn"],
                "land": reply_address.get("landkode"),
                "orgnr": reply["digitalId"] if reply["type"] == "ORGANISASJON" else None,
                "fnr": reply["digitalId"] if reply["type"] == "PERSON" else None,
            }
        else:
            line, postal_code, postal_area = account.address
            svar = {
                "adresse1": line, "adresse2": None, "adresse3": None, "postnr": postal_code,
                "poststed": postal_area, "navn": account.name, "land": "Norge",
                "orgnr": account.organisation, "fnr": None,
            }
        line, postal_code, postal_area = account.address
        return {
            "avsender": {
                "adresselinje1": line, "adresselinje2": "", "adresselinje3": "",
                "navn": account.name, "poststed": postal_area, "postnr": postal_code,
            },
            "mottaker": {
                "adresse1": address.get("adresselinje1"),
                "adresse2": address.get("adresselinje2"),
                "adresse3": address.get("adresselinje3"),
                "postnr": address.get("postnummer"),
                "poststed": address.get("poststed"),
                "navn": mottaker["navn"],
                "land": address.get("landkode"),
                "orgnr": stored.receiver if len(stored.receiver) == 9 else None,
                "fnr": stored.receiver if len(stored.receiver) == 11 else None,
            },
            "id": stored.id,
            "tittel": f["tittel"],
            "date": int(stored.created.timestamp() * 1000),
            "metadataFraAvleverendeSystem": {
                "sakssekvensnummer": metadata.get("sakssekvensnummer", 0),
                "saksaar": metadata.get("saksaar", 0),
                "journalaar": metadata.get("journalaar", 0),
                "journalsekvensnummer": metadata.get("journalsekvensnummer", 0),
                "journalpostnummer": metadata.get("journalpostnummer", 0),
                "journalposttype": metadata.get("journalposttype"),
                "journalstatus": metadata.get("journalstatus"),
                "journaldato": _millis(metadata.get("journaldato")),
                "dokumentetsDato": _millis(metadata.get("dokumentetsDato")),
                "tittel": metadata.get("tittel"),
                "saksBehandler": metadata.get("saksbehandler"),
                "ekstraMetadata": metadata.get("ekstraMetadata") or [],
            },
            "metadataForImport": {
                "sakssekvensnummer": imported.get("sakssekvensnummer", 0),
                "saksaar": imported.get("saksaar", 0),
                "journalposttype": imported.get("journalposttype"),
                "journalstatus": imported.get("journalstatus"),
                "dokumentetsDato": imported.get("dokumentetsDato"),
                "tittel": imported.get("tittel"),
            },
            "status": SVARUT_STATUS_TEXT.get(stored.status, stored.status),
            "niva": "4" if f.get("sikkerhetsniva") == "HOYESTE" else "3",
            "filmetadata": [
                {"filnavn": x.name, "mimetype": x.mime, "sha256hash": x.sha256,
                 "dokumentType": x.document_type, "size": x.size}
                for x in stored.files
            ],
            "svarSendesTil": svar,
            "svarPaForsendelse": f.get("svarPaForsendelseId"),
            "forsendelseType": f.get("forsendelsestype"),
            "eksternRef": f.get("eksternReferanse"),
            "lenker": f.get("lenker") or [],
            "downloadUrl": f"{base}/tjenester/svarinn/forsendelse/{stored.id}",
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        stored = self._mine(request)
        size = stored.package.stat().st_size
        cut = self.faults.take("download", (Kind.TRUNCATE,)) is not None
        response = web.StreamResponse(
            headers={"Content-Type": "application/zip",
                     "Content-Disposition": f'attachment; filename="{stored.id}.zip"'}
        )
        response.content_length = size
        await response.prepare(request)
        sent = 0
        with stored.package.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, CHUNK):
                if cut and sent + len(chunk) > size // 2:
                    await response.write(chunk[: size // 2 - sent])
                    cut_connection(request)
                    return response
                await response.write(chunk)
                sent += len(chunk)
        stored.events.append(Event(datetime.now(UTC), "Lastet ned av mottakersystemet"))
        await response.write_eof()
        return response

    async def _confirm(self, request: web.Request) -> web.Response:
        stored = self._mine(request)
        stored.collected = True
        stored.move("LEST", f"Mottatt av mottakersystemet {stored.mailbox.name}"
                    if stored.mailbox else "Mottatt")
        return web.Response(status=200)

    async def _failed(self, request: web.Request) -> web.Response:
        stored = self._mine(request)
        try:
            body = await request.json()
        except ValueError as exc:
            raise Refused(400, f"Forventer JSON {{feilmelding, permanent}}: {exc}") from exc
        message = body.get("feilmelding") if isinstance(body, dict) else None
        permanent = body.get("permanent") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message.strip() or not isinstance(permanent, bool):
            raise Refused(400, "feilmelding (tekst) og permanent (true/false) må være utfylt")
        if permanent:
            stored.collected = True
            stored.move("FEILET_UNDER_MOTTAK", f"Mottak feilet permanent: {message}")
        else:
            stored.events.append(Event(datetime.now(UTC), f"Mottak feilet midlertidig: {message}"))
        return web.Response(status=200)

    # --- administration (not part of SvarUt) ----------------------------------------------

    async def _admin_list(self, request: web.Request) -> web.Response:
        for stored in self.forsendelser.values():
            self._advance(stored)
        return web.json_response([
            {"id": s.id, "status": s.status, "receiver": s.receiver,
             "sender": s.account.organisation,
             "eksternReferanse": s.forsendelse.get("eksternReferanse"),
             "tittel": s.forsendelse.get("tittel"),
             "events": [{"tidspunkt": _iso(e.at), "hendelse": e.text} for e in s.events]}
            for s in self.forsendelser.values()
        ])

    async def _admin_status(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            self.set_status(request.match_info["id"], str(body.get("status")), body.get("hendelse"))
        except KeyError as exc:
            raise Refused(404, "Fant ikke forsendelsen") from exc
        except ValueError as exc:
            raise Refused(400, str(exc)) from exc
        return web.json_response({"id": request.match_info["id"], "status": body["status"]})

    async def _admin_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        operation = str(body.get("operation") or "*")
        kind = str(body.get("kind") or "fail")
        times = int(body.get("times") or 1)
        if kind == "fail":
            self.faults.fail(operation, int(body.get("status") or 503), times=times,
                             retry_after=body.get("retry_after"))
        elif kind == "slow":
            self.faults.slow(operation, float(body.get("seconds") or 1.0), times=times)
        elif kind == "truncate":
            self.faults.truncate(operation, times=times)
        elif kind == "drop":
            self.faults.drop(operation, times=times)
        else:
            raise Refused(400, f"unknown fault kind {kind!r}")
        return web.json_response(body)


async def serve(fake: FakeSvarUt, host: str, port: int) -> web.AppRunner:
    """Start the fake on ``host:port``; the caller cleans the runner up."""
    runner = web.AppRunner(fake.app())
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def stored_documents(package: Path, key: OrganisationKey) -> Iterator[tuple[str, bytes]]:
    """A stored package's documents (for tests and inspection; holds each in memory)."""
    with package.open("rb") as source:
        for name, _size, chunks in stream_unzip(CmsReader(source).decrypt(key)):
            yield name.decode(), b"".join(chunks)

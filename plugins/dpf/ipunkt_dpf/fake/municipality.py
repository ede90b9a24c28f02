"""A municipality on SvarUt and SvarInn whose archive answers what it receives.

It is a party of the fake like any other (a SvarUt account, a SvarInn mailbox with its own
certificate) and speaks the real protocols over HTTP. Its mottakersystem fetches what waits in
its SvarInn mailbox, downloads it, decrypts it with its own key, checks every document against
``filmetadata`` and imports it into an archive that takes archival formats only:

- a forsendelse it imports is confirmed (``kvitterMottak``, so the sender sees LEST) and
  answered at once through SvarUt with a letter (a PDF) to the forsendelse's reply address,
  ``svarPaForsendelseId`` naming the forsendelse it answers;
- one it cannot import is refused with a permanent ``mottakFeilet`` and the reason, which the
  sender sees as FEILET_UNDER_MOTTAK.

Each reply has its own ``eksternReferanse`` and is looked up by it before every try, so an
answer lost on the way never makes a second reply. ``GET /`` of :meth:`Municipality.app` shows
what the municipality received and answered; the app's life is the responder's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import structlog
from aiohttp import web
from cryptography import x509
from ipunkt.package.cms import CmsReader, encrypt
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.plugin import PermanentError, TokenProvider, TransientError
from stream_unzip import UnzipError, stream_unzip

from ipunkt_dpf.client import SvarInnClient, SvarUtClient, UploadDocument
from ipunkt_dpf.fake.letter import letter_pdf
from ipunkt_dpf.fake.service import Account, Mailbox

log = structlog.get_logger(__name__)

OSLO = ZoneInfo("Europe/Oslo")
CHUNK = 1 << 20
ARCHIVAL_FORMATS = {
    "application/pdf": "PDF",
    "application/xml": "XML",
    "text/xml": "XML",
    "text/plain": "tekst",
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/tiff": "TIFF",
}
"""What the archive imports: the archival formats among the file types SvarUt carries."""
REPLY_FILENAME = "svar.pdf"
SYSTEM = "Sandkasse arkiv"
_ORGNR = re.compile(r"^\d{9}$")


class ImportFailed(Exception):
    """The archive cannot import the forsendelse; the text is what SvarUt is told."""


@dataclass(frozen=True)
class ArchivedFile:
    name: str
    mime: str
    size: int
    sha256: str


@dataclass
class Reply:
    """The answer to one forsendelse, until SvarUt has taken it (or refused it for good)."""

    ekstern_referanse: str
    forsendelse: dict[str, Any]
    letter: bytes
    id: str | None = None
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.id is None and self.error is None


@dataclass
class Received:
    """A forsendelse that reached the municipality, and what became of it."""

    id: str
    title: str
    sender: str | None
    answers: str | None
    """``svarPaForsendelse``: the forsendelse this one answers, if any."""
    files: list[ArchivedFile] = field(default_factory=list)
    refusal: str | None = None
    journalpost: str | None = None
    reply: Reply | None = None

    def state(self) -> dict[str, Any]:
        reply = self.reply
        return {
            "id": self.id,
            "title": self.title,
            "sender": self.sender,
            "svarPaForsendelse": self.answers,
            "outcome": "refused" if self.refusal else "imported",
            "reason": self.refusal,
            "journalpost": self.journalpost,
            "files": [{"name": f.name, "mime": f.mime, "size": f.size, "sha256": f.sha256}
                      for f in self.files],
            "reply": None if reply is None else {
                "id": reply.id,
                "eksternReferanse": reply.ekstern_referanse,
                "tittel": reply.forsendelse["tittel"],
                "mottaker": reply.forsendelse["mottaker"]["digitalId"],
                "error": reply.error,
            },
        }


async def _sealed(data: bytes, recipient: x509.Certificate) -> AsyncIterator[bytes]:
    for chunk in encrypt([data], recipient):
        yield chunk


def _mime(value: Any) -> str:
    return str(value or "application/octet-stream").split(";")[0].strip().lower()


class Municipality:
    """A municipality whose mottakersystem imports what SvarInn holds and answers it."""

    def __init__(
        self,
        *,
        name: str,
        address: tuple[str, str, str],
        key: OrganisationKey,
        account: Account,
        mailbox: Mailbox,
        svarut_url: str,
        svarut_certificate: x509.Certificate,
        tokens: TokenProvider,
        work_dir: Path,
        interval: float = 0.5,
    ) -> None:
        self.organisation = account.organisation
        self.name = name
        self.address = address
        """adresselinje1, postnummer, poststed: where replies to the municipality's letters go."""
        self.key = key
        self.account = account
        self.mailbox = mailbox
        self.svarut_url = svarut_url.rstrip("/")
        self.svarut_certificate = svarut_certificate
        """What documents sent through SvarUt are encrypted to (the DPF service records')."""
        self.tokens = tokens
        self.work_dir = work_dir
        self.interval = interval
        self.received: dict[str, Received] = {}
        self._sequence = 0
        self._svarut: SvarUtClient | None = None
        self._svarinn: SvarInnClient | None = None
        self.log = log.bind(organisation=self.organisation, channel="DPF")

    # --- the application --------------------------------------------------------------

    def app(self) -> web.Application:
        """``GET /``: what arrived and what was answered. The responder runs with the app."""
        app = web.Application()
        app.router.add_get("/", self._state)
        app.cleanup_ctx.append(self._running)
        return app

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "organisation": self.organisation,
            "name": self.name,
            "received": [r.state() for r in self.received.values()],
        })

    def connect(self, session: aiohttp.ClientSession) -> None:
        """Reach SvarUt and SvarInn through ``session`` (the app does this as it starts)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._svarut = SvarUtClient(
            session, base_url=self.svarut_url, account_id=self.account.konto_id,
            integration_id=self.account.integration_id,
            integration_password=self.account.integration_password, tokens=self.tokens,
        )
        self._svarinn = SvarInnClient(
            session, base_url=f"{self.svarut_url}/tjenester/svarinn",
            username=self.mailbox.username, password=self.mailbox.password,
        )

    async def _running(self, app: web.Application) -> AsyncIterator[None]:
        # SvarUt is the sandbox's own fake: a silence of seconds is a fault, not a slow network.
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.connect(session)
            task = asyncio.create_task(self._run(), name=f"municipality-{self.organisation}")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # one bad round must not silence the municipality
                self.log.exception("the municipality's round failed")
            await asyncio.sleep(self.interval)

    # --- receiving ----------------------------------------------------------------------

    async def poll_once(self) -> None:
        """Take what waits in SvarInn, then send the replies not yet sent."""
        assert self._svarinn is not None
        try:
            waiting = await self._svarinn.new_forsendelser()
        except (TransientError, PermanentError) as exc:
            self.log.warning("SvarInn unavailable; trying again", error=str(exc))
            waiting = []
        for item in waiting:
            await self._take(item)
        await self._send_replies()

    async def _take(self, item: dict[str, Any]) -> None:
        assert self._svarinn is not None
        forsendelse_id = str(item.get("id") or "")
        log = self.log.bind(forsendelse=forsendelse_id)
        received = self.received.get(forsendelse_id)
        if received is None:
            try:
                files = await self._import(item)
            except ImportFailed as exc:
                received = self._record(item, refusal=str(exc))
            except TransientError as exc:
                log.warning("download failed; SvarInn offers it again", error=str(exc))
                return
            else:
                received = self._record(item, files=files)
        if received.refusal is None and received.reply is None:
            # Made before kvitterMottak: if SvarInn takes that but its answer is lost, the
            # forsendelse is not offered again, and the reply must not depend on it.
            received.reply = self._reply(item, received)
        try:
            if received.refusal is not None:
                await self._svarinn.report_failure(forsendelse_id, received.refusal,
                                                   permanent=True)
                log.info("forsendelse refused", reason=received.refusal)
                return
            await self._svarinn.confirm(forsendelse_id)
        except (TransientError, PermanentError) as exc:
            log.warning("SvarInn did not take the answer; it offers the forsendelse again",
                        error=str(exc))
            return
        log.info("forsendelse imported", journalpost=received.journalpost)

    def _record(self, item: dict[str, Any], *, files: list[ArchivedFile] | None = None,
                refusal: str | None = None) -> Received:
        reply_to = item.get("svarSendesTil") or {}
        received = Received(
            id=str(item.get("id") or ""),
            title=str(item.get("tittel") or ""),
            sender=str(reply_to.get("orgnr") or "") or None,
            answers=str(item.get("svarPaForsendelse") or "") or None,
            files=files or [],
            refusal=refusal,
        )
        if refusal is None:
            self._sequence += 1
            received.journalpost = f"{datetime.now(OSLO).year}/{self._sequence}"
        self.received[received.id] = received
        return received

    async def _import(self, item: dict[str, Any]) -> list[ArchivedFile]:
        """Download, decrypt and check the forsendelse; raises :class:`ImportFailed`."""
        assert self._svarinn is not None
        announced = [f for f in item.get("filmetadata") or [] if isinstance(f, dict)]
        handle, name = tempfile.mkstemp(prefix="svarinn-", suffix=".zip.cms", dir=self.work_dir)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                async with self._svarinn.download(str(item.get("downloadUrl") or "")) as response:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        await asyncio.to_thread(out.write, chunk)
            found = await asyncio.to_thread(self._unpack, path)
        except PermanentError as exc:
            raise ImportFailed(f"Forsendelsen kan ikke lastes ned: {exc}") from exc
        finally:
            path.unlink(missing_ok=True)
        return _archived(found, announced)

    def _unpack(self, path: Path) -> dict[str, tuple[int, str]]:
        """The documents in the download: name to size and SHA-256 (nothing kept)."""
        found: dict[str, tuple[int, str]] = {}
        with path.open("rb") as source:
            try:
                members = stream_unzip(CmsReader(source).decrypt(self.key))
                for raw, _size, chunks in members:
                    digest = hashlib.sha256()
                    size = 0
                    for chunk in chunks:
                        digest.update(chunk)
                        size += len(chunk)
                    found[raw.decode("utf-8", "replace")] = (size, digest.hexdigest())
            except PackageError as exc:
                raise ImportFailed(
                    f"Forsendelsen kan ikke dekrypteres med mottakersystemets nøkkel: {exc}"
                ) from exc
            except UnzipError as exc:
                raise ImportFailed(
                    f"Forsendelsen er ikke en lesbar ZIP ({type(exc).__name__})"
                ) from exc
        return found

    # --- replying -----------------------------------------------------------------------

    def _reply(self, item: dict[str, Any], received: Received) -> Reply | None:
        reply_to = item.get("svarSendesTil") or {}
        receiver = str(reply_to.get("orgnr") or "")
        if not _ORGNR.match(receiver):
            self.log.warning("no organisation to answer (svarSendesTil has no orgnr)",
                             forsendelse=received.id)
            return None
        now = datetime.now(OSLO)
        today = datetime.combine(now.date(), time(), OSLO).isoformat()
        title = f"Svar: {received.title}"[:1000]
        mottaker: dict[str, Any] = {"navn": str(reply_to.get("navn") or receiver)[:100],
                                    "digitalId": receiver}
        if reply_to.get("adresse1") and reply_to.get("poststed"):
            address = {"adresselinje1": str(reply_to["adresse1"])[:70],
                       "poststed": str(reply_to["poststed"])[:70]}
            if reply_to.get("postnr"):
                address["postnummer"] = str(reply_to["postnr"])[:20]
            mottaker["adresse"] = address
        line, postal_code, postal_area = self.address
        year, number = (int(part) for part in str(received.journalpost).split("/"))
        forsendelse: dict[str, Any] = {
            "tittel": title,
            "eksternReferanse": str(uuid.uuid4()),
            "mottaker": mottaker,
            "svarSendesTil": {
                "navn": self.name, "type": "ORGANISASJON", "digitalId": self.organisation,
                "adresse": {"adresselinje1": line, "postnummer": postal_code,
                            "poststed": postal_area},
            },
            "svarPaForsendelseId": received.id,
            "avgivendeSystem": SYSTEM,
            "kryptert": True,
            "kunDigitalLevering": False,
            "sikkerhetsniva": "HOYESTE" if str(item.get("niva")) == "4" else "BETYDELIG",
            "utskriftskonfigurasjon": {"tosidig": True},
            "metadataFraAvleverendeSystem": {
                "saksaar": year, "sakssekvensnummer": number,
                "journalaar": year, "journalsekvensnummer": number, "journalpostnummer": 2,
                "journalposttype": "U", "journalstatus": "E",
                "journaldato": today, "dokumentetsDato": today,
                "tittel": title, "saksbehandler": "Postmottaket",
            },
            "dokumenter": [{"filnavn": REPLY_FILENAME, "mimeType": "application/pdf",
                            "dokumentType": "Svar"}],
        }
        letter = letter_pdf([
            self.name,
            f"{line}, {postal_code} {postal_area}",
            "",
            f"Til: {mottaker['navn']}",
            f"Dato: {now.date().isoformat()}",
            "",
            title[:90],
            "",
            f"Vi har mottatt forsendelsen {received.id}",
            f"og arkivert den som journalpost {received.journalpost}.",
            *(f"  {f.name} ({f.size} byte)"[:90] for f in received.files),
            "",
            "Dette er et automatisk svar fra sandkassens kommune (ipunkt sandbox).",
        ])
        return Reply(forsendelse["eksternReferanse"], forsendelse, letter)

    async def _send_replies(self) -> None:
        assert self._svarut is not None
        for received in self.received.values():
            reply = received.reply
            if reply is None or not reply.pending:
                continue
            log = self.log.bind(forsendelse=received.id, reply=reply.ekstern_referanse)
            try:
                known = await self._svarut.find_by_ekstern_ref(reply.ekstern_referanse)
                reply.id = known[0] if known else await self._svarut.send(
                    reply.forsendelse,
                    [UploadDocument(REPLY_FILENAME, "application/pdf",
                                    partial(_sealed, reply.letter, self.svarut_certificate))],
                )
            except TransientError as exc:
                log.warning("reply not sent yet; trying again", error=str(exc))
                continue
            except PermanentError as exc:
                reply.error = str(exc)
                log.error("SvarUt refused the reply", error=str(exc))
                continue
            log.info("reply sent", reply_id=reply.id, receiver=reply.forsendelse["mottaker"])


def _archived(
    found: dict[str, tuple[int, str]], announced: list[dict[str, Any]]
) -> list[ArchivedFile]:
    """The documents as the archive takes them; raises :class:`ImportFailed` saying why not."""
    names = [str(f.get("filnavn") or "") for f in announced]
    if sorted(names) != sorted(found):
        raise ImportFailed(
            f"Nedlastingen inneholder {', '.join(sorted(found)) or 'ingen filer'}, men "
            f"filmetadata nevner {', '.join(sorted(names)) or 'ingen'}"
        )
    files = []
    for meta, name in zip(announced, names, strict=True):
        size, digest = found[name]
        if str(meta.get("sha256hash") or "").lower() not in ("", digest):
            raise ImportFailed(f"{name} stemmer ikke med sha256hash i filmetadata")
        mime = _mime(meta.get("mimetype"))
        if mime not in ARCHIVAL_FORMATS:
            formats = ", ".join(dict.fromkeys(ARCHIVAL_FORMATS.values()))
            raise ImportFailed(
                f"{name} ({mime}) er ikke i et arkivformat; arkivet tar bare {formats}"
            )
        files.append(ArchivedFile(name, mime, size, digest))
    return files

"""What the fake SvarUt refuses in an ``OrganisasjonForsendelse``, as the v3 API defines it.

The constraints are those of ``forsendelse-send-api-v3.json`` (required fields, lengths,
patterns, enums) plus the rules its descriptions state in words: unique file names without
``* : " \\ / < > | ?``, only PDF printable unless excluded from print or digital only, and
encrypted documents at the highest security level.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

FORBIDDEN = frozenset('*:"\\/<>|?')
KONTERINGSKODE = re.compile(r"^[a-zA-Z0-9_\-.øæåØÆÅ]{0,20}$")
LANDKODE = re.compile(r"^[A-Z]{2}$")
DIGITS = re.compile(r"^\d{1,11}$")
SIKKERHETSNIVA = ("BETYDELIG", "HOYESTE")
SVAR_TYPES = ("PERSON", "ORGANISASJON", "NHN_MOTTAKER")
PDF = "application/pdf"


class _Check:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def text(self, data: Any, key: str, path: str, low: int, high: int, *, required: bool = False
             ) -> None:
        value = data.get(key) if isinstance(data, dict) else None
        if value is None:
            if required:
                self.errors.append(f"{path}{key} mangler")
            return
        if not isinstance(value, str):
            self.errors.append(f"{path}{key} må være en tekst")
        elif not low <= len(value) <= high:
            self.errors.append(f"{path}{key} må ha {low}-{high} tegn")

    def boolean(self, data: dict[str, Any], key: str, path: str = "") -> None:
        if key in data and not isinstance(data[key], bool):
            self.errors.append(f"{path}{key} må være true eller false")

    def integer(self, data: dict[str, Any], key: str, path: str, minimum: int) -> None:
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < minimum):
            self.errors.append(f"{path}{key} må være et heltall fra {minimum}")

    def address(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            self.errors.append(f"{path} må være et objekt")
            return
        self.text(data, "adresselinje1", f"{path}.", 1, 70, required=True)
        self.text(data, "adresselinje2", f"{path}.", 1, 70)
        self.text(data, "adresselinje3", f"{path}.", 1, 70)
        self.text(data, "poststed", f"{path}.", 1, 70, required=True)
        self.text(data, "postnummer", f"{path}.", 1, 20)
        if "landkode" in data and not LANDKODE.match(str(data["landkode"])):
            self.errors.append(f"{path}.landkode må være ISO 3166-1 alpha-2")


def _metadata(check: _Check, data: Any) -> None:
    path = "metadataFraAvleverendeSystem."
    if not isinstance(data, dict):
        check.errors.append("metadataFraAvleverendeSystem må være et objekt")
        return
    for key in ("mappeId", "mappeSystemId", "systemId", "registreringsId", "journalposttype",
                "journalstatus", "saksbehandler"):
        check.text(data, key, path, 1, 100)
    check.text(data, "tittel", path, 1, 1000)
    for key in ("saksaar", "journalaar"):
        check.integer(data, key, path, 1000)
    for key in ("sakssekvensnummer", "journalpostnummer", "journalsekvensnummer"):
        check.integer(data, key, path, 1)
    extra = data.get("ekstraMetadata")
    if extra is not None:
        if not isinstance(extra, list) or len(extra) > 20:
            check.errors.append(f"{path}ekstraMetadata må være en liste med høyst 20 elementer")
            return
        for index, item in enumerate(extra):
            check.text(item, "key", f"{path}ekstraMetadata[{index}].", 1, 100, required=True)
            check.text(item, "value", f"{path}ekstraMetadata[{index}].", 1, 500, required=True)


def _documents(check: _Check, forsendelse: dict[str, Any]) -> None:
    documents = forsendelse.get("dokumenter")
    if not isinstance(documents, list) or not documents:
        check.errors.append("dokumenter må ha minst ett dokument")
        return
    digital_only = forsendelse.get("kunDigitalLevering") is True
    seen: set[str] = set()
    for index, document in enumerate(documents):
        path = f"dokumenter[{index}]."
        if not isinstance(document, dict):
            check.errors.append(f"{path[:-1]} må være et objekt")
            continue
        check.text(document, "filnavn", path, 1, 226, required=True)
        check.text(document, "mimeType", path, 1, 127, required=True)
        check.text(document, "dokumentType", path, 1, 100)
        check.boolean(document, "skalEkskluderesFraUtskrift", path)
        name = document.get("filnavn")
        if isinstance(name, str):
            bad = sorted(FORBIDDEN.intersection(name))
            if bad:
                check.errors.append(f"{path}filnavn {name!r} inneholder ulovlige tegn {bad}")
            if name in seen:
                check.errors.append(f"{path}filnavn {name!r} er ikke unikt")
            seen.add(name)
        excluded = document.get("skalEkskluderesFraUtskrift") is True
        if document.get("mimeType") != PDF and not excluded and not digital_only:
            check.errors.append(
                f"{path}mimeType {document.get('mimeType')!r} kan ikke printes: marker dokumentet "
                "skalEkskluderesFraUtskrift eller forsendelsen kunDigitalLevering"
            )


def violations(forsendelse: Any) -> list[str]:
    """Why SvarUt would refuse this forsendelse (empty when it is acceptable)."""
    if not isinstance(forsendelse, dict):
        return ["forsendelse må være et JSON-objekt"]
    check = _Check()
    check.text(forsendelse, "tittel", "", 1, 1000, required=True)
    mottaker = forsendelse.get("mottaker")
    if not isinstance(mottaker, dict):
        check.errors.append("mottaker mangler")
    else:
        check.text(mottaker, "navn", "mottaker.", 1, 100, required=True)
        check.text(mottaker, "digitalId", "mottaker.", 9, 11, required=True)
        if "adresse" in mottaker:
            check.address(mottaker["adresse"], "mottaker.adresse")
    for key in ("eksternReferanse", "korrelasjonsid", "forsendelsestype", "avgivendeSystem",
                "avgivendeSystemAktor"):
        check.text(forsendelse, key, "", 1, 100)
    if "konteringskode" in forsendelse:
        check.text(forsendelse, "konteringskode", "", 1, 20)
        if not KONTERINGSKODE.match(str(forsendelse["konteringskode"])):
            check.errors.append("konteringskode har ulovlige tegn")
    for key in ("kryptert", "kunDigitalLevering", "kanSvareViaEdialog", "taushetsbelagtPost"):
        check.boolean(forsendelse, key)
    level = forsendelse.get("sikkerhetsniva")
    if level is not None and level not in SIKKERHETSNIVA:
        check.errors.append(f"sikkerhetsniva må være en av {SIKKERHETSNIVA}")
    if level == "HOYESTE" and forsendelse.get("kryptert") is not True:
        check.errors.append("ved sikkerhetsniva HOYESTE må dokumentene være kryptert")
    if "svarPaForsendelseId" in forsendelse:
        try:
            uuid.UUID(str(forsendelse["svarPaForsendelseId"]))
        except ValueError:
            check.errors.append("svarPaForsendelseId må være en UUID")
    reply = forsendelse.get("svarSendesTil")
    if reply is not None:
        if not isinstance(reply, dict):
            check.errors.append("svarSendesTil må være et objekt")
        else:
            check.text(reply, "navn", "svarSendesTil.", 1, 100, required=True)
            if reply.get("type") not in SVAR_TYPES:
                check.errors.append(f"svarSendesTil.type må være en av {SVAR_TYPES}")
            if not DIGITS.match(str(reply.get("digitalId") or "")):
                check.errors.append("svarSendesTil.digitalId må være 1-11 sifre")
            check.address(reply.get("adresse"), "svarSendesTil.adresse")
    if "metadataFraAvleverendeSystem" in forsendelse:
        _metadata(check, forsendelse["metadataFraAvleverendeSystem"])
    _documents(check, forsendelse)
    return check.errors

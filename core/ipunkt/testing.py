"""Helpers for the tests of ipunkt and of its plugins (importable by third-party plugins too)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ipunkt.messages.parties import NORWEGIAN_ORG_ICD, ORG_AUTHORITY
from ipunkt.specs import SPECS_ENV, specs_folder

ARKIVMELDING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding"
ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
_ORGANISATION_NUMBER = re.compile(r"\d{9}")


def specs_dir() -> Path:
    """The folder of published specs named by ``IPUNKT_SPECS``.

    It defaults to ``../shared/specs`` beside the checkout. Tests that check wire formats
    skip with a clear reason when it is missing, so that the suite runs outside the workshop.
    """
    path = specs_folder()
    if path is None:
        pytest.skip(f"published specs not found (set {SPECS_ENV})")
    return path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sbd(
    receiver: str,
    message_id: str | None = None,
    *,
    sender: str | None = None,
    conversation_id: str | None = None,
    kind: str = "arkivmelding",
    standard: str = ARKIVMELDING_STANDARD,
    process: str = ADMINISTRASJON,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new message's SBD as a fagsystem posts it to ``POST /api/messages/out``.

    An organisation number becomes its ``0192:`` identifier; any other value (a person's
    number, ``0192:org:part``) is sent as it is. What is not given (sender, message id,
    conversation id) is left out for the integration point to fill, as a fagsystem may leave
    it. The business message is ``body``, else ``{"hoveddokument": "brev.txt"}``.
    """
    header: dict[str, Any] = {"headerVersion": "1.0"}
    if sender is not None:
        header["sender"] = [_partner(sender)]
    header["receiver"] = [_partner(receiver)]
    identification = {"standard": standard, "typeVersion": "2.0", "type": kind}
    if message_id is not None:
        identification["instanceIdentifier"] = message_id
    header["documentIdentification"] = identification
    scope = {"type": "ConversationId", "identifier": process}
    if conversation_id is not None:
        scope["instanceIdentifier"] = conversation_id
    header["businessScope"] = {"scope": [scope]}
    return {"standardBusinessDocumentHeader": header,
            kind: dict(body) if body is not None else {"hoveddokument": "brev.txt"}}


def _partner(value: str) -> dict[str, Any]:
    if _ORGANISATION_NUMBER.fullmatch(value):
        value = f"{NORWEGIAN_ORG_ICD}:{value}"
    return {"identifier": {"value": value, "authority": ORG_AUTHORITY}}


class ServerProcess:
    """``ipunkt serve`` as a real process, for tests that kill, restart or measure it."""

    def __init__(
        self, config: Path, port: int, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.config = config
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.log = log or config.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ipunkt", "serve", "--config", str(self.config),
                 "--port", str(self.port)],
                stdout=sink, stderr=sink, env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"ipunkt exited with {code}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/manage/health/readiness", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"ipunkt did not become ready in {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Fagsystem:
    """A client of one integration point's Next Move API, as a case-management system calls it
    (for end-to-end tests through the sandbox: ``state`` is one of its organisations)."""

    def __init__(self, session: aiohttp.ClientSession, state: Mapping[str, Any]) -> None:
        self.session = session
        self.url = state["url"]
        self.number = state["organisation"]
        self.auth = {"Authorization": aiohttp.encode_basic_auth(state["username"],
                                                               state["password"])}

    async def call(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        """One request with the integration point's credentials; the body is read."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response = await self.session.request(method, f"{self.url}{path}", headers=headers,
                                              **kwargs)
        await response.read()
        return response

"""Smoke test of ipunkt-dpv installed beside only the core (run by ``python3 dev.py
check-plugins`` with the python of a clean environment holding the core and this plugin).

It starts ``ipunkt sandbox`` and, as a fagsystem would, sends an arkivmelding from A to the
sandbox's sample business: the message goes over DPV into the fake Altinn, A's engine polls it
to LEVERT, and A's fagsystem gets the generated arkivmelding_kvittering. No other channel
plugin is there, and neither is pytest: the standard library only.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
ARKIVMELDING_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <system>smoke</system><meldingId>smoke</meldingId><tidspunkt>2026-03-02T09:15:00</tidspunkt>
  <antallFiler>1</antallFiler>
  <mappe xsi:type="saksmappe">
    <tittel>Smoke</tittel>
    <basisregistrering xsi:type="journalpost">
      <dokumentbeskrivelse>
        <tittel>Brev</tittel><dokumentnummer>1</dokumentnummer>
        <dokumentobjekt><referanseDokumentfil>brev.pdf</referanseDokumentfil></dokumentobjekt>
      </dokumentbeskrivelse>
      <tittel>Brev til bedriften</tittel>
      <offentligTittel>Brev</offentligTittel>
    </basisregistrering>
  </mappe>
</arkivmelding>
"""
BREV = b"%PDF-1.7 smoke " * 100
DEADLINE = 60.0


class Failed(Exception):
    """The smoke test found something wrong; the message says what."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(organisation: dict[str, Any], method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One Next Move API call as the organisation's fagsystem."""
    login = f"{organisation['username']}:{organisation['password']}".encode()
    request = urllib.request.Request(
        f"{organisation['url']}{path}", data=body, method=method,
        headers={"Authorization": f"Basic {base64.b64encode(login).decode()}",
                 **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        data, status = error.read(), error.code
    return status, json.loads(data) if data else None


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def wait(what: str, check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise Failed(f"timed out waiting for {what}")


def send(a: dict[str, Any], receiver: str) -> str:
    message_id = str(uuid.uuid4())
    sbd = {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"value": f"0192:{a['organisation']}",
                                       "authority": "iso6523-actorid-upis"}}],
            "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {"standard": "urn:no:difi:arkivmelding:xsd::arkivmelding",
                                       "typeVersion": "2.0", "instanceIdentifier": message_id,
                                       "type": "arkivmelding"},
            "businessScope": {"scope": [{"type": "ConversationId",
                                         "instanceIdentifier": str(uuid.uuid4()),
                                         "identifier": ADMINISTRASJON}]},
        },
        "arkivmelding": {"hoveddokument": "brev.pdf"},
    }
    status, answer = call(a, "POST", "/api/messages/out", json.dumps(sbd).encode(),
                          {"Content-Type": "application/json"})
    expect(status == 200, f"create answered {status}: {answer}")
    for name, title, mime, data in (("arkivmelding.xml", "Arkivmelding", "application/xml",
                                     ARKIVMELDING_XML),
                                    ("brev.pdf", "Brev", "application/pdf", BREV)):
        status, answer = call(a, "PUT", f"/api/messages/out/{message_id}", data, {
            "Content-Type": mime,
            "Content-Disposition": f'attachment; name="{title}"; filename="{name}"'})
        expect(status == 200, f"upload of {name} answered {status}: {answer}")
    status, answer = call(a, "POST", f"/api/messages/out/{message_id}")
    expect(status == 200, f"send answered {status}: {answer}")
    return message_id


def statuses(a: dict[str, Any], message_id: str) -> list[str]:
    status, answer = call(a, "GET", f"/api/statuses/{message_id}?size=50")
    expect(status == 200, f"statuses answered {status}: {answer}")
    return [s["status"] for s in answer["content"]]


def peek(a: dict[str, Any]) -> dict[str, Any] | None:
    status, answer = call(a, "GET", "/api/messages/in/peek")
    return answer if status == 200 else None


def exchange(state: dict[str, Any]) -> dict[str, Any]:
    a = state["organisations"][0]
    expect(set(state["receivers"]) == {"DPV"}, f"other channels in the sandbox: {state}")
    [business] = state["receivers"]["DPV"]
    message_id = send(a, business["identifier"])

    def delivered() -> list[str] | None:
        names = statuses(a, message_id)
        return names if "LEVERT" in names else None

    names = wait("LEVERT", delivered)
    expect(names[:2] == ["OPPRETTET", "SENDT"] and "FEIL" not in names, f"statuses {names}")
    inbox_url = f"{state['fakes']['altinn-inbox']}?recipient={business['identifier']}"
    with urllib.request.urlopen(inbox_url, timeout=30) as response:
        inbox = json.loads(response.read())
    expect([c["sendersReference"] for c in inbox] == [message_id], f"Altinn holds {inbox}")
    expect([f["fileName"] for f in inbox[0]["files"]] == ["brev.pdf"], f"files {inbox}")
    receipt = wait("the receipt", lambda: peek(a))
    body = receipt.get("arkivmelding_kvittering", {})
    expect(body.get("relatedToMessageId") == message_id, f"receipt {receipt}")
    return {"message": message_id, "statuses": names, "correspondence":
            inbox[0]["correspondenceId"], "receipt": body.get("receiptType")}


def main() -> int:
    others = [n for n in ("ipunkt_dpo", "ipunkt_dpf", "ipunkt_dpi") if importlib.util.find_spec(n)]
    expect(not others, f"this environment should hold only the core and ipunkt-dpv: {others}")
    with tempfile.TemporaryDirectory(prefix="ipunkt-dpv-smoke-") as scratch:
        folder = Path(scratch)
        state_file = folder / "state.json"
        log = (folder / "sandbox.log").open("wb")
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "ipunkt", "sandbox", "--folder", str(folder / "box"),
             "--state", str(state_file), "--port-a", str(free_port()),
             "--port-b", str(free_port())], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait("the sandbox", lambda: state_file.exists() or sandbox.poll() is not None)
            expect(sandbox.poll() is None, "the sandbox stopped")
            outcome = exchange(json.loads(state_file.read_text()))
        except Failed:
            print((folder / "sandbox.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            sandbox.send_signal(signal.SIGTERM)
            code = sandbox.wait(30)
            log.close()
        expect(code == 0, f"the sandbox exited with {code}")
    print(json.dumps({"smoke": "ipunkt-dpv beside only the core", **outcome}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)

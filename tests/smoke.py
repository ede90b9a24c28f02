"""Smoke test of the core installed alone (run by ``python3 dev.py check-plugins`` with the
python of a clean environment holding only the ``ipunkt`` wheel and its dependencies).

No channel plugin is installed: ``ipunkt plugins`` lists none, and ``ipunkt sandbox`` still
starts its fakes and two integration points, whose health is UP and whose Next Move API
answers a fagsystem. Standard library only: pytest is not installed there.
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
from pathlib import Path
from typing import Any

CHANNEL_PLUGINS = ("ipunkt_dpo", "ipunkt_dpv", "ipunkt_dpf", "ipunkt_dpi")
DEADLINE = 60.0


class Failed(Exception):
    """The smoke test found something wrong; the message says what."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(organisation: dict[str, Any], path: str) -> tuple[int, Any]:
    """A GET of the organisation's API with its fagsystem's credentials."""
    login = f"{organisation['username']}:{organisation['password']}".encode()
    request = urllib.request.Request(
        f"{organisation['url']}{path}",
        headers={"Authorization": f"Basic {base64.b64encode(login).decode()}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        data, status = error.read(), error.code
    return status, json.loads(data) if data else None


def check_integration_points(state: dict[str, Any]) -> list[str]:
    expect(state["receivers"] == {}, f"channels in a sandbox without plugins: {state}")
    seen = []
    for organisation in state["organisations"]:
        status, health = call(organisation, "/manage/health")
        expect(status == 200 and health["status"] == "UP", f"health {status}: {health}")
        expect(health["components"]["channels"]["details"] == {}, f"channels: {health}")
        status, page = call(organisation, "/api/statuses")
        expect(status == 200 and page["content"] == [], f"statuses {status}: {page}")
        status, _ = call(organisation, "/api/messages/in/peek")
        expect(status == 204, f"peek answered {status}")
        seen.append(organisation["organisation"])
    return seen


def main() -> int:
    installed = [name for name in CHANNEL_PLUGINS if importlib.util.find_spec(name)]
    expect(not installed, f"this environment should hold the core alone: {installed}")
    listing = subprocess.run([sys.executable, "-m", "ipunkt", "plugins", "--json"],
                             capture_output=True, text=True, check=True)
    services = [s for record in json.loads(listing.stdout) for s in record["services"]]
    expect(services == [], f"ipunkt plugins lists channels: {services}")
    with tempfile.TemporaryDirectory(prefix="ipunkt-core-smoke-") as scratch:
        folder = Path(scratch)
        state_file = folder / "state.json"
        log = (folder / "sandbox.log").open("wb")
        # A relative --folder, as a user types it: the configs must still find their keys.
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "ipunkt", "sandbox", "--folder", "box",
             "--state", str(state_file), "--port-a", str(free_port()),
             "--port-b", str(free_port())], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            deadline = time.monotonic() + DEADLINE
            while not state_file.exists():
                expect(sandbox.poll() is None, "the sandbox stopped")
                expect(time.monotonic() < deadline, "the sandbox did not start")
                time.sleep(0.2)
            seen = check_integration_points(json.loads(state_file.read_text()))
        except Failed:
            print((folder / "sandbox.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            sandbox.send_signal(signal.SIGTERM)
            code = sandbox.wait(30)
            log.close()
        expect(code == 0, f"the sandbox exited with {code}")
    print(json.dumps({"smoke": "the core alone", "integration_points": seen}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)

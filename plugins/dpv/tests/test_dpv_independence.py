"""The plugin needs only the core's public surface for plugins, and no other channel plugin."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from ipunkt.testing import specs_dir
from packaging.requirements import Requirement

PLUGIN = Path(__file__).resolve().parents[1]
PACKAGE = PLUGIN / "ipunkt_dpv"
PUBLIC = ("ipunkt.plugin", "ipunkt.package", "ipunkt.maskinporten")
"""What the core offers plugins (``ipunkt.testing`` is for tests only)."""


def _imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(path.name)
    return found


def test_the_package_imports_only_the_public_surface_of_the_core() -> None:
    imports = _imports()
    core = {name for name in imports if name == "ipunkt" or name.startswith("ipunkt.")}
    assert core, "the plugin imports nothing from the core?"
    assert all(name.startswith(PUBLIC) for name in core), core
    others = {name for name in imports if name.split(".")[0] in
              ("ipunkt_dpo", "ipunkt_dpf", "ipunkt_dpi")}
    assert others == set()


def test_every_distribution_it_imports_is_declared() -> None:
    declared = {
        Requirement(line).name.lower()
        for line in tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"][
            "dependencies"]
    }
    owners = packages_distributions()
    missing = {}
    for name, files in _imports().items():
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "ipunkt_dpv":
            continue
        distributions = {d.lower() for d in owners.get(top, [top])}
        if not distributions & declared:
            missing[top] = sorted(files)
    assert missing == {}, f"imported but not in plugins/dpv/pyproject.toml: {missing}"


SCRIPT = """
import asyncio, importlib.abc, json, sys, uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BLOCKED = ("ipunkt_dpo", "ipunkt_dpf", "ipunkt_dpi", "ipunkt.store", "ipunkt.app",
           "ipunkt.api", "ipunkt.gateway", "ipunkt.cli", "ipunkt.delivery")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(BLOCKED):
            raise ImportError(f"{name} is not there")
        return None

sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if name.startswith(BLOCKED):
        del sys.modules[name]

from aiohttp import web
from ipunkt.plugin import Attachment, ChannelContext, OutgoingMessage, PollableConversation
from ipunkt.plugin import ReceiptStatus
from ipunkt_dpv import DPVChannel, DPVConfig
from ipunkt_dpv.fake import FakeCorrespondence, Lifecycle

class Tokens:
    async def token(self, scopes, *, altinn=False):
        return "token"

async def main():
    fake = FakeCorrespondence.from_specs(Path(sys.argv[1]), lifecycle=Lifecycle(0))
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = DPVConfig(enabled=True,
                       correspondence_url=f"http://127.0.0.1:{port}/correspondence/api/v1")
    channel = DPVChannel(ChannelContext(organisation="910077473", config=config,
                                        tokens=Tokens()))
    await channel.start()

    async def chunks():
        yield b"%PDF-1.7 hei"

    message_id = str(uuid.uuid4())
    sbd = {"standardBusinessDocumentHeader": {"documentIdentification": {"type": "digital_dpv"}},
           "digital_dpv": {"tittel": "T", "sammendrag": "S", "innhold": "I"}}
    message = OutgoingMessage(
        message_id=message_id, conversation_id=str(uuid.uuid4()), sender="0192:910077473",
        receiver="17912099997", process="urn:no:difi:profile:digitalpost:info:ver1.0",
        document_type="urn:no:difi:digitalpost:xsd:digital::digital_dpv", sbd=sbd,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        attachments=(Attachment("brev.pdf", "application/pdf", 12, chunks),))
    result = await channel.send(message)
    updates = await channel.poll_statuses([PollableConversation(
        message_id, message.conversation_id, message.receiver, result.external_reference,
        (ReceiptStatus.SENDT,))])
    await channel.stop()
    await runner.cleanup()
    loaded = sorted(n for n in sys.modules if n.startswith("ipunkt"))
    print(json.dumps({"sent": result.external_reference in fake.correspondences,
                      "statuses": [u.status.value for u in updates],
                      "violations": fake.violations, "loaded": loaded}))

asyncio.run(main())
"""


def test_it_sends_and_polls_with_the_other_plugins_and_the_core_internals_absent() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(specs_dir())],
        capture_output=True, text=True, timeout=120, cwd=PLUGIN,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["sent"] and outcome["statuses"] == ["LEVERT"], outcome
    assert outcome["violations"] == []
    assert not any(name.startswith(("ipunkt_dpo", "ipunkt_dpf", "ipunkt_dpi"))
                   for name in outcome["loaded"])

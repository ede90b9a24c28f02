"""``ipunkt lookup ID [--process P] [--json]`` as a user runs it: a real process, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ipunkt.lookup.records import IdentifierResource
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.service_registry_fake import FakeServiceRegistry
from ipunkt.lookup.source import LookupQuery
from ipunkt.testing import free_port

ADMIN = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


def ipunkt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ipunkt", *args],
        capture_output=True, text=True, cwd=cwd, timeout=60, env=dict(os.environ),
    )


def config(tmp_path: Path, lookup: str) -> Path:
    path = tmp_path / "ipunkt.toml"
    path.write_text(f'[organisation]\nnumber = "910077473"\n\n{lookup}\n')
    return path


@pytest.fixture
def registry_file(sr_dir: Path, registry_of_fixture: Any) -> Path:
    registry: LocalRegistry = registry_of_fixture(sr_dir / "910077473.json")
    return registry.path


@pytest.fixture
def local(tmp_path: Path, registry_file: Path) -> Path:
    lookup = f'[lookup]\nsources = ["local"]\n[lookup.local]\npath = "{registry_file}"'
    return config(tmp_path, lookup)


@pytest.fixture
def fake_registry(registry_file: Path) -> Iterator[str]:
    """The fake registry on its own thread and loop, for a CLI process to ask."""
    registry = LocalRegistry(registry_file)
    registry.load()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(FakeServiceRegistry(registry).app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_a_receiver_in_the_registry_file(tmp_path: Path, local: Path) -> None:
    result = ipunkt("lookup", "-c", str(local), "0192:910077473", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["910077473  TEST - C4 (ORGL)", "answered by: local"]
    assert any(line.startswith(f"DPO  {ADMIN}   [channel: ") for line in lines)
    assert "     documents:     urn:no:difi:arkivmelding:xsd::arkivmelding" in lines
    certificate = "     certificate:   CN=DIFI test 910075918, valid until 2119-03-12"
    assert lines.count(certificate) == 3
    assert sum(line.startswith(("DPO ", "DPE ")) for line in lines) == 3


def test_json_is_the_registry_answer(tmp_path: Path, local: Path, registry_file: Path) -> None:
    result = ipunkt("lookup", "-c", str(local), "910077473", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    registry = LocalRegistry(registry_file)
    registry.load()
    expected = registry.answer(LookupQuery("910077473"), beta_features=False)
    assert json.loads(result.stdout) == expected.to_wire()
    assert IdentifierResource.model_validate_json(result.stdout) == expected


def test_one_process_and_the_not_found_exit_status(tmp_path: Path, local: Path) -> None:
    result = ipunkt("lookup", "-c", str(local), "910077473", "-p", ADMIN, "--json", cwd=tmp_path)
    records = json.loads(result.stdout)["serviceRecords"]
    assert [r["process"] for r in records] == [ADMIN]
    avtalt = "urn:no:difi:profile:avtalt:avtalt:ver1.0"
    result = ipunkt("lookup", "-c", str(local), "910077473", "--process", avtalt, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"not found: Process {avtalt} not found for receiver 910077473\n"
    result = ipunkt("lookup", "-c", str(local), "974720760", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        1, "not found: Entity with identifier '974720760' not found.\n"
    )


def test_a_malformed_identifier_is_a_usage_error(tmp_path: Path, local: Path) -> None:
    result = ipunkt("lookup", "-c", str(local), "91007747", cwd=tmp_path)
    assert result.returncode == 2
    assert "'91007747' is not a valid identifier" in result.stderr


def test_the_service_registry_answers_signed(tmp_path: Path, fake_registry: str) -> None:
    path = config(
        tmp_path, f'[lookup.service-registry]\nurl = "{fake_registry}"\nverify_signatures = true'
    )
    result = ipunkt("lookup", "-c", str(path), "910077473", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "answered by: service-registry"


def test_an_unreachable_registry_has_its_own_exit_status(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    path = config(tmp_path, f'[lookup.service-registry]\nurl = "{url}"')
    result = ipunkt("lookup", "-c", str(path), "910077473", cwd=tmp_path)
    assert result.returncode == 3
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"no answer: Service Registry unreachable at {url}/identifier")


def test_a_lookup_config_mistake_is_named(tmp_path: Path) -> None:
    path = config(tmp_path, '[lookup]\nsources = ["nowhere"]')
    result = ipunkt("lookup", "-c", str(path), "910077473", cwd=tmp_path)
    assert result.returncode == 1
    assert "config: lookup.sources: no lookup source named 'nowhere'" in result.stderr

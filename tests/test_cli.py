"""The ``ipunkt`` command as a user runs it: real processes, exit codes, output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from ipunkt import __version__
from ipunkt.testing import ServerProcess, free_port

BROKEN = "import this_module_is_not_installed\n"
PIGEON = """
from ipunkt.plugin import ChannelInfo, hookimpl

@hookimpl
def register_channels(register):
    register(ChannelInfo(service="DPP", name="Pigeon post", message_types=frozenset({"avtalt"}),
                         max_size=1000))
"""


def ipunkt(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "ipunkt", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=60,
    )


@pytest.fixture
def broken_env(install_plugin) -> dict[str, str]:
    """An environment where a deliberately broken plugin is installed."""
    site = install_plugin("broken-channel", BROKEN)
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_version_and_help() -> None:
    assert ipunkt("--version").stdout.strip() == f"ipunkt, version {__version__}"
    help_text = ipunkt("--help").stdout
    for command in ("init", "serve", "plugins"):
        assert command in help_text


def test_init_writes_a_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = ipunkt("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "ipunkt.toml").read_text()
    assert 'number = "910077473"' in text
    assert "[channels.dpo]" in text
    again = ipunkt("init", cwd=tmp_path)
    assert again.returncode == 1
    assert "exists; use --force" in again.stderr


def test_plugins_lists_the_channels_and_the_broken_plugin(broken_env) -> None:
    result = ipunkt("plugins", "--json", env=broken_env)
    assert result.returncode == 0, result.stderr
    listing = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listing["broken_channel"]["status"] == "failed"
    assert "this_module_is_not_installed" in listing["broken_channel"]["error"]
    for name in ("dpo", "dpv", "dpf", "dpi"):
        entry = listing[name]
        assert (entry["distribution"], entry["status"]) == (f"ipunkt-{name}", "ok")
        assert [s["service"] for s in entry["services"]] == [name.upper()]
    table = ipunkt("plugins", env=broken_env).stdout
    assert "broken_channel: broken-channel 1.0.0 - failed" in table
    assert "DPO (DPO: Altinn 3 broker" in table


def test_plugins_says_when_a_channel_has_no_transport(install_plugin) -> None:
    site = install_plugin("pigeon-channel", PIGEON)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listing = {e["name"]: e for e in json.loads(ipunkt("plugins", "--json", env=env).stdout)}
    assert listing["pigeon_channel"]["services"][0]["transport"] == "not implemented"
    table = ipunkt("plugins", env=env).stdout
    assert "DPP (Pigeon post): transport: not implemented" in table


def test_plugins_honours_the_disable_variable() -> None:
    result = ipunkt("plugins", "--json", env={"IPUNKT_DISABLE_PLUGINS": "ipunkt-dpv"})
    listing = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listing["dpv"]["status"] == "disabled"


def test_serve_goes_on_with_a_broken_plugin_and_stops_on_sigterm(tmp_path, broken_env) -> None:
    config = tmp_path / "ipunkt.toml"
    assert ipunkt("init", str(config)).returncode == 0
    with ServerProcess(config, free_port(), env=broken_env) as server:
        request = urllib.request.Request(
            f"{server.url}/manage/health", headers={"X-Request-Id": "trace-me"}
        )
        with urllib.request.urlopen(request) as response:
            assert response.headers["X-Request-Id"] == "trace-me"
            health = json.load(response)
        assert health["status"] == "UP"
        assert health["components"]["plugins"]["details"]["broken_channel"]["status"] == "failed"
        assert server.stop(signal.SIGTERM) == 0
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events[-1] == "ipunkt stopped"
    assert "plugin not loaded" in events
    requests = [line for line in lines if line.get("path") == "/manage/health"]
    assert requests[0]["request_id"] == "trace-me"
    assert requests[0]["status"] == 200


def test_serve_refuses_a_missing_required_plugin(tmp_path: Path, broken_env) -> None:
    config = tmp_path / "ipunkt.toml"
    ipunkt("init", str(config))
    text = config.read_text().replace(
        "required_plugins = []", 'required_plugins = ["broken-channel", "ipunkt-dpo>=0.1"]'
    )
    config.write_text(text)
    result = ipunkt("serve", "--config", str(config), env=broken_env)
    assert result.returncode == 1
    assert "required plugin 'broken-channel' is failed: import failed" in result.stderr


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "ipunkt.toml"
    config.write_text('[organisation]\nnumber = "910077473"\n[server]\nport = 99999\n')
    result = ipunkt("serve", "--config", str(config))
    assert result.returncode == 1
    assert "server.port: Input should be less than or equal to 65535" in result.stderr


def test_console_logs_on_request(tmp_path: Path) -> None:
    config = tmp_path / "ipunkt.toml"
    config.write_text('[organisation]\nnumber = "910077473"\n[logging]\nformat = "console"\n')
    with ServerProcess(config, free_port()) as server:
        assert server.stop() == 0
    output = server.output()
    assert "ipunkt ready" in output
    assert "organisation=910077473" in output
    assert not output.lstrip().startswith("{")


def test_serve_names_what_an_enabled_channel_lacks(tmp_path: Path) -> None:
    config = tmp_path / "ipunkt.toml"
    config.write_text('[organisation]\nnumber = "910077473"\n[channels.dpo]\nenabled = true\n')
    result = ipunkt("serve", "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 1
    assert "Error: DPO needs Maskinporten" in result.stderr
    assert "Traceback" not in result.stderr

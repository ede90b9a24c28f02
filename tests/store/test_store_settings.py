"""Where the store lives: relative paths are read from the config file's folder."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ipunkt.config import load_settings, parse_settings
from ipunkt.store.settings import KEY_FILE, StoreSettings, keyring

ORG = '[organisation]\nnumber = "910077473"\n'


def test_the_default_store_is_beside_the_config_file_wherever_ipunkt_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "ipunkt.toml").write_text(ORG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(folder / "ipunkt.toml")
    assert settings.store.path == folder / "data"


def test_relative_and_absolute_paths_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "ipunkt.toml").write_text(
        ORG + '[store]\npath = "var/store"\n'
        '[api]\ntls_certificate = "tls/cert.pem"\ntls_key = "/secrets/key.pem"\n'
    )
    settings = load_settings(tmp_path / "ipunkt.toml")
    assert settings.store.path == tmp_path / "var" / "store"
    assert settings.api.tls_certificate == tmp_path / "tls" / "cert.pem"
    assert settings.api.tls_key == Path("/secrets/key.pem")


def test_settings_without_a_file_keep_relative_paths() -> None:
    settings = parse_settings({"organisation": {"number": "910077473"}})
    assert settings.store.path == Path("data")
    assert not settings.store.path.is_absolute()
    assert Path(os.getcwd()) != Path(__file__).parents[2]  # tests run outside the checkout


def test_a_generated_store_key_is_made_once_whole_and_private(tmp_path: Path) -> None:
    settings = StoreSettings(path=tmp_path / "store")
    with ThreadPoolExecutor(8) as pool:  # several processes starting at once agree on one key
        rings = list(pool.map(lambda _: keyring(settings), range(8)))
    key_file = tmp_path / "store" / KEY_FILE
    assert len({ring.current.encoded() for ring in rings}) == 1
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "store").iterdir()] == [KEY_FILE]  # nothing left aside
    assert keyring(settings).current.encoded() == rings[0].current.encoded()
    key_file.write_text("")  # as a file cut short by a crash would be
    with pytest.raises(ValueError, match="is empty; delete it to generate a new store key"):
        keyring(settings)


def test_no_new_store_key_is_made_for_payloads_sealed_with_a_lost_one(tmp_path: Path) -> None:
    settings = StoreSettings(path=tmp_path / "store")
    (tmp_path / "store" / "payloads" / "ab").mkdir(parents=True)
    (tmp_path / "store" / "payloads" / "ab" / "ab12").write_bytes(b"sealed")
    with pytest.raises(ValueError, match=r"store\.key is missing, but .* holds payloads"):
        keyring(settings)
    assert not (tmp_path / "store" / "store.key").exists()

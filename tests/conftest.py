from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ipunkt.testing import specs_dir as _specs_dir


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own empty folder, so nothing it starts writes into the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    """The published specs (``IPUNKT_SPECS``); skips the test when they are missing."""
    return _specs_dir()


FakeDistribution = Callable[..., Path]


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site directory on ``sys.path`` where tests install throwaway plugin distributions."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(site)):
            del sys.modules[name]


@pytest.fixture
def install_plugin(fake_site: Path) -> FakeDistribution:
    """Install a plugin distribution (metadata, entry point, module) into ``fake_site``."""

    def install(
        name: str,
        source: str,
        *,
        version: str = "1.0.0",
        requires: tuple[str, ...] = ("ipunkt>=0.1",),
        entry: str | None = None,
    ) -> Path:
        module = name.replace("-", "_")
        (fake_site / f"{module}.py").write_text(textwrap.dedent(source))
        info = fake_site / f"{module}-{version}.dist-info"
        info.mkdir()
        requirements = "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requirements}"
        )
        (info / "entry_points.txt").write_text(f"[ipunkt]\n{entry or module} = {module}\n")
        return fake_site

    return install

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ipunkt.package import testcerts

SENDER = "910077473"
RECEIVER = "910075918"

Run = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture(scope="session")
def pki() -> testcerts.ThrowawayPki:
    """A root CA, an issuing CA below it, and the sender's and receiver's certificates."""
    return testcerts.make_pki(SENDER, RECEIVER)


@pytest.fixture(scope="session")
def pki_files(
    pki: testcerts.ThrowawayPki, tmp_path_factory: pytest.TempPathFactory
) -> testcerts.WrittenPki:
    """The PKI as PEM and PKCS#12 files, for OpenSSL, xmlsec1 and the CLI."""
    return testcerts.write_pki(pki, tmp_path_factory.mktemp("pki"), password=b"test-secret")


@pytest.fixture(scope="session")
def run() -> Run:
    """Run an independent implementation (openssl, xmlsec1); fail the test with its output."""

    def run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run([str(c) for c in command], capture_output=True, check=False)
        if check and result.returncode != 0:
            pytest.fail(
                f"{command[0]} failed ({result.returncode}): {result.stderr.decode()[-2000:]}"
            )
        return result

    return run


def _tool(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install}); interoperability is not checked"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def openssl() -> str:
    return _tool("openssl", "apt-get install openssl")


@pytest.fixture(scope="session")
def xmlsec1() -> str:
    return _tool("xmlsec1", "apt-get install xmlsec1")

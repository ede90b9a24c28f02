from __future__ import annotations

import pytest
from ipunkt.package import testcerts

ORG = "910077473"
CUSTOMER = "910075918"
STRANGER = "987654321"


@pytest.fixture(scope="session")
def pki() -> testcerts.ThrowawayPki:
    """Certificates for our organisation, a customer it acts for, and a stranger."""
    return testcerts.make_pki(ORG, CUSTOMER, STRANGER)

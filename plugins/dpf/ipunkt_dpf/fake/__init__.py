"""A faithful fake of KS Fiks SvarUt (REST v3) and SvarInn, for tests and the sandbox.

Run it standalone with ``python -m ipunkt_dpf.fake --port 8090``, or in-process::

    fake = FakeSvarUt(tmp_path)
    account = fake.add_account("910075918")            # the sender's kontoId and integration
    fake.add_mailbox("910077473", receiver_certificate)  # the receiver's SvarInn
    runner = await serve(fake, "127.0.0.1", port)
"""

from __future__ import annotations

from ipunkt_dpf.fake.faults import Faults, Kind
from ipunkt_dpf.fake.service import (
    Account,
    FakeSvarUt,
    Mailbox,
    RecordedRequest,
    Stored,
    serve,
    stored_documents,
)

__all__ = [
    "Account",
    "FakeSvarUt",
    "Faults",
    "Kind",
    "Mailbox",
    "RecordedRequest",
    "Stored",
    "serve",
    "stored_documents",
]

"""``python -m ipunkt_dpf.fake``: the fake SvarUt and SvarInn on a port of its own.

It writes SvarUt's certificate (for the receivers' DPF service records) into its directory and
prints one JSON line describing the accounts and mailboxes it serves, then runs until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path

from cryptography import x509

from ipunkt_dpf.fake.service import FakeSvarUt, serve


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ipunkt_dpf.fake", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--dir", type=Path, help="where forsendelser are kept (default: temp)")
    parser.add_argument(
        "--account", action="append", default=[], metavar="ORGNR[:KONTO:INTEGRASJON:PASSORD]",
        help="an organisation that sends through SvarUt; missing parts are generated",
    )
    parser.add_argument(
        "--mailbox", action="append", default=[], metavar="ORGNR:CERT.pem[:USER:PASSWORD]",
        help="an organisation that receives through SvarInn, with its certificate",
    )
    parser.add_argument("--processing-delay", type=float, default=0.0,
                        help="seconds a new forsendelse stays MOTTATT")
    return parser.parse_args()


async def _run(arguments: argparse.Namespace) -> None:
    directory = arguments.dir or Path(tempfile.mkdtemp(prefix="ipunkt-fake-svarut-"))
    fake = FakeSvarUt(directory, processing_delay=arguments.processing_delay)
    certificate = directory / "svarut-certificate.pem"
    certificate.write_text(fake.certificate_pem)
    accounts = []
    for spec in arguments.account:
        organisation, *rest = spec.split(":")
        konto, integration, password = [*rest, None, None, None][:3]
        account = fake.add_account(organisation, konto_id=konto, integration_id=integration,
                                   integration_password=password)
        accounts.append(account.__dict__ | {"address": list(account.address)})
    mailboxes = []
    for spec in arguments.mailbox:
        organisation, pem, *rest = spec.split(":")
        username, password = [*rest, None, None][:2]
        loaded = x509.load_pem_x509_certificate(Path(pem).read_bytes())
        mailbox = fake.add_mailbox(organisation, loaded, username=username, password=password)
        mailboxes.append({"organisation": organisation, "username": mailbox.username,
                          "password": mailbox.password})
    runner = await serve(fake, arguments.host, arguments.port)
    url = f"http://{arguments.host}:{arguments.port}"
    print(json.dumps({"url": url, "svarinn_url": f"{url}/tjenester/svarinn",
                      "certificate": str(certificate), "dir": str(directory),
                      "accounts": accounts, "mailboxes": mailboxes}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    asyncio.run(_run(_arguments()))


if __name__ == "__main__":
    main()

"""``ipunkt sandbox``: every fake and two integration points on one machine.

A new user watches a message travel end to end without any account anywhere: a throwaway CA
issues certificates for two organisations, A and B; the core's fakes of Maskinporten (with
Altinn's token exchange) and of the Service Registry run beside each installed channel
plugin's fakes (registered through the ``register_sandbox`` hook); and two integration points
run with configs written for them. With ``fakes_only``, the integration points are left to
the user (``ipunkt serve --config <written config>``), so that they can be stopped and
restarted on their data while the fakes keep running. With ``faults``, the fakes misbehave
at the planned rates (see :mod:`ipunkt.fault_injection`).

Started again on a folder it ran in before, the sandbox resumes: it keeps its CA, the
organisations' keys, the signing keys of the fake Maskinporten (tokens issued before still
verify) and of the fake Service Registry (integration points keep the key they fetched), and
each fake's port (``sandbox-ports.json``), so the configs it writes come out the same and
integration points running on them carry on. A fake that keeps its state on disk (the DPO
broker) carries on too.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
import tomli_w
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ipunkt.app import create_app
from ipunkt.fault_injection import FaultInjector, FaultPlan
from ipunkt.gateway import load_gateway
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.service_registry_fake import FakeServiceRegistry
from ipunkt.maskinporten.fake import EXCHANGE_PATH, FakeClient, FakeMaskinporten, new_signing_key
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey, load_key
from ipunkt.package.testcerts import CertificateAuthority, make_ca, pem
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import SandboxChannel, SandboxEnvironment, SandboxParty
from ipunkt.plugins import PluginHost

log = structlog.get_logger(__name__)

ORGANISATIONS = (("910077473", "Sandkasse A"), ("910075918", "Sandkasse B"))
"""The organisations whose integration points the sandbox runs (test organisation numbers)."""
PASSWORD = "sandbox"
"""Every sandbox integration point's API password (the user name is its letter)."""
CA_CERTIFICATE = "sandbox-ca.pem"
CA_KEY = Path("keys") / "sandbox-ca.key.pem"
PORTS = "sandbox-ports.json"
"""Each fake's port by name, so that a restarted sandbox serves it where the configs say."""
SIGNING_KEYS = {"tokens": Path("keys") / "maskinporten-tokens.key.pem",
                "altinn": Path("keys") / "maskinporten-altinn.key.pem",
                "registry": Path("keys") / "service-registry.key.pem"}
"""The fake Maskinporten's keys for its access tokens and its exchanged Altinn tokens, and the
fake Service Registry's for its answers (integration points keep the key they fetched)."""


@dataclass
class Organisation:
    letter: str
    party: SandboxParty
    port: int
    config: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        return {
            "letter": self.letter,
            "organisation": self.party.number,
            "name": self.party.name,
            "url": self.url,
            "username": self.letter.lower(),
            "password": PASSWORD,
            "config": str(self.config),
        }


@dataclass
class Sandbox:
    """The sandbox's fakes and (unless ``fakes_only``) its two integration points."""

    folder: Path
    host: PluginHost
    ports: Sequence[int] = (9093, 9094)
    fakes_only: bool = False
    specs: Path | None = None
    faults: FaultPlan | None = None
    """Faults the fakes inject into their answers; None: they behave."""
    organisations: list[Organisation] = field(default_factory=list)
    channels: list[SandboxChannel] = field(default_factory=list)
    fakes: dict[str, str] = field(default_factory=dict)
    injectors: dict[str, FaultInjector] = field(default_factory=dict)
    """The faults of each faulty fake, by its name (they count what they injected)."""
    _runners: list[web.AppRunner] = field(default_factory=list)
    _ports: dict[str, int] = field(default_factory=dict)
    _resumed: bool = False

    async def start(self) -> dict[str, Any]:
        """Start everything; returns the state (what :meth:`state` answers)."""
        # The configs name files in this folder and are read from inside it: absolute paths.
        self.folder = self.folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        ca = self._certificate_authority()
        self._ports = _recorded_ports(self.folder / PORTS) if self._resumed else {}
        anchor = self.folder / CA_CERTIFICATE
        parties = [self._party(ca, number, name) for number, name in ORGANISATIONS]
        maskinporten = FakeMaskinporten(
            trust=TrustStore([ca.certificate]),
            key=self._signing_key(SIGNING_KEYS["tokens"]),
            altinn_key=self._signing_key(SIGNING_KEYS["altinn"]),
        )
        maskinporten_url = await self.serve("maskinporten", maskinporten.app())
        environment = SandboxEnvironment(
            folder=self.folder,
            organisations=tuple(parties),
            trust_anchor=anchor,
            tokens=maskinporten,
            specs=self.specs,
            serve=self.serve,
            issue=lambda number, name: self._party(ca, number, name),
        )
        for service, part in sorted(self.host.sandbox_parts.items()):
            channel = await part.setup(environment)
            self.channels.append(channel)
            self.fakes.update(channel.fakes)
            log.info("sandbox channel ready", channel=service, fakes=channel.fakes)
        scopes = {scope for channel in self.channels for scope in channel.scopes}
        scopes |= set(self._registry_scopes())
        for party in parties:
            maskinporten.register(FakeClient(
                f"MOVE_IP_{party.number}", party.number, frozenset(scopes),
                system_users=frozenset({_system_user(party.number)}),
            ))
        registry = self.folder / "registry.toml"
        registry.write_text(tomli_w.dumps({"receiver": self._receivers(parties)}))
        service_registry = FakeServiceRegistry(LocalRegistry(registry), require_token=True,
                                               key=self._signing_key(SIGNING_KEYS["registry"]))
        registry_url = await self.serve("service-registry", service_registry.app())
        for letter, party, port in zip("AB", parties, self.ports, strict=True):
            config = self._write_config(letter, party, port, registry_url, maskinporten_url)
            self.organisations.append(Organisation(letter, party, port, config))
        if not self.fakes_only:
            for organisation in self.organisations:
                await self._run_integration_point(organisation)
        return self.state()

    async def serve(self, name: str, app: web.Application, port: int = 0) -> str:
        """Run ``app`` on loopback; its base URL is recorded under ``name``, and its port in
        the folder: a resumed sandbox serves it on the same port."""
        injector = self.faults.injector(name) if self.faults is not None else None
        if injector is not None:
            injector.install(app)
            self.injectors[name] = injector
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        port = port or self._ports.get(name, 0)
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(exc.errno, f"the sandbox's {name} cannot listen on port {port} (kept "
                                     f"in {self.folder / PORTS}): {exc.strerror}") from exc
        bound = runner.addresses[0][1]
        url = f"http://127.0.0.1:{bound}"
        self.fakes[name] = url
        self._ports[name] = bound
        _write_atomically(self.folder / PORTS, json.dumps(self._ports, indent=2).encode() + b"\n")
        return url

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    def state(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "fakes_only": self.fakes_only,
            "fakes": dict(self.fakes),
            "faults": self.faults.to_state() if self.faults is not None else None,
            "organisations": [o.state() for o in self.organisations],
            "receivers": {
                channel.service: [dict(sample) for sample in channel.samples]
                for channel in self.channels
            },
        }

    def _certificate_authority(self) -> CertificateAuthority:
        """The folder's CA when it has one (a resume), else a new one, written there."""
        certificate_path, key_path = self.folder / CA_CERTIFICATE, self.folder / CA_KEY
        if certificate_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if isinstance(key, rsa.RSAPrivateKey):
                self._resumed = True
                log.info("sandbox resumes", folder=str(self.folder))
                return CertificateAuthority(
                    key, x509.load_pem_x509_certificate(certificate_path.read_bytes()))
        ca = make_ca("ipunkt sandbox CA")
        _write_private(key_path, _key_pem(ca.private_key))
        _write_atomically(certificate_path, pem(ca.certificate))
        return ca

    def _signing_key(self, relative: Path) -> rsa.RSAPrivateKey:
        """A key kept in the folder: the one there on a resume, else a new one."""
        path = self.folder / relative
        if self._resumed and path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(key, rsa.RSAPrivateKey):
                return key
        key = new_signing_key()
        _write_private(path, _key_pem(key))
        return key

    def _party(self, ca: CertificateAuthority, number: str, name: str) -> SandboxParty:
        path = self.folder / "keys" / f"{number}.pem"
        key = _issued_before(path, ca) if self._resumed else None
        if key is None:
            key = ca.issue(number, name)
            _write_private(path, _key_pem(key.private_key) + pem(key.certificate, *key.chain))
        return SandboxParty(number, name, path, pem(key.certificate).decode())

    def _receivers(self, parties: Sequence[SandboxParty]) -> list[dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {
            p.number: {"identifier": p.number, "name": p.name, "record": []} for p in parties
        }
        for channel in self.channels:
            for receiver in channel.receivers:
                entry = merged.setdefault(
                    receiver["identifier"],
                    {key: value for key, value in receiver.items() if key != "record"}
                    | {"record": []},
                )
                entry["record"].extend(receiver.get("record", []))
        return [entry for entry in merged.values() if entry["record"]]

    def _write_config(
        self, letter: str, party: SandboxParty, port: int, registry_url: str,
        maskinporten_url: str,
    ) -> Path:
        channels: dict[str, Any] = {}
        for channel in self.channels:
            table = dict(channel.channel_configs.get(party.number, {}))
            channels[channel.service.lower()] = {"enabled": True, **table}
        config: dict[str, Any] = {
            "organisation": {"number": party.number, "name": party.name,
                             "key": str(party.key_file)},
            "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout": 5},
            "api": {"username": letter.lower(), "password": PASSWORD},
            "store": {"path": str(self.folder / f"data-{letter.lower()}")},
            "lookup": {"sources": ["service-registry"],
                       "service-registry": {"url": registry_url, "cache_ttl": 5,
                                            "scopes": self._registry_scopes()}},
            "maskinporten": {"token_url": f"{maskinporten_url}/token",
                             "altinn_exchange_url": f"{maskinporten_url}{EXCHANGE_PATH}",
                             "system_user": _system_user(party.number)},
            "delivery": {"retry_initial_seconds": 2, "retry_max_seconds": 30},
            "channels": channels,
        }
        _merge(config, self._settings())
        path = self.folder / f"ipunkt-{letter.lower()}.toml"
        path.write_text(f"# ipunkt sandbox: organisation {letter}\n" + tomli_w.dumps(config))
        return path

    def _settings(self) -> dict[str, Any]:
        """The parts' extra config tables, merged; a key two parts disagree on is an error."""
        merged: dict[str, Any] = {}
        for channel in self.channels:
            _merge(merged, channel.settings, conflict=channel.service)
        return merged

    def _registry_scopes(self) -> list[str]:
        return sorted(f"eformidling:{channel.service.lower()}" for channel in self.channels)

    async def _run_integration_point(self, organisation: Organisation) -> None:
        gateway = load_gateway(organisation.config)
        app = create_app(gateway.settings, gateway.plugins, gateway.channel_configs, gateway.key)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", organisation.port).start()
        self._runners.append(runner)


def _system_user(organisation: str) -> str:
    """The Altinn system user's name, as the original's onboarding names it."""
    return f"{organisation}_integrasjonspunkt"


def _merge(
    into: dict[str, Any], tables: Mapping[str, Any], *, conflict: str | None = None,
    path: str = "",
) -> None:
    """Merge ``tables`` into ``into`` table by table; a value replaces the one there, unless
    ``conflict`` names the part giving it: then a different value already there is refused."""
    for key, value in tables.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key, {}), dict):
            _merge(into.setdefault(key, {}), value, conflict=conflict, path=f"{where}.")
        elif conflict is not None and key in into and into[key] != value:
            raise ValueError(f"sandbox part {conflict} sets {where} to {value!r}, "
                             f"but another part set it to {into[key]!r}")
        else:
            into[key] = value


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issued_before(path: Path, ca: CertificateAuthority) -> OrganisationKey | None:
    """The organisation key a previous run wrote, if the CA issued it and it is still valid."""
    if not path.exists():
        return None
    try:
        key = load_key(path)
    except PackageError:
        return None
    certificate = key.certificate
    try:
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        return None
    return key


def _recorded_ports(path: Path) -> dict[str, int]:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {str(name): port for name, port in recorded.items() if isinstance(port, int)}


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, data, mode=0o600)


def _write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write a file whole or not at all: the sandbox may be killed at any moment."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as sink:
        sink.write(data)
        sink.flush()
        os.fsync(sink.fileno())
    os.replace(temporary, path)


def describe(state: Mapping[str, Any]) -> str:
    """The state as a user reads it on the terminal."""
    lines = ["ipunkt sandbox is running. Stop it with Ctrl-C.", ""]
    for organisation in state["organisations"]:
        run = ("" if not state["fakes_only"]
               else f"  (start it: ipunkt serve --config {organisation['config']})")
        lines.append(
            f"  {organisation['letter']}: {organisation['name']}, organisation "
            f"{organisation['organisation']}, {organisation['url']}, user "
            f"{organisation['username']}, password {organisation['password']}{run}"
        )
    lines += ["", "Sample receivers by channel:"]
    for service, samples in sorted(state["receivers"].items()):
        for sample in samples:
            lines.append(f"  {service}: {sample['identifier']} {sample['name']}"
                         f"{' - ' + sample['note'] if sample.get('note') else ''}")
    lines += ["", "Fakes:"]
    lines += [f"  {name}: {url}" for name, url in sorted(state["fakes"].items())]
    faults = state.get("faults")
    if faults:
        lines += ["", f"Faults (seed {faults['seed']}):"]
        lines += [f"  {name}: " + ", ".join(f"{kind}={rate:g}" for kind, rate in kinds.items())
                  for name, kinds in sorted(faults["rates"].items())]
    return "\n".join(lines)


def write_state(state: Mapping[str, Any], path: Path) -> None:
    """Written whole or not at all: a script waits for it to know the sandbox is up."""
    _write_atomically(path, (json.dumps(state, indent=2) + "\n").encode())


async def run_forever(sandbox: Sandbox, state_file: Path | None) -> None:
    """Start the sandbox, report it, and run until cancelled (Ctrl-C or SIGTERM)."""
    try:
        state = await sandbox.start()
        if state_file is not None:
            write_state(state, state_file)
        print(describe(state), flush=True)
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()

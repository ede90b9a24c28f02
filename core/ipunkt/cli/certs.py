"""``ipunkt certs``: throwaway certificates for tests and the sandbox; checks of real keys."""

from __future__ import annotations

from pathlib import Path

import click

from ipunkt.cli.package import Unchecked, key_options, load_our_key
from ipunkt.package import testcerts
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import check_key
from ipunkt.package.trust import TrustStore, describe


@click.group("certs")
def certs_group() -> None:
    """Make throwaway certificates, or check an organisation's key."""


def _org_number(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not (value.isdigit() and len(value) == 9):
            raise click.BadParameter(f"{value!r} is not a 9-digit organisation number")
    return values


@certs_group.command("make")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory."
)
@click.option(
    "--org",
    "orgs",
    required=True,
    multiple=True,
    callback=_org_number,
    help="An organisation number to issue a certificate for; repeat for several.",
)
@click.option(
    "--password",
    default="ipunkt-test",
    show_default=True,
    help="The password of the PKCS#12 files (they are for tests: it is not a secret).",
)
@click.option("--days", default=365, show_default=True, help="Validity of the certificates.")
@click.option("--force", is_flag=True, help="Overwrite files already in --out.")
def make_command(out: Path, orgs: tuple[str, ...], password: str, days: int, force: bool) -> None:
    """Make a throwaway root CA, an issuing CA and a certificate for each --org.

    Writes root-ca.pem (the trust anchor), issuing-ca.pem, and for each organisation
    ORG.pem (certificate and chain), ORG.key.pem and ORG.p12. Never use them in production.
    """
    existing = [p.name for p in out.glob("*.p12")] + [p.name for p in out.glob("*.pem")]
    if existing and not force:
        raise Unchecked(f"{out} already holds {', '.join(sorted(existing))}; use --force")
    root = testcerts.make_ca()
    ca = root.subordinate("ipunkt test issuing CA")
    pki = testcerts.ThrowawayPki(root, ca, {org: ca.issue(org, valid_days=days) for org in orgs})
    written = testcerts.write_pki(pki, out, password=password.encode())
    click.echo(f"trust anchor: {written.root}")
    for org, files in written.keys.items():
        click.echo(f"{org}: {files.pkcs12} (password {password!r})")
        click.echo(f"    {files.certificate}, {files.private_key}")


@certs_group.command("check")
@key_options
@click.option(
    "--trust",
    "trust_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA certificates the key's certificate must chain to.",
)
def check_command(
    key_path: Path,
    certificate: Path | None,
    password_env: str | None,
    password_file: Path | None,
    trust_paths: tuple[Path, ...],
) -> None:
    """Check our key as ipunkt does at start-up: expiry, key usage, chain.

    Exit code 0 when the key can be used (warnings are printed), 1 when it cannot.
    """
    key = load_our_key(key_path, certificate, password_env, password_file)
    try:
        trust = TrustStore.load(*trust_paths) if trust_paths else None
        warnings = check_key(key, trust=trust)
    except PackageError as exc:
        click.echo(f"{key_path.name}: NOT usable: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{key_path.name}: usable")
    click.echo(f"  certificate:  {describe(key.certificate)}")
    click.echo(f"  organisation: {key.organisation_number or 'none in the subject'}")
    click.echo(f"  valid until:  {key.certificate.not_valid_after_utc.isoformat()}")
    for issuer in key.chain:
        click.echo(f"  chain:        {issuer.subject.rfc4514_string()}")
    if trust is None:
        click.echo("  chain not checked against trust anchors (give --trust)")
    for warning in warnings:
        click.echo(f"  warning: {warning}")

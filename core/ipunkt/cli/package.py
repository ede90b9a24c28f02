"""``ipunkt package``: open a sealed package to see what is in it and what is wrong; seal one.

Exit codes: 0 the package is sound; 1 it is not (the reason is printed); 2 it could not be
checked (a bad option, key or trust file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from ipunkt.package.asic import SignatureFormat
from ipunkt.package.cms import CmsReader, KeyTransport
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey, load_key, read_password
from ipunkt.package.manifest import (
    IpManifest,
    MainDocument,
    ManifestError,
    SdpDocument,
    SdpManifest,
)
from ipunkt.package.seal import Document, Opened, open_package, seal
from ipunkt.package.trust import TrustStore, describe, load_certificates, organisation_number

UNSOUND = 1
UNCHECKED = 2


class Unchecked(click.ClickException):
    exit_code = UNCHECKED


def key_options(function: Any) -> Any:
    """``--key``, ``--certificate``, ``--password-env``, ``--password-file``."""
    for option in reversed(
        [
            click.option(
                "--key",
                "key_path",
                required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Our key: PKCS#12, or PEM with the key (and certificates).",
            ),
            click.option(
                "--certificate",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Our certificate (and chain), when --key holds only a PEM key.",
            ),
            click.option("--password-env", help="Environment variable holding the key's password."),
            click.option(
                "--password-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="File holding the key's password.",
            ),
        ]
    ):
        function = option(function)
    return function


def load_our_key(
    key_path: Path, certificate: Path | None, password_env: str | None, password_file: Path | None
) -> OrganisationKey:
    try:
        password = read_password(env=password_env, file=password_file)
        return load_key(key_path, password=password, certificate=certificate)
    except PackageError as exc:
        raise Unchecked(str(exc)) from None


def _report(opened: Opened, reader: CmsReader, trust: TrustStore | None) -> dict[str, Any]:
    contents = opened.contents
    manifest: dict[str, Any] | None = None
    if isinstance(opened.manifest, IpManifest):
        main = opened.manifest.main_document
        manifest = {
            "kind": "integrasjonspunkt",
            "receiver": opened.manifest.receiver,
            "sender": opened.manifest.sender,
            "main_document": main.href if main else None,
        }
    elif isinstance(opened.manifest, SdpManifest):
        manifest = {
            "kind": "sdp",
            "sender": opened.manifest.sender,
            "postkasseadresse": opened.manifest.postkasseadresse,
            "main_document": opened.manifest.main_document.href,
            "attachments": [d.href for d in opened.manifest.attachments],
        }
    return {
        "sound": True,
        "encrypted_to": [r.describe() for r in reader.recipients],
        "content_encryption": reader.content_algorithm,
        "signature": contents.signature_format.value,
        "signature_file": contents.signature_file,
        "signer": describe(contents.signer),
        "signer_organisation": organisation_number(contents.signer),
        "signer_trusted": contents.trusted,
        "trust_anchors": len(trust.anchors) if trust else 0,
        "manifest": manifest,
        "files": [
            {"name": f.name, "mime": f.mime, "size": f.size, "sha256": f.sha256.hex()}
            for f in contents.files
        ],
        "unsigned_metadata": contents.unsigned_metadata,
        "extracted": [str(p) for p in opened.paths],
    }


def _print(report: dict[str, Any], name: str) -> None:
    click.echo(f"{name}: sound")
    for recipient in report["encrypted_to"]:
        click.echo(f"  encrypted to:  {recipient}, content {report['content_encryption']}")
    trusted = (
        f"chain checked against {report['trust_anchors']} trust anchor(s)"
        if report["signer_trusted"]
        else "signer NOT checked against trust anchors (--no-chain-check)"
    )
    click.echo(f"  signed by:     {report['signer']}")
    click.echo(
        f"                 {report['signature'].upper()} in {report['signature_file']}; {trusted}"
    )
    manifest = report["manifest"]
    if manifest:
        parts = ", ".join(f"{k} {v}" for k, v in manifest.items() if k != "kind" and v)
        click.echo(f"  manifest:      {manifest['kind']}: {parts}")
    click.echo("  files:")
    for f in report["files"]:
        click.echo(f"    {f['name']}  {f['mime'] or '?'}  {f['size']} bytes  sha256 {f['sha256']}")
    for name_ in report["unsigned_metadata"]:
        click.echo(f"  unsigned:      {name_} (not covered by the signature)")
    if report["extracted"]:
        click.echo(f"  extracted {len(report['extracted'])} files")


@click.group("package")
def package_group() -> None:
    """Open (decrypt and verify) or seal eFormidling packages: ASiC-E inside CMS."""


@package_group.command("open")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@key_options
@click.option(
    "--trust",
    "trust_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA certificates (PEM or DER; roots and intermediates) the signer must chain to.",
)
@click.option(
    "--no-chain-check",
    is_flag=True,
    help="Verify the signature without checking whom the signer's certificate is from.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Extract the files into this directory (only when the package is sound).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def open_command(
    file: Path,
    key_path: Path,
    certificate: Path | None,
    password_env: str | None,
    password_file: Path | None,
    trust_paths: tuple[Path, ...],
    no_chain_check: bool,
    out: Path | None,
    as_json: bool,
) -> None:
    """Decrypt FILE with our key, check every digest and the signature, list or extract it.

    Exit code 0 only for a sound package; 1 says what is wrong with it; 2 when it could not be
    checked.
    """
    if not trust_paths and not no_chain_check:
        raise Unchecked("give --trust CA.pem (whom signers must chain to) or --no-chain-check")
    key = load_our_key(key_path, certificate, password_env, password_file)
    try:
        trust = TrustStore.load(*trust_paths) if trust_paths else None
    except PackageError as exc:
        raise Unchecked(str(exc)) from None
    try:
        with file.open("rb") as header_source:
            reader = CmsReader(header_source)
        with file.open("rb") as source:
            opened = open_package(source, key=key, trust=trust, destination=out)
    except PackageError as exc:
        if as_json:
            click.echo(json.dumps({"sound": False, "error": str(exc), "kind": type(exc).__name__}))
        else:
            click.echo(f"{file.name}: NOT sound: {exc}", err=True)
        raise SystemExit(UNSOUND) from None
    report = _report(opened, reader, trust)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report, file.name)


def _recipient(path: Path) -> x509.Certificate:
    try:
        return load_certificates(path.read_bytes(), source=str(path))[0]
    except PackageError as exc:
        raise Unchecked(str(exc)) from None


def _documents(directory: Path, main: str | None) -> list[Document]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise Unchecked(f"{directory} has no files to seal")
    documents = [Document.from_path(p, name=p.relative_to(directory).as_posix()) for p in files]
    names = [d.name for d in documents]
    first = main or ("arkivmelding.xml" if "arkivmelding.xml" in names else names[0])
    if first not in names:
        raise Unchecked(f"the main document {first} is not in {directory}")
    return sorted(documents, key=lambda d: d.name != first)


@package_group.command("seal")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--recipient",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The receiver's certificate (PEM or DER): the package is encrypted to it.",
)
@key_options
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The package."
)
@click.option(
    "--signature",
    type=click.Choice([s.value for s in SignatureFormat]),
    default=SignatureFormat.CADES.value,
    show_default=True,
    help="cades for DPO and DPF, xades for DPI.",
)
@click.option("--main", help="The main document (default: arkivmelding.xml, or the first file).")
@click.option("--postkasseadresse", help="DPI: the recipient's postbox address.")
@click.option("--title", help="The main document's title.")
@click.option("--pkcs1v15", is_flag=True, help="RSA PKCS#1 v1.5 key transport instead of OAEP.")
def seal_command(
    directory: Path,
    recipient: Path,
    key_path: Path,
    certificate: Path | None,
    password_env: str | None,
    password_file: Path | None,
    out: Path,
    signature: str,
    main: str | None,
    postkasseadresse: str | None,
    title: str | None,
    pkcs1v15: bool,
) -> None:
    """Seal the files in DIRECTORY for the holder of the --recipient certificate.

    The manifest.xml names the main document; sender and receiver come from the certificates'
    organisation numbers. XAdES packages get DPI's SDP manifest, CAdES packages the
    integration point's.
    """
    key = load_our_key(key_path, certificate, password_env, password_file)
    receiver = _recipient(recipient)
    documents = _documents(directory, main)
    sender_org, receiver_org = key.organisation_number, organisation_number(receiver)
    if sender_org is None:
        raise Unchecked("our certificate carries no organisation number")
    form = SignatureFormat(signature)
    try:
        manifest: IpManifest | SdpManifest
        if form is SignatureFormat.XADES:
            manifest = SdpManifest(
                sender=sender_org,
                main_document=SdpDocument(documents[0].name, documents[0].mime, title),
                attachments=tuple(SdpDocument(d.name, d.mime) for d in documents[1:]),
                postkasseadresse=postkasseadresse,
            )
        else:
            if receiver_org is None:
                raise Unchecked("the recipient's certificate carries no organisation number")
            manifest = IpManifest(
                receiver_org,
                sender_org,
                MainDocument(documents[0].name, documents[0].mime, title or "Hoveddokument"),
            )
    except ManifestError as exc:
        raise Unchecked(str(exc)) from None
    transport = KeyTransport.PKCS1V15 if pkcs1v15 else KeyTransport.OAEP
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as sink:
            sealed = seal(
                documents,
                key=key,
                recipient=receiver,
                out=sink,
                manifest=manifest,
                signature=form,
                key_transport=transport,
                fingerprint=True,
            )
        partial.replace(out)
    except PackageError as exc:
        partial.unlink(missing_ok=True)
        raise Unchecked(str(exc)) from None
    click.echo(
        f"sealed {len(sealed.files)} files into {out} ({sealed.size} bytes, "
        f"{form.value}, {transport.value}) for {describe(receiver)}"
    )
    assert sealed.sha256 is not None
    click.echo(f"sha256 {sealed.sha256.hex()}")

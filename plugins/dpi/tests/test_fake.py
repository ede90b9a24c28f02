"""The fake access point itself: it refuses what the real one (and the providers) would refuse,
with problem+json, and its inbox, paging, control API and stand-alone mode work."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ipunkt.package import jws
from ipunkt.package.asic import SignatureFormat
from ipunkt.package.manifest import IpManifest
from ipunkt.package.seal import Document, seal
from ipunkt.testing import free_port
from ipunkt_dpi.fake import Fault, Step
from ipunkt_dpi.shipment import plan


class Upload:
    """A sound upload, made with the plugin's own parts, to spoil one piece at a time."""

    def __init__(
        self,
        kit: Any,
        fake: Any,
        key: Any,
        token: str,
        *,
        manifest: Any = None,
        documents: list[Document] | None = None,
    ) -> None:
        self.message = kit.message(
            "digital",
            kit.service_record(fake),
            kit.digital_body(),
            [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        )
        shipment = plan(self.message)
        out = io.BytesIO()
        sealed = seal(
            documents
            or [Document("vedtak.pdf", "application/pdf", lambda: [kit.PDF], len(kit.PDF))],
            key=key,
            recipient=shipment.recipient,
            out=out,
            manifest=manifest or shipment.manifest,
            signature=SignatureFormat.XADES,
            fingerprint=True,
        )
        self.package = out.getvalue()
        self.token = token
        self.payload = shipment.business_document(sealed.sha256 or b"", token).wire()
        self.key = key

    def jwt(self, payload: dict[str, Any] | None = None) -> str:
        return jws.sign(payload or self.payload, self.key)

    def form(
        self, jwt: str | None = None, package: bytes | None = None, extra: bool = False
    ) -> aiohttp.MultipartWriter:
        form = aiohttp.MultipartWriter("form-data")
        part = form.append(jwt or self.jwt(), {"Content-Type": "application/jwt"})
        part.set_content_disposition("form-data", name="forretningsmelding", filename="sbd.jwt")
        part = form.append(
            package if package is not None else self.package, {"Content-Type": "application/cms"}
        )
        part.set_content_disposition("form-data", name="dokumentpakke", filename="asic.cms")
        if extra:
            part = form.append("x", {"Content-Type": "text/plain"})
            part.set_content_disposition("form-data", name="vedlegg")
        return form


@pytest.fixture
async def post(access_point: str, kit: Any) -> Any:
    async with aiohttp.ClientSession() as session:

        async def post(form: Any, token: str | None, kanal: str = "k") -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.post(
                f"{access_point}/messages/out", data=form, headers=headers, params={"kanal": kanal}
            ) as response:
                body = await response.read()
                assert response.status == 201 or response.content_type == "application/problem+json"
                return response.status, json.loads(body) if body else None

        yield post


@pytest.fixture
async def token(kit: Any) -> str:
    return str(await kit.Tokens().token(["digitalpostinnbygger:send"]))


async def test_a_sound_upload_is_taken(
    post: Any, kit: Any, fake: Any, our_key: Any, token: str
) -> None:
    upload = Upload(kit, fake, our_key, token)
    assert await post(upload.form(), token) == (201, None)
    assert upload.message.message_id in fake.shipments


async def test_uploads_are_refused_with_the_reason(
    post: Any, kit: Any, fake: Any, our_key: Any, token: str, ca: Any
) -> None:
    upload = Upload(kit, fake, our_key, token)
    other_token = await kit.Tokens().token(["digitalpostinnbygger:send"])
    changed = json.loads(json.dumps(upload.payload))
    changed["standardBusinessDocument"]["digital"]["sikkerhetsnivaa"] = 5
    wrong_receiver = json.loads(json.dumps(upload.payload))
    wrong_receiver["standardBusinessDocument"]["standardBusinessDocumentHeader"]["receiver"][0][
        "identifier"
    ]["value"] = "0192:999999999"
    head, _, signature = upload.jwt().split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
    stranger = ca.issue("911111111")
    cases = {
        "token": (upload.form(), other_token, "maskinportentoken"),
        "fingerprint": (
            upload.form(package=upload.package + b"\x00"),
            token,
            "dokumentpakkefingeravtrykk",
        ),
        "signature": (
            upload.form(jwt=f"{head}.{forged_body}.{signature}"),
            token,
            "does not verify",
        ),
        "schema": (upload.form(jwt=upload.jwt(changed)), token, "sikkerhetsnivaa"),
        "receiver": (upload.form(jwt=upload.jwt(wrong_receiver)), token, "not a mailbox provider"),
        "signer": (
            upload.form(jwt=jws.sign(upload.payload, stranger)),
            token,
            "signed by 911111111",
        ),
        "extra part": (upload.form(extra=True), token, "unexpected part 'vedlegg'"),
        "not a package": (Upload(kit, fake, our_key, token).form(package=b"not cms"), token, None),
    }
    for name, (form, bearer, reason) in cases.items():
        status, problem = await post(form, bearer)
        assert status == 400, name
        assert problem["status"] == 400 and problem["title"] == "Bad Request", name
        if reason:
            assert reason in problem["detail"], (name, problem["detail"])
    assert fake.shipments == {}
    assert len(fake.rejections) == len(cases)


async def test_packages_whose_manifest_does_not_match_are_refused(
    post: Any, kit: Any, fake: Any, our_key: Any, token: str
) -> None:
    extra = Document("hemmelig.pdf", "application/pdf", lambda: [kit.PDF], len(kit.PDF))
    main = Document("vedtak.pdf", "application/pdf", lambda: [kit.PDF], len(kit.PDF))
    unnamed = Upload(kit, fake, our_key, token, documents=[main, extra])
    status, problem = await post(unnamed.form(), token)
    assert status == 400 and "does not name: ['hemmelig.pdf']" in problem["detail"]

    not_sdp = Upload(
        kit, fake, our_key, token, manifest=IpManifest(receiver="984661185", sender=kit.ORG)
    )
    status, problem = await post(not_sdp.form(), token)
    assert status == 400 and "sdp-manifest.xsd" in problem["detail"]


async def test_authentication_and_kanal(
    post: Any, kit: Any, fake: Any, our_key: Any, token: str
) -> None:
    upload = Upload(kit, fake, our_key, token)
    assert (await post(upload.form(), None))[0] == 401
    wrong_scope = await kit.Tokens().token(["eformidling:dpo"])
    assert (await post(upload.form(), wrong_scope))[0] == 403
    status, problem = await post(upload.form(), token, kanal="min kanal")
    assert status == 400 and "kanal" in problem["detail"]


async def test_inbox_filters_pages_and_marks_read(
    make_channel: Any, fake: Any, kit: Any, access_point: str, token: str
) -> None:
    channel = await make_channel(kanal="Kanal-A")
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(avsenderId="avd-1"),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(
        outgoing.message_id, [Step("leveringskvittering"), Step("aapningskvittering"), Step("feil")]
    )
    await channel.send(outgoing)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def inbox(**query: str) -> tuple[int, list[Any]]:
            async with session.get(f"{access_point}/messages/in", params=query) as response:
                return response.status, (await response.json() if response.status == 200 else [])

        assert len((await inbox())[1]) == 3
        assert len((await inbox(kanal="kanal-a"))[1]) == 3
        assert await inbox(kanal="Kanal-B") == (204, [])
        assert len((await inbox(avsenderidentifikator="avd-1"))[1]) == 3
        assert await inbox(avsenderidentifikator="avd-2") == (204, [])
        first = (await inbox(page_size="2"))[1]
        second = (await inbox(page_size="2", page="1"))[1]
        assert len(first) == 2 and len(second) == 1
        receipt_id = fake.inbox[0].receipt_id
        async with session.get(f"{access_point}/messages/in/{receipt_id}") as response:
            assert response.status == 404
            assert "no document package" in (await response.json())["detail"]
        async with session.post(f"{access_point}/messages/in/{receipt_id}/read") as response:
            assert response.status == 200
        async with session.post(
            f"{access_point}/messages/in/00000000-0000-0000-0000-000000000000/read"
        ) as response:
            assert response.status == 404
        assert len((await inbox())[1]) == 2
        async with session.get(
            f"{access_point}/messages/out/{outgoing.message_id}/statuses"
        ) as response:
            assert [s["status"] for s in await response.json()] == ["OPPRETTET"]


async def test_receipts_wait_in_the_inbox_of_the_organisation_that_sent(
    make_channel: Any, fake: Any, kit: Any, access_point: str, token: str
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(outgoing.message_id, [Step("leveringskvittering")])
    await channel.send(outgoing)
    other = await kit.Tokens("910075918").token(["digitalpostinnbygger:send"])
    async with aiohttp.ClientSession() as session:

        async def inbox(bearer: str) -> int:
            headers = {"Authorization": f"Bearer {bearer}"}
            async with session.get(f"{access_point}/messages/in", headers=headers) as response:
                return response.status

        async def read(bearer: str) -> int:
            headers = {"Authorization": f"Bearer {bearer}"}
            receipt_id = fake.inbox[0].receipt_id
            async with session.post(
                f"{access_point}/messages/in/{receipt_id}/read", headers=headers
            ) as response:
                return response.status

        assert await inbox(other) == 204
        assert await read(other) == 404
        assert await inbox(token) == 200
        assert await read(token) == 200
        assert await inbox(token) == 204


async def test_a_token_verifier_refuses_tokens_saying_why(
    fake: Any, access_point: str, token: str
) -> None:
    def refuse(bearer: str) -> None:
        raise ValueError("not issued by this Maskinporten")

    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        fake.token_verifier = refuse
        async with session.get(f"{access_point}/messages/in") as response:
            assert response.status == 401
            assert "not issued by this Maskinporten" in (await response.json())["detail"]
        fake.token_verifier = lambda bearer: {"scope": "digitalpostinnbygger:send"}
        async with session.get(f"{access_point}/messages/in") as response:
            assert response.status == 204


async def test_faults_match_method_and_path_and_run_out(
    fake: Any, access_point: str, token: str
) -> None:
    fake.add_fault(Fault(status=429, retry_after="3", method="GET", path="/messages/in", times=2))
    fake.add_fault(Fault(kind="slow", delay=0.3, path="/statuses"))
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        statuses = []
        for _ in range(3):
            async with session.get(f"{access_point}/messages/in") as response:
                statuses.append((response.status, response.headers.get("Retry-After")))
        assert statuses == [(429, "3"), (429, "3"), (204, None)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with session.get(
            f"{access_point}/messages/out/00000000-0000-0000-0000-000000000000/statuses"
        ) as response:
            assert response.status == 200
        assert loop.time() - started >= 0.3


async def test_the_control_api_scripts_and_lists(
    make_channel: Any, fake: Any, kit: Any, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(fake.app())
    response = await client.post(
        "/_fake/scripts",
        json={
            "key": kit.CITIZEN,
            "steps": [{"event": "SENDT"}, {"event": "feil", "detail": "Nei", "feiltype": "KLIENT"}],
        },
    )
    assert response.status == 204
    response = await client.post("/_fake/scripts", json={"key": "x", "steps": [{"event": "LEST"}]})
    assert response.status == 400
    response = await client.post("/_fake/faults", json={"status": 500, "path": "/messages/out"})
    assert response.status == 204
    assert fake.faults[0].status == 500
    fake.faults.clear()
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    await channel.send(outgoing)
    listed = await (await client.get("/_fake/shipments")).json()
    assert listed == [
        {
            "messageId": outgoing.message_id,
            "conversationId": outgoing.conversation_id,
            "type": "digital",
            "provider": fake.mailbox.organisation_number,
            "kanal": "no_difi_move_integrasjonspunkt",
            "files": ["manifest.xml", "vedtak.pdf"],
            "statuses": listed[0]["statuses"],
            "receipts": ["feil"],
            "forretningsmelding": listed[0]["forretningsmelding"],
        }
    ]
    assert [s["status"] for s in listed[0]["statuses"]] == ["OPPRETTET", "SENDT"]
    header = listed[0]["forretningsmelding"]["standardBusinessDocument"][
        "standardBusinessDocumentHeader"
    ]
    assert header["documentIdentification"]["instanceIdentifier"] == outgoing.message_id


def test_the_fake_runs_alone(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipunkt_dpi.fake",
            "--port",
            str(port),
            "--certs",
            str(tmp_path),
            "--step-delay",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["url"] == f"http://127.0.0.1:{port}/dpi"
        assert (started["mailbox_orgnr"], started["print_orgnr"]) == ("984661185", "974761076")
        for name in ("ca", "mailbox_certificate", "print_certificate"):
            assert Path(started[name]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")

        async def probe() -> list[int]:
            async with aiohttp.ClientSession() as session:
                statuses = []
                for headers in ({}, {"Authorization": "Bearer opaque"}):
                    for _ in range(50):
                        try:
                            async with session.get(
                                f"{started['url']}/messages/in", headers=headers
                            ) as r:
                                statuses.append(r.status)
                                break
                        except aiohttp.ClientConnectionError:
                            await asyncio.sleep(0.1)
                return statuses

        assert asyncio.run(probe()) == [401, 204]
    finally:
        process.terminate()
        process.wait(10)

"""The fake broker on its own: status model, visibility, tokens, errors and faults, over HTTP.

Every answer is checked against the published OpenAPI document; so is every request except
the ones these tests make wrong on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from ipunkt.testing import free_port
from ipunkt_dpo.fake import READ, WRITE, AltinnTokens, FakeBroker, Fault, FaultKind

A, B, C, STRANGER = "0192:910077473", "0192:910075918", "0192:991825827", "0192:974760673"
RESOURCE = "eformidling-dpo-meldingsutveksling"
BASE = "/broker/api/v1"


@dataclass
class Broker:
    fake: FakeBroker
    server: TestServer
    session: aiohttp.ClientSession
    tokens: dict[str, str]
    wrong_on_purpose: set[int] = field(default_factory=set)
    """Journal positions of requests made invalid on purpose (their answers are still checked)."""

    def url(self, path: str) -> str:
        return str(self.server.make_url(BASE + path))

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    async def call(
        self, method: str, path: str, who: str | None, *, wrong: bool = False, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        if wrong:
            self.wrong_on_purpose.add(len(self.fake.journal))
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        async with self.session.request(
            method, self.url(path), headers=headers, **kwargs
        ) as response:
            raw = await response.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            return response.status, body, response

    async def initialize(
        self, sender: str, *recipients: str, reference: str = "ref-1234567890123456789012345"
    ) -> str:
        status, body, _ = await self.call(
            "POST",
            "/filetransfer",
            sender,
            json={
                "fileName": "sbd.zip",
                "resourceId": RESOURCE,
                "sender": sender,
                "recipients": list(recipients),
                "sendersFileTransferReference": reference,
            },
        )
        assert status == 200, body
        return str(body["fileTransferId"])

    async def upload(self, sender: str, transfer_id: str, data: bytes = b"PK file") -> int:
        status, _, _ = await self.call(
            "POST",
            f"/filetransfer/{transfer_id}/upload",
            sender,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return status

    async def overview(self, who: str, transfer_id: str) -> dict[str, Any]:
        status, body, _ = await self.call("GET", f"/filetransfer/{transfer_id}", who)
        assert status == 200, body
        return dict(body)

    async def listing(self, who: str, **params: str) -> list[str]:
        status, body, _ = await self.call(
            "GET", "/filetransfer", who, params={"resourceId": RESOURCE, **params}
        )
        assert status == 200, body
        return list(body)


@pytest.fixture
async def broker(aiohttp_server: Any, spec_check: Callable[..., None]) -> AsyncIterator[Broker]:
    fake = FakeBroker()
    server = await aiohttp_server(fake.app())
    tokens = {who: fake.issued.issue(who) for who in (A, B, C, STRANGER)}
    tokens["read-only"] = fake.issued.issue(A, (READ,))
    async with aiohttp.ClientSession() as session:
        setup = Broker(fake, server, session, tokens)
        yield setup
    for position, entry in enumerate(fake.journal):
        spec_check(entry, request_is_valid=position not in setup.wrong_on_purpose)


async def test_status_model_from_initialize_to_all_downloaded(broker: Broker) -> None:
    broker.fake.scan_seconds = 0.2
    transfer_id = await broker.initialize(A, B, C)
    first = await broker.overview(A, transfer_id)
    assert first["fileTransferStatus"] == "Initialized"
    assert first["fileTransferStatusText"] == "Ready for upload"
    assert {
        r["recipient"]: r["currentRecipientFileTransferStatusCode"] for r in first["recipients"]
    } == {
        B: "Initialized",
        C: "Initialized",
    }
    status, body, _ = await broker.call("GET", f"/filetransfer/{transfer_id}/download", B)
    assert status == 403 and body["detail"].startswith(
        "The requested file transfer's file is not ready"
    )

    assert await broker.upload(A, transfer_id, b"the file") == 200
    assert (await broker.overview(A, transfer_id))["fileTransferStatus"] == "UploadProcessing"
    await asyncio.sleep(0.4)
    published = await broker.overview(B, transfer_id)
    assert published["fileTransferStatus"] == "Published"
    assert published["fileTransferSize"] == 8
    assert published["checksum"] == hashlib.md5(b"the file").hexdigest()

    status, body, _ = await broker.call("POST", f"/filetransfer/{transfer_id}/confirmdownload", B)
    assert (
        status == 400 and body["detail"] == "Cannot confirm before the files have been downloaded"
    )
    status, data, response = await broker.call("GET", f"/filetransfer/{transfer_id}/download", B)
    assert status == 200 and data == b"the file"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert (await broker.overview(A, transfer_id))["recipients"][0][
        "currentRecipientFileTransferStatusCode"
    ] == "DownloadStarted"
    for _ in range(2):  # confirming again is no error, as in Altinn
        status, _, _ = await broker.call("POST", f"/filetransfer/{transfer_id}/confirmdownload", B)
        assert status == 200
    assert (await broker.overview(A, transfer_id))["fileTransferStatus"] == "Published", "C has not"

    await broker.call("GET", f"/filetransfer/{transfer_id}/download", C)
    await broker.call("POST", f"/filetransfer/{transfer_id}/confirmdownload", C)
    status, details, _ = await broker.call("GET", f"/filetransfer/{transfer_id}/details", A)
    assert details["fileTransferStatus"] == "AllConfirmedDownloaded"
    assert [e["fileTransferStatus"] for e in details["fileTransferStatusHistory"]] == [
        "Initialized",
        "UploadStarted",
        "UploadProcessing",
        "Published",
        "AllConfirmedDownloaded",
    ]
    assert [
        (e["recipient"], e["recipientFileTransferStatusCode"])
        for e in details["recipientFileTransferStatusHistory"]
    ] == [
        (B, "Initialized"),
        (C, "Initialized"),
        (B, "DownloadStarted"),
        (B, "DownloadConfirmed"),
        (C, "DownloadStarted"),
        (C, "DownloadConfirmed"),
    ]


async def test_each_party_sees_only_its_own(broker: Broker) -> None:
    transfer_id = await broker.initialize(A, B)
    await broker.upload(A, transfer_id)

    status, body, _ = await broker.call("GET", f"/filetransfer/{transfer_id}", STRANGER)
    assert status == 401 and body["code"] == "BRO-00006"
    assert await broker.listing(STRANGER) == []
    status, _, _ = await broker.call("GET", f"/filetransfer/{transfer_id}/download", A)
    assert status == 401, "the sender does not download"
    status, _, _ = await broker.call("GET", f"/filetransfer/{transfer_id}/download", STRANGER)
    assert status == 401

    assert await broker.listing(A) == [transfer_id], "a sender sees what it sent"
    assert await broker.listing(A, recipientStatus="Initialized") == [], "but not as recipient"
    inbox = {"status": "Published", "recipientStatus": "Initialized"}
    assert await broker.listing(B, **inbox) == [transfer_id]
    await broker.call("GET", f"/filetransfer/{transfer_id}/download", B)
    await broker.call("POST", f"/filetransfer/{transfer_id}/confirmdownload", B)
    assert await broker.listing(B, **inbox) == []
    assert await broker.listing(B, recipientStatus="DownloadConfirmed") == [transfer_id]


async def test_listing_is_newest_first_with_time_filters(broker: Broker) -> None:
    ids = []
    for _ in range(3):
        ids.append(await broker.initialize(A, B))
        await asyncio.sleep(0.01)
    assert await broker.listing(A) == list(reversed(ids))
    middle = broker.fake.transfers[ids[1]].created.isoformat()
    assert await broker.listing(A, **{"from": middle}) == [ids[2]]
    assert await broker.listing(A, to=middle) == [ids[0]]
    for transfer_id in ids[:2]:
        await broker.upload(A, transfer_id)
    assert await broker.listing(B, status="Published") == [ids[1], ids[0]]


async def test_tokens_are_checked(broker: Broker) -> None:
    status, body, response = await broker.call(
        "GET", "/filetransfer", None, params={"resourceId": RESOURCE}
    )
    assert status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["title"] == "Unauthorized"
    broker.tokens["forged"] = "not-a-token"
    status, _, _ = await broker.call(
        "GET", "/filetransfer", "forged", params={"resourceId": RESOURCE}
    )
    assert status == 401
    status, body, _ = await broker.call(
        "POST",
        "/filetransfer",
        "read-only",
        json={"fileName": "sbd.zip", "resourceId": RESOURCE, "sender": A, "recipients": [B]},
    )
    assert status == 403 and "altinn:broker.write" in body["detail"]
    status, body, _ = await broker.call(
        "POST",
        "/filetransfer",
        B,
        json={"fileName": "sbd.zip", "resourceId": RESOURCE, "sender": A, "recipients": [B]},
    )
    assert status == 401 and body["code"] == "BRO-00006", "B's system user cannot send as A"


async def test_bad_requests_get_validation_problems(broker: Broker) -> None:
    status, body, _ = await broker.call(
        "POST",
        "/filetransfer",
        A,
        wrong=True,
        json={
            "fileName": "",
            "resourceId": RESOURCE,
            "sender": "910077473",
            "recipients": [],
            "propertyList": {str(i): "v" for i in range(11)},
        },
    )
    assert status == 400
    assert body["title"] == "One or more validation errors occurred."
    assert set(body["errors"]) == {"FileName", "Sender", "Recipients", "PropertyList"}
    assert body["errors"]["Sender"][0].startswith("Organization numbers should be on the form")

    status, body, _ = await broker.call("GET", "/filetransfer/not-a-uuid", A, wrong=True)
    assert status == 400 and "not-a-uuid" in body["errors"]["fileTransferId"][0]
    status, body, _ = await broker.call(
        "GET", "/filetransfer/0f8fad5b-d9cb-469f-a165-70867728950e", A
    )
    assert status == 404 and body["code"] == "BRO-00001"
    status, body, _ = await broker.call(
        "GET", "/filetransfer", A, wrong=True, params={"resourceId": RESOURCE, "status": "Sent"}
    )
    assert status == 400 and "status" in body["errors"]
    status, body, _ = await broker.call("GET", "/filetransfer", A, params={"resourceId": "other"})
    assert status == 403

    transfer_id = await broker.initialize(A, B)
    assert await broker.upload(A, transfer_id) == 200
    status, body, _ = await broker.call(
        "POST",
        f"/filetransfer/{transfer_id}/upload",
        A,
        data=b"again",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 409 and body["title"] == "Conflict"
    status, _, _ = await broker.call(
        "POST",
        f"/filetransfer/{transfer_id}/upload",
        B,
        data=b"x",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 401, "only the sender uploads"


async def test_a_checksum_mismatch_fails_the_transfer(broker: Broker) -> None:
    _, body, _ = await broker.call(
        "POST",
        "/filetransfer",
        A,
        json={
            "fileName": "sbd.zip",
            "resourceId": RESOURCE,
            "sender": A,
            "recipients": [B],
            "checksum": "0" * 32,
        },
    )
    transfer_id = body["fileTransferId"]
    assert await broker.upload(A, transfer_id, b"data") == 400
    assert (await broker.overview(A, transfer_id))["fileTransferStatus"] == "Failed"


async def test_faults_on_demand(broker: Broker) -> None:
    broker.fake.inject(Fault(status=429, retry_after="3", times=2, method="GET"))
    for _ in range(2):
        status, body, response = await broker.call(
            "GET", "/filetransfer", A, params={"resourceId": RESOURCE}
        )
        assert status == 429 and response.headers["Retry-After"] == "3"
        assert body["title"] == "Too Many Requests"
    assert (await broker.call("GET", "/filetransfer", A, params={"resourceId": RESOURCE}))[0] == 200

    broker.fake.inject(Fault(status=503, path="/upload$"))
    transfer_id = await broker.initialize(A, B)
    assert await broker.upload(A, transfer_id) == 503
    assert (await broker.overview(A, transfer_id))["fileTransferStatus"] == "Initialized"

    broker.fake.inject(Fault(FaultKind.SLOW, delay=0.3))
    started = time.monotonic()
    await broker.overview(A, transfer_id)
    assert time.monotonic() - started >= 0.3

    broker.fake.inject(Fault(FaultKind.DROP, path="/upload$"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await broker.upload(A, transfer_id)
    assert (await broker.overview(A, transfer_id))["fileTransferStatus"] == "Published", "done"

    broker.fake.inject(Fault(FaultKind.TRUNCATE, method="GET", path="/filetransfer/[^/]+$"))
    with pytest.raises(aiohttp.ClientPayloadError):
        await broker.overview(A, transfer_id)


async def test_altinn_tokens_are_read_as_the_system_users_organisation() -> None:
    claims = {
        "scope": "altinn:broker.read altinn:broker.write",
        "consumer": {"authority": "iso6523-actorid-upis", "ID": A},
        "authorization_details": [
            {
                "type": "urn:altinn:systemuser",
                "systemuser_org": {"authority": "iso6523-actorid-upis", "ID": B},
            }
        ],
    }

    def verify(token: str) -> dict[str, Any]:
        if token != "good":
            raise ValueError("not ours")
        return claims

    tokens = AltinnTokens(verify)
    caller = tokens("good")
    assert caller is not None and caller.organisation == B
    assert caller.scopes == {READ, WRITE}
    assert tokens("bad") is None
    del claims["authorization_details"]
    assert tokens("good").organisation == A  # type: ignore[union-attr]


def test_it_runs_standalone_with_control_routes(tmp_path: Any) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ipunkt_dpo.fake", "--port", str(port), "--storage", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, answer = call("POST", "/_fake/tokens", {"organisation": "910077473"})
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert status == 200
        token = answer["access_token"]
        status, created = call(
            "POST",
            BASE + "/filetransfer",
            {"fileName": "sbd.zip", "resourceId": RESOURCE, "sender": A, "recipients": [B]},
            token,
        )
        assert status == 200
        status, transfers = call("GET", "/_fake/transfers")
        assert [t["fileTransferId"] for t in transfers] == [created["fileTransferId"]]
        assert call("POST", "/_fake/faults", {"status": 502, "times": 1})[0] == 200
        assert call("GET", BASE + "/filetransfer?resourceId=" + RESOURCE, token=token)[0] == 502
        assert call("GET", BASE + "/filetransfer?resourceId=" + RESOURCE, token=token)[0] == 200
    finally:
        process.terminate()
        process.wait(10)

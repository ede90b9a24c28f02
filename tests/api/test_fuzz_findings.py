"""Inputs a schemathesis run against /api/openapi.json found answered with 500, now each a
clear 4xx in the documented error body."""

from __future__ import annotations

import pytest
from conftest import Gateway

HUGE = str(2**90)


@pytest.mark.parametrize("path", ["/api/messages/out", "/api/messages/in",
                                  "/api/conversations", "/api/conversations/queue",
                                  "/api/statuses"])
async def test_a_page_beyond_javas_int_is_a_400(gateway: Gateway, path: str) -> None:
    response = await gateway.client.get(path, params={"page": HUGE})
    body = await response.json()
    assert response.status == 400
    assert body["message"].startswith("Parameter 'page' must be at most 2147483647")
    assert body["path"] == path


@pytest.mark.parametrize(("path", "status"), [
    (f"/api/conversations/{HUGE}", 404),
    (f"/api/statuses?id={HUGE}", 400),
])
async def test_an_id_beyond_javas_long_is_refused(gateway: Gateway, path: str,
                                                  status: int) -> None:
    response = await gateway.client.get(path)
    assert response.status == status
    assert (await response.json())["status"] == status
    response = await gateway.client.delete(f"/api/statuses/{HUGE}")
    assert response.status == 400


async def test_a_malformed_multipart_part_header_is_a_400(gateway: Gateway) -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"\x05\xc3\x84\xf1\xbb\xa0\x84\"\r\n"
            b"\r\nx\r\n--b--\r\n")
    response = await gateway.client.post(
        "/api/messages/out/multipart", data=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"})
    answer = await response.json()
    assert response.status == 400
    assert answer["exception"].endswith("MessageNotReadableException")

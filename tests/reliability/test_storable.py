"""Vendor text and payloads that no database column could hold are made storable at the edge.

Unit-level companions of the sandbox cases in ``test_bad_vendor_data.py``: a quarantined
record's payload is plain JSON (Decimals, dates, NaN, NUL...), and ``VendorHttp`` turns
NUL, lone surrogates and undecodable bytes into U+FFFD, saying so in a log line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from syncd.adapters.base import Skipped, json_safe
from syncd.adapters.http import RetryPolicy, VendorHttp


def test_a_skipped_payload_is_plain_json() -> None:
    raw = {
        "id": 7,
        "total": Decimal("12.50"),
        "date": dt.date(2026, 1, 31),
        "at": dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC),
        "rate": float("nan"),
        "tags": ("a", "b"),
        "name": "Bad\x00Name\ud800",
        3: {"nested": [Decimal("-1E+3")]},
    }
    skipped = Skipped("x\x00", "reason with \ud800", raw)
    text = json.dumps(skipped.payload, allow_nan=False)  # raises on anything not JSON
    assert json.loads(text) == {
        "id": 7,
        "total": "12.50",
        "date": "2026-01-31",
        "at": "2026-01-31T12:00:00+00:00",
        "rate": "nan",
        "tags": ["a", "b"],
        "name": "Bad\ufffdName\ufffd",
        "3": {"nested": ["-1E+3"]},
    }
    assert skipped.reason == "reason with \ufffd"
    assert skipped.external_id == "x\ufffd"
    text.encode("utf-8")  # no lone surrogate left


def test_json_safe_keeps_what_is_already_plain() -> None:
    plain = {"a": [1, 2.5, None, True, "é"], "b": {"c": "d"}}
    assert json_safe(plain) == plain
    assert json_safe("repr of anything else") == "repr of anything else"
    assert json_safe(object()).startswith("<object object")


BODIES = {
    "/nul": b'{"data": [{"id": "1", "name": "Bad\\u0000Name"}]}',
    "/surrogate": b'{"data": [{"id": "1", "name": "Bad\\ud800Name", "ok": "\\ud83d\\ude00"}]}',
    "/bytes": b'{"data": [{"id": "1", "name": "Bad \xff\xfe bytes"}]}',
    "/pair": b'{"data": [{"id": "1", "name": "\\ud83d\\ude00"}]}',
}


@pytest.fixture
async def vendor() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=BODIES[request.path], content_type="application/json")

    app = web.Application()
    for path in BODIES:
        app.router.add_get(path, answer)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url(""))
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("path", "name", "logged"),
    [
        ("/nul", "Bad\ufffdName", "1 NUL or lone surrogate character(s)"),
        ("/surrogate", "Bad\ufffdName", "1 NUL or lone surrogate character(s)"),
        ("/bytes", "Bad \ufffd\ufffd bytes", "not valid utf-8"),
        ("/pair", "\U0001f600", None),
    ],
)
async def test_vendor_text_no_store_can_hold_becomes_u_fffd(
    vendor: str, path: str, name: str, logged: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="syncd.adapters.http")
    async with aiohttp.ClientSession() as session:
        http = VendorHttp(
            session,
            account="acme",
            vendor="simplicate",
            base_url=vendor,
            auth_headers={},
            retry=RetryPolicy(attempts=1),
        )
        response = await http.get(path)
    assert response.body["data"][0]["name"] == name
    if logged is None:
        assert caplog.records == []
    else:
        (record,) = caplog.records
        assert logged in record.getMessage()
        assert "account acme" in record.getMessage()

"""The admin HTTP API (syncd.admin) through aiohttp's test server and client."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.admin import create_admin_app, is_loopback_host, split_listen, start_admin, stop_admin
from syncd.metrics import Metrics
from syncd.status import collect_status
from syncd.webhooks import WebhookAccount, sign_body, sign_timestamped
from tests.test_status import NOW, _seed, _settings

T = 1_769_860_800  # 2026-01-31T12:00:00Z
TOKEN = "admin-token-0123456789"
CRM_SECRET = "crm-hook-secret-value"
BOOKS_SECRET = "books-hook-secret-value"
BODY = b'{"event":"organization.updated","id":"org:1"}'

STATUS: dict[str, Any] = {
    "version": 1,
    "generated_at": "2026-01-31T12:00:00Z",
    "totals": {},
    "workspaces": [
        {
            "name": "acme",
            "open_conflicts": 1,
            "accounts": [
                {
                    "name": "crm",
                    "vendor": "simplicate",
                    "state": "active",
                    "outbox": {"pending": 0, "dead": 2},
                    "budget": [],
                }
            ],
        }
    ],
}


class Harness:
    """The app's collaborators, recording what the app asked of them."""

    def __init__(self) -> None:
        self.metrics = Metrics(clock=lambda: float(T))
        self.triggered: list[str] = []
        self.ready: tuple[bool, list[str]] = (True, [])
        self.status: Mapping[str, Any] | Exception = STATUS
        self.trigger_error: Exception | None = None

    async def status_provider(self) -> Mapping[str, Any]:
        if isinstance(self.status, Exception):
            raise self.status
        return self.status

    def readiness(self) -> tuple[bool, list[str]]:
        return self.ready

    async def on_webhook(self, account: str) -> None:
        if self.trigger_error is not None:
            raise self.trigger_error
        self.triggered.append(account)

    def app(self, *, admin_token: str | None = None, loopback_only: bool = True) -> web.Application:
        return create_admin_app(
            status_provider=self.status_provider,
            metrics=self.metrics,
            readiness=self.readiness,
            on_webhook=self.on_webhook,
            webhook_secrets={
                "crm": WebhookAccount("simplicate", SecretStr(CRM_SECRET)),
                "books": WebhookAccount("moneybird", SecretStr(BOOKS_SECRET)),
            },
            admin_token=SecretStr(admin_token) if admin_token else None,
            loopback_only=loopback_only,
            clock=lambda: float(T),
        )


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
async def make_client(harness: Harness) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(**kwargs: Any) -> Client:
        client: Client = TestClient(TestServer(harness.app(**kwargs)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


def _metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


# --------------------------------------------------------------------------- health


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.text() == "ok\n"


async def test_readyz_ready(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"ready": True, "reasons": []}


async def test_readyz_not_ready_lists_the_reasons(client: Client, harness: Harness) -> None:
    harness.ready = (False, ["database unreachable", "scheduler not running"])
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "ready": False,
        "reasons": ["database unreachable", "scheduler not running"],
    }


async def test_readyz_when_the_check_itself_fails(client: Client, harness: Harness) -> None:
    def broken() -> tuple[bool, list[str]]:
        raise RuntimeError("boom")

    harness.readiness = broken  # type: ignore[method-assign]
    client = TestClient(TestServer(harness.app()))
    async with client:
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["reasons"] == ["readiness check failed: RuntimeError"]


# --------------------------------------------------------------------------- metrics


async def test_metrics_is_prometheus_text_refreshed_from_status(client: Client) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"syncd_dead_letters", "syncd_vendor_requests", "syncd_status_up"} <= families
    assert _metric(text, "syncd_dead_letters", account="crm") == 2
    assert _metric(text, "syncd_open_conflicts", workspace="acme") == 1
    assert _metric(text, "syncd_status_up") == 1


async def test_metrics_still_answers_when_status_fails(client: Client, harness: Harness) -> None:
    await client.get("/metrics")
    harness.status = RuntimeError("database down")
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert _metric(text, "syncd_status_up") == 0
    assert _metric(text, "syncd_dead_letters", account="crm") == 2  # last known value


async def test_metrics_in_openmetrics_when_asked(client: Client) -> None:
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).rstrip().endswith("# EOF")


# --------------------------------------------------------------------------- status


async def test_status_on_loopback_without_a_token(client: Client) -> None:
    response = await client.get("/status")
    assert response.status == 200
    assert await response.json() == STATUS


async def test_status_beyond_loopback_without_a_token_is_refused(make_client: MakeClient) -> None:
    client = await make_client(loopback_only=False)
    response = await client.get("/status", headers={"Authorization": "Bearer anything"})
    assert response.status == 403
    assert "admin_token" in (await response.json())["error"]


@pytest.mark.parametrize("loopback_only", [True, False])
async def test_status_with_a_token_needs_the_bearer(
    make_client: MakeClient, loopback_only: bool
) -> None:
    client = await make_client(admin_token=TOKEN, loopback_only=loopback_only)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        response = await client.get("/status", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in await response.text()
    response = await client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    assert await response.json() == STATUS


async def test_status_unavailable(client: Client, harness: Harness) -> None:
    harness.status = OSError("connection refused to postgres://user:pw@db")
    response = await client.get("/status")
    assert response.status == 503
    body = await response.json()
    assert body == {"error": "status unavailable (OSError)"}


async def test_an_empty_admin_token_is_refused(harness: Harness) -> None:
    with pytest.raises(ValueError, match="empty"):
        create_admin_app(
            status_provider=harness.status_provider,
            metrics=harness.metrics,
            readiness=harness.readiness,
            on_webhook=harness.on_webhook,
            webhook_secrets={},
            admin_token="",
            loopback_only=True,
        )


async def test_status_from_the_store(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path, harness: Harness
) -> None:
    await _seed(db_sessionmaker)
    settings = _settings(tmp_path)

    async def provider() -> dict[str, Any]:
        return await collect_status(db_sessionmaker, settings, now=NOW)

    harness.status_provider = provider  # type: ignore[method-assign]
    async with TestClient(TestServer(harness.app())) as client:
        response = await client.get("/status")
        assert response.status == 200
        assert await response.json() == await provider()
        metrics = await (await client.get("/metrics")).text()
        assert _metric(metrics, "syncd_outbox_depth", account="acme-crm", state="pending") == 2


# --------------------------------------------------------------------------- webhooks


def _simplicate(body: bytes = BODY, secret: str = CRM_SECRET) -> dict[str, str]:
    return {"X-Webhook-Signature": f"sha256={sign_body(secret, body)}"}


def _moneybird(body: bytes = BODY, *, t: int = T, key: str | None = None) -> dict[str, str]:
    headers = {"Moneybird-Signature": f"t={t},v1={sign_timestamped(BOOKS_SECRET, t, body)}"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


async def test_a_good_delivery_triggers_a_pull(client: Client, harness: Harness) -> None:
    response = await client.post("/hooks/crm", data=BODY, headers=_simplicate())
    assert response.status == 202
    assert await response.json() == {"result": "accepted"}
    assert harness.triggered == ["crm"]


async def test_moneybird_gets_the_200_it_insists_on(client: Client, harness: Harness) -> None:
    response = await client.post("/hooks/books", data=BODY, headers=_moneybird(key="p-1"))
    assert response.status == 200
    assert await response.json() == {"result": "accepted"}
    assert harness.triggered == ["books"]


async def test_a_duplicate_delivery_is_acknowledged_without_a_trigger(
    client: Client, harness: Harness
) -> None:
    first = await client.post("/hooks/books", data=BODY, headers=_moneybird(key="p-1"))
    # Moneybird's retry: same Idempotency-Key, a new timestamp.
    retry = await client.post("/hooks/books", data=BODY, headers=_moneybird(t=T - 60, key="p-1"))
    same_body = await client.post("/hooks/crm", data=BODY, headers=_simplicate())
    again = await client.post("/hooks/crm", data=BODY, headers=_simplicate())
    assert [first.status, retry.status, same_body.status, again.status] == [200, 200, 202, 200]
    assert await retry.json() == {"result": "duplicate"}
    assert harness.triggered == ["books", "crm"]
    text = harness.metrics.render()
    assert _metric(text, "syncd_webhooks_total", account="books", result="duplicate") == 1
    assert _metric(text, "syncd_webhooks_total", account="crm", result="accepted") == 1


@pytest.mark.parametrize(
    ("account", "headers", "reason"),
    [
        ("crm", {}, "missing_signature"),
        ("crm", _simplicate(secret="not-the-secret"), "bad_signature"),
        ("crm", _simplicate(body=b"{}"), "bad_signature"),
        ("crm", {"X-Webhook-Signature": "sha256=zz"}, "malformed_signature"),
        ("books", _moneybird(t=T - 301), "stale"),
    ],
    ids=["missing", "wrong-secret", "other-body", "malformed", "stale"],
)
async def test_bad_signatures_are_refused_and_counted(
    client: Client,
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    account: str,
    headers: dict[str, str],
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post(f"/hooks/{account}", data=BODY, headers=headers)
    assert response.status == 401
    body = await response.json()
    assert body["reason"] == reason
    assert harness.triggered == []
    text = harness.metrics.render()
    assert _metric(text, "syncd_webhooks_total", account=account, result=reason) == 1
    for secret in (CRM_SECRET, BOOKS_SECRET):
        assert secret not in json.dumps(body)
        assert secret not in caplog.text
    for value in headers.values():
        assert value not in caplog.text
        assert value not in json.dumps(body)


async def test_unknown_account(client: Client, harness: Harness) -> None:
    response = await client.post("/hooks/nobody", data=BODY, headers=_simplicate())
    assert response.status == 404
    assert harness.triggered == []
    text = harness.metrics.render()
    assert _metric(text, "syncd_webhooks_total", account="_unknown", result="unknown_account") == 1
    assert 'account="nobody"' not in text


async def test_a_failed_trigger_lets_the_retry_in(client: Client, harness: Harness) -> None:
    harness.trigger_error = RuntimeError("scheduler stopped")
    response = await client.post("/hooks/crm", data=BODY, headers=_simplicate())
    assert response.status == 500
    harness.trigger_error = None
    response = await client.post("/hooks/crm", data=BODY, headers=_simplicate())
    assert response.status == 202
    assert harness.triggered == ["crm"]


async def test_hooks_take_only_post(client: Client) -> None:
    response = await client.get("/hooks/crm")
    assert response.status == 405


async def test_oversized_deliveries_are_refused(client: Client, harness: Harness) -> None:
    body = b"x" * (5 * 1024 * 1024)
    response = await client.post("/hooks/crm", data=io.BytesIO(body), headers=_simplicate(body))
    assert response.status == 413
    assert harness.triggered == []


async def test_a_plain_function_works_as_trigger(harness: Harness) -> None:
    seen: list[str] = []
    app = create_admin_app(
        status_provider=lambda: STATUS,
        metrics=harness.metrics,
        readiness=lambda: (True, ["fine"]),
        on_webhook=seen.append,
        webhook_secrets={"crm": WebhookAccount("simplicate", SecretStr(CRM_SECRET))},
        loopback_only=True,
        clock=lambda: float(T),
    )
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/hooks/crm", data=BODY, headers=_simplicate())).status == 202
        assert (await client.get("/status")).status == 200
        assert await (await client.get("/readyz")).json() == {"ready": True, "reasons": ["fine"]}
    assert seen == ["crm"]


# --------------------------------------------------------------------------- serving


async def test_start_and_stop_on_a_free_port(harness: Harness) -> None:
    runner = await start_admin(harness.app(), "127.0.0.1:0")
    try:
        [(host, port)] = runner.addresses
        assert host == "127.0.0.1"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
    finally:
        await stop_admin(runner)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz"),
        ):
            pass


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("syncd.example.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_split_listen() -> None:
    assert split_listen("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert split_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match="host:port"):
        split_listen("8765")

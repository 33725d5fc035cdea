"""Bad webhook deliveries through the admin app: refused, deduplicated, and counted.

For every signature scheme syncd accepts (Moneybird, Perfex's two modules, Simplicate,
and syncd's own for SimplBooks), a corpus of bad deliveries — no signature, a malformed
one, the wrong secret, a body changed after signing, a timestamp too old or too far
ahead, a replay — goes to ``POST /hooks/{account}`` of the real admin app, built from
settings as the daemon builds it. Each bad one is refused with 401 and its reason and
triggers nothing; each replay triggers nothing; ``GET /metrics`` counts every outcome;
no secret appears in any answer or log line.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from syncd.admin import create_admin_app
from syncd.metrics import Metrics
from syncd.settings import Settings, parse_settings
from syncd.webhooks import sign_body, sign_timestamped, webhook_accounts
from tests.reliability.conftest import JsonLogs

NOW = 1_795_000_000  # the admin app's clock (Unix time)
BODY = b'{"entity_type":"Contact","action":"contact_updated","entity_id":"4150"}'
SECRETS = {
    "crm": "whsec-simplicate-0b5e7d9c2a41f3e6",
    "books": "whsec-moneybird-7a1c4e0f9b2d8e35",
    "perfex": "whsec-perfex-5d2b8f1e6c0a9d47",
    "simplbooks": "whsec-simplbooks-3e9a0c7d1f5b2e68",
}
VENDORS = {
    "crm": "simplicate",
    "books": "moneybird",
    "perfex": "perfex",
    "simplbooks": "simplbooks",
}
BASE_URLS = {
    "simplicate": "https://acme.simplicate.nl/api/v2",
    "moneybird": "https://moneybird.com/api/v2/123",
    "perfex": "https://crm.acme.nl/api/v1",
    "simplbooks": "https://app.simplbooks.com/acme/api",
}
CREDENTIALS = {
    "simplicate": {"key": "api-key-value-1", "secret": "api-secret-value-1"},
    "moneybird": {"token": "api-token-value-2"},
    "perfex": {"api_key": "api-key-value-3"},
    "simplbooks": {"token": "api-token-value-4"},
}

Headers = dict[str, str]
Sign = Callable[[str, bytes, int], Headers]  # secret, body, timestamp -> headers


def simplicate(secret: str, body: bytes, t: int) -> Headers:
    return {"X-Webhook-Signature": f"sha256={sign_body(secret, body)}"}


def moneybird(secret: str, body: bytes, t: int) -> Headers:
    return {"Moneybird-Signature": f"t={t},v1={sign_timestamped(secret, t, body)}"}


def perfex_module(secret: str, body: bytes, t: int) -> Headers:
    return {"X-Perfex-Signature": f"t={t},v1={sign_timestamped(secret, t, body)}"}


def perfex_v1(secret: str, body: bytes, t: int) -> Headers:
    return {"X-Webhook-Signature": sign_body(secret, body)}


def syncd_scheme(secret: str, body: bytes, t: int) -> Headers:
    return {
        "X-Syncd-Signature": f"v1={sign_timestamped(secret, t, body)}",
        "X-Syncd-Timestamp": str(t),
    }


@dataclass(frozen=True)
class Scheme:
    name: str
    account: str
    sign: Sign
    stamped: bool  # whether the scheme signs a timestamp (and so can be stale)
    accepted_status: int = 202


SCHEMES = [
    Scheme("simplicate", "crm", simplicate, stamped=False),
    Scheme("moneybird", "books", moneybird, stamped=True, accepted_status=200),
    Scheme("perfex-module", "perfex", perfex_module, stamped=True),
    Scheme("perfex-api-v1", "perfex", perfex_v1, stamped=False),
    Scheme("syncd", "simplbooks", syncd_scheme, stamped=True),
]


def settings() -> Settings:
    accounts = [
        {
            "name": name,
            "vendor": vendor,
            "base_url": BASE_URLS[vendor],
            "credentials": CREDENTIALS[vendor],
            "webhook_secret": SECRETS[name],
        }
        for name, vendor in VENDORS.items()
    ]
    data = {"workspace": [{"name": "acme", "account": accounts}]}
    return parse_settings(data, environ={}, base_dir=Path("."))


class Pulls:
    def __init__(self) -> None:
        self.triggered: list[str] = []

    async def __call__(self, account: str) -> None:
        self.triggered.append(account)


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def admin() -> AsyncIterator[tuple[Client, Pulls]]:
    pulls = Pulls()
    app = create_admin_app(
        status_provider=lambda: {"workspaces": []},
        metrics=Metrics(clock=lambda: float(NOW)),
        readiness=lambda: (True, []),
        on_webhook=pulls,
        webhook_secrets=webhook_accounts(settings()),
        loopback_only=True,
        metrics_from_status=False,
        clock=lambda: float(NOW),
    )
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, pulls
    finally:
        await client.close()


def webhook_counts(metrics_text: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "syncd_webhooks_total":
                counts[(sample.labels["account"], sample.labels["result"])] = int(sample.value)
    return counts


def bad_deliveries(scheme: Scheme) -> list[tuple[str, bytes, Headers, str]]:
    """(what, body, headers, expected reason) for one scheme."""
    secret = SECRETS[scheme.account]
    tampered = BODY.replace(b"4150", b"4151")
    cases = [
        ("no signature", BODY, {}, "missing_signature"),
        ("wrong secret", BODY, scheme.sign("not-the-secret", BODY, NOW), "bad_signature"),
        ("body changed after signing", tampered, scheme.sign(secret, BODY, NOW), "bad_signature"),
        ("another account's secret", BODY, scheme.sign(SECRETS["crm" if scheme.account != "crm" else "books"], BODY, NOW), "bad_signature"),
    ]  # fmt: skip
    good = scheme.sign(secret, BODY, NOW)
    header = next(iter(good))
    cases.append(
        ("malformed signature", BODY, {**good, header: "v1=zz,t=abc"}, "malformed_signature")
    )
    if scheme.stamped:
        cases.append(("stale", BODY, scheme.sign(secret, BODY, NOW - 301), "stale"))
        cases.append(("from the future", BODY, scheme.sign(secret, BODY, NOW + 301), "stale"))
    return cases


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
async def test_bad_deliveries_are_refused_replays_deduplicated_all_counted(
    scheme: Scheme, admin: tuple[Client, Pulls], json_logs: JsonLogs
) -> None:
    client, pulls = admin
    expected: Counter[tuple[str, str]] = Counter()
    answers: list[str] = []
    for what, body, headers, reason in bad_deliveries(scheme):
        response = await client.post(f"/hooks/{scheme.account}", data=body, headers=headers)
        text = await response.text()
        answers.append(text)
        assert response.status == 401, f"{what}: {response.status} {text}"
        assert json.loads(text)["reason"] == reason, what
        expected[(scheme.account, reason)] += 1
    assert pulls.triggered == [], "a bad delivery triggered a pull"

    good = scheme.sign(SECRETS[scheme.account], BODY, NOW)
    first = await client.post(f"/hooks/{scheme.account}", data=BODY, headers=good)
    assert first.status == scheme.accepted_status, await first.text()
    expected[(scheme.account, "accepted")] += 1
    for _ in range(3):  # the same delivery again: a retry, or an attacker's replay
        again = await client.post(f"/hooks/{scheme.account}", data=BODY, headers=good)
        answers.append(await again.text())
        assert again.status == 200
        assert await again.json() == {"result": "duplicate"}
        expected[(scheme.account, "duplicate")] += 1
    assert pulls.triggered == [scheme.account]

    metrics = await client.get("/metrics")
    assert metrics.status == 200
    counts = webhook_counts(await metrics.text())
    assert {k: v for k, v in counts.items() if v} == dict(expected)

    logged = json_logs.text()
    assert f"webhook for {scheme.account} rejected" in logged
    for secret in SECRETS.values():
        assert secret not in logged
        assert all(secret not in answer for answer in answers)
    for value in good.values():
        assert value not in logged


async def test_a_delivery_for_an_unknown_account_is_counted_without_its_name(
    admin: tuple[Client, Pulls],
) -> None:
    client, pulls = admin
    names = [f"nobody-{i}" for i in range(5)]
    for name in names:
        response = await client.post(
            f"/hooks/{name}", data=BODY, headers=simplicate("x", BODY, NOW)
        )
        assert response.status == 404
    text = await (await client.get("/metrics")).text()
    assert webhook_counts(text)[("_unknown", "unknown_account")] == len(names)
    assert not any(name in text for name in names)
    assert pulls.triggered == []

"""Prometheus metrics (syncd.metrics): counters, VendorHttp's observer, gauges from status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.http import RequestEvent, RetryPolicy, VendorHttp
from syncd.metrics import Metrics, status_class
from syncd.status import collect_status
from tests.test_status import NOW, _seed, _settings


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, parsed back by prometheus_client's own parser."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def names(metrics: Metrics) -> set[str]:
    return {name for name, _ in samples(metrics)}


# --------------------------------------------------------------------------- counters


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "2xx"),
        (204, "2xx"),
        (302, "3xx"),
        (404, "4xx"),
        (429, "4xx"),
        (503, "5xx"),
        (None, "error"),
        (0, "error"),
        (999, "error"),
    ],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_requests_are_counted_by_account_vendor_and_status_class() -> None:
    metrics = Metrics()
    metrics.request("crm", "simplicate", 200, elapsed=0.2)
    metrics.request("crm", "simplicate", 201)
    metrics.request("crm", "simplicate", 429, elapsed=0.1)
    metrics.request("books", "moneybird", None)
    assert (
        value(
            metrics, "syncd_vendor_requests_total", account="crm", vendor="simplicate", status="2xx"
        )
        == 2
    )
    assert (
        value(
            metrics, "syncd_vendor_requests_total", account="crm", vendor="simplicate", status="4xx"
        )
        == 1
    )
    assert (
        value(
            metrics,
            "syncd_vendor_requests_total",
            account="books",
            vendor="moneybird",
            status="error",
        )
        == 1
    )
    assert (
        value(metrics, "syncd_vendor_rate_limited_total", account="crm", vendor="simplicate") == 1
    )
    assert (
        value(metrics, "syncd_vendor_rate_limited_total", account="books", vendor="moneybird")
        is None
    )
    count = value(
        metrics, "syncd_vendor_request_duration_seconds_count", account="crm", vendor="simplicate"
    )
    assert count == 2


def test_records_runs_and_webhooks() -> None:
    metrics = Metrics()
    metrics.pulled("crm", 40)
    metrics.pulled("crm", 2)
    metrics.pulled("crm", 0)
    metrics.pushed("books", 3)
    metrics.run_finished("crm", "pull", "ok")
    metrics.webhook("crm", "accepted")
    metrics.webhook("crm", "bad_signature")
    metrics.webhook("crm", "bad_signature")
    assert value(metrics, "syncd_records_pulled_total", account="crm") == 42
    assert value(metrics, "syncd_records_pushed_total", account="books") == 3
    assert value(metrics, "syncd_runs_total", account="crm", job="pull", status="ok") == 1
    assert value(metrics, "syncd_webhooks_total", account="crm", result="bad_signature") == 2


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.pulled("crm", 5)
    assert value(second, "syncd_records_pulled_total", account="crm") is None
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "syncd_" not in default


def test_observe_request_reads_a_request_event() -> None:
    metrics = Metrics()
    event = RequestEvent(
        account="crm",
        vendor="simplicate",
        method="GET",
        path="/crm/organization/{id}",
        status=429,
        error="RateLimited",
        elapsed=0.05,
        lane="pull",
    )
    metrics.observe_request(event)
    assert (
        value(
            metrics, "syncd_vendor_requests_total", account="crm", vendor="simplicate", status="4xx"
        )
        == 1
    )
    assert (
        value(metrics, "syncd_vendor_rate_limited_total", account="crm", vendor="simplicate") == 1
    )


async def test_vendor_http_reports_every_attempt_through_the_observer() -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        if len(calls) == 1:  # the first attempt is refused, the retry goes through
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "1"}
            )
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/api/v2/crm/organization", handler)
    metrics = Metrics()

    async def no_sleep(_: float) -> None:
        return None

    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        http = VendorHttp(
            session,
            account="crm",
            vendor="simplicate",
            base_url=str(server.make_url("/api/v2")),
            auth_headers={"Authentication-Key": "key-value-123"},
            retry=RetryPolicy(attempts=3, base_delay=0.0),
            sleep=no_sleep,
            observer=metrics.observe_request,
        )
        response = await http.get("/crm/organization")
    assert response.status == 200
    assert (
        value(
            metrics, "syncd_vendor_requests_total", account="crm", vendor="simplicate", status="4xx"
        )
        == 1
    )
    assert (
        value(
            metrics, "syncd_vendor_requests_total", account="crm", vendor="simplicate", status="2xx"
        )
        == 1
    )
    assert (
        value(metrics, "syncd_vendor_rate_limited_total", account="crm", vendor="simplicate") == 1
    )
    assert "key-value-123" not in metrics.render()


# --------------------------------------------------------------------------- gauges


def _status(**crm: Any) -> dict[str, Any]:
    account = {
        "name": "crm",
        "vendor": "simplicate",
        "state": "active",
        "last_success": {"pull": "2026-01-31T11:50:00Z", "push": None, "reconcile": None},
        "last_success_at": "2026-01-31T11:55:00Z",
        "budget": [
            {
                "per": "1m",
                "per_seconds": 60,
                "requests": 60,
                "kind": "bucket",
                "capacity": 3,
                "tokens": 1.5,
                "used": 1.5,
                "allowed": 58,
                "rate_factor": 1.0,
                "penalty_until": "2026-01-31T12:00:20Z",
                "paused": True,
            }
        ],
        "outbox": {"pending": 4, "sending": 1, "uncertain": 2, "failed": 0, "dead": 3},
        "open_conflicts": 2,
        "open_match_reviews": 1,
        "quarantine": 5,
        "lease": {"owner": "host-a", "fencing_token": 1, "expires_at": "2026-01-31T12:01:00Z"},
    }
    account.update(crm)
    return {
        "version": 1,
        "generated_at": "2026-01-31T12:00:00Z",
        "workspaces": [{"name": "acme", "open_conflicts": 3, "accounts": [account]}],
    }


T_NOON = 1_769_860_800.0  # 2026-01-31T12:00:00Z


def test_gauges_follow_the_status() -> None:
    metrics = Metrics(clock=Clock(T_NOON))
    metrics.update_from_status(_status())
    assert (
        value(
            metrics,
            "syncd_account_state",
            account="crm",
            vendor="simplicate",
            workspace="acme",
            state="active",
        )
        == 1
    )
    assert value(metrics, "syncd_budget_tokens", account="crm", window="1m") == 1.5
    assert value(metrics, "syncd_budget_used", account="crm", window="1m") == 1.5
    assert value(metrics, "syncd_budget_allowed", account="crm", window="1m") == 58
    assert value(metrics, "syncd_budget_limit", account="crm", window="1m") == 60
    assert value(metrics, "syncd_budget_capacity", account="crm", window="1m") == 3
    assert value(metrics, "syncd_budget_penalty_seconds", account="crm", window="1m") == 20
    assert value(metrics, "syncd_outbox_depth", account="crm", state="pending") == 4
    assert value(metrics, "syncd_uncertain_writes", account="crm") == 2
    assert value(metrics, "syncd_dead_letters", account="crm") == 3
    assert value(metrics, "syncd_open_conflicts", workspace="acme") == 3
    assert value(metrics, "syncd_account_open_conflicts", account="crm") == 2
    assert value(metrics, "syncd_open_match_reviews", account="crm") == 1
    assert value(metrics, "syncd_quarantined_records", account="crm") == 5
    assert value(metrics, "syncd_last_success_timestamp_seconds", account="crm") == T_NOON - 300
    assert value(metrics, "syncd_pull_lag_seconds", account="crm") == 600
    assert (
        value(metrics, "syncd_lease_expiry_timestamp_seconds", account="crm", owner="host-a")
        == T_NOON + 60
    )
    assert value(metrics, "syncd_status_up") == 1
    assert value(metrics, "syncd_status_timestamp_seconds") == T_NOON


def test_pull_lag_grows_with_the_clock_between_refreshes() -> None:
    clock = Clock(T_NOON)
    metrics = Metrics(clock=clock)
    metrics.update_from_status(_status())
    clock.now += 90
    assert value(metrics, "syncd_pull_lag_seconds", account="crm") == 690


def test_accounts_without_a_successful_pull_have_no_lag_sample() -> None:
    metrics = Metrics(clock=Clock(T_NOON))
    metrics.update_from_status(
        _status(last_success={"pull": None, "push": None, "reconcile": None}, last_success_at=None)
    )
    assert value(metrics, "syncd_pull_lag_seconds", account="crm") is None
    assert value(metrics, "syncd_last_success_timestamp_seconds", account="crm") is None


def test_label_sets_that_leave_the_status_leave_the_metrics() -> None:
    metrics = Metrics(clock=Clock(T_NOON))
    metrics.update_from_status(_status())
    metrics.update_from_status(_status(name="books", vendor="moneybird", state="paused"))
    assert value(metrics, "syncd_dead_letters", account="crm") is None
    assert value(metrics, "syncd_pull_lag_seconds", account="crm") is None
    assert value(metrics, "syncd_dead_letters", account="books") == 3
    assert (
        value(
            metrics,
            "syncd_account_state",
            account="books",
            vendor="moneybird",
            workspace="acme",
            state="paused",
        )
        == 1
    )


def test_a_failed_refresh_is_flagged_and_keeps_the_last_values() -> None:
    metrics = Metrics(clock=Clock(T_NOON))
    metrics.update_from_status(_status())
    metrics.status_failed()
    assert value(metrics, "syncd_status_up") == 0
    assert value(metrics, "syncd_dead_letters", account="crm") == 3


def test_every_documented_metric_is_exposed() -> None:
    metrics = Metrics(clock=Clock(T_NOON))
    metrics.request("crm", "simplicate", 429, elapsed=0.1)
    metrics.pulled("crm", 1)
    metrics.pushed("crm", 1)
    metrics.run_finished("crm", "pull", "ok")
    metrics.webhook("crm", "accepted")
    metrics.update_from_status(_status())
    exposed = names(metrics)
    for name in (
        "syncd_vendor_requests_total",
        "syncd_vendor_rate_limited_total",
        "syncd_vendor_request_duration_seconds_bucket",
        "syncd_records_pulled_total",
        "syncd_records_pushed_total",
        "syncd_runs_total",
        "syncd_webhooks_total",
        "syncd_account_state",
        "syncd_budget_tokens",
        "syncd_budget_used",
        "syncd_budget_allowed",
        "syncd_budget_limit",
        "syncd_budget_capacity",
        "syncd_budget_penalty_seconds",
        "syncd_outbox_depth",
        "syncd_uncertain_writes",
        "syncd_dead_letters",
        "syncd_open_conflicts",
        "syncd_account_open_conflicts",
        "syncd_open_match_reviews",
        "syncd_quarantined_records",
        "syncd_last_success_timestamp_seconds",
        "syncd_pull_lag_seconds",
        "syncd_lease_expiry_timestamp_seconds",
        "syncd_status_up",
        "syncd_status_timestamp_seconds",
    ):
        assert name in exposed, name


def test_exposition_negotiates_openmetrics() -> None:
    metrics = Metrics()
    metrics.pulled("crm", 7)
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(body.decode())}
    assert families["syncd_records_pulled"].samples[0].value == 7
    text, plain = metrics.exposition(None)
    assert plain.startswith("text/plain")
    assert text.decode() == metrics.render()


# --------------------------------------------------------------------------- from the store


async def test_gauges_from_a_real_status_snapshot(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await _seed(db_sessionmaker)
    status = await collect_status(db_sessionmaker, _settings(tmp_path), now=NOW)
    metrics = Metrics(clock=Clock(NOW.timestamp()))
    metrics.update_from_status(status)
    assert value(metrics, "syncd_outbox_depth", account="acme-crm", state="pending") == 2
    assert value(metrics, "syncd_uncertain_writes", account="acme-crm") == 1
    assert value(metrics, "syncd_dead_letters", account="acme-crm") == 1
    assert value(metrics, "syncd_quarantined_records", account="acme-crm") == 2
    assert value(metrics, "syncd_open_conflicts", workspace="acme") == 3
    assert value(metrics, "syncd_pull_lag_seconds", account="acme-crm") == 540
    assert value(metrics, "syncd_budget_tokens", account="acme-crm", window="1m") == 0
    assert value(metrics, "syncd_budget_limit", account="beta-books", window="1d") == 10000
    assert (
        value(
            metrics,
            "syncd_account_state",
            account="acme-fresh",
            vendor="perfex",
            workspace="acme",
            state="unknown",
        )
        == 1
    )

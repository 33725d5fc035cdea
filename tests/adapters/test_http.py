"""VendorHttp: every HTTP outcome maps to one syncd error, retries only what is safe."""

from __future__ import annotations

import ast
import email.utils
import logging
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import Mock

import aiohttp
import pytest
from aioresponses import CallbackResult
from yarl import URL

from syncd.adapters.http import (
    HttpResponse,
    RequestEvent,
    RetryPolicy,
    Timeouts,
    VendorHttp,
    parse_retry_after,
    path_template,
    vendor_message,
)
from syncd.adapters.ratelimit import UNLIMITED, MemoryRateBudget, plan_window
from syncd.adapters.registry import FACTORIES, create_adapter, load_factory, vendors
from syncd.errors import (
    AuthFailed,
    ConfigError,
    Fatal,
    NotFound,
    RateLimited,
    SkipRecord,
    SyncdError,
    Uncertain,
    VendorUnavailable,
)
from syncd.settings import AccountSettings, RateLimitWindow
from tests.adapters.conftest import MockedHttp

BASE = "https://acme.example.test/api/v2"
SECRET = "sk_live_6f1c2b9e4d7a"
NOW = 1_780_000_000.0  # a fixed Unix time for Retry-After arithmetic
DEFAULT = RetryPolicy()
TRIES = DEFAULT.attempts  # what a safe call gets by default


class Vendor:
    """Registers canned answers for paths under BASE and records what was sent."""

    def __init__(self, mocked: MockedHttp, log: list[Any]) -> None:
        self._mocked = mocked
        self.log = log
        self.sent: list[dict[str, Any]] = []

    def answer(self, method: str, path: str, *, times: int = 1, **kwargs: Any) -> None:
        def record(url: URL, **request: Any) -> CallbackResult | None:
            self.log.append("send")
            self.sent.append({"url": url, **request})
            return None

        for _ in range(times):
            self._mocked.add(BASE + path, method=method, callback=record, **kwargs)


class Budget:
    """Records acquire / penalize / success calls in one shared log."""

    pauses_after_penalty = True  # like ratelimit.py's budgets: acquire waits out a 429

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.penalties: list[float | None] = []

    async def acquire(self, lane: Any) -> None:
        self.log.append(f"acquire:{lane}")

    async def penalize(self, retry_after: float | None) -> None:
        self.log.append("penalize")
        self.penalties.append(retry_after)

    def record_success(self) -> None:
        self.log.append("success")


class Sleeper:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def log() -> list[Any]:
    return []


@pytest.fixture
def vendor(mocked_http: MockedHttp, log: list[Any]) -> Vendor:
    return Vendor(mocked_http, log)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def budget(log: list[Any]) -> Budget:
    return Budget(log)


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


@pytest.fixture
def events() -> list[RequestEvent]:
    return []


@pytest.fixture
def http(
    session: aiohttp.ClientSession, budget: Budget, sleeper: Sleeper, events: list[RequestEvent]
) -> VendorHttp:
    return make_http(session, budget=budget, sleep=sleeper, observer=events.append)


def make_http(session: aiohttp.ClientSession, **kwargs: Any) -> VendorHttp:
    options: dict[str, Any] = {
        "account": "acme-books",
        "vendor": "moneybird",
        "base_url": BASE,
        "auth_headers": {"Authorization": f"Bearer {SECRET}", "X-API-KEY": SECRET},
        "rng": random.Random(7),
        "clock": lambda: NOW,
        "sleep": Sleeper(),
    }
    options.update(kwargs)
    return VendorHttp(session, **options)


def assert_no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.args)):
        assert SECRET not in text
    reason = getattr(exc, "reason", None)
    assert reason is None or SECRET not in reason


# --------------------------------------------------------------------------- success


async def test_200_json_is_returned_parsed_with_fractions_as_decimal(
    http: VendorHttp, vendor: Vendor
) -> None:
    vendor.answer("GET", "/contacts.json", body='{"total": 12.30, "n": 3, "name": "Acme"}')

    response = await http.get("/contacts.json")

    assert isinstance(response, HttpResponse)
    assert response.status == 200
    assert response.body == {"total": Decimal("12.30"), "n": 3, "name": "Acme"}
    assert isinstance(response.body["total"], Decimal)
    assert response.headers["content-type"] == "application/json"
    assert response.text == '{"total": 12.30, "n": 3, "name": "Acme"}'


async def test_204_with_an_empty_body_returns_none(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("DELETE", "/contacts/7.json", status=204)

    response = await http.delete("/contacts/7.json")

    assert (response.status, response.body, response.text) == (204, None, "")


async def test_head_needs_no_body(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("HEAD", "/contacts.json", headers={"RateLimit-Remaining": "149"})

    response = await http.request("HEAD", "/contacts.json")

    assert (response.body, response.headers["ratelimit-remaining"]) == (None, "149")


async def test_request_carries_auth_headers_params_and_an_exact_json_body(
    http: VendorHttp, vendor: Vendor
) -> None:
    vendor.answer("POST", "/contacts.json?page=2&per_page=100", status=201, payload={"id": "9"})

    await http.post(
        "/contacts.json",
        params={"page": "2", "per_page": "100"},
        json={"price": Decimal("10.10"), "tax": Decimal("0.00"), "name": "Café"},
        headers={"Idempotency-Key": "tok-1"},
    )

    [sent] = vendor.sent
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert sent["headers"]["Accept"] == "application/json"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Idempotency-Key"] == "tok-1"
    assert sent["data"] == '{"price":10.10,"tax":0.00,"name":"Café"}'.encode()
    assert sent["allow_redirects"] is False


async def test_non_finite_decimal_is_refused_before_anything_is_sent(
    http: VendorHttp, vendor: Vendor
) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        await http.post("/contacts.json", json={"price": Decimal("NaN")})

    assert vendor.sent == []


async def test_expect_json_false_accepts_a_non_json_body(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("POST", "/invoices/5/send", body="OK", content_type="text/plain")

    response = await http.post("/invoices/5/send", expect_json=False)

    assert (response.body, response.text) == (None, "OK")


async def test_response_text_is_cut_to_2000_characters(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("GET", "/big", payload={"data": "x" * 5000})

    response = await http.get("/big")

    assert len(response.text) == 2000
    assert response.body == {"data": "x" * 5000}


# --------------------------------------------------------------------------- 2xx that is not data


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        ("<!DOCTYPE html><html><body>Back soon</body></html>", "text/html", "HTML page"),
        ('{"data": [{"id": "1", "name": "', "application/json", "garbled JSON"),
        ("", "application/json", "empty body"),
    ],
)
async def test_200_that_is_not_json_is_retried_on_a_get_and_never_returned_as_data(
    http: VendorHttp, vendor: Vendor, body: str, content_type: str, detail: str
) -> None:
    vendor.answer("GET", "/contacts.json", times=TRIES, body=body, content_type=content_type)

    with pytest.raises(VendorUnavailable, match=detail):
        await http.get("/contacts.json")

    assert http.calls == TRIES


async def test_garbled_200_followed_by_a_good_answer_returns_the_good_one(
    http: VendorHttp, vendor: Vendor
) -> None:
    vendor.answer("GET", "/contacts.json", body='{"data": [')
    vendor.answer("GET", "/contacts.json", payload={"data": []})

    response = await http.get("/contacts.json")

    assert response.body == {"data": []}
    assert http.calls == 2


async def test_html_200_on_a_post_is_uncertain_and_not_resent(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper
) -> None:
    vendor.answer("POST", "/contacts.json", body="<html>oops</html>", content_type="text/html")

    with pytest.raises(Uncertain, match="HTML page") as caught:
        await http.post("/contacts.json", json={"name": "Acme"})

    assert http.calls == 1
    assert sleeper.sleeps == []
    assert "look the record up" in str(caught.value)


# --------------------------------------------------------------------------- 4xx


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            422,
            {"error": {"firstname": ["is required"]}, "details": {}},
            "firstname: is required",
        ),
        (400, {"error": "Contact is required", "symbolic": {"contact": "required"}}, None),
        (
            409,
            {"status": False, "error": {"email": "taken"}, "message": "<p>Email taken</p>\n"},
            "email: taken",
        ),
        (400, {"status": 400, "errors": ["Invoice with given ID does not exist."]}, None),
        (400, {"errors": [{"message": "Name is too long"}]}, "Name is too long"),
        (402, {"error": "creating sales invoices is limited"}, None),
    ],
)
async def test_client_errors_skip_the_record_with_the_vendors_own_message(
    http: VendorHttp,
    vendor: Vendor,
    sleeper: Sleeper,
    status: int,
    body: dict[str, Any],
    reason: str | None,
) -> None:
    vendor.answer("POST", "/contacts.json", status=status, payload=body)

    with pytest.raises(SkipRecord) as caught:
        await http.post("/contacts.json", json={})

    expected = reason or next(
        v if isinstance(v, str) else v[0] for k, v in body.items() if k in ("error", "errors")
    )
    assert caught.value.reason == expected
    assert http.calls == 1
    assert sleeper.sleeps == []


async def test_a_long_vendor_message_is_truncated(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("PUT", "/contacts/1.json", status=422, payload={"error": "bad " * 500})

    with pytest.raises(SkipRecord) as caught:
        await http.put("/contacts/1.json", json={})

    assert len(caught.value.reason) <= 300
    assert caught.value.reason.endswith("…")


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_statuses_raise_auth_failed_without_retry(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper, status: int
) -> None:
    vendor.answer("GET", "/contacts.json", status=status, payload={"error": "Token is invalid"})

    with pytest.raises(AuthFailed) as caught:
        await http.get("/contacts.json")

    assert str(caught.value) == (
        f"moneybird rejected the credentials of account acme-books ({status}: Token is invalid)"
    )
    assert http.calls == 1
    assert sleeper.sleeps == []


async def test_404_raises_not_found(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("GET", "/contacts/123456789.json", status=404, payload={"error": "not found"})

    with pytest.raises(NotFound, match=r"GET /contacts/\{id\}.json: not found \(404: not found\)"):
        await http.get("/contacts/123456789.json")

    assert http.calls == 1


async def test_a_redirect_is_not_followed_and_is_fatal(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer(
        "GET", "/contacts.json", status=301, headers={"Location": "https://elsewhere.test/"}
    )

    with pytest.raises(Fatal, match=r"redirected .* check the account's base_url"):
        await http.get("/contacts.json")


# --------------------------------------------------------------------------- classify hook


async def test_classify_turns_a_404_with_a_token_message_into_auth_failed(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    seen: list[tuple[int, Any]] = []

    def perfex(status: int, headers: Mapping[str, str], body: Any, text: str) -> SyncdError | None:
        seen.append((status, body))
        if status == 404 and "token" in vendor_message(body, text).lower():
            return AuthFailed("perfex rejected the credentials of account crm (404: token)")
        return None

    http = make_http(session, classify=perfex)
    vendor.answer(
        "GET", "/customers", status=404, payload={"status": False, "message": "Token is not found"}
    )
    vendor.answer(
        "GET",
        "/customers/5",
        status=404,
        payload={"status": False, "message": "No data were found"},
    )

    with pytest.raises(AuthFailed):
        await http.get("/customers")
    with pytest.raises(NotFound):
        await http.get("/customers/5")

    assert seen == [
        (404, {"status": False, "message": "Token is not found"}),
        (404, {"status": False, "message": "No data were found"}),
    ]


async def test_classify_sees_successful_answers_too(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    def envelope(
        status: int, headers: Mapping[str, str], body: Any, text: str
    ) -> SyncdError | None:
        if isinstance(body, dict) and body.get("status") == 400:
            return SkipRecord(vendor_message(body, text))
        return None

    http = make_http(session, classify=envelope)
    vendor.answer("POST", "/clients/save", payload={"status": 400, "errors": ["Name missing"]})

    with pytest.raises(SkipRecord, match="Name missing"):
        await http.post("/clients/save", json={})


# --------------------------------------------------------------------------- 429


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "30"},
        {"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)},
        {"Retry-After": str(int(NOW + 30))},
        {"RateLimit-Reset": str(int(NOW + 30))},
        {"X-RateLimit-Reset": str(int(NOW + 30))},
        {"RateLimit-Reset": "30"},
    ],
    ids=[
        "seconds",
        "http-date",
        "epoch",
        "ratelimit-reset-epoch",
        "x-ratelimit-reset",
        "reset-seconds",
    ],
)
async def test_429_penalizes_the_budget_with_retry_after_and_retries(
    http: VendorHttp, vendor: Vendor, budget: Budget, log: list[Any], headers: dict[str, str]
) -> None:
    vendor.answer("GET", "/contacts.json", status=429, body='"Retry later"', headers=headers)
    vendor.answer("GET", "/contacts.json", payload={"ok": True})

    response = await http.get("/contacts.json")

    assert response.body == {"ok": True}
    assert budget.penalties == [pytest.approx(30.0)]
    assert log == ["acquire:pull", "send", "penalize", "acquire:pull", "send", "success"]


async def test_429_is_retried_even_for_a_post_because_it_was_not_processed(
    http: VendorHttp, vendor: Vendor, budget: Budget
) -> None:
    vendor.answer("POST", "/contacts.json", status=429, headers={"Retry-After": "2"})
    vendor.answer("POST", "/contacts.json", status=201, payload={"id": "1"})

    response = await http.post("/contacts.json", json={"name": "Acme"})

    assert response.status == 201
    assert http.calls == 2


async def test_429_every_time_ends_in_rate_limited_with_retry_after(
    http: VendorHttp, vendor: Vendor, budget: Budget
) -> None:
    vendor.answer("GET", "/contacts.json", times=TRIES, status=429, headers={"Retry-After": "12"})

    with pytest.raises(RateLimited) as caught:
        await http.get("/contacts.json")

    assert caught.value.retry_after == pytest.approx(12.0)
    assert budget.penalties == [pytest.approx(12.0)] * TRIES
    assert http.calls == TRIES


async def test_429_without_a_budget_sleeps_retry_after_itself(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    sleeper = Sleeper()
    http = make_http(session, sleep=sleeper)
    vendor.answer("GET", "/contacts.json", status=429, headers={"Retry-After": "3"})
    vendor.answer("GET", "/contacts.json", payload={})

    await http.get("/contacts.json")

    assert sleeper.sleeps == [3.0]


async def test_429_with_a_budget_that_does_not_pause_still_sleeps_retry_after(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    sleeper = Sleeper()
    http = make_http(session, sleep=sleeper, budget=UNLIMITED)
    vendor.answer("GET", "/contacts.json", status=429, headers={"Retry-After": "4"})
    vendor.answer("GET", "/contacts.json", payload={})

    await http.get("/contacts.json")

    assert sleeper.sleeps == [4.0]


async def test_429_with_a_real_budget_is_waited_out_by_the_budget_not_by_http(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    now = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    budget_sleeps: list[float] = []

    async def budget_sleep(seconds: float) -> None:
        budget_sleeps.append(seconds)
        now[0] += timedelta(seconds=seconds)

    window = RateLimitWindow(requests=60, per=timedelta(minutes=1))
    budget = MemoryRateBudget([window], clock=lambda: now[0], sleep=budget_sleep)
    http_sleeper = Sleeper()
    http = make_http(session, sleep=http_sleeper, budget=budget)
    vendor.answer("GET", "/contacts.json", status=429, headers={"Retry-After": "5"})
    vendor.answer("GET", "/contacts.json", payload={})

    await http.get("/contacts.json")

    assert http_sleeper.sleeps == []
    per_token = 60 / (plan_window(window).refill_per_window * 0.8)
    assert budget_sleeps == [pytest.approx(5 + per_token, abs=1e-5)]


async def test_429_asking_for_longer_than_max_delay_gives_up_at_once_without_a_budget(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    sleeper = Sleeper()
    http = make_http(session, sleep=sleeper)
    vendor.answer("GET", "/contacts.json", status=429, headers={"Retry-After": "3600"})

    with pytest.raises(RateLimited) as caught:
        await http.get("/contacts.json")

    assert caught.value.retry_after == 3600.0
    assert sleeper.sleeps == []
    assert http.calls == 1


# --------------------------------------------------------------------------- 5xx and transport


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_on_a_get_is_retried_with_growing_jittered_backoff_then_unavailable(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper, log: list[Any], status: int
) -> None:
    vendor.answer("GET", "/contacts.json", times=TRIES, status=status, payload={"error": "boom"})

    with pytest.raises(VendorUnavailable, match=f"{status}: boom"):
        await http.get("/contacts.json")

    assert http.calls == TRIES
    assert len(sleeper.sleeps) == TRIES - 1
    for n, delay in enumerate(sleeper.sleeps):
        low, high = (DEFAULT.base_delay * 2**n * jitter for jitter in (0.5, 1.5))
        assert min(low, DEFAULT.max_backoff) <= delay <= min(high, DEFAULT.max_backoff)
    assert sum(sleeper.sleeps) <= DEFAULT.worst_case_backoff()
    assert log.count("acquire:pull") == TRIES
    assert "success" not in log


def test_default_policy_survives_a_20_percent_fault_rate_without_long_waits() -> None:
    # A 300-page listing at 20 % faults fails when any one page fails every try.
    listing_fails = 1 - (1 - 0.2**DEFAULT.attempts) ** 300
    assert DEFAULT.attempts >= 6
    assert listing_fails < 0.05
    assert DEFAULT.worst_case_backoff() <= 10.0  # seconds a hopeless call spends pausing
    assert DEFAULT.max_delay >= 30.0  # a vendor's Retry-After of half a minute is waited out


@pytest.mark.parametrize(
    ("policy", "cap"),
    [
        (RetryPolicy(attempts=6, base_delay=1.0, max_backoff=5.0), 5.0),
        (RetryPolicy(attempts=6, base_delay=1.0, max_backoff=60.0, max_delay=3.0), 3.0),
    ],
    ids=["max_backoff", "max_delay"],
)
async def test_backoff_is_capped(
    session: aiohttp.ClientSession, vendor: Vendor, policy: RetryPolicy, cap: float
) -> None:
    sleeper = Sleeper()
    http = make_http(session, sleep=sleeper, retry=policy)
    vendor.answer("GET", "/x", times=6, status=500)

    with pytest.raises(VendorUnavailable):
        await http.get("/x")

    assert max(sleeper.sleeps) <= cap
    assert sleeper.sleeps[-1] == cap
    assert sum(sleeper.sleeps) <= policy.worst_case_backoff()


async def test_503_retry_after_is_honoured(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper
) -> None:
    vendor.answer("GET", "/contacts.json", status=503, headers={"Retry-After": "7"})
    vendor.answer("GET", "/contacts.json", payload={"ok": 1})

    await http.get("/contacts.json")

    assert sleeper.sleeps == [7.0]


async def test_5xx_then_success_returns_the_answer(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("GET", "/contacts.json", status=502)
    vendor.answer("GET", "/contacts.json", payload={"data": [1]})

    response = await http.get("/contacts.json")

    assert response.body == {"data": [1]}


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_on_a_post_is_uncertain_without_a_retry(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper, status: int
) -> None:
    vendor.answer("POST", "/contacts.json", status=status)

    with pytest.raises(Uncertain, match=f"outcome unknown \\({status}"):
        await http.post("/contacts.json", json={"name": "Acme"})

    assert http.calls == 1
    assert sleeper.sleeps == []


async def test_5xx_on_a_patch_is_uncertain(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("PATCH", "/contacts/1.json", status=500)

    with pytest.raises(Uncertain):
        await http.patch("/contacts/1.json", json={"name": "Acme"})


async def test_a_read_only_post_marked_idempotent_is_retried(
    http: VendorHttp, vendor: Vendor
) -> None:
    vendor.answer("POST", "/contacts/synchronization.json", status=500)
    vendor.answer("POST", "/contacts/synchronization.json", payload=[{"id": "1", "version": 3}])

    response = await http.post(
        "/contacts/synchronization.json", json={"ids": ["1"]}, idempotent=True
    )

    assert response.body == [{"id": "1", "version": 3}]
    assert http.calls == 2


async def test_a_put_is_idempotent_and_retried_on_5xx(http: VendorHttp, vendor: Vendor) -> None:
    vendor.answer("PUT", "/contacts/1", status=500)
    vendor.answer("PUT", "/contacts/1", payload={"id": "1"})

    await http.put("/contacts/1", json={"name": "Acme"})

    assert http.calls == 2


@pytest.mark.parametrize(
    "exception",
    [
        TimeoutError(),
        aiohttp.SocketTimeoutError("read timed out"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
    ],
    ids=["timeout", "read-timeout", "disconnected", "reset", "payload"],
)
async def test_transport_failure_after_sending_a_post_is_uncertain(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper, exception: Exception
) -> None:
    vendor.answer("POST", "/contacts.json", exception=exception)

    with pytest.raises(Uncertain, match="outcome unknown"):
        await http.post("/contacts.json", json={"name": "Acme"})

    assert http.calls == 1
    assert sleeper.sleeps == []


@pytest.mark.parametrize(
    "exception",
    [TimeoutError(), aiohttp.ServerDisconnectedError()],
    ids=["timeout", "disconnected"],
)
async def test_transport_failure_on_a_get_is_retried_then_unavailable(
    http: VendorHttp, vendor: Vendor, exception: Exception
) -> None:
    vendor.answer("GET", "/contacts.json", times=TRIES, exception=exception)

    with pytest.raises(VendorUnavailable):
        await http.get("/contacts.json")

    assert http.calls == TRIES


def _refused() -> aiohttp.ClientConnectorError:
    key = Mock(host="acme.example.test", port=443, ssl=True)
    return aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))


async def test_connection_refused_on_a_post_is_retried_because_nothing_was_sent(
    http: VendorHttp, vendor: Vendor, sleeper: Sleeper, log: list[Any]
) -> None:
    vendor.answer("POST", "/contacts.json", exception=_refused())
    vendor.answer("POST", "/contacts.json", status=201, payload={"id": "1"})

    response = await http.post("/contacts.json", json={"name": "Acme"})

    assert response.body == {"id": "1"}
    assert len(sleeper.sleeps) == 1
    assert http.calls == 1  # the refused attempt never reached the vendor
    assert log.count("acquire:pull") == 2


async def test_connection_refused_every_time_ends_in_vendor_unavailable(
    http: VendorHttp, vendor: Vendor
) -> None:
    vendor.answer("POST", "/contacts.json", times=TRIES, exception=_refused())

    with pytest.raises(VendorUnavailable, match="cannot connect"):
        await http.post("/contacts.json", json={"name": "Acme"})

    assert http.calls == 0


# --------------------------------------------------------------------------- budget, calls, metrics


async def test_the_budget_is_acquired_before_every_attempt_in_the_callers_lane(
    http: VendorHttp, vendor: Vendor, log: list[Any]
) -> None:
    vendor.answer("GET", "/contacts.json", status=500)
    vendor.answer("GET", "/contacts.json", status=429)
    vendor.answer("GET", "/contacts.json", payload={})

    await http.get("/contacts.json", lane="reconcile")

    assert log == [
        "acquire:reconcile",
        "send",
        "acquire:reconcile",
        "send",
        "penalize",
        "acquire:reconcile",
        "send",
        "success",
    ]


async def test_calls_counts_every_attempt_that_reached_the_vendor(
    http: VendorHttp, vendor: Vendor
) -> None:
    vendor.answer("GET", "/a", payload={})
    vendor.answer("GET", "/b", status=500)
    vendor.answer("GET", "/b", payload={})
    vendor.answer("GET", "/c", status=404)

    await http.get("/a")
    await http.get("/b")
    with pytest.raises(NotFound):
        await http.get("/c")

    assert http.calls == 4


async def test_observer_gets_one_event_per_attempt_with_the_path_template(
    http: VendorHttp, vendor: Vendor, events: list[RequestEvent]
) -> None:
    vendor.answer("GET", "/contacts/123456.json", status=500)
    vendor.answer("GET", "/contacts/123456.json", payload={})

    await http.get("/contacts/123456.json", lane="push")

    assert [(e.method, e.path, e.status, e.error, e.lane) for e in events] == [
        ("GET", "/contacts/{id}.json", 500, "http_500", "push"),
        ("GET", "/contacts/{id}.json", 200, None, "push"),
    ]
    assert all(e.account == "acme-books" and e.vendor == "moneybird" for e in events)
    assert all(e.elapsed >= 0 for e in events)


async def test_a_failing_observer_does_not_break_the_request(
    session: aiohttp.ClientSession, vendor: Vendor
) -> None:
    def broken(event: RequestEvent) -> None:
        raise RuntimeError("metrics down")

    http = make_http(session, observer=broken)
    vendor.answer("GET", "/a", payload={"ok": 1})

    assert (await http.get("/a")).body == {"ok": 1}


# --------------------------------------------------------------------------- secrets


def _echo(**kwargs: Any) -> dict[str, Any]:
    """A vendor answer that echoes our token back in its message."""
    return {"payload": {"error": f"token {SECRET} rejected"}, **kwargs}


@pytest.mark.parametrize(
    ("method", "answers", "error"),
    [
        ("GET", [_echo(status=401)], AuthFailed),
        ("GET", [_echo(status=403)], AuthFailed),
        ("GET", [_echo(status=404)], NotFound),
        ("POST", [_echo(status=422)], SkipRecord),
        ("GET", [_echo(status=500)] * TRIES, VendorUnavailable),
        ("POST", [_echo(status=500)], Uncertain),
        ("GET", [_echo(status=429)] * TRIES, RateLimited),
        ("GET", [{"status": 302, "headers": {"Location": f"https://x.test/?t={SECRET}"}}], Fatal),
        ("POST", [{"exception": aiohttp.ServerDisconnectedError()}], Uncertain),
        ("GET", [{"exception": TimeoutError()}] * TRIES, VendorUnavailable),
        ("POST", [{"exception": _refused()}] * TRIES, VendorUnavailable),
        (
            "GET",
            [{"body": f"<html>{SECRET}</html>", "content_type": "text/html"}] * TRIES,
            VendorUnavailable,
        ),
    ],
)
async def test_no_error_message_or_log_line_contains_a_secret(
    http: VendorHttp,
    vendor: Vendor,
    caplog: pytest.LogCaptureFixture,
    method: str,
    answers: list[dict[str, Any]],
    error: type[Exception],
) -> None:
    caplog.set_level(logging.DEBUG, logger="syncd")
    for answer in answers:
        vendor.answer(method, "/contacts.json", **answer)

    with pytest.raises(error) as caught:
        await http.request(method, "/contacts.json", json={"name": "Acme"})

    assert_no_secret(caught.value)
    assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)
    assert SECRET not in caplog.text
    assert SECRET not in repr(http)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        ("1.5", 1.5),
        (" 0 ", 0.0),
        ("-5", 0.0),
        (str(int(NOW + 90)), 90.0),
        (str(int(NOW - 90)), 0.0),
        (email.utils.formatdate(NOW + 120, usegmt=True), 120.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after_reads_seconds_epochs_and_http_dates(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, now=NOW) == (
        None if seconds is None else pytest.approx(seconds)
    )


@pytest.mark.parametrize(
    ("body", "text", "message"),
    [
        ("Retry later", '"Retry later"', "Retry later"),
        ({"errors": ["a", {"message": "b"}]}, "", "a; b"),
        ({"data": None, "errors": ["x"], "debug": None}, "", "x"),
        (
            {"status": False, "message": "<p>The Company field is required.</p>\n"},
            "",
            "The Company field is required.",
        ),
        (None, "<html><body><h1>Bad gateway</h1></body></html>", "Bad gateway"),
        ({"unrelated": 1}, "plain text", "plain text"),
    ],
)
def test_vendor_message_understands_every_vendors_error_shape(
    body: Any, text: str, message: str
) -> None:
    assert vendor_message(body, text) == message


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/contacts/123456789.json", "/contacts/{id}.json"),
        ("/crm/organization/organization:3f2a9c", "/crm/organization/{id}"),
        ("/clients/list", "/clients/list"),
        ("/customers/5/contacts?page=2", "/customers/{id}/contacts"),
    ],
)
def test_path_template_collapses_ids(path: str, template: str) -> None:
    assert path_template(path) == template


def test_timeouts_map_to_connect_and_read_socket_timeouts() -> None:
    timeout = Timeouts(connect=3, read=20).client_timeout()

    assert (timeout.total, timeout.sock_connect, timeout.sock_read) == (23, 3, 20)


# --------------------------------------------------------------------------- registry


def stub_factory(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: Any,
    sleep: Any = None,
) -> Any:
    """A test-only adapter factory: returns what it was given."""
    return {"account": account.name, "session": session, "budget": budget, "sleep": sleep}


STUB = {"simplicate": "tests.adapters.test_http:stub_factory"}


def _simplicate_account() -> AccountSettings:
    return AccountSettings.model_validate(
        {
            "name": "acme-crm",
            "vendor": "simplicate",
            "base_url": "https://acme.simplicate.nl/api/v2",
            "credentials": {"key": "k" * 12, "secret": "s" * 12},
        }
    )


async def test_registry_builds_the_adapter_through_the_vendors_factory(
    session: aiohttp.ClientSession, sleeper: Sleeper
) -> None:
    budget: Any = object()  # the stub factory only passes it on

    adapter: Any = create_adapter(
        _simplicate_account(), session, budget=budget, sleep=sleeper, factories=STUB
    )

    assert adapter == {
        "account": "acme-crm",
        "session": session,
        "budget": budget,
        "sleep": sleeper,
    }


async def test_registry_refuses_an_unknown_vendor_with_a_config_problem(
    session: aiohttp.ClientSession,
) -> None:
    with pytest.raises(ConfigError) as caught:
        create_adapter(_simplicate_account(), session, budget=None, factories={"fake": "x:y"})

    [problem] = caught.value.problems
    assert problem.path == "account acme-crm: vendor"
    assert problem.message == "unknown vendor 'simplicate'; expected one of fake"


def test_registry_reports_a_missing_adapter_package_as_a_config_problem() -> None:
    with pytest.raises(ConfigError, match=r"the perfex adapter .* is not installed"):
        load_factory("perfex", factories={"perfex": "syncd.adapters.no_such_vendor:create_adapter"})


def test_registry_knows_the_four_vendors_and_the_fake() -> None:
    assert vendors() == ("fake", "moneybird", "perfex", "simplbooks", "simplicate")
    assert all(target.endswith(":create_adapter") for target in FACTORIES.values())


def test_importing_the_registry_imports_no_vendor_adapter() -> None:
    code = (
        "import sys, syncd.adapters.registry\n"
        "print(sorted(m for m in sys.modules if m.startswith('syncd.adapters.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout

    loaded = set(ast.literal_eval(out))
    assert loaded <= {"syncd.adapters.base", "syncd.adapters.http", "syncd.adapters.registry"}


# --------------------------------------------------------------------------- the aioresponses shim


async def test_mocked_http_answers_with_any_registration_shortcut(
    mocked_http: MockedHttp, session: aiohttp.ClientSession
) -> None:
    mocked_http.get(BASE + "/a", payload={"ok": True})
    mocked_http.add(BASE + "/b", method="POST", status=201, body="{}")
    async with session.get(BASE + "/a") as first, session.post(BASE + "/b") as second:
        assert (first.status, await first.json()) == (200, {"ok": True})
        assert (second.status, await second.json()) == (201, {})

"""The sandbox framework: rate-limit windows, fault injection, middleware, server, registry."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from syncd.sandbox import registry
from syncd.sandbox.base import (
    FAULT_KINDS,
    VENDORS,
    RateWindow,
    SandboxOptions,
    VendorEmulator,
)
from syncd.sandbox.common import FaultInjector, SlidingWindowLimiter, garble
from syncd.sandbox.server import build_sandbox, describe, parse_listen, serve
from syncd.sandbox.testing import SandboxHandle, running_sandbox

Auth = Callable[..., dict[str, str]]


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# ---------------------------------------------------------------- the limiter


def _limiter(
    tiny_emulator: Callable[..., Any],
    *windows: RateWindow,
    scale: float = 1.0,
    counts_rejected: bool = False,
) -> SlidingWindowLimiter:
    emulator = tiny_emulator(SandboxOptions(rate_scale=scale))
    emulator.windows = windows
    emulator.rejected_count = counts_rejected
    return SlidingWindowLimiter(emulator)


def test_limiter_allows_exactly_the_window_then_refuses_the_next(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator, RateWindow(3, 10.0))
    decisions = [limiter.take(t) for t in (0.0, 1.0, 2.0)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.limit == 3 and d.window_seconds == 10.0 for d in decisions)

    refused = limiter.take(3.0)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.reset_seconds == pytest.approx(7.0)  # the request at 0.0 leaves at 10.0


def test_limiter_frees_a_slot_exactly_when_the_oldest_request_leaves(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator, RateWindow(2, 10.0))
    assert limiter.take(0.0).allowed
    assert limiter.take(4.0).allowed
    assert not limiter.take(9.999).allowed
    again = limiter.take(10.0)
    assert again.allowed
    assert again.remaining == 0
    assert again.reset_seconds == pytest.approx(4.0)  # next slot frees when 4.0 leaves
    assert not limiter.take(13.9).allowed
    assert limiter.take(14.0).allowed


def test_limiter_divides_every_window_by_the_rate_scale(tiny_emulator: Any) -> None:
    # A minute's budget of 3 requests becomes a second's budget at scale 60.
    limiter = _limiter(tiny_emulator, RateWindow(3, 60.0), scale=60.0)
    assert all(limiter.take(t).allowed for t in (0.0, 0.1, 0.2))
    refused = limiter.take(0.5)
    assert not refused.allowed
    assert refused.window_seconds == pytest.approx(1.0)
    assert refused.reset_seconds == pytest.approx(0.5)
    assert limiter.take(1.0).allowed


def test_limiter_reads_the_windows_again_for_every_request(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator, RateWindow(4, 60.0))
    assert limiter.take(0.0).allowed
    assert limiter.take(1.0).allowed
    emulator = limiter._emulator
    assert isinstance(emulator, VendorEmulator)
    emulator.windows = (RateWindow(2, 60.0),)  # type: ignore[attr-defined]  # halved
    assert not limiter.take(2.0).allowed


def test_limiter_takes_from_every_window_and_reports_the_tightest(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator, RateWindow(2, 1.0), RateWindow(3, 10.0))
    assert limiter.take(0.0).allowed
    second = limiter.take(0.1)
    assert second.allowed and second.limit == 2 and second.remaining == 0  # short window
    short = limiter.take(0.2)
    assert not short.allowed and short.limit == 2
    assert short.reset_seconds == pytest.approx(0.8)
    third = limiter.take(1.5)
    assert third.allowed and third.limit == 3 and third.remaining == 0  # long window now
    long = limiter.take(2.6)
    assert not long.allowed and long.limit == 3 and long.window_seconds == 10.0
    assert long.reset_seconds == pytest.approx(7.4)


def test_refused_requests_do_not_use_the_window_by_default(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator, RateWindow(2, 10.0))
    assert limiter.take(0.0).allowed
    assert limiter.take(1.0).allowed
    assert not limiter.take(5.0).allowed
    assert limiter.take(10.0).allowed  # only 1.0 is still in the window


def test_refused_requests_use_the_window_when_the_vendor_counts_them(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator, RateWindow(2, 10.0), counts_rejected=True)
    assert limiter.take(0.0).allowed
    assert limiter.take(1.0).allowed
    refused = limiter.take(5.0)
    assert not refused.allowed
    assert refused.reset_seconds == pytest.approx(1.0 + 10.0 - 5.0)  # 0.0 and 1.0 must leave
    assert not limiter.take(10.0).allowed  # the refused 5.0 still counts; so will 10.0
    assert not limiter.take(12.0).allowed  # 5.0 and 10.0 fill the window
    assert limiter.take(21.0).allowed  # only 12.0 is left: pausing is what helps


def test_limiter_without_windows_allows_everything(tiny_emulator: Any) -> None:
    limiter = _limiter(tiny_emulator)
    assert all(limiter.take(float(t)).allowed for t in range(1000))


# ---------------------------------------------------------------- the fault injector


def test_fault_injector_repeats_its_choices_for_the_same_seed() -> None:
    kinds = FAULT_KINDS
    first = [FaultInjector("7:x").choose(fault_rate=0.5, kinds=kinds, is_write=False)]
    a, b, c = FaultInjector("7:x"), FaultInjector("7:x"), FaultInjector("8:x")
    seq_a = [a.choose(fault_rate=0.5, kinds=kinds, is_write=i % 3 == 0) for i in range(300)]
    seq_b = [b.choose(fault_rate=0.5, kinds=kinds, is_write=i % 3 == 0) for i in range(300)]
    seq_c = [c.choose(fault_rate=0.5, kinds=kinds, is_write=i % 3 == 0) for i in range(300)]
    assert seq_a == seq_b
    assert seq_a != seq_c
    assert seq_a[0] == first[0]
    assert set(seq_a) - {None} == set(FAULT_KINDS)


def test_fault_injector_honours_the_rate_and_the_kinds_that_apply() -> None:
    injector = FaultInjector(1)
    reads = [
        injector.choose(fault_rate=0.3, kinds=FAULT_KINDS, is_write=False) for _ in range(2000)
    ]
    share = sum(k is not None for k in reads) / len(reads)
    assert 0.25 < share < 0.35
    assert "lost_response" not in reads  # writes only
    writes = [injector.choose(fault_rate=1.0, kinds=FAULT_KINDS, is_write=True) for _ in range(500)]
    assert None not in writes
    assert not {"garbled", "html"} & set(writes)  # reads only
    assert injector.choose(fault_rate=1.0, kinds=("garbled",), is_write=True) is None
    assert FaultInjector(1).choose(fault_rate=0.0, kinds=FAULT_KINDS, is_write=False) is None


def test_garble_always_breaks_the_json() -> None:
    for body in (b'{"a": 1}', b"[]", b"12345678", b'"Retry later"', b"", b'{"data": [1, 2, 3]}'):
        with pytest.raises(ValueError):
            json.loads(garble(body))


# ---------------------------------------------------------------- faults on a real client


async def _faulted(handle: SandboxHandle, kind: str, **extra: Any) -> None:
    handle.options.fault_rate = 1.0
    handle.options.fault_kinds = (kind,)
    for key, value in extra.items():
        setattr(handle.options, key, value)


async def test_reset_fault_drops_the_connection_before_the_handler(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "reset")
    emulator = tiny_sandbox.emulators["moneybird"]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.post(
                f"{tiny_sandbox.base_urls['moneybird']}/contacts",
                json={"name": "Never Written B.V."},
                headers=auth(tiny_sandbox),
            )
    assert emulator.handled == []  # type: ignore[attr-defined]
    assert emulator.counters.writes == 0
    assert emulator.counters.faults == {"reset": 1}


async def test_slow_fault_outlasts_a_client_timeout(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "slow", slow_seconds=2.0)
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as http:
        with pytest.raises(asyncio.TimeoutError):
            await http.get(url, headers=auth(tiny_sandbox))
    assert time.monotonic() - started < 1.5
    assert tiny_sandbox.emulators["moneybird"].counters.faults == {"slow": 1}


async def test_slow_fault_answers_normally_when_the_client_waits(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "slow", slow_seconds=0.2)
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth(tiny_sandbox)) as resp:
        assert resp.status == 200
        assert len(await resp.json()) == len(tiny_sandbox.emulators["moneybird"].dump()["contacts"])
    assert time.monotonic() - started >= 0.2


async def test_garbled_fault_sends_status_200_with_invalid_json(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "garbled")
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth(tiny_sandbox)) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.read()
        assert body  # something arrived ...
        with pytest.raises(ValueError):
            json.loads(body)  # ... but it is not JSON
    assert tiny_sandbox.emulators["moneybird"].handled == ["list"]  # type: ignore[attr-defined]


async def test_html_fault_sends_a_web_page_with_status_200(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "html")
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts/1"
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth(tiny_sandbox)) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert "<html" in await resp.text()
        with pytest.raises(aiohttp.ContentTypeError):
            await resp.json()


async def test_lost_response_commits_the_write_but_the_client_gets_no_answer(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "lost_response")
    emulator = tiny_sandbox.emulators["moneybird"]
    before = len(emulator.dump()["contacts"])
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.post(
                f"{tiny_sandbox.base_urls['moneybird']}/contacts",
                json={"name": "Landed Anyway B.V."},
                headers=auth(tiny_sandbox),
            )
    contacts = emulator.dump()["contacts"]
    assert len(contacts) == before + 1
    assert contacts[-1]["name"] == "Landed Anyway B.V."
    assert emulator.counters.writes == 1
    assert emulator.counters.faults == {"lost_response": 1}


@pytest.mark.parametrize(("kind", "status"), [("server_error", 500), ("unavailable", 503)])
async def test_server_error_faults_answer_with_their_status(
    tiny_sandbox: SandboxHandle, auth: Auth, kind: str, status: int
) -> None:
    await _faulted(tiny_sandbox, kind)
    emulator = tiny_sandbox.emulators["moneybird"]
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"name": "X"}, headers=auth(tiny_sandbox)) as resp,
    ):
        assert resp.status == status
        assert await resp.text()
    assert emulator.handled == []  # type: ignore[attr-defined]
    assert emulator.counters.writes == 0
    assert emulator.counters.faults == {kind: 1}


async def test_rate_limit_fault_answers_with_the_vendors_own_429(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "rate_limit")
    emulator = tiny_sandbox.emulators["moneybird"]
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth(tiny_sandbox)) as resp:
        assert resp.status == 429
        assert await resp.json() == "Retry later"
        assert resp.headers["RateLimit-Limit"] == "5"
        assert resp.headers["RateLimit-Remaining"] == "0"
    assert emulator.counters.rate_limited == 1
    assert emulator.counters.faults == {"rate_limit": 1}


@pytest.mark.parametrize("rate_limits", [False, True], ids=["limits-off", "limits-on"])
async def test_rate_limit_fault_asks_for_a_short_wait_not_the_whole_window(
    tiny_sandbox: SandboxHandle, auth: Auth, rate_limits: bool
) -> None:
    # The stand-in's window is a minute; an injected 429 still asks for one second.
    await _faulted(tiny_sandbox, "rate_limit", rate_limits=rate_limits)
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth(tiny_sandbox)) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"


def _vendor_request(handle: SandboxHandle, vendor: str) -> tuple[str, dict[str, str]]:
    """A list request that passes each real emulator's auth."""
    creds = handle.credentials[vendor]  # type: ignore[index]
    base = handle.base_urls[vendor]  # type: ignore[index]
    if vendor == "simplicate":
        headers = {"Authentication-Key": creds["key"], "Authentication-Secret": creds["secret"]}
        return f"{base}/crm/organization", headers
    if vendor == "moneybird":
        return f"{base}/contacts.json", {"Authorization": f"Bearer {creds['token']}"}
    if vendor == "perfex":
        return f"{base}/customers", {"X-API-KEY": creds["api_key"]}
    return f"{base}/clients/list", {"X-Simplbooks-Token": creds["token"]}


async def test_every_vendor_answers_an_injected_429_in_its_own_format_with_a_short_wait() -> None:
    clock = FrozenClock()
    now = int(clock.now.timestamp())
    options = SandboxOptions(
        contacts=4, invoices=0, rate_limits=False, fault_rate=1.0, fault_kinds=("rate_limit",)
    )
    answers: dict[str, tuple[Any, Any]] = {}
    async with running_sandbox(options, clock=clock) as handle:
        # The two vendors that document no rate-limit headers get the optional Retry-After.
        simplicate = handle.emulators["simplicate"]
        simplicate.quirks = dataclasses.replace(simplicate.quirks, retry_after_header=True)  # type: ignore[attr-defined]
        handle.emulators["simplbooks"].retry_after_header = True  # type: ignore[attr-defined]
        async with aiohttp.ClientSession() as http:
            for vendor in VENDORS:
                url, headers = _vendor_request(handle, vendor)
                async with http.get(url, headers=headers) as resp:
                    assert resp.status == 429, vendor
                    answers[vendor] = (resp.headers.copy(), await resp.json(content_type=None))
        assert all(handle.counters(v).faults == {"rate_limit": 1} for v in VENDORS)

    headers, body = answers["simplicate"]
    assert headers["Retry-After"] == "1"
    assert body["errors"] == ["Too Many Requests"]
    headers, body = answers["moneybird"]
    assert body == "Retry later"
    assert headers["Retry-After"] == headers["RateLimit-Reset"] == str(now + 1)  # epochs
    assert headers["RateLimit-Limit"] == "150"
    headers, body = answers["perfex"]
    assert headers["Retry-After"] == "1"
    assert headers["X-RateLimit-Reset"] == str(now + 1)
    assert body == {"status": "error", "message": "Rate limit exceeded", "retry_after": 1}
    headers, body = answers["simplbooks"]
    assert headers["Retry-After"] == "1"
    assert "Number of permitted inquiries per minute: 60" in json.dumps(body)


async def test_read_only_and_write_only_faults_skip_requests_they_do_not_fit(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    await _faulted(tiny_sandbox, "garbled")
    tiny_sandbox.options.fault_kinds = ("garbled", "html")
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"name": "Fine B.V."}, headers=auth(tiny_sandbox)) as resp:
            assert resp.status == 201  # garbled and html are for reads only
        tiny_sandbox.options.fault_kinds = ("lost_response",)
        async with http.get(url, headers=auth(tiny_sandbox)) as resp:
            assert resp.status == 200  # a lost response is for writes only
            await resp.json()
    assert tiny_sandbox.emulators["moneybird"].counters.faults == {}


async def _statuses(handle: SandboxHandle, auth: Auth, n: int) -> list[int]:
    url = f"{handle.base_urls['perfex']}/contacts"
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            async with http.get(url, headers=auth(handle, "perfex")) as resp:
                statuses.append(resp.status)
    return statuses


async def test_same_seed_gives_the_same_faults_over_http(
    tiny_classes: dict[str, type[VendorEmulator]], auth: Auth
) -> None:
    def options(seed: int) -> SandboxOptions:
        return SandboxOptions(
            seed=seed, rate_limits=False, fault_rate=0.5, fault_kinds=("server_error",)
        )

    runs = []
    for seed in (5, 5, 6):
        async with running_sandbox(
            options(seed), vendors=["perfex"], emulator_classes=tiny_classes
        ) as handle:
            runs.append(await _statuses(handle, auth, 30))
            if seed == 6:
                handle.sandbox.reset()  # restarts the fault sequence from the seed
                assert await _statuses(handle, auth, 30) == runs[2]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert set(runs[0]) == {200, 500}


# ---------------------------------------------------------------- the middleware chain


async def test_requests_are_counted_by_route_template(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    base = tiny_sandbox.base_urls["moneybird"]
    async with aiohttp.ClientSession() as http:
        for path in ("/contacts", "/contacts/1", "/contacts/2", "/contacts/999"):
            async with http.get(base + path, headers=auth(tiny_sandbox)) as resp:
                await resp.read()
    counters = tiny_sandbox.emulators["moneybird"].counters
    assert counters.requests == {"GET /contacts": 1, "GET /contacts/{id}": 3}
    assert tiny_sandbox.emulators["simplicate"].counters.requests == {}


async def test_auth_failures_are_counted_and_never_reach_the_limiter_or_handler(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    emulator = tiny_sandbox.emulators["moneybird"]
    emulator.windows = (RateWindow(1, 60.0),)  # type: ignore[attr-defined]
    tiny_sandbox.options.fault_rate = 1.0
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(url, headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
        tiny_sandbox.options.fault_rate = 0.0
        async with http.get(url, headers=auth(tiny_sandbox)) as resp:
            assert resp.status == 200  # the failed attempts used none of the 1-request window
    assert emulator.counters.auth_failures == 3
    assert emulator.counters.requests == {"GET /contacts": 4}
    assert emulator.seen_by_on_request == 1  # type: ignore[attr-defined]
    assert emulator.handled == ["list"]  # type: ignore[attr-defined]
    assert emulator.counters.faults == {}


async def test_rate_limits_answer_429_over_http_and_count_each_one(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    emulator = tiny_sandbox.emulators["moneybird"]
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(7):
            async with http.get(url, headers=auth(tiny_sandbox)) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) > 50  # the window is a minute
    assert statuses == [200] * 5 + [429, 429]
    assert emulator.counters.rate_limited == 2
    assert emulator.counters.requests == {"GET /contacts": 7}
    assert len(emulator.handled) == 5  # type: ignore[attr-defined]
    # Vendors keep separate budgets.
    other = f"{tiny_sandbox.base_urls['simplbooks']}/contacts"
    async with (
        aiohttp.ClientSession() as http,
        http.get(other, headers=auth(tiny_sandbox, "simplbooks")) as resp,
    ):
        assert resp.status == 200


async def test_rate_scale_lets_a_minute_of_budget_pass_in_a_fraction_of_a_second(
    tiny_sandbox: SandboxHandle, auth: Auth
) -> None:
    tiny_sandbox.options.rate_scale = 600.0  # 60 s windows become 0.1 s
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(6):
            async with http.get(url, headers=auth(tiny_sandbox)) as resp:
                statuses.append(resp.status)
        await asyncio.sleep(0.12)
        async with http.get(url, headers=auth(tiny_sandbox)) as resp:
            statuses.append(resp.status)
    assert statuses[:5] == [200] * 5
    assert statuses[6] == 200
    assert tiny_sandbox.emulators["moneybird"].counters.rate_limited == statuses.count(429)


async def test_rate_limits_off_never_answer_429(tiny_sandbox: SandboxHandle, auth: Auth) -> None:
    tiny_sandbox.options.rate_limits = False
    url = f"{tiny_sandbox.base_urls['moneybird']}/contacts"
    async with aiohttp.ClientSession() as http:
        for _ in range(12):
            async with http.get(url, headers=auth(tiny_sandbox)) as resp:
                assert resp.status == 200
    assert tiny_sandbox.emulators["moneybird"].counters.rate_limited == 0


# ---------------------------------------------------------------- server, registry, serve()


def test_each_vendor_is_mounted_at_the_prefix_its_base_url_expects(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    options = SandboxOptions(moneybird_administration_id="42", simplbooks_company_id="acme")
    sandbox = build_sandbox(options, emulator_classes=tiny_classes)
    assert sandbox.base_urls("127.0.0.1:8900") == {
        "simplicate": "http://127.0.0.1:8900/simplicate/api/v2",
        "moneybird": "http://127.0.0.1:8900/moneybird/api/v2/42",
        "perfex": "http://127.0.0.1:8900/perfex/api/v1",
        "simplbooks": "http://127.0.0.1:8900/simplbooks/acme/api",
    }
    assert list(sandbox.emulators) == list(VENDORS)


def test_build_sandbox_serves_only_the_vendors_asked_for(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    sandbox = build_sandbox(SandboxOptions(), vendors=["perfex"], emulator_classes=tiny_classes)
    assert list(sandbox.emulators) == ["perfex"]
    assert list(sandbox.base_urls("h:1")) == ["perfex"]
    with pytest.raises(ValueError, match="unknown vendor"):
        build_sandbox(SandboxOptions(), vendors=["exact"], emulator_classes=tiny_classes)  # type: ignore[list-item]


def test_build_sandbox_loads_each_vendor_its_share_of_the_seeded_world(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    from syncd.sandbox.seed import generate_world

    options = SandboxOptions(seed=11, contacts=12, invoices=9)
    sandbox = build_sandbox(options, emulator_classes=tiny_classes)
    world = generate_world(options)
    for vendor, emulator in sandbox.emulators.items():
        assert [c["name"] for c in emulator.dump()["contacts"]] == [
            c.name for c in world[vendor].contacts
        ]
        assert len(emulator.dump()["invoices"]) == len(world[vendor].invoices)


def test_credentials_are_the_fixed_defaults_unless_overridden(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    options = SandboxOptions(credentials={"moneybird": {"token": "mine"}})
    sandbox = build_sandbox(options, emulator_classes=tiny_classes)
    assert sandbox.credentials() == {
        "simplicate": {"key": "sandbox-simplicate-key", "secret": "sandbox-simplicate-secret"},
        "moneybird": {"token": "mine"},
        "perfex": {"api_key": "sandbox-perfex-key", "jwt": "sandbox-perfex-jwt"},
        "simplbooks": {"token": "sandbox-simplbooks-token"},
    }
    assert sandbox.emulators["moneybird"].credential("token") == "mine"
    assert sandbox.emulators["simplbooks"].credential("token") == "sandbox-simplbooks-token"
    with pytest.raises(KeyError):
        sandbox.emulators["simplbooks"].credential("password")


def test_registry_imports_the_named_class_lazily_and_checks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert registry.EMULATORS["moneybird"] == "syncd.sandbox.moneybird:MoneybirdEmulator"
    assert registry.EMULATORS["simplbooks"] == "syncd.sandbox.simplbooks:SimplbooksEmulator"
    monkeypatch.setattr(
        registry,
        "EMULATORS",
        {"ok": "syncd.sandbox.base:VendorEmulator", "bad": "syncd.sandbox.base:RateWindow"},
    )
    assert registry.emulator_class("ok") is VendorEmulator
    with pytest.raises(TypeError):
        registry.emulator_class("bad")
    with pytest.raises(KeyError):
        registry.emulator_class("exact")


def test_parse_listen_accepts_host_port_and_refuses_anything_else() -> None:
    assert parse_listen("127.0.0.1:8900") == ("127.0.0.1", 8900)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8900", "localhost", ":8900", "host:port", "h:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_banner_lists_every_base_url_and_credential(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    sandbox = build_sandbox(SandboxOptions(control=True), emulator_classes=tiny_classes)
    text = describe(sandbox, "127.0.0.1:8900")
    for url in sandbox.base_urls("127.0.0.1:8900").values():
        assert url in text
    for creds in sandbox.credentials().values():
        for value in creds.values():
            assert value in text
    assert "http://127.0.0.1:8900/_sandbox/" in text


async def test_serve_prints_base_urls_and_answers_within_three_seconds(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    out = io.StringIO()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        task = asyncio.create_task(
            serve(
                "127.0.0.1:0",
                SandboxOptions(control=True),
                ready=ready.set_result,
                emulator_classes=tiny_classes,
            )
        )
        try:
            root = await asyncio.wait_for(ready, timeout=3)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{root}/_sandbox/settings") as resp,
            ):
                assert resp.status == 200
            assert time.monotonic() - started < 3
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    printed = out.getvalue()
    assert root.startswith("http://127.0.0.1:") and not root.endswith(":0")
    assert f"{root}/moneybird/api/v2/123456789" in printed
    assert f"{root}/simplbooks/demo/api" in printed
    assert "sandbox-simplicate-secret" in printed


async def test_running_sandbox_serves_on_a_free_local_port(
    tiny_classes: dict[str, type[VendorEmulator]],
) -> None:
    async with (
        running_sandbox(
            SandboxOptions(), vendors=["simplicate"], emulator_classes=tiny_classes
        ) as one,
        running_sandbox(
            SandboxOptions(), vendors=["simplicate"], emulator_classes=tiny_classes
        ) as two,
    ):
        assert one.url != two.url
        assert one.url.startswith("http://127.0.0.1:")
        assert one.base_urls["simplicate"] == f"{one.url}/simplicate/api/v2"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(one.url + "/simplicate/api/v2/contacts")

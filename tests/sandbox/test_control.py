"""The /_sandbox/ control API, served over HTTP against stand-in emulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from syncd.sandbox.base import FAULT_KINDS, RateWindow, SandboxOptions, VendorEmulator
from syncd.sandbox.seed import generate_world
from syncd.sandbox.testing import SandboxHandle, running_sandbox

Auth = Callable[..., dict[str, str]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    async with http.request(method, url, **kwargs) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


async def vendor_get(
    http: aiohttp.ClientSession, handle: SandboxHandle, auth: Auth, path: str = "/contacts"
) -> int:
    async with http.get(handle.base_urls["moneybird"] + path, headers=auth(handle)) as resp:
        await resp.read()
        return resp.status


def first_invoice_id(handle: SandboxHandle) -> str:
    invoices = handle.emulators["moneybird"].dump()["invoices"]
    assert invoices, "the seeded world gives moneybird invoices"
    return str(invoices[0]["id"])


# ---------------------------------------------------------------- availability


async def test_control_api_is_off_unless_enabled(
    tiny_classes: dict[str, type[VendorEmulator]], http: aiohttp.ClientSession
) -> None:
    async with running_sandbox(SandboxOptions(), emulator_classes=tiny_classes) as handle:
        for method, path in (("GET", "counters"), ("POST", "reset"), ("GET", "settings")):
            async with http.request(method, f"{handle.url}/_sandbox/{path}") as resp:
                assert resp.status == 404


async def test_control_requests_are_not_counted_limited_or_faulted(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    emulator = tiny_sandbox.emulators["moneybird"]
    emulator.windows = (RateWindow(1, 60.0),)  # type: ignore[attr-defined]
    tiny_sandbox.options.fault_rate = 1.0
    for _ in range(5):
        status, _ = await call(http, "GET", f"{tiny_sandbox.url}/_sandbox/moneybird/state")
        assert status == 200
        status, _ = await call(http, "POST", f"{tiny_sandbox.url}/_sandbox/moneybird/contacts", {})
        assert status == 201
    assert emulator.counters.as_json()["requests_total"] == 0
    assert emulator.counters.faults == {}
    assert emulator.counters.rate_limited == 0


# ---------------------------------------------------------------- counters, state, reset, seed


async def test_counters_report_every_vendor_or_one(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession, auth: Auth
) -> None:
    assert await vendor_get(http, tiny_sandbox, auth) == 200
    assert await vendor_get(http, tiny_sandbox, auth, "/contacts/1") == 200
    status, everything = await call(http, "GET", f"{tiny_sandbox.url}/_sandbox/counters")
    assert status == 200
    assert set(everything) == {"simplicate", "moneybird", "perfex", "simplbooks"}
    assert everything["moneybird"]["requests"] == {"GET /contacts": 1, "GET /contacts/{id}": 1}
    assert everything["moneybird"]["requests_total"] == 2
    assert everything["perfex"]["requests_total"] == 0
    status, one = await call(http, "GET", f"{tiny_sandbox.url}/_sandbox/moneybird/counters")
    assert status == 200
    assert one == everything["moneybird"]
    assert set(one) >= {"rate_limited", "writes", "faults", "auth_failures"}


async def test_unknown_vendor_is_a_404_with_a_json_error(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    for method, path in (
        ("GET", "exact/counters"),
        ("GET", "exact/state"),
        ("POST", "exact/contacts"),
        ("PATCH", "exact/contacts/1"),
    ):
        status, body = await call(http, method, f"{tiny_sandbox.url}/_sandbox/{path}", {})
        assert status == 404
        assert "exact" in body["error"]


async def test_vendor_not_served_is_a_404(
    tiny_classes: dict[str, type[VendorEmulator]], http: aiohttp.ClientSession
) -> None:
    options = SandboxOptions(control=True)
    async with running_sandbox(
        options, vendors=["perfex"], emulator_classes=tiny_classes
    ) as handle:
        status, _ = await call(http, "GET", f"{handle.url}/_sandbox/moneybird/state")
        assert status == 404
        status, _ = await call(http, "GET", f"{handle.url}/_sandbox/perfex/state")
        assert status == 200


async def test_state_dumps_the_emulator_records(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    status, state = await call(http, "GET", f"{tiny_sandbox.url}/_sandbox/simplbooks/state")
    assert status == 200
    assert state == tiny_sandbox.emulators["simplbooks"].dump()
    world = generate_world(tiny_sandbox.options)
    assert [c["name"] for c in state["contacts"]] == [c.name for c in world["simplbooks"].contacts]


async def test_reset_forgets_records_counters_and_rate_windows(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession, auth: Auth
) -> None:
    emulator = tiny_sandbox.emulators["moneybird"]
    emulator.windows = (RateWindow(1, 60.0),)  # type: ignore[attr-defined]
    assert await vendor_get(http, tiny_sandbox, auth) == 200
    assert await vendor_get(http, tiny_sandbox, auth) == 429
    status, body = await call(http, "POST", f"{tiny_sandbox.url}/_sandbox/reset")
    assert status == 200 and body["reset"] is True
    assert emulator.counters.as_json()["requests_total"] == 0
    assert emulator.counters.rate_limited == 0
    assert emulator.dump() == {"contacts": [], "invoices": []}
    assert await vendor_get(http, tiny_sandbox, auth) == 200  # the window is empty again


async def test_seed_regenerates_and_loads_every_vendor(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession, auth: Auth
) -> None:
    assert await vendor_get(http, tiny_sandbox, auth) == 200
    request = {"seed": 99, "contacts": 20, "invoices": 10, "overlap": 0.5}
    status, body = await call(http, "POST", f"{tiny_sandbox.url}/_sandbox/seed", request)
    assert status == 200
    world = generate_world(SandboxOptions(seed=99, contacts=20, invoices=10, overlap=0.5))
    assert body["seed"] == 99
    assert body["contacts"] == {v: len(s.contacts) for v, s in world.items()}
    assert body["invoices"] == {v: len(s.invoices) for v, s in world.items()}
    assert sum(body["invoices"].values()) == 10
    for vendor, emulator in tiny_sandbox.emulators.items():
        assert [c["name"] for c in emulator.dump()["contacts"]] == [
            c.name for c in world[vendor].contacts
        ]
    assert tiny_sandbox.options.seed == 99
    assert tiny_sandbox.emulators["moneybird"].counters.as_json()["requests_total"] == 0


async def test_seed_keeps_current_options_for_fields_left_out(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    before = tiny_sandbox.emulators["perfex"].dump()
    status, _ = await call(http, "POST", f"{tiny_sandbox.url}/_sandbox/seed", {})
    assert status == 200
    assert tiny_sandbox.emulators["perfex"].dump() == before


@pytest.mark.parametrize(
    "body",
    [
        {"seed": "one"},
        {"contacts": -1},
        {"invoices": 2.5},
        {"overlap": 1.5},
        {"overlap": "half"},
        {"colour": "blue"},
        [1, 2],
    ],
)
async def test_seed_refuses_bad_arguments_with_400(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession, body: Any
) -> None:
    before = tiny_sandbox.emulators["moneybird"].dump()
    status, answer = await call(http, "POST", f"{tiny_sandbox.url}/_sandbox/seed", body)
    assert status == 400
    assert answer["error"]
    assert tiny_sandbox.emulators["moneybird"].dump() == before
    assert tiny_sandbox.options.seed == 3


async def test_invalid_json_body_is_a_400(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{tiny_sandbox.url}/_sandbox/seed", data=b"{not json") as resp:
        assert resp.status == 400
        assert "JSON" in (await resp.json())["error"]


# ---------------------------------------------------------------- acting as a human user


async def test_create_mutate_archive_and_delete_a_record(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    base = f"{tiny_sandbox.url}/_sandbox/moneybird"
    status, created = await call(http, "POST", f"{base}/contacts", {"name": "Nieuw B.V."})
    assert status == 201
    record_id = created["id"]
    emulator = tiny_sandbox.emulators["moneybird"]
    assert created in emulator.dump()["contacts"]

    status, changed = await call(
        http, "PATCH", f"{base}/contacts/{record_id}", {"name": "Nieuw BV"}
    )
    assert status == 200 and changed["name"] == "Nieuw BV"

    status, archived = await call(http, "POST", f"{base}/contacts/{record_id}/archive")
    assert status == 200 and archived["archived"] is True

    status, body = await call(http, "DELETE", f"{base}/contacts/{record_id}")
    assert status == 200 and body == {"deleted": True}
    assert all(c["id"] != record_id for c in emulator.dump()["contacts"])

    status, body = await call(http, "DELETE", f"{base}/contacts/{record_id}")
    assert status == 404 and body["error"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "widgets", {}, 404),  # unknown resource
        ("POST", "contacts", {"id": "7"}, 400),  # bad field
        ("PATCH", "contacts/999", {"name": "x"}, 404),  # no such record
        ("PATCH", "contacts/1", {"id": "2"}, 400),
        ("DELETE", "invoices/999", None, 404),
        ("POST", "invoices/{invoice}/archive", None, 400),  # this vendor cannot archive invoices
        ("POST", "contacts/999/archive", None, 404),
    ],
)
async def test_record_operations_map_errors_to_404_and_400(
    tiny_sandbox: SandboxHandle,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    path = path.format(invoice=first_invoice_id(tiny_sandbox))
    got, answer = await call(http, method, f"{tiny_sandbox.url}/_sandbox/moneybird/{path}", body)
    assert got == status
    assert isinstance(answer["error"], str) and answer["error"]


async def test_payment_is_registered_with_a_decimal_amount_and_an_iso_date(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession
) -> None:
    invoice_id = first_invoice_id(tiny_sandbox)
    url = f"{tiny_sandbox.url}/_sandbox/moneybird/invoices/{invoice_id}/payments"
    status, payment = await call(http, "POST", url, {"amount": "121.10", "date": "2026-03-01"})
    assert status == 201
    assert payment == {"invoice_id": invoice_id, "amount": "121.10", "date": "2026-03-01"}
    status, payment = await call(http, "POST", url, {"amount": "0.20"})  # date defaults to today
    assert status == 201
    invoice = next(
        i for i in tiny_sandbox.emulators["moneybird"].dump()["invoices"] if i["id"] == invoice_id
    )
    assert invoice["paid"] == "121.30"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("invoices/{invoice}/payments", {"amount": 12.5}, 400),  # floats are refused: money is text
        ("invoices/{invoice}/payments", {"amount": "twelve"}, 400),
        ("invoices/{invoice}/payments", {"amount": "NaN"}, 400),
        ("invoices/{invoice}/payments", {}, 400),
        ("invoices/{invoice}/payments", {"amount": "1.00", "date": "01-03-2026"}, 400),
        ("invoices/{invoice}/payments", {"amount": "1.00", "date": 20260301}, 400),
        ("invoices/{invoice}/payments", {"amount": "-5.00"}, 400),  # the emulator's own ValueError
        ("invoices/999/payments", {"amount": "1.00"}, 404),
    ],
)
async def test_bad_payments_are_refused(
    tiny_sandbox: SandboxHandle,
    http: aiohttp.ClientSession,
    path: str,
    body: Any,
    status: int,
) -> None:
    path = path.format(invoice=first_invoice_id(tiny_sandbox))
    got, answer = await call(http, "POST", f"{tiny_sandbox.url}/_sandbox/moneybird/{path}", body)
    assert got == status
    assert answer["error"]


# ---------------------------------------------------------------- settings


async def test_settings_are_read_and_changed_at_runtime(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession, auth: Auth
) -> None:
    url = f"{tiny_sandbox.url}/_sandbox/settings"
    status, settings = await call(http, "GET", url)
    assert status == 200
    assert settings == {
        "rate_limits": True,
        "rate_scale": 1.0,
        "fault_rate": 0.0,
        "fault_kinds": list(FAULT_KINDS),
        "slow_seconds": 35.0,
    }
    change = {
        "fault_rate": 1,
        "fault_kinds": ["server_error"],
        "rate_scale": 60,
        "slow_seconds": 0.5,
    }
    status, settings = await call(http, "PUT", url, change)
    assert status == 200
    assert settings["fault_rate"] == 1.0 and settings["fault_kinds"] == ["server_error"]
    assert tiny_sandbox.options.rate_scale == 60.0
    assert tiny_sandbox.options.slow_seconds == 0.5
    assert await vendor_get(http, tiny_sandbox, auth) == 500  # takes effect at once

    status, settings = await call(http, "PUT", url, {"fault_rate": 0, "rate_limits": False})
    assert status == 200 and settings["rate_limits"] is False
    assert settings["fault_kinds"] == ["server_error"]  # untouched fields stay
    statuses = {await vendor_get(http, tiny_sandbox, auth) for _ in range(8)}
    assert statuses == {200}  # 8 requests through a 5-request window: limits are off


@pytest.mark.parametrize(
    "change",
    [
        {"fault_kinds": ["meteor"]},
        {"fault_kinds": "reset"},
        {"fault_rate": 1.5},
        {"fault_rate": "often"},
        {"rate_scale": 0},
        {"rate_scale": -2},
        {"slow_seconds": -1},
        {"rate_limits": "yes"},
        {"seed": 4},
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    tiny_sandbox: SandboxHandle, http: aiohttp.ClientSession, change: dict[str, Any]
) -> None:
    url = f"{tiny_sandbox.url}/_sandbox/settings"
    _, before = await call(http, "GET", url)
    status, answer = await call(http, "PUT", url, {"fault_rate": 0.5, **change})
    assert status == 400
    assert answer["error"]
    _, after = await call(http, "GET", url)
    assert after == before

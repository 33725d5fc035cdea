"""Totals stay exact through every vendor mapping (Hypothesis).

For each vendor: a canonical invoice of 1-20 lines at that vendor's VAT rates is written
with the vendor's own mapping (``canonical -> write body``), turned into what the vendor
stores and answers (``write body -> read shape``, below: the write body as the vendor
parses it off the wire, the amounts the vendor derives by its own rule, JSON numbers
written exactly as the vendor prints them) and read back with the mapping
(``read shape -> canonical``). Lines must come back unchanged (description, quantity,
unit price, VAT rate, line total) and so must subtotal, VAT and total, to the cent; the
read-back must never trip the totals guard (a false quarantine).

The Simplicate emulator rounds VAT per line (marked inferred in the vendor reference),
every other vendor per rate: Simplicate's read-back states the per-line figures, within
the guard's tolerance of the per-rate ones.

A smaller number of examples then makes the real round trip: the adapter creates the
invoice in the sandbox over HTTP and reads it back, and the vendor's own stored figures
(``dump()``) are compared as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.adapters.base import VendorAdapter
from syncd.adapters.moneybird import mapping as mb
from syncd.adapters.perfex import mapping as px
from syncd.adapters.ratelimit import budget_for
from syncd.adapters.registry import create_adapter
from syncd.adapters.simplbooks import mapping as sb
from syncd.adapters.simplicate import mapping as sc
from syncd.core.guards import invoice_totals_problem, totals_tolerance
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    compute_totals,
    money,
    normalise,
    with_computed_totals,
)
from syncd.sandbox.base import SandboxOptions, VendorName, VendorSeed
from syncd.sandbox.common import exact_json, plain_decimal
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import parse_settings
from tests.invoices.helpers import D, held_invoices

T = TypeVar("T")

# VAT rates each vendor holds out of the box (sandbox lookups = the vendor references).
RATES: Mapping[VendorName, tuple[int, ...]] = {
    "simplicate": (0, 9, 21),
    "moneybird": (0, 9, 21, 22),
    "perfex": (0, 9, 21, 22),
    "simplbooks": (0, 9, 21, 22, 24),
}
PER_LINE_VAT: frozenset[VendorName] = frozenset({"simplicate"})
ISSUE = dt.date(2026, 11, 2)

# ---------------------------------------------------------------- canonical invoices

_TEXT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -.,äöüõéÅ",
    min_size=1,
    max_size=30,
).map(lambda s: " ".join(s.split()))


@st.composite
def invoices(draw: st.DrawFn, rates: Sequence[int], contact: str, max_lines: int = 20) -> Invoice:
    """A normalised canonical invoice with totals by the EU rule (VAT per rate)."""
    count = draw(st.integers(1, max_lines))
    lines = tuple(
        InvoiceLine(
            description=draw(_TEXT.filter(bool)),
            # Two decimals: Perfex stores no more (DECIMAL(15,2)), nor does the Moneybird
            # emulator's amount_decimal.
            quantity=Decimal(draw(st.integers(1, 100_000))) / 100,
            unit_price=Decimal(draw(st.integers(1, 10_000_000))) / 100,
            vat_rate=Decimal(draw(st.sampled_from(rates))),
        )
        for _ in range(count)
    )
    value = Invoice(
        number=None,
        contact=contact,
        issue_date=ISSUE,
        due_date=ISSUE + dt.timedelta(days=14),
        lines=lines,
    )
    return normalise(with_computed_totals(value))


def per_line(lines: Sequence[InvoiceLine]) -> tuple[Decimal, Decimal, Decimal]:
    net = sum((line.line_total or D(0) for line in lines), D(0))
    vat = sum((money((line.line_total or D(0)) * line.vat_rate / 100) for line in lines), D(0))
    return net, vat, net + vat


def per_rate(lines: Sequence[tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal, Decimal]:
    """(net, VAT, gross) of (line net, rate) pairs, VAT rounded once per rate."""
    groups: dict[Decimal, Decimal] = {}
    for net, rate in lines:
        groups[rate] = groups.get(rate, D(0)) + net
    net = sum(groups.values(), D(0))
    vat = sum((money(n * r / 100) for r, n in groups.items()), D(0))
    return net, vat, net + vat


def wire(value: Any) -> Any:
    """JSON as it travels: Decimals as exact JSON numbers, parsed back as Decimals."""
    return json.loads(exact_json(value, lambda d: format(d, "f")), parse_float=Decimal)


def vendor_json(value: Any) -> Any:
    """A vendor's answer: numbers printed the way PHP prints them (13.70 -> 13.7)."""
    return json.loads(exact_json(value, plain_decimal), parse_float=Decimal)


# ---------------------------------------------------------------- each vendor's echo

MB_RATES = {
    str(n): mb.TaxRate(str(n), D(pct), "sales_invoice", True, True, country)
    for n, (pct, country) in enumerate(
        [(21, None), (9, None), (0, None), (22, "EE"), (9, "EE")], start=1
    )
}


def moneybird_round_trip(value: Invoice) -> Invoice:
    attrs = wire(mb.invoice_body(value, MB_RATES.values()))["sales_invoice"]
    details, nets = [], []
    for n, item in enumerate(attrs["details_attributes"]):
        qty, price = D(str(item["amount"])), D(str(item["price"]))
        net = money(qty * price)
        nets.append((net, MB_RATES[item["tax_rate_id"]].rate))
        details.append(
            {
                "id": str(900 + n),
                "tax_rate_id": item["tax_rate_id"],
                "amount": f"{item['amount']} x",
                "amount_decimal": str(qty),
                "price": str(price),
                "description": item["description"],
                "total_price_excl_tax_with_discount": str(net),
            }
        )
    net, vat, gross = per_rate(nets)
    stored = {
        "id": "1",
        "contact_id": attrs["contact_id"],
        "state": "draft",
        "invoice_id": None,
        "invoice_date": attrs["invoice_date"],
        "due_date": (ISSUE + dt.timedelta(days=attrs["first_due_interval"])).isoformat(),
        "currency": attrs["currency"],
        "prices_are_incl_tax": attrs["prices_are_incl_tax"],
        "reference": attrs.get("reference"),
        "details": details,
        "total_price_excl_tax": str(net),
        "total_price_incl_tax": str(gross),
        "tax_totals": [{"tax_rate_id": "1", "tax_amount": str(vat)}],
        "total_paid": "0.0",
        "total_unpaid": str(gross),
    }
    return mb.invoice_to_canonical(vendor_json(stored), MB_RATES)


SC_LOOKUPS = sc.InvoiceLookups(
    vat_classes=tuple(sc.VatClass(f"vatclass:{r}", D(r)) for r in RATES["simplicate"]),
    statuses={"concept": "invoicestatus:c", "sent": "invoicestatus:s"},
    payment_terms=(sc.PaymentTerm("paymentterm:14", 14),),
    profile_id="myorganizationprofile:1",
)


def simplicate_round_trip(value: Invoice) -> Invoice:
    body = wire(sc.invoice_from_canonical(value, SC_LOOKUPS))
    rates = {v.id: v.percentage for v in SC_LOOKUPS.vat_classes}
    lines, net, vat = [], D(0), D(0)
    for item in body["invoice_lines"]:
        line_net = money(D(str(item["amount"])) * D(str(item["price"])))
        line_vat = money(line_net * rates[item["vat_class_id"]] / 100)  # per line
        net, vat = net + line_net, vat + line_vat
        lines.append(
            {
                "description": item["description"],
                "amount": item["amount"],
                "price": item["price"],
                "total_vat": line_vat,
                "vat_class": {
                    "id": item["vat_class_id"],
                    "percentage": rates[item["vat_class_id"]],
                },
            }
        )
    stored = {
        "id": "invoice:abc123",
        "organization_id": body["organization_id"],
        "date": body["date"],
        "status": {"id": body["status_id"], "name": "Concept"},
        "payment_term": {"days": 14},
        "invoice_lines": lines,
        "total_excluding_vat": net,
        "total_vat": vat,
        "total_including_vat": net + vat,
        "total_outstanding": net + vat,
    }
    return sc.invoice_to_canonical(vendor_json(stored))


PX_CURRENCIES = px.Currencies({"1": "EUR"})
PX_TAXES = px.Taxes({D(r): "VAT" for r in RATES["perfex"] if r})


def perfex_round_trip(value: Invoice) -> Invoice:
    body = wire(px.invoice_from_canonical(value, PX_CURRENCIES, PX_TAXES))
    items, nets = [], []
    for n, item in enumerate(body["items"], start=1):
        qty, rate = money(D(str(item["qty"]))), money(D(str(item["rate"])))  # DECIMAL(15,2)
        pct = sum((D(t.rpartition("|")[2]) for t in item["taxname"]), D(0))
        nets.append((money(qty * rate), pct))
        items.append(
            {
                "id": str(n),
                "description": item["description"],
                "long_description": item["long_description"],
                "qty": f"{qty:.2f}",
                "rate": f"{rate:.2f}",
                "item_order": str(item["order"]),
                "taxname": [t.partition("|")[0] for t in item["taxname"]],
                "taxrate": [f"{D(t.rpartition('|')[2]):.2f}" for t in item["taxname"]],
            }
        )
    net, vat, gross = per_rate(nets)
    stored = {
        "id": "7",
        "clientid": str(body["clientid"]),
        "status": str(body["status"]),
        "sent": "0",
        "date": body["date"],
        "duedate": body["duedate"],
        "number": px.DRAFT_NUMBER,
        "prefix": "INV-",
        "number_format": "1",
        "currency": str(body["currency"]),
        "items": items,
        "subtotal": f"{net:.2f}",
        "total_tax": f"{vat:.2f}",
        "total": f"{gross:.2f}",
        "discount_total": "0.00",
        "adjustment": "0.00",
        "payments": [],
    }
    return px.invoice_to_canonical(stored, PX_CURRENCIES)


SB_TYPES = {D(r): n for n, r in enumerate(RATES["simplbooks"], start=1)}


def simplbooks_round_trip(value: Invoice) -> Invoice:
    body = wire(sb.invoice_from_canonical(value, vat_type_ids=SB_TYPES))
    rows, nets = [], []
    for n, wrapped in enumerate(body["Tasks"], start=1):
        task = wrapped["Task"]
        factor = 1 - D(str(task["discount"])) / 100
        amount, price = D(str(task["amount"])), D(str(task["price_per_unit"]))
        nets.append((money(amount * price * factor), D(str(task["vat"]))))
        rows.append({"Task": {"id": 20000 + n, **task}})
    net, vat, gross = per_rate(nets)
    header = body["Invoice"]
    stored = {
        "Invoice": {
            "id": 5001,
            "client_id": header["client_id"],
            "created": header["created"],
            "due": header["due"],
            "number": "1001",
            "sum": net,
            "vat": vat,
            "total_sum": gross,
            "remnant": gross,
            "row_sum_with_vat": header["row_sum_with_vat"],
            "currency_name": header["currency_name"],
            "sent": sb.NO_DATE,
            "paid": sb.NO_DATE,
            "additional_info": header["additional_info"],
        },
        "Task": rows,
    }
    return sb.invoice_to_canonical(vendor_json(stored), today=ISSUE)[1]


ROUND_TRIPS: Mapping[VendorName, tuple[str, Callable[[Invoice], Invoice]]] = {
    "moneybird": ("400000000000000001", moneybird_round_trip),
    "simplicate": ("organization:abc", simplicate_round_trip),
    "perfex": ("3", perfex_round_trip),
    "simplbooks": ("12", simplbooks_round_trip),
}


def assert_same_money(vendor: VendorName, sent: Invoice, read: Invoice) -> None:
    assert read.lines == sent.lines
    assert invoice_totals_problem(read) is None
    if vendor in PER_LINE_VAT:
        assert (read.subtotal, read.tax_total, read.total) == per_line(sent.lines)
        assert abs(read.total - sent.total) <= totals_tolerance(len(sent.lines))
    else:
        assert (read.subtotal, read.tax_total, read.total) == (
            sent.subtotal,
            sent.tax_total,
            sent.total,
        )
        assert (read.subtotal, read.tax_total, read.total) == compute_totals(read.lines)


@pytest.mark.parametrize("vendor", list(ROUND_TRIPS))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_totals_stay_exact_through_the_mapping(vendor: VendorName, data: st.DataObject) -> None:
    contact, round_trip = ROUND_TRIPS[vendor]
    value = data.draw(invoices(RATES[vendor], contact))
    assert_same_money(vendor, value, round_trip(value))


# ---------------------------------------------------------------- the sandbox round trip


class Portal:
    """An event loop in a worker thread, so sync Hypothesis tests can await on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, make: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(make, self.loop).result(timeout=120)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@dataclass
class Served:
    portal: Portal
    handle: SandboxHandle
    adapters: dict[str, VendorAdapter]
    contacts: dict[str, str]  # vendor -> the external id of a contact invoices can use


@contextlib.asynccontextmanager
async def _serve() -> AsyncIterator[tuple[SandboxHandle, dict[str, VendorAdapter], dict[str, str]]]:
    options = SandboxOptions(seed=5, contacts=0, invoices=0, rate_limits=False)
    async with running_sandbox(options) as handle, aiohttp.ClientSession() as http:
        for emulator in handle.emulators.values():
            emulator.reset()
            emulator.load_seed(VendorSeed((), ()))
        accounts = []
        for vendor, base in handle.base_urls.items():
            credentials = dict(handle.credentials[vendor])
            if vendor == "perfex":
                credentials = {"api_key": credentials["api_key"]}
            accounts.append(
                {
                    "name": vendor,
                    "vendor": vendor,
                    "base_url": base,
                    "credentials": credentials,
                    "allow_insecure_http": True,
                    "rate_limit": [{"requests": 100_000, "per": "1s"}],
                }
            )
        config = {"workspace": [{"name": "p", "account": accounts}]}
        settings_ = parse_settings(config, environ={}, base_dir=Path("."))
        adapters: dict[str, VendorAdapter] = {}
        contacts: dict[str, str] = {}
        for _, account in settings_.iter_accounts():
            adapter = create_adapter(account, http, budget=budget_for(account))
            adapters[account.name] = adapter
            record = await adapter.resource("contacts").create(
                Contact(kind="organization", name="Acme B.V.", email="info@acme.nl"),
                client_token="syncd-property-contact",
            )
            contacts[account.name] = record.external_id
        yield handle, adapters, contacts


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    portal = Portal()
    stack = contextlib.AsyncExitStack()

    async def enter() -> tuple[SandboxHandle, dict[str, VendorAdapter], dict[str, str]]:
        return await stack.enter_async_context(_serve())

    try:
        handle, adapters, contacts = portal.run(enter())
        yield Served(portal, handle, adapters, contacts)
    finally:
        portal.run(stack.aclose())
        portal.close()


@pytest.mark.parametrize("vendor", list(ROUND_TRIPS))
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_totals_stay_exact_through_the_sandbox(
    served: Served, vendor: VendorName, data: st.DataObject
) -> None:
    value = data.draw(invoices(RATES[vendor], served.contacts[vendor]))
    invoices_of = served.adapters[vendor].resource("invoices")
    record = served.portal.run(invoices_of.create(value, client_token=None))
    read = record.value
    assert isinstance(read, Invoice)
    assert_same_money(vendor, value, read)
    # What the vendor itself stores says the same.
    (held,) = [
        h for h in held_invoices(served.handle.emulators[vendor]) if h.id == record.external_id
    ]
    assert held.totals == (read.subtotal, read.tax_total, read.total)
    assert held.lines == tuple(
        (line.description, line.quantity, line.unit_price, line.vat_rate) for line in read.lines
    )

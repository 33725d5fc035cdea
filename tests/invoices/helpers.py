"""Invoice integration helpers: a CRM and a bookkeeping emulator, the real adapters, the Engine.

``open_books`` serves one CRM vendor (Simplicate or Perfex) and one bookkeeping vendor
(Moneybird or SimplBooks) from an in-process sandbox, loads the seeds a test wrote (contacts
and invoices in the vendor-neutral seed shapes, so every vendor gets the same data in its
own format), writes a syncd configuration with a contacts flow and an invoices flow over
the two accounts, and opens the runtime exactly as ``syncd once`` does
(``syncd.app.open_runtime``).

What a vendor holds is read from the emulator's own state (``dump()``, the vendor's own
shapes) by the small readers below, never through the adapter or mapping under test.
Amounts are compared as Decimals (``Decimal("3") == Decimal("3.00")``), so a vendor that
prints ``"3.0"`` and one that prints ``3`` agree on the same number.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from syncd.app import Runtime, open_runtime
from syncd.runner import Engine, PassStats
from syncd.sandbox.base import (
    SandboxOptions,
    SeedContact,
    SeedInvoice,
    SeedLine,
    SeedPayment,
    VendorEmulator,
    VendorName,
    VendorSeed,
)
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import Settings, parse_settings
from syncd.store import tables as t

D = Decimal
CENT = Decimal("0.01")

CRMS: tuple[VendorName, ...] = ("simplicate", "perfex")
BOOKS: tuple[VendorName, ...] = ("moneybird", "simplbooks")
PAIRS: list[tuple[VendorName, VendorName]] = [(c, b) for c in CRMS for b in BOOKS]

# Sales VAT rates each bookkeeping vendor has out of the box (vendors/*.md and the sandbox):
# Moneybird: 21/9/0 % domestic plus the Estonian 22 % (and 9 %) foreign rates; SimplBooks
# (an Estonian product): 24/22/13/9/0 % Estonian types plus the Dutch OSS 21/9 % ones.
RATES: Mapping[VendorName, tuple[Decimal, ...]] = {
    "moneybird": (D(0), D(9), D(21), D(22)),
    "simplbooks": (D(0), D(9), D(21), D(22), D(24)),
}


def pair_id(pair: tuple[VendorName, VendorName]) -> str:
    return "->".join(pair)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------- seeds


def seed_contact(
    key: str,
    name: str,
    *,
    email: str | None = None,
    vat: str | None = None,
    coc: str | None = None,
    country: str = "NL",
) -> SeedContact:
    """A company as it exists in the world (the same value can seed any vendor)."""
    stamp = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    return SeedContact(
        key=key,
        kind="organization",
        name=name,
        first_name=None,
        last_name=None,
        email=email,
        phone=None,
        website=None,
        address="Hoofdstraat 1" if country == "NL" else "Pikk 1",
        postal_code="1234 AB" if country == "NL" else "10123",
        city="Utrecht" if country == "NL" else "Tallinn",
        country=country,
        vat_number=vat,
        coc_number=coc,
        iban=None,
        bic=None,
        customer_number=None,
        created_at=stamp,
        updated_at=stamp,
    )


def seed_invoice(
    key: str,
    contact_key: str,
    lines: Sequence[SeedLine],
    *,
    number: str | None = None,
    status: str = "open",
    payments: Sequence[SeedPayment] = (),
) -> SeedInvoice:
    """An invoice issued a few days ago and due in four weeks (never overdue in a test)."""
    issue = today() - dt.timedelta(days=3)
    stamp = dt.datetime.combine(issue, dt.time(10, 0), tzinfo=dt.UTC)
    return SeedInvoice(
        key=key,
        contact_key=contact_key,
        number=number,
        issue_date=issue,
        due_date=issue + dt.timedelta(days=30),
        currency="EUR",
        status=status,  # type: ignore[arg-type]
        lines=tuple(lines),
        payments=tuple(payments),
        created_at=stamp,
        updated_at=stamp,
    )


_WORDS = (
    "Consultancy",
    "Licence",
    "Hosting",
    "Support hours",
    "Travel",
    "Training day",
    "Books",
    "Workshop",
    "Design",
    "Maintenance",
)
# Quantities every vendor holds exactly: Perfex keeps two decimals (DECIMAL(15,2)).
_QUANTITIES = ("1", "2", "3", "0.5", "1.5", "2.25", "7.5", "12", "40", "0.25", "16.75")


def random_lines(rng: random.Random, count: int, rates: Sequence[Decimal]) -> list[SeedLine]:
    """``count`` lines with varied quantities, prices (2 decimals) and the given rates.

    Every rate is used at least once when there are lines enough, so a 20-line invoice
    exercises the per-rate VAT rounding of every rate together.
    """
    chosen = list(rates) + [rng.choice(rates) for _ in range(max(0, count - len(rates)))]
    rng.shuffle(chosen)
    return [
        SeedLine(
            description=f"{rng.choice(_WORDS)} {n + 1}",
            quantity=D(rng.choice(_QUANTITIES)),
            unit_price=D(rng.randint(1, 250_000)) / 100,
            vat_rate=chosen[n],
        )
        for n in range(count)
    ]


def expected_totals(lines: Iterable[SeedLine]) -> tuple[Decimal, Decimal, Decimal]:
    """(net, VAT, gross) by the EU rule syncd uses: net per line, VAT per rate group."""
    net_by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        net_by_rate[line.vat_rate] = net_by_rate.get(line.vat_rate, D(0)) + cents(
            line.quantity * line.unit_price
        )
    net = sum(net_by_rate.values(), D(0))
    vat = sum((cents(n * r / 100) for r, n in net_by_rate.items()), D(0))
    return net, vat, net + vat


def per_line_totals(lines: Iterable[SeedLine]) -> tuple[Decimal, Decimal, Decimal]:
    """(net, VAT, gross) with VAT rounded per line (how Simplicate states its totals)."""
    net = vat = D(0)
    for line in lines:
        line_net = cents(line.quantity * line.unit_price)
        net += line_net
        vat += cents(line_net * line.vat_rate / 100)
    return net, vat, net + vat


# ---------------------------------------------------------------- what a vendor holds


Line = tuple[str, Decimal, Decimal, Decimal]  # description, quantity, unit price, VAT %


@dataclass(frozen=True)
class HeldPayment:
    id: str
    date: dt.date
    amount: Decimal


@dataclass(frozen=True)
class HeldInvoice:
    """One invoice as a vendor holds it, read from the emulator's own state."""

    vendor: VendorName
    id: str
    contact: str | None
    number: str | None
    state: str  # the vendor's own state name or code
    sent: bool  # the vendor considers it sent/finalised (no longer a draft)
    lines: tuple[Line, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    paid: Decimal  # total - outstanding, as the vendor states it
    payments: tuple[HeldPayment, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def totals(self) -> tuple[Decimal, Decimal, Decimal]:
        return self.subtotal, self.tax_total, self.total


def _dec(value: Any) -> Decimal:
    return D(str(value)) if value not in (None, "") else D(0)


def _simplicate(dump: Mapping[str, Any]) -> list[HeldInvoice]:
    payments: dict[str, list[HeldPayment]] = {}
    for row in dump["payment"]:
        payments.setdefault(row["invoice_id"], []).append(
            HeldPayment(row["id"], dt.date.fromisoformat(row["date"]), _dec(row["amount"]))
        )
    held = []
    for row in dump["invoice"]:
        total = _dec(row["total_including_vat"])
        status = row["status"]["name"]
        held.append(
            HeldInvoice(
                vendor="simplicate",
                id=row["id"],
                contact=row.get("organization_id") or row.get("person_id"),
                number=row.get("invoice_number"),
                state=status,
                sent=status != "Concept",
                lines=tuple(
                    (
                        line.get("description") or "",
                        _dec(line["amount"]),
                        _dec(line["price"]),
                        _dec(line["vat_class"]["percentage"]),
                    )
                    for line in row.get("invoice_lines") or []
                ),
                subtotal=_dec(row["total_excluding_vat"]),
                tax_total=_dec(row["total_vat"]),
                total=total,
                paid=total - _dec(row["total_outstanding"]),
                payments=tuple(payments.get(row["id"], ())),
                raw=row,
            )
        )
    return held


def _moneybird(dump: Mapping[str, Any]) -> list[HeldInvoice]:
    rates = {r["id"]: _dec(r["percentage"]) for r in dump["tax_rates"]}
    held = []
    for row in dump["sales_invoices"]:
        held.append(
            HeldInvoice(
                vendor="moneybird",
                id=row["id"],
                contact=row["contact_id"],
                number=row.get("invoice_id"),
                state=row["state"],
                sent=row["state"] not in ("draft", "scheduled"),
                lines=tuple(
                    (
                        d.get("description") or "",
                        _dec(d["amount_decimal"]),
                        _dec(d["price"]),
                        rates[d["tax_rate_id"]],
                    )
                    for d in row["details"]
                ),
                subtotal=_dec(row["total_price_excl_tax"]),
                tax_total=sum((_dec(x["tax_amount"]) for x in row["tax_totals"]), D(0)),
                total=_dec(row["total_price_incl_tax"]),
                paid=_dec(row["total_paid"]),
                payments=tuple(
                    HeldPayment(p["id"], dt.date.fromisoformat(p["payment_date"]), _dec(p["price"]))
                    for p in row["payments"]
                ),
                raw=row,
            )
        )
    return held


_PERFEX_DRAFT_NUMBER = "1000000000"


def _perfex(dump: Mapping[str, Any]) -> list[HeldInvoice]:
    payments: dict[str, list[HeldPayment]] = {}
    for row in dump["payments"]:
        payments.setdefault(str(row["invoiceid"]), []).append(
            HeldPayment(str(row["id"]), dt.date.fromisoformat(row["date"]), _dec(row["amount"]))
        )
    padding = int(dump["settings"]["number_padding"])
    held = []
    for row in dump["invoices"]:
        rid = str(row["id"])
        number = str(row["number"])
        paid = sum((p.amount for p in payments.get(rid, ())), D(0))
        held.append(
            HeldInvoice(
                vendor="perfex",
                id=rid,
                contact=str(row["clientid"]),
                number=(
                    None
                    if number == _PERFEX_DRAFT_NUMBER
                    else f"{row.get('prefix') or ''}{number.zfill(padding)}"
                ),
                state=str(row["status"]),
                sent=str(row["status"]) != "6",
                lines=tuple(
                    (
                        "\n".join(
                            p for p in (item.get("description"), item.get("long_description")) if p
                        ),
                        _dec(item["qty"]),
                        _dec(item["rate"]),
                        sum((_dec(r) for r in item.get("taxrate") or []), D(0)),
                    )
                    for item in sorted(row["items"], key=lambda i: int(i["item_order"]))
                ),
                subtotal=_dec(row["subtotal"]),
                tax_total=_dec(row["total_tax"]),
                total=_dec(row["total"]),
                paid=paid,
                payments=tuple(payments.get(rid, ())),
                raw=row,
            )
        )
    return held


def _simplbooks(dump: Mapping[str, Any]) -> list[HeldInvoice]:
    incomings = {str(w["Incoming"]["id"]): w["Incoming"] for w in dump["incomings"]}
    bound: Mapping[str, list[Any]] = dump["bound_receipts"]
    held = []
    for wrapped in dump["invoices"]:
        row = wrapped["Invoice"]
        rid = str(row["id"])
        total = _dec(row["total_sum"])
        receipts = [incomings[str(r)] for r in bound.get(rid, [])]
        held.append(
            HeldInvoice(
                vendor="simplbooks",
                id=rid,
                contact=str(row["client_id"]),
                number=row.get("number") or None,
                state="paid"
                if row["paid"] != "0000-00-00"
                else ("sent" if row["sent"] != "0000-00-00" else "unsent"),
                sent=row["sent"] != "0000-00-00",
                lines=tuple(
                    (
                        task.get("name") or "",
                        _dec(task["amount"]),
                        _dec(task["price_per_unit"]),
                        _dec(task["vat"]),
                    )
                    for task in wrapped.get("Task") or []
                ),
                subtotal=_dec(row["sum"]),
                tax_total=_dec(row["vat"]),
                total=total,
                paid=total - _dec(row["remnant"]),
                payments=tuple(
                    HeldPayment(
                        str(r["id"]), dt.date.fromisoformat(r["income_date"]), _dec(r["income_sum"])
                    )
                    for r in receipts
                ),
                raw=wrapped,
            )
        )
    return held


READERS: Mapping[VendorName, Callable[[Mapping[str, Any]], list[HeldInvoice]]] = {
    "simplicate": _simplicate,
    "moneybird": _moneybird,
    "perfex": _perfex,
    "simplbooks": _simplbooks,
}


def held_invoices(emulator: VendorEmulator) -> list[HeldInvoice]:
    """Every invoice the vendor holds, from its own state."""
    return READERS[emulator.name](emulator.dump())


def payment_count(emulator: VendorEmulator) -> int:
    """Every payment (receipt) the vendor holds, whatever invoice it is on."""
    dump = emulator.dump()
    key = {
        "simplicate": "payment",
        "moneybird": "payments",
        "perfex": "payments",
        "simplbooks": "incomings",
    }[emulator.name]
    return len(dump[key])


def seed_lines_of(invoice: SeedInvoice) -> tuple[Line, ...]:
    return tuple((x.description, x.quantity, x.unit_price, x.vat_rate) for x in invoice.lines)


# ---------------------------------------------------------------- one synced pair


class SkipClock:
    """Engine time: the wall clock plus every wait the engine asked for, never waited.

    ``Engine.once`` sleeps until the earliest retry of a failed write is due; with this
    clock that sleep moves engine time forward at once, so a test that injects faults
    does not sit through real backoff. Vendors and adapters keep the real clock.
    """

    def __init__(self) -> None:
        self.skipped = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.skipped

    async def sleep(self, seconds: float) -> None:
        self.skipped += dt.timedelta(seconds=max(0.0, seconds))


@dataclass
class Books:
    """A sandbox with one CRM and one bookkeeping vendor, and syncd over both."""

    handle: SandboxHandle
    settings: Settings
    runtime: Runtime
    crm: VendorName
    books: VendorName

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def emulator(self, vendor: VendorName) -> VendorEmulator:
        return self.handle.emulators[vendor]

    def invoices(self, vendor: VendorName) -> list[HeldInvoice]:
        return held_invoices(self.emulator(vendor))

    def only(self, vendor: VendorName) -> HeldInvoice:
        found = self.invoices(vendor)
        assert len(found) == 1, f"{vendor} holds {len(found)} invoices: {found}"
        return found[0]

    def payments(self) -> dict[VendorName, int]:
        return {v: payment_count(self.emulator(v)) for v in (self.crm, self.books)}

    async def once(self, **kwargs: Any) -> dict[str, PassStats]:
        """One ``syncd once``; fails on any pass error."""
        totals = await self.engine.once(**kwargs)
        errors = {name: st.errors for name, st in totals.items() if st.errors}
        assert not errors, errors
        return totals

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.runtime.sessionmaker() as s:
            return list((await s.execute(select(table).where(*where))).scalars())

    async def quarantined(self) -> list[t.Quarantine]:
        return await self.rows(t.Quarantine, t.Quarantine.resolved_at.is_(None))

    async def open_conflicts(self) -> list[t.Conflict]:
        return await self.rows(t.Conflict, t.Conflict.state == "open")

    async def open_reviews(self) -> list[t.MatchReview]:
        return await self.rows(t.MatchReview, t.MatchReview.state == "open")

    async def outbox_left(self) -> list[t.Outbox]:
        return await self.rows(t.Outbox, t.Outbox.state != "done")


def _account(handle: SandboxHandle, vendor: VendorName) -> dict[str, Any]:
    credentials = dict(handle.credentials[vendor])
    if vendor == "perfex":  # the sandbox takes either; a config names one
        credentials = {"api_key": credentials["api_key"]}
    return {
        "name": vendor,
        "vendor": vendor,
        "base_url": handle.base_urls[vendor],
        "credentials": credentials,
        "allow_insecure_http": True,
        # The sandbox's own limits are off; a roomy budget keeps pacing out of these tests.
        "rate_limit": [{"requests": 100_000, "per": "1s"}],
    }


def config_data(
    handle: SandboxHandle, crm: VendorName, books: VendorName, db_url: str, *, conflict: str
) -> dict[str, Any]:
    """A workspace with a contacts flow and an invoices flow over the two accounts."""
    accounts = [crm, books]
    return {
        "database": {"url": db_url},
        "workspace": [
            {
                "name": "inv",
                "account": [_account(handle, v) for v in accounts],
                "flow": [
                    {"resource": "contacts", "accounts": accounts, "conflict": "newest"},
                    # Owners are the defaults by role: lines etc. from the CRM, number,
                    # status and payments from bookkeeping.
                    {"resource": "invoices", "accounts": accounts, "conflict": conflict},
                ],
            }
        ],
    }


@contextlib.asynccontextmanager
async def open_books(
    crm: VendorName,
    books: VendorName,
    db_url: str,
    *,
    crm_seed: VendorSeed,
    books_seed: VendorSeed | None = None,
    conflict: str = "manual",
    shared_budgets: bool = False,
    **options: Any,
) -> AsyncIterator[Books]:
    """Serve ``crm`` and ``books`` loaded with the seeds; open syncd over both.

    ``shared_budgets`` False keeps the rate budgets in memory (as a dry run does): the
    sandbox's limits are off and these tests are about correctness, so the per-request
    budget transactions would only add time. Tests on both database backends pass True.
    """
    values: dict[str, Any] = {
        "seed": 7,
        "contacts": 0,
        "invoices": 0,
        "rate_limits": False,
        "fault_rate": 0.0,
        "control": True,
    }
    values.update(options)
    async with running_sandbox(SandboxOptions(**values), vendors=(crm, books)) as handle:
        for vendor, seed in ((crm, crm_seed), (books, books_seed or VendorSeed((), ()))):
            emulator = handle.emulators[vendor]
            emulator.reset()
            emulator.load_seed(seed)
        data = config_data(handle, crm, books, db_url, conflict=conflict)
        settings = parse_settings(data, environ={}, base_dir=Path("."))
        async with open_runtime(settings, shared_budgets=shared_budgets) as runtime:
            clock = SkipClock()
            runtime.engine.clock = clock
            runtime.engine.sleep = clock.sleep
            yield Books(handle=handle, settings=settings, runtime=runtime, crm=crm, books=books)


# ---------------------------------------------------------------- acting as a bookkeeper


def send_in_books(world: Books, invoice_id: str) -> None:
    """The bookkeeper finalises and sends the invoice (it gets its number now)."""
    emulator = world.emulator(world.books)
    if world.books == "moneybird":
        emulator.mutate("sales_invoices", invoice_id, {"send": True})
    else:
        emulator.mutate("invoices", invoice_id, {"sent": today().isoformat()})


def pay_in_books(world: Books, invoice_id: str, amount: Decimal) -> None:
    """The bookkeeper registers a bank payment against the invoice."""
    world.emulator(world.books).register_payment(invoice_id, amount, today())


async def linked_copy(world: Books, resource: str, source: VendorName, external_id: str) -> str:
    """The external id, at the other account of the pair, of the record syncd linked to
    ``external_id`` at ``source`` (through the canonical entity both links point to)."""
    ids = world.runtime.account_ids
    other = world.books if source == world.crm else world.crm
    async with world.runtime.sessionmaker() as s:
        canonical = (
            await s.execute(
                select(t.Link.canonical_id).where(
                    t.Link.account_id == ids[source],
                    t.Link.resource == resource,
                    t.Link.external_id == external_id,
                )
            )
        ).scalar_one()
        return (
            await s.execute(
                select(t.Link.external_id).where(
                    t.Link.account_id == ids[other],
                    t.Link.resource == resource,
                    t.Link.canonical_id == canonical,
                )
            )
        ).scalar_one()


async def canonical_invoice(world: Books, vendor: VendorName, external_id: str) -> t.Invoice:
    """The canonical invoice row linked to ``external_id`` at ``vendor``."""
    async with world.runtime.sessionmaker() as s:
        canonical = (
            await s.execute(
                select(t.Link.canonical_id).where(
                    t.Link.account_id == world.runtime.account_ids[vendor],
                    t.Link.resource == "invoices",
                    t.Link.external_id == external_id,
                )
            )
        ).scalar_one()
        row = await s.get(t.Invoice, canonical)
        assert row is not None
        return row


def find_by_lines(held: Sequence[HeldInvoice], invoice: SeedInvoice) -> HeldInvoice:
    """The one held invoice whose lines are the seeded invoice's lines."""
    wanted = seed_lines_of(invoice)
    found = [h for h in held if h.lines == wanted]
    assert len(found) == 1, f"{len(found)} invoices hold the lines of {invoice.key}"
    return found[0]


# ---------------------------------------------------------------- acting as a CRM user


def edit_lines_in_crm(world: Books, invoice_id: str, lines: Sequence[SeedLine]) -> None:
    """A CRM user replaces the invoice's lines (the CRM recomputes its totals)."""
    emulator = world.emulator(world.crm)
    if world.crm == "perfex":
        items = [
            {
                "description": line.description,
                "long_description": "",
                "qty": str(line.quantity),
                "rate": str(line.unit_price),
                "order": n,
                "taxes": [{"name": "VAT", "rate": str(line.vat_rate)}] if line.vat_rate else [],
            }
            for n, line in enumerate(lines, start=1)
        ]
        emulator.mutate("invoices", invoice_id, {"items": items})
        return
    classes = {_dec(v["percentage"]): v["id"] for v in emulator.dump()["vatclass"]}
    emulator.mutate(
        "invoice",
        invoice_id,
        {
            "invoice_lines": [
                {
                    "description": line.description,
                    "amount": str(line.quantity),
                    "price": str(line.unit_price),
                    "vat_class_id": classes[line.vat_rate],
                }
                for line in lines
            ]
        },
    )

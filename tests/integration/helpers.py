"""Integration helpers: the real adapters and the Engine against the in-process sandbox.

``open_sync`` serves the chosen vendors from an in-process sandbox, seeds them from the
sandbox's own world generator (``syncd.sandbox.seed.generate_world``: overlapping contacts
with small formatting differences per copy), writes a syncd configuration with one
contacts flow over one account per vendor, and opens the runtime exactly as ``syncd
once`` does (``syncd.app.open_runtime``). The sandbox's rate limits are off (tests are
about correctness, not pacing); everything else is the real thing: HTTP, adapters,
mapping, store, engine.

What a vendor holds is read back from the emulator's own state (``dump()``, in the
vendor's shapes), never through the adapter under test, and compared with the seeded
world by identity keys (e-mail, VAT number, chamber of commerce number, name) that every
copy of one real-world company shares once normalised.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy import select

from syncd.app import Runtime, open_runtime
from syncd.core.matching import normalise_name
from syncd.core.model import normalise_phone
from syncd.runner import Engine
from syncd.sandbox.base import SandboxOptions, SeedContact, VendorEmulator, VendorName, VendorSeed
from syncd.sandbox.seed import generate_world
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import Settings, parse_settings
from syncd.store import tables as t

Kind = Literal["organization", "person"]

# The collections each vendor keeps contacts in (route keys of the sandbox counters).
LIST_ROUTES: Mapping[VendorName, frozenset[str]] = {
    "simplicate": frozenset({"GET /crm/organization", "GET /crm/person"}),
    "moneybird": frozenset(
        {"GET /contacts/synchronization.json", "POST /contacts/synchronization.json"}
    ),
    "perfex": frozenset({"GET /customers", "GET /contacts"}),
    "simplbooks": frozenset({"GET /clients/list"}),
}


# ---------------------------------------------------------------- the seeded world


def sandbox_options(**overrides: Any) -> SandboxOptions:
    """Small worlds, every contact in one or more vendors, no invoices, no rate limits."""
    values: dict[str, Any] = {
        "seed": 3,
        "contacts": 16,
        "invoices": 0,
        "overlap": 1.0,
        "rate_limits": False,
        "fault_rate": 0.0,
        "control": True,
    }
    values.update(overrides)
    return SandboxOptions(**values)


def seeds_for(
    options: SandboxOptions, vendors: Iterable[VendorName], kinds: Iterable[Kind]
) -> dict[VendorName, VendorSeed]:
    """Each served vendor's share of the seeded world, keeping contacts of ``kinds`` only."""
    world = generate_world(options)
    wanted = frozenset(kinds)
    return {
        vendor: VendorSeed(
            contacts=tuple(c for c in world[vendor].contacts if c.kind in wanted), invoices=()
        )
        for vendor in vendors
    }


def keys_of(seed: VendorSeed) -> set[str]:
    return {c.key for c in seed.contacts}


# ---------------------------------------------------------------- identity


Token = tuple[str, str]


def _compact(value: str | None) -> str | None:
    if not value:
        return None
    text = re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return text or None


def identity_tokens(
    *, name: str | None, email: str | None, vat: str | None, coc: str | None
) -> frozenset[Token]:
    """What identifies a company across vendors once formatting is normalised away."""
    tokens: set[Token] = set()
    if name and normalise_name(name):
        tokens.add(("name", normalise_name(name)))
    if email and email.strip():
        tokens.add(("email", email.strip().lower()))
    if (compact := _compact(vat)) is not None:
        tokens.add(("vat", compact))
    if (digits := re.sub(r"\D", "", coc or "")) != "":
        tokens.add(("coc", digits))
    return frozenset(tokens)


def seed_tokens(contact: SeedContact) -> frozenset[Token]:
    return identity_tokens(
        name=contact.name,
        email=contact.email,
        vat=contact.vat_number,
        coc=contact.coc_number,
    )


@dataclass(frozen=True)
class Held:
    """One contact as a vendor holds it, read from the emulator's own state."""

    vendor: VendorName
    id: str
    kind: Kind | None  # None: the vendor has no such distinction
    name: str
    email: str | None
    phone: str | None
    vat: str | None
    coc: str | None
    archived: bool
    raw: Mapping[str, Any]

    @property
    def tokens(self) -> frozenset[Token]:
        return identity_tokens(name=self.name, email=self.email, vat=self.vat, coc=self.coc)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _simplicate(dump: Mapping[str, Any]) -> list[Held]:
    held = [
        Held(
            "simplicate",
            row["id"],
            "organization",
            row["name"],
            _text(row.get("email")),
            _text(row.get("phone")),
            _text(row.get("vat_number")),
            _text(row.get("coc_code")),
            not row.get("is_active", True),
            row,
        )
        for row in dump["organization"]
    ]
    held += [
        Held(
            "simplicate",
            row["id"],
            "person",
            _text(row.get("full_name"))
            or " ".join(
                p
                for p in (
                    row.get("first_name"),
                    row.get("family_name_prefix"),
                    row.get("family_name"),
                )
                if p
            ),
            _text(row.get("email")),
            _text(row.get("phone")),
            None,
            None,
            not row.get("is_active", True),
            row,
        )
        for row in dump["person"]
    ]
    return held


def _moneybird(dump: Mapping[str, Any]) -> list[Held]:
    held = []
    for row in dump["contacts"]:
        company = _text(row.get("company_name"))
        person = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p)
        email = _text(row.get("send_invoices_to_email")) or _text(row.get("email"))
        held.append(
            Held(
                "moneybird",
                row["id"],
                "organization" if company else "person",
                company or person,
                email.split(",")[0].strip() if email else None,
                _text(row.get("phone")),
                _text(row.get("tax_number")),
                _text(row.get("chamber_of_commerce")),
                bool(row.get("archived")),
                row,
            )
        )
    return held


def perfex_primary_contacts(dump: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Customer id -> its primary contact row."""
    return {
        str(row["userid"]): row for row in dump["contacts"] if str(row.get("is_primary")) == "1"
    }


def _perfex(dump: Mapping[str, Any]) -> list[Held]:
    primary = perfex_primary_contacts(dump)
    held = []
    for row in dump["customers"]:
        contact = primary.get(str(row["userid"]), {})
        held.append(
            Held(
                "perfex",
                str(row["userid"]),
                None,
                row["company"],
                _text(contact.get("email")),
                _text(row.get("phonenumber")) or _text(contact.get("phonenumber")),
                _text(row.get("vat")),
                None,
                str(row.get("active")) == "0",
                row,
            )
        )
    return held


def _simplbooks(dump: Mapping[str, Any]) -> list[Held]:
    held = []
    for wrapped in dump["clients"]:
        row = wrapped["Client"]
        held.append(
            Held(
                "simplbooks",
                str(row["id"]),
                None,
                row["name"],
                _text(row.get("e_mail")),
                _text(row.get("phone")),
                _text(row.get("vat_no")),
                _text(row.get("reg_no")),
                False,
                row,
            )
        )
    return held


READERS: Mapping[VendorName, Callable[[Mapping[str, Any]], list[Held]]] = {
    "simplicate": _simplicate,
    "moneybird": _moneybird,
    "perfex": _perfex,
    "simplbooks": _simplbooks,
}


def held_contacts(emulator: VendorEmulator) -> list[Held]:
    """Every contact the vendor holds (archived ones included), from its own state."""
    return READERS[emulator.name](emulator.dump())


def find_held(emulator: VendorEmulator, **tokens: str) -> Held:
    """The one contact a vendor holds with the given identity (e.g. email="x@y.nl")."""
    wanted = identity_tokens(
        name=tokens.get("name"),
        email=tokens.get("email"),
        vat=tokens.get("vat"),
        coc=tokens.get("coc"),
    )
    found = [h for h in held_contacts(emulator) if h.tokens & wanted]
    assert len(found) == 1, f"{emulator.name} holds {len(found)} contacts like {tokens}: {found}"
    return found[0]


def attribute(
    held: Sequence[Held], world: Mapping[str, frozenset[Token]]
) -> tuple[dict[str, list[Held]], list[Held]]:
    """Which world contact each held one is: (world key -> held copies, unattributable)."""
    by_key: dict[str, list[Held]] = {key: [] for key in world}
    stray: list[Held] = []
    for h in held:
        keys = [key for key, tokens in world.items() if h.tokens & tokens]
        if len(keys) == 1:
            by_key[keys[0]].append(h)
        else:
            stray.append(h)
    return by_key, stray


# ---------------------------------------------------------------- one synced world


@dataclass
class SyncWorld:
    """A sandbox, the seeds it was given, and a syncd runtime over one account per vendor."""

    handle: SandboxHandle
    settings: Settings
    runtime: Runtime
    seeds: dict[VendorName, VendorSeed]
    vendors: tuple[VendorName, ...]

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def emulator(self, vendor: VendorName) -> VendorEmulator:
        return self.handle.emulators[vendor]

    def world_tokens(self) -> dict[str, frozenset[Token]]:
        """World key -> identity tokens of every seeded copy of that contact."""
        tokens: dict[str, set[Token]] = {}
        for seed in self.seeds.values():
            for contact in seed.contacts:
                tokens.setdefault(contact.key, set()).update(seed_tokens(contact))
        return {key: frozenset(value) for key, value in tokens.items()}

    def union(self) -> set[str]:
        return set().union(*(keys_of(seed) for seed in self.seeds.values()))

    def shared(self) -> set[str]:
        """World keys seeded into more than one served vendor."""
        counts = Counter(key for seed in self.seeds.values() for key in keys_of(seed))
        return {key for key, n in counts.items() if n > 1}

    def writes(self) -> dict[VendorName, int]:
        return {v: self.handle.counters(v).writes for v in self.vendors}

    def requests(self) -> dict[VendorName, Counter[str]]:
        return {v: Counter(self.handle.counters(v).requests) for v in self.vendors}

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.runtime.sessionmaker() as s:
            return list((await s.execute(select(table).where(*where))).scalars())

    async def open_conflicts(self) -> list[t.Conflict]:
        return await self.rows(t.Conflict, t.Conflict.state == "open")

    async def open_reviews(self) -> list[t.MatchReview]:
        return await self.rows(t.MatchReview, t.MatchReview.state == "open")


def requests_since(
    before: Mapping[VendorName, Counter[str]], after: Mapping[VendorName, Counter[str]]
) -> dict[VendorName, Counter[str]]:
    return {v: after[v] - before.get(v, Counter()) for v in after}


def account_config(handle: SandboxHandle, vendor: VendorName) -> dict[str, Any]:
    """One syncd account for ``vendor`` in the sandbox (the account is named after it)."""
    credentials = dict(handle.credentials[vendor])
    if vendor == "perfex":  # the sandbox accepts either; a config names one
        credentials = {"api_key": credentials["api_key"]}
    return {
        "name": vendor,
        "vendor": vendor,
        "base_url": handle.base_urls[vendor],
        "credentials": credentials,
        "allow_insecure_http": True,
        # The sandbox's limits are off; a roomy budget keeps pacing out of these tests.
        "rate_limit": [{"requests": 100_000, "per": "1s"}],
    }


def config_data(
    handle: SandboxHandle,
    vendors: Sequence[VendorName],
    db_url: str,
    *,
    conflict: str = "newest",
    delete: str = "archive",
    max_delete_percent: int = 50,
) -> dict[str, Any]:
    """The TOML document (as data) of a workspace with one contacts flow over ``vendors``."""
    return {
        "database": {"url": db_url},
        "workspace": [
            {
                "name": "it",
                "account": [account_config(handle, v) for v in vendors],
                "flow": [
                    {
                        "resource": "contacts",
                        "accounts": list(vendors),
                        "conflict": conflict,
                        "delete": delete,
                        "max_delete_percent": max_delete_percent,
                    }
                ],
            }
        ],
    }


def load_seeds(handle: SandboxHandle, seeds: Mapping[VendorName, VendorSeed]) -> None:
    for vendor, seed in seeds.items():
        emulator = handle.emulators[vendor]
        emulator.reset()
        emulator.load_seed(seed)


@contextlib.asynccontextmanager
async def open_sync(
    vendors: Sequence[VendorName],
    db_url: str,
    *,
    kinds: Iterable[Kind] = ("organization",),
    seeds: Mapping[VendorName, VendorSeed] | None = None,
    conflict: str = "newest",
    delete: str = "archive",
    max_delete_percent: int = 50,
    shared_budgets: bool = False,
    **options: Any,
) -> AsyncIterator[SyncWorld]:
    """Serve ``vendors`` seeded with the world (or ``seeds``) and open syncd over them.

    ``shared_budgets`` as in ``open_runtime``: off by default, since the budgets are
    roomy anyway and keeping them in SQL costs a transaction per request.
    """
    opts = sandbox_options(**options)
    chosen = dict(seeds) if seeds is not None else seeds_for(opts, vendors, kinds)
    async with running_sandbox(opts, vendors=vendors) as handle:
        load_seeds(handle, chosen)
        data = config_data(
            handle,
            vendors,
            db_url,
            conflict=conflict,
            delete=delete,
            max_delete_percent=max_delete_percent,
        )
        settings = parse_settings(data, environ={}, base_dir=Path("."))
        async with open_runtime(settings, shared_budgets=shared_budgets) as runtime:
            yield SyncWorld(
                handle=handle,
                settings=settings,
                runtime=runtime,
                seeds=chosen,
                vendors=tuple(vendors),
            )


def assert_union(world: SyncWorld) -> None:
    """Every served vendor holds every world contact exactly once, and nothing else."""
    tokens = world.world_tokens()
    problems: list[str] = []
    for vendor in world.vendors:
        held = held_contacts(world.emulator(vendor))
        by_key, stray = attribute(held, tokens)
        missing = sorted(key for key, copies in by_key.items() if not copies)
        doubled = {key: [h.name for h in c] for key, c in by_key.items() if len(c) > 1}
        if missing:
            problems.append(f"{vendor} lacks {missing}")
        if doubled:
            problems.append(f"{vendor} holds duplicates: {doubled}")
        if stray:
            problems.append(f"{vendor} holds unattributable contacts: {[h.name for h in stray]}")
        if len(held) != len(tokens):
            problems.append(f"{vendor} holds {len(held)} contacts, the union has {len(tokens)}")
    assert not problems, "\n".join(problems)


def assert_agree(world: SyncWorld) -> None:
    """Every copy of a world contact has the same name, e-mail and phone in every vendor.

    Exact text for the name (whitespace aside): syncd writes one spelling everywhere; the
    e-mail without case; the phone number normalised (vendors store their own layout).
    """
    tokens = world.world_tokens()
    copies: dict[str, list[Held]] = {key: [] for key in tokens}
    for vendor in world.vendors:
        by_key, _ = attribute(held_contacts(world.emulator(vendor)), tokens)
        for key, held in by_key.items():
            copies[key].extend(held)
    problems: list[str] = []
    for key, held in sorted(copies.items()):
        country = next(
            (c.country for s in world.seeds.values() for c in s.contacts if c.key == key), "NL"
        )
        values: dict[str, dict[VendorName, str | None]] = {
            "name": {h.vendor: " ".join(h.name.split()) for h in held},
            "email": {h.vendor: h.email.lower() for h in held if h.email},
            "phone": {h.vendor: normalise_phone(h.phone, country) for h in held if h.phone},
        }
        for field, by_vendor in values.items():
            if len(set(by_vendor.values())) > 1:
                problems.append(f"{key} {field}: {by_vendor}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- acting as a vendor's user

EditField = Literal["name", "email", "phone"]

# Canonical field -> the vendor's own field a user edits (Perfex's e-mail lives on the
# customer's primary contact and is handled apart).
_EDIT_FIELDS: Mapping[VendorName, Mapping[str, str]] = {
    "simplicate": {"name": "name", "email": "email", "phone": "phone"},
    "moneybird": {"name": "company_name", "email": "send_invoices_to_email", "phone": "phone"},
    "perfex": {"name": "company", "phone": "phonenumber"},
    "simplbooks": {"name": "name", "email": "e_mail", "phone": "phone"},
}


def human_edit(emulator: VendorEmulator, held: Held, field: EditField, value: str) -> None:
    """Change one field of a contact the way a user of that vendor's web app would."""
    vendor = emulator.name
    if vendor == "perfex" and field == "email":
        primary = perfex_primary_contacts(emulator.dump())[held.id]
        emulator.mutate("contacts", str(primary["id"]), {"email": value})
        return
    if vendor == "simplicate":
        resource = "person" if held.kind == "person" else "organization"
        if resource == "person" and field == "name":
            raise ValueError("a Simplicate person's name is first_name/family_name")
    else:
        resource = {"moneybird": "contacts", "perfex": "customers", "simplbooks": "clients"}[vendor]
    emulator.mutate(resource, held.id, {_EDIT_FIELDS[vendor][field]: value})


def same_phone(a: str | None, b: str | None, country: str = "NL") -> bool:
    return normalise_phone(a, country) == normalise_phone(b, country)


SEED_TIME = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)


def seed_contact(key: str, name: str, **fields: Any) -> SeedContact:
    """A hand-made world contact (an organization unless ``kind`` says otherwise)."""
    values: dict[str, Any] = {
        "key": key,
        "kind": "organization",
        "name": name,
        "first_name": None,
        "last_name": None,
        "email": None,
        "phone": None,
        "website": None,
        "address": None,
        "postal_code": None,
        "city": None,
        "country": "NL",
        "vat_number": None,
        "coc_number": None,
        "iban": None,
        "bic": None,
        "customer_number": None,
        "created_at": SEED_TIME,
        "updated_at": SEED_TIME,
    }
    values.update(fields)
    return SeedContact(**values)


def seeds_of(**contacts: Sequence[SeedContact]) -> dict[VendorName, VendorSeed]:
    """Seeds from hand-made contacts per vendor: ``seeds_of(moneybird=[...], perfex=[...])``."""
    return {
        cast(VendorName, vendor): VendorSeed(contacts=tuple(given), invoices=())
        for vendor, given in contacts.items()
    }


# ---------------------------------------------------------------- a sandbox for sync code


@contextlib.contextmanager
def sandbox_in_thread(
    options: SandboxOptions, vendors: Sequence[VendorName]
) -> Iterator[SandboxHandle]:
    """Serve the sandbox from its own event loop in a worker thread.

    For code that runs its own event loop (``syncd once`` through click's CliRunner calls
    ``asyncio.run``). Read the emulators' state only between commands, when the sandbox
    is idle.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sandbox", daemon=True)
    thread.start()
    served = running_sandbox(options, vendors=vendors)
    try:
        handle = asyncio.run_coroutine_threadsafe(served.__aenter__(), loop).result(30)
        try:
            yield handle
        finally:
            asyncio.run_coroutine_threadsafe(served.__aexit__(None, None, None), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def toml_text(data: Mapping[str, Any]) -> str:
    """``config_data`` output as a TOML file (just the shapes that uses)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, Mapping):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"no TOML for {type(v).__name__}")

    lines = ["[database]", f"url = {value(data['database']['url'])}", ""]
    for workspace in data["workspace"]:
        lines += ["[[workspace]]", f"name = {value(workspace['name'])}", ""]
        for table in ("account", "flow"):
            for row in workspace[table]:
                lines.append(f"[[workspace.{table}]]")
                lines += [f"{k} = {value(v)}" for k, v in row.items()]
                lines.append("")
    return "\n".join(lines)

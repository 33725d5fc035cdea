"""Shared rig for the process-level reliability tests: `syncd run` against the sandbox.

A `Rig` serves the four vendor emulators in-process, writes a config with one contacts
flow over one account per vendor (each with a webhook secret, so a test can tell the
daemon "this vendor changed" the way the vendor itself would), and starts and kills
real `syncd run` processes (`tests.daemon.process.Syncd`) on it.

What a vendor holds is read from the emulator's own state and attributed to the seeded
world by identity (name, e-mail, VAT and chamber of commerce numbers), so a duplicate is
two records of one world contact in one vendor, whatever syncd's own tables say.

Human edits change a contact's phone number in one vendor (phone is not part of the
identity, so the contact stays attributable), and an edit has *arrived* when every
vendor's copy of that contact carries the new number.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.core.model import normalise_phone
from syncd.sandbox.base import VENDORS, SandboxOptions, SeedContact, VendorName
from syncd.sandbox.seed import generate_world
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.webhooks import (
    SYNCD_DELIVERY_HEADER,
    SYNCD_SIGNATURE_HEADER,
    SYNCD_TIMESTAMP_HEADER,
    sign_timestamped,
)
from tests.daemon.process import (
    Syncd,
    account_toml,
    config_toml,
    contact_count,
    free_port,
    workspace_toml,
)
from tests.integration.helpers import (
    Held,
    Token,
    held_contacts,
    human_edit,
    seed_contact,
    seed_tokens,
)

LONG_ENV = "SYNCD_LONG_RELIABILITY"
HOOK_SECRET = "reliability-webhook-secret-0008"
WORKSPACE = "rel"


def long_run() -> bool:
    """True when ``SYNCD_LONG_RELIABILITY=1`` asks for the long versions."""
    return os.environ.get(LONG_ENV) == "1"


def account_name(vendor: VendorName) -> str:
    return f"{WORKSPACE}-{vendor}"


async def wait_until(
    check: Callable[[], Awaitable[object] | object],
    *,
    within: float,
    what: str,
    state: Callable[[], object] | None = None,
    every: float = 0.25,
) -> float:
    """Poll ``check`` until true; the seconds it took. Fails after ``within`` seconds
    (a generous deadline for waiting, never a speed assertion)."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            seen = f"; state: {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}{seen}")
        await asyncio.sleep(every)


# ---------------------------------------------------------------- the rig


@dataclass
class Rig:
    handle: SandboxHandle
    options: SandboxOptions
    tmp: Path
    db_url: str
    vendors: tuple[VendorName, ...] = VENDORS
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Syncd] = field(default_factory=list)
    world: dict[VendorName, list[SeedContact]] = field(default_factory=dict)
    edits: dict[str, str] = field(default_factory=dict)  # world key -> latest phone set
    _index: tuple[int, dict[str, frozenset[Token]], dict[Token, set[str]]] | None = None

    def __post_init__(self) -> None:
        seeded = generate_world(self.options)
        self.world = {v: list(seeded[v].contacts) for v in self.vendors}
        self.config = self.tmp / "syncd.toml"
        self.write_config()

    # --- config and processes

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        blocks = [
            account_toml(self.handle, v, account_name(v), poll="10s", webhook_secret=HOOK_SECRET)
            for v in self.vendors
        ]
        names = [account_name(v) for v in self.vendors]
        text = config_toml(
            self.db_url, f"127.0.0.1:{self.port}", [workspace_toml(WORKSPACE, names, blocks)]
        )
        self.config.write_text(text, encoding="utf-8")

    async def start(self) -> Syncd:
        """A new `syncd run` process; each one logs to its own file."""
        n = len(self.processes) + 1
        daemon = Syncd(self.config, self.tmp / f"syncd-{n}.log", self.env)
        self.processes.append(daemon)
        await daemon.start()
        return daemon

    # --- what the vendors hold

    def attribute(self, held: Sequence[Held]) -> tuple[dict[str, list[Held]], list[Held]]:
        """As `tests.integration.helpers.attribute` (world key -> copies, unattributable),
        through a token index: the worlds here have hundreds of contacts and this runs
        on the event loop that also serves the sandbox."""
        tokens, index = self._indexed()
        by_key: dict[str, list[Held]] = {key: [] for key in tokens}
        stray: list[Held] = []
        for h in held:
            keys = set().union(*(index.get(token, set()) for token in h.tokens))
            if len(keys) == 1:
                by_key[keys.pop()].append(h)
            else:
                stray.append(h)
        return by_key, stray

    def _indexed(self) -> tuple[dict[str, frozenset[Token]], dict[Token, set[str]]]:
        size = sum(len(c) for c in self.world.values())
        if self._index is None or self._index[0] != size:
            tokens = self.tokens()
            index: dict[Token, set[str]] = {}
            for key, wanted in tokens.items():
                for token in wanted:
                    index.setdefault(token, set()).add(key)
            self._index = (size, tokens, index)
        return self._index[1], self._index[2]

    def tokens(self) -> dict[str, frozenset[Token]]:
        """World key -> identity tokens of every seeded copy of that contact."""
        found: dict[str, set[Token]] = {}
        for contacts in self.world.values():
            for contact in contacts:
                found.setdefault(contact.key, set()).update(seed_tokens(contact))
        return {key: frozenset(value) for key, value in found.items()}

    def union(self) -> int:
        return len({c.key for contacts in self.world.values() for c in contacts})

    def counts(self) -> dict[str, int]:
        return {v: contact_count(self.handle.emulators[v]) for v in self.vendors}

    def full(self) -> bool:
        """Every vendor holds as many contacts as the union (cheap; not yet a proof)."""
        union = self.union()
        return all(n == union for n in self.counts().values())

    def union_problems(self) -> list[str]:
        """Duplicates, missing and unattributable contacts, per vendor (empty: all good)."""
        tokens, _ = self._indexed()
        problems: list[str] = []
        for vendor in self.vendors:
            held = held_contacts(self.handle.emulators[vendor])
            by_key, stray = self.attribute(held)
            missing = sorted(key for key, copies in by_key.items() if not copies)
            doubled = {key: [h.id for h in c] for key, c in by_key.items() if len(c) > 1}
            if missing:
                problems.append(f"{vendor} lacks {len(missing)}: {missing[:10]}")
            if doubled:
                problems.append(f"{vendor} holds duplicates (key: ids): {doubled}")
            if stray:
                problems.append(f"{vendor} holds unattributable: {[h.name for h in stray]}")
            if len(held) != len(tokens):
                problems.append(f"{vendor} holds {len(held)} contacts, the union is {len(tokens)}")
        return problems

    def held_by_key(self) -> dict[VendorName, dict[str, list[Held]]]:
        """Per vendor: world key -> the copies it holds of that contact."""
        return {v: self.attribute(held_contacts(self.handle.emulators[v]))[0] for v in self.vendors}

    def country(self, key: str) -> str:
        for contacts in self.world.values():
            for contact in contacts:
                if contact.key == key:
                    return contact.country
        return "NL"

    # --- acting as the vendors' users

    def unedited(self, vendor: VendorName) -> str:
        """A world organisation seeded into ``vendor`` (so it is there from the start) that
        no edit has touched yet."""
        for contact in self.world[vendor]:
            if contact.kind == "organization" and contact.key not in self.edits:
                return contact.key
        raise AssertionError(f"no unedited organisation left in {vendor}")

    def edit_phone(self, vendor: VendorName, key: str, phone: str) -> None:
        """A user of ``vendor`` changes contact ``key``'s phone number."""
        emulator = self.handle.emulators[vendor]
        by_key, _ = self.attribute(held_contacts(emulator))
        copies = by_key[key]
        assert len(copies) == 1, f"{vendor} holds {len(copies)} copies of {key}"
        human_edit(emulator, copies[0], "phone", phone)
        self.edits[key] = phone

    def edit_round(self, n: int) -> list[str]:
        """One new edit in every vendor (distinct contacts, unique numbers); their keys."""
        keys = []
        for i, vendor in enumerate(self.vendors):
            key = self.unedited(vendor)
            self.edit_phone(vendor, key, f"+31 20 7{n % 100:02d} {i:02d}{len(self.edits):02d}")
            keys.append(key)
        return keys

    def create_contact(self, vendor: VendorName, n: int) -> str:
        """A user of ``vendor`` adds a new company (name, e-mail but in Perfex, phone); it
        joins the world under key ``new<n>`` so it is attributed like the seeded ones."""
        key = f"new{n:03d}"
        name = f"Nieuw Bedrijf {n:03d} B.V."
        email = f"nieuw{n:03d}@example.org"
        phone = f"+31 30 600 {n:04d}"
        resource, fields = {
            "simplicate": ("organization", {"name": name, "email": email, "phone": phone}),
            "moneybird": (
                "contacts",
                {"company_name": name, "send_invoices_to_email": email, "phone": phone},
            ),
            "perfex": ("customers", {"company": name, "phonenumber": phone}),
            "simplbooks": ("clients", {"name": name, "e_mail": email, "phone": phone}),
        }[vendor]
        self.handle.emulators[vendor].create(resource, fields)
        contact = seed_contact(key, name, email=None if vendor == "perfex" else email, phone=phone)
        self.world[vendor].append(contact)
        return key

    def lacking_edits(self) -> list[tuple[str, VendorName, str, str | None]]:
        """Each vendor copy without its contact's latest edit: (key, vendor, id, phone)."""
        lacking = []
        by_vendor = self.held_by_key()
        for key, phone in self.edits.items():
            want = normalise_phone(phone, self.country(key))
            for vendor, by_key in by_vendor.items():
                for copy in by_key.get(key, []):
                    if normalise_phone(copy.phone, self.country(key)) != want:
                        lacking.append((key, vendor, copy.id, copy.phone))
        return lacking

    def missing_edits(self) -> list[str]:
        """Edits not (yet) in every vendor, with what each vendor holds instead."""
        missing = []
        by_vendor = self.held_by_key()
        for key, phone in self.edits.items():
            want = normalise_phone(phone, self.country(key))
            held = {
                v: normalise_phone(c[0].phone, self.country(key)) if len(c) == 1 else "<not one>"
                for v, by_key in by_vendor.items()
                for c in [by_key.get(key, [])]
            }
            if set(held.values()) != {want}:
                missing.append(f"{key} wants {want}: {held}")
        return missing

    async def notify(self, vendor: VendorName) -> bool:
        """Tell the daemon (signed webhook) that ``vendor`` changed; False if nobody listened."""
        body = json.dumps({"event": "contact_updated", "vendor": vendor}).encode()
        now = int(time.time())
        headers = {
            SYNCD_SIGNATURE_HEADER: f"v1={sign_timestamped(HOOK_SECRET, now, body)}",
            SYNCD_TIMESTAMP_HEADER: str(now),
            SYNCD_DELIVERY_HEADER: uuid.uuid4().hex,
            "Content-Type": "application/json",
        }
        url = f"{self.admin}/hooks/{account_name(vendor)}"
        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(url, data=body, headers=headers) as answer,
            ):
                return answer.status in (200, 202)
        except (aiohttp.ClientError, TimeoutError):
            return False

    # --- the daemon's admin API

    async def get(self, path: str, seconds: float = 5.0) -> tuple[int, Any]:
        """(status, JSON or text) of an admin endpoint; (0, error) if it did not answer."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as http,
                http.get(f"{self.admin}{path}") as answer,
            ):
                text = await answer.text()
                try:
                    return answer.status, json.loads(text)
                except ValueError:
                    return answer.status, text
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"

    async def outbox(self) -> dict[str, int] | None:
        """The daemon's outbox totals by state (from /status), or None if it did not answer."""
        status, body = await self.get("/status")
        if status != 200 or not isinstance(body, dict):
            return None
        return dict(body["totals"]["outbox"])

    async def pulled(self, vendor: VendorName) -> bool:
        """Whether the daemon finished a successful pull of ``vendor``'s account (/status)."""
        status, body = await self.get("/status")
        if status != 200 or not isinstance(body, dict):
            return False
        return any(
            account["name"] == account_name(vendor) and account["last_success"]["pull"]
            for workspace in body["workspaces"]
            for account in workspace["accounts"]
        )

    async def settled(self) -> bool:
        """Nothing left to write: no pending, sending, uncertain or failed outbox row."""
        outbox = await self.outbox()
        if outbox is None:
            return False
        return all(outbox.get(s, 0) == 0 for s in ("pending", "sending", "uncertain", "failed"))

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for p in self.processes:
            with contextlib.suppress(OSError):
                out.append(f"--- {p.log_path.name} (pid {p.process and p.process.pid})")
                out += p.text().splitlines()[-lines:]
        return "\n".join(out)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every JSON log line named ``name``, from every process so far."""
        return [e for p in self.processes for e in p.events(name)]


class Stuck:
    """Settled (nothing to write), every vendor full, yet edits missing, for 25 s on end:
    two poll intervals went by and nothing more is coming."""

    PATIENCE = 25.0

    def __init__(self, r: Rig) -> None:
        self.r = r
        self.since: float | None = None
        self.stuck = False

    async def check(self) -> bool:
        r = self.r
        if r.full() and r.missing_edits() and not r.union_problems() and await r.settled():
            self.since = self.since or time.monotonic()
            self.stuck = time.monotonic() - self.since >= self.PATIENCE
        else:
            self.since = None
        return self.stuck


async def assert_nothing_dead(r: Rig) -> None:
    """No dead-lettered write."""
    outbox = await r.outbox()
    assert outbox is not None
    errors = [str(e.get("error")) for e in r.events("write_dead_lettered")]
    assert outbox.get("dead", 0) == 0, f"dead-lettered writes: {errors}"


async def lost_edits_fail(r: Rig) -> None:
    """Edits are missing for good with nothing left to write: fail, naming each copy."""
    lacking = r.lacking_edits()
    detail = ", ".join(f"{k} in {v} (id {i}) holds {p}" for k, v, i, p in lacking)
    assert r.union_problems() == []
    assert lacking, "stuck, yet no copy lacks an edit"
    pytest.fail(f"edits lost: {detail}")


async def quiet(r: Rig) -> bool:
    """Every vendor holds the union once, every edit is everywhere, nothing left to write."""
    return r.full() and not r.missing_edits() and not r.union_problems() and await r.settled()


async def converge(r: Rig, daemon: Syncd, *, within: float, what: str) -> float:
    """Wait until quiet; the seconds it took. Fails if the process exits, and when edits
    stay missing with nothing left to write."""
    stuck = Stuck(r)

    async def done() -> bool:
        assert daemon.running(), f"syncd exited:\n{daemon.text()[-3000:]}"
        return await quiet(r) or await stuck.check()

    took = await wait_until(
        done,
        within=within,
        what=what,
        state=lambda: {"counts": r.counts(), "missing edits": r.missing_edits()[:5]},
        every=0.5,
    )
    if stuck.stuck:
        await lost_edits_fail(r)
    return took


@contextlib.asynccontextmanager
async def rig(
    options: SandboxOptions,
    tmp: Path,
    db_url: str,
    *,
    env: Mapping[str, str] | None = None,
    vendors: Sequence[VendorName] = VENDORS,
) -> AsyncIterator[Rig]:
    """A served sandbox and a config for it; every process started is killed on exit, and
    on failure the last log lines of each are printed."""
    async with running_sandbox(options, vendors=vendors) as handle:
        r = Rig(handle, options, tmp, db_url, vendors=tuple(vendors), env=dict(env or {}))
        try:
            yield r
        except BaseException:
            print(r.log_tail())
            raise
        finally:
            for p in r.processes:
                await p.stop()

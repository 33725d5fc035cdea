"""Shared set-up for engine tests: settings for N fake accounts and an Engine over them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.fake import FakeAdapter, FakeVendor
from syncd.core.model import Contact
from syncd.runner import Engine
from syncd.settings import Settings, parse_settings
from syncd.store import tables as t


def _vendor_settings(vendor: str, name: str) -> dict[str, Any]:
    """Vendor, base_url and credentials of the right shape (the fake adapter ignores them)."""
    if vendor == "simplicate":
        return {
            "vendor": vendor,
            "base_url": f"http://127.0.0.1:9/{name}/api/v2",
            "credentials": {"key": "k", "secret": "s"},
        }
    if vendor == "perfex":
        return {
            "vendor": vendor,
            "base_url": f"http://127.0.0.1:9/{name}/api/v1",
            "credentials": {"api_key": "k"},
        }
    if vendor == "simplbooks":
        return {
            "vendor": vendor,
            "base_url": f"http://127.0.0.1:9/{name}/demo/api",
            "credentials": {"token": "t"},
        }
    return {
        "vendor": "moneybird",
        "base_url": f"http://127.0.0.1:9/{name}/api/v2/1",
        "credentials": {"token": f"token-{name}"},
    }


def settings_for(
    names: Sequence[str],
    *,
    conflict: str = "newest",
    delete: str = "archive",
    max_delete_percent: int = 50,
    owner: dict[str, str] | None = None,
    invoices: bool = False,
    vendors: dict[str, str] | None = None,
    invoice_owner: dict[str, str] | None = None,
) -> Settings:
    """A workspace with one contacts flow among ``names`` (moneybird-shaped accounts)."""
    accounts = [
        {
            "name": name,
            **_vendor_settings((vendors or {}).get(name, "moneybird"), name),
            "allow_insecure_http": True,
        }
        for name in names
    ]
    flow: dict[str, Any] = {
        "resource": "contacts",
        "accounts": list(names),
        "conflict": conflict,
        "delete": delete,
        "max_delete_percent": max_delete_percent,
    }
    if owner:
        flow["owner"] = owner
    flows = [flow]
    if invoices:
        invoice_flow: dict[str, Any] = {"resource": "invoices", "accounts": list(names)}
        if invoice_owner:
            invoice_flow["owner"] = invoice_owner
        flows.append(invoice_flow)
    data = {"workspace": [{"name": "ws", "account": accounts, "flow": flows}]}
    return parse_settings(data, environ={}, base_dir=Path("."))


class VirtualClock:
    """Engine time that only moves when the engine sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=max(0.0, seconds))


def make_engine(
    sessionmaker: async_sessionmaker[AsyncSession],
    vendors: dict[str, FakeVendor],
    **options: Any,
) -> Engine:
    settings = settings_for(list(vendors), **options)
    adapters = {name: FakeAdapter(v, account=name, page_size=7) for name, v in vendors.items()}
    clock = VirtualClock()
    return Engine(
        settings,
        sessionmaker,
        adapters,
        call_count=lambda name: vendors[name].calls,
        clock=clock,
        sleep=clock.sleep,
    )


def vendor(
    name: str,
    detection: Literal["incremental", "snapshot"] = "incremental",
    removal: Literal["delete", "archive"] = "delete",
    **options: Any,
) -> FakeVendor:
    return FakeVendor(name=name, change_detection=detection, removal=removal, **options)


def org(name: str, **fields: Any) -> Contact:
    return Contact(kind="organization", name=name, **fields)


def names(v: FakeVendor) -> list[str]:
    """The contact names a vendor holds (live, archived included), sorted."""
    return sorted(c.name for c in v.live("contacts").values() if isinstance(c, Contact))


def by_name(v: FakeVendor, name: str) -> tuple[str, Contact]:
    found = [
        (k, c) for k, c in v.live("contacts").items() if isinstance(c, Contact) and c.name == name
    ]
    assert len(found) == 1, f"{v.name} holds {len(found)} contacts named {name!r}"
    return found[0]


async def count(sessionmaker: async_sessionmaker[AsyncSession], table: Any, *where: Any) -> int:
    async with sessionmaker() as s:
        return int(
            (await s.execute(select(func.count()).select_from(table).where(*where))).scalar_one()
        )


async def open_conflicts(sessionmaker: async_sessionmaker[AsyncSession]) -> list[t.Conflict]:
    async with sessionmaker() as s:
        rows = await s.execute(select(t.Conflict).where(t.Conflict.state == "open"))
        return list(rows.scalars())

"""`syncd demo`: sandbox + syncd in one process on a fresh SQLite file (small worlds here)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from syncd.daemon import Daemon
from syncd.demo import DemoError, demo_daemon, demo_once, demo_sandbox_options, sandbox_address
from syncd.settings import Settings, load_settings
from syncd.store import tables as t
from syncd.store.db import create_engine, create_sessionmaker
from tests.daemon.helpers import wait_for
from tests.daemon.process import REPO, free_port

SMALL = demo_sandbox_options(contacts=6, invoices=2)


def demo_settings(tmp_path: Path, *, sandbox: int, admin: int) -> Settings:
    """config/demo.toml, moved to free ports and a database in ``tmp_path``."""
    text = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace("127.0.0.1:8900", f"127.0.0.1:{sandbox}")
    text = text.replace("127.0.0.1:8765", f"127.0.0.1:{admin}")
    text = text.replace(
        "sqlite+aiosqlite:///./syncd-demo.db", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    )
    path = tmp_path / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


async def contacts_linked_everywhere(settings: Settings) -> bool:
    """Every canonical contact is linked in every account of the contacts flow."""
    db = create_engine(settings.database.url)
    try:
        async with create_sessionmaker(db)() as s:
            contacts = (await s.execute(select(func.count()).select_from(t.Contact))).scalar_one()
            per_account = (
                await s.execute(
                    select(t.Link.account_id, func.count())
                    .where(t.Link.resource == "contacts")
                    .group_by(t.Link.account_id)
                )
            ).all()
    finally:
        await db.dispose()
    accounts = sum(1 for _ in settings.iter_accounts())
    return (
        contacts > 0 and len(per_account) == accounts and {n for _, n in per_account} == {contacts}
    )


async def test_demo_once_converges_from_a_fresh_database(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, sandbox=free_port(), admin=free_port())
    (tmp_path / "demo.db").write_text("left over from an earlier demo", encoding="utf-8")
    seen: set[str] = set()

    totals = await demo_once(settings, options=SMALL, progress=lambda a, what: seen.add(a))

    assert set(totals) == {a.name for _, a in settings.iter_accounts()} == seen
    assert all(st.errors == [] and st.failed == 0 for st in totals.values())
    assert sum(st.created for st in totals.values()) > 0
    assert await contacts_linked_everywhere(settings)


async def test_demo_runs_the_daemon_and_shows_each_account(tmp_path: Path) -> None:
    admin = free_port()
    settings = demo_settings(tmp_path, sandbox=free_port(), admin=admin)
    out = io.StringIO()
    got: list[Daemon] = []
    running = asyncio.create_task(
        demo_daemon(
            settings,
            config_path=None,
            options=SMALL,
            out=out,
            live=False,
            on_daemon=got.append,
            install_signals=False,
        )
    )
    try:
        await wait_for(lambda: got and got[0].ready.is_set(), what="the daemon up")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{admin}/healthz") as r,
        ):
            assert r.status == 200
        await wait_for(lambda: contacts_linked_everywhere(settings), within=60, what="convergence")
        await wait_for(
            lambda: all(f"{a.name}: pulled" in out.getvalue() for _, a in settings.iter_accounts()),
            what="a line per account",
        )
        got[0].request_stop()
        assert await asyncio.wait_for(running, 20) == 0
    finally:
        running.cancel()
    assert out.getvalue().startswith("syncd demo: sandbox http://127.0.0.1:")


def test_demo_needs_one_local_sandbox_address_and_sqlite(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, sandbox=18901, admin=18766)
    assert sandbox_address(settings) == ("127.0.0.1", 18901)

    text = (tmp_path / "demo.toml").read_text(encoding="utf-8")
    moved = tmp_path / "moved.toml"
    moved.write_text(
        text.replace("127.0.0.1:18901/perfex", "127.0.0.1:18902/perfex"), encoding="utf-8"
    )
    with pytest.raises(DemoError, match="one sandbox"):
        sandbox_address(load_settings(moved))

    postgres = tmp_path / "postgres.toml"
    postgres.write_text(
        text.replace(
            f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", "postgresql+asyncpg://u@127.0.0.1/demo"
        ),
        encoding="utf-8",
    )
    with pytest.raises(DemoError, match="SQLite"):
        asyncio.run(demo_once(load_settings(postgres), options=SMALL))

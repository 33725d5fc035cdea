"""Outbox rows are claimed with FOR UPDATE SKIP LOCKED (DESIGN §8, scale-out).

Leases already give each account one pushing instance; the row claim is the second line:
a row another transaction holds locked is skipped, never waited for and never sent
twice. Row locks are a PostgreSQL matter (SQLite has one writer at a time), so this runs
on PostgreSQL only.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.store import tables as t
from tests.engine.helpers import make_engine, org, vendor

Maker = async_sessionmaker[AsyncSession]


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
async def test_a_row_locked_by_another_transaction_is_skipped_not_sent(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.pull("crm")  # a create for books waits in the outbox

    async with db_sessionmaker() as other, other.begin():
        (row,) = (await other.execute(select(t.Outbox).with_for_update())).scalars().all()
        assert row.state == "pending"
        await engine.push("books")  # another pusher holds the row: skipped, no wait
        assert books.writes == 0

    async with db_sessionmaker() as s:
        after = await s.get(t.Outbox, row.id)
        assert after is not None and after.state == "pending"

    await engine.push("books")  # released: now it is sent, once
    assert books.writes == 1
    assert [c.name for c in books.live("contacts").values()] == ["Acme"]

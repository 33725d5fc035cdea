"""Print the query plan of each per-record look-up the engine makes, on a filled database.

Run from the repository root against a database a benchmark kept::

    .venv/bin/python tests/bench/bench_sync.py --n 1000 --no-rate --keep-db /tmp/bench.db
    .venv/bin/python tests/bench/explain_plans.py sqlite+aiosqlite:////tmp/bench.db
    .venv/bin/python tests/bench/explain_plans.py postgresql+asyncpg://postgres@127.0.0.1/NAME

Each look-up is made by calling the ``syncd.store.repos`` function itself, with values
taken from rows in the database (the newest contact, invoice, link and outbox row), so
the statement is exactly the one the engine sends. Its SQL is captured as it goes to
the driver and explained with the same parameters: ``EXPLAIN QUERY PLAN`` on SQLite,
``EXPLAIN`` on PostgreSQL. A plan line that scans a table is marked with ``<<``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def explain(url: str) -> int:
    from syncd.store import repos
    from syncd.store import tables as t
    from syncd.store.db import create_engine, create_sessionmaker

    db = create_engine(url)
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    scans = 0
    try:
        sessionmaker = create_sessionmaker(db)
        async with sessionmaker() as s:
            contact = (
                await s.execute(select(t.Contact).order_by(t.Contact.id.desc()).limit(1))
            ).scalar_one()
            invoice = (
                await s.execute(
                    select(t.Invoice)
                    .where(t.Invoice.reference.is_not(None), t.Invoice.number.is_not(None))
                    .order_by(t.Invoice.id.desc())
                    .limit(1)
                )
            ).scalar_one()
            link = (
                await s.execute(select(t.Link).order_by(t.Link.id.desc()).limit(1))
            ).scalar_one()
            outbox_account = (
                await s.execute(select(func.max(t.Outbox.account_id)))
            ).scalar_one() or link.account_id
            contact_value = await repos.entity_value(s, "contacts", contact)
            invoice_value = await repos.entity_value(s, "invoices", invoice)
            print(
                "rows: contacts {}, invoices {}, links {}, outbox {}".format(
                    *[
                        (await s.execute(select(func.count()).select_from(table))).scalar_one()
                        for table in (t.Contact, t.Invoice, t.Link, t.Outbox)
                    ]
                )
            )

            calls: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]] = [
                (
                    "link_by_external",
                    lambda s: repos.link_by_external(
                        s, link.account_id, link.resource, link.external_id
                    ),
                ),
                (
                    "link_by_entity",
                    lambda s: repos.link_by_entity(
                        s, link.account_id, link.resource, link.canonical_id
                    ),
                ),
                ("first_link", lambda s: repos.first_link(s, link.resource, link.canonical_id)),
                (
                    "links_of_entity",
                    lambda s: repos.links_of_entity(s, link.resource, link.canonical_id),
                ),
                (
                    "linked_accounts",
                    lambda s: repos.linked_accounts(s, link.resource, [link.canonical_id, 1]),
                ),
                (
                    "contact_candidates",
                    lambda s: repos.contact_candidates(
                        s, contact.workspace_id, contact_value, "NL000000000B01"
                    ),
                ),
                (
                    "invoice_candidates",
                    lambda s: repos.invoice_candidates(s, invoice.workspace_id, invoice_value),
                ),
                (
                    "active_outbox",
                    lambda s: repos.active_outbox(s, outbox_account, "contacts", contact.id),
                ),
                ("active_removals", lambda s: repos.active_removals(s, "contacts", contact.id)),
                ("open_conflicts", lambda s: repos.open_conflicts(s, "contacts", contact.id)),
                (
                    "last_change_accounts",
                    lambda s: repos.last_change_accounts(s, "contacts", contact.id),
                ),
                (
                    "open_review",
                    lambda s: repos.open_review(
                        s, link.account_id, link.resource, link.external_id
                    ),
                ),
                (
                    "rejected_candidates",
                    lambda s: repos.rejected_candidates(
                        s, link.account_id, link.resource, link.external_id
                    ),
                ),
                ("open_reviews", lambda s: repos.open_reviews(s, link.account_id, link.resource)),
                (
                    "resolve_quarantine",
                    lambda s: repos.resolve_quarantine(
                        s, link.account_id, link.resource, link.external_id, link.updated_at
                    ),
                ),
                ("invoice_lines", lambda s: repos.invoice_lines(s, invoice.id)),
                ("cursor_row", lambda s: repos.cursor_row(s, link.account_id, link.resource)),
            ]
            event.listen(db.sync_engine, "before_cursor_execute", capture)
            explained: list[tuple[str, str, Any]] = []
            for name, call in calls:
                captured.clear()
                await call(s)
                explained += [(name, sql, params) for sql, params in captured]
            event.remove(db.sync_engine, "before_cursor_execute", capture)

            prefix = "EXPLAIN QUERY PLAN " if db.dialect.name == "sqlite" else "EXPLAIN "
            for name, sql, params in explained:
                print(f"\n== {name}: {' '.join(sql.split())[:400]}")
                rows = (await s.connection()).exec_driver_sql(prefix + sql, params)
                for row in (await rows).all():
                    line = str(row[-1])
                    scan = line.startswith("SCAN ") or "Seq Scan" in line
                    scans += scan
                    print(f"   {line}{'   <<' if scan else ''}")
            await s.rollback()
    finally:
        await db.dispose()
    print(f"\n{scans} plan line(s) scan a table")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="an SQLAlchemy URL of a migrated, filled syncd database")
    return asyncio.run(explain(parser.parse_args().url))


if __name__ == "__main__":
    sys.exit(main())

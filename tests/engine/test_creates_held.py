"""A push does not create blind: while the target vendor cannot be listed, its creates
wait (a record typed in there meanwhile would be duplicated) and its updates go ahead.

The pre-create pull of an incremental vendor (a push lists the vendor first when creates
are due) must not list a broken vendor again and again either: once a resource's listing
failed, pushes hold its creates until a pull of it succeeds.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from syncd.store import tables as t
from tests.engine.helpers import by_name, count, make_engine, names, org, vendor


async def test_creates_wait_while_the_target_cannot_be_listed_and_updates_go_ahead(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    crm, books = vendor("crm"), vendor("books")
    acme = crm.human_create("contacts", org("Acme", phone="+31 20 000 0001"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    assert names(books) == ["Acme"]

    # Every read at books now fails (an HTML error page, say); its writes still work.
    books.fault_rate, books.fault_kinds = 1.0, ("html",)
    crm.human_create("contacts", org("Bakker"))
    crm.human_edit("contacts", acme, phone="+31 20 000 0002")
    await engine.pull("crm")

    with capture_logs() as logs:
        stats = await engine.push("books")
    assert names(books) == ["Acme"], "a create was sent although books could not be listed"
    assert by_name(books, "Acme")[1].phone == "+31200000002", "the update was held too"
    held = [e for e in logs if e["event"] == "creates_held"]
    assert len(held) == 1 and held[0]["resources"] == ["contacts"]
    assert any("contacts:" in error and "kept failing" in error for error in stats.errors)
    assert await count(db_sessionmaker, t.Outbox, t.Outbox.state == "pending") == 1

    # The listing failed: another push holds the creates without listing books again.
    calls = books.calls
    await engine.push("books")
    assert books.calls == calls and names(books) == ["Acme"]

    # A failing pull keeps them held; one that succeeds lets them go.
    await engine.pull("books")
    await engine.push("books")
    assert names(books) == ["Acme"]
    books.fault_rate = 0.0
    await engine.once()
    assert names(books) == ["Acme", "Bakker"]
    assert await count(db_sessionmaker, t.Outbox, t.Outbox.state == "pending") == 0

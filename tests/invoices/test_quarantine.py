"""An invoice whose contact cannot be synced waits in quarantine; nothing else is held up.

Issue 6 acceptance: an invoice whose contact cannot be synced is quarantined with a
reason and shows in ``syncd status``; nothing else is held up. The CRM holds the same
company twice (one VAT number, one e-mail address): syncd cannot tell whether they are
one company, queues the second for review and creates nothing for it, so its invoice has
no contact at the bookkeeping side to go to. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

from syncd.sandbox.base import SeedLine, VendorSeed
from syncd.status import collect_status, render_status
from tests.invoices.helpers import (
    D,
    find_by_lines,
    linked_copy,
    open_books,
    seed_contact,
    seed_invoice,
    seed_lines_of,
)

LINES = [
    SeedLine("Consultancy", D(3), D("95.00"), D(21)),
    SeedLine("Books", D(2), D("12.50"), D(9)),
]
OTHER_LINES = [SeedLine("Hosting", D(12), D("19.95"), D(21))]


async def test_an_invoice_of_an_unsynced_contact_is_quarantined_alone(
    migrated_db_url: str,
) -> None:
    vat, email = "NL123456789B01", "info@acme.nl"
    seed = VendorSeed(
        contacts=(
            seed_contact("acme", "Acme B.V.", email=email, vat=vat),
            seed_contact("dup", "Acme BV", email=email, vat=vat),
            seed_contact("other", "Other Company", email="x@other.nl"),
        ),
        invoices=(
            seed_invoice("held", "dup", LINES, number="2026-0001"),
            seed_invoice("free", "other", OTHER_LINES, number="2026-0002"),
        ),
    )
    async with open_books(
        "simplicate", "moneybird", migrated_db_url, crm_seed=seed, shared_budgets=True
    ) as world:
        await world.once()

        # The other company's invoice went through.
        assert [h.lines for h in world.invoices("moneybird")] == [seed_lines_of(seed.invoices[1])]
        (review,) = await world.open_reviews()
        (waiting,) = await world.quarantined()
        held = find_by_lines(world.invoices("simplicate"), seed.invoices[0])
        assert (waiting.resource, waiting.external_id) == ("invoices", held.id)
        assert waiting.reason.startswith("contact not synced"), waiting.reason

        status = await collect_status(
            world.runtime.sessionmaker, world.settings, now=dt.datetime.now(dt.UTC)
        )
        quarantine = {
            a["name"]: a["quarantine"] for w in status["workspaces"] for a in w["accounts"]
        }
        assert quarantine == {"simplicate": 1, "moneybird": 0}
        assert status["totals"]["quarantine"] == 1
        assert "1 quarantined" in render_status(status)  # what `syncd status` prints

        # A person decides they are two companies: the invoice follows on the next pass.
        await world.engine.decide_match(review.id, accept=False)
        await world.once(reconcile=False)

        assert await world.quarantined() == []
        copy = await linked_copy(world, "invoices", "simplicate", held.id)
        assert {h.id: h.lines for h in world.invoices("moneybird")}[copy] == seed_lines_of(
            seed.invoices[0]
        )
        status = await collect_status(
            world.runtime.sessionmaker, world.settings, now=dt.datetime.now(dt.UTC)
        )
        assert status["totals"]["quarantine"] == 0

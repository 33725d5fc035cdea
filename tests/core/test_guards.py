"""Tests for the pre-push guards: mass deletes, empty sides, read-only sides, page loops."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.guards import (
    MAX_DELETE_KEY,
    PASS,
    GuardVerdict,
    PaginationLoopDetector,
    check_empty_side,
    check_mass_delete,
    check_plan,
    check_read_only,
)
from syncd.core.model import Invoice
from syncd.core.plan import Action

BOOKS, CRM = "acme-books", "acme-crm"


def remove(account: str = BOOKS) -> Action:
    return Action(account, "remove", frozenset(), "", "contacts", "archive")


def update(account: str = BOOKS) -> Action:
    return Action(account, "update", frozenset({"email"}), "", "contacts")


def skip(account: str = BOOKS) -> Action:
    return Action(account, "skip", frozenset(), "read-only", "contacts")


# ----------------------------------------------------------------------------- mass delete


@pytest.mark.parametrize(
    ("side", "deletions", "limit", "ok"),
    [
        (100, 0, 20, True),
        (100, 20, 20, True),  # exactly the limit passes
        (100, 21, 20, False),
        (0, 0, 20, True),
        (3, 1, 20, False),  # 33.3 % of a small side is still a mass delete
        (3, 1, 34, True),
        (3, 1, 33, False),  # 33.33... > 33: no rounding at the boundary
        (10, 1, 0, False),  # 0 allows no deletion at all
        (10, 0, 0, True),
        (10, 10, 100, True),
        (10, 11, 100, False),  # more than the side holds: an error, always refused
        (0, 1, 100, False),
        (1000, 200, 20, True),
        (1000, 201, 20, False),
    ],
)
def test_mass_delete_refuses_only_above_the_limit(
    side: int, deletions: int, limit: int, ok: bool
) -> None:
    verdict = check_mass_delete(side, deletions, limit)
    assert verdict.ok is ok
    assert bool(verdict) is ok


def test_a_mass_delete_refusal_carries_counts_and_the_key_to_change() -> None:
    verdict = check_mass_delete(100, 30, 20, account=BOOKS, resource="contacts")
    assert verdict == GuardVerdict(
        ok=False,
        guard="mass_delete",
        reason=(
            "the pass would delete 30 of 100 contacts in acme-books (30.0 %), more than "
            "max_delete_percent = 20; nothing was pushed. If these deletions are intended, "
            "raise max_delete_percent in the flow for one pass"
        ),
        account=BOOKS,
        counts={"deletions": 30, "side_count": 100, "limit_percent": 20},
        config_key=MAX_DELETE_KEY,
    )


def test_a_mass_delete_reason_rounds_the_percentage_for_people_only() -> None:
    assert "(33.3 %)" in check_mass_delete(3, 1, 20).reason
    assert "(66.7 %)" in check_mass_delete(3, 2, 20).reason


def test_deleting_more_than_a_side_holds_says_so() -> None:
    verdict = check_mass_delete(2, 5, 100, account=BOOKS)
    assert (
        verdict.reason
        == "the pass would delete 5 records in acme-books, which holds only 2; refusing"
    )


@pytest.mark.parametrize(
    ("side", "deletions", "limit"), [(-1, 0, 20), (10, -1, 20), (10, 1, -1), (10, 1, 101)]
)
def test_mass_delete_rejects_impossible_arguments(side: int, deletions: int, limit: int) -> None:
    with pytest.raises(ValueError):
        check_mass_delete(side, deletions, limit)


@settings(deadline=None, max_examples=300)
@given(
    side=st.integers(0, 10_000),
    deletions=st.integers(0, 10_000),
    limit=st.integers(0, 100),
)
def test_property_mass_delete_matches_exact_fractions(
    side: int, deletions: int, limit: int
) -> None:
    from fractions import Fraction

    within = deletions == 0 or (
        side > 0 and deletions <= side and Fraction(deletions, side) <= Fraction(limit, 100)
    )
    assert check_mass_delete(side, deletions, limit).ok is within


# ----------------------------------------------------------------------------- empty side


@pytest.mark.parametrize(
    ("previous", "listed", "ok"),
    [(0, 0, True), (0, 5, True), (5, 5, True), (5, 1, True), (5, 0, False), (1, 0, False)],
)
def test_a_side_that_suddenly_lists_nothing_is_refused(
    previous: int, listed: int, ok: bool
) -> None:
    assert check_empty_side(previous, listed).ok is ok


def test_an_empty_side_refusal_explains_itself() -> None:
    verdict = check_empty_side(120, 0, account=BOOKS, resource="contacts")
    assert (verdict.guard, verdict.account, dict(verdict.counts)) == (
        "empty_side",
        BOOKS,
        {"previous_count": 120, "listed_count": 0},
    )
    assert verdict.reason.startswith("acme-books listed no contacts, but held 120 last time")
    assert "Nothing was pushed" in verdict.reason


def test_empty_side_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        check_empty_side(-1, 0)


# ----------------------------------------------------------------------------- read-only


def test_write_actions_for_a_read_only_account_are_refused() -> None:
    verdict = check_read_only([update(CRM), remove(BOOKS), update(BOOKS)], {BOOKS})
    assert (verdict.ok, verdict.guard, verdict.account, dict(verdict.counts)) == (
        False,
        "read_only",
        BOOKS,
        {"writes": 2},
    )
    assert verdict.reason == (
        "2 write action(s) planned for read-only account acme-books; nothing was pushed"
    )


def test_skips_and_conflicts_for_a_read_only_account_are_fine() -> None:
    conflict = Action(BOOKS, "conflict", frozenset({"lines"}), "", "invoices")
    assert check_read_only([skip(), conflict, update(CRM)], {BOOKS}) == PASS


# ----------------------------------------------------------------------------- whole plan


def test_check_plan_passes_a_normal_pass() -> None:
    actions = [update(), remove(), remove(CRM)]
    assert check_plan(actions, side_counts={BOOKS: 100, CRM: 100}, max_delete_percent=20).ok


def test_check_plan_counts_removals_per_account() -> None:
    actions = [remove(BOOKS)] * 3 + [remove(CRM)] * 30 + [update(BOOKS)] * 50
    verdict = check_plan(actions, side_counts={BOOKS: 100, CRM: 100}, max_delete_percent=20)
    assert (verdict.ok, verdict.guard, verdict.account) == (False, "mass_delete", CRM)
    assert verdict.counts["deletions"] == 30
    assert "contacts in acme-crm" in verdict.reason


def test_check_plan_treats_an_unknown_side_as_empty() -> None:
    verdict = check_plan([remove(BOOKS)], side_counts={}, max_delete_percent=100)
    assert not verdict.ok


def test_check_plan_refuses_writes_to_read_only_accounts_first() -> None:
    actions = [remove(CRM)] * 50 + [update(BOOKS)]
    verdict = check_plan(actions, side_counts={CRM: 60}, max_delete_percent=20, read_only={BOOKS})
    assert verdict.guard == "read_only"


# ----------------------------------------------------------------------------- pagination loops


def test_distinct_pages_are_not_a_loop() -> None:
    detector = PaginationLoopDetector(page_size=2)
    pages = [(["1", "2"], {"page": 2}), (["3", "4"], {"page": 3}), (["5"], None)]
    assert all(detector.feed(ids, checkpoint=cp, total=5) for ids, cp in pages)
    assert detector.pages == 3


def test_a_repeated_checkpoint_is_a_loop() -> None:
    detector = PaginationLoopDetector()
    assert detector.feed(["1"], checkpoint={"after": "2024-05-01T10:00:00Z", "id": 7})
    assert detector.feed(["2"], checkpoint={"after": "2024-05-01T10:00:05Z", "id": 9})
    verdict = detector.feed(["3"], checkpoint={"id": 7, "after": "2024-05-01T10:00:00Z"})
    assert (verdict.ok, verdict.guard) == (False, "pagination_loop")
    assert verdict.reason == "page 3 repeats the checkpoint of page 1: the listing loops; stopped"
    assert dict(verdict.counts) == {"page": 3, "earlier_page": 1}


def test_the_same_id_set_in_any_order_is_a_loop() -> None:
    detector = PaginationLoopDetector()
    assert detector.feed(["1", "2", "3"])
    assert detector.feed(["4", "5", "6"])
    verdict = detector.feed(["3", "1", "2"], account=BOOKS)
    assert (verdict.ok, verdict.account) == (False, BOOKS)
    assert verdict.reason == "page 3 lists the same 3 ids as page 1: the listing loops; stopped"


def test_overlapping_pages_are_not_a_loop() -> None:
    detector = PaginationLoopDetector()
    assert detector.feed(["1", "2", "3"])
    assert detector.feed(["3", "4", "5"])  # overlap windows repeat some ids by design
    assert detector.feed(["1", "2"])


def test_empty_pages_never_count_as_repeats() -> None:
    detector = PaginationLoopDetector()
    assert detector.feed([])
    assert detector.feed([])


def test_more_pages_than_the_declared_total_allows_is_a_loop() -> None:
    detector = PaginationLoopDetector(page_size=100, slack=2)
    for page in range(5):  # 250 records at 100 per page: 3 pages, plus 2 of slack
        assert detector.feed([f"{page}-{i}" for i in range(100)], total=250)
    assert detector.bound() == 5
    verdict = detector.feed(["late"], total=250)
    assert not verdict.ok
    assert verdict.reason == (
        "page 6 is more than the 5 pages that 250 records at 100 per page allow; stopped"
    )
    assert dict(verdict.counts) == {"page": 6, "bound": 5, "total": 250}


def test_a_growing_declared_total_raises_the_bound() -> None:
    detector = PaginationLoopDetector(page_size=10, slack=1)
    assert detector.feed(["a"], total=10)
    assert detector.bound() == 2
    assert detector.feed(["b"], total=20)
    assert detector.feed(["c"], total=5)  # a smaller later total never lowers the bound
    assert detector.bound() == 3
    assert not detector.feed(["d"])


def test_without_a_total_there_is_no_page_bound() -> None:
    detector = PaginationLoopDetector(page_size=1, slack=0)
    assert detector.bound() is None
    assert all(detector.feed([str(i)]) for i in range(500))


def test_without_a_page_size_each_page_is_assumed_to_hold_one_record() -> None:
    detector = PaginationLoopDetector(slack=0)
    assert detector.feed(["a"], total=2)
    assert detector.feed(["b"])
    assert not detector.feed(["c"])


@pytest.mark.parametrize("kwargs", [{"page_size": 0}, {"slack": -1}])
def test_detector_rejects_impossible_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PaginationLoopDetector(**kwargs)


def test_an_empty_listing_is_allowed_its_one_empty_page() -> None:
    detector = PaginationLoopDetector(page_size=100, slack=0)
    assert detector.feed([], total=0)
    assert not detector.feed([], total=0)


def test_detector_rejects_a_negative_total() -> None:
    with pytest.raises(ValueError):
        PaginationLoopDetector().feed(["a"], total=-1)


@settings(deadline=None, max_examples=200)
@given(
    ids=st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=300),
    page_size=st.integers(1, 50),
)
def test_property_an_honest_listing_is_never_called_a_loop(ids: list[str], page_size: int) -> None:
    detector = PaginationLoopDetector(page_size=page_size, slack=0)
    pages = [ids[i : i + page_size] for i in range(0, len(ids), page_size)] or [[]]
    for number, page in enumerate(pages, start=1):
        verdict = detector.feed(page, checkpoint={"offset": number * page_size}, total=len(ids))
        assert verdict.ok, verdict.reason


# --------------------------------------------------------------------------- invoice totals


def _invoice(lines: list[tuple[str, str, str]], **stated: str) -> Invoice:
    import datetime as dt
    from decimal import Decimal

    from syncd.core.model import InvoiceLine, with_computed_totals

    value = with_computed_totals(
        Invoice(
            number="1",
            contact="1",
            issue_date=dt.date(2026, 1, 1),
            due_date=None,
            lines=tuple(
                InvoiceLine(
                    description="x", quantity=Decimal(q), unit_price=Decimal(p), vat_rate=Decimal(v)
                )
                for q, p, v in lines
            ),
        )
    )
    import dataclasses

    return dataclasses.replace(value, **{k: Decimal(v) for k, v in stated.items()})


def test_totals_tolerance_grows_with_the_lines() -> None:
    from decimal import Decimal

    from syncd.core.guards import totals_tolerance

    assert totals_tolerance(0) == Decimal("0.01")
    assert totals_tolerance(1) == Decimal("0.01")
    assert totals_tolerance(3) == Decimal("0.02")  # 1.5 cents, rounded up
    assert totals_tolerance(20) == Decimal("0.10")


def test_invoice_totals_problem_names_both_figures() -> None:
    from syncd.core.guards import invoice_totals_problem

    lines = [("3", "95.00", "21"), ("2", "12.50", "9")]
    assert invoice_totals_problem(_invoice(lines)) is None
    # Per-line VAT rounding a cent away from ours is within the rule.
    assert invoice_totals_problem(_invoice(lines, tax_total="62.11", total="372.11")) is None
    problem = invoice_totals_problem(_invoice(lines, total="400.00"))
    assert problem is not None
    assert "total 400.00" in problem and "total 372.10" in problem

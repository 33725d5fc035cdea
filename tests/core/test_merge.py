"""Tests for the three-way field merge: every rule, its edges, and its properties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.merge import MergeResult, is_empty, merge
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    normalise,
    to_fields,
    with_computed_totals,
)
from syncd.core.plan import Target, plan
from syncd.core.policy import MISSING, FlowPolicy, Origin, flow_policy

UTC = dt.UTC
CRM, BOOKS = "acme-crm", "acme-books"
T0 = dt.datetime(2024, 5, 1, 9, 58, tzinfo=UTC)
T1 = dt.datetime(2024, 5, 1, 10, 2, tzinfo=UTC)

NEWEST = flow_policy("contacts", "newest")
MANUAL = flow_policy("contacts", "manual")

BASE: dict[str, Any] = {"name": "Acme", "email": "info@acme.nl", "phone": "+31201234567"}


def run(
    incoming: dict[str, Any],
    *,
    base: dict[str, Any] | None = BASE,
    canonical: dict[str, Any] | None = BASE,
    flow: FlowPolicy = NEWEST,
    account: str = CRM,
    incoming_at: dt.datetime | None = T1,
    origins: dict[str, Origin] | None = None,
    **kwargs: Any,
) -> MergeResult:
    return merge(
        account=account,
        base=base,
        incoming=incoming,
        canonical=canonical,
        flow=flow,
        incoming_at=incoming_at,
        origins=origins,
        **kwargs,
    )


def changes(result: MergeResult) -> dict[str, tuple[Any, Any]]:
    return {u.field: (u.old, u.new) for u in result.updates}


def nothing_happened(result: MergeResult) -> bool:
    return not (result.updates or result.resolved or result.queued or result.refused)


# ----------------------------------------------------------------------------- the basic rules


def test_an_echo_changes_nothing_even_when_the_canonical_moved_on() -> None:
    result = run(dict(BASE), canonical={**BASE, "email": "sales@acme.nl"})
    assert nothing_happened(result)
    assert dict(result.merged) == {**BASE, "email": "sales@acme.nl"}
    assert dict(result.new_base) == BASE
    assert not result.changed


def test_a_change_on_an_unchanged_canonical_field_is_taken() -> None:
    result = run({**BASE, "email": "sales@acme.nl"})
    assert changes(result) == {"email": ("info@acme.nl", "sales@acme.nl")}
    update = result.updates[0]
    assert update.origin == Origin(CRM, T1)
    assert update.reason == "acme-crm changed email"
    assert result.merged["email"] == "sales@acme.nl"
    assert result.origins["email"] == Origin(CRM, T1)
    assert result.changed


def test_a_change_the_canonical_already_has_is_not_an_update() -> None:
    same = {**BASE, "email": "sales@acme.nl"}
    result = run(same, canonical=same)
    assert nothing_happened(result)
    assert dict(result.new_base) == same


def test_edits_to_different_fields_on_different_sides_merge_without_conflict() -> None:
    canonical = {**BASE, "phone": "+31209999999"}  # changed by acme-books earlier
    result = run({**BASE, "email": "sales@acme.nl"}, canonical=canonical, flow=MANUAL)
    assert changes(result) == {"email": ("info@acme.nl", "sales@acme.nl")}
    assert not result.queued and not result.resolved
    assert dict(result.merged) == {**canonical, "email": "sales@acme.nl"}


def test_both_sides_changing_a_field_is_settled_by_the_policy() -> None:
    canonical = {**BASE, "email": "books@acme.nl"}
    result = run(
        {**BASE, "email": "crm@acme.nl"},
        canonical=canonical,
        origins={"email": Origin(BOOKS, T0)},
    )
    assert changes(result) == {"email": ("books@acme.nl", "crm@acme.nl")}
    (resolution,) = result.resolved
    assert (resolution.outcome, resolution.winner) == ("incoming", CRM)
    assert result.updates[0].reason == resolution.reason
    assert resolution.reason == (
        "newest: acme-crm changed email at 10:02:00 UTC, after acme-books at 09:58:00 UTC"
    )
    assert resolution.conflict.base == "info@acme.nl"


def test_a_losing_change_leaves_the_canonical_and_is_written_back() -> None:
    canonical = {**BASE, "email": "books@acme.nl"}
    result = run(
        {**BASE, "email": "crm@acme.nl"},
        canonical=canonical,
        incoming_at=T0,
        origins={"email": Origin(BOOKS, T1)},
    )
    assert not result.updates
    (resolution,) = result.resolved
    assert (resolution.outcome, resolution.winner) == ("current", BOOKS)
    assert result.new_base["email"] == "crm@acme.nl"
    actions = plan(
        flow=NEWEST,
        canonical=result.merged,
        targets=[Target(CRM, result.new_base, frozenset(BASE))],
    )
    assert [(a.op, a.fields) for a in actions] == [("update", frozenset({"email"}))]


def test_prefer_policy_decides_a_conflict() -> None:
    result = run(
        {**BASE, "email": "crm@acme.nl"},
        canonical={**BASE, "email": "books@acme.nl"},
        flow=flow_policy("contacts", f"prefer:{BOOKS}"),
        origins={"email": Origin(BOOKS, T0)},
    )
    assert not result.updates
    assert result.resolved[0].winner == BOOKS


# ----------------------------------------------------------------------------- no base yet


def test_a_fresh_match_without_base_conflicts_only_where_values_differ() -> None:
    canonical = {**BASE, "email": "books@acme.nl"}
    result = run(dict(BASE), base=None, canonical=canonical, flow=MANUAL)
    assert not result.updates
    (queued,) = result.queued
    assert queued.conflict.field == "email"
    assert queued.conflict.base is MISSING
    assert dict(result.new_base) == BASE


@pytest.mark.parametrize("empty", [None, "", [], {}])
def test_without_base_an_empty_canonical_field_is_filled_not_contested(empty: Any) -> None:
    result = run(
        {**BASE, "city": "Amsterdam"},
        base=None,
        canonical={**BASE, "city": empty},
        flow=MANUAL,
    )
    assert changes(result) == {"city": (empty, "Amsterdam")}
    assert result.updates[0].reason == "acme-crm filled the empty city"
    assert not result.queued


def test_without_base_an_empty_incoming_field_keeps_the_canonical_value() -> None:
    result = run(
        {**BASE, "city": None}, base=None, canonical={**BASE, "city": "Utrecht"}, flow=MANUAL
    )
    assert nothing_happened(result)
    assert result.merged["city"] == "Utrecht"
    assert result.new_base["city"] is None  # so the planner writes Utrecht to the account


def test_with_a_base_clearing_a_field_is_a_change_like_any_other() -> None:
    result = run({**BASE, "phone": None})
    assert changes(result) == {"phone": ("+31201234567", None)}


def test_with_a_base_an_edit_against_a_cleared_canonical_is_a_conflict() -> None:
    result = run({**BASE, "phone": "+31200000000"}, canonical={**BASE, "phone": None}, flow=MANUAL)
    assert [q.conflict.field for q in result.queued] == ["phone"]
    assert result.merged["phone"] is None


def test_without_a_canonical_record_every_incoming_field_is_taken() -> None:
    result = run(dict(BASE), base=None, canonical=None)
    assert changes(result) == {name: (None, value) for name, value in BASE.items()}
    assert {u.reason for u in result.updates} == {"new record from acme-crm"}
    assert dict(result.merged) == BASE


# ----------------------------------------------------------------------------- None vs missing


def test_a_field_absent_from_incoming_says_nothing() -> None:
    result = run({"name": "Acme"})
    assert nothing_happened(result)
    assert dict(result.new_base) == BASE


def test_a_field_absent_from_the_base_counts_as_never_agreed() -> None:
    base = {"name": "Acme"}
    same = run(dict(BASE), base=base)
    assert nothing_happened(same)  # equal to canonical: nothing to do
    differing = run({**BASE, "email": "crm@acme.nl"}, base=base, flow=MANUAL)
    assert [q.conflict.field for q in differing.queued] == ["email"]


def test_none_in_the_base_is_a_value_not_an_absence() -> None:
    base = {**BASE, "city": None}
    result = run({**BASE, "city": "Amsterdam"}, base=base, canonical={**BASE, "city": None})
    assert changes(result) == {"city": (None, "Amsterdam")}
    assert result.updates[0].reason == "acme-crm changed city"


def test_a_field_the_canonical_does_not_hold_is_taken() -> None:
    result = run({**BASE, "region": "NH"}, canonical=dict(BASE), flow=MANUAL)
    assert changes(result) == {"region": (None, "NH")}


def test_merge_compares_exactly_so_callers_normalise_first() -> None:
    stored = to_fields(normalise(Contact(kind="organization", name="Acme", email=None)))
    raw = to_fields(Contact(kind="organization", name="Acme", email=" "))
    assert run(raw, base=stored, canonical=stored).changed  # " " is not None
    cleaned = to_fields(normalise(Contact(kind="organization", name="Acme", email="")))
    assert nothing_happened(run(cleaned, base=stored, canonical=stored))


def test_is_empty_knows_what_empty_means() -> None:
    assert all(is_empty(v) for v in (MISSING, None, "", [], {}, ()))
    assert not any(is_empty(v) for v in (False, 0, "0", "0.00", [None], " "))


# ----------------------------------------------------------------------------- invoice lines


def line(description: str, qty: str = "1", price: str = "100") -> InvoiceLine:
    return InvoiceLine(description, Decimal(qty), Decimal(price), Decimal("21"))


def invoice_fields(*lines: InvoiceLine, status: Any = "open") -> dict[str, Any]:
    return to_fields(
        with_computed_totals(
            normalise(
                Invoice(
                    number="2024-001",
                    contact="c1",
                    issue_date=dt.date(2024, 5, 1),
                    due_date=None,
                    status=status,
                    lines=lines,
                )
            )
        )
    )


INVOICES = flow_policy("invoices", "manual")


def test_lines_are_one_field_compared_as_a_whole() -> None:
    base = invoice_fields(line("Design"), line("Build"))
    incoming = invoice_fields(line("Design"), line("Build and test"))
    result = run(incoming, base=base, canonical=base, flow=INVOICES)
    assert [u.field for u in result.updates] == ["lines"]
    assert result.merged["lines"] == incoming["lines"]


def test_equal_lines_are_an_echo_and_reordered_lines_are_a_change() -> None:
    base = invoice_fields(line("Design"), line("Build"))
    assert nothing_happened(
        run(invoice_fields(line("Design"), line("Build")), base=base, canonical=base, flow=INVOICES)
    )
    swapped = run(
        invoice_fields(line("Build"), line("Design")), base=base, canonical=base, flow=INVOICES
    )
    assert [u.field for u in swapped.updates] == ["lines"]


def test_two_sides_editing_different_lines_is_one_conflict_on_lines() -> None:
    base = invoice_fields(line("Design"), line("Build"))
    canonical = invoice_fields(line("Design work"), line("Build"))
    incoming = invoice_fields(line("Design"), line("Build work"))
    result = run(incoming, base=base, canonical=canonical, flow=INVOICES)
    assert [q.conflict.field for q in result.queued] == ["lines"]
    assert result.merged["lines"] == canonical["lines"]


# ----------------------------------------------------------------------------- ownership


OWNED = flow_policy(
    "invoices",
    "newest",
    {"lines": CRM, "status": BOOKS, "payments": BOOKS},
)


def test_the_owner_change_wins_over_a_conflicting_canonical_change() -> None:
    base = invoice_fields(line("Design"))
    canonical = invoice_fields(line("Design", qty="5"))
    incoming = invoice_fields(line("Design", qty="2"))
    result = run(
        incoming,
        base=base,
        canonical=canonical,
        flow=OWNED,
        origins={"lines": Origin(BOOKS, T1)},
        incoming_at=T0,  # older, yet the owner wins
    )
    # The totals are derived from the lines, so they follow the lines' owner too.
    assert [u.field for u in result.updates] == ["lines", "subtotal", "tax_total", "total"]
    assert result.updates[0].reason == "owner: acme-crm owns lines"
    assert not result.resolved and not result.queued


def test_a_non_owner_change_of_an_owned_field_is_refused_not_a_conflict() -> None:
    base = invoice_fields(line("Design"))
    incoming = invoice_fields(line("Design", price="90"))
    result = run(incoming, base=base, canonical=base, flow=OWNED, account=BOOKS)
    assert not result.updates and not result.queued and not result.resolved
    assert [r.field for r in result.refused] == ["lines", "subtotal", "tax_total", "total"]
    refusal = result.refused[0]
    assert (refusal.field, refusal.account, refusal.owner) == ("lines", BOOKS, CRM)
    assert refusal.value == incoming["lines"]
    assert refusal.reason == (
        "owner: acme-crm owns lines; the change from acme-books is refused "
        "and acme-crm's value is written back"
    )
    assert result.merged["lines"] == base["lines"]
    # The refused value is what the account holds now, so the owner's value goes back.
    assert result.new_base["lines"] == incoming["lines"]
    actions = plan(
        flow=OWNED,
        canonical=result.merged,
        targets=[Target(BOOKS, result.new_base, frozenset({"lines", "status"}))],
    )
    assert [(a.account, a.op, a.fields) for a in actions] == [
        (BOOKS, "update", frozenset({"lines"}))
    ]


def test_an_owner_that_does_not_hold_the_record_does_not_refuse_changes() -> None:
    # A CRM draft waiting for a bookkeeping vendor without drafts: the bookkeeping
    # account owns the status but holds no copy, so the CRM finalising it is taken.
    base = {**invoice_fields(line("Design")), "status": "draft"}
    incoming = {**base, "status": "sent"}
    waiting = run(incoming, base=base, canonical=base, flow=OWNED, holders={CRM})
    assert [u.field for u in waiting.updates] == ["status"] and not waiting.refused
    held = run(incoming, base=base, canonical=base, flow=OWNED, holders={CRM, BOOKS})
    assert [r.field for r in held.refused] == ["status"] and not held.updates


def test_a_non_owner_change_of_a_derived_total_is_refused() -> None:
    base = invoice_fields(line("Design"))
    incoming = {**base, "total": "121.01"}
    result = run(incoming, base=base, canonical=base, flow=OWNED, account=BOOKS)
    assert [(r.field, r.owner) for r in result.refused] == [("total", CRM)]


def test_a_refusal_is_not_raised_again_on_the_next_pass() -> None:
    base = invoice_fields(line("Design"))
    incoming = invoice_fields(line("Design", price="90"))
    first = run(incoming, base=base, canonical=base, flow=OWNED, account=BOOKS)
    second = run(
        incoming, base=dict(first.new_base), canonical=dict(first.merged), flow=OWNED, account=BOOKS
    )
    assert nothing_happened(second)


def test_a_non_owner_agreeing_with_the_owner_is_not_refused() -> None:
    base = invoice_fields(line("Design"))
    canonical = invoice_fields(line("Design", qty="2"))
    result = run(canonical, base=base, canonical=canonical, flow=OWNED, account=BOOKS)
    assert nothing_happened(result)


def test_owned_and_unowned_fields_are_handled_independently() -> None:
    base = invoice_fields(line("Design"), status="open")
    incoming = {**invoice_fields(line("Design", qty="4"), status="paid"), "due_date": "2024-06-01"}
    result = run(incoming, base=base, canonical=base, flow=OWNED, account=BOOKS)
    assert {u.field for u in result.updates} == {"status", "due_date"}
    assert {r.field for r in result.refused} == {"lines", "subtotal", "tax_total", "total"}


# ----------------------------------------------------------------------------- queued conflicts


def queued_first_pass() -> tuple[dict[str, Any], MergeResult]:
    canonical = {**BASE, "email": "books@acme.nl"}
    incoming = {**BASE, "email": "crm@acme.nl", "phone": "+31209999999"}
    return canonical, run(incoming, canonical=canonical, flow=MANUAL)


def test_a_queued_conflict_keeps_the_canonical_value_and_other_fields_still_merge() -> None:
    _, result = queued_first_pass()
    assert [q.conflict.field for q in result.queued] == ["email"]
    assert result.queued_fields == frozenset({"email"})
    assert result.merged["email"] == "books@acme.nl"
    assert changes(result) == {"phone": ("+31201234567", "+31209999999")}
    assert result.queued[0].conflict.candidates() == {
        "canonical": "books@acme.nl",
        CRM: "crm@acme.nl",
    }


def test_a_queued_conflict_is_not_raised_again_on_the_next_pass() -> None:
    _, first = queued_first_pass()
    again = run(
        dict(first.new_base),
        base=dict(first.new_base),
        canonical=dict(first.merged),
        flow=MANUAL,
        open_conflicts=first.queued_fields,
    )
    assert nothing_happened(again)


def test_a_queued_field_is_written_nowhere_until_decided() -> None:
    _, first = queued_first_pass()
    targets = [
        Target(CRM, first.new_base, frozenset(BASE)),
        Target(BOOKS, {**BASE, "email": "books@acme.nl"}, frozenset(BASE)),
    ]
    held = plan(flow=MANUAL, canonical=first.merged, targets=targets, held=first.queued_fields)
    assert [(a.account, a.fields) for a in held] == [(BOOKS, frozenset({"phone"}))]
    unheld = plan(flow=MANUAL, canonical=first.merged, targets=targets)
    assert (CRM, frozenset({"email"})) in [(a.account, a.fields) for a in unheld]


def test_a_new_change_to_a_field_with_an_open_conflict_joins_it() -> None:
    result = run(
        {**BASE, "email": "third@acme.nl"},
        flow=NEWEST,  # even a deciding policy leaves an open conflict to the person
        open_conflicts={"email"},
    )
    assert not result.updates
    (joined,) = result.queued
    assert (joined.conflict.field, joined.conflict.incoming) == ("email", "third@acme.nl")
    assert joined.reason.startswith("email already has an open conflict")
    assert result.new_base["email"] == "third@acme.nl"


# ----------------------------------------------------------------------------- metadata


def test_fields_the_account_does_not_carry_never_change_the_canonical() -> None:
    result = run(
        {**BASE, "website": None},
        base=None,
        canonical={**BASE, "website": "https://acme.nl"},
        carried=frozenset({"name", "email", "phone"}),
        flow=MANUAL,
    )
    assert nothing_happened(result)
    assert result.new_base["website"] is None


def test_origins_change_only_for_taken_fields() -> None:
    known = {"email": Origin(BOOKS, T0), "phone": Origin(BOOKS, T0)}
    result = run({**BASE, "phone": "+31209999999"}, origins=known)
    assert dict(result.origins) == {"email": Origin(BOOKS, T0), "phone": Origin(CRM, T1)}
    assert known == {"email": Origin(BOOKS, T0), "phone": Origin(BOOKS, T0)}  # not mutated


def test_inputs_are_not_mutated() -> None:
    base, incoming, canonical = dict(BASE), {**BASE, "email": "x@acme.nl"}, dict(BASE)
    run(incoming, base=base, canonical=canonical)
    assert (base, incoming, canonical) == (BASE, {**BASE, "email": "x@acme.nl"}, BASE)


def test_a_naive_incoming_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run(dict(BASE), incoming_at=dt.datetime(2024, 5, 1))  # naive on purpose


def test_updates_come_in_field_name_order() -> None:
    incoming = {"phone": "1", "email": "e", "name": "n"}
    result = run(incoming, base={}, canonical={}, flow=MANUAL)
    assert [u.field for u in result.updates] == ["email", "name", "phone"]


# ----------------------------------------------------------------------------- properties

FIELDS = ("name", "email", "phone", "city", "lines")
values = st.one_of(
    st.none(),
    st.sampled_from(["", "a", "b", "c"]),
    st.lists(st.sampled_from(["x", "y"]), max_size=2),
)
records = st.fixed_dictionaries({}, optional={name: values for name in FIELDS})
flows = st.sampled_from(
    [
        NEWEST,
        MANUAL,
        flow_policy("contacts", f"prefer:{BOOKS}"),
        flow_policy("contacts", "newest", {"email": CRM, "city": BOOKS}),
    ]
)
times = st.none() | st.sampled_from([T0, T1])
origin_maps = st.dictionaries(
    st.sampled_from(FIELDS),
    st.builds(Origin, st.sampled_from([None, CRM, BOOKS, "acme-erp"]), times),
)


@settings(deadline=None, max_examples=300)
@given(base=records, canonical=st.none() | records, flow=flows, at=times, origins=origin_maps)
def test_property_merging_an_echo_changes_nothing(
    base: dict[str, Any],
    canonical: dict[str, Any] | None,
    flow: FlowPolicy,
    at: dt.datetime | None,
    origins: dict[str, Origin],
) -> None:
    result = merge(
        account=CRM,
        base=base,
        incoming=dict(base),
        canonical=canonical,
        flow=flow,
        incoming_at=at,
        origins=origins,
    )
    assert nothing_happened(result)
    assert dict(result.merged) == (canonical or {})
    assert dict(result.new_base) == base
    assert dict(result.origins) == origins


@settings(deadline=None, max_examples=300)
@given(
    base=st.none() | records,
    incoming=records,
    canonical=st.none() | records,
    flow=flows,
    at=times,
    origins=origin_maps,
    account=st.sampled_from([CRM, BOOKS]),
    held=st.frozensets(st.sampled_from(FIELDS)),
)
def test_property_merge_is_deterministic_and_ignores_dict_order(
    base: dict[str, Any] | None,
    incoming: dict[str, Any],
    canonical: dict[str, Any] | None,
    flow: FlowPolicy,
    at: dt.datetime | None,
    origins: dict[str, Origin],
    account: str,
    held: frozenset[str],
) -> None:
    def once(reverse: bool) -> MergeResult:
        def order(d: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if d is None else dict(reversed(d.items()) if reverse else d.items())

        return merge(
            account=account,
            base=order(base),
            incoming=order(incoming) or {},
            canonical=order(canonical),
            flow=flow,
            incoming_at=at,
            origins=origins,
            open_conflicts=held,
        )

    first = once(False)
    assert first == once(False)
    assert first == once(True)


@settings(deadline=None, max_examples=300)
@given(
    base=st.fixed_dictionaries({name: values for name in FIELDS}),
    edits=st.dictionaries(st.sampled_from(FIELDS), values),
    split=st.sets(st.sampled_from(FIELDS)),
    flow=flows,
    crm_first=st.booleans(),
)
def test_property_disjoint_edits_on_two_accounts_both_survive(
    base: dict[str, Any],
    edits: dict[str, Any],
    split: set[str],
    flow: FlowPolicy,
    crm_first: bool,
) -> None:
    # Ownership would refuse one side's edit by design; this property is about merging.
    if flow.owners:
        flow = MANUAL
    crm = {**base, **{k: v for k, v in edits.items() if k in split}}
    books = {**base, **{k: v for k, v in edits.items() if k not in split}}
    order = [(CRM, crm), (BOOKS, books)] if crm_first else [(BOOKS, books), (CRM, crm)]
    canonical: dict[str, Any] = dict(base)
    for account, incoming in order:
        result = merge(
            account=account,
            base=base,
            incoming=incoming,
            canonical=canonical,
            flow=flow,
            incoming_at=T1,
        )
        assert not result.queued and not result.resolved and not result.refused
        canonical = dict(result.merged)
    assert canonical == {**base, **edits}


@settings(deadline=None, max_examples=300)
@given(
    base=st.none() | records,
    incoming=records,
    canonical=st.none() | records,
    flow=flows,
    account=st.sampled_from([CRM, BOOKS]),
)
def test_property_a_second_pass_with_the_same_incoming_changes_nothing(
    base: dict[str, Any] | None,
    incoming: dict[str, Any],
    canonical: dict[str, Any] | None,
    flow: FlowPolicy,
    account: str,
) -> None:
    first = merge(account=account, base=base, incoming=incoming, canonical=canonical, flow=flow)
    second = merge(
        account=account,
        base=dict(first.new_base),
        incoming=incoming,
        canonical=dict(first.merged),
        flow=flow,
        origins=dict(first.origins),
        open_conflicts=first.queued_fields,
    )
    assert nothing_happened(second)
    assert second.merged == first.merged


# --------------------------------------------------------------------------- contact kinds

# A sole trader: the owner (a person) in the CRM, which cannot change a contact's kind
# (Simplicate), and the business (an organization) in the books (Moneybird).
OWNER: dict[str, Any] = {
    "kind": "person",
    "name": "Jan Jansen",
    "first_name": "Jan",
    "last_name": "Jansen",
    "email": "jan@jansenadvies.nl",
    "vat_number": None,
}
BUSINESS: dict[str, Any] = {
    **OWNER,
    "kind": "organization",
    "name": "Jansen Advies",
    "vat_number": "NL123456782B01",
}
FIXED = frozenset({CRM})


def test_a_copy_filed_as_another_kind_where_the_kind_is_fixed_changes_no_kind_or_name() -> None:
    result = run(OWNER, base=None, canonical=BUSINESS, kind_fixed=FIXED, flow=MANUAL)
    assert (changes(result), result.queued, result.resolved) == ({}, (), ())
    assert result.new_base == OWNER  # what the CRM holds, so its next pull is no change


def test_other_fields_of_a_copy_of_another_kind_still_merge() -> None:
    owner = {**OWNER, "first_name": "Johan", "name": "Johan Jansen", "email": "jan@jansen.nl"}
    result = run(owner, base=OWNER, canonical=BUSINESS, kind_fixed=FIXED)
    assert changes(result) == {
        "email": ("jan@jansenadvies.nl", "jan@jansen.nl"),
        "first_name": ("Jan", "Johan"),
    }
    assert result.merged["name"] == "Jansen Advies"


def test_a_copy_of_the_canonical_kind_merges_its_name_where_the_kind_is_fixed() -> None:
    renamed = {**OWNER, "name": "Jan de Jansen"}
    result = run(renamed, base=OWNER, canonical=OWNER, kind_fixed=FIXED)
    assert changes(result) == {"name": ("Jan Jansen", "Jan de Jansen")}


@pytest.mark.parametrize("flow", [NEWEST, MANUAL], ids=["newest", "manual"])
def test_the_kind_of_a_vendor_that_can_change_it_is_taken_over_fixed_copies(
    flow: FlowPolicy,
) -> None:
    # The CRM's person is the newer copy: a policy would have kept its kind and name and
    # turned the books' business into a person.
    result = run(
        BUSINESS,
        account=BOOKS,
        base=None,
        canonical=OWNER,
        flow=flow,
        incoming_at=T0,
        origins={name: Origin(CRM, T1) for name in OWNER},
        holders={CRM, BOOKS},
        kind_fixed=FIXED,
    )
    assert changes(result) == {
        "kind": ("person", "organization"),
        "name": ("Jan Jansen", "Jansen Advies"),
        "vat_number": (None, "NL123456782B01"),
    }
    assert (result.queued, result.resolved) == ((), ())
    kind = next(u for u in result.updates if u.field == "kind")
    assert kind.reason == (
        "acme-books files it as an organization; acme-crm cannot change a contact's kind, "
        "so their copies keep their own: the kind differs by vendor design"
    )


def test_a_kind_blind_holder_does_not_contest_the_kind_either() -> None:
    result = run(
        BUSINESS,
        account=BOOKS,
        base=None,
        canonical=OWNER,
        flow=MANUAL,
        holders={CRM, "acme-sb", BOOKS},
        kind_fixed=FIXED,
        kind_blind={"acme-sb"},
    )
    assert result.merged["kind"] == "organization" and result.queued == ()


def test_the_kind_stays_contested_while_another_holder_can_follow_it() -> None:
    result = run(
        BUSINESS,
        account=BOOKS,
        base=None,
        canonical=OWNER,
        flow=MANUAL,
        holders={CRM, "acme-erp", BOOKS},
        kind_fixed=FIXED,
    )
    assert result.queued_fields == {"kind", "name"}
    # Without the holders or the fixed accounts the merge is as it always was.
    for extra in ({"kind_fixed": FIXED}, {"holders": {CRM, BOOKS}}):
        plain = run(BUSINESS, account=BOOKS, base=None, canonical=OWNER, flow=MANUAL, **extra)
        assert plain.queued_fields == {"kind", "name"}


def test_a_name_follows_the_kind_taken_with_it() -> None:
    # The books turned the person into a business; meanwhile the CRM renamed the person,
    # later than the books' edit. The kind is taken (only the books changed it), and a
    # business named after the person would be wrong: the name goes with the kind.
    base = {**OWNER, "name": "J. Jansen"}
    result = run(
        BUSINESS,
        account=BOOKS,
        base=base,
        canonical=OWNER,
        flow=NEWEST,
        incoming_at=T0,
        origins={"name": Origin(CRM, T1)},
    )
    assert changes(result) == {
        "kind": ("person", "organization"),
        "name": ("Jan Jansen", "Jansen Advies"),
        "vat_number": (None, "NL123456782B01"),
    }
    assert result.resolved == ()
    # Without the kind change the newer CRM name would have won.
    assert (
        run(
            {**BUSINESS, "kind": "person"},
            account=BOOKS,
            base=base,
            canonical=OWNER,
            incoming_at=T0,
            origins={"name": Origin(CRM, T1)},
        ).merged["name"]
        == "Jan Jansen"
    )


def test_a_sole_trader_in_two_filings_converges_with_one_merge_and_plan() -> None:
    # The CRM (kind fixed) made the record; the books link their business copy to it.
    result = run(
        BUSINESS,
        account=BOOKS,
        base=None,
        canonical=OWNER,
        flow=MANUAL,
        holders={CRM, BOOKS},
        kind_fixed=FIXED,
    )
    crm = Target(CRM, OWNER, frozenset(OWNER) - {"kind"}, kind_fixed=True)
    books = Target(BOOKS, result.new_base, frozenset(BUSINESS))
    # Nothing for the books (it holds what won) and nothing for the CRM: its person is
    # named after the contact person, and a person there holds no VAT number.
    assert plan(flow=MANUAL, canonical=result.merged, targets=[crm, books]) == ()
    # The CRM's next pull of its unchanged person is no change either.
    again = run(OWNER, base=OWNER, canonical=result.merged, kind_fixed=FIXED, flow=MANUAL)
    assert (again.updates, again.queued) == ((), ())

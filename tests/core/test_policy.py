"""Tests for conflict policies: parsing, ownership keys and every resolution rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.model import CONTACT_FIELDS, INVOICE_OWNER_FIELDS
from syncd.core.policy import (
    MISSING,
    ConflictPolicy,
    FieldConflict,
    FlowPolicy,
    Manual,
    Newest,
    Origin,
    Prefer,
    flow_policy,
    owner_keys,
    parse_policy,
    resolve,
)

UTC = dt.UTC


def at(hour: int, minute: int, second: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


def conflict(
    *,
    account: str = "acme-crm",
    incoming: Any = "new@acme.nl",
    incoming_at: dt.datetime | None = None,
    current: Any = "other@acme.nl",
    current_account: str | None = "acme-books",
    current_at: dt.datetime | None = None,
    name: str = "email",
) -> FieldConflict:
    return FieldConflict(
        field=name,
        account=account,
        incoming=incoming,
        incoming_at=incoming_at,
        current=current,
        current_origin=Origin(current_account, current_at),
        base="old@acme.nl",
    )


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("newest", Newest()),
        ("manual", Manual()),
        ("prefer:acme-books", Prefer("acme-books")),
        ("  prefer: acme-books ", Prefer("acme-books")),
        (" newest\n", Newest()),
    ],
)
def test_parse_policy_reads_each_form(text: str, expected: ConflictPolicy) -> None:
    assert parse_policy(text) == expected


@pytest.mark.parametrize("text", ["newest", "manual", "prefer:acme-books"])
def test_policy_prints_back_as_its_config_text(text: str) -> None:
    assert str(parse_policy(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unknown conflict policy"),
        ("oldest", "unknown conflict policy 'oldest'"),
        ("Newest", "unknown conflict policy"),
        ("owner", "unknown conflict policy"),
        ("prefer:", "needs an account name"),
        ("prefer:   ", "needs an account name"),
    ],
)
def test_parse_policy_rejects_anything_else(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policy(text)


def test_flow_policy_parses_every_setting_once() -> None:
    flow = flow_policy(
        "invoices",
        "prefer:acme-books",
        {"lines": "acme-crm", "status": "acme-books"},
        "propagate",
        35,
        accounts=["acme-crm", "acme-books"],
    )
    assert flow == FlowPolicy(
        resource="invoices",
        conflict=Prefer("acme-books"),
        owners={"lines": "acme-crm", "status": "acme-books"},
        delete="propagate",
        max_delete_percent=35,
    )


def test_flow_policy_defaults_match_the_config_defaults() -> None:
    flow = flow_policy("contacts")
    assert (flow.conflict, dict(flow.owners), flow.delete, flow.max_delete_percent) == (
        Newest(),
        {},
        "archive",
        20,
    )


def test_flow_policy_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        flow_policy(
            "contacts",
            "prefer:nobody",
            {"lines": "acme-crm", "email": "stranger"},
            "shred",
            120,
            accounts=["acme-crm", "acme-books"],
        )
    message = str(caught.value)
    for part in (
        "prefer: names 'nobody'",
        "'lines' is not a contacts field",
        "email names 'stranger'",
        "unknown delete policy 'shred'",
        "max_delete_percent",
    ):
        assert part in message


def test_flow_policy_without_accounts_does_not_check_names() -> None:
    assert flow_policy("contacts", "prefer:anyone", {"email": "anyone"}).owner_of("email") == (
        "anyone"
    )


def test_owner_keys_are_contact_fields_for_contacts_and_invoice_owner_keys_otherwise() -> None:
    assert owner_keys("contacts") == CONTACT_FIELDS
    assert owner_keys("invoices") == INVOICE_OWNER_FIELDS
    assert owner_keys("payments") == INVOICE_OWNER_FIELDS


@pytest.mark.parametrize(
    ("resource", "field", "owner"),
    [
        ("contacts", "email", "acme-crm"),
        ("contacts", "phone", None),
        ("invoices", "lines", "acme-crm"),
        ("invoices", "subtotal", "acme-crm"),
        ("invoices", "tax_total", "acme-crm"),
        ("invoices", "total", "acme-crm"),
        ("invoices", "status", "acme-books"),
        ("invoices", "amount_paid", "acme-books"),
        ("invoices", "due_date", None),
        ("payments", "amount", "acme-books"),
        ("payments", "date", "acme-books"),
    ],
)
def test_owner_of_follows_derived_fields_to_their_source(
    resource: Any, field: str, owner: str | None
) -> None:
    owners = (
        {"email": "acme-crm"}
        if resource == "contacts"
        else {"lines": "acme-crm", "status": "acme-books", "payments": "acme-books"}
    )
    assert flow_policy(resource, owner=owners).owner_of(field) == owner


def test_payments_have_no_owner_when_the_flow_names_none() -> None:
    assert flow_policy("payments", owner={"lines": "acme-crm"}).owner_of("amount") is None


# ----------------------------------------------------------------------------- newest


def test_newest_later_incoming_change_wins_with_a_readable_reason() -> None:
    got = resolve(
        conflict(incoming_at=at(10, 2), current_at=at(9, 58)),
        Newest(),
    )
    assert (got.outcome, got.winner, got.value, got.policy) == (
        "incoming",
        "acme-crm",
        "new@acme.nl",
        "newest",
    )
    assert got.reason == (
        "newest: acme-crm changed email at 10:02:00 UTC, after acme-books at 09:58:00 UTC"
    )


def test_newest_later_current_change_wins() -> None:
    got = resolve(conflict(incoming_at=at(9, 58), current_at=at(10, 2)), Newest())
    assert (got.outcome, got.winner, got.value) == ("current", "acme-books", "other@acme.nl")
    assert got.reason == (
        "newest: acme-books changed email at 10:02:00 UTC, after acme-crm at 09:58:00 UTC"
    )


def test_newest_reason_shows_dates_when_the_changes_are_on_different_days() -> None:
    got = resolve(conflict(incoming_at=at(8, 0, day=2), current_at=at(23, 0)), Newest())
    assert got.reason == (
        "newest: acme-crm changed email at 2024-05-02 08:00:00 UTC, "
        "after acme-books at 2024-05-01 23:00:00 UTC"
    )


def test_newest_compares_instants_not_wall_clocks() -> None:
    amsterdam = dt.timezone(dt.timedelta(hours=2))
    earlier_in_utc = dt.datetime(2024, 5, 1, 11, 0, tzinfo=amsterdam)  # 09:00 UTC
    got = resolve(conflict(incoming_at=earlier_in_utc, current_at=at(10, 0)), Newest())
    assert got.outcome == "current"


@pytest.mark.parametrize(
    ("incoming_at", "current_at", "why"),
    [
        (at(10, 0), at(10, 0), "both changed email at 2024-05-01 10:00:00 UTC"),
        (None, at(10, 0), "no change time for acme-crm"),
        (at(10, 0), None, "no change time for acme-books"),
        (None, None, "no change time for acme-crm and acme-books"),
    ],
)
def test_newest_ties_and_unknown_times_go_to_the_account_named_first(
    incoming_at: dt.datetime | None, current_at: dt.datetime | None, why: str
) -> None:
    # acme-books sorts before acme-crm, whichever side it is on.
    as_current = resolve(conflict(incoming_at=incoming_at, current_at=current_at), Newest())
    assert (as_current.outcome, as_current.winner) == ("current", "acme-books")
    assert as_current.reason == f"newest: {why}; acme-books wins (account names in order)"
    swapped = resolve(
        conflict(
            account="acme-books",
            current_account="acme-crm",
            incoming_at=current_at,
            current_at=incoming_at,
        ),
        Newest(),
    )
    assert (swapped.outcome, swapped.winner) == ("incoming", "acme-books")


def test_newest_a_never_agreed_copy_without_a_time_does_not_beat_a_timed_value() -> None:
    # A first match: a snapshot vendor's copy (no change time) meets a value a user set
    # elsewhere at a known time. The copy may be years old: the timed value stays.
    first_match = dataclasses.replace(
        conflict(account="acme-books", current_account="acme-crm", current_at=at(9, 30)),
        base=MISSING,
    )
    got = resolve(first_match, Newest())
    assert (got.outcome, got.winner) == ("current", "acme-crm")
    assert got.reason == (
        "newest: acme-books's copy was never agreed and has no change time; "
        "acme-crm's value of 2024-05-01 09:30:00 UTC stays"
    )
    # Once agreed, a change without a time is a change: the account names decide.
    agreed = resolve(
        conflict(account="acme-books", current_account="acme-crm", current_at=at(9, 30)),
        Newest(),
    )
    assert (agreed.outcome, agreed.winner) == ("incoming", "acme-books")


def test_newest_a_first_read_timed_copy_beats_a_value_without_a_time() -> None:
    # The mirror image of the test above: the snapshot vendor was read first, so its value
    # is the current one; the copy read now carries a user's edit at a known time.
    first_match = dataclasses.replace(
        conflict(
            account="acme-crm",
            current_account="acme-books",
            incoming_at=at(9, 30),
            current_at=None,
        ),
        base=MISSING,
    )
    got = resolve(first_match, Newest())
    assert (got.outcome, got.winner) == ("incoming", "acme-crm")
    assert got.reason == (
        "newest: acme-books's value has no change time; acme-crm changed email at "
        "2024-05-01 09:30:00 UTC, and that value wins"
    )


def test_newest_keeps_the_current_value_when_its_account_is_unknown_and_times_tie() -> None:
    got = resolve(conflict(incoming_at=at(10, 0), current_account=None, current_at=None), Newest())
    assert (got.outcome, got.winner, got.value) == ("current", None, "other@acme.nl")
    assert "account is unknown" in got.reason


def test_newest_a_known_later_time_beats_an_unknown_account() -> None:
    got = resolve(
        conflict(incoming_at=at(10, 0), current_account=None, current_at=at(9, 0)), Newest()
    )
    assert got.outcome == "incoming"
    assert "after the current value at" in got.reason


@settings(deadline=None, max_examples=200)
@given(
    a_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    b_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    a=st.sampled_from(["acme-crm", "acme-books", "z-perfex"]),
    b=st.sampled_from(["acme-crm", "acme-books", "z-perfex"]),
    first_match=st.booleans(),
)
def test_newest_picks_the_same_account_whichever_side_is_incoming(
    a_at: dt.datetime | None, b_at: dt.datetime | None, a: str, b: str, first_match: bool
) -> None:
    # Also on a first match (the incoming copy never agreed): which account is read first
    # must not decide.
    if a == b:
        return

    def match(c: FieldConflict) -> FieldConflict:
        return dataclasses.replace(c, base=MISSING) if first_match else c

    one = resolve(
        match(
            conflict(
                account=a,
                incoming="A",
                incoming_at=a_at,
                current="B",
                current_account=b,
                current_at=b_at,
            )
        ),
        Newest(),
    )
    other = resolve(
        match(
            conflict(
                account=b,
                incoming="B",
                incoming_at=b_at,
                current="A",
                current_account=a,
                current_at=a_at,
            )
        ),
        Newest(),
    )
    assert one.winner == other.winner
    assert one.value == other.value
    assert one == resolve(
        match(
            conflict(
                account=a,
                incoming="A",
                incoming_at=a_at,
                current="B",
                current_account=b,
                current_at=b_at,
            )
        ),
        Newest(),
    )


# ----------------------------------------------------------------------------- prefer / manual


def test_prefer_the_incoming_account_wins_even_when_older() -> None:
    got = resolve(conflict(incoming_at=at(9, 0), current_at=at(10, 0)), Prefer("acme-crm"))
    assert (got.outcome, got.winner, got.policy) == ("incoming", "acme-crm", "prefer:acme-crm")
    assert got.reason == "prefer:acme-crm: acme-crm's email wins"


def test_prefer_the_current_account_wins_even_when_older() -> None:
    got = resolve(conflict(incoming_at=at(10, 0), current_at=at(9, 0)), Prefer("acme-books"))
    assert (got.outcome, got.winner) == ("current", "acme-books")
    assert got.reason == "prefer:acme-books: acme-books's email wins over acme-crm's"


def test_prefer_falls_back_to_newest_when_neither_side_is_preferred() -> None:
    got = resolve(conflict(incoming_at=at(10, 0), current_at=at(9, 0)), Prefer("acme-erp"))
    assert (got.outcome, got.winner) == ("incoming", "acme-crm")
    assert got.reason.startswith("prefer:acme-erp: neither side is acme-erp, so by newest:")


def test_manual_queues_and_keeps_the_current_value() -> None:
    got = resolve(conflict(incoming_at=at(10, 0), current_at=at(9, 0)), Manual())
    assert (got.outcome, got.winner, got.value, got.policy) == (
        "queued",
        None,
        "other@acme.nl",
        "manual",
    )
    assert got.reason == (
        "manual: acme-crm and acme-books both changed email; queued for a decision, "
        "the current value stays"
    )


@pytest.mark.parametrize("policy", [Newest(), Prefer("acme-books"), Manual()])
def test_an_account_overriding_its_own_earlier_value_wins_under_every_policy(
    policy: ConflictPolicy,
) -> None:
    got = resolve(
        conflict(current_account="acme-crm", incoming_at=at(9, 0), current_at=at(10, 0)),
        policy,
    )
    assert (got.outcome, got.winner, got.value) == ("incoming", "acme-crm", "new@acme.nl")


def test_candidates_name_each_side_by_account() -> None:
    assert conflict().candidates() == {"acme-books": "other@acme.nl", "acme-crm": "new@acme.nl"}
    assert conflict(current_account=None).candidates() == {
        "canonical": "other@acme.nl",
        "acme-crm": "new@acme.nl",
    }


def test_a_conflict_without_a_base_says_missing() -> None:
    assert FieldConflict("email", "acme-crm", "a", None, "b").base is MISSING


@pytest.mark.parametrize("where", ["origin", "incoming"])
def test_naive_datetimes_are_refused(where: str) -> None:
    naive = dt.datetime(2024, 5, 1, 10, 0)  # naive on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        if where == "origin":
            Origin("acme-crm", naive)
        else:
            FieldConflict("email", "acme-crm", "a", naive, "b")


# --------------------------------------------------------------------------- invoice roles


def test_default_invoice_owners_split_by_role() -> None:
    from syncd.core.policy import default_invoice_owners, origin_owner

    owners = default_invoice_owners({"crm": "crm", "books": "books"}, {})
    assert owners["lines"] == "crm" and owners["contact"] == "crm"
    assert owners["status"] == "books" and owners["payments"] == "books"
    assert owners["number"] == "books"
    assert origin_owner("invoices", owners) == "crm"
    assert origin_owner("payments", owners) == "books"
    assert origin_owner("contacts", owners) is None


def test_default_invoice_owners_keep_configured_keys_and_need_one_per_role() -> None:
    from syncd.core.policy import default_invoice_owners

    owners = default_invoice_owners({"a": "crm", "b": "books"}, {"status": "a"})
    assert owners["status"] == "a" and owners["payments"] == "b"
    two_crms = default_invoice_owners({"a": "crm", "c": "crm", "b": "books"}, {})
    assert "lines" not in two_crms and two_crms["status"] == "b"
    assert default_invoice_owners({}, {}) == {}


def test_invoices_are_never_planned_into_a_vendor_that_takes_no_lines() -> None:
    from syncd.core.policy import invoice_direction_problems

    accounts = {"crm": ("simplicate", False), "books": ("moneybird", True)}
    # The default: the CRM owns the lines, invoices go from it into bookkeeping.
    assert invoice_direction_problems({"lines": "crm"}, accounts) == []
    # Bookkeeping owning the lines would create invoices in Simplicate.
    ((account, message),) = invoice_direction_problems({"lines": "books"}, accounts)
    assert account == "crm"
    assert message == (
        "invoices would be created in crm from books, but simplicate takes no invoice "
        'lines through its API: set owner.lines = "crm" or leave crm out of this flow'
    )
    # Nobody owning the lines creates invoices every way.
    ((_, every_way),) = invoice_direction_problems({}, accounts)
    assert "from the other accounts (no account owns lines)" in every_way

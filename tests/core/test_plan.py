"""Tests for the planner: per-account actions, deletions, dry-run text and convergence."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.adapters.base import Capabilities
from syncd.adapters.moneybird.adapter import CAPABILITIES as MONEYBIRD
from syncd.adapters.simplbooks.adapter import CAPABILITIES as SIMPLBOOKS
from syncd.adapters.simplicate.adapter import CAPABILITIES as SIMPLICATE
from syncd.core.merge import merge
from syncd.core.plan import (
    OPS,
    Action,
    Target,
    as_held,
    base_after_write,
    decide_deletion,
    decide_revival,
    describe,
    fixes_kind,
    pending_fields,
    plan,
)
from syncd.core.policy import FlowPolicy, flow_policy

CRM, BOOKS, ERP = "acme-crm", "acme-books", "acme-erp"
CONTACTS = flow_policy("contacts", "newest")
CANON: dict[str, Any] = {
    "name": "Acme",
    "email": "info@acme.nl",
    "phone": "+31201234567",
    "website": "https://acme.nl",
}
WRITABLE = frozenset({"name", "email", "phone"})  # no website, like Moneybird


def ops(actions: Sequence[Action]) -> list[tuple[str, str, frozenset[str]]]:
    return [(a.account, a.op, a.fields) for a in actions]


# ----------------------------------------------------------------------------- creates, updates


def test_an_unlinked_account_gets_a_create_with_every_writable_field() -> None:
    (action,) = plan(flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, None, WRITABLE)])
    assert (action.account, action.op, action.fields, action.resource) == (
        BOOKS,
        "create",
        WRITABLE,
        "contacts",
    )
    assert action.writes
    assert action.reason == "acme-books has no contact linked to this one"


def test_a_create_carries_only_writable_fields_the_canonical_holds() -> None:
    (action,) = plan(
        flow=CONTACTS,
        canonical={"name": "Acme"},
        targets=[Target(BOOKS, None, WRITABLE)],
    )
    assert action.fields == frozenset({"name"})


def test_an_update_carries_only_writable_fields_that_differ_from_the_base() -> None:
    base = {**CANON, "email": "old@acme.nl", "website": None}
    (action,) = plan(flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, base, WRITABLE)])
    assert (action.op, action.fields) == ("update", frozenset({"email"}))
    assert action.reason == "acme-books holds an older value of email"


def test_nothing_to_change_means_no_action_at_all() -> None:
    targets = [
        Target(CRM, dict(CANON), WRITABLE | {"website"}),
        Target(BOOKS, dict(CANON), WRITABLE),
    ]
    assert plan(flow=CONTACTS, canonical=CANON, targets=targets) == ()


def test_a_difference_in_a_field_the_account_cannot_write_is_not_an_action() -> None:
    base = {**CANON, "website": None}
    assert plan(flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, base, WRITABLE)]) == ()


def test_a_base_missing_a_writable_field_gets_it_written() -> None:
    base = {"name": "Acme", "email": "info@acme.nl"}
    (action,) = plan(flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, base, WRITABLE)])
    assert action.fields == frozenset({"phone"})


def test_none_in_the_canonical_is_written_over_a_value() -> None:
    canonical = {**CANON, "phone": None}
    (action,) = plan(flow=CONTACTS, canonical=canonical, targets=[Target(BOOKS, CANON, WRITABLE)])
    assert action.fields == frozenset({"phone"})


def test_each_account_gets_its_own_diff_in_target_order() -> None:
    targets = [
        Target(CRM, {**CANON, "phone": "+31200000000"}, WRITABLE | {"website"}),
        Target(BOOKS, {**CANON, "email": "x@acme.nl", "name": "ACME"}, WRITABLE),
        Target(ERP, dict(CANON), WRITABLE),
    ]
    assert ops(plan(flow=CONTACTS, canonical=CANON, targets=targets)) == [
        (CRM, "update", frozenset({"phone"})),
        (BOOKS, "update", frozenset({"email", "name"})),
    ]


def test_held_fields_are_not_written_to_any_account() -> None:
    targets = [Target(BOOKS, {**CANON, "email": "x", "phone": "y"}, WRITABLE)]
    actions = plan(flow=CONTACTS, canonical=CANON, targets=targets, held={"email"})
    assert ops(actions) == [(BOOKS, "update", frozenset({"phone"}))]
    assert plan(flow=CONTACTS, canonical=CANON, targets=targets, held={"email", "phone"}) == ()


def test_a_create_still_carries_held_fields() -> None:
    (action,) = plan(
        flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, None, WRITABLE)], held={"email"}
    )
    assert "email" in action.fields


def test_an_account_without_fields_for_the_resource_gets_a_skip() -> None:
    (action,) = plan(flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS)])
    assert (action.op, action.reason) == ("skip", "acme-books cannot store contacts")
    assert not action.writes


def test_a_detached_account_gets_nothing() -> None:
    targets = [Target(BOOKS, None, WRITABLE, detached=True)]
    assert plan(flow=CONTACTS, canonical=CANON, targets=targets) == ()
    assert plan(flow=CONTACTS, canonical=None, targets=targets) == ()


# ----------------------------------------------------------------------------- read-only, owners


def test_a_read_only_account_gets_a_skip_instead_of_an_update() -> None:
    base = {**CANON, "email": "x", "phone": "y"}
    (action,) = plan(
        flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, base, WRITABLE, read_only=True)]
    )
    assert (action.op, action.fields) == ("skip", frozenset({"email", "phone"}))
    assert action.reason == "acme-books is read-only: email, phone not written"


def test_a_read_only_account_gets_a_skip_instead_of_a_create() -> None:
    (action,) = plan(
        flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, None, WRITABLE, read_only=True)]
    )
    assert (action.op, action.reason) == (
        "skip",
        "acme-books is read-only: the contact is not created there",
    )


def test_a_converged_read_only_account_gets_no_skip_noise() -> None:
    targets = [Target(BOOKS, dict(CANON), WRITABLE, read_only=True)]
    assert plan(flow=CONTACTS, canonical=CANON, targets=targets) == ()


INVOICES = flow_policy("invoices", "newest", {"lines": CRM, "status": BOOKS})
INVOICE = {
    "number": "2024-001",
    "contact": "c1",
    "status": "open",
    "lines": [{"description": "Design"}],
    "subtotal": "100.00",
    "total": "121.00",
    "due_date": "2024-06-01",
}
INVOICE_WRITABLE = frozenset(INVOICE)


def test_an_owned_field_is_never_written_to_its_owner() -> None:
    base = {**INVOICE, "lines": [], "total": "0.00", "status": "draft"}
    targets = [Target(CRM, base, INVOICE_WRITABLE), Target(BOOKS, base, INVOICE_WRITABLE)]
    assert ops(plan(flow=INVOICES, canonical=INVOICE, targets=targets)) == [
        (CRM, "update", frozenset({"status"})),
        (BOOKS, "update", frozenset({"lines", "total"})),
    ]


def test_the_owner_still_gets_owned_fields_on_create() -> None:
    (action,) = plan(
        flow=INVOICES, canonical=INVOICE, targets=[Target(CRM, None, INVOICE_WRITABLE)]
    )
    assert {"lines", "total"} <= action.fields


# ----------------------------------------------------------------------------- sent invoices

SENT_MUTABLE = frozenset({"status", "payments", "reference"})


def sent_target(base: Mapping[str, Any], *, sent: bool = True) -> Target:
    return Target(BOOKS, base, INVOICE_WRITABLE, sent_mutable=SENT_MUTABLE, sent=sent)


def test_a_change_to_a_sent_invoice_immutable_field_is_a_conflict_not_an_update() -> None:
    base = {**INVOICE, "lines": [{"description": "Draft"}]}
    (action,) = plan(flow=CONTACTS_LIKE_INVOICES, canonical=INVOICE, targets=[sent_target(base)])
    assert (action.op, action.fields) == ("conflict", frozenset({"lines"}))
    assert action.reason == "invoice already sent in acme-books: lines cannot change"
    assert not action.writes


CONTACTS_LIKE_INVOICES = flow_policy("invoices", "newest")


def test_a_sent_invoice_still_takes_its_mutable_fields() -> None:
    base = {**INVOICE, "status": "draft"}
    (action,) = plan(flow=CONTACTS_LIKE_INVOICES, canonical=INVOICE, targets=[sent_target(base)])
    assert (action.op, action.fields) == ("update", frozenset({"status"}))


def test_a_draft_is_not_created_where_no_drafts_are_kept_until_it_is_final() -> None:
    no_drafts = Target(BOOKS, None, INVOICE_WRITABLE, drafts=False)
    draft = {**INVOICE, "status": "draft", "number": None}
    (action,) = plan(flow=CONTACTS_LIKE_INVOICES, canonical=draft, targets=[no_drafts])
    assert action.op == "skip"
    assert action.reason == (
        "acme-books keeps no drafts (every invoice there is numbered and final): "
        "the draft is created there once it is finalised"
    )
    (final,) = plan(
        flow=CONTACTS_LIKE_INVOICES, canonical={**draft, "status": "sent"}, targets=[no_drafts]
    )
    assert final.op == "create"
    # A vendor with drafts takes the draft as it is.
    (held,) = plan(
        flow=CONTACTS_LIKE_INVOICES,
        canonical=draft,
        targets=[Target(BOOKS, None, INVOICE_WRITABLE)],
    )
    assert held.op == "create"


def test_a_sent_invoice_with_both_kinds_of_change_gets_an_update_and_a_conflict() -> None:
    base = {**INVOICE, "status": "draft", "total": "100.00", "due_date": None}
    actions = plan(flow=CONTACTS_LIKE_INVOICES, canonical=INVOICE, targets=[sent_target(base)])
    assert ops(actions) == [
        (BOOKS, "conflict", frozenset({"due_date", "total"})),
        (BOOKS, "update", frozenset({"status"})),
    ]
    assert actions[0].reason == "invoice already sent in acme-books: due_date, total cannot change"


def test_an_unsent_invoice_takes_every_change() -> None:
    base = {**INVOICE, "lines": [], "status": "draft"}
    (action,) = plan(
        flow=CONTACTS_LIKE_INVOICES, canonical=INVOICE, targets=[sent_target(base, sent=False)]
    )
    assert (action.op, action.fields) == ("update", frozenset({"lines", "status"}))


def test_the_sent_flag_means_nothing_for_contacts() -> None:
    target = Target(BOOKS, {**CANON, "email": "x"}, WRITABLE, sent=True)
    (action,) = plan(flow=CONTACTS, canonical=CANON, targets=[target])
    assert action.op == "update"


# ----------------------------------------------------------------------------- deletions


@pytest.mark.parametrize(
    ("policy", "removal", "op", "how", "reason"),
    [
        (
            "propagate",
            "delete",
            "remove",
            "delete",
            "the contact was deleted elsewhere (delete = propagate)",
        ),
        (
            "propagate",
            "archive",
            "remove",
            "archive",
            "the contact was deleted elsewhere (delete = propagate)",
        ),
        ("propagate", "none", "skip", None, "acme-books cannot remove contacts"),
        (
            "archive",
            "archive",
            "remove",
            "archive",
            "the contact was deleted elsewhere (delete = archive)",
        ),
        (
            "archive",
            "delete",
            "skip",
            None,
            "acme-books cannot archive contacts, only delete them, and the flow's delete policy is archive",
        ),
        ("archive", "none", "skip", None, "acme-books cannot remove contacts"),
    ],
)
def test_a_deleted_record_is_removed_per_delete_policy_and_vendor(
    policy: Any, removal: Any, op: str, how: str | None, reason: str
) -> None:
    flow = flow_policy("contacts", delete=policy)
    (action,) = plan(
        flow=flow, canonical=None, targets=[Target(BOOKS, dict(CANON), WRITABLE, removal=removal)]
    )
    assert (action.op, action.removal, action.reason) == (op, how, reason)


@pytest.mark.parametrize("removal", ["delete", "archive", "none"])
def test_delete_ignore_removes_nothing(removal: Any) -> None:
    flow = flow_policy("contacts", delete="ignore")
    targets = [Target(BOOKS, dict(CANON), WRITABLE, removal=removal)]
    assert plan(flow=flow, canonical=None, targets=targets) == ()


def test_a_deleted_record_is_not_removed_where_it_was_never_linked_or_read_only() -> None:
    flow = flow_policy("contacts", delete="propagate")
    targets = [
        Target(CRM, None, WRITABLE, removal="delete"),
        Target(BOOKS, dict(CANON), WRITABLE, removal="delete", read_only=True),
    ]
    (action,) = plan(flow=flow, canonical=None, targets=targets)
    assert (action.account, action.op, action.reason) == (
        BOOKS,
        "skip",
        "acme-books is read-only: the contact is not removed there",
    )


def test_a_deletion_nobody_modified_is_propagated() -> None:
    flow = flow_policy("contacts", delete="propagate")
    decision = decide_deletion(
        flow=flow, target=Target(BOOKS, dict(CANON), WRITABLE), canonical=CANON
    )
    assert (decision.outcome, decision.changed) == ("delete", frozenset())
    assert (
        decision.reason
        == "acme-books deleted the contact; delete = propagate: it is removed elsewhere"
    )


def test_a_deletion_under_archive_policy_archives_elsewhere() -> None:
    decision = decide_deletion(
        flow=CONTACTS, target=Target(BOOKS, dict(CANON), WRITABLE), canonical=CANON
    )
    assert decision.outcome == "delete"
    assert decision.reason.endswith("delete = archive: it is archived elsewhere")


def test_a_modify_beats_a_delete() -> None:
    stale = {**CANON, "email": "old@acme.nl"}
    decision = decide_deletion(
        flow=CONTACTS, target=Target(BOOKS, stale, WRITABLE), canonical=CANON
    )
    assert (decision.outcome, decision.changed) == ("recreate", frozenset({"email"}))
    assert decision.reason == (
        "acme-books deleted the contact, but email changed since acme-books last agreed: "
        "a modify beats a delete, so it is kept and created again in acme-books"
    )
    # After the runner drops the link, the planner creates it there again.
    (action,) = plan(flow=CONTACTS, canonical=CANON, targets=[Target(BOOKS, None, WRITABLE)])
    assert action.op == "create"


def test_a_change_whose_source_deleted_the_record_too_does_not_beat_the_delete() -> None:
    stale = {**CANON, "email": "old@acme.nl", "phone": "+31200000000"}
    target = Target(BOOKS, stale, WRITABLE)
    # The new e-mail came from an account that deleted the record as well: no modify is
    # left standing for it; the phone's source still holds the record.
    kept = decide_deletion(flow=CONTACTS, target=target, canonical=CANON, gone={"email"})
    assert (kept.outcome, kept.changed) == ("recreate", frozenset({"phone"}))
    gone = decide_deletion(flow=CONTACTS, target=target, canonical=CANON, gone={"email", "phone"})
    assert gone.outcome == "delete"


def test_a_change_the_deleting_account_cannot_hold_does_not_beat_its_delete() -> None:
    base = {**CANON, "website": "https://old.acme.nl"}
    decision = decide_deletion(flow=CONTACTS, target=Target(BOOKS, base, WRITABLE), canonical=CANON)
    assert decision.outcome == "delete"


def test_a_deletion_under_ignore_detaches_the_account() -> None:
    flow = flow_policy("contacts", delete="ignore")
    decision = decide_deletion(
        flow=flow, target=Target(BOOKS, dict(CANON), WRITABLE), canonical=CANON
    )
    assert decision.outcome == "detach"
    assert decision.reason == (
        "acme-books deleted the contact; delete = ignore keeps it and stops syncing it to acme-books"
    )


def test_a_deletion_of_an_already_deleted_record_just_forgets_the_link() -> None:
    decision = decide_deletion(
        flow=CONTACTS, target=Target(BOOKS, dict(CANON), WRITABLE), canonical=None
    )
    assert decision.outcome == "forget"


def test_a_change_reported_for_a_deleted_record_revives_it() -> None:
    decision = decide_revival(
        flow=CONTACTS, account=CRM, base=CANON, incoming={**CANON, "phone": "+31209999999"}
    )
    assert (decision.outcome, decision.changed) == ("revive", frozenset({"phone"}))
    assert decision.reason == (
        "acme-crm changed phone of the deleted contact: a modify beats a delete, so it is restored"
    )


def test_an_unchanged_record_reported_after_deletion_stays_deleted() -> None:
    assert decide_revival(flow=CONTACTS, account=CRM, base=CANON, incoming=dict(CANON)).outcome == (
        "stay_deleted"
    )
    uncarried = decide_revival(
        flow=CONTACTS,
        account=CRM,
        base=CANON,
        incoming={**CANON, "website": None},
        carried=WRITABLE,
    )
    assert uncarried.outcome == "stay_deleted"


# ----------------------------------------------------------------------------- bases after writes


def test_after_a_create_the_base_is_everything_the_vendor_holds() -> None:
    action = Action(BOOKS, "create", WRITABLE, "", "contacts")
    written = {**CANON, "website": None}
    assert base_after_write(None, action, written) == written


def test_after_an_update_only_the_written_fields_become_agreed() -> None:
    old = dict(CANON)
    action = Action(BOOKS, "update", frozenset({"email"}), "", "contacts")
    # The read-back also shows a phone edit someone made at the vendor meanwhile.
    read_back = {**CANON, "email": "new@acme.nl", "phone": "+31209999999"}
    new = base_after_write(old, action, read_back)
    assert new == {**CANON, "email": "new@acme.nl"}
    pulled = merge(account=BOOKS, base=new, incoming=read_back, canonical=new, flow=CONTACTS)
    assert [u.field for u in pulled.updates] == ["phone"]  # not swallowed as an echo


def test_the_vendor_form_of_a_written_value_becomes_the_base() -> None:
    action = Action(BOOKS, "update", frozenset({"phone"}), "", "contacts")
    new = base_after_write(CANON, action, {**CANON, "phone": "+31 20 123 4567"})
    assert new is not None and new["phone"] == "+31 20 123 4567"


def test_after_a_remove_there_is_no_base_and_skips_change_nothing() -> None:
    assert (
        base_after_write(CANON, Action(BOOKS, "remove", frozenset(), "", "contacts"), None) is None
    )
    for op in ("skip", "conflict"):
        kept = base_after_write(
            CANON, Action(BOOKS, op, frozenset({"email"}), "", "contacts"), None
        )
        assert kept == CANON


def test_a_write_without_the_vendor_answer_is_refused() -> None:
    with pytest.raises(ValueError, match="needs the fields the vendor now holds"):
        base_after_write(CANON, Action(BOOKS, "update", frozenset({"email"}), "", "contacts"), None)


# ----------------------------------------------------------------------------- dry-run text


@pytest.mark.parametrize(
    ("action", "text"),
    [
        (Action(BOOKS, "create", WRITABLE, "", "contacts"), "would create contact in acme-books"),
        (
            Action(CRM, "update", frozenset({"phone", "email"}), "", "contacts"),
            "would update 2 fields (email, phone) in acme-crm",
        ),
        (
            Action(CRM, "update", frozenset({"email"}), "", "contacts"),
            "would update 1 field (email) in acme-crm",
        ),
        (
            Action(BOOKS, "remove", frozenset(), "", "invoices", "delete"),
            "would delete invoice in acme-books",
        ),
        (
            Action(BOOKS, "remove", frozenset(), "", "contacts", "archive"),
            "would archive contact in acme-books",
        ),
        (
            Action(
                BOOKS, "skip", frozenset(), "acme-books is read-only: email not written", "contacts"
            ),
            "would skip contact in acme-books: acme-books is read-only: email not written",
        ),
        (
            Action(
                BOOKS,
                "conflict",
                frozenset({"lines"}),
                "invoice already sent in acme-books: lines cannot change",
                "invoices",
            ),
            "would queue a conflict for invoice in acme-books: "
            "invoice already sent in acme-books: lines cannot change",
        ),
        (
            Action(BOOKS, "create", frozenset(), "", "payments"),
            "would create payment in acme-books",
        ),
    ],
)
def test_describe_gives_one_dry_run_line(action: Action, text: str) -> None:
    assert describe(action) == text


def test_every_op_is_described() -> None:
    for op in OPS:
        assert describe(Action(BOOKS, op, frozenset({"email"}), "why", "contacts")).startswith(
            "would "
        )


# ----------------------------------------------------------------------------- capabilities


def test_a_target_is_built_from_real_vendor_capabilities() -> None:
    target = Target.from_capabilities(BOOKS, MONEYBIRD, "invoices", base=None, sent=True)
    assert target.writable == MONEYBIRD.writable_fields["invoices"]
    assert target.removal == "delete"
    assert target.sent_mutable == MONEYBIRD.sent_invoice_mutable_fields
    assert (target.sent, target.read_only, target.linked) == (True, False, False)


def test_a_resource_the_vendor_lacks_gives_an_empty_target() -> None:
    bare = dataclasses.replace(MONEYBIRD, writable_fields={}, removal={})
    assert isinstance(bare, Capabilities)
    target = Target.from_capabilities(BOOKS, bare, "payments", base={})
    assert (target.writable, target.removal, target.linked) == (frozenset(), "none", True)


# ----------------------------------------------------------------------------- contact kinds

# A sole trader: the business in the books (the canonical record), the owner in the CRM.
BUSINESS: dict[str, Any] = {
    "kind": "organization",
    "name": "Jansen Advies",
    "first_name": "Jan",
    "last_name": "Jansen",
    "email": "jan@jansenadvies.nl",
    "phone": "+31611112222",
    "vat_number": "NL123456782B01",
    "coc_number": "12345678",
}
OWNER_COPY: dict[str, Any] = {
    **BUSINESS,
    "kind": "person",
    "name": "Jan Jansen",
    "vat_number": None,
    "coc_number": None,
}


def crm_copy(base: dict[str, Any] | None = OWNER_COPY) -> Target:
    return Target.from_capabilities(CRM, SIMPLICATE, "contacts", base=base)


def test_only_a_vendor_that_tells_kinds_apart_but_cannot_write_them_fixes_the_kind() -> None:
    assert fixes_kind(SIMPLICATE)
    assert not fixes_kind(MONEYBIRD)  # can turn a person into an organization
    assert not fixes_kind(SIMPLBOOKS)  # cannot tell them apart at all
    assert crm_copy().kind_fixed
    assert not Target.from_capabilities(CRM, SIMPLICATE, "invoices").kind_fixed
    assert not Target.from_capabilities(BOOKS, MONEYBIRD, "contacts").kind_fixed


def test_a_copy_of_another_kind_is_in_step_when_only_the_kind_and_its_name_differ() -> None:
    assert plan(flow=CONTACTS, canonical=BUSINESS, targets=[crm_copy()]) == ()
    assert pending_fields(BUSINESS, crm_copy()) == frozenset()


def test_an_update_to_a_copy_of_another_kind_never_carries_the_kind() -> None:
    canonical = {**BUSINESS, "email": "jan@jansen.nl", "first_name": "Johan"}
    (action,) = plan(flow=CONTACTS, canonical=canonical, targets=[crm_copy()])
    # The owner's name follows the first name; the business's own name does not.
    assert (action.op, action.fields) == ("update", frozenset({"email", "first_name", "name"}))
    assert action.reason == (
        "acme-crm holds an older value of email, first_name, name; its copy stays a person: "
        "acme-crm cannot change a contact's kind, so the kind differs by vendor design"
    )
    held = as_held(canonical, crm_copy())
    assert (held["kind"], held["name"], held["first_name"]) == ("person", "Johan Jansen", "Johan")


def test_fields_only_the_other_kind_has_are_not_written_where_the_kind_is_fixed() -> None:
    # A Simplicate person has no VAT or chamber of commerce number; an organization
    # there has no first or last name. Same kind or not, they are never pending.
    assert pending_fields({**BUSINESS, "vat_number": "NL999999999B01"}, crm_copy()) == set()
    assert crm_copy().writable >= {"vat_number", "coc_number", "first_name", "last_name"}
    business_copy = {**BUSINESS, "first_name": None, "last_name": None}
    owner = {**BUSINESS, "kind": "person", "name": "Jan Jansen", "first_name": "Johan"}
    target = crm_copy(business_copy)
    assert pending_fields(owner, target) == frozenset()
    assert as_held(owner, target)["name"] == "Jansen Advies"  # the business's own name


def test_a_kind_a_vendor_can_change_is_still_written() -> None:
    target = Target.from_capabilities(BOOKS, MONEYBIRD, "contacts", base=OWNER_COPY)
    (action,) = plan(flow=CONTACTS, canonical=BUSINESS, targets=[target])
    assert action.fields == frozenset({"kind", "name", "vat_number", "coc_number"})
    assert as_held(BUSINESS, target) == BUSINESS


def test_a_create_where_the_kind_is_fixed_carries_the_canonical_kind() -> None:
    (action,) = plan(flow=CONTACTS, canonical=BUSINESS, targets=[crm_copy(None)])
    assert action.op == "create"
    assert as_held(BUSINESS, crm_copy(None)) == BUSINESS


def test_a_copy_of_another_kind_converges_after_one_update() -> None:
    canonical = {**BUSINESS, "email": "jan@jansen.nl", "last_name": "Jansen-Smit"}
    target = crm_copy()
    (action,) = plan(flow=CONTACTS, canonical=canonical, targets=[target])
    # What the vendor holds afterwards: the value it was sent, minus what a person lacks.
    sent = as_held(canonical, target)
    written = {**sent, "vat_number": None, "coc_number": None}
    base = base_after_write(target.base, action, written)
    assert base is not None and base["kind"] == "person"
    assert plan(flow=CONTACTS, canonical=canonical, targets=[crm_copy(base)]) == ()


def test_a_deleted_copy_of_another_kind_counts_no_name_as_a_modify() -> None:
    decision = decide_deletion(flow=CONTACTS, target=crm_copy(), canonical=BUSINESS)
    assert decision.outcome == "delete"


# ----------------------------------------------------------------------------- properties

FIELDS = ("name", "email", "phone", "lines", "status", "total")
values = st.one_of(
    st.none(), st.sampled_from(["a", "b"]), st.lists(st.sampled_from(["x"]), max_size=2)
)
records = st.fixed_dictionaries({}, optional={name: values for name in FIELDS})
field_sets = st.frozensets(st.sampled_from(FIELDS))
targets_strategy = st.lists(
    st.builds(
        Target,
        account=st.sampled_from([CRM, BOOKS, ERP, "acme-x"]),
        base=st.none() | records,
        writable=field_sets,
        removal=st.sampled_from(["delete", "archive", "none"]),
        sent_mutable=field_sets,
        read_only=st.booleans(),
        sent=st.booleans(),
        detached=st.booleans(),
    ),
    max_size=4,
    unique_by=lambda t: t.account,
)
deletes = st.sampled_from(["propagate", "archive", "ignore"])
flows_strategy = st.builds(
    flow_policy,
    resource=st.just("contacts"),
    owner=st.sampled_from([{}, {"email": BOOKS}, {"name": CRM, "phone": BOOKS}]),
    delete=deletes,
) | st.builds(
    flow_policy,
    resource=st.just("invoices"),
    owner=st.sampled_from([{}, {"status": BOOKS}, {"lines": CRM, "status": BOOKS}]),
    delete=deletes,
)


def apply(
    actions: Sequence[Action], canonical: Mapping[str, Any] | None, targets: Sequence[Target]
) -> list[Target]:
    """What the runner records after each write succeeds: the vendor now holds the values."""
    by_account = {t.account: t for t in targets}
    for action in actions:
        target = by_account[action.account]
        written = None if canonical is None else {f: canonical[f] for f in action.fields}
        base = base_after_write(target.base, action, written)
        by_account[action.account] = dataclasses.replace(target, base=base)
    return [by_account[t.account] for t in targets]


@settings(deadline=None, max_examples=400)
@given(
    canonical=st.none() | records,
    targets=targets_strategy,
    flow=flows_strategy,
    held=field_sets,
)
def test_property_planning_again_after_applying_the_plan_writes_nothing(
    canonical: dict[str, Any] | None,
    targets: list[Target],
    flow: FlowPolicy,
    held: frozenset[str],
) -> None:
    first = plan(flow=flow, canonical=canonical, targets=targets, held=held)
    second = plan(
        flow=flow, canonical=canonical, targets=apply(first, canonical, targets), held=held
    )
    assert not [a for a in second if a.writes]
    assert [a for a in second if not a.writes] == [a for a in first if not a.writes]


@settings(deadline=None, max_examples=300)
@given(canonical=records, targets=targets_strategy, flow=flows_strategy, held=field_sets)
def test_property_updates_only_carry_writable_differing_unheld_fields(
    canonical: dict[str, Any], targets: list[Target], flow: FlowPolicy, held: frozenset[str]
) -> None:
    by_account = {t.account: t for t in targets}
    for action in plan(flow=flow, canonical=canonical, targets=targets, held=held):
        target = by_account[action.account]
        assert not target.detached
        if action.op in ("create", "update"):
            assert not target.read_only
            assert action.fields <= target.writable
        if action.op == "update":
            assert action.fields <= pending_fields(canonical, target)
            assert not action.fields & held
            assert all(flow.owner_of(f) != action.account for f in action.fields)
            if flow.resource == "invoices" and target.sent:
                assert action.fields <= target.sent_mutable


# A small end-to-end model: vendors hold records, each pass merges every account and
# pushes the plan; vendors keep what they can write. Disjoint edits must converge, with
# no conflicts and no writes once converged (no ping-pong).

ACCOUNTS = {CRM: frozenset({"name", "email", "phone"}), BOOKS: frozenset({"name", "email"})}
SIM_FLOW = flow_policy("contacts", "manual")


def sync_pass(
    vendors: dict[str, dict[str, Any]],
    bases: dict[str, dict[str, Any] | None],
    canonical: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, int]:
    writes = 0
    for account in sorted(vendors):
        result = merge(
            account=account,
            base=bases[account],
            incoming=vendors[account],
            canonical=canonical,
            flow=SIM_FLOW,
            carried=ACCOUNTS[account],
        )
        assert not result.queued and not result.refused
        canonical = dict(result.merged)
        bases[account] = dict(result.new_base)
        targets = [Target(a, bases[a], ACCOUNTS[a]) for a in sorted(vendors)]
        for action in plan(flow=SIM_FLOW, canonical=canonical, targets=targets):
            assert action.op == "update"
            writes += 1
            for name in action.fields:
                vendors[action.account][name] = canonical[name]
            # The read-back shows everything the vendor holds, including edits not pulled
            # yet; only the written fields become agreed.
            bases[action.account] = base_after_write(
                bases[action.account], action, dict(vendors[action.account])
            )
    return canonical, writes


@settings(deadline=None, max_examples=200)
@given(
    start=st.fixed_dictionaries(
        {"name": st.sampled_from(["Acme", "ACME"]), "email": values, "phone": values}
    ),
    crm_edits=st.dictionaries(st.sampled_from(["phone"]), values),
    books_edits=st.dictionaries(st.sampled_from(["name", "email"]), values),
)
def test_property_disjoint_edits_converge_without_ping_pong(
    start: dict[str, Any], crm_edits: dict[str, Any], books_edits: dict[str, Any]
) -> None:
    vendors = {CRM: dict(start), BOOKS: {k: start[k] for k in ACCOUNTS[BOOKS]}}
    bases: dict[str, dict[str, Any] | None] = {a: dict(v) for a, v in vendors.items()}
    canonical: dict[str, Any] | None = dict(start)
    vendors[CRM].update(crm_edits)
    vendors[BOOKS].update(books_edits)
    canonical, _ = sync_pass(vendors, bases, canonical)
    assert canonical == {**start, **crm_edits, **books_edits}
    for account, fields in ACCOUNTS.items():
        assert {f: vendors[account][f] for f in fields} == {f: canonical[f] for f in fields}
    again, writes = sync_pass(vendors, bases, canonical)
    assert (again, writes) == (canonical, 0)


def test_a_copy_never_agreed_revives_a_deleted_contact_unless_it_is_archived() -> None:
    # A record linked for the first time (an accepted match review) after the deletion.
    fresh = decide_revival(flow=CONTACTS, account=CRM, base=None, incoming=dict(CANON))
    assert fresh.outcome == "revive"
    assert fresh.reason == (
        "acme-crm holds a copy of the deleted contact that was never agreed: a modify "
        "beats a delete, so it is restored"
    )
    archived = decide_revival(flow=CONTACTS, account=CRM, base=None, incoming={"archived": True})
    assert archived.outcome == "stay_deleted"


def test_an_archived_record_of_a_deleted_contact_is_no_revival() -> None:
    # Archiving is how an archiving vendor removes; a record that comes back archived
    # and otherwise unchanged agrees with the deletion (our own lost archive looks so).
    decision = decide_revival(
        flow=CONTACTS,
        account=CRM,
        base={**CANON, "archived": False},
        incoming={**CANON, "archived": True},
    )
    assert decision.outcome == "stay_deleted"
    assert decision.reason == (
        "acme-crm holds the deleted contact archived, which agrees with the deletion; "
        "it stays deleted"
    )
    # Archived with another change the deletion never had: a modify beats a delete.
    edited = decide_revival(
        flow=CONTACTS,
        account=CRM,
        base={**CANON, "archived": False},
        incoming={**CANON, "archived": True, "phone": "+31209999999"},
    )
    assert (edited.outcome, edited.changed) == ("revive", frozenset({"archived", "phone"}))

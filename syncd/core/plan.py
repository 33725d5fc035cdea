"""Canonical change -> per-account actions (DESIGN §3.6), deletion rules, dry-run text.

``plan`` looks at one canonical record and every account of its flow (the account the
change came from included: a refused or losing value must be written back to it) and
says what each account needs:

- no link: ``create`` with every field the account can write;
- a link: ``update`` with only the writable fields whose canonical value differs from
  that account's base, minus fields held by an open conflict and fields the account
  itself owns (an owner is never overwritten); nothing differs -> no action at all, which
  is why a pass after convergence writes nothing;
- an invoice the account has already sent: a change to a field outside
  ``sent_mutable`` is a ``conflict`` action, never an update (the mutable rest still
  updates);
- a read-only account: a ``skip`` saying what was not written;
- a contact whose kind the account cannot change (``Target.kind_fixed``): the linked copy
  keeps the kind it was created with, ``kind`` is never written there, and the record is
  compared and written as a copy of that kind holds it (``as_held``), so a sole trader
  filed as a person there and as an organization elsewhere converges on every other
  field without an endless update of its names;
- a deleted canonical record: ``remove`` or ``skip`` per the flow's ``delete`` policy and
  what the vendor can do (``Target.removal``).

Deletions seen at an account go through ``decide_deletion`` first (a modify beats a
delete), and changes reported for an already deleted record through ``decide_revival``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, get_args

from syncd.core.model import CONTACT_KINDS, KIND_ONLY_FIELDS, ContactKind, contact_as_kind
from syncd.core.policy import MISSING, FlowPolicy, Resource

Op: TypeAlias = Literal["create", "update", "remove", "skip", "conflict"]
OPS: tuple[Op, ...] = get_args(Op)
WRITE_OPS: frozenset[Op] = frozenset({"create", "update", "remove"})
RemovalKind: TypeAlias = Literal["delete", "archive", "none"]
DeletionOutcome: TypeAlias = Literal[
    "delete", "recreate", "detach", "forget", "revive", "stay_deleted"
]

NOUNS: Mapping[Resource, str] = {
    "contacts": "contact",
    "invoices": "invoice",
    "payments": "payment",
}


class CapabilityView(Protocol):
    """The part of ``adapters.base.Capabilities`` the planner reads (core cannot import it)."""

    @property
    def removal(self) -> Mapping[Resource, RemovalKind]:
        """How a removal is expressed at the vendor, per resource."""
        ...

    @property
    def writable_fields(self) -> Mapping[Resource, frozenset[str]]:
        """Canonical fields the vendor can store and write, per resource."""
        ...

    @property
    def sent_invoice_mutable_fields(self) -> frozenset[str]:
        """Invoice fields that may still change once the vendor has sent the invoice."""
        ...

    @property
    def invoice_drafts(self) -> bool:
        """Whether an invoice can be held there as an unnumbered draft."""
        ...

    @property
    def contact_kinds(self) -> bool:
        """Whether the vendor tells persons from organizations."""
        ...


def fixes_kind(capabilities: CapabilityView) -> bool:
    """Whether a vendor files each contact under the kind it was created with, for good.

    That is a vendor that tells persons from organizations but cannot write a contact's
    kind (Simplicate keeps them in two collections). A vendor that cannot tell them apart
    at all (SimplBooks) does not count: the kind it reports says nothing.
    """
    writable = capabilities.writable_fields.get("contacts", frozenset())
    return capabilities.contact_kinds and "kind" not in writable


@dataclass(frozen=True, slots=True)
class Target:
    """One account of the flow, as the planner sees it for one record.

    ``base`` is the link's base (None: the account holds no linked copy). ``sent``: the
    linked invoice is already sent/finalised at that vendor. ``drafts``: the vendor can
    hold a draft invoice (else a draft is not created there until it is finalised).
    ``read_only``: nothing may be written to the account. ``detached``: the record was
    deleted in this account under ``delete = "ignore"`` and is never written there again.
    ``kind_fixed``: the account cannot change a contact's kind (``fixes_kind``), so a linked
    copy keeps the kind it was created with. A paused account is planned for like an
    active one: its outbox rows wait until the pause ends.
    """

    account: str
    base: Mapping[str, Any] | None = None
    writable: frozenset[str] = frozenset()
    removal: RemovalKind = "none"
    sent_mutable: frozenset[str] = frozenset()
    read_only: bool = False
    sent: bool = False
    detached: bool = False
    drafts: bool = True
    kind_fixed: bool = False

    @property
    def linked(self) -> bool:
        """Whether the account holds a linked copy of the record."""
        return self.base is not None

    @classmethod
    def from_capabilities(
        cls,
        account: str,
        capabilities: CapabilityView,
        resource: Resource,
        *,
        base: Mapping[str, Any] | None = None,
        read_only: bool = False,
        sent: bool = False,
        detached: bool = False,
    ) -> Target:
        """A target for ``resource`` built from the vendor's capabilities."""
        return cls(
            account=account,
            base=base,
            writable=frozenset(capabilities.writable_fields.get(resource, frozenset())),
            removal=capabilities.removal.get(resource, "none"),
            sent_mutable=frozenset(capabilities.sent_invoice_mutable_fields),
            read_only=read_only,
            sent=sent,
            detached=detached,
            drafts=capabilities.invoice_drafts,
            kind_fixed=resource == "contacts" and fixes_kind(capabilities),
        )


@dataclass(frozen=True, slots=True)
class Action:
    """What one account needs for one record.

    ``fields`` are the canonical fields to write (create/update) or in conflict
    (conflict); ``removal`` says how a ``remove`` is done at that vendor.
    """

    account: str
    op: Op
    fields: frozenset[str]
    reason: str
    resource: Resource
    removal: Literal["delete", "archive"] | None = None

    @property
    def writes(self) -> bool:
        """Whether the action writes to the vendor (create, update, remove)."""
        return self.op in WRITE_OPS


def _names(fields: Collection[str]) -> str:
    return ", ".join(sorted(fields))


def copy_kind(target: Target) -> ContactKind | None:
    """The kind of ``target``'s linked copy where the account cannot change it, else None."""
    if not target.kind_fixed or target.base is None:
        return None
    held = target.base.get("kind")
    return next((kind for kind in CONTACT_KINDS if kind == held), None)


def kept_kind(canonical: Mapping[str, Any], target: Target) -> ContactKind | None:
    """The kind ``target``'s copy keeps against ``canonical``, or None when it follows it.

    Only a linked copy in an account that cannot change a contact's kind keeps its own,
    and only when that differs from the canonical kind.
    """
    kind = copy_kind(target)
    if kind is None or "kind" not in canonical or canonical["kind"] == kind:
        return None
    return kind


def unheld_fields(target: Target) -> frozenset[str]:
    """Fields ``target``'s copy cannot hold for its kind: ``kind`` itself and the fields
    only the other kind has (``model.KIND_ONLY_FIELDS``), where the kind is fixed there."""
    if not target.kind_fixed:
        return frozenset()
    kind = copy_kind(target)
    others = frozenset().union(*(KIND_ONLY_FIELDS[k] for k in CONTACT_KINDS if k != kind))
    return frozenset({"kind"}) | (others if kind is not None else frozenset())


def as_held(canonical: Mapping[str, Any], target: Target) -> Mapping[str, Any]:
    """``canonical`` as ``target``'s copy should hold it (what to compare and to write).

    A copy that keeps another kind than the canonical record (``kept_kind``) holds the
    record in that kind's shape: ``model.contact_as_kind``. Any other copy holds the
    canonical record itself. The runner builds the value of an update from this too, so
    the vendor is never asked to turn a person into an organization.
    """
    kind = kept_kind(canonical, target)
    if kind is None:
        return canonical
    return contact_as_kind(canonical, kind, target.base)


def pending_fields(
    canonical: Mapping[str, Any], target: Target, *, exclude: Collection[str] = ()
) -> frozenset[str]:
    """Writable fields of ``target`` whose value for it (``as_held``) differs from its base.

    Where the account cannot change a contact's kind, neither ``kind`` nor a field only
    the other kind has is ever pending (``unheld_fields``).
    """
    base = target.base or {}
    wanted = as_held(canonical, target)
    skipped = frozenset(exclude) | unheld_fields(target)
    return frozenset(
        name
        for name in target.writable
        if name in wanted and name not in skipped and wanted[name] != base.get(name, MISSING)
    )


def plan(
    *,
    flow: FlowPolicy,
    canonical: Mapping[str, Any] | None,
    targets: Sequence[Target],
    held: Collection[str] = (),
) -> tuple[Action, ...]:
    """The actions that bring every target in line with ``canonical``.

    ``canonical``: the record's fields, or None when the canonical record is deleted
    (then linked targets get removals per ``flow.delete``). ``targets``: every account of
    the flow, including the one the change came from, with its new base. ``held``:
    fields with an open conflict, never written anywhere until it is decided. Actions
    come in the order of ``targets``; a target may get an ``update`` and a ``conflict``
    (sent invoice). Applying every write action's result to the bases and planning
    again yields no write actions.
    """
    if canonical is None:
        return _plan_removal(flow, targets)
    held_fields = frozenset(held)
    actions: list[Action] = []
    for target in targets:
        if not target.detached:
            actions.extend(_plan_target(flow, canonical, target, held_fields))
    return tuple(actions)


def _plan_target(
    flow: FlowPolicy, canonical: Mapping[str, Any], target: Target, held: frozenset[str]
) -> list[Action]:
    noun = NOUNS[flow.resource]
    account = target.account

    def act(op: Op, fields: frozenset[str], reason: str) -> Action:
        return Action(account, op, fields, reason, flow.resource)

    if not target.linked:
        fields = frozenset(name for name in target.writable if name in canonical)
        if not fields:
            return [act("skip", fields, f"{account} cannot store {flow.resource}")]
        if target.read_only:
            return [act("skip", fields, f"{account} is read-only: the {noun} is not created there")]
        if flow.resource == "invoices" and canonical.get("status") == "draft" and not target.drafts:
            return [
                act(
                    "skip",
                    fields,
                    f"{account} keeps no drafts (every invoice there is numbered and final): "
                    "the draft is created there once it is finalised",
                )
            ]
        return [act("create", fields, f"{account} has no {noun} linked to this one")]
    owned = frozenset(name for name in target.writable if flow.owner_of(name) == account)
    pending = pending_fields(canonical, target, exclude=held | owned)
    if not pending:
        return []
    if target.read_only:
        return [act("skip", pending, f"{account} is read-only: {_names(pending)} not written")]
    actions: list[Action] = []
    if flow.resource == "invoices" and target.sent:
        frozen = pending - target.sent_mutable
        if frozen:
            actions.append(
                act(
                    "conflict",
                    frozen,
                    f"invoice already sent in {account}: {_names(frozen)} cannot change",
                )
            )
        pending = pending & target.sent_mutable
    if pending:
        reason = f"{account} holds an older value of {_names(pending)}"
        kind = kept_kind(canonical, target)
        if kind is not None:
            reason += (
                f"; its copy stays {_a(kind)}: {account} cannot change a contact's kind, "
                "so the kind differs by vendor design"
            )
        actions.append(act("update", pending, reason))
    return actions


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _plan_removal(flow: FlowPolicy, targets: Sequence[Target]) -> tuple[Action, ...]:
    if flow.delete == "ignore":
        return ()
    return tuple(
        _removal(flow, target) for target in targets if target.linked and not target.detached
    )


def _removal(flow: FlowPolicy, target: Target) -> Action:
    noun = NOUNS[flow.resource]
    account = target.account
    reason: str | None = None
    if target.read_only:
        reason = f"{account} is read-only: the {noun} is not removed there"
    elif target.removal == "none":
        reason = f"{account} cannot remove {flow.resource}"
    elif flow.delete == "archive" and target.removal != "archive":
        reason = (
            f"{account} cannot archive {flow.resource}, only delete them, and the flow's "
            "delete policy is archive"
        )
    if reason is not None:
        return Action(account, "skip", frozenset(), reason, flow.resource)
    how: Literal["delete", "archive"] = "archive" if target.removal == "archive" else "delete"
    return Action(
        account,
        "remove",
        frozenset(),
        f"the {noun} was deleted elsewhere (delete = {flow.delete})",
        flow.resource,
        removal=how,
    )


def base_after_write(
    base: Mapping[str, Any] | None, action: Action, written: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The link's base once ``action`` succeeded at the vendor (DESIGN §3.8).

    ``written``: the fields the vendor holds afterwards (``to_fields`` of its answer or
    read-back). A ``create`` agrees on all of them. An ``update`` agrees only on the
    fields it wrote: every other field keeps its old base, so an edit someone made at the
    vendor meanwhile (and that the read-back happens to show) is still seen as a change
    on the next pull instead of being swallowed as our own echo. A ``remove`` ends the
    link (None). Other ops write nothing and leave the base as it was.
    """
    if action.op == "remove":
        return None
    if action.op not in ("create", "update"):
        return None if base is None else dict(base)
    if written is None:
        raise ValueError(f"a successful {action.op} needs the fields the vendor now holds")
    if action.op == "create":
        return dict(written)
    agreed = {name: written[name] for name in action.fields if name in written}
    return {**(base or {}), **agreed}


@dataclass(frozen=True, slots=True)
class DeletionDecision:
    """What to do about a record that vanished from an account, or changed after deletion.

    ``delete``: mark the canonical record deleted, drop the account's link, and plan the
    removal elsewhere (``plan(canonical=None, ...)``). ``recreate``: a modify beats a
    delete; keep the canonical record, drop the link, plan normally (the account gets a
    ``create``). ``detach``: keep the canonical record and stop syncing it to that account
    (``Target.detached``). ``forget``: the canonical record is already deleted; drop the
    link. ``revive``: undelete the canonical record, merge the change, plan normally.
    ``stay_deleted``: nothing changed; the record stays deleted. ``changed`` names the
    fields that made a modify beat a delete.
    """

    outcome: DeletionOutcome
    reason: str
    changed: frozenset[str] = frozenset()


def decide_deletion(
    *,
    flow: FlowPolicy,
    target: Target,
    canonical: Mapping[str, Any] | None,
    gone: Collection[str] = (),
) -> DeletionDecision:
    """Decide about a record that vanished from ``target.account`` (a deletion there).

    ``target`` is that account with its link's base and writable fields; ``canonical``
    is the current canonical record (None when already deleted). The record counts as
    modified since that account's base when a field the account can hold differs from
    its base, i.e. a change it never received: then a modify beats a delete and the
    record is kept and created again there, unless the flow ignores deletions (then the
    account is detached). Only call this for records that are gone from the vendor; an
    archived record that the vendor still lists is a field change, not a deletion.

    ``gone`` names fields whose current value came from an account that no longer holds
    the record either (it deleted it too): such a change has no live source left, so it
    does not beat this deletion.
    """
    noun = NOUNS[flow.resource]
    account = target.account
    if canonical is None:
        return DeletionDecision(
            "forget", f"the {noun} is already deleted; the link to {account} is dropped"
        )
    if flow.delete == "ignore":
        return DeletionDecision(
            "detach",
            f"{account} deleted the {noun}; delete = ignore keeps it and stops syncing it "
            f"to {account}",
        )
    changed = pending_fields(canonical, target, exclude=gone)
    if changed:
        return DeletionDecision(
            "recreate",
            f"{account} deleted the {noun}, but {_names(changed)} changed since {account} "
            f"last agreed: a modify beats a delete, so it is kept and created again in "
            f"{account}",
            changed,
        )
    verb = "archived" if flow.delete == "archive" else "removed"
    return DeletionDecision(
        "delete",
        f"{account} deleted the {noun}; delete = {flow.delete}: it is {verb} elsewhere",
    )


def decide_revival(
    *,
    flow: FlowPolicy,
    account: str,
    base: Mapping[str, Any] | None,
    incoming: Mapping[str, Any],
    carried: Collection[str] | None = None,
) -> DeletionDecision:
    """Decide about ``incoming`` from ``account`` for a record whose canonical is deleted.

    When the account changed a field it holds (``carried``; None: all) since its
    ``base``, a modify beats the delete: ``revive``. Otherwise ``stay_deleted``.
    """
    noun = NOUNS[flow.resource]
    agreed = base or {}
    changed = frozenset(
        name
        for name, value in incoming.items()
        if (carried is None or name in carried) and value != agreed.get(name, MISSING)
    )
    if incoming.get("archived") is True and not changed - {"archived"}:
        # Archived there, and nothing else changed: that agrees with the deletion,
        # whoever archived it (our own removal, whose answer may have been lost, comes
        # back exactly like this).
        return DeletionDecision(
            "stay_deleted",
            f"{account} holds the deleted {noun} archived, which agrees with the deletion; "
            "it stays deleted",
        )
    if base is None and changed - {"archived"}:
        # A live copy linked for the first time (say a match a person accepted) was never
        # weighed by the deletion: what it holds is a modify the deletion never saw.
        return DeletionDecision(
            "revive",
            f"{account} holds a copy of the deleted {noun} that was never agreed: a modify "
            "beats a delete, so it is restored",
            changed,
        )
    if base is not None and changed:
        return DeletionDecision(
            "revive",
            f"{account} changed {_names(changed)} of the deleted {noun}: a modify beats a "
            "delete, so it is restored",
            changed,
        )
    return DeletionDecision(
        "stay_deleted", f"{account} reported no change to the deleted {noun}; it stays deleted"
    )


def describe(action: Action) -> str:
    """One line for ``--dry-run`` output, e.g. ``would update 2 fields (email, phone) in acme-crm``."""
    noun = NOUNS[action.resource]
    where = action.account
    if action.op == "create":
        return f"would create {noun} in {where}"
    if action.op == "update":
        count = len(action.fields)
        plural = "field" if count == 1 else "fields"
        return f"would update {count} {plural} ({_names(action.fields)}) in {where}"
    if action.op == "remove":
        verb = "archive" if action.removal == "archive" else "delete"
        return f"would {verb} {noun} in {where}"
    if action.op == "conflict":
        return f"would queue a conflict for {noun} in {where}: {action.reason}"
    return f"would skip {noun} in {where}: {action.reason}"

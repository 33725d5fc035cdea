"""Three-way field merge of one account's record into the canonical record (DESIGN §3.5).

Every link keeps a ``base``: the fields as last agreed with that account. A field the
account changed (``incoming != base``) is merged by these rules, in order:

1. no canonical record yet: the account's value is taken (a new record);
2. the field has an open (queued) conflict: the new value joins that conflict as the
   account's candidate and the canonical value stays;
3. the field has an owner (``FlowPolicy.owner_of``) that holds the record: the owner's
   change is taken; any other account's change is refused (not a conflict) and the
   owner's value is written back to it by the planner. An owner that does not hold the
   record (yet) cannot change it, so until it does the field merges by the rules below;
4. canonical already equals incoming: nothing to do;
5. canonical still equals base (or does not hold the field): the incoming value is taken;
6. base unknown (the record was never agreed with this account, e.g. freshly matched):
   an empty canonical value (None, "", [], {}) is filled from the account, an empty
   incoming value leaves the canonical one in place (the planner fills the account);
7. otherwise both sides changed the field: a conflict, settled by the flow's policy
   (``policy.resolve``) or queued.

Contact kinds (``kind_fixed``, ``kind_blind``). One real-world contact may be filed as a
person in one vendor and as an organization in another (a sole trader). An account that
cannot change a contact's kind keeps each copy's kind for good, so:

- a copy there of another kind than the canonical record reports its own filing in
  ``kind`` and ``name`` (a person's name against a business's): neither changes the
  canonical record nor raises a conflict; its other fields merge as usual;
- where every other holder of the record keeps its own kind (or cannot tell kinds at
  all), a differing ``kind`` from an account that can change it is taken without a
  conflict: contesting it would change nothing in those copies;
- when a merge takes the account's ``kind``, a conflicting ``name`` from that account is
  taken with it (a name belongs to its kind: a person's name is no business name).

When ``base`` is None every field counts as changed. Values are compared with ``==``
exactly as given: the merge does not normalise, so callers pass ``to_fields`` output of
normalised records (where an empty optional text is already None, never ""). A field
absent from ``incoming`` says nothing and changes nothing.

The new base is what the account holds now: ``base`` overlaid with every incoming field.
This is right for every outcome: a taken value is agreed; a refused or losing value
differs from canonical, so the planner writes canonical back; a queued value is not
raised again on the next pass (incoming equals the new base), and the planner holds the
field (``plan(held=...)``) until the conflict is decided, so nothing overwrites either
candidate meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from syncd.core.policy import (
    MISSING,
    FieldConflict,
    FlowPolicy,
    Origin,
    Resolution,
    require_utc,
    resolve,
)


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    """One change to a canonical field, for the record and its audit row."""

    field: str
    old: Any  # None when the canonical record did not hold the field
    new: Any
    origin: Origin  # the account and vendor time the new value came from
    reason: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A change of an owned field by an account that does not own it; not applied."""

    field: str
    account: str
    value: Any
    owner: str
    reason: str


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Everything one merge decided; the runner applies it without further decisions.

    ``merged`` is the canonical record after ``updates``; ``new_base`` is the link's new
    base for ``account``; ``origins`` is the per-field provenance after ``updates`` (feed
    it back as ``merge(origins=...)`` next time). ``resolved`` holds conflicts a policy
    settled (an ``incoming`` win also appears in ``updates``); ``queued`` holds conflicts
    left for a person, whose fields must be passed as ``plan(held=...)`` until decided.
    """

    account: str
    updates: tuple[FieldUpdate, ...] = ()
    resolved: tuple[Resolution, ...] = ()
    queued: tuple[Resolution, ...] = ()
    refused: tuple[Refusal, ...] = ()
    merged: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    new_base: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    origins: Mapping[str, Origin] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    @property
    def changed(self) -> bool:
        """Whether any canonical field changed."""
        return bool(self.updates)

    @property
    def queued_fields(self) -> frozenset[str]:
        """The fields with a conflict queued by this merge."""
        return frozenset(r.conflict.field for r in self.queued)


def is_empty(value: Any) -> bool:
    """Whether ``value`` means "nothing here": MISSING, None, "", or an empty list/dict."""
    if value is MISSING or value is None:
        return True
    return isinstance(value, str | list | tuple | dict) and len(value) == 0


def _own_filing(
    account: str,
    incoming: Mapping[str, Any],
    canonical: Mapping[str, Any] | None,
    kind_fixed: Collection[str],
) -> frozenset[str]:
    """The fields ``incoming`` reports as the account's own filing of another kind."""
    if account not in kind_fixed or canonical is None:
        return frozenset()
    kind = incoming.get("kind")
    if kind is None or canonical.get("kind") in (None, kind):
        return frozenset()
    return frozenset({"kind", "name"})


def _kind_settled(
    account: str,
    holders: Collection[str] | None,
    kind_fixed: Collection[str],
    kind_blind: Collection[str],
) -> bool:
    """Whether ``account`` may set the kind uncontested: no other holder can follow it."""
    keeping = frozenset(kind_fixed) | frozenset(kind_blind)
    if holders is None or account in keeping:
        return False
    others = frozenset(holders) - {account}
    return bool(others) and others <= keeping


def _names(accounts: Collection[str]) -> str:
    return ", ".join(sorted(accounts))


def _a(kind: object) -> str:
    text = str(kind)
    return f"an {text}" if text[:1] in ("a", "e", "i", "o", "u") else f"a {text}"


def merge(
    *,
    account: str,
    base: Mapping[str, Any] | None,
    incoming: Mapping[str, Any],
    canonical: Mapping[str, Any] | None,
    flow: FlowPolicy,
    incoming_at: dt.datetime | None = None,
    origins: Mapping[str, Origin] | None = None,
    carried: Collection[str] | None = None,
    open_conflicts: Collection[str] = (),
    holders: Collection[str] | None = None,
    kind_fixed: Collection[str] = (),
    kind_blind: Collection[str] = (),
) -> MergeResult:
    """Merge ``incoming`` from ``account`` into ``canonical`` against the link's ``base``.

    ``base``: the fields last agreed with ``account`` (None: never agreed). ``incoming``:
    the fields the account holds now. ``canonical``: the current canonical fields (None:
    no canonical record yet; every incoming field is taken). ``incoming_at``: the
    vendor's modification time of the incoming record (aware; None when the vendor has
    none). ``origins``: per canonical field, the account and vendor time its value came
    from, where known. ``carried``: the fields this account really holds (None: every
    incoming field); other incoming fields never change the canonical record or raise a
    conflict, though they still go into the new base. ``open_conflicts``: fields of this
    record with a conflict already queued. ``holders``: the accounts that hold a linked
    copy of the record (None: every owner counts as holding it). ``kind_fixed``: accounts
    that cannot change a contact's kind (``plan.fixes_kind``); ``kind_blind``: accounts
    that cannot tell persons from organizations (see the module docstring).

    Pure and deterministic: fields are visited in sorted order and the result depends
    only on the arguments. See the module docstring for the rules.
    """
    require_utc("incoming_at", incoming_at)
    known = dict(origins or {})
    merged: dict[str, Any] = dict(canonical or {})
    new_base: dict[str, Any] = {**(base or {}), **incoming}
    held = frozenset(open_conflicts)
    updates: list[FieldUpdate] = []
    resolved: list[Resolution] = []
    queued: list[Resolution] = []
    refused: list[Refusal] = []
    arrived = Origin(account, incoming_at)
    own_filing = _own_filing(account, incoming, canonical, kind_fixed)
    kind_settled = _kind_settled(account, holders, kind_fixed, kind_blind)

    def take(name: str, new: Any, reason: str) -> None:
        updates.append(FieldUpdate(name, merged.get(name), new, arrived, reason))
        merged[name] = new
        known[name] = arrived

    for name in sorted(incoming):
        if carried is not None and name not in carried:
            continue
        if name in own_filing:
            continue  # the copy's own filing as another kind: not a change to merge
        new = incoming[name]
        agreed = base.get(name, MISSING) if base is not None else MISSING
        if agreed is not MISSING and new == agreed:
            continue  # the account did not change it (an echo of what we agreed)
        if canonical is None:
            take(name, new, f"new record from {account}")
            continue
        current = canonical.get(name, MISSING)
        conflict = FieldConflict(
            field=name,
            account=account,
            incoming=new,
            incoming_at=incoming_at,
            current=None if current is MISSING else current,
            current_origin=known.get(name, Origin()),
            base=agreed,
        )
        if name in held:
            queued.append(
                Resolution(
                    conflict,
                    "queued",
                    None,
                    conflict.current,
                    "open conflict",
                    f"{name} already has an open conflict: {account}'s new value joins it "
                    "and the current value stays",
                )
            )
            continue
        owner = flow.owner_of(name)
        if owner is not None and (holders is None or owner in holders):
            if new == current:
                continue
            if owner == account:
                take(name, new, f"owner: {account} owns {name}")
            else:
                refused.append(
                    Refusal(
                        name,
                        account,
                        new,
                        owner,
                        f"owner: {owner} owns {name}; the change from {account} is refused "
                        f"and {owner}'s value is written back",
                    )
                )
            continue
        if new == current:
            continue  # both sides made the same change
        if current is MISSING or (agreed is not MISSING and current == agreed):
            take(name, new, f"{account} changed {name}")
            continue
        if agreed is MISSING:
            if is_empty(current):
                take(name, new, f"{account} filled the empty {name}")
                continue
            if is_empty(new):
                continue  # nothing to contest; the planner writes the current value back
        if name == "kind" and kind_settled:
            others = _names(frozenset(holders or ()) - {account})
            take(
                name,
                new,
                f"{account} files it as {_a(new)}; {others} cannot change a contact's kind, "
                "so their copies keep their own: the kind differs by vendor design",
            )
            continue
        if name == "name" and any(u.field == "kind" for u in updates):
            take(name, new, f"the name of the {incoming.get('kind')} {account} filed it as")
            continue
        resolution = resolve(conflict, flow.conflict)
        if resolution.outcome == "queued":
            queued.append(resolution)
            continue
        resolved.append(resolution)
        if resolution.outcome == "incoming":
            take(name, new, resolution.reason)

    return MergeResult(
        account=account,
        updates=tuple(updates),
        resolved=tuple(resolved),
        queued=tuple(queued),
        refused=tuple(refused),
        merged=MappingProxyType(merged),
        new_base=MappingProxyType(new_base),
        origins=MappingProxyType(known),
    )

"""Conflict policies: who wins when two accounts changed the same field.

A flow names one conflict policy (``conflict = "..."`` in its config) and may give
fields an owner account (``owner = {lines = "acme-crm"}``). Both are parsed once into a
:class:`FlowPolicy`, which the merge, the planner and the deletion rules read.

``newest``
    The change with the later vendor timestamp wins. When the two times are equal, or
    either is unknown (snapshot vendors such as Perfex and SimplBooks report none), the
    account whose name sorts first wins, so the outcome does not depend on which account
    happened to be pulled first; when the current value's account is unknown too, the
    current value stays. The timestamp is the vendor's modification time of the whole
    record, not of the field: a later edit of another field makes the record newer.
``prefer:<account>``
    That account's value wins. When neither side is that account (a flow of three or
    more), ``newest`` decides.
``manual``
    Nothing is decided: the conflict is queued and the current value stays until someone
    picks a value (``syncd conflicts resolve``).
owner (per field)
    The owner's value of an owned field always wins, and another account's change of it
    is refused outright (not a conflict): the planner writes the owner's value back. The
    merge applies ownership before the conflict policy. For invoices the totals
    (``subtotal``, ``tax_total``, ``total``) follow the owner of ``lines`` and
    ``amount_paid`` follows the owner of ``payments``, because they are derived from
    them; for a payment record every field follows the owner of ``payments``.

When the current value came from the very account that now reports a different one,
there is no second party: that account's newer value wins under every policy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, get_args

from syncd.core.model import CONTACT_FIELDS, INVOICE_OWNER_FIELDS

Resource: TypeAlias = Literal["contacts", "invoices", "payments"]
RESOURCES: tuple[Resource, ...] = get_args(Resource)
DeletePolicy: TypeAlias = Literal["propagate", "archive", "ignore"]
DELETE_POLICIES: tuple[DeletePolicy, ...] = get_args(DeletePolicy)
Outcome: TypeAlias = Literal["incoming", "current", "queued"]


class _Missing(enum.Enum):
    MISSING = "missing"

    def __repr__(self) -> str:
        return "MISSING"


# A field that a mapping does not hold at all (as opposed to holding None).
MISSING: Final = _Missing.MISSING

# Invoice fields whose owner is the owner of another key (they are derived from it).
_DERIVED_OWNER_KEY: Final[Mapping[str, str]] = MappingProxyType(
    {"subtotal": "lines", "tax_total": "lines", "total": "lines", "amount_paid": "payments"}
)


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class Newest:
    """The later vendor timestamp wins."""

    def __str__(self) -> str:
        return "newest"


@dataclass(frozen=True, slots=True)
class Prefer:
    """The named account's value wins."""

    account: str

    def __str__(self) -> str:
        return f"prefer:{self.account}"


@dataclass(frozen=True, slots=True)
class Manual:
    """Conflicts are queued for a person to decide."""

    def __str__(self) -> str:
        return "manual"


ConflictPolicy: TypeAlias = Newest | Prefer | Manual


def parse_policy(text: str) -> ConflictPolicy:
    """Parse a flow's ``conflict`` text: ``newest``, ``manual`` or ``prefer:<account>``.

    Surrounding whitespace is ignored; anything else raises ``ValueError`` naming the
    accepted forms. ``str(parse_policy(t))`` gives back the canonical spelling.
    """
    value = text.strip()
    if value == "newest":
        return Newest()
    if value == "manual":
        return Manual()
    if value.startswith("prefer:"):
        account = value.removeprefix("prefer:").strip()
        if account:
            return Prefer(account)
        raise ValueError("conflict policy 'prefer:' needs an account name: prefer:<account>")
    raise ValueError(
        f"unknown conflict policy {value!r}; expected newest, manual or prefer:<account>"
    )


def owner_keys(resource: Resource) -> tuple[str, ...]:
    """The keys a flow's ``owner`` mapping may use for ``resource``."""
    return CONTACT_FIELDS if resource == "contacts" else INVOICE_OWNER_FIELDS


@dataclass(frozen=True, slots=True)
class FlowPolicy:
    """How one flow settles conflicts, ownership and deletions (build with ``flow_policy``)."""

    resource: Resource
    conflict: ConflictPolicy = dataclasses.field(default_factory=Newest)
    owners: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    delete: DeletePolicy = "archive"
    max_delete_percent: int = 20

    def owner_of(self, name: str) -> str | None:
        """The account that owns field ``name`` of this flow's resource, or None."""
        if self.resource == "payments":
            return self.owners.get("payments")
        if self.resource == "invoices":
            return self.owners.get(_DERIVED_OWNER_KEY.get(name, name))
        return self.owners.get(name)


def flow_policy(
    resource: Resource,
    conflict: str = "newest",
    owner: Mapping[str, str] | None = None,
    delete: str = "archive",
    max_delete_percent: int = 20,
    *,
    accounts: Sequence[str] | None = None,
) -> FlowPolicy:
    """Parse one flow's settings into a :class:`FlowPolicy`, once.

    ``owner`` keys must be fields of the resource (for invoices and payments: the
    invoice owner keys ``lines``, ``status``, ``payments``...). When ``accounts`` is
    given, ``prefer:`` and every owner must name one of them. Every problem found is
    reported in one ``ValueError``.
    """
    problems: list[str] = []
    if resource not in RESOURCES:
        problems.append(f"unknown resource {resource!r}")
    policy: ConflictPolicy = Newest()
    try:
        policy = parse_policy(conflict)
    except ValueError as exc:
        problems.append(str(exc))
    if isinstance(policy, Prefer) and accounts is not None and policy.account not in accounts:
        problems.append(f"prefer: names {policy.account!r}, which is not an account of the flow")
    owners = dict(owner or {})
    allowed = owner_keys(resource) if resource in RESOURCES else ()
    for key, account in sorted(owners.items()):
        if key not in allowed:
            problems.append(f"owner: {key!r} is not a {resource} field")
        if accounts is not None and account not in accounts:
            problems.append(f"owner: {key} names {account!r}, which is not an account of the flow")
    if delete not in DELETE_POLICIES:
        problems.append(f"unknown delete policy {delete!r}; expected propagate, archive or ignore")
    if isinstance(max_delete_percent, bool) or not 0 <= max_delete_percent <= 100:
        problems.append("max_delete_percent must be an integer from 0 to 100")
    if problems:
        raise ValueError("; ".join(problems))
    return FlowPolicy(
        resource=resource,
        conflict=policy,
        owners=MappingProxyType(owners),
        delete=delete,  # type: ignore[arg-type]  # checked against DELETE_POLICIES above
        max_delete_percent=max_delete_percent,
    )


# --------------------------------------------------------------------------- conflicts


def require_utc(name: str, moment: dt.datetime | None) -> None:
    """Raise ``ValueError`` when ``moment`` is a naive datetime (None is fine)."""
    if moment is not None and moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a canonical field's value came from: the account and its vendor timestamp."""

    account: str | None = None
    at: dt.datetime | None = None

    def __post_init__(self) -> None:
        require_utc("Origin.at", self.at)


@dataclass(frozen=True, slots=True)
class FieldConflict:
    """Account ``account`` changed ``field`` to ``incoming`` while the canonical moved too."""

    field: str
    account: str
    incoming: Any
    incoming_at: dt.datetime | None
    current: Any
    current_origin: Origin = dataclasses.field(default_factory=Origin)
    base: Any = MISSING  # the value both sides started from; MISSING when never agreed

    def __post_init__(self) -> None:
        require_utc("FieldConflict.incoming_at", self.incoming_at)

    def candidates(self) -> dict[str, Any]:
        """The value each side holds, by account (``"canonical"`` when its account is unknown)."""
        return {
            self.current_origin.account or "canonical": self.current,
            self.account: self.incoming,
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a policy made of one conflict.

    ``outcome`` is ``incoming`` (the account's value replaces the canonical one),
    ``current`` (the canonical value stays and is written back to the account) or
    ``queued`` (manual: the canonical value stays, nothing is written until decided).
    ``winner`` names the winning account when known; ``value`` is the value that now
    stands (the current one while queued).
    """

    conflict: FieldConflict
    outcome: Outcome
    winner: str | None
    value: Any
    policy: str
    reason: str


def _clock(moment: dt.datetime, other: dt.datetime | None) -> str:
    utc = moment.astimezone(dt.UTC)
    same_day = other is not None and other.astimezone(dt.UTC).date() == utc.date()
    return utc.strftime("%H:%M:%S UTC" if same_day else "%Y-%m-%d %H:%M:%S UTC")


def _incoming(conflict: FieldConflict, policy: str, reason: str) -> Resolution:
    return Resolution(conflict, "incoming", conflict.account, conflict.incoming, policy, reason)


def _current(conflict: FieldConflict, policy: str, reason: str) -> Resolution:
    return Resolution(
        conflict, "current", conflict.current_origin.account, conflict.current, policy, reason
    )


def _newest(conflict: FieldConflict, label: str, prefix: str = "") -> Resolution:
    name, ours, theirs = conflict.field, conflict.account, conflict.current_origin.account
    ours_at, theirs_at = conflict.incoming_at, conflict.current_origin.at
    other = theirs or "the current value"
    if ours_at is not None and theirs_at is not None and ours_at != theirs_at:
        if ours_at > theirs_at:
            return _incoming(
                conflict,
                label,
                f"{prefix}newest: {ours} changed {name} at {_clock(ours_at, theirs_at)}, "
                f"after {other} at {_clock(theirs_at, ours_at)}",
            )
        return _current(
            conflict,
            label,
            f"{prefix}newest: {other} changed {name} at {_clock(theirs_at, ours_at)}, "
            f"after {ours} at {_clock(ours_at, theirs_at)}",
        )
    if ours_at is None and theirs_at is not None and conflict.base is MISSING:
        # A copy never agreed before (a first match) from a vendor without change times
        # is no evidence of a newer value; the current one has a known change time.
        return _current(
            conflict,
            label,
            f"{prefix}newest: {ours}'s copy was never agreed and has no change time; "
            f"{other}'s value of {_clock(theirs_at, None)} stays",
        )
    if (
        ours_at is not None
        and theirs_at is None
        and theirs is not None
        and conflict.base is MISSING
    ):
        # The mirror image (so the order in which accounts are first read does not
        # matter): the current value came from a vendor without change times, and a copy
        # read for the first time carries a known one.
        return _incoming(
            conflict,
            label,
            f"{prefix}newest: {theirs}'s value has no change time; {ours} changed "
            f"{name} at {_clock(ours_at, None)}, and that value wins",
        )
    if ours_at is not None and ours_at == theirs_at:
        why = f"both changed {name} at {_clock(ours_at, None)}"
    else:
        unknown = [acct for acct, at in ((ours, ours_at), (other, theirs_at)) if at is None]
        why = f"no change time for {' and '.join(unknown)}"
    if theirs is None:
        return _current(
            conflict,
            label,
            f"{prefix}newest: {why} and the current value's account is unknown; it stays",
        )
    if ours < theirs:
        return _incoming(
            conflict, label, f"{prefix}newest: {why}; {ours} wins (account names in order)"
        )
    return _current(
        conflict, label, f"{prefix}newest: {why}; {theirs} wins (account names in order)"
    )


def resolve(conflict: FieldConflict, policy: ConflictPolicy) -> Resolution:
    """Settle one conflict under ``policy`` (ownership is the merge's business, not this).

    Deterministic: the same conflict and policy always give the same resolution. When
    both accounts are known, ``newest`` picks the same account whichever of the two is
    the incoming side, so the order in which accounts are pulled does not matter.
    """
    label = str(policy)
    if conflict.current_origin.account == conflict.account:
        return _incoming(
            conflict,
            label,
            f"{conflict.account} changed its own value of {conflict.field} again",
        )
    if isinstance(policy, Manual):
        other = conflict.current_origin.account or "the canonical record"
        return Resolution(
            conflict,
            "queued",
            None,
            conflict.current,
            label,
            f"manual: {conflict.account} and {other} both changed {conflict.field}; "
            "queued for a decision, the current value stays",
        )
    if isinstance(policy, Prefer):
        if conflict.account == policy.account:
            return _incoming(
                conflict, label, f"{label}: {conflict.account}'s {conflict.field} wins"
            )
        if conflict.current_origin.account == policy.account:
            return _current(
                conflict,
                label,
                f"{label}: {policy.account}'s {conflict.field} wins over {conflict.account}'s",
            )
        return _newest(conflict, label, f"{label}: neither side is {policy.account}, so by ")
    return _newest(conflict, label)


# --------------------------------------------------------------------------- invoice roles

InvoiceRole: TypeAlias = Literal["crm", "books"]

# Which invoice facts each side is the source of, when the flow's config says nothing:
# the CRM writes the invoice (its lines, contact, dates), bookkeeping decides its number
# (assigned on sending), its status and the payments registered against it.
_CRM_OWNS: Final = ("lines", "contact", "issue_date", "currency")
_BOOKS_OWNS: Final = ("status", "payments", "number")


def default_invoice_owners(
    roles: Mapping[str, InvoiceRole], configured: Mapping[str, str]
) -> dict[str, str]:
    """The invoice flow's owners: ``configured`` first, then the default split by role.

    ``roles`` maps each account of the flow to ``crm`` or ``books``. A default applies
    only when exactly one account has the role it needs (two CRMs writing lines into
    one ledger have no natural owner: the config must say). Keys already configured are
    never changed.
    """
    owners = dict(configured)
    crm = [name for name, role in roles.items() if role == "crm"]
    books = [name for name, role in roles.items() if role == "books"]
    if len(crm) == 1:
        for key in _CRM_OWNS:
            owners.setdefault(key, crm[0])
    if len(books) == 1:
        for key in _BOOKS_OWNS:
            owners.setdefault(key, books[0])
    return owners


def invoice_direction_problems(
    owners: Mapping[str, str], takes_lines: Mapping[str, tuple[str, bool]]
) -> list[tuple[str, str]]:
    """Accounts an invoice flow would create invoices in although their vendor cannot.

    ``owners`` are the flow's owners after defaults; ``takes_lines`` maps each account
    of the flow to its vendor and whether that vendor accepts invoice lines through its
    API. Invoices are created from the owner of their lines into every other account (or
    every way when nobody owns them), so each of those must take lines. Returns
    ``(account, message)`` pairs, in the order of ``takes_lines``.
    """
    origin = origin_owner("invoices", owners)
    problems: list[tuple[str, str]] = []
    for account, (vendor, lines) in takes_lines.items():
        if account == origin or lines:
            continue
        source = f"from {origin}" if origin else "from the other accounts (no account owns lines)"
        problems.append(
            (
                account,
                f"invoices would be created in {account} {source}, but {vendor} takes no "
                f'invoice lines through its API: set owner.lines = "{account}" or leave '
                f"{account} out of this flow",
            )
        )
    return problems


def origin_owner(resource: Resource, owners: Mapping[str, str]) -> str | None:
    """The account where records of ``resource`` originate and whence they are created
    elsewhere: invoices from the owner of their lines, payments from the owner of the
    payments. None when the flow has no such owner (records are created every way)."""
    if resource == "invoices":
        return owners.get("lines")
    if resource == "payments":
        return owners.get("payments")
    return None

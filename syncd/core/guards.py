"""Guards that run before anything is pushed (DESIGN §3.6): refuse passes that look wrong.

Each check returns a :class:`GuardVerdict` instead of raising: the runner turns a
refusal into ``errors.SafetyStop`` (core does not import ``syncd.errors``) and pushes
nothing. A refusal says what was counted and, where one exists, which config key would
let the pass through.

- ``check_mass_delete``: more than ``max_delete_percent`` of one side would be removed;
- ``check_empty_side``: a side that held records suddenly lists none (an outage or a
  wrong account looks exactly like "everything was deleted");
- ``check_read_only``: a write action aimed at a read-only account;
- ``check_plan``: all of the above over one pass's actions;
- ``PaginationLoopDetector``: a listing that repeats itself or runs past its declared
  size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

from syncd.core.model import Invoice, compute_totals
from syncd.core.plan import Action

GuardName: TypeAlias = Literal["mass_delete", "empty_side", "read_only", "pagination_loop"]

MAX_DELETE_KEY: Final = "max_delete_percent"


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The outcome of a guard: ``ok``, or a refusal with its reason and the numbers behind it.

    ``counts`` carries what was counted (e.g. ``deletions``, ``side_count``,
    ``limit_percent``); ``config_key`` names the setting that would allow the pass, when
    there is one; ``account`` names the side concerned, when known. A verdict is truthy
    exactly when it is ``ok``.
    """

    ok: bool
    guard: GuardName | None = None
    reason: str = ""
    account: str | None = None
    counts: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    config_key: str | None = None

    def __bool__(self) -> bool:
        return self.ok


PASS: Final = GuardVerdict(ok=True)


def _refuse(
    guard: GuardName,
    reason: str,
    *,
    account: str | None,
    counts: Mapping[str, int],
    config_key: str | None = None,
) -> GuardVerdict:
    return GuardVerdict(
        ok=False,
        guard=guard,
        reason=reason,
        account=account,
        counts=MappingProxyType(dict(counts)),
        config_key=config_key,
    )


def _side(account: str | None, resource: str | None) -> str:
    what = resource or "records"
    return f"{what} in {account}" if account else what


def check_mass_delete(
    side_count: int,
    deletions: int,
    max_delete_percent: int,
    *,
    account: str | None = None,
    resource: str | None = None,
) -> GuardVerdict:
    """Refuse when ``deletions`` is more than ``max_delete_percent`` % of ``side_count``.

    ``side_count`` is how many records the side holds before the pass. Exactly the limit
    passes; above it is refused (so ``0`` refuses any deletion and ``100`` refuses only a
    count larger than the side, which can only be an error). Integer arithmetic: no
    rounding at the boundary. No deletions always pass.
    """
    if side_count < 0 or deletions < 0:
        raise ValueError("side_count and deletions cannot be negative")
    if not 0 <= max_delete_percent <= 100:
        raise ValueError("max_delete_percent must be from 0 to 100")
    if deletions == 0:
        return PASS
    if deletions <= side_count and deletions * 100 <= max_delete_percent * side_count:
        return PASS
    counts = {
        "deletions": deletions,
        "side_count": side_count,
        "limit_percent": max_delete_percent,
    }
    if deletions > side_count:
        reason = (
            f"the pass would delete {deletions} {_side(account, resource)}, "
            f"which holds only {side_count}; refusing"
        )
    else:
        reason = (
            f"the pass would delete {deletions} of {side_count} {_side(account, resource)} "
            f"({_percent(deletions, side_count)}), more than {MAX_DELETE_KEY} = "
            f"{max_delete_percent}; nothing was pushed. If these deletions are intended, "
            f"raise {MAX_DELETE_KEY} in the flow for one pass"
        )
    return _refuse("mass_delete", reason, account=account, counts=counts, config_key=MAX_DELETE_KEY)


def _percent(part: int, whole: int) -> str:
    tenths = (part * 1000 + whole // 2) // whole  # rounded half up, integers only
    return f"{tenths // 10}.{tenths % 10} %"


def check_empty_side(
    previous_count: int,
    listed_count: int,
    *,
    account: str | None = None,
    resource: str | None = None,
) -> GuardVerdict:
    """Refuse when a side that held ``previous_count`` > 0 records now lists none.

    A vendor answering with an empty list (an outage, a permissions change, the wrong
    administration) must not turn into deleting everything everywhere.
    """
    if previous_count < 0 or listed_count < 0:
        raise ValueError("counts cannot be negative")
    if previous_count == 0 or listed_count > 0:
        return PASS
    return _refuse(
        "empty_side",
        f"{account or 'the account'} listed no {resource or 'records'}, but held "
        f"{previous_count} last time; treating it as an error, not as {previous_count} "
        "deletions. Nothing was pushed; if the records really are gone, delete them in the "
        "other accounts by hand",
        account=account,
        counts={"previous_count": previous_count, "listed_count": listed_count},
    )


def check_read_only(actions: Iterable[Action], read_only: Collection[str]) -> GuardVerdict:
    """Refuse when any write action (create, update, remove) targets a read-only account."""
    blocked = Counter(a.account for a in actions if a.writes and a.account in read_only)
    if not blocked:
        return PASS
    account, count = sorted(blocked.items())[0]
    return _refuse(
        "read_only",
        f"{count} write action(s) planned for read-only account {account}; nothing was pushed",
        account=account,
        counts={"writes": count},
    )


def check_plan(
    actions: Collection[Action],
    *,
    side_counts: Mapping[str, int],
    max_delete_percent: int,
    read_only: Collection[str] = (),
) -> GuardVerdict:
    """Run the read-only and mass-delete guards over one pass's actions.

    ``side_counts``: per account, how many records of the resource it holds before the
    pass (an account missing here counts as 0). The first refusal is returned (read-only
    first, then accounts in name order), else a pass.
    """
    verdict = check_read_only(actions, read_only)
    if not verdict:
        return verdict
    removals = Counter(a.account for a in actions if a.op == "remove")
    resources = sorted({a.resource for a in actions if a.op == "remove"})
    for account in sorted(removals):
        verdict = check_mass_delete(
            side_counts.get(account, 0),
            removals[account],
            max_delete_percent,
            account=account,
            resource=resources[0] if len(resources) == 1 else None,
        )
        if not verdict:
            return verdict
    return PASS


def _digest(ids: Iterable[str]) -> bytes:
    hasher = hashlib.sha256()
    for one in sorted(set(ids)):
        hasher.update(one.encode("utf-8"))
        hasher.update(b"\0")
    return hasher.digest()


def _checkpoint_key(checkpoint: object) -> str:
    return json.dumps(checkpoint, sort_keys=True, separators=(",", ":"), default=repr)


class PaginationLoopDetector:
    """Watches one listing, page by page, for a vendor that pages in circles.

    Feed it every page (its ids, its checkpoint, and the total the vendor declares when
    it does). It reports a loop when a page repeats the checkpoint of an earlier page,
    lists exactly the same (non-empty) set of ids as an earlier page, or when more pages
    arrive than the declared total allows: ``max(1, ceil(total / page_size)) + slack`` (the
    slack absorbs records added while listing). Memory is one digest per page, not the ids.
    Use a new detector for every listing.
    """

    def __init__(self, *, page_size: int | None = None, slack: int = 2) -> None:
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1")
        if slack < 0:
            raise ValueError("slack cannot be negative")
        self._page_size = page_size
        self._slack = slack
        self._pages = 0
        self._total: int | None = None
        self._checkpoints: dict[str, int] = {}
        self._id_sets: dict[bytes, int] = {}

    @property
    def pages(self) -> int:
        """How many pages were fed."""
        return self._pages

    def bound(self) -> int | None:
        """The most pages the declared total allows, or None while no total is known."""
        if self._total is None:
            return None
        size = self._page_size or 1
        # An empty listing still answers with one (empty) page.
        return max(1, -(-self._total // size)) + self._slack

    def feed(
        self,
        ids: Iterable[str] = (),
        *,
        checkpoint: object = None,
        total: int | None = None,
        account: str | None = None,
    ) -> GuardVerdict:
        """Record one page; a refusal (``guard="pagination_loop"``) when it shows a loop.

        ``checkpoint`` is the page's JSON-able resume point (None: none); ``total`` the
        record count the vendor declares (the largest declared so far is used).
        """
        self._pages += 1
        page = self._pages
        if total is not None:
            if total < 0:
                raise ValueError("total cannot be negative")
            self._total = total if self._total is None else max(self._total, total)
        counts = {"page": page}
        if checkpoint is not None:
            key = _checkpoint_key(checkpoint)
            earlier = self._checkpoints.get(key)
            if earlier is not None:
                return _refuse(
                    "pagination_loop",
                    f"page {page} repeats the checkpoint of page {earlier}: the listing "
                    "loops; stopped",
                    account=account,
                    counts={**counts, "earlier_page": earlier},
                )
            self._checkpoints[key] = page
        id_list = list(ids)
        if id_list:
            digest = _digest(id_list)
            earlier = self._id_sets.get(digest)
            if earlier is not None:
                return _refuse(
                    "pagination_loop",
                    f"page {page} lists the same {len(set(id_list))} ids as page {earlier}: "
                    "the listing loops; stopped",
                    account=account,
                    counts={**counts, "earlier_page": earlier},
                )
            self._id_sets[digest] = page
        limit = self.bound()
        if limit is not None and page > limit:
            assert self._total is not None
            return _refuse(
                "pagination_loop",
                f"page {page} is more than the {limit} pages that {self._total} records "
                f"at {self._page_size or 1} per page allow; stopped",
                account=account,
                counts={**counts, "bound": limit, "total": self._total},
            )
        return PASS


# --------------------------------------------------------------------------- invoice totals


def totals_tolerance(line_count: int) -> Decimal:
    """How far stated totals may be from the lines' totals: the rounding rules differ.

    Vendors round VAT per line, per rate or per invoice; each rounding moves an amount by
    at most half a cent, so ``n`` lines may differ by ``n`` half cents (at least a cent).
    """
    half_cents = Decimal(max(2, line_count)) * Decimal("0.005")
    return half_cents.quantize(Decimal("0.01"), rounding=ROUND_CEILING)


def invoice_totals_problem(invoice: Invoice) -> str | None:
    """Why ``invoice``'s stated totals cannot be trusted, with both figures; None if fine."""
    subtotal, tax_total, total = compute_totals(invoice.lines)
    tolerance = totals_tolerance(len(invoice.lines))
    stated = (invoice.subtotal, invoice.tax_total, invoice.total)
    if all(
        abs(a - b) <= tolerance for a, b in zip((subtotal, tax_total, total), stated, strict=True)
    ):
        return None
    return (
        f"totals do not add up: the vendor states subtotal {invoice.subtotal}, VAT "
        f"{invoice.tax_total}, total {invoice.total}; the {len(invoice.lines)} line(s) give "
        f"subtotal {subtotal}, VAT {tax_total}, total {total} (tolerance {tolerance})"
    )

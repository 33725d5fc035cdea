"""A Hypothesis state machine over the engine and two or three fake vendors (issue 5, item 6).

People act on the vendors: they hold companies before syncd first runs (some in several
vendors, typed differently), create companies (namesakes of others, or sharing another
company's e-mail address, which sends them to match review), type a company that one
vendor holds into another, edit random fields to values never used before, archive and
unarchive, and delete. The engine runs in between: pulls, pushes and reconciles of random
accounts and whole ``once`` passes, some killed at a random step (``tests/engine/crash.py``:
the old engine is thrown away and a new one takes over the same database and vendors),
old cursors written back (pulls repeat and arrive out of order), and transient vendor
faults. An operator settles match reviews by the truth. The vendors mix incremental and
snapshot change detection, archive and delete removal; the flow is ``newest`` with
``delete = "propagate"``.

Every company has its own VAT number, which nobody edits: it is how the model (and the
engine's matcher) tells companies apart.

Between steps: no vendor holds a company twice, and the store holds a company once. After
the steps faults stop, and the engine runs until a round of reconciles and a ``once`` has
nothing to do. Then:

converged
    each live company is held exactly once by every vendor, with the same synced fields
    as its single live canonical row (fields with an open conflict excepted); a deleted
    one is shown by no vendor (an archive vendor may keep it archived);
no duplicate entity
    as above, per vendor and in the store, and no canonical row of an unknown company;
no lost edit
    per field, the *standing* edits are those nobody replaced: a later edit of the field
    in the same vendor replaces an edit, and so does a later edit that typed over its
    value as far as the engine knows (the value was agreed, as the link's base, with the
    vendor where the later edit was typed, and with the edit's own vendor); a deletion
    in the edit's vendor discards an edit the engine had not agreed yet. The field must
    hold the only standing value, or one of several: concurrent edits are settled by
    ``newest``, which compares vendor times of whole records, or account names when a
    snapshot vendor gives no time, and the model does not second-guess that choice. A
    field never holds a value no edit wrote. A company deleted before a copy nobody had
    linked was pulled lives on as a new entity made from that copy: then a field may also
    hold what the deletions did not cover;
a modify beats a delete
    a company nobody deleted is alive; a deleted one must be alive when an edit its
    deleting vendors did not have is the only standing value of its field and no other
    vendor's edit competed with it (``newest`` may have chosen the other one), and must
    be gone when its deleting vendor had every edit;
no echo
    the quiet round's ``once`` writes nothing; one more ``once`` lists each vendor once
    per page (an incremental vendor: one call) and writes nothing;
API calls bounded
    see ``_check_api_bound``: one write per changed vendor record, and per round the cost
    of listing every vendor twice, plus at most three calls per changed record.

Set ``SYNCD_MODEL_EXAMPLES`` to run more examples than the suite does (say 500).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import os
import shutil
import sys
from collections import Counter
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, cast

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import event, select

from syncd.adapters.fake import FakeAdapter, FakeVendor
from syncd.core.model import CONTACT_FIELDS, Contact, normalise, to_fields
from syncd.runner import Engine, PassStats
from syncd.store import repos
from syncd.store import tables as t
from syncd.store.db import create_engine
from tests.engine.crash import Crash, CrashingAdapter, CrashPlan, crashing_sessions
from tests.engine.helpers import VirtualClock, settings_for

_T = TypeVar("_T")

Detection = Literal["incremental", "snapshot"]
Removal = Literal["delete", "archive"]

PAGE_SIZE = 3  # small, so that a handful of records spans pages and checkpoints
MAX_COMPANIES = 8
QUIET_ROUNDS = 8  # rounds the engine may take to come to rest once people stop
SYNCED = tuple(f for f in CONTACT_FIELDS if f != "customer_number")  # vendor-local
EXTRAS = ("email", "phone", "city", "postal_code")
EDITABLE = ("name", "email", "phone", "city", "website", "address_line1", "archived")
JOBS = ("pull", "push", "reconcile", "once")
FAULT_KINDS = ("rate_limit", "server_error", "unavailable", "reset", "lost_response")
NAMES = ("Acme", "Bakker Installaties", "Tamm ja Saar", "Noorderlicht Bouw")
POSTCODES = ("1012 AB", "3511 CD", "10111", "9711 EF")
UNAGREED = "<unagreed>"  # the engine had agreed no value of the field with that vendor

# Engine bugs the model works around until they are fixed. Each has a strict-xfail test
# in tests/engine/test_engine_bugs.py; when that test passes, set its switch to False.
# The first six are fixed (their tests pass) and stay here, False, so that the model
# keeps checking what each of them broke.
#
# test_a_decided_review_lets_the_other_candidates_be_created: creates cancelled while a
# review was open are not planned again, so the operator re-plans the candidates.
REPLAN_AFTER_REVIEW = False
# test_no_write_when_the_target_won_the_conflict: an update made moot by a later merge
# is still sent, at most one per changed record (see _check_api_bound).
MOOT_UPDATES_SENT = False
# test_rejecting_two_reviews_of_one_company_makes_one_entity: a rejected review always
# makes a new entity, so a company waiting in reviews in two vendors would be made twice.
# A new company shares the e-mail address only of a company the engine has fully linked.
REJECT_MAKES_NEW_ENTITY = False
# test_a_record_deleted_everywhere_stays_deleted: deletions in two vendors each see the
# other's unpushed change as a modify that beats them; only a company deleted in one
# vendor must stay deleted.
DELETIONS_WEIGHED_ALONE = False
# test_a_create_settled_after_the_deletion_is_removed: a create whose outcome was unknown
# and that is settled after its entity was deleted stays in that vendor, linked to the
# deleted entity; such a record is tolerated in a vendor that should not show the company.
SETTLED_CREATES_OUTLIVE_DELETION = False
# test_our_own_lost_archive_does_not_revive_the_contact: an archive whose answer is lost
# is taken for a person's change on the next pull and revives the contact; an archiving
# vendor's writes fail only with a 429 (nothing lands), never with an unknown outcome.
LOST_ARCHIVE_REVIVES = False
#
# Found with the six switches above set to False. Fixed since (their tests pass):
#
# test_a_company_waiting_in_review_is_not_created_there_from_elsewhere: a company whose
# record waited in a match review in one vendor and that was typed into another was
# created in the first vendor too. test_no_archive_sent_to_a_record_archived_there_already
# and test_no_update_sent_before_a_removal_of_the_record: writes to the records of a
# deleted company that change nothing that matters were sent; one was allowed per record
# of a deleted company (see _moot_deleted).
MOOT_WRITES_TO_DELETED = False
# test_an_archive_with_other_edits_beats_a_deletion: a record that came back archived
# kept a deleted company deleted even when its person changed other fields too. People
# neither archived a deleted company nor edited an archived record of one, and never
# deleted a company some vendor held archived.
ARCHIVE_WITH_EDITS_STAYS_DELETED = False
#
# test_a_review_accepted_for_a_company_deleted_meanwhile_keeps_its_edits (fixed: a copy
# linked for the first time to a deleted company revives it): a company sharing another's
# e-mail address may again be typed into a second vendor.
REVIEW_MISSES_NEW_ENTITIES = False


class VendorClock:
    """One clock for every fake vendor; each reading is a millisecond after the last."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=1)
        return self.now


@dataclasses.dataclass(frozen=True)
class Company:
    """One real company as first typed; ``vat`` is its identity and never edited."""

    key: int
    name: str
    vat: str  # normalised
    postal_code: str | None
    email: str | None
    phone: str | None
    city: str | None
    collider: bool  # typed with another company's e-mail address


@dataclasses.dataclass(frozen=True)
class Edit:
    """A value a person gave one field of one company's record in one vendor."""

    company: int
    field: str
    value: Any
    vendor: str
    seq: int
    # Indexes (into EngineModel.edits) of the earlier edits of the field this one typed
    # over as far as the engine knows: see EngineModel._typed_over.
    replaces: frozenset[int] = frozenset()


@dataclasses.dataclass(frozen=True)
class Deletion:
    company: int
    vendor: str
    seq: int
    agreed: Mapping[str, Any]  # the link's base when the person deleted the record


def _no_fsync(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def _vat(key: int) -> str:
    return f"NL{(123456789 + 1000003 * key) % 10**9:09d}B{key % 89 + 10:02d}"


def _vat_variant(vat: str, variant: int) -> str:
    forms = (vat, vat.lower(), f"{vat[:2]} {vat[2:6]}.{vat[6:11]}.{vat[11:]}")
    return forms[variant % len(forms)]


def _name_variant(name: str, variant: int) -> str:
    forms = (name, f"{name} B.V.", f"{name.upper()} BV", f"  {name.lower()}   b.v. ")
    return forms[variant % len(forms)]


def _busy(stats: PassStats) -> int:
    """What a job did besides reading what the engine already knew."""
    return stats.changed + stats.pushed + stats.reviews + stats.failed + stats.conflicts


def _default(name: str) -> Any:
    return {"kind": "organization", "archived": False}.get(name)


def _idle_calls(vendor: FakeVendor) -> int:
    """Requests of a pull that finds nothing new: one page, or every page of a snapshot."""
    if vendor.change_detection == "incremental":
        return 1
    return max(1, math.ceil(len(vendor.live("contacts")) / PAGE_SIZE))


class Store:
    """One event loop and one SQLAlchemy engine for every example of a test.

    Each example starts from a fresh copy of the migrated template file. Keeping the
    engine keeps SQLAlchemy's statement caches warm, which makes an example several
    times cheaper than building everything anew.
    """

    def __init__(self, template: Path, path: Path) -> None:
        self.template = template
        self.path = path
        self.loop = asyncio.Runner()
        shutil.copyfile(template, path)
        self.db = create_engine(f"sqlite+aiosqlite:///{path}")
        # A throwaway file: no fsync per commit. The crash safety under test is the
        # engine's: a killed engine's transaction is rolled back, never half-written.
        event.listen(self.db.sync_engine, "connect", _no_fsync)

    def fresh(self) -> None:
        """An empty migrated database again (every connection is closed first)."""
        self.loop.run(self.db.dispose())
        for suffix in ("-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.template, self.path)

    def close(self) -> None:
        self.loop.run(self.db.dispose())
        self.loop.close()


class EngineModel(RuleBasedStateMachine):
    """People on the vendors, the engine in between, the invariants after quiescence."""

    VENDORS: ClassVar[tuple[tuple[str, Detection, Removal], ...]] = ()
    accounts: ClassVar[st.SearchStrategy[str]]  # the account names, set per subclass
    saved_cursors = Bundle("saved_cursors")

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        store.fresh()
        self.plan = CrashPlan()
        self.sessions = crashing_sessions(store.db, self.plan)
        self.vendor_clock = VendorClock()
        self.engine_clock = VirtualClock()
        self.vendors = {
            name: FakeVendor(
                name=name, change_detection=detection, removal=removal, clock=self.vendor_clock
            )
            for name, detection, removal in self.VENDORS
        }
        self.settings = settings_for(
            list(self.vendors), conflict="newest", delete="propagate", max_delete_percent=100
        )
        self.engine = self._new_engine()
        self.run(self.engine.prepare())
        self.companies: list[Company] = []
        self.edits: list[Edit] = []
        self.deletions: list[Deletion] = []
        self.seq = 0
        self.rounds: list[str] = []  # what each quiescence round did, for the failure report
        self.accepted = 0  # match reviews the operator accepted so far

    # ------------------------------------------------------------------ plumbing

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self.store.loop.run(coro)

    def _new_engine(self) -> Engine:
        """A new process: new Engine and adapters over the same database and vendors."""
        adapters = {
            name: CrashingAdapter(FakeAdapter(vendor, account=name, page_size=PAGE_SIZE), self.plan)
            for name, vendor in self.vendors.items()
        }
        return Engine(
            self.settings,
            self.sessions,
            adapters,
            clock=self.engine_clock,
            sleep=self.engine_clock.sleep,
            call_count=lambda name: self.vendors[name].calls,
        )

    def _tick(self) -> int:
        self.seq += 1
        return self.seq

    def _company(self, vat: str | None) -> Company | None:
        return next((c for c in self.companies if c.vat == vat), None)

    def _records(self, vendor: str, company: Company) -> list[tuple[str, Contact]]:
        return [
            (external_id, value)
            for external_id, value in self.vendors[vendor].live("contacts").items()
            if isinstance(value, Contact) and value.vat_number == company.vat
        ]

    def _record(self, vendor: str, company: Company) -> tuple[str, Contact] | None:
        found = self._records(vendor, company)
        return found[0] if len(found) == 1 else None

    def _live_options(self) -> list[tuple[Company, str]]:
        return [
            (c, v) for c in self.companies for v in self.vendors if self._record(v, c) is not None
        ]

    @staticmethod
    def _leaves_archived(current: Contact, name: str) -> bool:
        """Whether an edit of ``name`` leaves the record archived (or archives it)."""
        return not current.archived if name == "archived" else current.archived

    def _archived_somewhere(self, company: Company) -> bool:
        return any(value.archived for v in self.vendors for _, value in self._records(v, company))

    def _deleted(self, company: Company) -> bool:
        return any(d.company == company.key for d in self.deletions)

    async def _agreed(self, vendor: str, external_id: str) -> dict[str, Any]:
        """The link's base of a vendor record: what the engine agreed with that vendor."""
        await self.engine.prepare()
        async with self.sessions() as s:
            account = self.engine.accounts[vendor].id
            link = await repos.link_by_external(s, account, "contacts", external_id)
            return {} if link is None else dict(link.base)

    async def _fully_linked(self, company: Company) -> bool:
        for vendor in self.vendors:
            for external_id, _ in self._records(vendor, company):
                if not await self._agreed(vendor, external_id):
                    return False
        return True

    async def _typed_over(
        self, company: Company, vendor: str, name: str, agreed: Any
    ) -> frozenset[int]:
        """The earlier edits a person in ``vendor`` typed over, as far as the engine knows.

        The engine sees a change of ``name`` in ``vendor`` as replacing ``agreed``, the
        value it had agreed with that vendor. An earlier edit with that value is replaced
        when it was made in the same vendor, or in a vendor the engine had agreed the value
        with too. A record the engine has not linked yet still claims its own values,
        which the flow's policy weighs against this edit once the record is matched.

        Every earlier edit made in a vendor that holds ``agreed`` now, as agreed with the
        engine, is replaced too, whatever its value: it lost a conflict there (the policy
        chose another value and the engine wrote it back), so nothing holds it any more.
        Without this, a losing edit would come back as the only standing value once the
        edit that typed over the winner is discarded by a deletion, and would be taken for
        a modify that beats that deletion.
        """
        agreed_at = {vendor}
        settled_at: set[str] = set()
        for other in self.vendors:
            found = self._record(other, company)
            if other != vendor and found is not None:
                base = await self._agreed(other, found[0])
                if base.get(name, UNAGREED) == agreed:
                    agreed_at.add(other)
                    if to_fields(normalise(found[1])).get(name) == agreed:
                        settled_at.add(other)
        return frozenset(
            i
            for i, e in enumerate(self.edits)
            if e.company == company.key
            and e.field == name
            and ((e.value == agreed and e.vendor in agreed_at) or e.vendor in settled_at)
        )

    # ------------------------------------------------------------------ people

    def _new_company(self, name: int, extras: set[str], email: str | None = None) -> Company:
        key = len(self.companies)
        company = Company(
            key=key,
            name=NAMES[name],
            vat=_vat(key),
            postal_code=POSTCODES[name] if "postal_code" in extras else None,
            email=email or (f"mail{key}@firm{key}.example" if "email" in extras else None),
            phone=f"+3120{key:07d}" if "phone" in extras else None,
            city=f"Town {key}" if "city" in extras else None,
            collider=email is not None,
        )
        self.companies.append(company)
        return company

    def _first(self, company: Company) -> Contact:
        return Contact(
            kind="organization",
            name=company.name,
            vat_number=company.vat,
            email=company.email,
            phone=company.phone,
            city=company.city,
            postal_code=company.postal_code,
        )

    def _typed(self, company: Company, variant: int, fields: set[str]) -> Contact:
        """The company as a person types it into one more vendor (``variant`` > 0): the
        name spelled differently, the VAT number and e-mail address laid out differently,
        and only some of the fields."""
        email = company.email if "email" in fields else None
        return Contact(
            kind="organization",
            name=_name_variant(company.name, variant),
            vat_number=_vat_variant(company.vat, variant),
            email=email.upper() if email and variant % 2 else email,
            city=company.city if "city" in fields else None,
        )

    def _created(self, vendor: str, company: Company, value: Contact) -> None:
        self.vendors[vendor].human_create("contacts", value)
        seq = self._tick()
        for name, field_value in to_fields(normalise(value)).items():
            if name in SYNCED and field_value is not None:
                self.edits.append(Edit(company.key, name, field_value, vendor, seq))

    @initialize(
        data=st.data(),
        seed=st.integers(0, 2**16),
        seeded=st.lists(
            st.tuples(st.integers(0, len(NAMES) - 1), st.sets(st.sampled_from(EXTRAS))),
            min_size=1,
            max_size=4,
        ),
    )
    def pre_seeded(
        self, data: st.DataObject, seed: int, seeded: list[tuple[int, set[str]]]
    ) -> None:
        """The vendors hold companies before syncd first runs, some in several of them."""
        for offset, state in enumerate(self.vendors.values()):
            state._rng.seed(seed + offset)  # the fault injection's random choices
        for name, extras in seeded:
            company = self._new_company(name, extras)
            places = data.draw(
                st.lists(self.accounts, min_size=1, max_size=len(self.vendors), unique=True),
                label=f"vendors holding company {company.key}",
            )
            for variant, vendor in enumerate(places):
                typed = self._typed(company, variant, extras) if variant else self._first(company)
                self._created(vendor, company, typed)

    @precondition(lambda self: len(self.companies) < MAX_COMPANIES)
    @rule(
        data=st.data(),
        name=st.integers(0, len(NAMES) - 1),
        extras=st.sets(st.sampled_from(EXTRAS)),
        collide=st.booleans(),
    )
    def create_company(
        self, data: st.DataObject, name: int, extras: set[str], collide: bool
    ) -> None:
        """A new company; with another's name it is a namesake (never linked to it)."""
        vendor = data.draw(self.accounts, label="vendor")
        email = None
        if collide:
            # Another company's current e-mail address with a different VAT number: the
            # matcher must not decide alone (a review), and must not link it.
            shown = sorted(
                {
                    r[1].email
                    for c in self.companies
                    for v in self.vendors
                    if (r := self._record(v, c)) is not None and r[1].email
                    if not REJECT_MAKES_NEW_ENTITY or self.run(self._fully_linked(c))
                }
            )
            if shown:
                email = data.draw(st.sampled_from(shown), label="shares the e-mail address")
        company = self._new_company(name, extras, email)
        self._created(vendor, company, self._first(company))

    @precondition(lambda self: self.companies)
    @rule(
        data=st.data(),
        variant=st.integers(1, 3),
        fields=st.sets(st.sampled_from(("email", "city"))),
    )
    def type_company_elsewhere(self, data: st.DataObject, variant: int, fields: set[str]) -> None:
        """A company one vendor holds is typed into another, formatted differently."""
        options = [
            (c, v)
            for c in self.companies
            if not self._deleted(c) and not (REVIEW_MISSES_NEW_ENTITIES and c.collider)
            for v in self.vendors
            if not self._records(v, c)
        ]
        if options:
            company, vendor = data.draw(st.sampled_from(options), label="company, vendor")
            self._created(vendor, company, self._typed(company, variant, fields))

    @precondition(lambda self: self.companies)
    @rule(data=st.data(), name=st.sampled_from(EDITABLE))
    def edit(self, data: st.DataObject, name: str) -> None:
        """A person changes one field of a record to a value never used before."""
        options = self._live_options()
        if ARCHIVE_WITH_EDITS_STAYS_DELETED:
            options = [
                (c, v)
                for c, v in options
                if not self._deleted(c)
                or not any(self._leaves_archived(value, name) for _, value in self._records(v, c))
            ]
        if not options:
            return
        company, vendor = data.draw(st.sampled_from(options), label="company, vendor")
        found = self._record(vendor, company)
        assert found is not None
        external_id, current = found
        agreed = self.run(self._agreed(vendor, external_id)).get(name, UNAGREED)
        n = self._tick()
        new: Any = {
            "name": f"{company.name} {n}",
            "email": f"e{n}@firm{company.key}.example",
            "phone": f"+3161{n:07d}",
            "city": f"City {n}",
            "website": f"https://firm{company.key}.example/{n}",
            "address_line1": f"Straat {n}",
            "archived": not current.archived,
        }[name]
        written = self.vendors[vendor].human_edit("contacts", external_id, **{name: new})
        replaces = self.run(self._typed_over(company, vendor, name, agreed))
        self.edits.append(Edit(company.key, name, getattr(written, name), vendor, n, replaces))

    def _leaves_every_vendor_a_company(self, company: Company) -> bool:
        """Whether every vendor that holds records keeps one of a company nobody deleted,
        once ``company`` is deleted.

        A vendor that lists nothing where it held records trips the empty-side guard (a
        safety stop: nothing of that account is applied), which is right. The engine never
        removes the record of a company nobody deleted, so such a record keeps the vendor
        from ever listing nothing; counting only the vendor's own records is not enough,
        since the engine removes the records of companies deleted elsewhere.
        """
        for name in self.vendors:
            held = [c for c in self.companies if self._records(name, c)]
            if held and not any(c.key != company.key and not self._deleted(c) for c in held):
                return False
        return True

    @precondition(lambda self: self.companies)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        """A person deletes a record (never one that could empty a vendor: see
        ``_leaves_every_vendor_a_company``)."""
        options = [
            (c, v)
            for c, v in self._live_options()
            if self._leaves_every_vendor_a_company(c)
            and not (ARCHIVE_WITH_EDITS_STAYS_DELETED and self._archived_somewhere(c))
        ]
        if not options:
            return
        company, vendor = data.draw(st.sampled_from(options), label="company, vendor")
        found = self._record(vendor, company)
        assert found is not None
        agreed = self.run(self._agreed(vendor, found[0]))
        self.vendors[vendor].human_delete("contacts", found[0])
        self.deletions.append(Deletion(company.key, vendor, self._tick(), agreed))

    @rule()
    def operator_decides_reviews(self) -> None:
        self.run(self._decide_reviews())

    async def _decide_reviews(self) -> int:
        """Accept the candidate with the record's own VAT number; otherwise reject."""
        async with self.sessions() as s:
            rows = await s.execute(select(t.MatchReview).where(t.MatchReview.state == "open"))
            reviews = list(rows.scalars())
            vats = {
                row.id: row.vat_number
                for row in (await s.execute(select(t.Contact))).scalars()
                if row.deleted_at is None
            }
        for review in reviews:
            incoming = next(c["incoming"] for c in review.candidates if "incoming" in c)
            wanted = normalise(repos.value_from_fields("contacts", incoming))
            assert isinstance(wanted, Contact)
            candidates = [int(c["canonical_id"]) for c in review.candidates if "canonical_id" in c]
            same = [cid for cid in candidates if vats.get(cid) == wanted.vat_number]
            if same:
                await self.engine.decide_match(review.id, accept=True, canonical_id=same[0])
                self.accepted += 1
            else:
                await self.engine.decide_match(review.id, accept=False)
            if REPLAN_AFTER_REVIEW:
                for cid in candidates:
                    if cid in vats:
                        await self.engine.replan("contacts", cid)
        return len(reviews)

    # ------------------------------------------------------------------ the engine

    async def _job(self, job: str, account: str) -> None:
        if job == "pull":
            await self.engine.pull(account)
        elif job == "push":
            await self.engine.push(account)
        elif job == "reconcile":
            await self.engine.reconcile(account)
        else:
            await self.engine.once(max_rounds=3)

    async def _unlinked(self, account: str) -> bool:
        """Whether the vendor holds records the engine has not linked (yet)."""
        await self.engine.prepare()
        async with self.sessions() as s:
            rows = await s.execute(
                select(t.Link.external_id).where(
                    t.Link.account_id == self.engine.accounts[account].id
                )
            )
            linked = {external_id for (external_id,) in rows}
        return bool(set(self.vendors[account].live("contacts")) - linked)

    def _may_run(self, job: str, account: str) -> bool:
        """Whether the scheduler would run this job now.

        A push pulls an incremental vendor first when creates are due there, so a company
        somebody typed in since its last pull is linked, not created a second time. A snapshot vendor is not pulled first (a pull lists all of it): the
        engine relies on the scheduled pull having run since people last typed there, and
        so does the model. Every other job may run at any time.
        """
        if job != "push" or self.vendors[account].change_detection == "incremental":
            return True
        return not self.run(self._unlinked(account))

    @rule(data=st.data(), job=st.sampled_from(JOBS))
    def engine_step(self, data: st.DataObject, job: str) -> None:
        account = data.draw(self.accounts, label="account")
        if self._may_run(job, account):
            self.run(self._job(job, account))

    @rule(data=st.data(), job=st.sampled_from(JOBS), after=st.integers(0, 40))
    def killed_during(self, data: st.DataObject, job: str, after: int) -> None:
        """The process is killed ``after`` steps into a job; a new process takes over."""
        account = data.draw(self.accounts, label="account")
        if not self._may_run(job, account):
            return
        self.plan.arm(after)
        try:
            self.run(self._job(job, account))
        except Crash:
            note(f"killed at {self.plan.where}")
            self.engine = self._new_engine()
        finally:
            self.plan.disarm()

    @rule(data=st.data(), rate=st.sampled_from((0.0, 0.2, 0.5)))
    def faults(self, data: st.DataObject, rate: float) -> None:
        vendor = self.vendors[data.draw(self.accounts, label="vendor")]
        vendor.fault_rate = rate
        vendor.fault_kinds = FAULT_KINDS
        if LOST_ARCHIVE_REVIVES and vendor.removal == "archive":
            vendor.fault_kinds = ("rate_limit", "garbled")

    async def _cursor(self, account: str) -> t.Cursor:
        await self.engine.prepare()
        async with self.sessions() as s, s.begin():
            return await repos.cursor_row(s, self.engine.accounts[account].id, "contacts")

    @rule(target=saved_cursors, data=st.data())
    def remember_cursor(self, data: st.DataObject) -> tuple[str, str | None, Any]:
        account = data.draw(self.accounts, label="account")
        row = self.run(self._cursor(account))
        return (account, row.value, row.checkpoint)

    @rule(saved=saved_cursors)
    def replay_cursor(self, saved: tuple[str, str | None, Any]) -> None:
        """An old cursor comes back: changes are pulled again, after newer ones."""
        account, value, checkpoint = saved

        async def write() -> None:
            await self.engine.prepare()
            async with self.sessions() as s, s.begin():
                row = await repos.cursor_row(s, self.engine.accounts[account].id, "contacts")
                row.value, row.checkpoint = value, checkpoint

        self.run(write())

    # ------------------------------------------------------------------ always

    @invariant()
    def no_vendor_holds_a_company_twice(self) -> None:
        for name, vendor in self.vendors.items():
            vats = Counter(
                c.vat_number for c in vendor.live("contacts").values() if isinstance(c, Contact)
            )
            twice = {vat: n for vat, n in vats.items() if n > 1}
            assert not twice, f"{name} holds companies more than once: {twice}"

    @invariant()
    def the_store_holds_a_company_once(self) -> None:
        async def live_vats() -> list[str | None]:
            async with self.sessions() as s:
                rows = await s.execute(
                    select(t.Contact.vat_number).where(t.Contact.deleted_at.is_(None))
                )
                return [vat for (vat,) in rows]

        twice = {v: n for v, n in Counter(self.run(live_vats())).items() if n > 1}
        assert not twice, f"the store holds live companies more than once: {twice}"

    # ------------------------------------------------------------------ after the steps

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:  # when a step failed, that is the failure
                try:
                    self.check_after_quiescence()
                except AssertionError:
                    note(self.run(self._explain()))
                    raise
        finally:
            self.run(self.store.db.dispose())

    def _writes(self) -> int:
        return sum(v.writes for v in self.vendors.values())

    def _calls(self) -> int:
        return sum(v.calls for v in self.vendors.values())

    async def _outbox(self, *states: str) -> int:
        async with self.sessions() as s:
            rows = await s.execute(select(t.Outbox.id).where(t.Outbox.state.in_(states)))
            return len(list(rows))

    def _quiet_round(self) -> bool:
        """One round of the operator and the engine; True when it found nothing to do.

        Reconcile runs for every account (deletions are seen only there), then ``once``
        pulls and pushes until it rests. A round with no decision, no change, no write
        and nothing waiting in the outbox is quiet, and its ``once`` wrote nothing.
        """
        activity = self.run(self._decide_reviews())
        for name in self.vendors:
            stats = self.run(self.engine.reconcile(name))
            self.rounds.append(f"reconcile {name}: {stats}")
            activity += _busy(stats)
        writes = self._writes()
        totals = self.run(self.engine.once(reconcile=False))
        self.rounds.append(f"once: {totals}")
        activity += sum(_busy(s) for s in totals.values())
        self.engine_clock.now += dt.timedelta(hours=2)  # every backoff has run out
        if activity or self.run(self._outbox("pending", "sending", "uncertain", "failed")):
            return False
        assert self._writes() == writes, f"a pass that changed nothing wrote: {totals}"
        return True

    def check_after_quiescence(self) -> None:
        """People and faults stop; the engine must come to rest, then the invariants hold."""
        for vendor in self.vendors.values():
            vendor.fault_rate = 0.0
        writes, calls, before = self._writes(), self._calls(), self._holdings()
        unsettled = self.run(self._outbox("sending", "uncertain", "failed"))
        moot = self._moot_deleted(before) if MOOT_WRITES_TO_DELETED else 0
        accepted = self.accepted
        rounds = 1
        while not self._quiet_round():
            rounds += 1
            assert rounds <= QUIET_ROUNDS, f"the engine did not rest in {QUIET_ROUNDS} rounds"
        self._check_api_bound(
            self._changed(before),
            self._writes() - writes,
            self._calls() - calls,
            unsettled,
            rounds,
            moot,
            late=(self.accepted - accepted) * 2 * (len(self.vendors) - 1),
        )
        self._check_no_echo()
        self._check_state()

    def _check_no_echo(self) -> None:
        """One more ``once`` writes nothing and lists each vendor once per page."""
        writes = self._writes()
        calls = {name: v.calls for name, v in self.vendors.items()}
        totals = self.run(self.engine.once(reconcile=False))
        assert self._writes() == writes, f"a pass after convergence wrote: {totals}"
        for name, vendor in self.vendors.items():
            made, expected = vendor.calls - calls[name], _idle_calls(vendor)
            assert made == expected, f"{name}: {made} calls in an idle pass, expected {expected}"

    def _holdings(self) -> dict[tuple[str, str], Contact]:
        return {
            (name, external_id): value
            for name, vendor in self.vendors.items()
            for external_id, value in vendor.live("contacts").items()
            if isinstance(value, Contact)
        }

    def _moot_deleted(self, before: Mapping[tuple[str, str], Contact]) -> int:
        """Records of deleted companies that vendors held when people stopped: the engine
        may send each one write that changes nothing that matters (MOOT_WRITES_TO_DELETED),
        counted like an unsettled write."""
        return sum(
            1
            for value in before.values()
            if (company := self._company(value.vat_number)) is not None and self._deleted(company)
        )

    def _changed(self, before: Mapping[tuple[str, str], Contact]) -> int:
        """How many vendor records were created, changed or removed since ``before``."""
        after = self._holdings()
        return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))

    def _check_api_bound(
        self,
        changed: int,
        writes: int,
        calls: int,
        unsettled: int,
        rounds: int,
        moot: int = 0,
        *,
        late: int = 0,
    ) -> None:
        """The vendor requests it took to converge, against the records that changed.

        Writes: one per vendor record that changed; a write that changes nothing is wasted.
        Resending is allowed once for every write that a kill or a fault left unsettled
        (``sending``, ``uncertain`` or ``failed`` when people stopped). While moot updates
        are still sent (MOOT_UPDATES_SENT) one more per changed record is allowed: each
        follows a conflict whose loser is updated too. While moot writes to deleted
        companies are still sent (MOOT_WRITES_TO_DELETED) one more write, and one more
        request, is allowed per ``moot`` record (``_moot_deleted``).

        A match review the operator accepts after people stopped is news that came late:
        the record it links may hold values (an e-mail address, say) that the entity's
        copies in the other vendors lack, and those copies may have been created or
        updated already in this quiescence, before anyone could know; when the linked
        record's value wins, it may even take back what was written there meanwhile (a
        copy typed before an edit elsewhere, with a vendor time where the edit has none),
        so that record took two writes and shows no change. So ``late`` more writes (two
        per other vendor and review accepted meanwhile) are no waste, and each may cost
        three requests like a changed record.

        All requests: every round lists each vendor at most twice (reconcile's id sweep
        and one pull that brings the round's changes, or a second pull that only finds the
        echoes, which is how ``once`` knows it is done), ``_idle_calls`` per pull and one
        per sweep. On top of that, each changed record and each unsettled write may cost
        three requests: the write, the page of an incremental listing that carries its
        echo or a pull the push makes first, and a lookup that settles it.
        """
        extra = (changed if MOOT_UPDATES_SENT else 0) + moot + late
        assert writes <= changed + unsettled + extra, (
            f"{writes} writes changed {changed} vendor records ({unsettled} writes were "
            f"unsettled when people stopped; {moot} records of deleted companies; {late} "
            "writes allowed for reviews accepted meanwhile)"
        )
        listing = sum(2 * (1 + _idle_calls(v)) for v in self.vendors.values())
        bound = rounds * listing + 3 * (changed + unsettled + late) + moot
        assert calls <= bound, (
            f"{calls} requests in {rounds} rounds to change {changed} vendor records "
            f"({unsettled} writes unsettled); bound {bound}"
        )

    async def _canonical(self) -> tuple[dict[str, list[dict[str, Any]]], dict[int, set[str]]]:
        """Live canonical contacts by VAT number, and open-conflict fields by company."""
        async with self.sessions() as s:
            live: dict[str, list[dict[str, Any]]] = {}
            ids: dict[int, str] = {}
            for row in (await s.execute(select(t.Contact))).scalars():
                if row.deleted_at is None:
                    fields = await repos.entity_fields(s, "contacts", row)
                    live.setdefault(str(fields["vat_number"]), []).append(fields)
                    ids[row.id] = str(fields["vat_number"])
            conflicts: dict[int, set[str]] = {}
            rows = await s.execute(select(t.Conflict).where(t.Conflict.state == "open"))
            for conflict in rows.scalars():
                company = self._company(ids.get(conflict.canonical_id))
                if company is not None:
                    conflicts.setdefault(company.key, set()).add(conflict.field)
        return live, conflicts

    def _replaced(self, edit: Edit) -> bool:
        """Whether a later edit or deletion took ``edit``'s value out of play.

        A later edit of the field in the same vendor replaces it, and so does a later edit
        that typed over it as far as the engine knows (``Edit.replaces``). A deletion of
        the record in the edit's vendor discards the edit unless the engine had already
        agreed its value with that vendor.
        """
        index = self.edits.index(edit)
        if any(
            other.company == edit.company
            and other.field == edit.field
            and other.seq > edit.seq
            and (other.vendor == edit.vendor or index in other.replaces)
            for other in self.edits
        ):
            return True
        return any(
            d.company == edit.company
            and d.seq > edit.seq
            and d.vendor == edit.vendor
            and d.agreed.get(edit.field, UNAGREED) != edit.value
            for d in self.deletions
        )

    def _contested(self, edit: Edit) -> bool:
        """Whether another vendor's edit of the field, with another value, competed with
        ``edit``: neither typed over the other, so the flow's policy chose between them."""
        index = self.edits.index(edit)
        return any(
            other.company == edit.company
            and other.field == edit.field
            and other.vendor != edit.vendor
            and other.value != edit.value
            and index not in other.replaces
            and i not in edit.replaces
            for i, other in enumerate(self.edits)
        )

    def _deleted_over(self, edit: Edit) -> bool:
        """Whether a later deletion was made by somebody who had ``edit`` (a deletion
        beats only what its vendor had: its own edits and the values agreed with it)."""
        return any(
            d.company == edit.company
            and d.seq > edit.seq
            and (d.vendor == edit.vendor or d.agreed.get(edit.field, UNAGREED) == edit.value)
            for d in self.deletions
        )

    def _check_state(self) -> None:
        live, conflicts = self.run(self._canonical())
        unknown = set(live) - {c.vat for c in self.companies}
        assert not unknown, f"canonical contacts of no company: {unknown}"
        for company in self.companies:
            rows = live.get(company.vat, [])
            assert len(rows) <= 1, f"{company} is in the store {len(rows)} times"
            edits = [e for e in self.edits if e.company == company.key]
            deleted = [d for d in self.deletions if d.company == company.key]
            standing = [e for e in edits if not self._replaced(e)]
            survivors = [e for e in standing if not self._deleted_over(e)]
            fields = [e.field for e in standing]
            # An archive is no modify that beats a delete: a record that comes back
            # archived agrees with the deletion (the engine cannot tell a person's archive
            # from its own whose answer was lost), so it may keep the company deleted.
            # Nor is an edit that another vendor's edit of the field competed with: newest
            # may have settled the field against it before the deletion, and then the
            # deletion had the winner (the model does not second-guess that choice).
            sole = [
                e
                for e in survivors
                if fields.count(e.field) == 1
                and not (e.field == "archived" and e.value)
                and not self._contested(e)
            ]
            if not deleted:
                assert rows, f"{company} is gone, but nobody deleted it"
            elif sole:
                assert rows, f"{company} is gone, but a modify beats a delete: {sole}"
            elif not survivors and (
                len({d.vendor for d in deleted}) == 1 or not DELETIONS_WEIGHED_ALONE
            ):
                assert not rows, f"{company} came back, but its deleting vendor had every edit"
            if rows:
                held = conflicts.get(company.key, set())
                self._check_alive(company, rows[0], edits, standing, survivors, held, deleted)
            else:
                self._check_gone(company)

    def _check_alive(
        self,
        company: Company,
        canonical: Mapping[str, Any],
        edits: list[Edit],
        standing: list[Edit],
        survivors: list[Edit],
        held: set[str],
        deleted: list[Deletion],
    ) -> None:
        for vendor in self.vendors:
            found = self._records(vendor, company)
            assert len(found) == 1, f"{vendor} holds {company} {len(found)} times"
            fields = to_fields(found[0][1])
            differ = {
                name: (fields[name], canonical[name])
                for name in SYNCED
                if name not in held and fields[name] != canonical[name]
            }
            assert not differ, f"{vendor} is not converged on {company}: {differ}"
        for name in SYNCED:
            if name in held:
                continue
            value = canonical[name]
            written = {e.value for e in edits if e.field == name} | {_default(name)}
            assert value in written, f"{company}.{name} is {value!r}, which no edit wrote"
            stands = {e.value for e in standing if e.field == name}
            # After a deletion the company lives on as the same entity (revived, or created
            # again where it was deleted: any standing value), or as a new entity made from
            # a copy nobody had linked yet (only values the deletions did not cover).
            survived = {e.value for e in survivors if e.field == name} or {_default(name)}
            assert not stands or value in stands or (deleted and value in survived), (
                f"lost edit: {company}.{name} is {value!r}; standing edits wrote {stands}"
            )

    def _check_gone(self, company: Company) -> None:
        for vendor in self.vendors:
            shown = [
                c
                for external_id, c in self._records(vendor, company)
                if not c.archived
                and not (
                    SETTLED_CREATES_OUTLIVE_DELETION
                    and self.run(self._linked_to_deleted(vendor, external_id))
                )
            ]
            assert not shown, f"{company} is deleted, yet {vendor} shows it: {shown}"

    async def _linked_to_deleted(self, vendor: str, external_id: str) -> bool:
        async with self.sessions() as s:
            account = self.engine.accounts[vendor].id
            link = await repos.link_by_external(s, account, "contacts", external_id)
            if link is None:
                return False
            entity = await repos.load_entity(s, "contacts", link.canonical_id)
            return entity is not None and entity.deleted_at is not None

    async def _explain(self) -> str:
        """The model's history and the store's view of it, for a failure report."""
        lines = ["quiescence rounds:", *self.rounds, "edits:"]
        lines += [f"  {i}: {e}" for i, e in enumerate(self.edits)]
        lines += ["deletions:", *(f"  {d}" for d in self.deletions), "vendors:"]
        for name, vendor in self.vendors.items():
            for external_id, value in sorted(vendor.live("contacts").items()):
                lines.append(f"  {name} {external_id}: {to_fields(value)}")
        async with self.sessions() as s:
            for table in (t.Contact, t.Link, t.Outbox, t.MatchReview, t.Conflict, t.Audit):
                lines.append(f"{table.__tablename__}:")
                for row in (await s.execute(select(table))).scalars():
                    shown = {
                        c.key: getattr(row, c.key)
                        for c in table.__table__.columns
                        if getattr(row, c.key) not in (None, False, "", {}, [])
                        and c.key not in ("created_at", "updated_at", "workspace_id", "run_id")
                    }
                    lines.append(f"  {shown}")
        return "\n".join(lines)


class TwoVendors(EngineModel):
    VENDORS = (("crm", "incremental", "delete"), ("books", "snapshot", "archive"))
    accounts = st.sampled_from([name for name, _, _ in VENDORS])


class ThreeVendors(EngineModel):
    VENDORS = (
        ("crm", "incremental", "archive"),
        ("books", "snapshot", "delete"),
        ("shop", "incremental", "delete"),
    )
    accounts = st.sampled_from([name for name, _, _ in VENDORS])


MODEL_SETTINGS = settings(
    max_examples=int(os.environ.get("SYNCD_MODEL_EXAMPLES", "12")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("machine", [TwoVendors, ThreeVendors], ids=["two", "three"])
def test_engine_model(machine: type[EngineModel], _sqlite_template: Path, tmp_path: Path) -> None:
    store = Store(_sqlite_template, tmp_path / "model.db")
    try:
        # Hypothesis takes any factory of machines; its annotation says a class.
        factory = cast(type[RuleBasedStateMachine], lambda: machine(store))
        run_state_machine_as_test(factory, settings=MODEL_SETTINGS)
    finally:
        store.close()

"""Engine factory, column types and constraints, on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from syncd.store.db import (
    NAMING_CONVENTION,
    Base,
    ExactNumeric,
    Money,
    create_engine,
    create_sessionmaker,
)
from syncd.store.tables import (
    Account,
    Audit,
    Contact,
    Invoice,
    InvoiceLine,
    Link,
    Outbox,
    Workspace,
)

CET = timezone(timedelta(hours=2))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _account(session: AsyncSession, name: str = "acme-books") -> Account:
    workspace = Workspace(name=f"ws-{name}")
    session.add(workspace)
    await session.flush()
    account = Account(workspace_id=workspace.id, name=name, vendor="moneybird")
    session.add(account)
    await session.flush()
    return account


def _link(account: Account, external_id: str, canonical_id: int = 1) -> Link:
    return Link(
        account_id=account.id,
        resource="contacts",
        external_id=external_id,
        canonical_id=canonical_id,
        base={"name": "Acme"},
        base_fingerprint="f" * 16,
    )


# --- SQLite file and connection setup ---------------------------------------------------


async def test_new_sqlite_file_and_parent_dir_exist_with_mode_0600_before_first_connect(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "nested" / "syncd.db"

    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        assert path.is_file()
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            # SQLite gives the WAL file the database file's permissions.
            assert _mode(path.with_name("syncd.db-wal")) == 0o600
        assert _mode(path) == 0o600
    finally:
        await engine.dispose()


async def test_existing_sqlite_file_is_opened_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    url = f"sqlite+aiosqlite:///{path}"
    first = create_engine(url)
    async with first.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE kept (x INTEGER)")
    await first.dispose()

    second = create_engine(url)
    try:
        async with second.connect() as conn:
            tables = (await conn.exec_driver_sql("SELECT name FROM sqlite_master")).scalars().all()
    finally:
        await second.dispose()
    assert tables == ["kept"]


async def test_every_sqlite_connection_enforces_foreign_keys_wal_and_busy_timeout(
    sqlite_url: str,
) -> None:
    engine = create_engine(sqlite_url)
    try:
        for _ in range(2):  # a fresh connection each time: the settings are per connection
            async with engine.connect() as conn:
                pragma = conn.exec_driver_sql
                assert (await pragma("PRAGMA foreign_keys")).scalar() == 1
                assert (await pragma("PRAGMA journal_mode")).scalar() == "wal"
                assert (await pragma("PRAGMA busy_timeout")).scalar() == 5000
            await engine.dispose()
    finally:
        await engine.dispose()


def test_unsupported_database_url_is_refused_without_showing_the_password() -> None:
    with pytest.raises(ValueError, match="unsupported database URL") as caught:
        create_engine("mysql+aiomysql://syncd:hunter2@db.example/syncd")

    assert "hunter2" not in str(caught.value)


# --- metadata -----------------------------------------------------------------------------


def test_every_constraint_and_index_is_named_by_the_convention() -> None:
    prefixes = {f"{kind}_" for kind in NAMING_CONVENTION}
    for table in Base.metadata.sorted_tables:
        names = [c.name for c in table.constraints] + [i.name for i in table.indexes]
        for name in names:
            assert isinstance(name, str), f"unnamed constraint or index on {table.name}"
            assert name[:3] in prefixes, name
            assert len(name) <= 63, name  # PostgreSQL's identifier limit


# --- UTCDateTime ----------------------------------------------------------------------------


async def test_datetimes_come_back_timezone_aware_utc(db_session: AsyncSession) -> None:
    written = datetime(2024, 3, 31, 2, 30, tzinfo=CET)
    session = db_session
    session.add(Workspace(name="acme", created_at=written))
    await session.commit()

    row = (await session.execute(sa.select(Workspace.__table__.c.created_at))).scalar_one()

    assert row == written
    assert row.tzinfo is UTC
    assert row.hour == 0


async def test_datetime_comparisons_respect_the_timezone(db_session: AsyncSession) -> None:
    db_session.add_all(
        [
            Workspace(name="early", created_at=datetime(2024, 1, 1, 10, 0, tzinfo=UTC)),
            Workspace(name="late", created_at=datetime(2024, 1, 1, 12, 0, tzinfo=UTC)),
        ]
    )
    await db_session.flush()

    # 13:00 at +02:00 is 11:00 UTC: only "late" is after it.
    cutoff = datetime(2024, 1, 1, 13, 0, tzinfo=CET)
    names = (
        await db_session.execute(sa.select(Workspace.name).where(Workspace.created_at > cutoff))
    ).scalars()

    assert list(names) == ["late"]


async def test_naive_datetime_is_refused_on_write(db_session: AsyncSession) -> None:
    db_session.add(Workspace(name="acme", created_at=datetime(2024, 1, 1, 12, 0)))

    with pytest.raises(StatementError, match="naive datetime refused"):
        await db_session.flush()


async def test_timestamps_default_to_now_in_utc(db_session: AsyncSession) -> None:
    before = datetime.now(UTC)
    account = await _account(db_session)
    await db_session.commit()

    assert account.created_at.tzinfo is UTC
    assert before <= account.created_at <= datetime.now(UTC)
    assert account.updated_at >= account.created_at


# --- Numeric / Decimal ----------------------------------------------------------------------


async def test_money_and_quantities_round_trip_as_exact_decimals(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with db_sessionmaker() as session:
        account = await _account(session)
        invoice = Invoice(
            workspace_id=account.workspace_id,
            number="2024-0001",
            issue_date=date(2024, 5, 1),
            currency="EUR",
            status="open",
            subtotal=Decimal("0.10"),
            tax_total=Decimal("0.02"),
            total=Decimal("9999999999999.99"),
            amount_paid=Decimal("0"),
        )
        session.add(invoice)
        await session.flush()
        session.add(
            InvoiceLine(
                workspace_id=account.workspace_id,
                invoice_id=invoice.id,
                position=1,
                description="Consultancy",
                quantity=Decimal("1.2500"),
                unit_price=Decimal("80.10"),
                vat_rate=Decimal("21"),
                line_total=Decimal("100.13"),
            )
        )
        await session.commit()

    async with db_sessionmaker() as session:
        stored = (await session.execute(sa.select(Invoice))).scalar_one()
        line = (await session.execute(sa.select(InvoiceLine))).scalar_one()

    for value, expected in [
        (stored.subtotal, "0.10"),
        (stored.tax_total, "0.02"),
        (stored.total, "9999999999999.99"),
        (stored.amount_paid, "0.00"),
        (line.quantity, "1.2500"),
        (line.unit_price, "80.10"),
        (line.vat_rate, "21.00"),
        (line.line_total, "100.13"),
    ]:
        assert type(value) is Decimal
        assert str(value) == expected
    assert stored.issue_date == date(2024, 5, 1)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "pg"])
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0.1, "never float"),
        ("0.10", "never float"),
        (Decimal("1.005"), "more than 2 decimal places"),
        (Decimal("NaN"), "cannot be stored"),
        (Decimal("12345678901234567.00"), "does not fit"),
    ],
)
def test_money_refuses_values_it_would_change(
    dialect: sa.Dialect, value: object, error: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        Money.process_bind_param(value, dialect)


def test_money_accepts_trailing_zeros_and_integers() -> None:
    bind = Money.process_bind_param

    assert bind(Decimal("1.500"), postgresql.dialect()) == Decimal("1.5")
    assert bind(42, postgresql.dialect()) == Decimal(42)
    assert bind(None, postgresql.dialect()) is None


def test_money_refuses_more_digits_than_sqlite_stores_exactly() -> None:
    big = Decimal("99999999999999.99")  # 16 significant digits: fine in NUMERIC(18, 2)

    assert Money.process_bind_param(big, postgresql.dialect()) == big
    with pytest.raises(ValueError, match="exactly on SQLite"):
        Money.process_bind_param(big, sqlite.dialect())


def test_exact_numeric_keeps_its_precision_and_scale() -> None:
    column_type = ExactNumeric(18, 4)

    assert column_type.compile(dialect=postgresql.dialect()) == "NUMERIC(18, 4)"


# --- JSON -----------------------------------------------------------------------------------


async def test_json_round_trips_and_none_is_sql_null(db_session: AsyncSession) -> None:
    account = await _account(db_session)
    base = {"name": "Acme B.V.", "tags": ["a", "b"], "nested": {"n": 1, "ok": True}}
    db_session.add(_link(account, "c-1"))
    db_session.add(
        Audit(
            workspace_id=account.workspace_id,
            resource="contacts",
            canonical_id=1,
            field="email",
            old=None,
            new="info@acme.example",
            reason="pulled",
        )
    )
    await db_session.flush()
    await db_session.execute(sa.update(Link).values(base=base))

    stored = (await db_session.execute(sa.select(Link.base))).scalar_one()
    nulls = (
        await db_session.execute(sa.select(sa.func.count()).where(Audit.old.is_(None)))
    ).scalar()

    assert stored == base
    assert nulls == 1


# --- constraints ----------------------------------------------------------------------------


async def test_links_are_unique_per_account_resource_and_external_id(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with db_sessionmaker() as session:
        first = await _account(session, "acme-books")
        second = await _account(session, "acme-crm")
        session.add_all([_link(first, "42"), _link(second, "42"), _link(first, "43")])
        await session.commit()

        session.add(_link(first, "42", canonical_id=2))
        with pytest.raises(
            IntegrityError, match=r"uq_links_account_id_resource_external_id|UNIQUE"
        ):
            await session.commit()


async def test_foreign_keys_are_enforced(db_session: AsyncSession) -> None:
    db_session.add(Account(workspace_id=999, name="orphan", vendor="perfex"))

    with pytest.raises(IntegrityError):
        await db_session.flush()


async def test_outbox_state_outside_the_known_set_is_refused(db_session: AsyncSession) -> None:
    account = await _account(db_session)
    db_session.add(
        Outbox(
            account_id=account.id,
            resource="contacts",
            op="create",
            canonical_id=1,
            fields={},
            state="lost",
        )
    )

    with pytest.raises(IntegrityError):
        await db_session.flush()


async def test_outbox_rows_default_to_pending_and_due_now(db_session: AsyncSession) -> None:
    account = await _account(db_session)
    row = Outbox(account_id=account.id, resource="invoices", op="update", canonical_id=7, fields={})
    db_session.add(row)
    await db_session.flush()

    assert (row.state, row.attempts) == ("pending", 0)
    assert row.next_attempt_at <= datetime.now(UTC)


# --- optimistic concurrency and sessions ----------------------------------------------------


async def test_concurrent_update_of_a_stale_contact_version_is_refused(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with db_sessionmaker() as session:
        account = await _account(session)
        session.add(Contact(workspace_id=account.workspace_id, kind="organization", name="Acme"))
        await session.commit()

    async with db_sessionmaker() as first, db_sessionmaker() as second:
        mine = (await first.execute(sa.select(Contact))).scalar_one()
        theirs = (await second.execute(sa.select(Contact))).scalar_one()
        assert mine.version == theirs.version == 1

        mine.email = "info@acme.example"
        await first.commit()
        assert mine.version == 2

        theirs.phone = "+31 20 123 4567"
        with pytest.raises(StaleDataError):
            await second.commit()


async def test_objects_stay_readable_after_commit(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with db_sessionmaker() as session:
        workspace = Workspace(name="acme")
        session.add(workspace)
        await session.commit()
        # With expire_on_commit this attribute load would need IO (MissingGreenlet).
        assert workspace.name == "acme"
        assert workspace.id > 0


def test_sessionmaker_keeps_objects_after_commit(sqlite_url: str) -> None:
    engine: AsyncEngine = create_engine(sqlite_url)

    factory = create_sessionmaker(engine)

    assert factory.kw["expire_on_commit"] is False


async def test_ids_of_deleted_rows_are_never_reused(db_session: AsyncSession) -> None:
    first = Workspace(name="first")
    db_session.add(first)
    await db_session.flush()
    first_id = first.id
    await db_session.delete(first)
    await db_session.flush()

    second = Workspace(name="second")
    db_session.add(second)
    await db_session.flush()

    assert second.id > first_id

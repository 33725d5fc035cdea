"""The in-memory fake passes the same adapter contract as the real vendors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import aiohttp
import pytest

from syncd.adapters.base import Resource
from syncd.adapters.fake import (
    FakeAdapter,
    FakeVendor,
    create_adapter,
    forget_shared_vendors,
    shared_vendor,
)
from syncd.adapters.http import RetryPolicy
from syncd.adapters.registry import create_adapter as registry_create_adapter
from syncd.adapters.registry import load_factory
from syncd.core.model import Contact
from syncd.errors import VendorUnavailable
from syncd.settings import AccountSettings
from tests.adapters.contract import AdapterContract, sample_contact


class FakeSide:
    def __init__(self, vendor: FakeVendor) -> None:
        self.vendor = vendor

    async def count(self, resource: Resource) -> int:
        return len(self.vendor.live(resource))

    async def human_edit(
        self, resource: Resource, external_id: str, field: str, value: str
    ) -> None:
        self.vendor.human_edit(resource, external_id, **{field: value})

    async def writes(self) -> int:
        return self.vendor.writes

    async def set_faults(self, rate: float, kinds: tuple[str, ...]) -> None:
        self.vendor.fault_rate = rate
        self.vendor.fault_kinds = kinds


def _seeded(
    mode: Literal["incremental", "snapshot"], removal: Literal["delete", "archive"]
) -> FakeVendor:
    vendor = FakeVendor(change_detection=mode, removal=removal, seed=7)
    for _ in range(7):
        vendor.human_create("contacts", sample_contact())
    return vendor


@pytest.fixture(
    params=[("incremental", "delete"), ("snapshot", "archive")], ids=["incremental", "snapshot"]
)
def fake_vendor(request: pytest.FixtureRequest) -> FakeVendor:
    mode, removal = request.param
    return _seeded(mode, removal)


class TestFakeContract(AdapterContract):
    @pytest.fixture
    def adapter(self, fake_vendor: FakeVendor) -> FakeAdapter:
        return FakeAdapter(fake_vendor, page_size=3)

    @pytest.fixture
    def vendor_side(self, fake_vendor: FakeVendor) -> FakeSide:
        return FakeSide(fake_vendor)

    @pytest.fixture
    def bad_adapter(self, fake_vendor: FakeVendor) -> FakeAdapter:
        fake_vendor.credentials = "wrong"
        return FakeAdapter(fake_vendor, page_size=3)


def test_human_edit_bumps_the_sequence_so_incremental_listings_see_it() -> None:
    vendor = FakeVendor()
    external_id = vendor.human_create("contacts", sample_contact())
    before = vendor.seq
    value = vendor.human_edit("contacts", external_id, city="Utrecht")
    assert isinstance(value, Contact) and value.city == "Utrecht"
    assert vendor.seq == before + 1


# ------------------------------------------------------------------ retries and the factory


class CountingBudget:
    """Counts the tokens taken per lane."""

    def __init__(self) -> None:
        self.taken: dict[str, int] = {}

    async def acquire(self, lane: str) -> None:
        self.taken[lane] = self.taken.get(lane, 0) + 1

    async def penalize(self, retry_after: float | None) -> None:
        raise AssertionError("the fake never penalizes")

    def record_success(self) -> None:
        return None


async def test_a_failing_read_is_tried_as_often_as_vendorhttp_tries_a_safe_call() -> None:
    vendor = _seeded("incremental", "delete")
    vendor.fault_rate, vendor.fault_kinds = 1.0, ("server_error",)
    budget = CountingBudget()
    adapter = FakeAdapter(vendor, budget=budget)
    with pytest.raises(VendorUnavailable):
        await adapter.resource("contacts").get("1000", lane="reconcile")
    assert vendor.calls == RetryPolicy().attempts
    assert budget.taken == {"reconcile": RetryPolicy().attempts}


@pytest.fixture
def shared() -> Iterator[None]:
    forget_shared_vendors()
    yield
    forget_shared_vendors()


def _fake_account(name: str, base_url: str) -> AccountSettings:
    # "fake" is not a vendor a config file may name, so the settings are built unchecked.
    fields: dict[str, Any] = {"name": name, "vendor": "fake", "base_url": base_url}
    return AccountSettings.model_construct(**fields, credentials={})


async def test_the_registry_builds_the_fake_over_one_shared_vendor_per_base_url(
    shared: None,
) -> None:
    assert load_factory("fake") is create_adapter
    budget = CountingBudget()
    async with aiohttp.ClientSession() as session:
        first = registry_create_adapter(_fake_account("a", "memory://lab"), session, budget=budget)
        second = registry_create_adapter(_fake_account("b", "memory://lab"), session, budget=None)
        other = registry_create_adapter(_fake_account("c", "memory://other"), session, budget=None)
    assert isinstance(first, FakeAdapter) and isinstance(second, FakeAdapter)
    assert isinstance(other, FakeAdapter)
    assert (first.account, first.vendor) == ("a", "fake")
    assert first.vendor_state is second.vendor_state is shared_vendor("memory://lab")
    assert other.vendor_state is not first.vendor_state

    created = await first.resource("contacts").create(sample_contact(), client_token="t-1")
    seen = await second.resource("contacts").get(created.external_id)
    assert seen is not None and seen.value == created.value
    assert await other.resource("contacts").get(created.external_id) is None
    assert budget.taken == {"push": 1}

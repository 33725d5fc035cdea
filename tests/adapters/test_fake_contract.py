"""The in-memory fake passes the same adapter contract as the real vendors."""

from __future__ import annotations

from typing import Literal

import pytest

from syncd.adapters.base import Resource
from syncd.adapters.fake import FakeAdapter, FakeVendor
from syncd.core.model import Contact
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

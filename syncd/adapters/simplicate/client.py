"""Thin Simplicate API v2 calls over VendorHttp: one method per endpoint, vendor JSON out.

Every answer comes in the envelope ``{"data", "errors", "debug", "metadata"}``; these
methods unwrap ``data`` (and ``metadata.count`` for lists) and check its shape. A read
whose envelope is not what Simplicate sends is ``VendorUnavailable`` (try again later); a
write whose answer cannot be read is ``Uncertain`` (it may have landed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal
from urllib.parse import quote

from syncd.adapters.base import Lane
from syncd.adapters.http import HttpResponse, VendorHttp
from syncd.errors import Uncertain, VendorUnavailable

__all__ = [
    "INVOICE",
    "INVOICE_STATUS",
    "MY_ORGANIZATION_PROFILE",
    "ORGANIZATION",
    "PAYMENT",
    "PAYMENT_TERM",
    "PERSON",
    "VAT_CLASS",
    "Params",
    "SimplicateClient",
]

ORGANIZATION: Final = "/crm/organization"
PERSON: Final = "/crm/person"
MY_ORGANIZATION_PROFILE: Final = "/crm/myorganizationprofile"
INVOICE: Final = "/invoices/invoice"
PAYMENT: Final = "/invoices/payment"
VAT_CLASS: Final = "/invoices/vatclass"
INVOICE_STATUS: Final = "/invoices/invoicestatus"
PAYMENT_TERM: Final = "/invoices/paymentterm"

MAX_LIMIT: Final = 100  # the vendor's page maximum

Params = Sequence[tuple[str, str]]
Collection = Literal[
    "/crm/organization",
    "/crm/person",
    "/crm/myorganizationprofile",
    "/invoices/invoice",
    "/invoices/payment",
    "/invoices/vatclass",
    "/invoices/invoicestatus",
    "/invoices/paymentterm",
]


def _item_path(collection: str, external_id: str) -> str:
    return f"{collection}/{quote(external_id, safe=':')}"


class SimplicateClient:
    """Simplicate endpoints for one account; I/O only, no mapping."""

    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    @property
    def calls(self) -> int:
        """API calls made so far (every attempt that reached the wire)."""
        return self.http.calls

    # ------------------------------------------------------------------ envelope

    def _envelope(self, response: HttpResponse, what: str) -> dict[str, Any]:
        body = response.body
        if not isinstance(body, dict) or "data" not in body:
            raise VendorUnavailable(
                f"simplicate answered {what} with {response.status} outside its data envelope"
            )
        return body

    # ------------------------------------------------------------------ generic calls

    async def list_rows(
        self, collection: Collection, params: Params, *, lane: Lane = "pull"
    ) -> tuple[list[Any], int | None]:
        """One page of a collection: its rows and, when asked with ``metadata=count``, the total."""
        response = await self.http.get(collection, params=list(params), lane=lane)
        body = self._envelope(response, f"GET {collection}")
        data = body["data"]
        if data is None:
            data = []
        if not isinstance(data, list):
            raise VendorUnavailable(f"simplicate answered GET {collection} without a list")
        metadata = body.get("metadata")
        count = metadata.get("count") if isinstance(metadata, dict) else None
        if isinstance(count, bool) or not isinstance(count, int):
            count = None
        return data, count

    async def get(
        self, collection: Collection, external_id: str, *, lane: Lane = "pull"
    ) -> dict[str, Any]:
        """One record; ``NotFound`` when the vendor says it does not exist."""
        response = await self.http.get(_item_path(collection, external_id), lane=lane)
        data = self._envelope(response, f"GET {collection}/{{id}}")["data"]
        if not isinstance(data, dict):
            raise VendorUnavailable(f"simplicate answered GET {collection}/{{id}} without a record")
        return data

    async def create(self, collection: Collection, body: dict[str, Any]) -> str:
        """POST a new record; return the new id (the vendor answers with nothing else)."""
        response = await self.http.post(collection, json=body, lane="push")
        data = response.body.get("data") if isinstance(response.body, dict) else None
        new_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(new_id, str) or not new_id:
            raise Uncertain(
                f"simplicate answered POST {collection} with {response.status} but no new id; "
                "look the record up before retrying"
            )
        return new_id

    async def update(self, collection: Collection, external_id: str, body: dict[str, Any]) -> None:
        """PUT (partial) changes to one record."""
        await self.http.put(_item_path(collection, external_id), json=body, lane="push")

    async def delete(self, collection: Collection, external_id: str) -> None:
        """DELETE one record."""
        await self.http.delete(_item_path(collection, external_id), lane="push", expect_json=False)

    # ------------------------------------------------------------------ per endpoint

    async def list_organizations(
        self, params: Params, *, lane: Lane = "pull"
    ) -> tuple[list[Any], int | None]:
        """GET crm/organization."""
        return await self.list_rows(ORGANIZATION, params, lane=lane)

    async def list_persons(
        self, params: Params, *, lane: Lane = "pull"
    ) -> tuple[list[Any], int | None]:
        """GET crm/person."""
        return await self.list_rows(PERSON, params, lane=lane)

    async def list_invoices(
        self, params: Params, *, lane: Lane = "pull"
    ) -> tuple[list[Any], int | None]:
        """GET invoices/invoice."""
        return await self.list_rows(INVOICE, params, lane=lane)

    async def list_payments(
        self, params: Params, *, lane: Lane = "pull"
    ) -> tuple[list[Any], int | None]:
        """GET invoices/payment."""
        return await self.list_rows(PAYMENT, params, lane=lane)

    async def lookup(self, collection: Collection, *, lane: Lane = "push") -> list[Any]:
        """Every row of a small lookup list (VAT classes, statuses, terms, profiles)."""
        rows: list[Any] = []
        offset = 0
        while True:
            params = [("offset", str(offset)), ("limit", str(MAX_LIMIT)), ("metadata", "count")]
            page, count = await self.list_rows(collection, params, lane=lane)
            rows.extend(page)
            offset += len(page)
            if not page or len(page) < MAX_LIMIT or (count is not None and offset >= count):
                return rows

    async def vat_classes(self) -> list[Any]:
        """GET invoices/vatclass (all)."""
        return await self.lookup(VAT_CLASS)

    async def invoice_statuses(self) -> list[Any]:
        """GET invoices/invoicestatus (all)."""
        return await self.lookup(INVOICE_STATUS)

    async def payment_terms(self) -> list[Any]:
        """GET invoices/paymentterm (all)."""
        return await self.lookup(PAYMENT_TERM)

    async def organization_profiles(self) -> list[Any]:
        """GET crm/myorganizationprofile (all): our own legal entities."""
        return await self.lookup(MY_ORGANIZATION_PROFILE)

"""Thin I/O over the Perfex CRM ``/api/v1`` endpoints: one method per endpoint, vendor JSON out.

Perfex answers ``{"status": "success", "data": ..., "total": n}``; lists are paged with
``page`` + ``limit``. The Themesic module's shapes (a plain array, or ``{data, meta}``) are
accepted too, so a listing works whichever of the two a deployment answers with. Everything
else (auth headers, budget, retries, error mapping) is ``VendorHttp``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.adapters.base import Lane
from syncd.adapters.http import VendorHttp
from syncd.errors import NotFound, VendorUnavailable

__all__ = ["MAX_PAGE_SIZE", "ListPage", "PerfexClient"]

_DIGITS = re.compile(r"[0-9]{1,18}")
MAX_PAGE_SIZE = 100  # the module cuts larger limits to 100, silently


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a list endpoint: its rows, and what the vendor says about the rest."""

    rows: list[Any]
    total: int | None = None  # rows in the whole listing, when the vendor says
    has_more: bool | None = None  # the Themesic ``meta.has_more``, when present


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    return None


def list_page(body: Any, what: str) -> ListPage:
    """The rows of a list answer in any of the module's shapes."""
    if isinstance(body, list):
        return ListPage(rows=body)
    if isinstance(body, Mapping):
        data = body.get("data")
        if isinstance(data, list):
            meta = body.get("meta")
            total = _int(body.get("total"))
            has_more: bool | None = None
            if isinstance(meta, Mapping):
                total = _int(meta.get("total")) if total is None else total
                more = meta.get("has_more")
                has_more = more if isinstance(more, bool) else None
            return ListPage(rows=data, total=total, has_more=has_more)
    raise VendorUnavailable(f"perfex answered the {what} listing with an unexpected shape")


def record(body: Any, what: str) -> dict[str, Any]:
    """The record of a single-record answer (``{"data": {...}}`` or the bare record)."""
    if isinstance(body, Mapping):
        data = body.get("data")
        if isinstance(data, Mapping):
            return dict(data)
        if "data" not in body and "status" not in body:
            return dict(body)
    raise VendorUnavailable(f"perfex answered the {what} request with an unexpected shape")


def created_id(body: Any, id_key: str) -> str | None:
    """The new record's id in a create answer (``data.<id_key>``, ``record_id`` or ``id``)."""
    candidates: list[object] = []
    if isinstance(body, Mapping):
        data = body.get("data")
        if isinstance(data, Mapping):
            candidates += [data.get(id_key), data.get("id"), data.get("record_id")]
        candidates += [body.get("record_id"), body.get(id_key), body.get("id")]
    for candidate in candidates:
        value = _int(candidate)
        if value is not None and value > 0:
            return str(value)
    return None


class PerfexClient:
    """The Perfex endpoints syncd uses, over one account's ``VendorHttp``."""

    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    @property
    def calls(self) -> int:
        """API calls made so far (every attempt that reached the wire)."""
        return self.http.calls

    # --- generic shapes

    async def _list(
        self,
        path: str,
        what: str,
        *,
        page: int,
        limit: int,
        lane: Lane,
        filters: Mapping[str, str] | None = None,
    ) -> ListPage:
        params = {"page": str(page), "limit": str(limit), **(filters or {})}
        try:
            response = await self.http.get(path, params=params, lane=lane)
        except NotFound as exc:
            # The Themesic module answers an empty collection with 404 "No data were found".
            if "no data" in str(exc).lower():
                return ListPage(rows=[], total=0)
            raise
        return list_page(response.body, what)

    async def _get(self, path: str, what: str, lane: Lane) -> dict[str, Any]:
        response = await self.http.get(path, lane=lane)
        return record(response.body, what)

    async def _lookup(self, path: str, what: str, lane: Lane) -> list[Any]:
        """Every row of a small lookup list, paged in case the endpoint pages it."""
        rows: list[Any] = []
        previous: list[Any] = []
        page = 1
        while True:
            found = await self._list(path, what, page=page, limit=MAX_PAGE_SIZE, lane=lane)
            # An endpoint that ignores paging answers everything, or the same page again.
            if page > 1 and found.rows == previous:
                return rows
            rows += found.rows
            previous = found.rows
            full = len(found.rows) == MAX_PAGE_SIZE
            if (
                not full
                or found.has_more is False
                or (found.total is not None and len(rows) >= found.total)
            ):
                return rows
            page += 1

    # --- customers

    async def customers(
        self, *, page: int, limit: int, search: str | None = None, lane: Lane = "pull"
    ) -> ListPage:
        """``GET /customers``."""
        filters = {"search": search} if search else None
        return await self._list(
            "/customers", "customer", page=page, limit=limit, lane=lane, filters=filters
        )

    async def customer(self, customer_id: str, *, lane: Lane = "pull") -> dict[str, Any]:
        """``GET /customers/{id}``; raises NotFound."""
        return await self._get(f"/customers/{customer_id}", "customer", lane)

    async def create_customer(self, body: Mapping[str, Any]) -> Any:
        """``POST /customers``."""
        return (await self.http.post("/customers", json=body, lane="push")).body

    async def update_customer(
        self, customer_id: str, body: Mapping[str, Any], *, lane: Lane = "push"
    ) -> Any:
        """``PUT /customers/{id}``."""
        return (await self.http.put(f"/customers/{customer_id}", json=body, lane=lane)).body

    # --- contacts (people of a customer)

    async def contacts(
        self,
        *,
        page: int,
        limit: int,
        customer_id: str | None = None,
        primary_only: bool = False,
        search: str | None = None,
        lane: Lane = "pull",
    ) -> ListPage:
        """``GET /contacts`` (filters ``customer_id``, ``is_primary``, ``search``)."""
        filters: dict[str, str] = {}
        if customer_id is not None:
            filters["customer_id"] = customer_id
        if primary_only:
            filters["is_primary"] = "1"
        if search:
            filters["search"] = search
        return await self._list(
            "/contacts", "contact", page=page, limit=limit, lane=lane, filters=filters
        )

    async def create_contact(self, body: Mapping[str, Any]) -> Any:
        """``POST /contacts``."""
        return (await self.http.post("/contacts", json=body, lane="push")).body

    async def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> Any:
        """``PUT /contacts/{id}``."""
        return (await self.http.put(f"/contacts/{contact_id}", json=body, lane="push")).body

    # --- invoices

    async def invoices(
        self, *, page: int, limit: int, customer_id: str | None = None, lane: Lane = "pull"
    ) -> ListPage:
        """``GET /invoices`` (rows without items; filter ``clientid``)."""
        filters = {"clientid": customer_id} if customer_id is not None else None
        return await self._list(
            "/invoices", "invoice", page=page, limit=limit, lane=lane, filters=filters
        )

    async def invoice(self, invoice_id: str, *, lane: Lane = "pull") -> dict[str, Any]:
        """``GET /invoices/{id}`` (with items and payments); raises NotFound."""
        return await self._get(f"/invoices/{invoice_id}", "invoice", lane)

    async def create_invoice(self, body: Mapping[str, Any]) -> Any:
        """``POST /invoices``."""
        return (await self.http.post("/invoices", json=body, lane="push")).body

    async def update_invoice(self, invoice_id: str, body: Mapping[str, Any]) -> Any:
        """``PUT /invoices/{id}``."""
        return (await self.http.put(f"/invoices/{invoice_id}", json=body, lane="push")).body

    # --- payments

    async def payments(
        self, *, page: int, limit: int, invoice_id: str | None = None, lane: Lane = "pull"
    ) -> ListPage:
        """``GET /payments`` (filter ``invoice_id``)."""
        filters = {"invoice_id": invoice_id} if invoice_id is not None else None
        return await self._list(
            "/payments", "payment", page=page, limit=limit, lane=lane, filters=filters
        )

    async def payment(self, payment_id: str, *, lane: Lane = "pull") -> dict[str, Any]:
        """``GET /payments/{id}``; raises NotFound."""
        return await self._get(f"/payments/{payment_id}", "payment", lane)

    async def create_payment(self, body: Mapping[str, Any]) -> Any:
        """``POST /payments``."""
        return (await self.http.post("/payments", json=body, lane="push")).body

    async def update_payment(self, payment_id: str, body: Mapping[str, Any]) -> Any:
        """``PUT /payments/{id}``."""
        return (await self.http.put(f"/payments/{payment_id}", json=body, lane="push")).body

    async def delete_payment(self, payment_id: str) -> None:
        """``DELETE /payments/{id}``; raises NotFound when it is already gone."""
        await self.http.delete(f"/payments/{payment_id}", lane="push")

    # --- lookups

    async def countries(self, *, lane: Lane = "pull") -> list[Any]:
        """``GET /countries``."""
        return await self._lookup("/countries", "country", lane)

    async def currencies(self, *, lane: Lane = "pull") -> list[Any]:
        """``GET /currencies``."""
        return await self._lookup("/currencies", "currency", lane)

    async def taxes(self, *, lane: Lane = "pull") -> list[Any]:
        """``GET /taxes``."""
        return await self._lookup("/taxes", "tax", lane)

    async def payment_modes(self, *, lane: Lane = "pull") -> list[Any]:
        """``GET /payment-modes``."""
        return await self._lookup("/payment-modes", "payment mode", lane)

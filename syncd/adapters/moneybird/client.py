"""Moneybird API v2 over VendorHttp: one thin method per endpoint, returning vendor JSON.

Paths are relative to the account's ``base_url`` (``.../api/v2/{administration_id}``) and
always carry the ``.json`` format suffix; write bodies are wrapped in their root key by
``mapping``. Errors come from ``http.py`` (NotFound, SkipRecord, AuthFailed...); this
module only checks that an answer has the shape the endpoint promises (a list or an
object), treating anything else like a garbled answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from syncd.adapters.base import Lane
from syncd.adapters.http import HttpResponse, VendorHttp, vendor_message
from syncd.errors import QuotaExhausted, SyncdError, VendorUnavailable

SYNC_POST_LIMIT: Final = 100  # the synchronization POST returns at most this many records
MAX_PER_PAGE: Final = 100
_NEXT_LINK = re.compile(r'<[^>]*>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


def _segment(value: str) -> str:
    """A path segment with everything but unreserved characters percent-encoded."""
    return quote(value, safe="")


def http_date(value: str | None) -> dt.datetime | None:
    """An HTTP ``Date`` header as a UTC-aware time (whole seconds), or None."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": the sender gave no zone; HTTP dates are GMT
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def has_next_page(response: HttpResponse) -> bool:
    """Whether the ``Link`` header announces a ``rel="next"`` page."""
    return bool(_NEXT_LINK.search(response.headers.get("Link", "") or ""))


class MoneybirdClient:
    """I/O only: each method is one Moneybird endpoint."""

    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    @property
    def calls(self) -> int:
        """API calls made so far (every attempt that reached the wire)."""
        return self.http.calls

    # ------------------------------------------------------------------ shape checks

    def _list(self, response: HttpResponse, what: str) -> list[Any]:
        if not isinstance(response.body, list):
            raise VendorUnavailable(
                f"moneybird answered {what} with {type(response.body).__name__}, not a list"
            )
        return response.body

    def _object(self, response: HttpResponse, what: str) -> dict[str, Any]:
        if not isinstance(response.body, dict):
            raise VendorUnavailable(
                f"moneybird answered {what} with {type(response.body).__name__}, not an object"
            )
        return response.body

    # ------------------------------------------------------------------ generic

    async def sync_ids(
        self, resource: str, *, filters: str | None, include_archived: bool, lane: Lane
    ) -> list[Any]:
        """``GET /{resource}/synchronization.json``: every ``{id, version}``, unpaginated."""
        items, _ = await self.sync_ids_dated(
            resource, filters=filters, include_archived=include_archived, lane=lane
        )
        return items

    async def sync_ids_dated(
        self, resource: str, *, filters: str | None, include_archived: bool, lane: Lane
    ) -> tuple[list[Any], dt.datetime | None]:
        """``sync_ids``, with the vendor's own time of the answer (its ``Date`` header).

        The time is None when the header is missing or unreadable.
        """
        params: dict[str, str] = {}
        if filters:
            params["filter"] = filters
        if include_archived:
            params["include_archived"] = "true"
        response = await self.http.get(
            f"/{resource}/synchronization.json", params=params, lane=lane
        )
        items = self._list(response, f"{resource} synchronization")
        return items, http_date(response.headers.get("Date"))

    async def sync_records(self, resource: str, ids: Sequence[str], *, lane: Lane) -> list[Any]:
        """``POST /{resource}/synchronization.json``: full records of up to 100 ids."""
        if len(ids) > SYNC_POST_LIMIT:
            raise ValueError(f"at most {SYNC_POST_LIMIT} ids per synchronization POST")
        response = await self.http.post(
            f"/{resource}/synchronization.json",
            json={"ids": list(ids)},
            lane=lane,
            idempotent=True,  # a read, even though it is a POST
        )
        return self._list(response, f"{resource} synchronization POST")

    async def page(
        self, path: str, *, page: int, per_page: int, params: Mapping[str, str], lane: Lane
    ) -> tuple[list[Any], bool]:
        """One page of a paginated list, and whether a next page exists."""
        query = {**params, "page": str(page), "per_page": str(min(per_page, MAX_PER_PAGE))}
        response = await self.http.get(path, params=query, lane=lane)
        items = self._list(response, path)
        return items, has_next_page(response) and len(items) > 0

    # ------------------------------------------------------------------ contacts

    async def contacts_page(self, *, per_page: int, lane: Lane) -> list[Any]:
        """``GET /contacts.json``: the first page (a cheap authenticated call)."""
        items, _ = await self.page(
            "/contacts.json", page=1, per_page=per_page, params={}, lane=lane
        )
        return items

    async def search_contacts(self, query: str, *, lane: Lane) -> list[Any]:
        """``GET /contacts.json?query=...&include_archived=true`` (first 100 matches)."""
        items, _ = await self.page(
            "/contacts.json",
            page=1,
            per_page=MAX_PER_PAGE,
            params={"query": query, "include_archived": "true"},
            lane=lane,
        )
        return items

    async def contact(self, contact_id: str, *, lane: Lane) -> dict[str, Any]:
        """``GET /contacts/{id}.json?include_archived=true``."""
        response = await self.http.get(
            f"/contacts/{_segment(contact_id)}.json",
            params={"include_archived": "true"},
            lane=lane,
        )
        return self._object(response, "a contact")

    async def contact_by_customer_id(self, customer_id: str, *, lane: Lane) -> dict[str, Any]:
        """``GET /contacts/customer_id/{customer_id}.json``."""
        response = await self.http.get(
            f"/contacts/customer_id/{_segment(customer_id)}.json", lane=lane
        )
        return self._object(response, "a customer_id lookup")

    async def create_contact(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /contacts.json``."""
        response = await self.http.post("/contacts.json", json=body, lane="push")
        return self._object(response, "a contact create")

    async def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /contacts/{id}.json``; it sets absolute values, so it is safe to repeat."""
        response = await self.http.patch(
            f"/contacts/{_segment(contact_id)}.json", json=body, lane="push", idempotent=True
        )
        return self._object(response, "a contact update")

    async def archive_contact(self, contact_id: str) -> None:
        """``PATCH /contacts/{id}/archive.json`` (a repeat answers 400, never twice archived)."""
        await self.http.patch(
            f"/contacts/{_segment(contact_id)}/archive.json",
            lane="push",
            idempotent=True,
            expect_json=False,
        )

    # ------------------------------------------------------------------ sales invoices

    async def invoice(self, invoice_id: str, *, lane: Lane) -> dict[str, Any]:
        """``GET /sales_invoices/{id}.json``."""
        response = await self.http.get(f"/sales_invoices/{_segment(invoice_id)}.json", lane=lane)
        return self._object(response, "a sales invoice")

    async def invoice_by_reference(self, reference: str, *, lane: Lane) -> dict[str, Any]:
        """``GET /sales_invoices/find_by_reference/{reference}.json``."""
        response = await self.http.get(
            f"/sales_invoices/find_by_reference/{_segment(reference)}.json", lane=lane
        )
        return self._object(response, "a reference lookup")

    async def invoice_by_number(self, number: str, *, lane: Lane) -> dict[str, Any]:
        """``GET /sales_invoices/find_by_invoice_id/{number}.json`` (never finds drafts)."""
        response = await self.http.get(
            f"/sales_invoices/find_by_invoice_id/{_segment(number)}.json", lane=lane
        )
        return self._object(response, "an invoice number lookup")

    async def create_invoice(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /sales_invoices.json``."""
        response = await self.http.post("/sales_invoices.json", json=body, lane="push")
        return self._object(response, "a sales invoice create")

    async def update_invoice(self, invoice_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /sales_invoices/{id}.json`` (new lines would be added twice: not repeated)."""
        response = await self.http.patch(
            f"/sales_invoices/{_segment(invoice_id)}.json", json=body, lane="push"
        )
        return self._object(response, "a sales invoice update")

    async def send_invoice_manually(self, invoice_id: str) -> dict[str, Any]:
        """``PATCH /sales_invoices/{id}/send_invoice.json`` with delivery "Manual".

        Marks the invoice sent (numbered, open) without Moneybird e-mailing the customer;
        repeating it changes nothing more, so it is safe to retry.
        """
        response = await self.http.patch(
            f"/sales_invoices/{_segment(invoice_id)}/send_invoice.json",
            json={"sales_invoice_sending": {"delivery_method": "Manual"}},
            lane="push",
            idempotent=True,
        )
        return self._object(response, "a send_invoice")

    async def mark_uncollectible(self, invoice_id: str) -> dict[str, Any]:
        """``PATCH /sales_invoices/{id}/mark_as_uncollectible.json``."""
        response = await self.http.patch(
            f"/sales_invoices/{_segment(invoice_id)}/mark_as_uncollectible.json",
            lane="push",
            idempotent=True,
        )
        return self._object(response, "a mark_as_uncollectible")

    async def delete_invoice(self, invoice_id: str) -> None:
        """``DELETE /sales_invoices/{id}.json``."""
        await self.http.delete(
            f"/sales_invoices/{_segment(invoice_id)}.json", lane="push", expect_json=False
        )

    # ------------------------------------------------------------------ payments

    async def payment(self, payment_id: str, *, lane: Lane) -> dict[str, Any]:
        """``GET /payments/{id}.json``."""
        response = await self.http.get(f"/payments/{_segment(payment_id)}.json", lane=lane)
        return self._object(response, "a payment")

    async def create_payment(self, invoice_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /sales_invoices/{id}/payments.json``."""
        response = await self.http.post(
            f"/sales_invoices/{_segment(invoice_id)}/payments.json", json=body, lane="push"
        )
        return self._object(response, "a payment create")

    async def delete_payment(self, invoice_id: str, payment_id: str) -> None:
        """``DELETE /sales_invoices/{invoice_id}/payments/{id}.json``."""
        await self.http.delete(
            f"/sales_invoices/{_segment(invoice_id)}/payments/{_segment(payment_id)}.json",
            lane="push",
            expect_json=False,
        )

    # ------------------------------------------------------------------ tax rates

    async def tax_rates(self, *, lane: Lane) -> list[Any]:
        """``GET /tax_rates.json``, every page (following ``Link: rel="next"``)."""
        found: list[Any] = []
        page = 1
        while True:
            items, more = await self.page(
                "/tax_rates.json", page=page, per_page=MAX_PER_PAGE, params={}, lane=lane
            )
            found.extend(items)
            if not more or len(items) < MAX_PER_PAGE:
                return found
            page += 1
            if page > 1000:  # a vendor that announces "next" for ever
                raise VendorUnavailable("moneybird kept announcing more tax-rate pages (1000+)")


# ------------------------------------------------------------------ error classification

# How long an account waits after Moneybird refused a create for its plan's limit.
PLAN_LIMIT_PAUSE: Final = 6 * 3600.0


def classify(status: int, headers: Mapping[str, str], body: Any, text: str) -> SyncdError | None:
    """Moneybird's own outcomes, consulted by VendorHttp before its generic mapping.

    402 is Moneybird's "plan limit reached" (e.g. the free plan's monthly invoices): the
    account cannot create until the month turns or the plan is upgraded, so it is parked
    as a quota, not blamed on one record. Everything else follows the generic table
    (401 token/scope -> AuthFailed, 404 -> NotFound, 400/422 -> SkipRecord, 429, 5xx).
    """
    if status == 402:
        return QuotaExhausted(
            f"moneybird refused: the administration's plan limit is reached "
            f"(402: {vendor_message(body, text) or 'no message'})",
            retry_after=PLAN_LIMIT_PAUSE,
        )
    return None

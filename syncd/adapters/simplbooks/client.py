"""SimplBooks HTTP calls: thin methods over VendorHttp, one per endpoint, returning vendor JSON.

URLs are ``{base_url}/{category}/{action}[/{id}]`` with ``base_url`` ending in
``/{company_id}/api``. Every answer is the envelope ``{status, duration, inserted_id,
data|response|errors}``; these methods return ``data`` (reads) or ``inserted_id``
(creates). List filters travel in a JSON body on GET (``X-Input-Format: json``), as the
spec documents; they are repeated in the query string, which real clients fall back to,
so a proxy that drops GET bodies cannot silently shrink the pages to the default 10.

``classify`` is the vendor-specific error rule http.py consults first: SimplBooks answers
a missing record with 400 "... with given ID does not exist." (NotFound here), an unknown
call with 404 (a wrong base_url: Fatal, never "record not found"), and an over-large page
with 400 "The number of requested entries is too big." (``PageTooLarge``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from syncd.adapters.base import Lane
from syncd.adapters.http import Classifier, HttpResponse, VendorHttp, vendor_message
from syncd.errors import (
    AuthFailed,
    Fatal,
    NotFound,
    RateLimited,
    SkipRecord,
    SyncdError,
    Uncertain,
    VendorUnavailable,
)

TOKEN_HEADER: Final = "X-Simplbooks-Token"  # noqa: S105 - a header name, not a secret
JSON_INPUT: Final[Mapping[str, str]] = {"X-Input-Format": "json"}
MINUTE: Final = 60.0  # the vendor's rate window; no Retry-After is sent

Filter = str | int


class PageTooLarge(SkipRecord):
    """SimplBooks refused ``per_page`` as too big; the caller lists with smaller pages."""


def _messages(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, Sequence):
        return [str(e) for e in errors if isinstance(e, str | int)]
    return []


def _envelope_status(body: Any) -> int | None:
    status = body.get("status") if isinstance(body, Mapping) else None
    if isinstance(status, bool):
        return None
    if isinstance(status, int):
        return status
    if isinstance(status, str) and status.strip().isdigit():
        return int(status.strip())
    return None


def _classify(status: int, body: Any, text: str, scrub: Callable[[str], str]) -> SyncdError | None:
    inner = _envelope_status(body)
    # The envelope's status mirrors the HTTP one; believe it when a 200 carries an error.
    effective = inner if 200 <= status < 300 and inner is not None and inner >= 400 else status
    messages = _messages(body)
    message = scrub("; ".join(messages) if messages else vendor_message(body, text))
    lowered = message.lower()
    if effective == 400 and "with given id does not exist" in lowered:
        return NotFound(f"simplbooks: {message}")
    if effective == 400 and "requested entries is too big" in lowered:
        return PageTooLarge(f"simplbooks: {message}")
    if effective == 404:
        return Fatal(
            f"simplbooks did not recognise the call ({message or 'no message'}); "
            "check the account's base_url (https://app.simplbooks.com/<company_id>/api)"
        )
    if effective == status:
        return None  # the generic mapping in http.py
    if effective in (401, 403):
        return AuthFailed(f"simplbooks rejected the credentials ({effective}: {message})")
    if effective == 429:
        return RateLimited(f"simplbooks: {message}", retry_after=MINUTE)
    if effective >= 500:
        return VendorUnavailable(f"simplbooks answered {effective}: {message}")
    return SkipRecord(message or f"simplbooks answered {effective}")


def classify(status: int, headers: Mapping[str, str], body: Any, text: str) -> SyncdError | None:
    """SimplBooks' own error rules, consulted by VendorHttp before the generic mapping."""
    return _classify(status, body, text, lambda s: s)


def make_classifier(secrets: Sequence[str]) -> Classifier:
    """``classify`` that also masks ``secrets`` (the token) in the messages it builds."""
    hidden = sorted((s for s in secrets if s), key=len, reverse=True)

    def scrub(text: str) -> str:
        for secret in hidden:
            text = text.replace(secret, "***")
        return text

    def classify_scrubbed(
        status: int, headers: Mapping[str, str], body: Any, text: str
    ) -> SyncdError | None:
        return _classify(status, body, text, scrub)

    return classify_scrubbed


def _data(response: HttpResponse, what: str) -> Any:
    body = response.body
    if not isinstance(body, Mapping) or "data" not in body:
        raise VendorUnavailable(f"simplbooks answered {what} without a data field")
    return body["data"]


def _rows(response: HttpResponse, what: str) -> list[Any]:
    data = _data(response, what)
    if data is None:
        return []
    if isinstance(data, Mapping):  # PHP renders an empty or keyed array as an object
        return list(data.values())
    if not isinstance(data, list):
        raise VendorUnavailable(f"simplbooks answered {what} with data that is not a list")
    return data


def _inserted_id(response: HttpResponse, what: str) -> int:
    body = response.body
    raw = body.get("inserted_id") if isinstance(body, Mapping) else None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, Decimal) and raw == raw.to_integral_value():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        # The write was accepted but we cannot tell which record it made.
        raise Uncertain(f"simplbooks confirmed {what} without an inserted_id")
    return raw


class SimplbooksClient:
    """One SimplBooks company over one VendorHttp."""

    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    @property
    def calls(self) -> int:
        """API calls made so far (attempts that reached the wire)."""
        return self.http.calls

    async def list_page(
        self,
        category: str,
        *,
        page: int,
        per_page: int,
        filters: Mapping[str, Filter] | None = None,
        lane: Lane = "pull",
    ) -> list[Any]:
        """One page of ``{category}/list``: the wrapped rows."""
        body: dict[str, Filter] = {**(filters or {}), "page": page, "per_page": per_page}
        response = await self.http.get(
            f"/{category}/list",
            params={k: str(v) for k, v in body.items()},
            json=body,
            headers=JSON_INPUT,
            lane=lane,
        )
        return _rows(response, f"{category}/list")

    async def get(self, category: str, record_id: int, *, lane: Lane = "pull") -> Any:
        """``{category}/get/{id}`` data; NotFound when the record does not exist."""
        response = await self.http.get(f"/{category}/get/{record_id}", lane=lane)
        return _data(response, f"{category}/get")

    async def create(self, category: str, body: Mapping[str, Any]) -> int:
        """``{category}/create``; the new record's id (read it back: nothing else is returned)."""
        response = await self.http.post(
            f"/{category}/create", json=body, headers=JSON_INPUT, lane="push"
        )
        return _inserted_id(response, f"{category}/create")

    async def update(self, category: str, body: Mapping[str, Any], *, idempotent: bool) -> None:
        """``{category}/update`` (the record's id is inside the body)."""
        await self.http.post(
            f"/{category}/update",
            json=body,
            headers=JSON_INPUT,
            lane="push",
            idempotent=idempotent,
        )

    async def delete(self, category: str, record_id: int) -> None:
        """``{category}/delete/{id}``; safe to resend (a second one answers NotFound)."""
        await self.http.post(f"/{category}/delete/{record_id}", lane="push", idempotent=True)

    async def bound_receipts(self, invoice_id: int, *, lane: Lane = "pull") -> list[int]:
        """Ids of the receipts bound to an invoice (``invoices/get_bound_receipts/{id}``)."""
        response = await self.http.get(f"/invoices/get_bound_receipts/{invoice_id}", lane=lane)
        ids: list[int] = []
        for raw in _rows(response, "invoices/get_bound_receipts"):
            if isinstance(raw, str) and raw.strip().isdigit():
                raw = int(raw.strip())
            if isinstance(raw, Decimal) and raw == raw.to_integral_value():
                raw = int(raw)
            if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
                ids.append(raw)
        return ids

    async def vat_types(self, *, lane: Lane = "pull") -> list[Any]:
        """``vat_types/list`` (no paging)."""
        response = await self.http.get("/vat_types/list", lane=lane)
        return _rows(response, "vat_types/list")

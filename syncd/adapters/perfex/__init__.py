"""Perfex CRM (``/api/v1`` module): ``create_adapter``, ``auth_headers`` and ``classify``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from syncd.adapters.http import (
    Classifier,
    RateBudget,
    RequestEvent,
    RetryPolicy,
    Timeouts,
    VendorHttp,
    vendor_message,
)
from syncd.adapters.perfex.adapter import CAPABILITIES, PerfexAdapter
from syncd.adapters.perfex.client import PerfexClient
from syncd.adapters.perfex.mapping import DEFAULT_NUMBER_PADDING
from syncd.errors import AuthFailed, ConfigError, Problem, SyncdError
from syncd.settings import AccountSettings

__all__ = ["CAPABILITIES", "PerfexAdapter", "auth_headers", "classify", "create_adapter"]

VENDOR = "perfex"
# Words of the Themesic module's token errors, which come back as 404 ("Token is not found",
# "Token Time Expire.") or 403; the v1 module says "Invalid API key" with 401.
_TOKEN_WORDS = ("token", "api key", "api_key", "apikey")
DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUTS = Timeouts()


def auth_headers(account: AccountSettings) -> dict[str, str]:
    """``X-API-KEY`` from ``credentials.api_key``, else ``Authorization: Bearer`` from ``jwt``."""
    credentials = account.credentials
    if "api_key" in credentials:
        return {"X-API-KEY": credentials["api_key"].get_secret_value()}
    if "jwt" in credentials:
        return {"Authorization": f"Bearer {credentials['jwt'].get_secret_value()}"}
    raise ConfigError(
        [Problem(f"account {account.name}.credentials", "perfex needs api_key or jwt")]
    )


def classify(status: int, headers: Mapping[str, str], body: Any, text: str) -> SyncdError | None:
    """Perfex-specific outcomes, before http.py's generic table.

    A 404 that talks about the token is a rejected credential, not a missing record; so is
    the 429 Perfex sends after too many failed authentications (waiting will not help).
    The vendor's text is not quoted: it could echo what we sent.
    """
    if status not in (404, 429):
        return None
    message = vendor_message(body, text).lower()
    if status == 404 and any(word in message for word in _TOKEN_WORDS):
        return AuthFailed("perfex rejected the API credentials (404 with a token error)")
    if status == 429 and "authentication" in message:
        return AuthFailed("perfex refuses this client after too many failed authentications (429)")
    return None


def _classifier(account: str) -> Classifier:
    """``classify`` with the account named in its auth failures, as http.py names it."""

    def classify_for(
        status: int, headers: Mapping[str, str], body: Any, text: str
    ) -> SyncdError | None:
        verdict = classify(status, headers, body, text)
        if isinstance(verdict, AuthFailed):
            return AuthFailed(str(verdict).replace("perfex ", f"perfex account {account}: ", 1))
        return verdict

    return classify_for


def create_adapter(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: RateBudget | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry: RetryPolicy = DEFAULT_RETRY,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    observer: Callable[[RequestEvent], None] | None = None,
    number_padding: int = DEFAULT_NUMBER_PADDING,
) -> PerfexAdapter:
    """A Perfex adapter for ``account`` over the application's one ``session``.

    ``number_padding`` is the company's invoice number padding (Setup > Finance > Invoices),
    which the API does not expose; Perfex's default is 6.
    """
    http = VendorHttp(
        session,
        account=account.name,
        vendor=VENDOR,
        base_url=account.base_url,
        auth_headers=auth_headers(account),
        budget=budget,
        timeouts=timeouts,
        retry=retry,
        classify=_classifier(account.name),
        sleep=sleep,
        observer=observer,
    )
    return PerfexAdapter(PerfexClient(http), account=account.name, number_padding=number_padding)

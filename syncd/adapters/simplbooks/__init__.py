"""SimplBooks adapter package: ``create_adapter``, ``auth_headers`` and ``classify``."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from syncd.adapters.base import VendorAdapter
from syncd.adapters.http import RateBudget, RetryPolicy, VendorHttp
from syncd.adapters.simplbooks.adapter import (
    CAPABILITIES,
    MAX_PAGE_SIZE,
    VENDOR,
    SimplbooksAdapter,
)
from syncd.adapters.simplbooks.client import (
    TOKEN_HEADER,
    PageTooLarge,
    SimplbooksClient,
    classify,
    make_classifier,
)
from syncd.settings import AccountSettings

__all__ = [
    "CAPABILITIES",
    "MAX_PAGE_SIZE",
    "VENDOR",
    "PageTooLarge",
    "SimplbooksAdapter",
    "SimplbooksClient",
    "auth_headers",
    "classify",
    "create_adapter",
]


def auth_headers(account: AccountSettings) -> dict[str, str]:
    """``X-Simplbooks-Token`` from the account's ``token`` credential."""
    return {TOKEN_HEADER: account.credentials["token"].get_secret_value()}


def create_adapter(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: RateBudget | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry: RetryPolicy | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> VendorAdapter:
    """A SimplBooks adapter for ``account`` over the application's shared ``session``."""
    headers: Mapping[str, str] = auth_headers(account)
    http = VendorHttp(
        session,
        account=account.name,
        vendor=VENDOR,
        base_url=account.base_url,
        auth_headers=headers,
        budget=budget,
        retry=retry if retry is not None else RetryPolicy(),
        classify=make_classifier(tuple(headers.values())),
        sleep=sleep,
    )
    client = SimplbooksClient(http)
    if clock is None:
        return SimplbooksAdapter(client, account=account.name)
    return SimplbooksAdapter(client, account=account.name, clock=clock)

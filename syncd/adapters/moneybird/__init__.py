"""Moneybird API v2 adapter: ``create_adapter``, ``auth_headers`` and ``classify``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from syncd.adapters.http import RateBudget, RequestEvent, VendorHttp
from syncd.adapters.moneybird.adapter import CAPABILITIES, MoneybirdAdapter
from syncd.adapters.moneybird.client import MoneybirdClient, classify
from syncd.errors import ConfigError, Problem
from syncd.settings import AccountSettings

__all__ = ["CAPABILITIES", "MoneybirdAdapter", "auth_headers", "classify", "create_adapter"]

VENDOR = "moneybird"


def auth_headers(account: AccountSettings) -> dict[str, str]:
    """``Authorization: Bearer <token>`` from the account's ``credentials.token``."""
    token = account.credentials.get("token")
    if token is None or not token.get_secret_value():
        raise ConfigError(
            [
                Problem(
                    f"account {account.name}: credentials.token", "missing; moneybird needs token"
                )
            ]
        )
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def create_adapter(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: RateBudget | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    observer: Callable[[RequestEvent], None] | None = None,
) -> MoneybirdAdapter:
    """A Moneybird adapter for ``account`` over the application's one ClientSession."""
    if account.vendor != VENDOR:
        raise ValueError(f"account {account.name} is a {account.vendor} account, not moneybird")
    http = VendorHttp(
        session,
        account=account.name,
        vendor=VENDOR,
        base_url=account.base_url,
        auth_headers=auth_headers(account),
        budget=budget,
        classify=classify,
        sleep=sleep,
        observer=observer,
    )
    return MoneybirdAdapter(MoneybirdClient(http), account=account.name)

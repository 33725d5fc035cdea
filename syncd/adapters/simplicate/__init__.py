"""Simplicate API v2 adapter: ``create_adapter``, its auth headers and error classifier."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp

from syncd.adapters.http import RateBudget, RetryPolicy, Timeouts, VendorHttp, vendor_message
from syncd.adapters.simplicate.adapter import CAPABILITIES, SimplicateAdapter
from syncd.adapters.simplicate.client import SimplicateClient
from syncd.errors import AuthFailed, SyncdError
from syncd.settings import AccountSettings

__all__ = ["CAPABILITIES", "SimplicateAdapter", "auth_headers", "classify", "create_adapter"]

VENDOR: Final = "simplicate"
_CREDENTIAL_WORDS: Final = re.compile(
    r"authentication[- ](key|secret)|api[- ]?key|api[- ]secret", re.IGNORECASE
)


def auth_headers(account: AccountSettings) -> dict[str, str]:
    """``Authentication-Key`` and ``Authentication-Secret`` from the account's credentials."""
    try:
        key = account.credentials["key"]
        secret = account.credentials["secret"]
    except KeyError as exc:
        raise ValueError(
            f"simplicate account {account.name} needs credentials key and secret "
            f"(missing {exc.args[0]!r})"
        ) from None
    return {
        "Authentication-Key": key.get_secret_value(),
        "Authentication-Secret": secret.get_secret_value(),
    }


def classify(status: int, headers: Mapping[str, str], body: Any, text: str) -> SyncdError | None:
    """Simplicate answers bad credentials with 401, which the generic rules handle.

    Only a refusal other than 401/403 that speaks of the key or secret (a proxy or an
    older API version answering 400) is turned into ``AuthFailed`` here. The message is
    fixed text: the vendor's own might echo a credential back.
    """
    if status in (400, 422) and _CREDENTIAL_WORDS.search(vendor_message(body, text)):
        return AuthFailed(f"{VENDOR} rejected the credentials ({status}: key or secret refused)")
    return None


def create_adapter(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: RateBudget | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
) -> SimplicateAdapter:
    """A Simplicate adapter for ``account`` over the application's one ``session``."""
    http = VendorHttp(
        session,
        account=account.name,
        vendor=VENDOR,
        base_url=account.base_url,
        auth_headers=auth_headers(account),
        budget=budget,
        timeouts=timeouts or Timeouts(),
        retry=retry or RetryPolicy(),
        classify=classify,
        sleep=sleep,
    )
    return SimplicateAdapter(SimplicateClient(http), account=account.name)

"""Vendor slug -> adapter factory, imported only when an account of that vendor is built.

Each vendor package exports ``create_adapter(account, session, *, budget, sleep=...)``
returning a ``VendorAdapter``. The registry names it as ``"module:function"`` so that
starting syncd for one vendor never imports the other three.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Protocol

import aiohttp

from syncd.adapters.base import Capabilities, VendorAdapter
from syncd.adapters.http import RateBudget
from syncd.errors import ConfigError, Problem
from syncd.settings import AccountSettings

__all__ = [
    "FACTORIES",
    "AdapterFactory",
    "create_adapter",
    "load_factory",
    "vendor_capabilities",
    "vendors",
]

FACTORIES: Mapping[str, str] = MappingProxyType(
    {
        "simplicate": "syncd.adapters.simplicate:create_adapter",
        "moneybird": "syncd.adapters.moneybird:create_adapter",
        "perfex": "syncd.adapters.perfex:create_adapter",
        "simplbooks": "syncd.adapters.simplbooks:create_adapter",
        "fake": "syncd.adapters.fake:create_adapter",
    }
)


class AdapterFactory(Protocol):
    """What every vendor package's ``create_adapter`` looks like."""

    def __call__(
        self,
        account: AccountSettings,
        session: aiohttp.ClientSession,
        *,
        budget: RateBudget | None,
        sleep: Callable[[float], Awaitable[None]] = ...,
    ) -> VendorAdapter: ...


def vendors(factories: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The vendor slugs the registry knows, sorted."""
    return tuple(sorted(FACTORIES if factories is None else factories))


def _unknown(vendor: str, where: str, known: Mapping[str, str]) -> ConfigError:
    expected = ", ".join(vendors(known))
    return ConfigError([Problem(where, f"unknown vendor {vendor!r}; expected one of {expected}")])


def load_factory(
    vendor: str, *, factories: Mapping[str, str] | None = None, where: str = "vendor"
) -> AdapterFactory:
    """Import and return the factory of ``vendor``.

    Raises ``ConfigError`` for a vendor the registry does not know, or whose adapter
    package is not there; ``where`` is the config path named in the problem.
    """
    known = FACTORIES if factories is None else factories
    target = known.get(vendor)
    if target is None:
        raise _unknown(vendor, where, known)
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the adapter package itself being absent is a setup problem; a missing
        # import inside it is a bug and propagates as is.
        missing = exc.name or ""
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise
        raise ConfigError(
            [Problem(where, f"the {vendor} adapter ({module_name}) is not installed")]
        ) from None
    factory = getattr(module, attribute or "create_adapter", None)
    if not callable(factory):
        raise TypeError(f"{module_name} has no callable {attribute or 'create_adapter'}")
    return factory  # type: ignore[no-any-return]


def vendor_capabilities(
    vendor: str, *, factories: Mapping[str, str] | None = None
) -> Capabilities | None:
    """The fixed capabilities a vendor package declares (``CAPABILITIES``), if it does.

    A vendor whose capabilities depend on the instance (the in-memory fake) has none.
    """
    known = FACTORIES if factories is None else factories
    target = known.get(vendor)
    if target is None:
        return None
    try:
        module = importlib.import_module(target.partition(":")[0])
    except ModuleNotFoundError:
        return None
    found = getattr(module, "CAPABILITIES", None)
    return found if isinstance(found, Capabilities) else None


def create_adapter(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: RateBudget | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    factories: Mapping[str, str] | None = None,
) -> VendorAdapter:
    """Build the adapter of ``account`` over the shared ``session`` and its ``budget``."""
    factory = load_factory(
        account.vendor, factories=factories, where=f"account {account.name}: vendor"
    )
    return factory(account, session, budget=budget, sleep=sleep)

"""Vendor name -> emulator class, imported lazily, and the sandbox's fixed default credentials."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncd.sandbox.base import VendorEmulator

# "module:Class"; imported only when a sandbox serving that vendor is built.
EMULATORS: Mapping[str, str] = MappingProxyType(
    {
        "simplicate": "syncd.sandbox.simplicate:SimplicateEmulator",
        "moneybird": "syncd.sandbox.moneybird:MoneybirdEmulator",
        "perfex": "syncd.sandbox.perfex:PerfexEmulator",
        "simplbooks": "syncd.sandbox.simplbooks:SimplbooksEmulator",
    }
)

# Fixed, printed by `syncd sandbox`; override per vendor with SandboxOptions.credentials.
# Perfex accepts either the API key (X-API-KEY) or the JWT (Authorization: Bearer).
DEFAULT_CREDENTIALS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "simplicate": MappingProxyType(
            {"key": "sandbox-simplicate-key", "secret": "sandbox-simplicate-secret"}
        ),
        "moneybird": MappingProxyType({"token": "sandbox-moneybird-token"}),
        "perfex": MappingProxyType({"api_key": "sandbox-perfex-key", "jwt": "sandbox-perfex-jwt"}),
        "simplbooks": MappingProxyType({"token": "sandbox-simplbooks-token"}),
    }
)


def emulator_class(vendor: str) -> type[VendorEmulator]:
    """Import and return the emulator class for ``vendor``; KeyError for an unknown vendor."""
    from syncd.sandbox.base import VendorEmulator  # lazy: base imports this module lazily too

    target = EMULATORS[vendor]
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, VendorEmulator)):
        raise TypeError(f"{target} is not a VendorEmulator subclass")
    return cls


def credentials_for(
    vendor: str, overrides: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """The credentials a client should use for ``vendor``: the defaults, then any overrides."""
    merged = dict(DEFAULT_CREDENTIALS[vendor])
    if overrides:
        merged.update(overrides.get(vendor, {}))
    return merged

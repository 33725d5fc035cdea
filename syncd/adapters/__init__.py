"""Vendor adapters: the contract (base), the HTTP layer, rate budgets, and the registry."""

from __future__ import annotations

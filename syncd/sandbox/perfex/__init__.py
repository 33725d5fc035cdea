"""Perfex CRM (``/api/v1`` module) emulator for the vendor sandbox."""

from __future__ import annotations

from syncd.sandbox.perfex.emulator import PerfexEmulator, PerfexQuirks

__all__ = ["PerfexEmulator", "PerfexQuirks"]

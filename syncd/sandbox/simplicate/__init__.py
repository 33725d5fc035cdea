"""Simplicate API v2 emulator for the vendor sandbox."""

from __future__ import annotations

from syncd.sandbox.simplicate.emulator import RESOURCES, SimplicateEmulator, SimplicateQuirks

__all__ = ["RESOURCES", "SimplicateEmulator", "SimplicateQuirks"]

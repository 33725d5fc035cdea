"""Faithful in-memory emulators of the four vendor APIs, for tests and the demo."""

from __future__ import annotations

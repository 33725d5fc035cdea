"""Tests of the canonical store."""

from __future__ import annotations

"""The canonical store: engine and session factories, tables, and schema migrations."""

from __future__ import annotations

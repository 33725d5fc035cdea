"""syncd: two-way sync of contacts and invoices between CRM/PSA and bookkeeping systems."""

from __future__ import annotations

__version__ = "0.1.0"

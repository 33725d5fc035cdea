"""Moneybird API v2 emulator for the vendor sandbox.

Routes, relative to the framework's prefix ``/moneybird/api/v2/{administration_id}``; every
path needs the ``.json`` suffix (``MoneybirdQuirks.require_json_suffix``), anything else
is a 404 ``{"error": "Not Found"}``:

- ``GET /contacts.json`` (page, per_page, query, include_archived); ``POST /contacts.json``
- ``GET /contacts/filter.json`` (filter, query, include_archived, page, per_page)
- ``GET|POST /contacts/synchronization.json`` (ids+versions; full records, at most 100)
- ``GET /contacts/customer_id/{customer_id}.json``
- ``GET|PATCH|DELETE /contacts/{id}.json``; ``PATCH /contacts/{id}/archive.json``
- ``POST /contacts/{contact_id}/contact_people.json``;
  ``GET|PATCH|DELETE /contacts/{contact_id}/contact_people/{id}.json``
- ``GET /sales_invoices.json`` (filter with the ``period:this_year`` default, page, per_page);
  ``POST /sales_invoices.json``
- ``GET|POST /sales_invoices/synchronization.json``
- ``GET /sales_invoices/find_by_invoice_id/{number}.json``,
  ``GET /sales_invoices/find_by_reference/{reference}.json``
- ``GET|PATCH|DELETE /sales_invoices/{id}.json``; ``PATCH .../send_invoice.json``,
  ``PATCH .../mark_as_uncollectible.json``, ``PATCH .../register_payment.json`` (deprecated)
- ``POST /sales_invoices/{id}/payments.json``; ``DELETE /sales_invoices/{id}/payments/{pid}.json``
- ``GET /payments/{id}.json``; ``GET /tax_rates.json`` (filter, page, per_page)

Control resources (``mutate``/``create``/``delete``/``archive``): ``contacts`` (mutate takes
the PATCH attributes plus ``archived: bool``), ``contact_people`` (create needs
``contact_id``), ``sales_invoices`` (PATCH attributes plus ``send: true`` or
``state: "open" | "uncollectible"``), ``payments`` (delete only; add them with
``register_payment``) and ``tax_rates`` (mutate ``name``/``active``/``show_tax``). ``dump()``
returns those five lists in the vendor's response shapes.
"""

from __future__ import annotations

from syncd.sandbox.moneybird.emulator import MoneybirdEmulator
from syncd.sandbox.moneybird.store import MoneybirdQuirks

__all__ = ["MoneybirdEmulator", "MoneybirdQuirks"]

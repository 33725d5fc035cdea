"""The Moneybird API v2 emulator: routes, auth, the 429 and the control hooks."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from syncd.sandbox.base import (
    Clock,
    RateDecision,
    RateWindow,
    SandboxOptions,
    VendorEmulator,
    VendorSeed,
)
from syncd.sandbox.moneybird.formats import (
    ApiError,
    bad_param,
    cents,
    invalid_param,
    parse_bool,
    parse_date,
    parse_filter,
    symbolic_error,
)
from syncd.sandbox.moneybird.store import (
    CONTACT_WRITABLE,
    INVOICE_WRITABLE,
    PERSON_FIELDS,
    MoneybirdQuirks,
    MoneybirdStore,
    Record,
)

ALL_SCOPES = frozenset({"sales_invoices", "documents", "estimates", "bank", "settings"})
CONTACT_SCOPES = ("estimates", "sales_invoices", "documents", "bank", "settings")
TAX_RATE_SCOPES = ("settings", "sales_invoices", "documents", "estimates")
# Seen from a client library's bug report (picqer/moneybird-php-client#188); the body for a
# missing header is not documented, so it gets the same one [I].
INVALID_TOKEN_BODY = {"error": "token is invalid", "symbolic": {"request": "invalid_grant"}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _no_content() -> web.Response:
    return web.Response(status=204)


def _join_any(scopes: tuple[str, ...]) -> str:
    return scopes[0] if len(scopes) == 1 else f"{', '.join(scopes[:-1])} or {scopes[-1]}"


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        # [I] The vendor's body for unparsable JSON is not documented.
        raise bad_param("body is not valid JSON") from None


def _root(body: Any, key: str, label: str) -> Any:
    """The resource root key of a request body: ``{"contact": {...}}``."""
    if not isinstance(body, dict) or body.get(key) is None:
        raise symbolic_error(400, f"{label} is required", key, "required")
    return body[key]


class MoneybirdEmulator(VendorEmulator):
    """Moneybird API v2 for one administration (see the package docstring for the routes)."""

    name = "moneybird"
    default_rate_windows = (RateWindow(requests=150, per_seconds=300.0),)

    def __init__(
        self, options: SandboxOptions, clock: Clock, quirks: MoneybirdQuirks | None = None
    ) -> None:
        super().__init__(options, clock)
        self.quirks = quirks or MoneybirdQuirks()
        self.store = MoneybirdStore(
            options.moneybird_administration_id, clock, self.quirks, seed=options.seed
        )

    # ------------------------------------------------------------ credentials and auth

    def _scopes(self) -> frozenset[str]:
        """Granted scopes: ``credentials["moneybird"]["scopes"]`` (space/comma list), else all."""
        raw = self.options.credentials.get(self.name, {}).get("scopes")
        if raw is None:
            return ALL_SCOPES
        return frozenset(s for s in raw.replace(",", " ").split() if s)

    def check_auth(self, request: web.Request) -> web.Response | None:
        expected = self.credential("token")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            return _json(INVALID_TOKEN_BODY, 401)
        needed = self._scopes_for(request.path)
        if needed and not set(needed) & self._scopes():
            return _json({"error": f"No access to {_join_any(needed)}"}, 401)
        return None

    @staticmethod
    def _scopes_for(path: str) -> tuple[str, ...]:
        if "/sales_invoices" in path or "/payments/" in path:
            return ("sales_invoices",)
        if "/contacts" in path:
            return CONTACT_SCOPES
        if "/tax_rates" in path:
            return TAX_RATE_SCOPES
        return ()

    def rate_limited_response(self, decision: RateDecision) -> web.Response:
        now = self.clock().timestamp()
        reset_epoch = math.ceil(now + decision.reset_seconds)
        wait = max(1, math.ceil(decision.reset_seconds))
        headers = {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(max(0, decision.remaining)),
            "RateLimit-Reset": str(reset_epoch),
            "Retry-After": str(reset_epoch if self.quirks.retry_after_epoch else wait),
        }
        # The body is a bare JSON string.
        return _json("Retry later", 429, headers)

    def is_write(self, request: web.Request) -> bool:
        # Fetching records by id is a POST that reads.
        if request.path.endswith(("/synchronization.json", "/synchronization")):
            return False
        return super().is_write(request)

    # ------------------------------------------------------------ routing

    def build_routes(self, app: web.Application) -> None:
        suffixes = [".json"] if self.quirks.require_json_suffix else [".json", ""]
        table: list[tuple[str, tuple[tuple[str, Handler], ...]]] = [
            ("/contacts", (("GET", self._list_contacts), ("POST", self._create_contact))),
            ("/contacts/filter", (("GET", self._filter_contacts),)),
            (
                "/contacts/synchronization",
                (("GET", self._sync_contact_ids), ("POST", self._sync_contacts)),
            ),
            ("/contacts/customer_id/{customer_id}", (("GET", self._contact_by_customer_id),)),
            (
                "/contacts/{id}",
                (
                    ("GET", self._get_contact),
                    ("PATCH", self._update_contact),
                    ("DELETE", self._delete_contact),
                ),
            ),
            ("/contacts/{id}/archive", (("PATCH", self._archive_contact),)),
            ("/contacts/{contact_id}/contact_people", (("POST", self._create_person),)),
            (
                "/contacts/{contact_id}/contact_people/{id}",
                (
                    ("GET", self._get_person),
                    ("PATCH", self._update_person),
                    ("DELETE", self._delete_person),
                ),
            ),
            ("/sales_invoices", (("GET", self._list_invoices), ("POST", self._create_invoice))),
            (
                "/sales_invoices/synchronization",
                (("GET", self._sync_invoice_ids), ("POST", self._sync_invoices)),
            ),
            (
                "/sales_invoices/find_by_invoice_id/{invoice_id}",
                (("GET", self._invoice_by_number),),
            ),
            (
                "/sales_invoices/find_by_reference/{reference}",
                (("GET", self._invoice_by_reference),),
            ),
            (
                "/sales_invoices/{id}",
                (
                    ("GET", self._get_invoice),
                    ("PATCH", self._update_invoice),
                    ("DELETE", self._delete_invoice),
                ),
            ),
            ("/sales_invoices/{id}/send_invoice", (("PATCH", self._send_invoice),)),
            (
                "/sales_invoices/{id}/mark_as_uncollectible",
                (("PATCH", self._mark_uncollectible),),
            ),
            ("/sales_invoices/{id}/register_payment", (("PATCH", self._register_payment),)),
            ("/sales_invoices/{id}/payments", (("POST", self._create_payment),)),
            ("/sales_invoices/{id}/payments/{payment_id}", (("DELETE", self._delete_payment),)),
            ("/payments/{id}", (("GET", self._get_payment),)),
            ("/tax_rates", (("GET", self._list_tax_rates),)),
        ]
        for suffix in suffixes:
            for path, methods in table:
                for method, handler in methods:
                    app.router.add_route(method, path + suffix, self._api(handler))
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    def _api(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.store.tick()
            try:
                return await handler(request)
            except ApiError as exc:
                return _json(exc.body, exc.status)

        return wrapped

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        # [I] Unknown paths, and paths without the ".json" format suffix.
        return _json({"error": "Not Found"}, 404)

    def _write(self) -> None:
        self.counters.writes += 1

    # ------------------------------------------------------------ query helpers

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int) -> int:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit():
            raise bad_param(f"{name} is invalid, {name} does not have a valid value")
        return int(raw)

    @staticmethod
    def _flag(request: web.Request, name: str) -> bool:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return False
        return parse_bool(raw, name)

    def _paginate(
        self, request: web.Request, records: list[Record], render: Callable[[Record], Record]
    ) -> web.Response:
        per_page = self._int_param(request, "per_page", self.quirks.default_per_page)
        if not 1 <= per_page <= self.quirks.max_per_page:
            raise bad_param("per_page does not have a valid value")
        page = self._int_param(request, "page", 1)
        if page < 1:
            raise bad_param("page does not have a valid value")
        start = (page - 1) * per_page
        chunk = records[start : start + per_page]
        links: list[str] = []
        if page > 1:
            links.append(f'<{self._page_url(request, page - 1, per_page)}>; rel="prev"')
        if start + per_page < len(records):
            links.append(f'<{self._page_url(request, page + 1, per_page)}>; rel="next"')
        headers = {"Link": ", ".join(links)} if links else None
        return _json([render(r) for r in chunk], headers=headers)

    @staticmethod
    def _page_url(request: web.Request, page: int, per_page: int) -> str:
        """The same request on another page; the query is fully percent-encoded, so the
        commas and colons of a ``filter`` cannot break a naive Link-header parser."""
        pairs = [(k, v) for k, v in request.query.items() if k not in ("page", "per_page")]
        pairs += [("page", str(page)), ("per_page", str(per_page))]
        return f"{request.url.with_query(None)}?{urlencode(pairs, quote_via=quote)}"

    @staticmethod
    def _ids_body(body: Any) -> list[str]:
        if not isinstance(body, dict) or body.get("ids") is None:
            raise symbolic_error(400, "Ids is required", "ids", "required")
        ids = body["ids"]
        if not isinstance(ids, list):
            raise invalid_param("ids")
        wanted: list[str] = []
        for value in ids:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise invalid_param("ids")
            wanted.append(str(value))
        return wanted

    # ------------------------------------------------------------ contacts

    async def _list_contacts(self, request: web.Request) -> web.StreamResponse:
        records = self.store.contacts_matching(
            None, request.query.get("query"), self._flag(request, "include_archived")
        )
        return self._paginate(request, records, self.store.render_contact)

    async def _filter_contacts(self, request: web.Request) -> web.StreamResponse:
        records = self.store.contacts_matching(
            parse_filter(request.query.get("filter")),
            request.query.get("query"),
            self._flag(request, "include_archived"),
        )
        return self._paginate(request, records, self.store.render_contact)

    async def _sync_contact_ids(self, request: web.Request) -> web.StreamResponse:
        records = self.store.contacts_matching(
            parse_filter(request.query.get("filter")), None, self._flag(request, "include_archived")
        )
        return _json([{"id": r["id"], "version": r["version"]} for r in records])

    async def _sync_contacts(self, request: web.Request) -> web.StreamResponse:
        wanted = set(self._ids_body(await _body(request)))
        found = [r for r in self.store.contacts_matching(None, None, True) if r["id"] in wanted]
        limit = self.quirks.sync_post_limit
        return _json([self.store.render_contact(r) for r in found[:limit]])

    async def _contact_by_customer_id(self, request: web.Request) -> web.StreamResponse:
        record = self.store.contact_by_customer_id(request.match_info["customer_id"])
        return _json(self.store.render_contact(record))

    async def _get_contact(self, request: web.Request) -> web.StreamResponse:
        include = self._flag(request, "include_archived")
        if not self.quirks.archived_contact_get_needs_flag:
            include = True
        record = self.store.contact(request.match_info["id"], include_archived=include)
        return _json(self.store.render_contact(record))

    async def _create_contact(self, request: web.Request) -> web.StreamResponse:
        attrs = _root(await _body(request), "contact", "Contact")
        record = self.store.create_contact(attrs)
        self._write()
        return _json(self.store.render_contact(record), 201)

    async def _update_contact(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        self.store.contact(request.match_info["id"])
        record = self.store.update_contact(
            request.match_info["id"], _root(body, "contact", "Contact")
        )
        self._write()
        return _json(self.store.render_contact(record))

    async def _delete_contact(self, request: web.Request) -> web.StreamResponse:
        self.store.delete_contact(request.match_info["id"])
        self._write()
        return _no_content()

    async def _archive_contact(self, request: web.Request) -> web.StreamResponse:
        self.store.archive_contact(request.match_info["id"])
        self._write()
        return _no_content()

    async def _create_person(self, request: web.Request) -> web.StreamResponse:
        attrs = _root(await _body(request), "contact_person", "Contact person")
        person = self.store.create_person(request.match_info["contact_id"], attrs)
        self._write()
        return _json(self.store.render_person(person), 201)

    async def _get_person(self, request: web.Request) -> web.StreamResponse:
        person = self.store.person(request.match_info["contact_id"], request.match_info["id"])
        return _json(self.store.render_person(person))

    async def _update_person(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        contact_id, person_id = request.match_info["contact_id"], request.match_info["id"]
        self.store.person(contact_id, person_id, missing_field="contact_person_id")
        attrs = _root(body, "contact_person", "Contact person")
        person = self.store.update_person(contact_id, person_id, attrs)
        self._write()
        return _json(self.store.render_person(person))

    async def _delete_person(self, request: web.Request) -> web.StreamResponse:
        self.store.delete_person(request.match_info["contact_id"], request.match_info["id"])
        self._write()
        return _no_content()

    # ------------------------------------------------------------ sales invoices

    async def _list_invoices(self, request: web.Request) -> web.StreamResponse:
        records = self.store.invoices_matching(parse_filter(request.query.get("filter")))
        return self._paginate(request, records, self.store.render_invoice)

    async def _sync_invoice_ids(self, request: web.Request) -> web.StreamResponse:
        filters = parse_filter(request.query.get("filter"))
        records = self.store.invoices_matching(filters, sync=True)
        return _json([{"id": r["id"], "version": r["version"]} for r in records])

    async def _sync_invoices(self, request: web.Request) -> web.StreamResponse:
        wanted = set(self._ids_body(await _body(request)))
        found = [r for r in self.store.invoices_matching({}) if r["id"] in wanted]
        limit = self.quirks.sync_post_limit
        return _json([self.store.render_invoice(r) for r in found[:limit]])

    async def _invoice_by_number(self, request: web.Request) -> web.StreamResponse:
        record = self.store.invoice_by_number(request.match_info["invoice_id"])
        return _json(self.store.render_invoice(record))

    async def _invoice_by_reference(self, request: web.Request) -> web.StreamResponse:
        record = self.store.invoice_by_reference(request.match_info["reference"])
        return _json(self.store.render_invoice(record))

    async def _get_invoice(self, request: web.Request) -> web.StreamResponse:
        return _json(self.store.render_invoice(self.store.invoice(request.match_info["id"])))

    async def _create_invoice(self, request: web.Request) -> web.StreamResponse:
        attrs = _root(await _body(request), "sales_invoice", "Sales invoice")
        record = self.store.create_invoice(attrs)
        self._write()
        return _json(self.store.render_invoice(record), 201)

    async def _update_invoice(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        self.store.invoice(request.match_info["id"])
        attrs = _root(body, "sales_invoice", "Sales invoice")
        record = self.store.update_invoice(request.match_info["id"], attrs)
        self._write()
        return _json(self.store.render_invoice(record))

    async def _delete_invoice(self, request: web.Request) -> web.StreamResponse:
        self.store.delete_invoice(request.match_info["id"])
        self._write()
        return _no_content()

    async def _send_invoice(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        self.store.invoice(request.match_info["id"])
        sending = body.get("sales_invoice_sending") if isinstance(body, dict) else None
        record = self.store.send_invoice(request.match_info["id"], sending)
        self._write()
        return _json(self.store.render_invoice(record))

    async def _mark_uncollectible(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        self.store.invoice(request.match_info["id"])
        raw = body.get("uncollectible_date") if isinstance(body, dict) else None
        day = None if not raw else parse_date(raw, "uncollectible_date")
        record = self.store.mark_uncollectible(request.match_info["id"], day)
        self._write()
        return _json(self.store.render_invoice(record))

    async def _create_payment(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        self.store.invoice(request.match_info["id"])
        attrs = body.get("payment") if isinstance(body, dict) else None
        payment = self.store.add_payment(request.match_info["id"], attrs)
        self._write()
        return _json(self.store.render_payment(payment), 201)

    async def _register_payment(self, request: web.Request) -> web.StreamResponse:
        # Deprecated by the vendor in favour of POST .../payments; answers 200, not 201.
        response = await self._create_payment(request)
        response.set_status(200)
        return response

    async def _delete_payment(self, request: web.Request) -> web.StreamResponse:
        self.store.delete_payment(request.match_info["id"], request.match_info["payment_id"])
        self._write()
        return _no_content()

    async def _get_payment(self, request: web.Request) -> web.StreamResponse:
        return _json(self.store.render_payment(self.store.payment(request.match_info["id"])))

    async def _list_tax_rates(self, request: web.Request) -> web.StreamResponse:
        records = self.store.tax_rates_matching(parse_filter(request.query.get("filter")))
        return self._paginate(request, records, self.store.render_tax_rate)

    # ------------------------------------------------------------ control hooks

    def load_seed(self, seed: VendorSeed) -> None:
        self.store.load_seed(seed, self.options.seed)

    def dump(self) -> dict[str, Any]:
        self.store.tick()
        return self.store.dump()

    def _control(self, what: str, action: Callable[[], Record]) -> Record:
        """Run a store operation for the control API: 404 -> KeyError, refusals -> ValueError."""
        self.store.tick()
        try:
            return action()
        except ApiError as exc:
            symbolic = exc.body.get("symbolic", {}) if isinstance(exc.body, dict) else {}
            if exc.status == 404 and "custom_fields_attributes" not in symbolic:
                raise KeyError(f"{what} not found") from None
            raise ValueError(f"{what}: {exc.message()}") from None

    @staticmethod
    def _only(resource: str, fields: dict[str, Any], allowed: frozenset[str]) -> None:
        """Control hooks refuse attributes the vendor would silently drop (e.g. ``email``)."""
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValueError(
                f"{resource} cannot set {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )

    def _person_contact(self, person_id: str) -> str:
        person = self.store.people.get(person_id)
        if person is None:
            raise KeyError(f"contact_people {person_id} not found")
        return str(person["contact_id"])

    def _human_send(self, invoice_id: str) -> Record:
        """Send as a user would from the web UI: by e-mail when the contact has an address."""
        store = self.store
        contact = store.contacts[store.invoice(invoice_id)["contact_id"]]
        manual = not (contact["send_invoices_to_email"] or "").strip()
        return store.send_invoice(invoice_id, {"delivery_method": "Manual"} if manual else {})

    def mutate(self, resource: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        store = self.store
        what = f"{resource} {record_id}"
        if resource == "contacts":
            self._only(resource, fields, CONTACT_WRITABLE | {"archived"})
            changes = dict(fields)
            archived = changes.pop("archived", None)

            def change_contact() -> Record:
                store.contact(record_id)
                if changes:
                    store.update_contact(record_id, changes)
                if archived is True and not store.contacts[record_id]["archived"]:
                    store.archive_contact(record_id)
                elif archived is False:
                    store.activate_contact(record_id)
                return store.render_contact(store.contacts[record_id])

            return self._control(what, change_contact)
        if resource == "contact_people":
            self._only(resource, fields, frozenset(PERSON_FIELDS))
            contact_id = self._person_contact(record_id)
            return self._control(
                what,
                lambda: store.render_person(store.update_person(contact_id, record_id, fields)),
            )
        if resource == "sales_invoices":
            self._only(resource, fields, INVOICE_WRITABLE | {"send", "state"})
            changes = dict(fields)
            state = changes.pop("state", None)
            send = bool(changes.pop("send", False)) or state == "open"
            if state not in (None, "open", "uncollectible"):
                raise ValueError(f"state can only become open or uncollectible, not {state!r}")

            def change_invoice() -> Record:
                store.invoice(record_id)
                if changes:
                    store.update_invoice(record_id, changes)
                if send:
                    self._human_send(record_id)
                if state == "uncollectible":
                    store.mark_uncollectible(record_id)
                return store.render_invoice(store.invoices[record_id])

            return self._control(what, change_invoice)
        if resource == "tax_rates":
            self._only(resource, fields, frozenset({"name", "active", "show_tax"}))
            return self._control(what, lambda: self._change_tax_rate(record_id, fields))
        raise ValueError(f"moneybird has no mutable resource {resource!r}")

    def _change_tax_rate(self, rate_id: str, fields: dict[str, Any]) -> Record:
        rate = self.store.tax_rates.get(rate_id)
        if rate is None:
            raise KeyError(f"tax_rates {rate_id} not found")
        if "name" in fields:
            rate["name"] = str(fields["name"])
        for key in ("active", "show_tax"):
            if key in fields:
                rate[key] = parse_bool(fields[key], key)
        rate["updated_at"] = max(
            self.store.now(), rate["updated_at"] + dt.timedelta(milliseconds=1)
        )
        return self.store.render_tax_rate(rate)

    def create(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        store = self.store
        if resource == "contacts":
            self._only(resource, fields, CONTACT_WRITABLE | {"contact_person"})
            return self._control(
                "new contact", lambda: store.render_contact(store.create_contact(fields))
            )
        if resource == "contact_people":
            self._only(resource, fields, frozenset(PERSON_FIELDS) | {"contact_id"})
            changes = dict(fields)
            contact_id = str(changes.pop("contact_id", ""))
            if contact_id not in store.contacts:
                raise KeyError(f"contacts {contact_id} not found")
            return self._control(
                "new contact person",
                lambda: store.render_person(store.create_person(contact_id, changes)),
            )
        if resource == "sales_invoices":
            self._only(resource, fields, INVOICE_WRITABLE | {"send"})
            changes = dict(fields)
            send = bool(changes.pop("send", False))

            def make_invoice() -> Record:
                record = store.create_invoice(changes)
                if send:
                    record = self._human_send(record["id"])
                return store.render_invoice(record)

            return self._control("new sales invoice", make_invoice)
        raise ValueError(
            f"moneybird control create supports contacts, contact_people and sales_invoices, "
            f"not {resource!r} (payments: use register_payment)"
        )

    def delete(self, resource: str, record_id: str) -> None:
        store = self.store
        what = f"{resource} {record_id}"

        def run(action: Callable[[], None]) -> None:
            def wrapped() -> Record:
                action()
                return {}

            self._control(what, wrapped)

        if resource == "contacts":
            run(lambda: store.delete_contact(record_id))
        elif resource == "contact_people":
            contact_id = self._person_contact(record_id)
            run(lambda: store.delete_person(contact_id, record_id))
        elif resource == "sales_invoices":
            run(lambda: store.delete_invoice(record_id))
        elif resource == "payments":
            payment = store.payments.get(record_id)
            if payment is None:
                raise KeyError(f"{what} not found")
            run(lambda: store.delete_payment(payment["invoice_id"], record_id))
        else:
            raise ValueError(f"moneybird cannot delete {resource!r}")

    def archive(self, resource: str, record_id: str) -> dict[str, Any]:
        if resource != "contacts":
            raise ValueError(f"moneybird only archives contacts, not {resource!r}")
        store = self.store
        return self._control(
            f"contacts {record_id}",
            lambda: store.render_contact(store.archive_contact(record_id)),
        )

    def register_payment(self, invoice_id: str, amount: Decimal, date: dt.date) -> dict[str, Any]:
        store = self.store

        def pay() -> Record:
            record = store.invoice(invoice_id)
            if record["state"] in ("draft", "scheduled"):
                raise symbolic_error(400, "Sales invoice is not sent yet", "state", "not_sent")
            payment = store.record_payment(record, cents(Decimal(amount)), date)
            return store.render_payment(payment)

        return self._control(f"sales_invoices {invoice_id}", pay)

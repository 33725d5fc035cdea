"""In-memory Moneybird administration: contacts, people, sales invoices, payments, tax rates."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from syncd.sandbox.base import SeedContact, SeedInvoice, VendorSeed
from syncd.sandbox.moneybird.formats import (
    UTC,
    bad_param,
    cents,
    date_or_none,
    epoch,
    filter_invalid,
    invalid_param,
    invalid_record,
    local_today,
    money,
    not_found,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_filter_time,
    parse_id,
    parse_period,
    parse_quantity,
    rf_reference,
    symbolic_error,
    timestamp,
    truncate_ms,
)

Clock = Callable[[], dt.datetime]
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MoneybirdQuirks:
    """Switchable behaviours. Defaults follow the vendor reference; [I] marks a guess."""

    # Paths need the ".json" format suffix (a third-party guide reports 404s without it).
    require_json_suffix: bool = True
    # [I] No source states the default page size; 50 is a guess. The maximum (100) is documented.
    default_per_page: int = 50
    max_per_page: int = 100
    # The spec documents Retry-After as an epoch timestamp; False sends seconds instead.
    retry_after_epoch: bool = True
    # "epoch": version == epoch seconds of updated_at, so two changes in one second share a
    # version (what the spec examples imply). "monotonic" (default): every change bumps it.
    version_mode: Literal["monotonic", "epoch"] = "monotonic"
    # Deleting a contact that has invoices archives it instead (the vendor's docs list an
    # example "archives the contact when deleting was not possible"). False: refuse with 400.
    archive_on_blocked_delete: bool = True
    # [I] GET /contacts/{id} hides archived contacts unless include_archived=true.
    archived_contact_get_needs_flag: bool = True
    # A contact with company_name, firstname and lastname gets a matching contact person.
    auto_contact_person: bool = True
    # [I] Changing a contact person does not touch the contact (spec example timestamps).
    contact_person_touches_contact: bool = False
    # [I] The sales-invoice synchronization GET applies the same period:this_year default.
    sync_default_period: bool = True
    # Seeded drafts have no invoice_date (Moneybird fills it when sending).
    seed_drafts_without_invoice_date: bool = True
    sync_post_limit: int = 100


CONTACT_STRING_FIELDS: tuple[str, ...] = (
    "company_name",
    "firstname",
    "lastname",
    "address1",
    "address2",
    "zipcode",
    "city",
    "country",
    "phone",
    "delivery_method",
    "customer_id",
    "tax_number",
    "chamber_of_commerce",
    "bank_account",
    "send_invoices_to_attention",
    "send_invoices_to_email",
    "send_estimates_to_attention",
    "send_estimates_to_email",
    "sepa_iban",
    "sepa_iban_account_name",
    "sepa_bic",
    "sepa_mandate_id",
    "sepa_sequence_type",
    "si_identifier",
    "si_identifier_type",
)
CONTACT_BOOL_FIELDS: tuple[str, ...] = ("sepa_active", "email_ubl", "direct_debit")
CONTACT_ID_FIELDS: tuple[str, ...] = ("invoice_workflow_id", "estimate_workflow_id")
# Response order of a contact's own attributes (after id and administration_id).
CONTACT_OUTPUT: tuple[str, ...] = (
    "company_name",
    "firstname",
    "lastname",
    "address1",
    "address2",
    "zipcode",
    "city",
    "country",
    "phone",
    "delivery_method",
    "customer_id",
    "tax_number",
    "chamber_of_commerce",
    "bank_account",
    "is_trusted",
    "max_transfer_amount",
    "attention",
    "email",
    "email_ubl",
    "send_invoices_to_attention",
    "send_invoices_to_email",
    "send_estimates_to_attention",
    "send_estimates_to_email",
    "direct_debit",
    "sepa_active",
    "sepa_iban",
    "sepa_iban_account_name",
    "sepa_bic",
    "sepa_mandate_id",
    "sepa_mandate_date",
    "sepa_sequence_type",
    "credit_card_number",
    "credit_card_reference",
    "credit_card_type",
    "tax_number_validated_at",
    "tax_number_valid",
    "invoice_workflow_id",
    "estimate_workflow_id",
    "si_identifier",
    "si_identifier_type",
    "moneybird_payments_mandate",
)
PERSON_FIELDS: tuple[str, ...] = ("firstname", "lastname", "phone", "email", "department")
# What a contact/sales_invoice request body may carry (the rest is silently ignored).
CONTACT_WRITABLE = frozenset((*CONTACT_STRING_FIELDS, *CONTACT_BOOL_FIELDS, *CONTACT_ID_FIELDS)) | {
    "sepa_mandate_date",
    "custom_fields_attributes",
}
INVOICE_WRITABLE = frozenset(
    {
        "contact_id",
        "contact_person_id",
        "reference",
        "invoice_date",
        "first_due_interval",
        "currency",
        "prices_are_incl_tax",
        "payment_conditions",
        "discount",
        "workflow_id",
        "document_style_id",
        "original_estimate_id",
        "invoice_sequence_id",
        "remove_invoice_sequence_id",
        "update_contact",
        "time_entry_ids",
        "custom_fields_attributes",
        "details_attributes",
    }
)
DELIVERY_METHODS = ("Email", "Simplerinvoicing", "Peppol", "Manual", "Post")
SEQUENCE_TYPES = ("RCUR", "FRST", "OOFF", "FNAL")
INVOICE_STATES = (
    "draft",
    "scheduled",
    "open",
    "pending_payment",
    "reminded",
    "late",
    "paid",
    "uncollectible",
)
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_NUMBER_FORMAT = re.compile(r"^(\d{4})-(\d+)$")
# Moneybird's own example text is not copied; this is ours, with its placeholders.
PAYMENT_CONDITIONS = (
    "Graag ontvangen wij {document.total_price} uiterlijk {document.due_date} op onze "
    "rekening, onder vermelding van {document.payment_reference}."
)
# When the administration was set up: fixed, so seeded settings do not depend on the clock.
ADMIN_CREATED = dt.datetime(2020, 1, 2, 9, 0, tzinfo=UTC)
REMINDABLE = ("open", "reminded", "late", "pending_payment")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _hex(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class MoneybirdStore:
    """One administration's records in memory, with the vendor's rules.

    Operations raise :class:`ApiError` with the vendor's own status and body; the emulator
    turns those into responses and the control hooks into KeyError/ValueError.
    """

    def __init__(
        self, administration_id: str, clock: Clock, quirks: MoneybirdQuirks, *, seed: int = 1
    ) -> None:
        self.administration_id = administration_id
        self.clock = clock
        self.quirks = quirks
        self.reset(seed)

    # ------------------------------------------------------------ ids, clock, stamps

    def reset(self, seed: int) -> None:
        """Forget every record; ids restart from the seed."""
        self._rng = random.Random(f"moneybird:{seed}")  # noqa: S311 - reproducible ids, not secrets
        # 18-digit ids well above 2**53, like the vendor's: a client that parses them as
        # floats loses digits.
        self._last_id = 400_000_000_000_000_000 + self._rng.randrange(10**17)
        self.contacts: dict[str, Record] = {}
        self.people: dict[str, Record] = {}
        self.invoices: dict[str, Record] = {}
        self.payments: dict[str, Record] = {}
        self.tax_rates: dict[str, Record] = {}
        self._draft_seq = 0
        self._number_seq: dict[int, int] = {}
        self.user_id = self.new_id()
        self.workflow_id = self.new_id()
        self.document_style_id = self.new_id()
        self.identity_id = self.new_id()
        self.revenue_ledger_id = self.new_id()
        self.payment_ledger_id = self.new_id()
        self._seed_tax_rates()

    def new_id(self) -> str:
        self._last_id += self._rng.randrange(1 << 20, 1 << 23)
        return str(self._last_id)

    @property
    def admin_number(self) -> int | str:
        """The administration id as the vendor renders it (a JSON number)."""
        adm = self.administration_id
        return int(adm) if adm.isdigit() else adm

    def now(self) -> dt.datetime:
        return truncate_ms(self.clock())

    def today(self) -> dt.date:
        return local_today(self.clock())

    def _stamp(self, record: Record, *, created: bool = False) -> None:
        """Bump updated_at (never backwards, never equal) and version."""
        now = self.now()
        previous: dt.datetime | None = record.get("updated_at")
        if previous is not None and now <= previous:
            now = previous + dt.timedelta(milliseconds=1)
        if created:
            record["created_at"] = now
        record["updated_at"] = now
        version = epoch(now)
        if self.quirks.version_mode == "monotonic" and "version" in record:
            version = max(version, int(record["version"]) + 1)
        record["version"] = version

    def _event(self, record: Record, action: str, data: dict[str, Any] | None = None) -> None:
        stamp = timestamp(self.now())
        record.setdefault("events", []).append(
            {
                "administration_id": self.admin_number,
                "user_id": self.user_id,
                "action": action,
                "link_entity_id": None,
                "link_entity_type": None,
                "data": data or {},
                "created_at": stamp,
                "updated_at": stamp,
            }
        )

    @staticmethod
    def _sorted(records: Iterable[Record]) -> list[Record]:
        return sorted(records, key=lambda r: int(r["id"]))

    # ------------------------------------------------------------ tax rates

    def _seed_tax_rates(self) -> None:
        rows: tuple[tuple[str, str | None, str, bool, str | None, str], ...] = (
            ("21% btw", "21", "sales_invoice", True, None, "NL/1a"),
            ("9% btw", "9", "sales_invoice", True, None, "NL/1b"),
            ("0% btw", "0", "sales_invoice", True, None, "NL/1e"),
            ("Btw verlegd", "0", "sales_invoice", False, None, "NL/1e"),
            ("Geen btw", None, "sales_invoice", False, None, "NL/1e"),
            ("22% btw EE", "22", "sales_invoice", True, "EE", "NL/3b"),
            ("9% btw EE", "9", "sales_invoice", True, "EE", "NL/3b"),
            ("21% btw", "21", "purchase_invoice", True, None, "NL/5b"),
            ("9% btw", "9", "purchase_invoice", True, None, "NL/5b"),
            ("0% btw", "0", "purchase_invoice", True, None, "NL/5b"),
        )
        for name, pct, kind, show, country, report in rows:
            rate_id = self.new_id()
            self.tax_rates[rate_id] = {
                "id": rate_id,
                "name": name,
                "percentage": Decimal(pct) if pct is not None else None,
                "tax_rate_type": kind,
                "show_tax": show,
                "active": True,
                "country": country,
                "created_at": ADMIN_CREATED,
                "updated_at": ADMIN_CREATED,
                "report": report,
            }

    def default_tax_rate_id(self) -> str:
        for rate in self._sorted(self.tax_rates.values()):
            if rate["tax_rate_type"] == "sales_invoice" and rate["percentage"] == 21:
                return str(rate["id"])
        raise LookupError("no default sales tax rate")

    def tax_rate_for(self, percentage: Decimal, country: str) -> str:
        """A sales rate for a percentage: the contact country's foreign rate, else domestic."""
        candidates = [
            r
            for r in self._sorted(self.tax_rates.values())
            if r["tax_rate_type"] == "sales_invoice"
            and r["active"]
            and r["percentage"] == percentage
            and r["show_tax"]
        ]
        for rate in candidates:
            if rate["country"] == country:
                return str(rate["id"])
        for rate in candidates:
            if rate["country"] is None:
                return str(rate["id"])
        if candidates:
            return str(candidates[0]["id"])
        raise ValueError(f"no sales tax rate of {percentage}% for {country}")

    def tax_rates_matching(self, filters: dict[str, str] | None) -> list[Record]:
        rates = self._sorted(self.tax_rates.values())
        for key, value in (filters or {}).items():
            rates = [r for r in rates if self._tax_rate_matches(r, key, value)]
        return rates

    @staticmethod
    def _tax_rate_matches(rate: Record, key: str, value: str) -> bool:
        if key == "name":
            return bool(rate["name"] == value)
        if key == "partial_name":
            return value.casefold() in str(rate["name"]).casefold()
        if key == "percentage":
            try:
                wanted = Decimal(value)
            except ArithmeticError:
                raise filter_invalid("Percentage is invalid") from None
            return rate["percentage"] is not None and rate["percentage"] == wanted
        if key == "tax_rate_type":
            kinds = value.split("|")
            allowed = {"all", "general_journal_document", "purchase_invoice", "sales_invoice"}
            if not set(kinds) <= allowed:
                raise filter_invalid("Tax rate type is not included in the list")
            return "all" in kinds or rate["tax_rate_type"] in kinds
        if key == "country":
            return bool(rate["country"] == value.upper())
        if key in ("show_tax", "active"):
            return bool(rate[key] == parse_bool(value, key))
        if key in ("created_after", "updated_after"):
            field = key.replace("_after", "_at")
            return bool(rate[field] > parse_filter_time(value, key))
        return True  # unknown filter keys are ignored

    def render_tax_rate(self, rate: Record) -> Record:
        return {
            "id": rate["id"],
            "administration_id": self.admin_number,
            "name": rate["name"],
            "percentage": money(rate["percentage"]) if rate["percentage"] is not None else None,
            "tax_rate_type": rate["tax_rate_type"],
            "show_tax": rate["show_tax"],
            "active": rate["active"],
            "country": rate["country"],
            "created_at": timestamp(rate["created_at"]),
            "updated_at": timestamp(rate["updated_at"]),
        }

    # ------------------------------------------------------------ contacts: reading

    def contact(self, contact_id: str, *, include_archived: bool = True) -> Record:
        record = self.contacts.get(contact_id)
        if record is None:
            raise not_found()
        if record["archived"] and not include_archived:
            raise not_found()
        return record

    def contact_by_customer_id(self, customer_id: str) -> Record:
        for record in self._sorted(self.contacts.values()):
            if record["customer_id"] == customer_id:
                return record
        raise not_found("customer_id")

    def contacts_matching(
        self, filters: dict[str, str] | None, query: str | None, include_archived: bool
    ) -> list[Record]:
        records = [
            r for r in self._sorted(self.contacts.values()) if include_archived or not r["archived"]
        ]
        for key, value in (filters or {}).items():
            records = [r for r in records if self._contact_matches(r, key, value)]
        if query:
            terms = query.casefold().split()
            records = [r for r in records if all(t in self._search_text(r) for t in terms)]
        return records

    def _search_text(self, record: Record) -> str:
        fields = (
            "company_name",
            "attention",
            "firstname",
            "lastname",
            "address1",
            "address2",
            "zipcode",
            "city",
            "country",
            "email",
            "phone",
            "customer_id",
            "tax_number",
            "chamber_of_commerce",
            "bank_account",
        )
        parts = [str(record[f]) for f in fields if record.get(f)]
        for person in self._people_of(record["id"]):
            parts.extend(str(person[f]) for f in ("firstname", "lastname") if person.get(f))
        return " ".join(parts).casefold()

    def _contact_matches(self, record: Record, key: str, value: str) -> bool:
        if key in ("created_after", "updated_after"):
            field = key.replace("_after", "_at")
            return bool(record[field] > parse_filter_time(value, key))
        if key in ("first_name", "last_name"):
            field = key.replace("_", "")
            return (record[field] or "").casefold() == value.casefold()
        if key == "contact_type":
            if value not in ("all", "company", "private_individual"):
                raise filter_invalid("Contact type is not included in the list")
            company = not _blank(record["company_name"])
            return value == "all" or company == (value == "company")
        if key == "delivery_method":
            methods = ("all", *(m.lower() for m in DELIVERY_METHODS))
            if value.lower() not in methods:
                raise filter_invalid("Delivery method is not included in the list")
            return value.lower() == "all" or (record["delivery_method"] or "").lower() == (
                value.lower()
            )
        if key == "trusted_type":
            if value not in ("all", "trusted", "not_trusted"):
                raise filter_invalid("Trusted type is not included in the list")
            return value == "all" or record["is_trusted"] == (value == "trusted")
        if key in ("invoice_workflow_id", "estimate_workflow_id"):
            return bool(record[key] == value)
        return True  # unknown filter keys are ignored

    def _people_of(self, contact_id: str) -> list[Record]:
        return self._sorted(p for p in self.people.values() if p["contact_id"] == contact_id)

    def render_contact(self, record: Record, *, events: bool = True) -> Record:
        out: Record = {"id": record["id"], "administration_id": self.admin_number}
        for key in CONTACT_OUTPUT:
            out[key] = record[key]
        out["created_at"] = timestamp(record["created_at"])
        out["updated_at"] = timestamp(record["updated_at"])
        out["version"] = record["version"]
        out["sales_invoices_url"] = (
            f"https://moneybird.com/{self.administration_id}/sales_invoices/"
            f"{_hex('contact', record['id'])}/all"
        )
        out["notes"] = []
        out["custom_fields"] = []
        out["contact_people"] = [self.render_person(p) for p in self._people_of(record["id"])]
        out["archived"] = record["archived"]
        if events:
            out["events"] = list(record["events"])
        return out

    def render_person(self, person: Record) -> Record:
        return {
            "id": person["id"],
            "contact_id": person["contact_id"],
            "administration_id": self.admin_number,
            **{key: person[key] for key in PERSON_FIELDS},
            "created_at": timestamp(person["created_at"]),
            "updated_at": timestamp(person["updated_at"]),
            "version": person["version"],
        }

    # ------------------------------------------------------------ contacts: writing

    def _blank_contact(self, empty: str | None) -> Record:
        """A new contact; the API fills unset text with "", older data often has null."""
        record: Record = {key: empty for key in CONTACT_STRING_FIELDS}
        record.update(
            {
                "id": self.new_id(),
                "country": "NL",
                "delivery_method": "Email",
                "customer_id": "",
                "is_trusted": False,
                "max_transfer_amount": None,
                "attention": empty,
                "email": empty,
                "email_ubl": True,
                "direct_debit": False,
                "sepa_active": False,
                "sepa_mandate_date": None,
                "sepa_sequence_type": "RCUR",
                "credit_card_number": empty,
                "credit_card_reference": empty,
                "credit_card_type": None,
                "tax_number_validated_at": None,
                "tax_number_valid": None,
                "invoice_workflow_id": None,
                "estimate_workflow_id": None,
                "si_identifier_type": None,
                "moneybird_payments_mandate": False,
                "archived": False,
                "events": [],
            }
        )
        return record

    def _contact_changes(self, attrs: Any, *, creating: bool) -> Record:
        """Coerce a ``contact`` body into attribute changes (400 on wrong types)."""
        if not isinstance(attrs, dict):
            raise invalid_param("contact")
        if "is_trusted" in attrs:
            raise symbolic_error(
                400,
                "An contact can only be trusted during the approval of a payment.",
                "is_trusted",
                "permission",
            )
        changes: Record = {}
        for key in CONTACT_STRING_FIELDS:
            if key not in attrs:
                continue
            value = attrs[key]
            if value is None or isinstance(value, str):
                changes[key] = value
            elif isinstance(value, int) and not isinstance(value, bool):
                changes[key] = str(value)
            else:
                raise invalid_param(f"contact[{key}]")
        if isinstance(changes.get("country"), str):
            changes["country"] = changes["country"].strip().upper()
        if "sepa_mandate_date" in attrs:
            raw = attrs["sepa_mandate_date"]
            changes["sepa_mandate_date"] = (
                None if _blank(raw) else parse_date(raw, "contact[sepa_mandate_date]").isoformat()
            )
        for key in CONTACT_BOOL_FIELDS:
            if key in attrs:
                changes[key] = parse_bool(attrs[key], f"contact[{key}]")
        for key in CONTACT_ID_FIELDS:
            if key in attrs:
                raw = attrs[key]
                changes[key] = None if _blank(raw) else parse_id(raw, f"contact[{key}]")
        self._check_custom_fields(attrs.get("custom_fields_attributes"))
        if creating and "contact_person" in attrs:
            person = attrs["contact_person"]
            if not isinstance(person, dict):
                raise invalid_param("contact[contact_person]")
            for key in ("firstname", "lastname"):
                if not isinstance(person.get(key), str):
                    raise bad_param(f"contact[contact_person][{key}] is missing")
            changes["contact_person"] = {
                "firstname": person["firstname"],
                "lastname": person["lastname"],
            }
        # Not writable through the API (e.g. ``email``, ``attention``): silently ignored.
        return changes

    @staticmethod
    def _check_custom_fields(value: Any) -> None:
        """The sandbox administration has no custom fields: any id is unknown."""
        if value is None:
            return
        items = list(value.values()) if isinstance(value, dict) else value
        if not isinstance(items, list):
            raise invalid_param("custom_fields_attributes")
        for item in items:
            if isinstance(item, dict) and item.get("id") is not None:
                raise symbolic_error(
                    404,
                    f"Custom field with id {item['id']} not found for administration",
                    "custom_fields_attributes",
                    "not_found",
                )

    def _validate_contact(self, record: Record) -> None:
        errors: dict[str, list[tuple[str, str]]] = {}
        if all(_blank(record[f]) for f in ("company_name", "firstname", "lastname")):
            for field in ("firstname", "lastname", "company_name"):
                errors[field] = [("is required", "is required")]
        country = record["country"]
        if not (isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country)):
            errors["country"] = [("is invalid", "invalid")]
        if record["delivery_method"] not in DELIVERY_METHODS:
            errors["delivery_method"] = [("is not included in the list", "inclusion")]
        if record["sepa_sequence_type"] not in SEQUENCE_TYPES:
            errors["sepa_sequence_type"] = [("is not included in the list", "inclusion")]
        for field in ("send_invoices_to_email", "send_estimates_to_email"):
            value = record[field]
            if not _blank(value) and not all(
                _EMAIL.match(part.strip()) for part in str(value).split(",")
            ):
                errors[field] = [("is invalid", "invalid")]
        mandate = record["sepa_mandate_date"]
        if mandate is not None and dt.date.fromisoformat(mandate) > self.today():
            errors["sepa_mandate_date"] = [("cannot be in the future", "not_in_future")]
        for other in self.contacts.values():
            if other["id"] != record["id"] and other["customer_id"] == record["customer_id"]:
                errors["customer_id"] = [("has already been taken", "taken")]
                break
        if errors:
            raise invalid_record(errors)

    def _next_customer_id(self) -> str:
        numbers = [
            int(c["customer_id"]) for c in self.contacts.values() if str(c["customer_id"]).isdigit()
        ]
        return str(max(numbers, default=0) + 1)

    def _after_contact_save(self, record: Record) -> None:
        record["email"] = record["send_invoices_to_email"]
        if self.quirks.auto_contact_person and not any(
            _blank(record[f]) for f in ("company_name", "firstname", "lastname")
        ):
            names = (record["firstname"], record["lastname"])
            if not any(
                (p["firstname"], p["lastname"]) == names for p in self._people_of(record["id"])
            ):
                self._new_person(record["id"], {"firstname": names[0], "lastname": names[1]})

    def create_contact(self, attrs: Any, *, empty: str | None = "") -> Record:
        changes = self._contact_changes(attrs, creating=True)
        person = changes.pop("contact_person", None)
        record = self._blank_contact(empty)
        record.update(changes)
        if _blank(record["customer_id"]):
            record["customer_id"] = self._next_customer_id()
        self._validate_contact(record)
        self._stamp(record, created=True)
        self._event(record, "contact_created")
        self.contacts[record["id"]] = record
        if person is not None:
            self._new_person(record["id"], person)
        self._after_contact_save(record)
        return record

    def update_contact(self, contact_id: str, attrs: Any) -> Record:
        record = self.contact(contact_id)
        changes = self._contact_changes(attrs, creating=False)
        updated = dict(record)
        updated.update(changes)
        if _blank(updated["customer_id"]):
            updated["customer_id"] = self._next_customer_id()
        self._validate_contact(updated)
        diff = {k: [record[k], updated[k]] for k in changes if record[k] != updated[k]}
        record.update(updated)
        self._stamp(record)
        self._event(record, "contact_changed", {"changes": diff} if diff else None)
        self._after_contact_save(record)
        return record

    def archive_contact(self, contact_id: str) -> Record:
        record = self.contact(contact_id)
        if record["archived"]:
            raise symbolic_error(400, "Contact can not be archived", "id", "can_not_be_archived")
        record["archived"] = True
        self._stamp(record)
        self._event(record, "contact_archived")
        return record

    def activate_contact(self, contact_id: str) -> Record:
        record = self.contact(contact_id)
        if record["archived"]:
            record["archived"] = False
            self._stamp(record)
            self._event(record, "contact_activated")
        return record

    def delete_contact(self, contact_id: str) -> None:
        record = self.contact(contact_id)
        if any(inv["contact_id"] == contact_id for inv in self.invoices.values()):
            if not self.quirks.archive_on_blocked_delete:
                raise symbolic_error(400, "Contact can not be deleted", "id", "can_not_be_deleted")
            if not record["archived"]:
                self.archive_contact(contact_id)
            return
        for person in self._people_of(contact_id):
            del self.people[person["id"]]
        del self.contacts[contact_id]

    # ------------------------------------------------------------ contact people

    def person(self, contact_id: str, person_id: str, *, missing_field: str = "id") -> Record:
        if contact_id not in self.contacts:
            raise not_found()
        person = self.people.get(person_id)
        if person is None or person["contact_id"] != contact_id:
            if missing_field == "contact_person_id":
                raise symbolic_error(
                    404, "contact person not found", "contact_person_id", "not_found"
                )
            raise not_found()
        return person

    def _person_changes(self, attrs: Any) -> Record:
        if not isinstance(attrs, dict):
            raise invalid_param("contact_person")
        changes: Record = {}
        for key in PERSON_FIELDS:
            if key in attrs:
                value = attrs[key]
                if value is not None and not isinstance(value, str):
                    raise invalid_param(f"contact_person[{key}]")
                changes[key] = value
        return changes

    @staticmethod
    def _validate_person(person: Record) -> None:
        errors = {
            key: [("can't be blank", "blank")]
            for key in ("firstname", "lastname")
            if _blank(person.get(key))
        }
        email = person.get("email")
        if not _blank(email) and not _EMAIL.match(str(email)):
            errors["email"] = [("is invalid", "invalid")]
        if errors:
            raise invalid_record(errors)

    def _new_person(self, contact_id: str, changes: Record) -> Record:
        person: Record = {key: None for key in PERSON_FIELDS}
        person.update(changes)
        person["id"] = self.new_id()
        person["contact_id"] = contact_id
        self._stamp(person, created=True)
        self.people[person["id"]] = person
        return person

    def create_person(self, contact_id: str, attrs: Any) -> Record:
        changes = self._person_changes(attrs)
        if contact_id not in self.contacts:
            raise invalid_record({"contact": [("must exist", "blank")]})
        self._validate_person({key: None for key in PERSON_FIELDS} | changes)
        person = self._new_person(contact_id, changes)
        self._person_touched(contact_id, "contact_person_created")
        return person

    def update_person(self, contact_id: str, person_id: str, attrs: Any) -> Record:
        person = self.person(contact_id, person_id, missing_field="contact_person_id")
        changes = self._person_changes(attrs)
        self._validate_person(person | changes)
        person.update(changes)
        self._stamp(person)
        self._person_touched(contact_id, "contact_person_updated")
        return person

    def delete_person(self, contact_id: str, person_id: str) -> None:
        self.person(contact_id, person_id)
        del self.people[person_id]
        for invoice in self.invoices.values():
            if invoice["contact_person_id"] == person_id:
                invoice["contact_person_id"] = None
        self._person_touched(contact_id, "contact_person_destroyed")

    def _person_touched(self, contact_id: str, action: str) -> None:
        if self.quirks.contact_person_touches_contact:
            record = self.contacts[contact_id]
            self._stamp(record)
            self._event(record, action)

    # ------------------------------------------------------------ sales invoices: reading

    def invoice(self, invoice_id: str) -> Record:
        record = self.invoices.get(invoice_id)
        if record is None:
            raise not_found()
        return record

    def invoice_by_number(self, number: str) -> Record:
        for record in self._sorted(self.invoices.values()):
            if record["invoice_id"] == number:
                return record
        raise symbolic_error(
            404, f"Sales invoice with invoice_id: {number} was not found", "invoice_id", "not_found"
        )

    def invoice_by_reference(self, reference: str) -> Record:
        for record in self._sorted(self.invoices.values()):
            if record["reference"] == reference:
                return record
        raise symbolic_error(
            404,
            f"Sales invoice with reference: {reference} was not found",
            "reference",
            "not_found",
        )

    def invoices_matching(
        self, filters: dict[str, str] | None, *, sync: bool = False
    ) -> list[Record]:
        """Apply a sales-invoice filter; None means "no filter given": the defaults apply.

        Any filter that is given replaces the defaults, so ``period`` then only applies
        when it is part of it.
        """
        if filters is None:
            filters = {"state": "all"}
            if not sync or self.quirks.sync_default_period:
                filters["period"] = "this_year"
        records = self._sorted(self.invoices.values())
        today = self.today()
        for key, value in filters.items():
            records = [r for r in records if self._invoice_matches(r, key, value, today)]
        return records

    def _invoice_matches(self, record: Record, key: str, value: str, today: dt.date) -> bool:
        if key == "state":
            states = value.split("|")
            if not set(states) <= {"all", *INVOICE_STATES}:
                raise filter_invalid("Status is not included in the list")
            return "all" in states or record["state"] in states
        if key == "period":
            start, end = parse_period(value, today)
            # A draft without a date only falls in a period that contains today.
            day = record["invoice_date"] or today
            return bool(start <= day <= end)
        if key == "reference":
            return record["reference"] in value.split("|")
        if key in ("contact_id", "workflow_id", "recurring_sales_invoice_id"):
            return bool(record.get(key) == value)
        if key in ("created_after", "updated_after"):
            field = key.replace("_after", "_at")
            return bool(record[field] > parse_filter_time(value, key))
        return True  # unknown filter keys are ignored

    def totals(self, record: Record) -> Record:
        """Amounts as Decimals: per detail, per tax rate and for the invoice."""
        factor = 1 - record["discount"] / 100
        incl = record["prices_are_incl_tax"]
        line_excl: dict[str, Decimal] = {}
        taxable: dict[str, Decimal] = {}
        gross_by_rate: dict[str, Decimal] = {}
        undiscounted = Decimal(0)
        for detail in record["details"]:
            rate = self.tax_rates[detail["tax_rate_id"]]
            pct = rate["percentage"] if rate["percentage"] is not None else Decimal(0)
            raw = detail["price"] * detail["amount_decimal"]
            if incl:
                excl = cents(raw * factor / (1 + pct / 100))
                plain = cents(raw / (1 + pct / 100))
                gross_by_rate[rate["id"]] = gross_by_rate.get(rate["id"], Decimal(0)) + cents(
                    raw * factor
                )
            else:
                excl = cents(raw * factor)
                plain = cents(raw)
            undiscounted += plain
            line_excl[detail["id"]] = excl
            taxable[rate["id"]] = taxable.get(rate["id"], Decimal(0)) + excl
        tax: dict[str, Decimal] = {}
        for rate_id, amount in taxable.items():
            pct = self.tax_rates[rate_id]["percentage"] or Decimal(0)
            tax[rate_id] = gross_by_rate[rate_id] - amount if incl else cents(amount * pct / 100)
        total_excl = sum(taxable.values(), Decimal(0))
        total_incl = total_excl + sum(tax.values(), Decimal(0))
        paid = sum((self.payments[p]["price"] for p in record["payment_ids"]), Decimal(0))
        return {
            "lines": line_excl,
            "taxable": taxable,
            "tax": tax,
            "excl": total_excl,
            "incl": total_incl,
            "discount": undiscounted - total_excl,
            "paid": paid,
            "unpaid": total_incl - paid,
        }

    def render_invoice(self, record: Record) -> Record:
        totals = self.totals(record)
        contact = self.contacts.get(record["contact_id"])
        person = self.people.get(record["contact_person_id"] or "")
        public = record["public_view_code"]
        token = _hex("invoice", record["id"])
        url = (
            f"https://moneybird.com/{self.administration_id}/external/"
            f"{_hex('identity', self.identity_id)}/{token}/sales_invoice"
        )
        return {
            "id": record["id"],
            "administration_id": self.admin_number,
            "contact_id": record["contact_id"],
            "contact": self.render_contact(contact, events=False) if contact else None,
            "contact_person_id": record["contact_person_id"],
            "contact_person": self.render_person(person) if person else None,
            "invoice_id": record["invoice_id"],
            "recurring_sales_invoice_id": None,
            "subscription_id": None,
            "workflow_id": record["workflow_id"],
            "document_style_id": record["document_style_id"],
            "identity_id": self.identity_id,
            "draft_id": record["draft_id"],
            "state": record["state"],
            "invoice_date": date_or_none(record["invoice_date"]),
            "due_date": record["due_date"].isoformat(),
            "payment_conditions": record["payment_conditions"],
            "payment_reference": record["payment_reference"],
            "short_payment_reference": record["short_payment_reference"],
            "reference": record["reference"],
            "language": "nl",
            "currency": record["currency"],
            "discount": money(record["discount"]),
            "original_sales_invoice_id": None,
            "paused": False,
            "paid_at": date_or_none(record["paid_at"]),
            "sent_at": date_or_none(record["sent_at"]),
            "created_at": timestamp(record["created_at"]),
            "updated_at": timestamp(record["updated_at"]),
            "public_view_code": public,
            "public_view_code_expires_at": (
                timestamp(record["public_view_code_expires_at"]) if public else None
            ),
            "version": record["version"],
            "details": [
                self._render_detail(d, totals["lines"][d["id"]])
                for d in sorted(record["details"], key=lambda d: (d["row_order"], int(d["id"])))
            ],
            "payments": [self.render_payment(self.payments[p]) for p in record["payment_ids"]],
            "total_paid": money(totals["paid"]),
            "total_unpaid": money(totals["unpaid"]),
            "total_unpaid_base": money(totals["unpaid"]),
            "prices_are_incl_tax": record["prices_are_incl_tax"],
            "total_price_excl_tax": money(totals["excl"]),
            "total_price_excl_tax_base": money(totals["excl"]),
            "total_price_incl_tax": money(totals["incl"]),
            "total_price_incl_tax_base": money(totals["incl"]),
            "total_discount": money(totals["discount"]),
            "marked_dubious_on": None,
            "marked_uncollectible_on": date_or_none(record["marked_uncollectible_on"]),
            "reminder_count": 0,
            "next_reminder": date_or_none(record["next_reminder"]),
            "original_estimate_id": record["original_estimate_id"],
            "url": url,
            "payment_url": url,
            "custom_fields": [],
            "notes": [],
            "attachments": [],
            "events": list(record["events"]),
            "tax_totals": [
                {
                    "tax_rate_id": rate_id,
                    "taxable_amount": money(amount),
                    "taxable_amount_base": money(amount),
                    "tax_amount": money(totals["tax"][rate_id]),
                    "tax_amount_base": money(totals["tax"][rate_id]),
                }
                for rate_id, amount in totals["taxable"].items()
            ],
            "time_entries": [],
        }

    def _render_detail(self, detail: Record, excl: Decimal) -> Record:
        return {
            "id": detail["id"],
            "administration_id": self.admin_number,
            "tax_rate_id": detail["tax_rate_id"],
            "ledger_account_id": detail["ledger_account_id"],
            "project_id": detail["project_id"],
            "product_id": None,
            "amount": detail["amount"],
            "amount_decimal": money(detail["amount_decimal"]),
            "description": detail["description"],
            "price": money(detail["price"]),
            "period": detail["period"],
            "row_order": detail["row_order"],
            "total_price_excl_tax_with_discount": money(excl),
            "total_price_excl_tax_with_discount_base": money(excl),
            "tax_report_reference": [self.tax_rates[detail["tax_rate_id"]]["report"]],
            "mandatory_tax_text": None,
            "created_at": timestamp(detail["created_at"]),
            "updated_at": timestamp(detail["updated_at"]),
        }

    def render_payment(self, payment: Record) -> Record:
        return {
            "id": payment["id"],
            "administration_id": self.admin_number,
            "invoice_type": "SalesInvoice",
            "invoice_id": payment["invoice_id"],
            "financial_account_id": payment["financial_account_id"],
            "user_id": self.user_id,
            "payment_transaction_id": None,
            "transaction_identifier": payment["transaction_identifier"],
            "price": money(payment["price"]),
            "price_base": money(payment["price_base"]),
            "payment_date": payment["payment_date"].isoformat(),
            "credit_invoice_id": None,
            "financial_mutation_id": payment["financial_mutation_id"],
            "ledger_account_id": payment["ledger_account_id"],
            "linked_payment_id": None,
            "manual_payment_action": payment["manual_payment_action"],
            "created_at": timestamp(payment["created_at"]),
            "updated_at": timestamp(payment["updated_at"]),
        }

    def payment(self, payment_id: str) -> Record:
        record = self.payments.get(payment_id)
        if record is None:
            raise not_found()
        return record

    # ------------------------------------------------------------ sales invoices: writing

    def _blank_invoice(self) -> Record:
        self._draft_seq += 1
        return {
            "id": self.new_id(),
            "contact_id": None,
            "contact_person_id": None,
            "invoice_id": None,
            "draft_id": self._draft_seq,
            "state": "draft",
            "invoice_date": None,
            "first_due_interval": 14,
            "due_date": self.today(),
            "payment_conditions": PAYMENT_CONDITIONS,
            "payment_reference": None,
            "short_payment_reference": None,
            "reference": None,
            "currency": "EUR",
            "discount": Decimal(0),
            "prices_are_incl_tax": False,
            "workflow_id": self.workflow_id,
            "document_style_id": self.document_style_id,
            "original_estimate_id": None,
            "paid_at": None,
            "sent_at": None,
            "public_view_code": None,
            "public_view_code_expires_at": None,
            "marked_uncollectible_on": None,
            "next_reminder": None,
            "details": [],
            "payment_ids": [],
            "events": [],
        }

    def _apply_invoice_attrs(self, record: Record, attrs: Any, *, creating: bool) -> None:
        if not isinstance(attrs, dict):
            raise invalid_param("sales_invoice")
        prefix = "sales_invoice"
        if "contact_id" in attrs:
            raw = attrs["contact_id"]
            record["contact_id"] = None if _blank(raw) else parse_id(raw, f"{prefix}[contact_id]")
        if "contact_person_id" in attrs:
            raw = attrs["contact_person_id"]
            record["contact_person_id"] = (
                None if _blank(raw) else parse_id(raw, f"{prefix}[contact_person_id]")
            )
        if "reference" in attrs:
            raw = attrs["reference"]
            if isinstance(raw, bool) or not isinstance(raw, str | int | None):
                raise invalid_param(f"{prefix}[reference]")
            record["reference"] = None if raw is None else str(raw)
        if "invoice_date" in attrs:
            raw = attrs["invoice_date"]
            record["invoice_date"] = (
                None if _blank(raw) else parse_date(raw, f"{prefix}[invoice_date]")
            )
        if "first_due_interval" in attrs:
            raw = attrs["first_due_interval"]
            if isinstance(raw, bool) or not (
                isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit())
            ):
                raise invalid_param(f"{prefix}[first_due_interval]")
            record["first_due_interval"] = int(raw)
        if "currency" in attrs:
            raw = attrs["currency"]
            if not isinstance(raw, str):
                raise invalid_param(f"{prefix}[currency]")
            record["currency"] = raw.upper()
        if "prices_are_incl_tax" in attrs:
            record["prices_are_incl_tax"] = parse_bool(
                attrs["prices_are_incl_tax"], f"{prefix}[prices_are_incl_tax]"
            )
        if "payment_conditions" in attrs:
            raw = attrs["payment_conditions"]
            if raw is not None and not isinstance(raw, str):
                raise invalid_param(f"{prefix}[payment_conditions]")
            record["payment_conditions"] = raw
        if "discount" in attrs:
            raw = attrs["discount"]
            record["discount"] = (
                Decimal(0) if _blank(raw) else parse_decimal(raw, f"{prefix}[discount]")
            )
        for key in ("workflow_id", "document_style_id", "original_estimate_id"):
            if key in attrs:
                raw = attrs[key]
                record[key] = None if _blank(raw) else parse_id(raw, f"{prefix}[{key}]")
        self._check_custom_fields(attrs.get("custom_fields_attributes"))
        if "details_attributes" in attrs:
            self._apply_details(record, attrs["details_attributes"])
        if creating or "invoice_date" in attrs or "first_due_interval" in attrs:
            base = record["invoice_date"] or self.today()
            record["due_date"] = base + dt.timedelta(days=record["first_due_interval"])

    def _apply_details(self, record: Record, value: Any) -> None:
        prefix = "sales_invoice[details_attributes]"
        if isinstance(value, dict):
            keys = sorted(
                value, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0)
            )
            items = [value[k] for k in keys]
        elif isinstance(value, list):
            items = value
        else:
            raise invalid_param(prefix)
        now = self.now()
        for index, item in enumerate(items):
            path = f"{prefix}[{index}]"
            if not isinstance(item, dict):
                raise invalid_param(path)
            destroy = parse_bool(item.get("_destroy", False), f"{path}[_destroy]")
            if not _blank(item.get("id")):
                detail_id = parse_id(item["id"], f"{path}[id]")
                found = [d for d in record["details"] if d["id"] == detail_id]
                if not found:
                    raise not_found()
                if destroy:
                    record["details"].remove(found[0])
                    continue
                self._apply_detail_fields(found[0], item, path)
                found[0]["updated_at"] = now
            elif not destroy:
                detail: Record = {
                    "id": self.new_id(),
                    "tax_rate_id": self.default_tax_rate_id(),
                    "ledger_account_id": self.revenue_ledger_id,
                    "project_id": None,
                    "amount": None,
                    "amount_decimal": Decimal(1),
                    "description": "",
                    # [I] A line without a price is a text-only line worth 0.
                    "price": Decimal(0),
                    "period": None,
                    "row_order": len(record["details"]),
                    "created_at": now,
                    "updated_at": now,
                }
                self._apply_detail_fields(detail, item, path)
                record["details"].append(detail)

    def _apply_detail_fields(self, detail: Record, item: Record, path: str) -> None:
        if "description" in item:
            raw = item["description"]
            if raw is not None and not isinstance(raw, str):
                raise invalid_param(f"{path}[description]")
            detail["description"] = raw or ""
        if "price" in item:
            detail["price"] = cents(parse_decimal(item["price"], f"{path}[price]"))
        if "amount" in item:
            detail["amount"], detail["amount_decimal"] = parse_quantity(
                item["amount"], f"{path}[amount]"
            )
        if "tax_rate_id" in item and not _blank(item["tax_rate_id"]):
            rate_id = parse_id(item["tax_rate_id"], f"{path}[tax_rate_id]")
            rate = self.tax_rates.get(rate_id)
            if rate is None or rate["tax_rate_type"] != "sales_invoice" or not rate["active"]:
                raise invalid_record({"details.tax_rate_id": [("is invalid", "invalid")]})
            detail["tax_rate_id"] = rate_id
        if "ledger_account_id" in item and not _blank(item["ledger_account_id"]):
            detail["ledger_account_id"] = parse_id(
                item["ledger_account_id"], f"{path}[ledger_account_id]"
            )
        if "project_id" in item:
            raw = item["project_id"]
            detail["project_id"] = None if _blank(raw) else parse_id(raw, f"{path}[project_id]")
        if "product_id" in item and not _blank(item["product_id"]):
            # The sandbox administration has no products.
            raise invalid_record({"details.product": [("must exist", "blank")]})
        if "period" in item:
            raw = item["period"]
            if raw is not None and not isinstance(raw, str):
                raise invalid_param(f"{path}[period]")
            detail["period"] = raw or None
        if "row_order" in item:
            raw = item["row_order"]
            if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
                raise invalid_param(f"{path}[row_order]")
            detail["row_order"] = int(raw)

    def _validate_invoice(self, record: Record) -> None:
        contact_id = record["contact_id"]
        if contact_id is None or contact_id not in self.contacts:
            raise invalid_record({"contact": [("must exist", "blank")]})
        errors: dict[str, list[tuple[str, str]]] = {}
        person_id = record["contact_person_id"]
        if person_id is not None:
            person = self.people.get(person_id)
            if person is None or person["contact_id"] != contact_id:
                errors["contact_person"] = [("must exist", "blank")]
        if not re.fullmatch(r"[A-Z]{3}", record["currency"]):
            errors["currency"] = [("is invalid", "invalid")]
        if errors:
            raise invalid_record(errors)

    def create_invoice(self, attrs: Any) -> Record:
        record = self._blank_invoice()
        self._apply_invoice_attrs(record, attrs, creating=True)
        self._validate_invoice(record)
        self._stamp(record, created=True)
        self._event(record, "sales_invoice_created")
        self.invoices[record["id"]] = record
        return record

    def update_invoice(self, invoice_id: str, attrs: Any) -> Record:
        current = self.invoice(invoice_id)
        record = copy.deepcopy(current)
        self._apply_invoice_attrs(record, attrs, creating=False)
        self._validate_invoice(record)
        self._settle(record)
        self._stamp(record)
        self._event(record, "sales_invoice_updated")
        self.invoices[invoice_id] = record
        return record

    def delete_invoice(self, invoice_id: str) -> None:
        record = self.invoice(invoice_id)
        if record["state"] == "pending_payment":
            # [I] The spec only says pending payments block deletion; this body is a guess.
            raise symbolic_error(
                400, "Sales invoice has pending payments", "sales_invoice", "pending_payments"
            )
        for payment_id in record["payment_ids"]:
            self.payments.pop(payment_id, None)
        del self.invoices[invoice_id]

    def _next_number(self, year: int) -> str:
        sequence = self._number_seq.get(year, 0) + 1
        self._number_seq[year] = sequence
        return f"{year}-{sequence:04d}"

    def _note_number(self, number: str | None) -> None:
        match = _NUMBER_FORMAT.match(number or "")
        if match:
            year, sequence = int(match.group(1)), int(match.group(2))
            self._number_seq[year] = max(self._number_seq.get(year, 0), sequence)

    def _finalize(self, record: Record, today: dt.date, *, number: str | None = None) -> None:
        """What sending does to a draft: date, number, references, state open."""
        if record["invoice_date"] is None:
            record["invoice_date"] = today
        record["due_date"] = record["invoice_date"] + dt.timedelta(
            days=record["first_due_interval"]
        )
        record["invoice_id"] = number or self._next_number(record["invoice_date"].year)
        record["draft_id"] = None
        record["state"] = "open"
        record["sent_at"] = record["sent_at"] or today
        code = _hex("payref", record["id"]).upper()
        code = "".join(c for c in code if c.isalnum())[:8]
        record["payment_reference"], record["short_payment_reference"] = rf_reference(code)
        record["public_view_code"] = f"{int(_hex('view', record['id'])[:8], 16) % 1_000_000:06d}"
        record["public_view_code_expires_at"] = truncate_ms(
            dt.datetime.combine(record["sent_at"], dt.time(12), tzinfo=UTC) + dt.timedelta(days=92)
        )
        record["next_reminder"] = record["due_date"]

    def _settle(self, record: Record) -> bool:
        """Derive paid/late/open from payments and dates; True when the state changed."""
        if record["state"] in ("draft", "scheduled"):
            return False
        before = record["state"]
        totals = self.totals(record)
        incl, unpaid = totals["incl"], totals["unpaid"]
        settled = (incl >= 0 and unpaid <= 0) or (incl < 0 and unpaid >= 0)
        if settled and (record["payment_ids"] or incl == 0):
            if record["state"] != "paid":
                record["state"] = "paid"
                dates = [self.payments[p]["payment_date"] for p in record["payment_ids"]]
                record["paid_at"] = max(dates, default=self.today())
        elif record["state"] == "paid":
            record["state"] = "open"
            record["paid_at"] = None
        if record["state"] in ("open", "late"):
            overdue = record["due_date"] < self.today()
            record["state"] = "late" if overdue else "open"
        return bool(record["state"] != before)

    def tick(self) -> None:
        """Let time pass: scheduled invoices go out, unpaid ones past due become late."""
        today = self.today()
        due = [
            r
            for r in self.invoices.values()
            if (r["state"] == "scheduled" and r["invoice_date"] <= today)
            or (r["state"] == "open" and r["due_date"] < today)
        ]
        for record in self._sorted(due):
            if record["state"] == "scheduled":
                self._finalize(record, today)
            self._settle(record)  # open past its due date always changes (late or paid)
            self._stamp(record)
            self._event(record, f"sales_invoice_state_changed_to_{record['state']}")

    def send_invoice(self, invoice_id: str, sending: Any) -> Record:
        current = self.invoice(invoice_id)
        if sending is None:
            sending = {}
        if not isinstance(sending, dict):
            raise invalid_param("sales_invoice_sending")
        record = copy.deepcopy(current)
        if not record["details"]:
            raise symbolic_error(
                400, "details cannot be empty", "sales_invoice", "details_cannot_be_empty"
            )
        contact = self.contacts[record["contact_id"]]
        method = sending.get("delivery_method") or contact["delivery_method"] or "Email"
        if method not in ("Email", "Peppol", "Manual", "Post", "Simplerinvoicing"):
            raise bad_param("sales_invoice_sending[delivery_method] does not have a valid value")
        if method == "Email":
            address = sending.get("email_address") or contact["send_invoices_to_email"]
            if _blank(address):
                raise invalid_record({"email_address": [("can't be blank", "blank")]})
        scheduled = parse_bool(
            sending.get("sending_scheduled", False), "sales_invoice_sending[sending_scheduled]"
        )
        if not _blank(sending.get("invoice_date")):
            record["invoice_date"] = parse_date(
                sending["invoice_date"], "sales_invoice_sending[invoice_date]"
            )
        today = self.today()
        if record["state"] in ("draft", "scheduled"):
            if scheduled and record["invoice_date"] is not None and record["invoice_date"] > today:
                record["state"] = "scheduled"
                record["due_date"] = record["invoice_date"] + dt.timedelta(
                    days=record["first_due_interval"]
                )
            else:
                self._finalize(record, today)
                self._settle(record)
        self._stamp(record)
        action = "sales_invoice_send_email" if method == "Email" else "sales_invoice_send_manually"
        self._event(record, action)
        if record["state"] != current["state"]:
            self._event(record, f"sales_invoice_state_changed_to_{record['state']}")
        self.invoices[invoice_id] = record
        return record

    def mark_uncollectible(self, invoice_id: str, day: dt.date | None = None) -> Record:
        record = self.invoice(invoice_id)
        if record["state"] not in REMINDABLE:
            # [I] Only sent, unpaid invoices can be written off.
            raise symbolic_error(
                400, "Sales invoice can not be marked as uncollectible", "state", "invalid"
            )
        record["state"] = "uncollectible"
        record["marked_uncollectible_on"] = day or self.today()
        self._stamp(record)
        self._event(record, "sales_invoice_marked_as_uncollectible")
        return record

    # ------------------------------------------------------------ payments

    def add_payment(self, invoice_id: str, attrs: Any) -> Record:
        record = self.invoice(invoice_id)
        if not isinstance(attrs, dict):
            raise bad_param(
                "payment is missing, payment[payment_date] is missing, payment[price] is missing"
            )
        missing = [
            f"payment[{key}] is missing" for key in ("payment_date", "price") if key not in attrs
        ]
        if missing:
            raise bad_param(", ".join(missing))
        price = cents(parse_decimal(attrs["price"], "payment[price]"))
        price_base = (
            cents(parse_decimal(attrs["price_base"], "payment[price_base]"))
            if not _blank(attrs.get("price_base"))
            else price
        )
        day = parse_date(attrs["payment_date"], "payment[payment_date]")
        if record["state"] in ("draft", "scheduled"):
            # [I] Payments need a sent invoice; the exact body is not documented.
            raise symbolic_error(400, "Sales invoice is not sent yet", "sales_invoice", "not_sent")
        optional: Record = {}
        for key in ("transaction_identifier", "manual_payment_action"):
            raw = attrs.get(key)
            if raw is not None and not isinstance(raw, str):
                raise invalid_param(f"payment[{key}]")
            optional[key] = raw or None
        for key in ("financial_account_id", "financial_mutation_id", "ledger_account_id"):
            raw = attrs.get(key)
            optional[key] = None if _blank(raw) else parse_id(raw, f"payment[{key}]")
        return self.record_payment(record, price, day, price_base=price_base, **optional)

    def record_payment(
        self,
        record: Record,
        price: Decimal,
        day: dt.date,
        *,
        price_base: Decimal | None = None,
        transaction_identifier: str | None = None,
        manual_payment_action: str | None = None,
        financial_account_id: str | None = None,
        financial_mutation_id: str | None = None,
        ledger_account_id: str | None = None,
        stamp: bool = True,
    ) -> Record:
        payment: Record = {
            "id": self.new_id(),
            "invoice_id": record["id"],
            "price": price,
            "price_base": price if price_base is None else price_base,
            "payment_date": day,
            "transaction_identifier": transaction_identifier,
            "manual_payment_action": manual_payment_action,
            "financial_account_id": financial_account_id,
            "financial_mutation_id": financial_mutation_id,
            "ledger_account_id": ledger_account_id or self.payment_ledger_id,
        }
        if stamp:
            self._stamp(payment, created=True)
        else:
            payment["created_at"] = payment["updated_at"] = record["updated_at"]
        self.payments[payment["id"]] = payment
        record["payment_ids"].append(payment["id"])
        changed = self._settle(record)
        if stamp:
            self._stamp(record)
            self._event(record, "payment_registered")
            if changed:
                self._event(record, f"sales_invoice_state_changed_to_{record['state']}")
        return payment

    def delete_payment(self, invoice_id: str, payment_id: str) -> None:
        record = self.invoice(invoice_id)
        if payment_id not in record["payment_ids"]:
            raise not_found()
        record["payment_ids"].remove(payment_id)
        del self.payments[payment_id]
        changed = self._settle(record)
        self._stamp(record)
        self._event(record, "payment_destroyed")
        if changed:
            self._event(record, f"sales_invoice_state_changed_to_{record['state']}")

    # ------------------------------------------------------------ seeding and dumping

    def load_seed(self, seed: VendorSeed, rng_seed: int) -> None:
        self.reset(rng_seed)
        keys: dict[str, str] = {}
        for invoice in seed.invoices:
            self._note_number(invoice.number)
        for contact in seed.contacts:
            keys[contact.key] = self._seed_contact(contact)
        for invoice in seed.invoices:
            contact_id = keys.get(invoice.contact_key)
            if contact_id is not None:
                self._seed_invoice(invoice, contact_id)

    def _seed_contact(self, seed: SeedContact) -> str:
        record = self._blank_contact(None)
        company = seed.name if seed.kind == "organization" else None
        record.update(
            {
                "company_name": company,
                "firstname": seed.first_name,
                "lastname": seed.last_name,
                "address1": seed.address,
                "zipcode": seed.postal_code,
                "city": seed.city,
                "country": seed.country,
                "phone": seed.phone,
                "send_invoices_to_email": seed.email,
                "tax_number": seed.vat_number,
                "chamber_of_commerce": seed.coc_number,
                "bank_account": seed.iban,
                "created_at": truncate_ms(seed.created_at),
                "updated_at": truncate_ms(seed.updated_at),
            }
        )
        if seed.kind == "person" and _blank(seed.first_name) and _blank(seed.last_name):
            record["lastname"] = seed.name
        record["customer_id"] = seed.customer_number or self._next_customer_id()
        record["version"] = epoch(record["updated_at"])
        self.contacts[record["id"]] = record
        self._after_contact_save(record)
        for person in self._people_of(record["id"]):
            person["created_at"] = person["updated_at"] = record["updated_at"]
            person["version"] = record["version"]
        return str(record["id"])

    def _seed_invoice(self, seed: SeedInvoice, contact_id: str) -> None:
        record = self._blank_invoice()
        contact = self.contacts[contact_id]
        interval = (seed.due_date - seed.issue_date).days
        record.update(
            {
                "contact_id": contact_id,
                "currency": seed.currency,
                "first_due_interval": interval if interval >= 0 else 14,
                "invoice_date": seed.issue_date,
                "due_date": seed.due_date,
                "created_at": truncate_ms(seed.created_at),
                "updated_at": truncate_ms(seed.updated_at),
            }
        )
        for order, line in enumerate(seed.lines):
            quantity = format(line.quantity.normalize(), "f").replace(".", ",")
            record["details"].append(
                {
                    "id": self.new_id(),
                    "tax_rate_id": self.tax_rate_for(line.vat_rate, contact["country"]),
                    "ledger_account_id": self.revenue_ledger_id,
                    "project_id": None,
                    # What the web UI stores: free text; clients must read amount_decimal.
                    "amount": f"{quantity} x",
                    "amount_decimal": line.quantity,
                    "description": line.description,
                    "price": cents(line.unit_price),
                    "period": None,
                    "row_order": order,
                    "created_at": record["created_at"],
                    "updated_at": record["created_at"],
                }
            )
        record["version"] = epoch(record["updated_at"])
        self.invoices[record["id"]] = record
        if seed.status == "draft":
            if self.quirks.seed_drafts_without_invoice_date:
                record["invoice_date"] = None
            return
        record["sent_at"] = seed.issue_date
        self._finalize(record, seed.issue_date, number=seed.number)
        record["due_date"] = seed.due_date
        record["next_reminder"] = seed.due_date
        self._note_number(record["invoice_id"])
        for payment in seed.payments:
            self.record_payment(record, cents(payment.amount), payment.date, stamp=False)
        if seed.status == "paid":
            unpaid = self.totals(record)["unpaid"]
            if unpaid != 0:
                day = min(seed.due_date, self.today())
                self.record_payment(record, unpaid, day, stamp=False)
        elif seed.status == "cancelled":
            record["state"] = "uncollectible"
            record["marked_uncollectible_on"] = local_today(record["updated_at"])
        self._settle(record)

    def dump(self) -> dict[str, Any]:
        return {
            "contacts": [self.render_contact(c) for c in self._sorted(self.contacts.values())],
            "contact_people": [self.render_person(p) for p in self._sorted(self.people.values())],
            "sales_invoices": [
                self.render_invoice(i) for i in self._sorted(self.invoices.values())
            ],
            "payments": [self.render_payment(p) for p in self._sorted(self.payments.values())],
            "tax_rates": [self.render_tax_rate(t) for t in self._sorted(self.tax_rates.values())],
        }

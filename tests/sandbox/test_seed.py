"""The seeded world: deterministic, realistic, spread over the vendors with overlap."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from decimal import Decimal

import pytest

from syncd.sandbox.base import VENDORS, SandboxOptions, SeedContact, VendorName, VendorSeed
from syncd.sandbox.seed import (
    dump_world,
    ee_account_check,
    ee_registry_code_check,
    ee_vat_ok,
    generate_world,
    iban_checksum_ok,
    invoice_totals,
    make_iban,
    nl_elfproef_ok,
    world_epoch,
)

World = dict[VendorName, VendorSeed]


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SandboxOptions(seed=42, contacts=200, invoices=300, overlap=0.3))


def all_contacts(world: World) -> list[SeedContact]:
    return [c for seed in world.values() for c in seed.contacts]


# Identity keys as a matcher would normalise them (deliberately simple, local helpers).


def norm_vat(vat: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", vat.upper())


def norm_iban(iban: str) -> str:
    return iban.replace(" ", "").upper()


def norm_email(email: str) -> str:
    return email.strip().lower()


def norm_postcode(code: str) -> str:
    return code.replace(" ", "").upper()


def norm_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    for prefix, country in (("0031", "31"), ("00372", "372")):
        if digits.startswith(prefix):
            digits = country + digits[len(prefix) :]
    if digits.startswith("0"):
        digits = "31" + digits[1:]
    elif not digits.startswith(("31", "372")):
        digits = "372" + digits
    return digits


LEGAL_FORMS = re.compile(r"\b(b\.?v\.?|v\.?o\.?f\.?|oü|ou|as|osaühing|aktsiaselts)(?=\s|$)")


def norm_name(name: str) -> str:
    name = LEGAL_FORMS.sub(" ", name.lower())
    name = name.replace(" en ", " & ")
    return " ".join(name.split())


def norm_website(url: str) -> str:
    return re.sub(r"^(https?://)?(www\.)?", "", url.lower()).rstrip("/")


def identity(c: SeedContact) -> tuple[object, ...]:
    return (
        c.kind,
        c.country,
        norm_name(c.name),
        norm_email(c.email) if c.email else None,
        norm_phone(c.phone) if c.phone else None,
        norm_vat(c.vat_number) if c.vat_number else None,
        c.coc_number.replace(" ", "") if c.coc_number else None,
        norm_iban(c.iban) if c.iban else None,
        norm_postcode(c.postal_code) if c.postal_code else None,
        norm_website(c.website) if c.website else None,
        c.city,
        c.address,
    )


def raw(c: SeedContact) -> tuple[object, ...]:
    return (c.name, c.email, c.phone, c.vat_number, c.coc_number, c.iban, c.postal_code, c.website)


# ---------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_world_byte_for_byte() -> None:
    options = SandboxOptions(seed=9, contacts=60, invoices=60)
    assert dump_world(generate_world(options)) == dump_world(generate_world(options))


def test_another_seed_gives_another_world() -> None:
    one = dump_world(generate_world(SandboxOptions(seed=9, contacts=30, invoices=30)))
    two = dump_world(generate_world(SandboxOptions(seed=10, contacts=30, invoices=30)))
    assert one != two


def test_every_time_lies_before_the_seeds_fixed_epoch(world: World) -> None:
    epoch = world_epoch(42)
    assert epoch.tzinfo is not None and epoch.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    for seed in world.values():
        for c in seed.contacts:
            assert c.created_at.utcoffset() is not None
            assert c.created_at <= c.updated_at < epoch
        for inv in seed.invoices:
            assert inv.created_at.utcoffset() is not None
            assert inv.created_at <= inv.updated_at < epoch
            assert inv.issue_date <= epoch.date()
            assert all(p.date < epoch.date() for p in inv.payments)


def test_an_empty_world_is_allowed() -> None:
    world = generate_world(SandboxOptions(contacts=0, invoices=10))
    assert all(seed == VendorSeed(contacts=(), invoices=()) for seed in world.values())


# ---------------------------------------------------------------- checksums


def test_iban_checksum_accepts_known_good_ibans_and_refuses_altered_ones() -> None:
    assert iban_checksum_ok("NL91ABNA0417164300")
    assert iban_checksum_ok("NL91 ABNA 0417 1643 00")
    assert iban_checksum_ok("ee38 2200 2210 2014 5685")
    assert not iban_checksum_ok("NL91ABNA0417164301")
    assert not iban_checksum_ok("EE382200221020145686")
    assert not iban_checksum_ok("NL91")
    assert not iban_checksum_ok("not an iban")
    assert make_iban("NL", "ABNA0417164300") == "NL91ABNA0417164300"


def test_national_check_digits_match_published_examples() -> None:
    assert ee_account_check("22102014568") == 5  # EE38 2200 2210 2014 5685
    assert nl_elfproef_ok("111222333")  # the textbook BSN example
    assert not nl_elfproef_ok("111222334")
    assert ee_vat_ok("EE100931558")  # a registered Estonian VAT number
    assert ee_registry_code_check("1006070") == 1  # Swedbank AS, 10060701
    assert ee_registry_code_check("1053954") == 9  # AS LHV Pank, 10539549 (second weights)


# ---------------------------------------------------------------- realism


def test_every_iban_has_a_valid_checksum_and_a_country_shape(world: World) -> None:
    ibans = [c for c in all_contacts(world) if c.iban]
    assert len(ibans) > 100
    for c in ibans:
        assert iban_checksum_ok(c.iban)  # type: ignore[arg-type]
        compact = norm_iban(c.iban)  # type: ignore[arg-type]
        if c.country == "NL":
            assert re.fullmatch(r"NL\d{2}[A-Z]{4}\d{10}", compact)
            assert c.bic and c.bic[:4] == compact[4:8] and c.bic[4:6] == "NL"
        else:
            assert re.fullmatch(r"EE\d{18}", compact)
            assert c.bic and c.bic[4:6] == "EE"
            assert ee_account_check(compact[6:].lstrip("0")[:-1]) == int(compact[-1])


def test_vat_and_chamber_of_commerce_numbers_are_plausible(world: World) -> None:
    orgs = [c for c in all_contacts(world) if c.kind == "organization"]
    for c in orgs:
        coc = (c.coc_number or "").replace(" ", "")
        assert re.fullmatch(r"\d{8}", coc)
        if c.country == "EE":
            assert ee_registry_code_check(coc[:7]) == int(coc[7])
        if c.vat_number:
            vat = norm_vat(c.vat_number)
            if c.country == "NL":
                assert re.fullmatch(r"NL\d{9}B\d{2}", vat)
                assert nl_elfproef_ok(vat[2:11])
            else:
                assert ee_vat_ok(vat)
    assert sum(1 for c in orgs if c.vat_number) > len(orgs) * 0.7
    people = [c for c in all_contacts(world) if c.kind == "person"]
    assert people and all(c.vat_number is None and c.coc_number is None for c in people)
    assert all(c.first_name and c.last_name and c.name.startswith(c.first_name) for c in people)


def test_addresses_phones_and_emails_look_local(world: World) -> None:
    for c in all_contacts(world):
        assert c.country in {"NL", "EE"}
        if c.postal_code:
            pattern = r"\d{4}[A-Z]{2}" if c.country == "NL" else r"\d{5}"
            assert re.fullmatch(pattern, norm_postcode(c.postal_code))
        if c.phone:
            assert norm_phone(c.phone).startswith("31" if c.country == "NL" else "372")
        if c.email:
            assert re.fullmatch(r"[a-z0-9.]+@[a-z0-9.-]+\.[a-z]{2,}", norm_email(c.email))
        if c.website and c.kind == "organization" and c.email:
            assert norm_website(c.website).split("/")[0] == norm_email(c.email).split("@")[1]
    countries = Counter(c.country for c in all_contacts(world))
    assert countries["NL"] > 40 and countries["EE"] > 40


def test_company_names_carry_dutch_and_estonian_legal_forms(world: World) -> None:
    names = [c.name for c in all_contacts(world) if c.kind == "organization"]
    assert any(n.endswith(" B.V.") for n in names)
    assert any(n.endswith(" OÜ") for n in names)
    assert any(n.endswith(" AS") or n.startswith("AS ") for n in names)
    with_form = [n for n in names if LEGAL_FORMS.search(n.lower())]
    assert len(with_form) > len(names) * 0.8


def test_contacts_are_mostly_organizations_with_some_people(world: World) -> None:
    kinds = Counter(c.kind for c in all_contacts(world))
    assert kinds["organization"] > kinds["person"] > 0


# ---------------------------------------------------------------- spreading and overlap


def test_each_contact_lives_in_at_least_one_vendor_and_all_vendors_get_some(world: World) -> None:
    keys = {c.key for c in all_contacts(world)}
    assert len(keys) == 200
    for vendor in VENDORS:
        assert len(world[vendor].contacts) > 30
        numbers = [c.customer_number for c in world[vendor].contacts]
        assert len(set(numbers)) == len(numbers)  # each vendor numbers its own customers


@pytest.mark.parametrize("overlap", [0.0, 0.3, 0.5])
def test_the_overlap_share_of_contacts_lives_in_more_than_one_vendor(overlap: float) -> None:
    world = generate_world(SandboxOptions(seed=5, contacts=100, invoices=0, overlap=overlap))
    homes = Counter(c.key for c in all_contacts(world))
    assert sum(1 for n in homes.values() if n > 1) == round(100 * overlap)
    assert max(homes.values()) <= 3
    for seed in world.values():
        assert len({c.key for c in seed.contacts}) == len(seed.contacts)  # once per vendor


def test_overlapping_copies_differ_in_formatting_but_share_normalised_keys(
    world: World,
) -> None:
    copies: dict[str, list[SeedContact]] = {}
    for c in all_contacts(world):
        copies.setdefault(c.key, []).append(c)
    shared = [group for group in copies.values() if len(group) > 1]
    assert len(shared) == 60
    changed_fields: Counter[int] = Counter()
    for group in shared:
        assert len({identity(c) for c in group}) == 1, [raw(c) for c in group]
        assert len({raw(c) for c in group}) == len(group)  # every copy is typed differently
        for a, b in itertools.pairwise(group):
            pairs = zip(raw(a), raw(b), strict=True)
            changed_fields.update(i for i, (x, y) in enumerate(pairs) if x != y)
    # The differences are spread over names, e-mail, phone, VAT, IBAN, postcode, website.
    assert len(changed_fields) >= 6


def test_contacts_that_do_not_overlap_have_distinct_identity_keys(world: World) -> None:
    seen: dict[str, str] = {}
    for c in all_contacts(world):
        for value in (c.vat_number, c.iban, c.email, c.coc_number):
            if value:
                key = norm_vat(value) if value is not c.email else norm_email(value)
                assert seen.setdefault(key, c.key) == c.key


# ---------------------------------------------------------------- invoices


def test_invoices_belong_to_contacts_of_their_own_vendor(world: World) -> None:
    total = 0
    for vendor in VENDORS:
        seed = world[vendor]
        keys = {c.key for c in seed.contacts}
        assert seed.invoices, vendor  # CRM and bookkeeping vendors alike
        assert all(inv.contact_key in keys for inv in seed.invoices)
        total += len(seed.invoices)
        numbers = [inv.number for inv in seed.invoices if inv.number]
        assert len(set(numbers)) == len(numbers)
    assert total == 300


def test_invoice_lines_use_the_countrys_vat_rates(world: World) -> None:
    rates = {
        "NL": {Decimal(21), Decimal(9), Decimal(0)},
        "EE": {Decimal(22), Decimal(9), Decimal(0)},
    }
    seen: dict[str, set[Decimal]] = {"NL": set(), "EE": set()}
    for seed in world.values():
        country = {c.key: c.country for c in seed.contacts}
        for inv in seed.invoices:
            assert 1 <= len(inv.lines) <= 10
            assert inv.currency == "EUR"
            for line in inv.lines:
                assert line.vat_rate in rates[country[inv.contact_key]]
                seen[country[inv.contact_key]].add(line.vat_rate)
                assert line.quantity > 0 and line.unit_price > 0
                assert line.unit_price == line.unit_price.quantize(Decimal("0.01"))
                assert line.unit_price.as_tuple().exponent == -2
                assert line.description
    assert seen == rates  # every rate of both countries occurs


def test_invoice_statuses_are_mixed_and_consistent(world: World) -> None:
    epoch_day = world_epoch(42).date()
    statuses: Counter[str] = Counter()
    for vendor, seed in world.items():
        for inv in seed.invoices:
            statuses[inv.status] += 1
            _, _, total = invoice_totals(inv.lines)
            paid = sum((p.amount for p in inv.payments), Decimal(0))
            assert inv.due_date > inv.issue_date
            assert (inv.number is None) == (inv.status == "draft")
            if inv.number:
                assert re.fullmatch(rf"{inv.issue_date.year}-\d{{4}}", inv.number)
            if inv.status == "paid":
                assert len(inv.payments) == 1 and paid == total
            elif inv.status == "partially_paid":
                assert len(inv.payments) == 1 and 0 < paid < total
                assert paid.as_tuple().exponent == -2
            else:
                assert not inv.payments
            if inv.status == "overdue":
                assert inv.due_date < epoch_day
            if inv.status in {"open", "sent"}:
                assert inv.due_date >= epoch_day
                assert inv.status == ("sent" if vendor in {"simplicate", "perfex"} else "open")
    for status in ("draft", "open", "sent", "paid", "partially_paid", "overdue"):
        assert statuses[status] > 0, status


def test_invoice_totals_round_vat_per_rate() -> None:
    from syncd.sandbox.base import SeedLine

    lines = (
        SeedLine("a", Decimal("1"), Decimal("0.05"), Decimal(21)),
        SeedLine("b", Decimal("1"), Decimal("0.05"), Decimal(21)),
        SeedLine("c", Decimal("3"), Decimal("10.00"), Decimal(9)),
    )
    # 0.10 at 21 % is 0.021 -> 0.02 (per line it would be 0.01 + 0.01); 30.00 at 9 % is 2.70.
    assert invoice_totals(lines) == (Decimal("30.10"), Decimal("2.72"), Decimal("32.82"))

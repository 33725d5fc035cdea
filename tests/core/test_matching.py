"""Tests for identity matching: contact keys, contact and invoice decisions, the sandbox world."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from syncd.core.matching import (
    CONFIDENT_NAME,
    POSSIBLE_NAME,
    Ambiguous,
    Candidate,
    InvoiceCandidate,
    Link,
    MatchDecision,
    NoMatch,
    contact_keys,
    iban_valid,
    invoice_keys,
    match_contact,
    match_invoice,
    name_similarity,
    normalise_name,
)
from syncd.core.model import Contact, Invoice, normalise_contact
from syncd.sandbox.base import VENDORS, SandboxOptions, SeedContact
from syncd.sandbox.seed import generate_world

ACCOUNT = "moneybird"
OTHER = "simplicate"

IBAN = "NL91ABNA0417164300"
IBAN_2 = "NL44RABO0123456789"
IBAN_3 = "NL20INGB0001234567"


def org(**changes: Any) -> Contact:
    """Bakkerij de Vries as the first vendor holds it."""
    base = Contact(
        kind="organization",
        name="Bakkerij de Vries B.V.",
        email="info@bakkerijdevries.nl",
        phone="+31 20 123 4567",
        website="https://www.bakkerijdevries.nl",
        address_line1="Kerkstraat 12",
        postal_code="1012 AB",
        city="Amsterdam",
        country="NL",
        vat_number="NL123456789B01",
        coc_number="12345678",
        iban=IBAN,
    )
    return dataclasses.replace(base, **changes)


def bare_org(**changes: Any) -> Contact:
    """An organization with a name and postcode but no identity keys."""
    keyless: dict[str, Any] = {"email": None, "vat_number": None, "coc_number": None, "iban": None}
    return org(**(keyless | changes))


def person(**changes: Any) -> Contact:
    base = Contact(
        kind="person",
        name="Sanne Bakker",
        first_name="Sanne",
        last_name="Bakker",
        email="sanne.bakker@gmail.com",
        phone="06-12345678",
        postal_code="3511 AB",
        city="Utrecht",
        country="NL",
    )
    return dataclasses.replace(base, **changes)


def match(
    incoming: Contact, *candidates: Contact | Candidate, account: str = ACCOUNT
) -> MatchDecision:
    """Match against candidates numbered 1, 2, ... (each linked to OTHER unless given)."""
    built = [
        c if isinstance(c, Candidate) else Candidate(n, c, frozenset({OTHER}))
        for n, c in enumerate(candidates, start=1)
    ]
    return match_contact(incoming, built, account=account)


def linked_to(decision: MatchDecision) -> Hashable:
    assert isinstance(decision, Link), decision
    return decision.canonical_id


def ambiguous_ids(decision: MatchDecision) -> list[Hashable]:
    assert isinstance(decision, Ambiguous), decision
    return [c.canonical_id for c in decision.candidates]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bakkerij de Vries B.V.", "bakkerij de vries"),
        ("Bakkerij De Vries BV", "bakkerij de vries"),
        ("Bakkerij de Vries B.V", "bakkerij de vries"),
        ("Bakkerij de Vries bv", "bakkerij de vries"),
        ("BAKKERIJ DE VRIES B. V.", "bakkerij de vries"),
        ("Bakkerij de Vries ", "bakkerij de vries"),
        ("  Bakkerij   de\tVries, N.V. ", "bakkerij de vries"),
        ("Jansen & Bakker V.O.F.", "jansen & bakker"),
        ("Jansen en Bakker v.o.f.", "jansen & bakker"),
        ("Jansen & Bakker VOF", "jansen & bakker"),
        ("Põhjala Tarkvara OÜ", "pohjala tarkvara"),
        ("Põhjala Tarkvara OU", "pohjala tarkvara"),
        ("OÜ Põhjala Tarkvara", "pohjala tarkvara"),
        ("Osaühing Põhjala Tarkvara", "pohjala tarkvara"),
        ("Kalevi Ehitus AS", "kalevi ehitus"),
        ("AS Kalevi Ehitus", "kalevi ehitus"),
        ("Aktsiaselts Kalevi Ehitus", "kalevi ehitus"),
        ("Tamm ja Saar OÜ", "tamm & saar"),
        ("Müller Bäckerei GmbH", "muller backerei"),
        ("Smith & Sons Ltd.", "smith & sons"),
        ("Noord-Holland Media", "noord holland media"),
        ("'t Hof Catering", "t hof catering"),
        ("Søren Ærø", "soren aero"),
        ("B.V.", "bv"),  # nothing but a legal form: kept rather than emptied
        ("", ""),
    ],
)
def test_normalise_name_folds_case_accents_punctuation_and_legal_forms(
    raw: str, expected: str
) -> None:
    assert normalise_name(raw) == expected


def test_legal_form_in_the_middle_of_a_name_is_kept() -> None:
    assert normalise_name("Bakkerij AS Tallinn OÜ") == "bakkerij as tallinn"


@example("ᴬ")  # decomposes to an upper-case letter
@example("E:N")  # initials that join into a joining word
@example("S. Bakker & A.S.")
@given(st.text(max_size=40))
def test_normalise_name_is_idempotent(raw: str) -> None:
    once = normalise_name(raw)
    assert normalise_name(once) == once


@given(st.text(max_size=30), st.text(max_size=30))
@example("j jansen jo", "jan j jansen")
def test_name_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    forward, backward = name_similarity(a, b), name_similarity(b, a)
    assert forward == backward
    assert forward is None or 0.0 <= forward <= 1.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Bakkerij de Vries B.V.", "Bakkerij De Vries BV", 1.0),
        ("Jansen, Jan", "Jan Jansen", 1.0),  # word order does not matter
        ("Jan Jansen", "Jan Janssen", 0.92),
        ("Noorderveld Software", "Noordervelt Software", 0.91),
        # A long shared trade word cannot carry different surnames over the threshold.
        ("Installatiebedrijf Bakker", "Installatiebedrijf Dekker", 0.67),
        ("Bakkerij Hansen", "Bakkerij Jansen", 0.83),
        ("Bakkerij de Vries", "Bakkerij de Vries Amsterdam", 0.77),
        ("Metsa Konsultatsioonid", "Harju Konsultatsioonid", 0.2),
        ("Bakkerij de Vries", "", None),
    ],
)
def test_name_similarity_values(a: str, b: str, expected: float | None) -> None:
    assert name_similarity(a, b) == expected


# --------------------------------------------------------------------------- contact keys


def test_contact_keys_are_compact_and_normalised() -> None:
    keys = contact_keys(
        org(
            name="Bakkerij De Vries BV",
            email=" INFO@BakkerijDeVries.NL ",
            vat_number="nl 1234.56.789.b01",
            coc_number="1234 5678",
            iban="nl91 abna 0417 1643 00",
            postal_code="1012ab",
        )
    )
    assert keys.kind == "organization"
    assert keys.name == "bakkerij de vries"
    assert keys.vat_number == "NL123456789B01"
    assert keys.coc_number == "12345678"
    assert keys.coc == ("NL", "12345678")
    assert keys.email == "info@bakkerijdevries.nl"
    assert keys.email_generic is True
    assert keys.iban == IBAN
    assert keys.postal_code == "1012AB"
    assert keys.country == "NL"


def test_contact_keys_of_sandbox_style_copies_are_equal() -> None:
    first = org()
    copy = org(
        name="Bakkerij De Vries BV",
        email="Info@bakkerijdevries.nl",
        phone="020-1234567",
        vat_number="NL 1234.56.789.B01",
        postal_code="1012AB",
        iban="NL91 ABNA 0417 1643 00",
        coc_number="1234 5678",
        website="www.bakkerijdevries.nl",
    )
    assert contact_keys(first) == contact_keys(copy)


def test_vat_number_without_country_prefix_gets_the_contacts_country() -> None:
    assert contact_keys(org(vat_number="123456789B01")).vat_number == "NL123456789B01"
    assert contact_keys(org(vat_number="123456789", country="GR")).vat_number == "EL123456789"
    assert contact_keys(org(vat_number="GR123456789")).vat_number == "EL123456789"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vat_number", "n.v.t."),
        ("vat_number", "NL000000000B00"),
        ("vat_number", "NL123"),
        ("coc_number", "0"),
        ("coc_number", "00000000"),
        ("iban", "NL91ABNA0417164301"),  # checksum fails
        ("iban", "12345"),
        ("email", "info"),
        ("email", "info@localhost"),
        ("email", "@bakkerij.nl"),
    ],
)
def test_unusable_key_values_are_no_key(field: str, value: str) -> None:
    assert getattr(contact_keys(org(**{field: value})), field) is None


@pytest.mark.parametrize(
    ("email", "generic"),
    [
        ("info@bakkerij.nl", True),
        ("info2@bakkerij.nl", True),
        ("administratie@bakkerij.nl", True),
        ("facturen@bakkerij.nl", True),
        ("arved@pohjala.ee", True),
        ("no-reply@bakkerij.nl", True),
        ("sanne.bakker@gmail.com", False),
        ("jan@bakkerij.nl", False),
    ],
)
def test_role_mailboxes_are_weak_email_keys(email: str, generic: bool) -> None:
    assert contact_keys(org(email=email)).email_generic is generic


def test_iban_valid_checks_mod_97() -> None:
    assert iban_valid("NL91 ABNA 0417 1643 00")
    assert iban_valid("ee38 2200 2210 2014 5685")
    assert not iban_valid("NL91ABNA0417164309")
    assert not iban_valid(None)


# --------------------------------------------------------------------------- contacts: keys


@pytest.mark.parametrize(
    ("incoming", "reason"),
    [
        (
            Contact(kind="organization", name="", vat_number="NL 1234.56.789.B01"),
            "VAT number NL123456789B01 equal",
        ),
        (
            Contact(kind="organization", name="", coc_number="1234 5678", country="NL"),
            "chamber of commerce number NL 12345678 equal",
        ),
        (
            Contact(kind="organization", name="Bakkerij De Vries", iban="nl91abna0417164300"),
            f"IBAN {IBAN} equal",
        ),
        (
            Contact(kind="organization", name="Bakkerij de Vries", email="INFO@bakkerijdevries.nl"),
            "e-mail info@bakkerijdevries.nl equal (a role mailbox)",
        ),
    ],
)
def test_one_agreeing_key_links(incoming: Contact, reason: str) -> None:
    decision = match(incoming, org())
    assert isinstance(decision, Link)
    assert decision.canonical_id == 1
    assert decision.score == 1.0
    assert decision.reason.startswith(reason)


def test_sandbox_formatting_variants_link_with_every_key_in_the_reason() -> None:
    copy = org(
        name="Bakkerij De Vries BV",
        email="INFO@bakkerijdevries.nl",
        phone="0031 20 123 4567",
        vat_number="nl123456789b01",
        postal_code="1012ab",
        iban="NL91 ABNA 0417 1643 00",
        coc_number="1234 5678",
    )
    decision = match(copy, org())
    assert isinstance(decision, Link)
    assert decision.reason == (
        "VAT number NL123456789B01 equal; chamber of commerce number NL 12345678 equal; "
        f"IBAN {IBAN} equal; e-mail info@bakkerijdevries.nl equal (a role mailbox)"
    )


def test_person_copies_link_on_personal_email_despite_phone_and_case() -> None:
    copy = person(email="Sanne.Bakker@Gmail.com", phone="+31 6 1234 5678", postal_code="3511AB")
    decision = match(copy, person())
    assert linked_to(decision) == 1
    assert isinstance(decision, Link)
    assert "e-mail sanne.bakker@gmail.com equal" in decision.reason


def test_personal_email_links_when_the_names_are_written_differently() -> None:
    assert linked_to(match(person(name="Bakker, Sanne"), person())) == 1
    assert linked_to(match(person(name="S. Bakker"), person())) == 1


def test_chamber_of_commerce_numbers_of_different_countries_do_not_match() -> None:
    estonian = Contact(
        kind="organization", name="Metsa Tarkvara", coc_number="12345678", country="EE"
    )
    decision = match(estonian, org())
    assert isinstance(decision, NoMatch)


def test_shared_email_with_clearly_different_names_is_ambiguous() -> None:
    household = person(name="Jan de Groot", first_name="Jan", last_name="de Groot")
    decision = match(household, person())
    assert ambiguous_ids(decision) == [1]
    assert isinstance(decision, Ambiguous)
    assert "e-mail sanne.bakker@gmail.com equal but name" in decision.candidates[0].reason


def test_shared_iban_with_clearly_different_names_is_ambiguous() -> None:
    factoring = bare_org(name="Kompas Factoring B.V.", postal_code="9711 AA", iban=IBAN)
    assert ambiguous_ids(match(factoring, org())) == [1]


def test_role_mailbox_alone_needs_a_confident_name() -> None:
    # A bookkeeping office receives several clients' invoices at one role mailbox.
    client = bare_org(name="Bakkerij de Vries Zuid", email="info@bakkerijdevries.nl")
    similar = name_similarity("Bakkerij de Vries Zuid", "Bakkerij de Vries")
    assert similar is not None and similar < CONFIDENT_NAME
    assert ambiguous_ids(match(client, org())) == [1]
    same_name = bare_org(name="Bakkerij de Vries", email="info@bakkerijdevries.nl")
    assert linked_to(match(same_name, org())) == 1


# --------------------------------------------------------------------------- contacts: contradictions


def test_same_email_but_different_vat_numbers_is_ambiguous() -> None:
    incoming = org(vat_number="NL987654321B01", coc_number=None, iban=None)
    decision = match(incoming, org())
    assert isinstance(decision, Ambiguous)
    (only,) = decision.candidates
    assert only.reason == (
        "e-mail info@bakkerijdevries.nl equal (a role mailbox) but VAT numbers "
        "NL987654321B01 and NL123456789B01 differ and name 'bakkerij de vries' ~ "
        "'bakkerij de vries' (1.00)"
    )
    assert only.score == 0.5


def test_a_shared_role_mailbox_with_other_numbers_and_names_is_two_companies() -> None:
    # A bookkeeping office's facturen@ serves many clients: other VAT number, other name.
    client = org(
        name="Tandartspraktijk Zuid B.V.", vat_number="NL987654321B01", coc_number=None, iban=None
    )
    assert isinstance(match(client, org()), NoMatch)
    # A personal mailbox shared with other numbers stays a contradiction.
    personal = org(vat_number="NL987654321B01", email="jan@bakkerijdevries.nl", iban=None)
    assert isinstance(match(personal, org(email="jan@bakkerijdevries.nl")), Ambiguous)


def test_same_vat_but_different_chamber_of_commerce_numbers_is_ambiguous() -> None:
    # A Dutch fiscal unity: one VAT number, several legal entities.
    sister = org(
        name="Bakkerij de Vries Holding B.V.", coc_number="87654321", email=None, iban=None
    )
    decision = match(sister, org())
    assert isinstance(decision, Ambiguous)
    assert (
        "chamber of commerce numbers 87654321 and 12345678 differ" in decision.candidates[0].reason
    )


def test_vat_matching_one_candidate_and_email_another_is_ambiguous() -> None:
    a = org(email="info@other.nl")
    b = bare_org(name="Bakkerij de Vries", email="facturen@bakkerijdevries.nl")
    incoming = org(email="facturen@bakkerijdevries.nl", coc_number=None, iban=None)
    decision = match(incoming, a, b)
    assert isinstance(decision, Ambiguous)
    assert sorted(ambiguous_ids(decision)) == [1, 2]
    assert decision.reason == "2 candidates share identity keys"


def test_different_vat_number_rules_out_a_name_and_postcode_match() -> None:
    neighbour = org(vat_number="NL987654321B01", coc_number=None, email=None, iban=None)
    assert isinstance(match(neighbour, org()), NoMatch)


def test_different_iban_does_not_stop_an_agreeing_vat_number() -> None:
    incoming = org(iban=IBAN_2, email="jan@bakkerijdevries.nl")
    assert linked_to(match(incoming, org())) == 1


# --------------------------------------------------------------------------- contacts: name + postcode


def test_equal_name_and_postcode_link_without_keys() -> None:
    decision = match(bare_org(name="Bakkerij De Vries BV", postal_code="1012AB"), bare_org())
    assert decision == Link(
        1, "name 'bakkerij de vries' ~ 'bakkerij de vries' (1.00) and postcode 1012AB equal", 1.0
    )


@pytest.mark.parametrize(
    ("stored", "incoming", "outcome"),
    [
        ("Jan Jansen", "Jan Janssen", "link"),  # 0.92: at the threshold
        ("Noorderveld Software", "Noordervelt Software", "ambiguous"),  # 0.91
        ("Bakkerij de Vries", "Bakkerij de Vries Amsterdam", "ambiguous"),  # 0.77
        ("Installatiebedrijf Bakker", "Installatiebedrijf Dekker", "none"),  # 0.67
        ("Metsa Konsultatsioonid", "Harju Konsultatsioonid", "none"),  # 0.2
    ],
)
def test_name_similarity_thresholds_at_an_equal_postcode(
    stored: str, incoming: str, outcome: str
) -> None:
    kind = "person" if stored.startswith("Jan ") else "organization"
    decision = match(bare_org(kind=kind, name=incoming), bare_org(kind=kind, name=stored))
    score = name_similarity(stored, incoming)
    assert score is not None
    if outcome == "link":
        assert score >= CONFIDENT_NAME
        assert isinstance(decision, Link)
        assert decision.score == score
    elif outcome == "ambiguous":
        assert POSSIBLE_NAME <= score < CONFIDENT_NAME
        assert isinstance(decision, Ambiguous)
        assert decision.candidates[0].score == score
    else:
        assert score < POSSIBLE_NAME
        assert isinstance(decision, NoMatch)


@pytest.mark.parametrize(
    "postcode_change",
    [
        {"postal_code": "1013 AB"},
        {"postal_code": None},
        {"country": "BE", "postal_code": "1012 AB"},
    ],
)
def test_name_alone_never_links_without_an_equal_postcode(postcode_change: dict[str, Any]) -> None:
    assert isinstance(match(bare_org(**postcode_change), bare_org()), NoMatch)


def test_persons_with_the_same_name_and_no_address_stay_apart() -> None:
    namesake = person(email="sanne.bakker2@gmail.com", postal_code=None)
    assert isinstance(match(namesake, person(postal_code=None)), NoMatch)


def test_name_and_postcode_match_with_differing_emails_is_ambiguous() -> None:
    incoming = bare_org(email="inkoop@devries-bakkers.nl")
    decision = match(incoming, bare_org(email="info@bakkerijdevries.nl"))
    assert isinstance(decision, Ambiguous)
    assert decision.candidates[0].reason.endswith(
        "but e-mails inkoop@devries-bakkers.nl and info@bakkerijdevries.nl differ"
    )


def test_two_role_mailboxes_of_one_domain_do_not_contradict_a_name_match() -> None:
    incoming = bare_org(email="facturen@bakkerijdevries.nl")
    assert linked_to(match(incoming, bare_org(email="info@bakkerijdevries.nl"))) == 1


def test_several_confident_name_matches_are_ambiguous() -> None:
    decision = match(bare_org(), bare_org(), bare_org(name="Bakkerij de Vries VOF"))
    assert sorted(ambiguous_ids(decision)) == [1, 2]
    assert isinstance(decision, Ambiguous)
    assert decision.reason == "2 candidates match by name and postcode"


def test_a_key_match_beats_a_possible_name_match() -> None:
    keyed = org(postal_code="9711 AA")
    possible = bare_org(name="Bakkerij de Vries Amsterdam")
    assert linked_to(match(org(), keyed, possible)) == 1


def test_a_key_match_and_a_confident_name_match_elsewhere_are_ambiguous() -> None:
    keyed = org(postal_code="9711 AA")
    namesake = bare_org()  # same name and postcode, no keys: perhaps an earlier duplicate
    decision = match(org(), keyed, namesake)
    assert sorted(ambiguous_ids(decision)) == [1, 2]


# --------------------------------------------------------------------------- contacts: kinds


def test_person_and_organization_do_not_link_by_name_and_postcode() -> None:
    shop = bare_org(name="Sanne Bakker", postal_code="3511 AB")
    assert isinstance(match(person(email=None), shop), NoMatch)


def test_person_and_organization_sharing_only_an_email_is_ambiguous() -> None:
    sole_trader = bare_org(name="Sanne Bakker Advies", email="sanne.bakker@gmail.com")
    decision = match(person(), sole_trader)
    assert isinstance(decision, Ambiguous)
    assert "one is a person and the other an organization" in decision.candidates[0].reason


def test_a_kind_only_a_kind_blind_account_reported_neither_separates_nor_joins() -> None:
    # SimplBooks files every client as an organization: its kind says nothing.
    books = "simplbooks"
    as_filed = bare_org(name="Sanne Bakker", email="sanne.bakker@gmail.com")
    from_books = Candidate(1, as_filed, frozenset({books}))
    # The person arriving from a vendor that knows kinds links to that record...
    decision = match_contact(person(), [from_books], account=ACCOUNT, kind_blind={books})
    assert linked_to(decision) == 1
    # ...and the record arriving from SimplBooks links to the person held elsewhere.
    known_person = Candidate(1, person(), frozenset({ACCOUNT}))
    assert (
        linked_to(match_contact(as_filed, [known_person], account=books, kind_blind={books})) == 1
    )
    # A candidate whose kind another vendor confirmed still counts it.
    confirmed = Candidate(1, as_filed, frozenset({books, OTHER}))
    decision = match_contact(person(), [confirmed], account=ACCOUNT, kind_blind={books})
    assert isinstance(decision, Ambiguous)
    # Without kind-blind accounts nothing changes.
    assert isinstance(match_contact(person(), [from_books], account=ACCOUNT), Ambiguous)


def test_person_and_organization_sharing_a_vat_number_link() -> None:
    # A sole trader is one legal entity, whichever kind each vendor files it under.
    sole_trader = person(vat_number="NL123456789B01")
    assert linked_to(match(sole_trader, org())) == 1


# --------------------------------------------------------------------------- contacts: same vendor


def test_candidate_linked_to_the_same_account_is_not_a_link_target() -> None:
    other_record = Candidate(1, bare_org(name="Bakkerij de Vries Amsterdam"), {ACCOUNT})
    assert isinstance(match(bare_org(), other_record), NoMatch)


def test_keys_shared_with_a_record_of_the_same_account_are_ambiguous() -> None:
    duplicate = Candidate(1, org(), frozenset({ACCOUNT, OTHER}))
    decision = match(org(name="Bakkerij De Vries BV"), duplicate)
    assert isinstance(decision, Ambiguous)
    assert "already linked to another record of this account" in decision.candidates[0].reason


def test_identical_name_and_postcode_in_the_same_account_is_ambiguous() -> None:
    duplicate = Candidate(7, bare_org(), frozenset({ACCOUNT}))
    assert ambiguous_ids(match(bare_org(), duplicate)) == [7]


def test_the_same_record_links_from_another_account() -> None:
    assert linked_to(match(org(), Candidate(1, org(), {ACCOUNT}), account=OTHER)) == 1


# --------------------------------------------------------------------------- contacts: plumbing


def test_no_candidates_is_no_match() -> None:
    assert match(org()) == NoMatch("no candidates")


def test_repeated_candidates_are_collapsed() -> None:
    same = Candidate(1, org(), frozenset({OTHER}))
    assert linked_to(match_contact(org(), [same, same], account=ACCOUNT)) == 1


def test_a_candidate_repeated_with_other_data_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        match_contact(org(), [Candidate(1, org()), Candidate(1, bare_org())], account=ACCOUNT)


def test_ambiguous_candidates_are_best_first_and_serialisable() -> None:
    decision = match(
        bare_org(),
        bare_org(name="Bakkerij de Vries Amsterdam"),  # 0.77
        bare_org(name="Bakkerij de Vries B.V."),  # 1.00
        bare_org(name="Bakkerij de Vries VOF"),  # 1.00
    )
    assert isinstance(decision, Ambiguous)
    assert [c.canonical_id for c in decision.candidates] == [2, 3, 1]
    review = decision.review_candidates()
    assert review[0] == {
        "canonical_id": 2,
        "score": 1.0,
        "reason": "name 'bakkerij de vries' ~ 'bakkerij de vries' (1.00) and postcode 1012AB equal",
    }
    assert [r["score"] for r in review] == [1.0, 1.0, 0.77]


def test_string_canonical_ids_are_accepted() -> None:
    decision = match_contact(org(), [Candidate("c-1", org())], account=ACCOUNT)
    assert linked_to(decision) == "c-1"


# --------------------------------------------------------------------------- order independence

POOL: tuple[Candidate, ...] = (
    Candidate(1, org()),
    Candidate(2, bare_org()),
    Candidate(3, bare_org(name="Bakkerij de Vries Amsterdam")),
    Candidate(4, org(vat_number="NL987654321B01", coc_number=None, iban=None)),
    Candidate(5, org(email="facturen@bakkerijdevries.nl", vat_number=None, coc_number=None)),
    Candidate(6, person()),
    Candidate(7, person(name="Sanne Bakker-Smit", email=None)),
    Candidate(8, org(), frozenset({ACCOUNT})),
    Candidate("x", bare_org(name="Bakkerij de Vries VOF"), frozenset({ACCOUNT, OTHER})),
    Candidate(9, bare_org(name="Noordervelt Software", postal_code="1012 AB")),
)
INCOMING: tuple[Contact, ...] = (
    org(),
    bare_org(),
    org(vat_number=None, coc_number=None, iban=None),
    person(),
    person(email=None),
    bare_org(name="Noorderveld Software"),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_decision_does_not_depend_on_candidate_order(data: st.DataObject) -> None:
    incoming = data.draw(st.sampled_from(INCOMING), label="incoming")
    subset = data.draw(st.lists(st.sampled_from(POOL), unique=True), label="subset")
    shuffled = data.draw(st.permutations(subset), label="order")
    reference = match_contact(incoming, subset, account=ACCOUNT)
    assert match_contact(incoming, shuffled, account=ACCOUNT) == reference
    assert match_contact(incoming, list(reversed(shuffled)), account=ACCOUNT) == reference


# --------------------------------------------------------------------------- invoices

D1 = dt.date(2026, 3, 2)
D2 = dt.date(2026, 4, 15)


def invoice(**changes: Any) -> Invoice:
    base = Invoice(
        number="2026-0042",
        contact="17",
        issue_date=D1,
        due_date=D1 + dt.timedelta(days=30),
        status="sent",
        subtotal=Decimal("100.00"),
        tax_total=Decimal("21.00"),
        total=Decimal("121.00"),
    )
    return dataclasses.replace(base, **changes)


def match_inv(incoming: Invoice, *candidates: Invoice | InvoiceCandidate) -> MatchDecision:
    built = [
        c if isinstance(c, InvoiceCandidate) else InvoiceCandidate(n, c, frozenset({OTHER}))
        for n, c in enumerate(candidates, start=1)
    ]
    return match_invoice(incoming, built, account=ACCOUNT)


def test_invoice_keys_fold_case_and_whitespace() -> None:
    keys = invoice_keys(invoice(number=" inv 2026-0042 ", reference="SyncD:AbC"))
    assert keys.number == "inv2026-0042"
    assert keys.reference == "syncd:abc"
    assert keys.contact == "17"


def test_invoice_with_equal_number_and_contact_links() -> None:
    decision = match_inv(invoice(number=" 2026-0042", status="paid"), invoice())
    assert decision == Link(1, "number 2026-0042 and contact 17 equal", 1.0)


def test_invoice_with_equal_number_and_different_contact_and_date_is_ambiguous() -> None:
    decision = match_inv(invoice(contact="18", total=Decimal("99.00")), invoice())
    assert isinstance(decision, Ambiguous)
    assert decision.candidates[0].reason == (
        "number 2026-0042 and issue date equal but contacts 18 and 17 differ"
    )


def test_invoice_with_equal_number_and_different_contact_and_total_is_ambiguous() -> None:
    assert ambiguous_ids(match_inv(invoice(contact="18", issue_date=D2), invoice())) == [1]


def test_bare_number_collision_from_another_numbering_series_is_no_match() -> None:
    other = invoice(contact="18", issue_date=D2, total=Decimal("50.00"))
    assert isinstance(match_inv(other, invoice()), NoMatch)


def test_invoice_number_match_with_an_unknown_contact_is_ambiguous() -> None:
    assert ambiguous_ids(match_inv(invoice(contact=None), invoice())) == [1]


def test_invoice_number_and_contact_but_different_date_and_total_is_ambiguous() -> None:
    changed = invoice(issue_date=D2, total=Decimal("242.00"))
    assert ambiguous_ids(match_inv(changed, invoice())) == [1]


def test_invoice_with_equal_number_contact_and_date_but_edited_total_links() -> None:
    assert linked_to(match_inv(invoice(total=Decimal("242.00")), invoice())) == 1


def test_invoice_links_by_client_reference_without_a_number() -> None:
    draft = invoice(number=None, reference="syncd:7f3a")
    decision = match_inv(draft, invoice(number=None, reference="SYNCD:7F3A"))
    assert decision == Link(1, "reference syncd:7f3a equal", 1.0)


def test_invoice_reference_match_with_different_numbers_is_ambiguous() -> None:
    incoming = invoice(number="2026-0043", reference="syncd:7f3a")
    assert ambiguous_ids(match_inv(incoming, invoice(reference="syncd:7f3a"))) == [1]


def test_invoice_reference_match_with_different_contacts_is_ambiguous() -> None:
    incoming = invoice(number=None, contact="18", reference="PO 77")
    assert ambiguous_ids(match_inv(incoming, invoice(number=None, reference="PO 77"))) == [1]


def test_invoice_reference_shared_by_two_candidates_is_ambiguous() -> None:
    incoming = invoice(number=None, reference="Project X")
    a = invoice(number=None, reference="project x")
    b = invoice(number=None, reference="Project X", issue_date=D2)
    assert sorted(ambiguous_ids(match_inv(incoming, a, b))) == [1, 2]


def test_invoice_in_the_same_account_with_equal_number_is_a_duplicate_to_review() -> None:
    duplicate = InvoiceCandidate(1, invoice(), frozenset({ACCOUNT}))
    decision = match_inv(invoice(), duplicate)
    assert isinstance(decision, Ambiguous)
    assert "already linked to another record of this account" in decision.candidates[0].reason


def test_invoice_in_the_same_account_with_a_weak_match_is_ignored() -> None:
    weak = InvoiceCandidate(1, invoice(contact="18"), frozenset({ACCOUNT}))
    assert isinstance(match_inv(invoice(), weak), NoMatch)


def test_invoice_without_number_or_reference_never_matches() -> None:
    decision = match_inv(invoice(number=None), invoice(number=None))
    assert decision == NoMatch("the invoice has neither a number nor a reference")


INVOICE_POOL: tuple[InvoiceCandidate, ...] = (
    InvoiceCandidate(1, invoice()),
    InvoiceCandidate(2, invoice(contact="18")),
    InvoiceCandidate(3, invoice(number=None, reference="syncd:1")),
    InvoiceCandidate(4, invoice(), frozenset({ACCOUNT})),
    InvoiceCandidate(5, invoice(number="2026-0043")),
)


@settings(max_examples=200, deadline=None)
@given(
    incoming=st.sampled_from((invoice(), invoice(reference="syncd:1"), invoice(contact=None))),
    subset=st.lists(st.sampled_from(INVOICE_POOL), unique=True),
    data=st.data(),
)
def test_invoice_decision_does_not_depend_on_candidate_order(
    incoming: Invoice, subset: list[InvoiceCandidate], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(subset))
    assert match_invoice(incoming, shuffled, account=ACCOUNT) == match_invoice(
        incoming, subset, account=ACCOUNT
    )


# --------------------------------------------------------------------------- sandbox world


def seed_to_contact(seed: SeedContact) -> Contact:
    return normalise_contact(
        Contact(
            kind=seed.kind,
            name=seed.name,
            first_name=seed.first_name,
            last_name=seed.last_name,
            email=seed.email,
            phone=seed.phone,
            website=seed.website,
            address_line1=seed.address,
            postal_code=seed.postal_code,
            city=seed.city,
            country=seed.country,
            vat_number=seed.vat_number,
            coc_number=seed.coc_number,
            iban=seed.iban,
            bic=seed.bic,
            customer_number=seed.customer_number,
        )
    )


@dataclasses.dataclass
class _Entity:
    contact: Contact
    accounts: set[str]
    world_keys: set[str]


class _Store:
    """The canonical store as the runner sees it: entities, and a lookup by key values."""

    def __init__(self) -> None:
        self.entities: dict[int, _Entity] = {}
        self.index: dict[tuple[str, object], set[int]] = defaultdict(set)

    @staticmethod
    def lookups(contact: Contact) -> list[tuple[str, object]]:
        keys = contact_keys(contact)
        values: list[tuple[str, object]] = [
            ("vat", keys.vat_number),
            ("coc", keys.coc),
            ("email", keys.email),
            ("iban", keys.iban),
            ("postcode", keys.postal_code),
        ]
        return [(name, value) for name, value in values if value is not None]

    def candidates(self, contact: Contact, *, everything: bool) -> list[Candidate]:
        if everything:
            ids: set[int] = set(self.entities)
        else:
            ids = set().union(*(self.index[k] for k in self.lookups(contact)))
        return [
            Candidate(i, self.entities[i].contact, frozenset(self.entities[i].accounts))
            for i in sorted(ids)
        ]

    def add(self, contact: Contact, account: str, world_key: str) -> None:
        new_id = len(self.entities) + 1
        self.entities[new_id] = _Entity(contact, {account}, {world_key})
        for key in self.lookups(contact):
            self.index[key].add(new_id)


def run_world(
    seed: int, *, everything: bool = False, strip_keys: bool = False
) -> tuple[_Store, list[tuple[str, MatchDecision]], set[str]]:
    """Match every vendor's contacts one by one, creating or linking as the runner would."""
    world = generate_world(SandboxOptions(seed=seed, contacts=200, overlap=0.3))
    store = _Store()
    ambiguous: list[tuple[str, MatchDecision]] = []
    for vendor in VENDORS:
        for record in world[vendor].contacts:
            contact = seed_to_contact(record)
            if strip_keys:
                contact = dataclasses.replace(
                    contact, vat_number=None, coc_number=None, iban=None, email=None
                )
            decision = match_contact(
                contact, store.candidates(contact, everything=everything), account=vendor
            )
            if isinstance(decision, Link):
                entity = store.entities[int(decision.canonical_id)]
                entity.accounts.add(vendor)
                entity.world_keys.add(record.key)
            elif isinstance(decision, NoMatch):
                store.add(contact, vendor, record.key)
            else:
                ambiguous.append((record.key, decision))
    keys = {record.key for vendor in VENDORS for record in world[vendor].contacts}
    return store, ambiguous, keys


@pytest.mark.parametrize("seed", [1, 2, 3, 42])
def test_sandbox_world_matches_to_exactly_one_entity_per_world_contact(seed: int) -> None:
    store, ambiguous, keys = run_world(seed)
    assert ambiguous == []
    false_merges = [e.world_keys for e in store.entities.values() if len(e.world_keys) > 1]
    assert false_merges == []
    assert len(store.entities) == len(keys)
    # And the overlap really was exercised: some entities are linked to several vendors.
    assert sum(len(e.accounts) > 1 for e in store.entities.values()) >= 40


def test_sandbox_world_has_no_false_merge_even_against_every_entity() -> None:
    store, ambiguous, keys = run_world(5, everything=True)
    assert ambiguous == []
    assert all(len(e.world_keys) == 1 for e in store.entities.values())
    assert len(store.entities) == len(keys)


def test_sandbox_world_without_keys_links_only_by_name_and_postcode_and_never_wrongly() -> None:
    store, ambiguous, keys = run_world(1, everything=True, strip_keys=True)
    assert all(len(e.world_keys) == 1 for e in store.entities.values())
    assert ambiguous == []
    # Every copy with a postcode found its entity; only copies without one were missed.
    per_key: dict[str, list[_Entity]] = defaultdict(list)
    for entity in store.entities.values():
        (key,) = entity.world_keys
        per_key[key].append(entity)
    missed = {key: found for key, found in per_key.items() if len(found) > 1}
    assert missed, "the sandbox has persons without an address that overlap"
    for found in missed.values():
        assert all(e.contact.postal_code is None for e in found)
        assert all(e.contact.kind == "person" for e in found)
    assert len(per_key) == len(keys)

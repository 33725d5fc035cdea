"""A seeded, deterministic world of Dutch and Estonian contacts and invoices for the emulators.

``generate_world`` builds the vendor-neutral world once and hands each vendor its share:
every contact lives in one vendor, a share ``options.overlap`` lives in two or more with
small formatting differences per copy (legal-form spelling, e-mail case, phone and VAT
layout, postcode spacing) that normalise to the same identity keys. Nothing here reads the
wall clock: all times are relative to :func:`world_epoch`, so one seed always gives the
same world, byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from syncd.sandbox.base import (
    VENDORS,
    SandboxOptions,
    SeedContact,
    SeedInvoice,
    SeedLine,
    SeedPayment,
    VendorName,
    VendorSeed,
)

CENT = Decimal("0.01")
EPOCH_BASE = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
CRM_VENDORS: tuple[VendorName, ...] = ("simplicate", "perfex")
BOOKKEEPING_VENDORS: tuple[VendorName, ...] = ("moneybird", "simplbooks")
VAT_RATES: dict[str, tuple[Decimal, ...]] = {
    "NL": (Decimal(21), Decimal(9), Decimal(0)),
    "EE": (Decimal(22), Decimal(9), Decimal(0)),
}


def world_epoch(seed: int) -> dt.datetime:
    """The fixed "now" of a seeded world: every generated time lies before it."""
    return EPOCH_BASE - dt.timedelta(days=seed % 28)


# ---------------------------------------------------------------- checksums


def _iban_digits(text: str) -> str:
    return "".join(str(int(ch, 36)) for ch in text)


def iban_checksum_ok(iban: str) -> bool:
    """Whether ``iban`` (spaces allowed, any case) has a valid ISO 13616 mod-97 checksum."""
    compact = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}", compact):
        return False
    return int(_iban_digits(compact[4:] + compact[:4])) % 97 == 1


def make_iban(country: str, bban: str) -> str:
    """A compact IBAN with the check digits computed for ``country`` + ``bban``."""
    remainder = int(_iban_digits(bban + country + "00")) % 97
    return f"{country}{98 - remainder:02d}{bban}"


def nl_elfproef_ok(digits: str) -> bool:
    """The Dutch eleven test (weights 9..2, last digit -1) used by RSIN/BSN."""
    weights: list[int] = [*range(len(digits), 1, -1), -1]
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0


def ee_vat_ok(vat: str) -> bool:
    """Estonian KMKR number check: EE + 9 digits, weights 3,7,1 over the first 8."""
    if not re.fullmatch(r"EE[0-9]{9}", vat):
        return False
    digits = vat[2:]
    total = sum(int(d) * w for d, w in zip(digits[:8], (3, 7, 1, 3, 7, 1, 3, 7), strict=True))
    return (10 - total % 10) % 10 == int(digits[8])


def ee_registry_code_check(first7: str) -> int:
    """Check digit of an Estonian registry code (the same scheme as the personal code)."""
    for weights in ((1, 2, 3, 4, 5, 6, 7), (3, 4, 5, 6, 7, 8, 9)):
        rest = sum(int(d) * w for d, w in zip(first7, weights, strict=True)) % 11
        if rest < 10:
            return rest
    return 0


def ee_account_check(digits: str) -> int:
    """Check digit of an Estonian national bank account number (weights 7,3,1 from the right)."""
    weights = (7, 3, 1)
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def invoice_totals(lines: Iterable[SeedLine]) -> tuple[Decimal, Decimal, Decimal]:
    """(net, vat, total): net per line to the cent, VAT per rate on the rate's net sum."""
    net_by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        net = (line.quantity * line.unit_price).quantize(CENT, ROUND_HALF_UP)
        net_by_rate[line.vat_rate] = net_by_rate.get(line.vat_rate, Decimal(0)) + net
    net_total = sum(net_by_rate.values(), Decimal(0))
    vat_total = sum(
        ((net * rate / 100).quantize(CENT, ROUND_HALF_UP) for rate, net in net_by_rate.items()),
        Decimal(0),
    )
    return net_total, vat_total, net_total + vat_total


# ---------------------------------------------------------------- source material

NL_FIRST = (
    "Jan", "Pieter", "Sanne", "Lotte", "Daan", "Emma", "Sem", "Julia", "Thijs", "Anouk",
    "Bram", "Femke", "Joost", "Marieke", "Ruben", "Eva", "Lars", "Iris", "Koen", "Sophie",
    "Willem", "Maaike", "Niels", "Fleur", "Gerrit", "Ingrid", "Hanneke", "Maarten",
)  # fmt: skip
NL_LAST = (
    "de Vries", "Jansen", "Bakker", "van Dijk", "Visser", "Smit", "Meijer", "de Boer",
    "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker",
    "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer", "van der Linden",
    "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen", "van den Berg",
    "Schouten", "van Beek", "Willems", "van Vliet", "Hoekstra", "Maas", "Verhoeven",
    "Koster", "van Dam", "Prins", "Postma", "Kuipers", "Timmermans", "Groen",
)  # fmt: skip
NL_TRADES = (
    "Bakkerij", "Installatiebedrijf", "Schildersbedrijf", "Adviesbureau",
    "Architectenbureau", "Hoveniersbedrijf", "Loodgietersbedrijf", "Drukkerij",
    "Transportbedrijf", "Accountantskantoor", "Timmerbedrijf", "Autobedrijf",
    "Makelaardij", "Fysiotherapie", "Vertaalbureau", "Cateringbedrijf",
)  # fmt: skip
NL_STEMS = (
    "Groen", "Noorder", "Zuider", "Ooster", "Wester", "Polder", "Duin", "Dijk", "Molen",
    "Haven", "Kade", "Linden", "Eiken", "Beuken", "Zonne", "Wind", "Water", "Licht",
    "Heide", "Veen", "Brug", "Toren", "Vlinder", "Kompas",
)  # fmt: skip
NL_ENDINGS = ("veld", "horst", "stein", "hof", "dal", "kamp", "burg", "licht", "wijk", "stroom")
NL_SECTORS = (
    "Software", "Consultancy", "Logistiek", "Techniek", "Media", "Bouw", "Advies",
    "Groep", "Installaties", "IT", "Communicatie", "Projecten", "Data", "Design",
)  # fmt: skip
NL_CITIES: tuple[tuple[str, int, int, str], ...] = (
    # city, lowest and highest postcode digits, area code
    ("Amsterdam", 1011, 1109, "20"), ("Rotterdam", 3011, 3089, "10"),
    ("Den Haag", 2491, 2599, "70"), ("Utrecht", 3511, 3585, "30"),
    ("Eindhoven", 5611, 5658, "40"), ("Groningen", 9711, 9747, "50"),
    ("Haarlem", 2011, 2037, "23"), ("Zwolle", 8011, 8043, "38"),
    ("Arnhem", 6811, 6846, "26"), ("Leiden", 2311, 2334, "71"),
    ("Maastricht", 6211, 6229, "43"), ("Breda", 4811, 4839, "76"),
    ("Nijmegen", 6511, 6546, "24"), ("Amersfoort", 3811, 3829, "33"),
)  # fmt: skip
NL_STREETS = (
    "Kerkstraat", "Hoofdstraat", "Dorpsstraat", "Stationsweg", "Marktplein", "Molenweg",
    "Industrieweg", "Keizersgracht", "Herengracht", "Prinsengracht", "Oudegracht",
    "Grote Markt", "Kanaalweg", "Parallelweg", "Schoolstraat", "Julianalaan",
    "Wilhelminastraat", "Beatrixlaan", "Havenstraat", "Nieuwstraat", "Lange Voorhout",
)  # fmt: skip
NL_POSTCODE_LETTERS = "ABCDEGHJKLMNPRTVWXZ"
NL_BANKS: tuple[tuple[str, str], ...] = (
    ("ABNA", "ABNANL2A"), ("INGB", "INGBNL2A"), ("RABO", "RABONL2U"), ("TRIO", "TRIONL2U"),
    ("SNSB", "SNSBNL2A"), ("KNAB", "KNABNL2H"), ("BUNQ", "BUNQNL2A"), ("ASNB", "ASNBNL21"),
)  # fmt: skip

EE_FIRST = (
    "Mart", "Kadri", "Jaan", "Liis", "Andres", "Kristi", "Toomas", "Triin", "Rasmus",
    "Marju", "Tõnis", "Katrin", "Priit", "Eva", "Margus", "Anu", "Siim", "Mari", "Karl",
    "Helen", "Jüri", "Piret", "Ott", "Kärt", "Urmas", "Maarja",
)  # fmt: skip
EE_LAST = (
    "Tamm", "Saar", "Sepp", "Mägi", "Kask", "Kukk", "Rebane", "Ilves", "Pärn", "Koppel",
    "Lepik", "Kallas", "Oja", "Raudsepp", "Lill", "Vaher", "Kuusk", "Luik", "Karu", "Kütt",
    "Kõiv", "Teder", "Põder", "Mets", "Laur", "Järv", "Org", "Paju",
)  # fmt: skip
EE_STEMS = (
    "Põhjala", "Lõuna", "Saare", "Kalevi", "Toompea", "Kadrioru", "Emajõe", "Pärnu",
    "Tallinna", "Tartu", "Viru", "Harju", "Läänemere", "Peipsi", "Kuldne", "Roheline",
    "Tuule", "Metsa", "Kivi", "Järve", "Nõmme", "Rannamõisa", "Karu", "Ilmarise",
)  # fmt: skip
EE_SECTORS = (
    "Tarkvara", "Ehitus", "Logistika", "Puit", "Disain", "Konsultatsioonid", "Meedia",
    "Transport", "Energia", "Kinnisvara", "Arendus", "Tehnika", "IT", "Raamatupidamine",
    "Turundus", "Andmed",
)  # fmt: skip
EE_CITIES: tuple[tuple[str, int, int, str], ...] = (
    # city, lowest and highest postal code, first digit of a landline
    ("Tallinn", 10111, 13919, "6"), ("Tartu", 50101, 51014, "7"),
    ("Pärnu", 80010, 80050, "4"), ("Narva", 20101, 21020, "3"),
    ("Viljandi", 71001, 71024, "4"), ("Rakvere", 44301, 44317, "3"),
    ("Kuressaare", 93801, 93819, "4"), ("Haapsalu", 90501, 90507, "4"),
)  # fmt: skip
EE_STREETS = (
    "Narva mnt", "Pärnu mnt", "Tartu mnt", "Viru tn", "Rüütli tn", "Pikk tn", "Lai tn",
    "Riia tn", "Vabaduse pst", "Rävala pst", "Sõpruse pst", "Mustamäe tee", "Peterburi tee",
    "Ülikooli tn", "Kalda tee", "Tööstuse tn", "Kesk tn", "Jõe tn",
)  # fmt: skip
EE_BANKS: tuple[tuple[str, str], ...] = (
    ("22", "HABAEE2X"), ("10", "EEUHEE2X"), ("77", "LHVBEE22"), ("17", "NDEAEE2X"),
    ("96", "RIKOEE22"), ("42", "EKRDEE22"),
)  # fmt: skip

# (description, unit kind, lowest and highest unit price in cents, VAT class)
# VAT class: "std" standard rate, "low" reduced rate, "zero" exempt / 0 %.
Service = tuple[str, str, int, int, str]
NL_SERVICES: tuple[Service, ...] = (
    ("Advieswerkzaamheden {month}", "hours", 8500, 14500, "std"),
    ("Ontwikkeling maatwerksoftware", "hours", 7500, 12500, "std"),
    ("Projectmanagement", "hours", 8000, 11000, "std"),
    ("UX-ontwerp en prototypes", "hours", 7000, 10500, "std"),
    ("Hosting en onderhoud {month}", "month", 4995, 29900, "std"),
    ("Licentie boekhoudkoppeling (per gebruiker, jaar)", "seats", 9900, 34900, "std"),
    ("Support-strippenkaart 10 uur", "pieces", 85000, 125000, "std"),
    ("Workshop op locatie", "days", 95000, 165000, "std"),
    ("Reiskosten", "km", 21, 23, "std"),
    ("Vakliteratuur", "pieces", 2495, 5990, "low"),
    ("Lunch tijdens workshop", "persons", 1250, 1850, "low"),
    ("Opleiding (vrijgesteld van btw)", "days", 45000, 89500, "zero"),
    ("Doorbelaste leges", "pieces", 3500, 15000, "zero"),
)
EE_SERVICES: tuple[Service, ...] = (
    ("Konsultatsiooniteenus {month}", "hours", 6000, 12000, "std"),
    ("Tarkvaraarendus", "hours", 5500, 9500, "std"),
    ("Projektijuhtimine", "hours", 6000, 9000, "std"),
    ("Veebilehe hooldus {month}", "month", 3900, 19900, "std"),
    ("Serveri majutus {month}", "month", 2500, 14900, "std"),
    ("Tarkvara litsents (kasutaja, aasta)", "seats", 7900, 24900, "std"),
    ("Koolitus", "days", 60000, 120000, "std"),
    ("Sõidukulud", "km", 30, 35, "std"),
    ("Erialane kirjandus", "pieces", 1990, 4900, "low"),
    ("Majutus", "nights", 6500, 12000, "low"),
    ("Riigilõiv", "pieces", 2000, 9000, "zero"),
)
QUANTITIES: dict[str, tuple[str, ...]] = {
    "hours": ("0.5", "1", "1.5", "2", "2.5", "3", "4", "6", "7.5", "8", "12", "16", "24", "32"),
    "month": ("1", "1", "1", "3", "12"),
    "seats": ("1", "2", "3", "5", "10"),
    "pieces": ("1", "1", "2", "3"),
    "days": ("0.5", "1", "1", "2"),
    "km": ("18", "36", "54", "84", "120", "176"),
    "persons": ("6", "8", "12", "15"),
    "nights": ("1", "2", "3"),
}
NL_MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
    "september", "oktober", "november", "december",
)  # fmt: skip
EE_MONTHS = (
    "jaanuar", "veebruar", "märts", "aprill", "mai", "juuni", "juuli", "august",
    "september", "oktoober", "november", "detsember",
)  # fmt: skip

InvoiceStatus = Literal["draft", "open", "sent", "partially_paid", "paid", "overdue", "cancelled"]
STATUS_WEIGHTS: tuple[tuple[InvoiceStatus, int], ...] = (
    ("draft", 10),
    ("open", 25),  # "sent" on the CRM vendors
    ("partially_paid", 12),
    ("paid", 38),
    ("overdue", 15),
)


# ---------------------------------------------------------------- small helpers


def ascii_fold(text: str) -> str:
    """ "Põhjala Mägi" -> "Pohjala Magi": for e-mail addresses and domains."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", ascii_fold(text).lower())


def _digits(rng: random.Random, n: int) -> str:
    return f"{rng.randrange(10**n):0{n}d}"


def _cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


@dataclass(slots=True)
class _Unique:
    """Values already handed out in this world (names, domains, numbers)."""

    seen: set[str] = dataclasses.field(default_factory=set)

    def claim(self, value: str) -> bool:
        if value in self.seen:
            return False
        self.seen.add(value)
        return True


@dataclass(slots=True)
class _Registers:
    names: _Unique = dataclasses.field(default_factory=_Unique)
    domains: _Unique = dataclasses.field(default_factory=_Unique)
    emails: _Unique = dataclasses.field(default_factory=_Unique)
    numbers: _Unique = dataclasses.field(default_factory=_Unique)  # VAT, CoC, IBAN


def _unique_number(rng: random.Random, registers: _Registers, make: Callable[[], str]) -> str:
    while True:
        value = make()
        if registers.numbers.claim(value):
            return value


# ---------------------------------------------------------------- identity numbers


def _nl_rsin(rng: random.Random) -> str:
    while True:
        first8 = str(rng.randint(1, 9)) + _digits(rng, 7)
        total = sum(int(d) * w for d, w in zip(first8, range(9, 1, -1), strict=True))
        check = total % 11
        if check < 10:
            return first8 + str(check)


def _nl_vat(rng: random.Random) -> str:
    return f"NL{_nl_rsin(rng)}B{rng.choice(('01', '01', '01', '02', '03'))}"


def _nl_kvk(rng: random.Random) -> str:
    return str(rng.randint(10_000_000, 99_999_999))


def _nl_iban(rng: random.Random) -> tuple[str, str]:
    bank, bic = rng.choice(NL_BANKS)
    if bank == "INGB":
        account = "000" + str(rng.randint(1_000_000, 9_999_999))  # old Postbank numbers
    else:
        while True:  # nine-digit account numbers passed the eleven test (weights 9..1)
            eight = str(rng.randint(1, 9)) + _digits(rng, 7)
            last = -sum(int(d) * w for d, w in zip(eight, range(9, 1, -1), strict=True)) % 11
            if last < 10:
                break
        account = f"0{eight}{last}"
    return make_iban("NL", bank + account), bic


def _ee_vat(rng: random.Random) -> str:
    first8 = "10" + _digits(rng, 6)
    total = sum(int(d) * w for d, w in zip(first8, (3, 7, 1, 3, 7, 1, 3, 7), strict=True))
    return f"EE{first8}{(10 - total % 10) % 10}"


def _ee_registry_code(rng: random.Random) -> str:
    first7 = rng.choice(("10", "11", "12", "14", "16")) + _digits(rng, 5)
    return first7 + str(ee_registry_code_check(first7))


def _ee_iban(rng: random.Random) -> tuple[str, str]:
    bank, bic = rng.choice(EE_BANKS)
    body = bank + _digits(rng, 9)
    national = body + str(ee_account_check(body))
    return make_iban("EE", bank + national.zfill(14)), bic


def _unique_iban(rng: random.Random, registers: _Registers, country: str) -> tuple[str, str]:
    while True:
        iban, bic = _nl_iban(rng) if country == "NL" else _ee_iban(rng)
        if registers.numbers.claim(iban):
            return iban, bic


# ---------------------------------------------------------------- contacts


@dataclass(slots=True)
class _Place:
    address: str
    postal_code: str
    city: str
    landline: str


def _nl_place(rng: random.Random) -> _Place:
    city, low, high, area = rng.choice(NL_CITIES)
    letters = rng.choice(NL_POSTCODE_LETTERS) + rng.choice(NL_POSTCODE_LETTERS)
    while letters in {"SA", "SD", "SS"}:
        letters = rng.choice(NL_POSTCODE_LETTERS) + rng.choice(NL_POSTCODE_LETTERS)
    number = str(rng.randint(1, 240)) + rng.choice(("", "", "", "", "a", "b", "-2", " bis"))
    local = _digits(rng, 7 if len(area) == 2 else 6)
    return _Place(
        address=f"{rng.choice(NL_STREETS)} {number}",
        postal_code=f"{rng.randint(low, high)} {letters}",
        city=city,
        landline=f"+31 {area} {local[:3]} {local[3:]}",
    )


def _ee_place(rng: random.Random) -> _Place:
    city, low, high, first = rng.choice(EE_CITIES)
    number = str(rng.randint(1, 120)) + rng.choice(("", "", "", "a", f"-{rng.randint(1, 40)}"))
    local = first + _digits(rng, 6)
    return _Place(
        address=f"{rng.choice(EE_STREETS)} {number}",
        postal_code=str(rng.randint(low, high)),
        city=city,
        landline=f"+372 {local[:3]} {local[3:]}",
    )


def _mobile(rng: random.Random, country: str) -> str:
    if country == "NL":
        return f"+31 6 {_digits(rng, 4)} {_digits(rng, 4)}"
    return f"+372 5{_digits(rng, 3)} {_digits(rng, 4)}"


def _org_name(rng: random.Random, country: str) -> tuple[str, str]:
    """(bare name, legal form)."""
    if country == "NL":
        style = rng.random()
        if style < 0.35:
            bare = f"{rng.choice(NL_TRADES)} {rng.choice(NL_LAST)}"
        elif style < 0.5:
            bare = f"{_surname_cap(rng.choice(NL_LAST))} & {_surname_cap(rng.choice(NL_LAST))}"
        else:
            bare = f"{rng.choice(NL_STEMS)}{rng.choice(NL_ENDINGS)} {rng.choice(NL_SECTORS)}"
        return bare, rng.choices(("B.V.", "V.O.F.", ""), weights=(78, 10, 12))[0]
    style = rng.random()
    if style < 0.2:
        bare = f"{rng.choice(EE_LAST)} ja {rng.choice(EE_LAST)}"
    else:
        bare = f"{rng.choice(EE_STEMS)} {rng.choice(EE_SECTORS)}"
    return bare, rng.choices(("OÜ", "AS"), weights=(80, 20))[0]


def _surname_cap(last: str) -> str:
    """Dutch surnames lose their lower-case particle when they stand alone: "Van Dijk"."""
    return last[0].upper() + last[1:]


def _person_name(rng: random.Random, country: str) -> tuple[str, str]:
    if country == "NL":
        return rng.choice(NL_FIRST), rng.choice(NL_LAST)
    return rng.choice(EE_FIRST), rng.choice(EE_LAST)


def _world_contact(
    rng: random.Random, registers: _Registers, key: str, epoch: dt.datetime
) -> SeedContact:
    country = "NL" if rng.random() < 0.6 else "EE"
    place = _nl_place(rng) if country == "NL" else _ee_place(rng)
    tld = "nl" if country == "NL" else "ee"
    is_person = rng.random() < 0.2
    created = epoch - dt.timedelta(seconds=rng.randint(30 * 86400, 3 * 365 * 86400))
    updated = created + dt.timedelta(
        seconds=rng.randint(0, int((epoch - created).total_seconds()) - 86400)
    )

    if is_person:
        while True:
            first, last = _person_name(rng, country)
            name = f"{first} {last}"
            if registers.names.claim(name.lower()):
                break
            if rng.random() < 0.5:  # a namesake is fine now and then, not all the time
                break
        provider = rng.choice(
            ("gmail.com", "outlook.com", "hotmail.nl", "ziggo.nl", "kpnmail.nl")
            if country == "NL"
            else ("gmail.com", "mail.ee", "hot.ee", "online.ee")
        )
        email = _unique_email(registers, f"{_slug(first)}.{_slug(last)}", provider)
        iban, bic = _unique_iban(rng, registers, country) if rng.random() < 0.7 else (None, None)
        has_address = rng.random() < 0.6
        return SeedContact(
            key=key,
            kind="person",
            name=name,
            first_name=first,
            last_name=last,
            email=email,
            phone=_mobile(rng, country) if rng.random() < 0.85 else None,
            website=None,
            address=place.address if has_address else None,
            postal_code=place.postal_code if has_address else None,
            city=place.city if has_address else None,
            country=country,
            vat_number=None,
            coc_number=None,
            iban=iban,
            bic=bic,
            customer_number=None,
            created_at=created,
            updated_at=updated,
        )

    for attempt in range(16):
        bare, form = _org_name(rng, country)
        if attempt >= 8:  # a crowded world: set it apart by its city
            bare = f"{bare} {place.city}"
        if registers.names.claim(_slug(bare)):
            break
    else:
        bare = f"{bare} {key[1:]}"
        registers.names.claim(_slug(bare))
    name = f"{bare} {form}".strip()
    domain = _unique_domain(registers, _slug(bare), tld)
    mailbox = rng.choice(
        ("info", "administratie", "boekhouding", "facturen", "info")
        if country == "NL"
        else ("info", "arved", "raamatupidamine", "info")
    )
    if country == "NL":
        vat = _unique_number(rng, registers, lambda: _nl_vat(rng)) if rng.random() < 0.95 else None
        coc = _unique_number(rng, registers, lambda: _nl_kvk(rng))
    else:
        vat = _unique_number(rng, registers, lambda: _ee_vat(rng)) if rng.random() < 0.75 else None
        coc = _unique_number(rng, registers, lambda: _ee_registry_code(rng))
    iban, bic = _unique_iban(rng, registers, country) if rng.random() < 0.9 else (None, None)
    return SeedContact(
        key=key,
        kind="organization",
        name=name,
        first_name=None,
        last_name=None,
        email=_unique_email(registers, mailbox, domain) if rng.random() < 0.97 else None,
        phone=place.landline if rng.random() < 0.9 else None,
        website=f"https://www.{domain}" if rng.random() < 0.85 else None,
        address=place.address,
        postal_code=place.postal_code,
        city=place.city,
        country=country,
        vat_number=vat,
        coc_number=coc,
        iban=iban,
        bic=bic,
        customer_number=None,
        created_at=created,
        updated_at=updated,
    )


def _unique_domain(registers: _Registers, stem: str, tld: str) -> str:
    stem = stem[:40] or "bedrijf"
    candidate = f"{stem}.{tld}"
    n = 2
    while not registers.domains.claim(candidate):
        candidate = f"{stem}{n}.{tld}"
        n += 1
    return candidate


def _unique_email(registers: _Registers, local: str, domain: str) -> str:
    candidate = f"{local}@{domain}"
    n = 2
    while not registers.emails.claim(candidate):
        candidate = f"{local}{n}@{domain}"
        n += 1
    return candidate


# ---------------------------------------------------------------- per-copy formatting


def _vary_name(rng: random.Random, c: SeedContact) -> str | None:
    if c.kind != "organization":
        return None
    name = c.name
    options: list[str] = []
    if name.endswith(" B.V."):
        base = name[: -len(" B.V.")]
        options += [f"{base} BV", f"{base} B.V", f"{base} bv"]
    if name.endswith(" V.O.F."):
        base = name[: -len(" V.O.F.")]
        options += [f"{base} VOF", f"{base} v.o.f."]
    if name.endswith(" OÜ"):
        base = name[: -len(" OÜ")]
        options += [f"{base} OU", f"OÜ {base}", f"Osaühing {base}"]
    if name.endswith(" AS"):
        base = name[: -len(" AS")]
        options += [f"AS {base}", f"Aktsiaselts {base}"]
    for particle in (" de ", " van der ", " van den ", " van "):
        if particle in name:
            options.append(name.replace(particle, particle.title(), 1))
            break
    if " & " in name:
        options.append(name.replace(" & ", " en ", 1))
    if not options:
        options.append(name.upper() if rng.random() < 0.5 else f"{name} ")
    return rng.choice(options)


def _vary_email(rng: random.Random, c: SeedContact) -> str | None:
    if not c.email:
        return None
    local, _, domain = c.email.partition("@")
    return rng.choice(
        (
            f"{local.capitalize()}@{domain}",
            c.email.upper(),
            f"{local}@{domain.capitalize()}",
        )
    )


def _vary_phone(rng: random.Random, c: SeedContact) -> str | None:
    if not c.phone:
        return None
    code, _, rest = c.phone.partition(" ")
    digits = rest.replace(" ", "")
    if code == "+31":
        area_len = 1 if digits.startswith("6") else 2
        national = "0" + digits
        options = [
            f"0{digits[:area_len]}-{digits[area_len:]}",
            national,
            f"+31{digits}",
            f"0031 {digits[:area_len]} {digits[area_len:]}",
        ]
    else:
        options = [digits, f"+372{digits}", f"(+372) {digits}", f"{digits[:4]} {digits[4:]}"]
    return rng.choice(options)


def _vary_vat(rng: random.Random, c: SeedContact) -> str | None:
    vat = c.vat_number
    if not vat:
        return None
    if vat.startswith("NL"):
        d = vat[2:11]
        return rng.choice(
            (f"NL {d[:4]}.{d[4:6]}.{d[6:]}.{vat[11:]}", vat.lower(), f"NL{d} {vat[11:]}")
        )
    d = vat[2:]
    return rng.choice((f"EE {d[:3]} {d[3:6]} {d[6:]}", vat.lower(), f"EE {d}"))


def _vary_postcode(rng: random.Random, c: SeedContact) -> str | None:
    if not c.postal_code or c.country != "NL":
        return None
    return rng.choice((c.postal_code.replace(" ", ""), c.postal_code.lower()))


def _vary_iban(rng: random.Random, c: SeedContact) -> str | None:
    if not c.iban:
        return None
    grouped = " ".join(c.iban[i : i + 4] for i in range(0, len(c.iban), 4))
    return rng.choice((grouped, grouped.lower() if rng.random() < 0.3 else grouped))


def _vary_website(rng: random.Random, c: SeedContact) -> str | None:
    if not c.website:
        return None
    host = c.website.removeprefix("https://www.")
    return rng.choice((f"www.{host}", f"http://{host}", f"https://{host}/"))


def _vary_coc(rng: random.Random, c: SeedContact) -> str | None:
    if not c.coc_number:
        return None
    return f"{c.coc_number[:4]} {c.coc_number[4:]}"


VARIATIONS: tuple[tuple[str, Callable[[random.Random, SeedContact], str | None]], ...] = (
    ("name", _vary_name),
    ("email", _vary_email),
    ("phone", _vary_phone),
    ("vat_number", _vary_vat),
    ("postal_code", _vary_postcode),
    ("iban", _vary_iban),
    ("website", _vary_website),
    ("coc_number", _vary_coc),
)


def _copy_for_vendor(rng: random.Random, contact: SeedContact, epoch: dt.datetime) -> SeedContact:
    """The same real-world contact as typed into another system by another person."""
    changes: dict[str, Any] = {}
    candidates = [(field, vary) for field, vary in VARIATIONS]
    rng.shuffle(candidates)
    wanted = rng.randint(2, 4)
    for field, vary in candidates:
        value = vary(rng, contact)
        if value is not None and value != getattr(contact, field):
            changes[field] = value
        if len(changes) >= wanted:
            break
    created = contact.created_at + dt.timedelta(
        seconds=rng.randint(0, max(1, int((epoch - contact.created_at).total_seconds()) // 2))
    )
    span = int((epoch - created).total_seconds()) - 3600
    updated = created + dt.timedelta(seconds=rng.randint(0, max(0, span)))
    return dataclasses.replace(contact, created_at=created, updated_at=updated, **changes)


# ---------------------------------------------------------------- invoices


def _line(rng: random.Random, country: str, issue: dt.date) -> SeedLine:
    services = NL_SERVICES if country == "NL" else EE_SERVICES
    months = NL_MONTHS if country == "NL" else EE_MONTHS
    description, unit, low, high, vat_class = rng.choice(services)
    previous_month = months[(issue.month - 2) % 12]
    description = description.format(
        month=f"{previous_month} {issue.year if issue.month > 1 else issue.year - 1}"
    )
    quantity = Decimal(rng.choice(QUANTITIES[unit]))
    cents = rng.randint(low, high)
    if high >= 1000 and rng.random() < 0.5:
        cents -= cents % 500  # round prices are common: 95.00, 1250.00
    while (quantity * cents) % 1:  # keep each line's net a whole number of cents
        cents -= 1
    rates = VAT_RATES[country]
    rate = {"std": rates[0], "low": rates[1], "zero": rates[2]}[vat_class]
    return SeedLine(
        description=description, quantity=quantity, unit_price=_cents(cents), vat_rate=rate
    )


def _invoice(
    rng: random.Random,
    key: str,
    contact: SeedContact,
    crm: bool,
    epoch: dt.datetime,
) -> SeedInvoice:
    today = epoch.date()
    status: InvoiceStatus = rng.choices(
        [s for s, _ in STATUS_WEIGHTS], weights=[w for _, w in STATUS_WEIGHTS]
    )[0]
    term = rng.choice((14, 30, 30)) if contact.country == "NL" else rng.choice((7, 14, 14, 21))
    if status == "draft":
        issue = today - dt.timedelta(days=rng.randint(0, 7))
    elif status == "open":
        issue = today - dt.timedelta(days=rng.randint(0, term - 1))
    elif status == "partially_paid":
        issue = today - dt.timedelta(days=rng.randint(5, 75))
    elif status == "paid":
        issue = today - dt.timedelta(days=rng.randint(10, 420))
    else:  # overdue
        issue = today - dt.timedelta(days=rng.randint(term + 1, term + 120))
    due = issue + dt.timedelta(days=term)
    lines = tuple(_line(rng, contact.country, issue) for _ in range(rng.randint(1, 10)))
    _, _, total = invoice_totals(lines)

    payments: tuple[SeedPayment, ...] = ()
    last_day = today - dt.timedelta(days=1)
    if status in {"paid", "partially_paid"}:
        latest = min(last_day, due + dt.timedelta(days=20))
        paid_on = issue + dt.timedelta(days=rng.randint(1, max(1, (latest - issue).days)))
        paid_on = min(paid_on, last_day)
        if status == "paid":
            amount = total
        else:
            amount = (
                (total * Decimal(rng.randint(20, 80)) / 100).quantize(Decimal(1)).quantize(CENT)
            )
            if not Decimal(0) < amount < total:
                amount = (total / 2).quantize(CENT, ROUND_HALF_UP)
        payments = (SeedPayment(date=paid_on, amount=amount),)

    created = dt.datetime.combine(issue, dt.time(rng.randint(7, 17), rng.randint(0, 59)), dt.UTC)
    created = min(created, epoch - dt.timedelta(minutes=rng.randint(5, 600)))
    if payments:
        updated = dt.datetime.combine(
            payments[-1].date, dt.time(rng.randint(8, 18), rng.randint(0, 59)), dt.UTC
        )
    elif status == "draft":
        updated = created
    else:
        updated = created + dt.timedelta(minutes=rng.randint(2, 240))
    updated = max(created, min(updated, epoch - dt.timedelta(minutes=1)))
    final_status: InvoiceStatus = "sent" if status == "open" and crm else status
    return SeedInvoice(
        key=key,
        contact_key=contact.key,
        number=None,  # numbered per vendor once all of its invoices exist
        issue_date=issue,
        due_date=due,
        currency="EUR",
        status=final_status,
        lines=lines,
        payments=payments,
        created_at=created,
        updated_at=updated,
    )


def _number_invoices(invoices: Sequence[SeedInvoice]) -> list[SeedInvoice]:
    """Number every non-draft invoice "YYYY-NNNN" in issue order, per year."""
    per_year: dict[int, int] = {}
    numbered: dict[str, SeedInvoice] = {}
    for inv in sorted(invoices, key=lambda i: (i.issue_date, i.created_at, i.key)):
        if inv.status == "draft":
            numbered[inv.key] = inv
            continue
        per_year[inv.issue_date.year] = per_year.get(inv.issue_date.year, 0) + 1
        number = f"{inv.issue_date.year}-{per_year[inv.issue_date.year]:04d}"
        numbered[inv.key] = dataclasses.replace(inv, number=number)
    return [numbered[inv.key] for inv in invoices]


# ---------------------------------------------------------------- the world


def _width(n: int) -> int:
    return max(4, len(str(n)))


def generate_world(options: SandboxOptions) -> dict[VendorName, VendorSeed]:
    """The seeded world, split over the four vendors. Same options, same world."""
    rng = random.Random(options.seed)  # noqa: S311 - reproducible test data, not secrets
    epoch = world_epoch(options.seed)
    registers = _Registers()
    width = _width(options.contacts)
    world = [
        _world_contact(rng, registers, f"c{i + 1:0{width}d}", epoch)
        for i in range(options.contacts)
    ]

    # Every contact gets a home vendor, round robin over a shuffled order so each vendor
    # holds about a quarter; a share `overlap` also lives in one or two more vendors.
    order = list(range(len(world)))
    rng.shuffle(order)
    homes: dict[int, list[VendorName]] = {
        index: [VENDORS[position % len(VENDORS)]] for position, index in enumerate(order)
    }
    overlap = max(0.0, min(1.0, options.overlap))
    shared = sorted(rng.sample(range(len(world)), round(len(world) * overlap)))
    for index in shared:
        others = [v for v in VENDORS if v not in homes[index]]
        extra = 2 if rng.random() < 0.2 else 1
        homes[index].extend(rng.sample(others, extra))

    per_vendor: dict[VendorName, list[SeedContact]] = {v: [] for v in VENDORS}
    for index, contact in enumerate(world):
        first, *rest = homes[index]
        per_vendor[first].append(contact)
        for vendor in rest:
            per_vendor[vendor].append(_copy_for_vendor(rng, contact, epoch))
    for vendor in VENDORS:
        per_vendor[vendor].sort(key=lambda c: c.key)
        per_vendor[vendor] = [
            dataclasses.replace(c, customer_number=str(1001 + n))
            for n, c in enumerate(per_vendor[vendor])
        ]

    invoices: dict[VendorName, list[SeedInvoice]] = {v: [] for v in VENDORS}
    stocked = [v for v in VENDORS if per_vendor[v]]
    inv_width = _width(options.invoices)
    for n in range(options.invoices if stocked else 0):
        vendor = stocked[n % len(stocked)]
        contact = rng.choice(per_vendor[vendor])
        key = f"i{n + 1:0{inv_width}d}"
        invoices[vendor].append(_invoice(rng, key, contact, vendor in CRM_VENDORS, epoch))

    return {
        vendor: VendorSeed(
            contacts=tuple(per_vendor[vendor]),
            invoices=tuple(_number_invoices(invoices[vendor])),
        )
        for vendor in VENDORS
    }


def world_to_json(world: dict[VendorName, VendorSeed]) -> dict[str, Any]:
    """The world as JSON-able data (Decimals and dates as strings), for dumps and diffs."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dt.date):  # datetimes too
            return value.isoformat()
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {
        vendor: {
            "contacts": [plain(dataclasses.asdict(c)) for c in seed.contacts],
            "invoices": [plain(dataclasses.asdict(i)) for i in seed.invoices],
        }
        for vendor, seed in world.items()
    }


def dump_world(world: dict[VendorName, VendorSeed]) -> str:
    """A canonical JSON text of the world: equal worlds give equal text."""
    return json.dumps(world_to_json(world), sort_keys=True, ensure_ascii=False, indent=1)

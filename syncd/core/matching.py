"""Identity matching: which canonical entity, if any, an unlinked vendor record is.

DESIGN §3 step 4. A record that is not yet linked is compared with the canonical entities
the runner fetched for it (by the values of :func:`contact_keys` / :func:`invoice_keys`),
and the matcher returns one :data:`MatchDecision`:

``Link``
    exactly one confident match: link the record to that entity.
``Ambiguous``
    the evidence points at more than one entity, contradicts itself, or is too weak to
    act on: the record goes to the review queue and nothing is created.
``NoMatch``
    nothing matches: create a new canonical entity.

Duplicates are the complaint users have most about sync tools, so every doubt becomes
``Ambiguous``, never a guess. Everything is compared in normalised form
(:mod:`syncd.core.model`), so formatting differences between vendors (legal-form
spelling, e-mail case, VAT and IBAN layout, postcode spacing, phone format) never matter.

Contacts
--------
Keys (:class:`ContactKeys`). Legal-entity keys: the VAT number and the chamber of
commerce number (with its country; registry numbers are only unique within one
country). Contact keys: the IBAN and the e-mail address. Values that cannot be real
(an IBAN failing its mod-97 check, a VAT number with fewer than six digits or only
zeros, an e-mail without a domain) are no key at all. A role mailbox (``info@``,
``administratie@``, ``facturen@``, ``arved@``...) is a *weak* e-mail key: one
bookkeeping office often receives the invoices of many clients at one such address.

Per candidate:

1. If some key agrees:

   - a legal-entity key that *differs* at the same time (same e-mail, other VAT number;
     same VAT number, other chamber of commerce number, as in a Dutch fiscal unity) is a
     contradiction: ambiguous; except when the only agreeing key is a role mailbox
     (a bookkeeping office's facturen@ serves many companies): then two legal entities,
     no match, unless the names are confidently the same (ambiguous);
   - an agreeing VAT or chamber of commerce number is confident, also between a person
     and an organization (a sole trader is one legal entity);
   - when only the IBAN and/or the e-mail agree, the kinds must be equal (a one-man
     business and its owner share a mailbox and an account, yet users keep them apart)
     and the names must not be clearly different (similarity below
     ``EMAIL_NAME_FLOOR``); a role mailbox alone also needs a confident name
     (``CONFIDENT_NAME``). Otherwise: ambiguous.

2. If no key agrees, the normalised names (:func:`normalise_name`, compared by
   :func:`name_similarity`) and postcodes decide, and only between two
   contacts of the same kind whose postcodes are both known and equal (a name alone
   never links: namesakes and trade names are common), and only when no legal-entity
   key differs:

   - similarity ``>= CONFIDENT_NAME``: confident, unless the IBANs or e-mail addresses
     differ (then ambiguous);
   - ``POSSIBLE_NAME <= similarity < CONFIDENT_NAME``: ambiguous;
   - below: no match.

3. A candidate already linked to the incoming record's own account is another record
   of that same vendor: two records in one vendor are two entities. It is never a link
   target; when it would have been a confident match (or keys agree), that is a
   duplicate a human made in the vendor, and the decision is ambiguous.

Over all candidates: one confident candidate that shares a key, and no other candidate
that shares a key or matches confidently by name, links. More than one candidate
sharing a key (VAT matches A while the e-mail matches B) is ambiguous. Without any
shared key, one confident name match links, several are ambiguous, and possible matches
alone are ambiguous. The decision never depends on the order of the candidates.

Invoices
--------
Keys (:class:`InvoiceKeys`): the invoice number and our client reference (the token
the push writes into the vendor's reference field), each compared without case and
whitespace, and the contact (a canonical contact id, translated by the runner).

- number and contact equal: confident, unless both the issue date and the total differ
  (then ambiguous);
- number equal, contact different: ambiguous when the issue date, the total or the
  reference agrees; a bare number collision with a different contact, date and total is
  another invoice from an independent numbering series (every vendor numbers its own)
  and no match;
- number equal, contact unknown on either side: ambiguous;
- reference equal: confident, unless the numbers or the contacts differ (ambiguous).

A candidate linked to the incoming record's own account only matters when it would be a
confident match: then ambiguous (a duplicate in the vendor). One confident candidate
and nothing else links; anything more is ambiguous.

Scores are a confidence in ``[0, 1]`` for people and sorting (1.0 for agreeing keys, the
name similarity for name matches, the share of agreeing keys for a contradiction),
rounded to two decimals so that a printed score is the compared one; the decision
itself follows the rules above.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, TypeAlias, TypeVar

from syncd.core.model import (
    Contact,
    ContactKind,
    Invoice,
    clean_text,
    normalise_code,
    normalise_contact,
    normalise_invoice,
)

__all__ = [
    "CONFIDENT_NAME",
    "EMAIL_NAME_FLOOR",
    "GENERIC_MAILBOXES",
    "LEGAL_FORMS",
    "POSSIBLE_NAME",
    "AccountRef",
    "Ambiguous",
    "Candidate",
    "CanonicalId",
    "ContactKeys",
    "InvoiceCandidate",
    "InvoiceKeys",
    "Link",
    "MatchDecision",
    "NoMatch",
    "ScoredCandidate",
    "contact_keys",
    "iban_valid",
    "invoice_keys",
    "match_contact",
    "match_invoice",
    "name_similarity",
    "normalise_name",
]

CanonicalId: TypeAlias = int | str
AccountRef: TypeAlias = int | str

CONFIDENT_NAME: Final = 0.92
"""Name similarity at or above which equal postcodes make a confident match."""
POSSIBLE_NAME: Final = 0.75
"""Name similarity at or above which equal postcodes make a possible (ambiguous) match."""
EMAIL_NAME_FLOOR: Final = 0.5
"""Below this name similarity an agreeing e-mail or IBAN alone is not trusted."""

# Legal-form tokens as they look after normalise_name's folding ("B.V." -> "bv",
# "OÜ" -> "ou", "Osaühing" -> "osauhing"); removed at either end of a name.
LEGAL_FORMS: Final = frozenset(
    {
        # Netherlands, Belgium
        "bv", "nv", "vof", "cv", "bvba", "io", "eenmanszaak", "ez", "cvba", "vzw",
        # Estonia, Latvia, Lithuania, Finland, Scandinavia
        "ou", "as", "osauhing", "aktsiaselts", "mtu", "fie", "sia", "uab", "oy", "oyj",
        "ab", "aps", "asa",
        # Germany, Austria, Switzerland
        "gmbh", "ag", "kg", "ug", "ohg", "ev", "mbh",
        # English-speaking
        "ltd", "limited", "llc", "llp", "inc", "plc", "corp",
        # France, Spain, Italy, Portugal
        "sa", "sarl", "sas", "srl", "spa", "sl", "lda",
    }
)  # fmt: skip

# Words that join two names ("Jansen & Bakker", "Jansen en Bakker", "Tamm ja Saar").
_CONNECTORS: Final = frozenset({"&", "en", "and", "und", "ja"})

# Role mailboxes: addresses of a function rather than of one entity (see the module doc).
GENERIC_MAILBOXES: Final = frozenset(
    {
        "info", "admin", "administratie", "administration", "boekhouding", "facturen",
        "factuur", "facturatie", "factuuradres", "invoice", "invoices", "billing",
        "accounts", "accounting", "finance", "financien", "financieel", "office",
        "kantoor", "contact", "sales", "verkoop", "hello", "hallo", "mail", "post",
        "support", "noreply", "donotreply", "arved", "arve", "raamatupidamine",
        "finants", "kontakt", "buchhaltung", "rechnung", "rechnungen",
    }
)  # fmt: skip

# Letters NFKD leaves alone.
_FOLD: Final = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d"})
_JOINING: Final = re.compile(r"[.'’‘`´]")  # dropped, not split on: "b.v." -> "bv"
_TOKEN: Final = re.compile(r"[^\W_]+|&")
_WHITESPACE_AND_DASHES: Final = re.compile(r"[\s.\-/]+")
_VAT_SHAPE: Final = re.compile(r"[A-Z]{2}[0-9A-Z+*]{2,13}")
_IBAN_SHAPE: Final = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_MIN_VAT_DIGITS: Final = 6
_MIN_COC_DIGITS: Final = 5
# VAT prefixes that are not the ISO country code.
_VAT_PREFIX: Final = {"GR": "EL"}


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    """One candidate of an ambiguous decision, with its score and why it is one."""

    canonical_id: CanonicalId
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class Link:
    """One confident match: link the incoming record to ``canonical_id``."""

    canonical_id: CanonicalId
    reason: str
    score: float


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Several or doubtful matches: queue for review, create nothing."""

    candidates: tuple[ScoredCandidate, ...]  # best first
    reason: str

    def review_candidates(self) -> list[dict[str, object]]:
        """The candidates as JSON-able dicts (for ``match_reviews.candidates``)."""
        return [
            {"canonical_id": c.canonical_id, "score": c.score, "reason": c.reason}
            for c in self.candidates
        ]


@dataclass(frozen=True, slots=True)
class NoMatch:
    """Nothing matches: create a new canonical entity."""

    reason: str


MatchDecision: TypeAlias = Link | Ambiguous | NoMatch


class Candidate(NamedTuple):
    """A canonical contact the incoming record might be, and the accounts linked to it."""

    canonical_id: CanonicalId
    contact: Contact
    linked_accounts: Collection[AccountRef] = frozenset()


class InvoiceCandidate(NamedTuple):
    """A canonical invoice (its ``contact`` a canonical id) and the accounts linked to it."""

    canonical_id: CanonicalId
    invoice: Invoice
    linked_accounts: Collection[AccountRef] = frozenset()


# --------------------------------------------------------------------------- names


def normalise_name(name: str) -> str:
    """The form in which names are compared.

    Lower-cased (casefold), accents folded (``"Põhjala"`` -> ``"pohjala"``), dots and
    apostrophes dropped (``"B.V."`` -> ``"bv"``), other punctuation and whitespace
    collapsed to single spaces, runs of single letters joined (``"B. V."`` -> ``"bv"``),
    joining words (``&``, ``en``, ``and``, ``und``, ``ja``) written as ``&``, and legal
    forms (:data:`LEGAL_FORMS`) removed at either end, repeatedly. A name that is only a
    legal form keeps it. Idempotent.
    """
    # Decompose before and after casefolding: either can expose the other's work
    # ("ᴬ" decomposes to "A"; "İ" casefolds to "i" plus a combining dot).
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).translate(_FOLD)
    tokens = _join_initials(_TOKEN.findall(_JOINING.sub("", folded)))
    # After joining: "E. N." must become "en" on every pass, then "&" on every pass.
    tokens = ["&" if token in _CONNECTORS else token for token in tokens]
    core = tokens
    while core and (core[0] in LEGAL_FORMS or core[0] == "&"):
        core = core[1:]
    while core and (core[-1] in LEGAL_FORMS or core[-1] == "&"):
        core = core[:-1]
    return " ".join(core or tokens)


def _join_initials(tokens: list[str]) -> list[str]:
    joined: list[str] = []
    run = ""
    for token in tokens:
        if len(token) == 1 and token.isalpha():
            run += token
            continue
        if run:
            joined.append(run)
            run = ""
        joined.append(token)
    if run:
        joined.append(run)
    return joined


def _ratio(a: str, b: str) -> float:
    first, second = sorted((a, b))  # SequenceMatcher is not quite symmetric
    return difflib.SequenceMatcher(None, first, second, autojunk=False).ratio()


def name_similarity(a: str, b: str) -> float | None:
    """Similarity in ``[0, 1]`` of two names (normalised here), rounded to two decimals.

    The better of the difflib character ratio of the names and of their words sorted
    (so ``"Jansen Jan"`` is ``"Jan Jansen"``), capped by the ratio of the words the two
    names do *not* share: a long shared word must not carry two different names over a
    threshold (``"Installatiebedrijf Bakker"`` and ``"Installatiebedrijf Dekker"`` are
    0.92 alike as strings, but ``"bakker"`` and ``"dekker"`` only 0.67). ``None`` when
    either name is empty. Symmetric.
    """
    return _similarity(normalise_name(a), normalise_name(b))


def _similarity(left: str, right: str) -> float | None:
    if not left or not right:
        return None
    if left == right:
        return 1.0
    left_words, right_words = left.split(), right.split()
    whole = max(
        _ratio(left, right), _ratio(" ".join(sorted(left_words)), " ".join(sorted(right_words)))
    )
    only_left, only_right = _without_shared(left_words, right_words)
    if only_left and only_right:
        whole = min(whole, _ratio(" ".join(sorted(only_left)), " ".join(sorted(only_right))))
    return round(whole, 2)


def _without_shared(left: list[str], right: list[str]) -> tuple[list[str], list[str]]:
    """The words of each name that the other lacks (as multisets).

    An initial is shared with a word it abbreviates: ``"s bakker"`` and ``"sanne bakker"``
    differ in nothing.
    """
    only_left, only_right = _remove_common(left, right, lambda a, b: a == b)
    only_left, only_right = _remove_common(only_left, only_right, _abbreviates)
    return only_left, only_right


def _abbreviates(a: str, b: str) -> bool:
    return (len(a) == 1 and b.startswith(a)) or (len(b) == 1 and a.startswith(b))


def _remove_common(
    left: list[str], right: list[str], same: Callable[[str, str], bool]
) -> tuple[list[str], list[str]]:
    rest = sorted(right)
    only_left: list[str] = []
    for word in sorted(left):
        partner = next((other for other in rest if same(word, other)), None)
        if partner is None:
            only_left.append(word)
        else:
            rest.remove(partner)
    return only_left, rest


# --------------------------------------------------------------------------- contact keys


@dataclass(frozen=True, slots=True)
class ContactKeys:
    """The identity keys of one contact, in the form they are compared (and queried) in."""

    kind: ContactKind
    name: str  # normalise_name of the name ("" when it has none)
    vat_number: str | None  # "NL123456789B01"; the country put in front when missing
    coc_number: str | None  # compact: "12345678"
    coc_country: str | None  # the contact's country: registry numbers are per country
    email: str | None
    email_generic: bool  # a role mailbox (info@...): a weaker key
    iban: str | None  # compact, mod-97 checked
    postal_code: str | None  # compact: "1012AB"
    country: str | None

    @property
    def coc(self) -> tuple[str | None, str] | None:
        """``(country, number)`` of the chamber of commerce number, if any."""
        return None if self.coc_number is None else (self.coc_country, self.coc_number)


def contact_keys(contact: Contact) -> ContactKeys:
    """The identity keys of ``contact`` (normalised first; normalising is idempotent).

    Unusable values (see the module docstring) come out as ``None``. The runner queries
    candidates by ``vat_number``, ``coc_number``, ``email``, ``iban`` and
    ``postal_code``; a name is only compared, never queried, since it never links alone.
    """
    return _contact_keys(contact)


# Pure and keyed on a frozen value, so caching is safe; bounded, so memory stays small.
@functools.lru_cache(maxsize=4096)
def _contact_keys(contact: Contact) -> ContactKeys:
    c = normalise_contact(contact)
    email = _email_key(c.email)
    return ContactKeys(
        kind=c.kind,
        name=normalise_name(_display_name(c)),
        vat_number=_vat_key(c.vat_number, c.country),
        coc_number=_coc_key(c.coc_number),
        coc_country=c.country,
        email=email,
        email_generic=email is not None and _is_generic(email),
        iban=normalise_code(c.iban) if iban_valid(c.iban) else None,
        postal_code=_compact(c.postal_code),
        country=c.country,
    )


def _display_name(c: Contact) -> str:
    if c.name:
        return c.name
    return " ".join(part for part in (c.first_name, c.last_name) if part)


def _compact(value: str | None) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    return _WHITESPACE_AND_DASHES.sub("", text).upper() or None


def _meaningful(value: str, min_digits: int) -> bool:
    digits = [ch for ch in value if ch.isdigit()]
    return len(digits) >= min_digits and any(d != "0" for d in digits)


def _vat_key(value: str | None, country: str | None) -> str | None:
    vat = normalise_code(value)
    if vat is None or not _meaningful(vat, _MIN_VAT_DIGITS):
        return None
    if vat[:1].isdigit() and country is not None and len(country) == 2:
        vat = country + vat
    prefix = vat[:2]
    vat = _VAT_PREFIX.get(prefix, prefix) + vat[2:]
    return vat if _VAT_SHAPE.fullmatch(vat) or vat[:1].isdigit() else None


def _vat_body(vat: str) -> str:
    return vat[2:] if vat[:2].isalpha() else vat


def _same_vat(a: str, b: str) -> bool:
    if a == b:
        return True
    # Without a country on one side only the bodies can be compared.
    if not (a[:2].isalpha() and b[:2].isalpha()):
        return _vat_body(a) == _vat_body(b)
    return False


def _coc_key(value: str | None) -> str | None:
    coc = _compact(value)
    if coc is None or not _meaningful(coc, _MIN_COC_DIGITS):
        return None
    return coc


def iban_valid(value: str | None) -> bool:
    """Whether ``value`` is an IBAN with a valid ISO 13616 mod-97 checksum."""
    iban = normalise_code(value)
    if iban is None or not _IBAN_SHAPE.fullmatch(iban):
        return False
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def _email_key(value: str | None) -> str | None:
    if value is None:
        return None
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain.strip("."):
        return None
    return value


def _is_generic(email: str) -> bool:
    local = email.rpartition("@")[0]
    base = re.sub(r"[0-9]+$", "", local).replace("-", "").replace("_", "").replace(".", "")
    return base in GENERIC_MAILBOXES


def _domain(email: str) -> str:
    return email.rpartition("@")[2]


# --------------------------------------------------------------------------- assessment

_Verdict: TypeAlias = Literal["confident", "possible", "none"]


@dataclass(frozen=True, slots=True)
class _Assessment:
    canonical_id: CanonicalId
    verdict: _Verdict
    keyed: bool  # some identity key agrees (counts against other keyed candidates)
    score: float
    reason: str


def _countries_compatible(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


@dataclass(slots=True)
class _KeyComparison:
    agree: list[str] = field(default_factory=list)  # human-readable, in a fixed order
    entity_agree: bool = False  # VAT or chamber of commerce number
    iban_agree: bool = False
    email_agree: bool = False
    hard: list[str] = field(default_factory=list)  # differing legal-entity keys
    soft: list[str] = field(default_factory=list)  # differing contact keys


def _compare_keys(a: ContactKeys, b: ContactKeys) -> _KeyComparison:
    result = _KeyComparison()
    hard = result.hard
    soft = result.soft
    if a.vat_number and b.vat_number:
        if _same_vat(a.vat_number, b.vat_number):
            result.entity_agree = True
            result.agree.append(f"VAT number {a.vat_number} equal")
        else:
            hard.append(f"VAT numbers {a.vat_number} and {b.vat_number} differ")
    if a.coc_number and b.coc_number and _countries_compatible(a.coc_country, b.coc_country):
        country = a.coc_country or b.coc_country
        if a.coc_number == b.coc_number:
            result.entity_agree = True
            label = f"{country} {a.coc_number}" if country else a.coc_number
            result.agree.append(f"chamber of commerce number {label} equal")
        else:
            hard.append(f"chamber of commerce numbers {a.coc_number} and {b.coc_number} differ")
    if a.iban and b.iban:
        if a.iban == b.iban:
            result.iban_agree = True
            result.agree.append(f"IBAN {a.iban} equal")
        else:
            soft.append(f"IBANs {a.iban} and {b.iban} differ")
    if a.email and b.email:
        if a.email == b.email:
            result.email_agree = True
            weak = " (a role mailbox)" if a.email_generic else ""
            result.agree.append(f"e-mail {a.email} equal{weak}")
        elif not (_domain(a.email) == _domain(b.email) and (a.email_generic or b.email_generic)):
            # info@ and facturen@ at one domain are one organization's mailboxes.
            soft.append(f"e-mails {a.email} and {b.email} differ")
    return result


def _postcodes(a: ContactKeys, b: ContactKeys) -> Literal["equal", "differ", "unknown"]:
    if a.postal_code is None or b.postal_code is None:
        return "unknown"
    if not _countries_compatible(a.country, b.country):
        return "differ"
    return "equal" if a.postal_code == b.postal_code else "differ"


def _name_text(a: ContactKeys, b: ContactKeys, similarity: float | None) -> str:
    if similarity is None:
        return "a name is missing"
    return f"name '{a.name}' ~ '{b.name}' ({similarity:.2f})"


_SAME_ACCOUNT: Final = (
    "; already linked to another record of this account (a duplicate in the vendor?)"
)


def _assess_contact(
    incoming: ContactKeys,
    candidate_id: CanonicalId,
    candidate: ContactKeys,
    same_account: bool,
    *,
    kind_known: bool = True,
) -> _Assessment:
    keys = _compare_keys(incoming, candidate)
    same_kind = incoming.kind == candidate.kind or not kind_known
    agreed = "; ".join(keys.agree)

    def verdict(v: _Verdict, score: float, reason: str, keyed: bool) -> _Assessment:
        if same_account:
            # Two records of one vendor are two entities, unless a human duplicated one.
            if v == "none" or (v == "possible" and not keyed):
                return _Assessment(candidate_id, "none", False, score, reason)
            return _Assessment(candidate_id, "possible", keyed, score, reason + _SAME_ACCOUNT)
        return _Assessment(candidate_id, v, keyed, score, reason)

    if keys.agree:
        role_mailbox_only = (
            keys.email_agree
            and incoming.email_generic
            and not keys.iban_agree
            and not keys.entity_agree
        )
        if keys.hard and role_mailbox_only:
            # One bookkeeping office's facturen@ serves many clients: a shared role
            # mailbox with other VAT or chamber of commerce numbers is two legal
            # entities, unless the names say it is one (a typo in a number, say).
            similarity = _similarity(incoming.name, candidate.name)
            name = _name_text(incoming, candidate, similarity)
            reason = f"{agreed} but {'; '.join(keys.hard)} and {name}"
            if similarity is not None and similarity >= CONFIDENT_NAME:
                return verdict("possible", 0.5, reason, True)
            return verdict("none", 0.0, reason, False)
        if keys.hard:
            share = round(len(keys.agree) / (len(keys.agree) + len(keys.hard)), 2)
            return verdict("possible", share, f"{agreed} but {'; '.join(keys.hard)}", True)
        if keys.entity_agree:
            return verdict("confident", 1.0, agreed, True)
        if not same_kind:
            reason = f"{agreed}, but one is a person and the other an organization"
            return verdict("possible", 0.5, reason, True)
        # Only contact keys (IBAN, e-mail) agree: the names must not tell them apart.
        similarity = _similarity(incoming.name, candidate.name)
        name = _name_text(incoming, candidate, similarity)
        generic_only = keys.email_agree and not keys.iban_agree and incoming.email_generic
        if similarity is None:
            if generic_only:
                return verdict("possible", 0.5, f"{agreed} but {name}", True)
            return verdict("confident", 1.0, agreed, True)
        if similarity >= (CONFIDENT_NAME if generic_only else EMAIL_NAME_FLOOR):
            return verdict("confident", 1.0, f"{agreed} and {name}", True)
        return verdict("possible", similarity, f"{agreed} but {name}", True)

    # No key agrees: only a name at an equal postcode can match (checked cheapest first).
    if keys.hard or not same_kind or _postcodes(incoming, candidate) != "equal":
        return verdict("none", 0.0, "no key agrees and no name at an equal postcode", False)
    similarity = _similarity(incoming.name, candidate.name)
    if similarity is None:
        return verdict("none", 0.0, "a name is missing", False)
    reason = (
        f"{_name_text(incoming, candidate, similarity)} and postcode {incoming.postal_code} equal"
    )
    if similarity >= CONFIDENT_NAME:
        if keys.soft:
            return verdict("possible", similarity, f"{reason} but {'; '.join(keys.soft)}", False)
        return verdict("confident", similarity, reason, False)
    if similarity >= POSSIBLE_NAME:
        return verdict("possible", similarity, reason, False)
    return verdict("none", similarity, reason, False)


def _id_order(canonical_id: CanonicalId) -> tuple[int, int, str]:
    if isinstance(canonical_id, int):
        return (0, canonical_id, "")
    return (1, 0, canonical_id)


def _best_first(assessments: Sequence[_Assessment]) -> list[_Assessment]:
    return sorted(assessments, key=lambda a: (-a.score, _id_order(a.canonical_id)))


def _ambiguous(assessments: Sequence[_Assessment], reason: str) -> Ambiguous:
    shown = _best_first([a for a in assessments if a.verdict != "none"])
    return Ambiguous(
        candidates=tuple(ScoredCandidate(a.canonical_id, a.score, a.reason) for a in shown),
        reason=reason,
    )


def _link(assessment: _Assessment) -> Link:
    return Link(assessment.canonical_id, assessment.reason, assessment.score)


_T = TypeVar("_T")


def _unique(
    items: Sequence[tuple[CanonicalId, _T, Collection[AccountRef]]],
    same: Callable[[_T, _T], bool],
) -> list[tuple[CanonicalId, _T, frozenset[AccountRef]]]:
    """Collapse repeated candidates (the runner fetches by several keys); refuse clashes."""
    seen: dict[CanonicalId, tuple[CanonicalId, _T, frozenset[AccountRef]]] = {}
    for canonical_id, value, accounts in items:
        entry = (canonical_id, value, frozenset(accounts))
        previous = seen.get(canonical_id)
        if previous is None:
            seen[canonical_id] = entry
        elif not (same(previous[1], value) and previous[2] == entry[2]):
            raise ValueError(f"candidate {canonical_id!r} is given twice, with different data")
    return list(seen.values())


def match_contact(
    incoming: Contact,
    candidates: Sequence[Candidate],
    *,
    account: AccountRef,
    kind_blind: Collection[AccountRef] = (),
) -> MatchDecision:
    """Decide which canonical contact, if any, the unlinked ``incoming`` record is.

    ``candidates`` are canonical contacts fetched by the values of
    :func:`contact_keys` (a candidate may appear more than once; identical repeats are
    collapsed, a repeat with other data raises ``ValueError``). ``account`` is the
    account the incoming record comes from: candidates already linked to it are other
    records of the same vendor and never a link target. ``kind_blind``: accounts that
    cannot store whether a contact is a person or an organization (their records all
    read as one kind); a kind known only from such accounts neither separates nor joins.
    The rules are in the module docstring; the result does not depend on the order of
    ``candidates``.
    """
    mine = contact_keys(incoming)
    unique = _unique(candidates, lambda x, y: x == y)
    assessments = [
        _assess_contact(
            mine,
            cid,
            contact_keys(contact),
            account in accounts,
            kind_known=account not in kind_blind
            and (not accounts or any(a not in kind_blind for a in accounts)),
        )
        for cid, contact, accounts in unique
    ]
    keyed = [a for a in assessments if a.keyed]
    confident = [a for a in assessments if a.verdict == "confident"]
    possible = [a for a in assessments if a.verdict == "possible"]

    if keyed:
        if len(keyed) > 1:
            return _ambiguous(assessments, f"{len(keyed)} candidates share identity keys")
        only = keyed[0]
        if only.verdict != "confident":
            return _ambiguous(assessments, "the identity keys do not agree cleanly")
        rivals = [a for a in confident if a is not only]
        if rivals:
            return _ambiguous(
                assessments, "a key matches one candidate, the name and postcode another"
            )
        return _link(only)
    if len(confident) == 1:
        return _link(confident[0])
    if len(confident) > 1:
        return _ambiguous(assessments, f"{len(confident)} candidates match by name and postcode")
    if possible:
        return _ambiguous(assessments, "only possible matches, none confident")
    return NoMatch(_no_match_reason(len(unique)))


def _no_match_reason(compared: int) -> str:
    if compared == 0:
        return "no candidates"
    return f"none of {compared} candidate(s) shares a key or a name and postcode"


# --------------------------------------------------------------------------- invoices


@dataclass(frozen=True, slots=True)
class InvoiceKeys:
    """The identity keys of an invoice, in the form they are compared in."""

    number: str | None  # case-folded, whitespace removed
    reference: str | None  # case-folded, whitespace removed (our client reference)
    contact: str | None  # a canonical contact id (as the runner translated it)


def _folded(value: str | None) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    return "".join(text.casefold().split()) or None


def invoice_keys(invoice: Invoice) -> InvoiceKeys:
    """The identity keys of ``invoice`` (normalised first)."""
    inv = normalise_invoice(invoice)
    return InvoiceKeys(
        number=_folded(inv.number), reference=_folded(inv.reference), contact=inv.contact
    )


def _assess_invoice(
    incoming: Invoice,
    mine: InvoiceKeys,
    candidate_id: CanonicalId,
    candidate: Invoice,
    same_account: bool,
) -> _Assessment:
    theirs = invoice_keys(candidate)
    number_equal = mine.number is not None and mine.number == theirs.number
    numbers_differ = (
        mine.number is not None and theirs.number is not None and mine.number != theirs.number
    )
    reference_equal = mine.reference is not None and mine.reference == theirs.reference
    contact_known = mine.contact is not None and theirs.contact is not None
    contact_equal = contact_known and mine.contact == theirs.contact
    date_equal = incoming.issue_date is not None and incoming.issue_date == candidate.issue_date
    dates_differ = (
        incoming.issue_date is not None
        and candidate.issue_date is not None
        and incoming.issue_date != candidate.issue_date
    )
    total_equal = incoming.total == candidate.total  # both normalised to cents

    def verdict(v: _Verdict, score: float, reason: str) -> _Assessment:
        if same_account:
            if v != "confident":
                return _Assessment(candidate_id, "none", False, score, reason)
            return _Assessment(candidate_id, "possible", True, score, reason + _SAME_ACCOUNT)
        return _Assessment(candidate_id, v, v != "none", score, reason)

    shown_number = clean_text(incoming.number)
    shown_reference = clean_text(incoming.reference)
    if number_equal:
        also = f"; reference {shown_reference} equal" if reference_equal else ""
        if contact_equal:
            reason = f"number {shown_number} and contact {mine.contact} equal{also}"
            if dates_differ and not total_equal:
                return verdict("possible", 0.5, f"{reason} but issue date and total differ")
            return verdict("confident", 1.0, reason)
        if not contact_known:
            return verdict(
                "possible", 0.5, f"number {shown_number} equal{also}; a contact is not known"
            )
        if date_equal or total_equal or reference_equal:
            what = "issue date" if date_equal else "total" if total_equal else "reference"
            reason = (
                f"number {shown_number} and {what} equal{also} but contacts "
                f"{mine.contact} and {theirs.contact} differ"
            )
            return verdict("possible", 0.5, reason)
        return verdict("none", 0.0, f"number {shown_number} equal in another numbering series")
    if reference_equal:
        reason = f"reference {shown_reference} equal"
        if numbers_differ:
            return verdict(
                "possible",
                0.5,
                f"{reason} but numbers {incoming.number} and {candidate.number} differ",
            )
        if contact_known and not contact_equal:
            return verdict(
                "possible",
                0.5,
                f"{reason} but contacts {mine.contact} and {theirs.contact} differ",
            )
        return verdict("confident", 1.0, reason)
    return verdict("none", 0.0, "neither number nor reference equal")


def match_invoice(
    incoming: Invoice,
    candidates: Sequence[InvoiceCandidate],
    *,
    account: AccountRef,
) -> MatchDecision:
    """Decide which canonical invoice, if any, the unlinked ``incoming`` record is.

    ``incoming.contact`` and each candidate's ``invoice.contact`` are canonical contact
    ids (the runner translates the vendor's contact id first; ``None`` when the contact
    is not linked yet). Candidates are fetched by number and by reference
    (:func:`invoice_keys`); ``account`` is the incoming record's account. The rules are
    in the module docstring; the result does not depend on the order of ``candidates``.
    """
    mine_invoice = normalise_invoice(incoming)
    mine = invoice_keys(mine_invoice)
    unique = _unique(candidates, lambda x, y: x == y)
    assessments = [
        _assess_invoice(mine_invoice, mine, cid, normalise_invoice(invoice), account in accounts)
        for cid, invoice, accounts in unique
    ]
    relevant = [a for a in assessments if a.verdict != "none"]
    if not relevant:
        return NoMatch(_invoice_no_match_reason(mine, len(unique)))
    if len(relevant) == 1 and relevant[0].verdict == "confident":
        return _link(relevant[0])
    if len(relevant) > 1:
        return _ambiguous(assessments, f"{len(relevant)} candidates share the number or reference")
    return _ambiguous(assessments, "the invoice keys do not agree cleanly")


def _invoice_no_match_reason(keys: InvoiceKeys, compared: int) -> str:
    if keys.number is None and keys.reference is None:
        return "the invoice has neither a number nor a reference"
    if compared == 0:
        return "no candidates"
    return f"none of {compared} candidate(s) shares the number or reference"

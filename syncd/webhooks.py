"""Webhook deliveries: verify the vendor's signature, name the delivery, drop duplicates.

A webhook is only a hint that an account changed: a good delivery makes syncd pull that
account now, nothing in its body is trusted or stored. So a delivery is accepted only
when it carries a valid signature made with the account's ``webhook_secret``, and each
delivery triggers at most one pull however often the vendor retries it.

Schemes, by vendor (headers are case-insensitive; "hex" is lowercase or uppercase hex):

==========  ==============================  =========================================  ======
vendor      header                          signed bytes -> hex HMAC-SHA256(secret, .)  stale?
==========  ==============================  =========================================  ======
moneybird   ``Moneybird-Signature:          ``b"<t>." + raw_body``; any ``v1`` may       yes
            t=<unix>,v1=<hex>[,v1=...]``    match (secret rotation); unknown schemes
                                            in the header are ignored
perfex      ``X-Perfex-Signature:           ``b"<t>." + raw_body`` (Themesic REST API    yes
            t=<unix>,v1=<hex>``             module, the module of vendors/perfex.md)
perfex      ``X-Webhook-Signature: <hex>``  ``raw_body`` (the perfexapi.com ``/api/v1``  no
                                            module of DESIGN §6; ``sha256=`` prefix
                                            tolerated)
simplicate  ``X-Webhook-Signature:          ``raw_body``                                 no
            sha256=<hex>``
any         ``X-Syncd-Signature: v1=<hex>`` ``b"<t>." + raw_body``: syncd's own scheme   yes
            + ``X-Syncd-Timestamp: <unix>`` for senders without one (a relay, a test
                                            harness, SimplBooks which has no webhooks)
==========  ==============================  =========================================  ======

A vendor's own header wins; the syncd scheme is consulted only when it is absent.
Timestamped schemes reject a delivery whose ``t`` is more than `TOLERANCE_SECONDS` (5
minutes) away from now, in either direction. Simplicate and the ``/api/v1`` Perfex
module sign the body only, so an old delivery cannot be told from a new one by its
signature; replaying one is still harmless (it can only cause one extra pull, and the
duplicate cache below swallows it while it remembers the body).

Every digest is compared in constant time (`hmac.compare_digest`). Rejections carry a
`reason` code (``missing_signature``, ``malformed_signature``, ``bad_signature``,
``stale``) and a message naming the header, never the secret nor the signature value.

Delivery id (for duplicate detection): the ``Idempotency-Key`` header (Moneybird sends
one per push, the same on each retry), else ``X-Syncd-Delivery``, else
``"sha256:" + hex(sha256(raw_body))``: a retry resends the same body, so identical bodies
are one delivery. (The id headers are not signed: a replay under a made-up id can at
worst cause one extra pull, and only inside the staleness window where there is one.)
`DeliveryCache` remembers ids per account for a TTL (default 10
minutes, longer than the staleness window, so a replay inside the window is caught)
and a bounded number of entries (oldest evicted first).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import SecretStr

from syncd.settings import Settings

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "TOLERANCE_SECONDS",
    "DeliveryCache",
    "Verified",
    "WebhookAccount",
    "WebhookRejected",
    "sign_body",
    "sign_timestamped",
    "verify_delivery",
    "webhook_accounts",
]

TOLERANCE_SECONDS: Final = 300.0
DEFAULT_CACHE_TTL: Final = 600.0
DEFAULT_CACHE_SIZE: Final = 10_000

MONEYBIRD_HEADER: Final = "Moneybird-Signature"
PERFEX_HEADER: Final = "X-Perfex-Signature"
BODY_SIGNATURE_HEADER: Final = "X-Webhook-Signature"  # Simplicate, Perfex /api/v1
SYNCD_SIGNATURE_HEADER: Final = "X-Syncd-Signature"
SYNCD_TIMESTAMP_HEADER: Final = "X-Syncd-Timestamp"
SYNCD_DELIVERY_HEADER: Final = "X-Syncd-Delivery"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

_MAX_ID_LENGTH: Final = 200
_SHA256_HEX_LENGTH: Final = 64
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


class WebhookRejected(Exception):
    """The delivery is not provably from the vendor; ``reason`` is a short code for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class WebhookAccount:
    """What verifying one account's deliveries needs: its vendor and its secret."""

    vendor: str
    secret: SecretStr

    def __repr__(self) -> str:
        return f"WebhookAccount(vendor={self.vendor!r}, secret=SecretStr('**********'))"


@dataclass(frozen=True, slots=True)
class Verified:
    """A delivery whose signature checked out."""

    delivery_id: str
    scheme: str  # "moneybird", "perfex", "perfex-v1", "simplicate" or "syncd"
    signed_at: float | None  # the signed timestamp, when the scheme has one


def webhook_accounts(settings: Settings) -> dict[str, WebhookAccount]:
    """Every account that has a ``webhook_secret``, by name; the others take no webhooks."""
    return {
        account.name: WebhookAccount(account.vendor, account.webhook_secret)
        for _, account in settings.iter_accounts()
        if account.webhook_secret is not None
    }


# --------------------------------------------------------------------------- signing


def _hmac_hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def sign_body(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` (the Simplicate and Perfex ``/api/v1`` schemes)."""
    return _hmac_hex(secret, body)


def sign_timestamped(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` (Moneybird, Perfex module, syncd)."""
    return _hmac_hex(secret, str(timestamp).encode() + b"." + body)


# --------------------------------------------------------------------------- verifying


def _is_hex_digest(value: str) -> bool:
    return len(value) == _SHA256_HEX_LENGTH and set(value) <= _HEX_DIGITS


def _matches(expected: str, candidates: Iterable[str]) -> bool:
    """Whether any candidate equals ``expected``; every candidate is compared, in constant time."""
    found = False
    for candidate in candidates:
        # compare_digest on equal-length ASCII bytes; lowercase first, as vendors may use either.
        found |= hmac.compare_digest(expected.encode(), candidate.lower().encode())
    return found


def _parse_stamped(header: str, value: str) -> tuple[str, list[str]]:
    """``t=<unix>,v1=<hex>,...`` -> (t, [v1 digests]); other schemes are ignored."""
    timestamp: str | None = None
    digests: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            continue
        key, item = key.strip(), item.strip()
        if key == "t":
            if timestamp is not None:
                raise WebhookRejected("malformed_signature", f"{header} has more than one t=")
            timestamp = item
        elif key == "v1" and _is_hex_digest(item):
            digests.append(item)
    if timestamp is None:
        raise WebhookRejected("malformed_signature", f"{header} has no t= timestamp")
    if not digests:
        raise WebhookRejected("malformed_signature", f"{header} has no v1= signature")
    return timestamp, digests


def _check_time(header: str, text: str, now: float, tolerance: float) -> float:
    if not text.isdigit() or len(text) > 12:
        raise WebhookRejected("malformed_signature", f"{header} timestamp is not a Unix time")
    signed_at = float(int(text))
    if abs(now - signed_at) > tolerance:
        raise WebhookRejected(
            "stale",
            f"{header} timestamp is {abs(now - signed_at):.0f}s away from now "
            f"(at most {tolerance:.0f}s allowed)",
        )
    return signed_at


def _verify_stamped(
    header: str, value: str, secret: str, body: bytes, now: float, tolerance: float
) -> float:
    timestamp, digests = _parse_stamped(header, value)
    signed_at = _check_time(header, timestamp, now, tolerance)
    expected = _hmac_hex(secret, timestamp.encode() + b"." + body)
    if not _matches(expected, digests):
        raise WebhookRejected("bad_signature", f"{header} does not match the body")
    return signed_at


def _verify_body(header: str, value: str, secret: str, body: bytes) -> None:
    digest = value.strip()
    if digest[:7].lower() == "sha256=":
        digest = digest[7:].strip()
    if not _is_hex_digest(digest):
        raise WebhookRejected("malformed_signature", f"{header} is not a hex SHA-256 signature")
    if not _matches(_hmac_hex(secret, body), [digest]):
        raise WebhookRejected("bad_signature", f"{header} does not match the body")


def _verify_syncd(
    headers: Mapping[str, str], secret: str, body: bytes, now: float, tolerance: float
) -> float:
    value = headers.get(SYNCD_SIGNATURE_HEADER, "")
    timestamp = headers.get(SYNCD_TIMESTAMP_HEADER)
    if timestamp is None:
        raise WebhookRejected("malformed_signature", f"{SYNCD_TIMESTAMP_HEADER} is missing")
    signed_at = _check_time(SYNCD_TIMESTAMP_HEADER, timestamp.strip(), now, tolerance)
    digests = [
        item.strip()
        for key, sep, item in (p.strip().partition("=") for p in value.split(","))
        if sep and key.strip() == "v1" and _is_hex_digest(item.strip())
    ]
    if not digests:
        raise WebhookRejected(
            "malformed_signature", f"{SYNCD_SIGNATURE_HEADER} has no v1= signature"
        )
    expected = _hmac_hex(secret, timestamp.strip().encode() + b"." + body)
    if not _matches(expected, digests):
        raise WebhookRejected("bad_signature", f"{SYNCD_SIGNATURE_HEADER} does not match the body")
    return signed_at


def _delivery_id(headers: Mapping[str, str], body: bytes) -> str:
    for name in (IDEMPOTENCY_HEADER, SYNCD_DELIVERY_HEADER):
        value = headers.get(name, "").strip()
        if value and len(value) <= _MAX_ID_LENGTH and value.isprintable():
            return f"{name.lower()}:{value}"
    return "sha256:" + hashlib.sha256(body).hexdigest()


_VENDOR_HEADERS: Final[Mapping[str, tuple[str, ...]]] = {
    "moneybird": (MONEYBIRD_HEADER,),
    "perfex": (PERFEX_HEADER, BODY_SIGNATURE_HEADER),
    "simplicate": (BODY_SIGNATURE_HEADER,),
}


def verify_delivery(
    vendor: str,
    secret: SecretStr | str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> Verified:
    """Check one delivery's signature (see the module docstring); raise `WebhookRejected`.

    ``headers`` must look names up case-insensitively (aiohttp's ``request.headers`` does);
    ``body`` is the raw request body exactly as received; ``now`` is the Unix time.
    """
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not key:
        raise WebhookRejected("no_secret", "this account has no webhook secret")
    for header in _VENDOR_HEADERS.get(vendor, ()):
        value = headers.get(header)
        if value is None:
            continue
        if header == BODY_SIGNATURE_HEADER:
            _verify_body(header, value, key, body)
            scheme = "perfex-v1" if vendor == "perfex" else vendor
            return Verified(_delivery_id(headers, body), scheme, None)
        signed_at = _verify_stamped(header, value, key, body, now, tolerance)
        return Verified(_delivery_id(headers, body), vendor, signed_at)
    if SYNCD_SIGNATURE_HEADER in headers:
        signed_at = _verify_syncd(headers, key, body, now, tolerance)
        return Verified(_delivery_id(headers, body), "syncd", signed_at)
    expected = [*_VENDOR_HEADERS.get(vendor, ()), SYNCD_SIGNATURE_HEADER]
    raise WebhookRejected(
        "missing_signature", f"no signature header; expected one of {', '.join(expected)}"
    )


# --------------------------------------------------------------------------- duplicates


class DeliveryCache:
    """Remembers (account, delivery id) pairs for ``ttl`` seconds, at most ``max_size`` of them."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_CACHE_TTL,
        max_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_size < 1:
            raise ValueError("DeliveryCache needs a positive ttl and max_size")
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # key -> expiry

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._seen)

    def _expire(self, now: float) -> None:
        # Entries are kept in insertion order with one TTL, so expiries are in order too.
        while self._seen:
            key, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[key]

    def seen(self, account: str, delivery_id: str) -> bool:
        """Whether this delivery was already accepted (and is still remembered)."""
        self._expire(self._clock())
        return (account, delivery_id) in self._seen

    def add(self, account: str, delivery_id: str) -> bool:
        """Remember a delivery; False if it was already remembered (a duplicate)."""
        now = self._clock()
        self._expire(now)
        key = (account, delivery_id)
        if key in self._seen:
            return False
        self._seen[key] = now + self.ttl
        while len(self._seen) > self.max_size:
            self._seen.popitem(last=False)
        return True

    def forget(self, account: str, delivery_id: str) -> None:
        """Drop a delivery, so the vendor's retry of it is accepted (its trigger failed)."""
        self._seen.pop((account, delivery_id), None)

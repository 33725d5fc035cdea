"""Webhook signature schemes, delivery ids and the duplicate cache (syncd.webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from pathlib import Path

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from syncd.settings import parse_settings
from syncd.webhooks import (
    DeliveryCache,
    WebhookAccount,
    WebhookRejected,
    sign_body,
    sign_timestamped,
    verify_delivery,
    webhook_accounts,
)

SECRET = "hook-secret-value-42"
OTHER = "another-secret-value"
NOW = 1_770_000_000.0
BODY = b'{"entity_type":"Contact","entity_id":"42","action":"contact_changed"}'


def _h(**items: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in items.items()})


def _mb(body: bytes = BODY, *, t: int = int(NOW), secret: str = SECRET) -> str:
    return f"t={t},v1={sign_timestamped(secret, t, body)}"


def _reject(vendor: str, headers: CIMultiDict[str], body: bytes = BODY, **kw: float) -> str:
    with pytest.raises(WebhookRejected) as info:
        verify_delivery(vendor, SECRET, headers, body, now=kw.get("now", NOW))
    assert SECRET not in str(info.value)
    return info.value.reason


# --------------------------------------------------------------------------- moneybird


def test_moneybird_signature_is_accepted_and_names_the_delivery_by_its_idempotency_key() -> None:
    headers = _h(Moneybird_Signature=_mb(), Idempotency_Key="push-77")
    verified = verify_delivery("moneybird", SecretStr(SECRET), headers, BODY, now=NOW)
    assert verified.scheme == "moneybird"
    assert verified.signed_at == NOW
    assert verified.delivery_id == "idempotency-key:push-77"


def test_moneybird_signature_matches_the_documented_construction() -> None:
    # hex(HMAC-SHA256(secret, "<t>." + raw body)), computed here independently.
    t = int(NOW)
    digest = hmac.new(SECRET.encode(), f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    headers = _h(Moneybird_Signature=f"t={t},v1={digest.upper()}")
    assert verify_delivery("moneybird", SECRET, headers, BODY, now=NOW).scheme == "moneybird"


def test_moneybird_accepts_any_matching_v1_during_rotation_and_ignores_unknown_schemes() -> None:
    t = int(NOW)
    good = sign_timestamped(SECRET, t, BODY)
    stale_key = sign_timestamped(OTHER, t, BODY)
    headers = _h(Moneybird_Signature=f"t={t},v0=zz,v1={stale_key},v1={good},v9=abc")
    assert verify_delivery("moneybird", SECRET, headers, BODY, now=NOW).signed_at == NOW


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (_h(), "missing_signature"),
        (_h(Moneybird_Signature=_mb(secret=OTHER)), "bad_signature"),
        (_h(Moneybird_Signature=f"t={int(NOW)},v1={'0' * 64}"), "bad_signature"),
        (
            _h(Moneybird_Signature=f"v1={sign_timestamped(SECRET, int(NOW), BODY)}"),
            "malformed_signature",
        ),
        (_h(Moneybird_Signature=f"t={int(NOW)}"), "malformed_signature"),
        (_h(Moneybird_Signature=f"t={int(NOW)},v1=nothex"), "malformed_signature"),
        (_h(Moneybird_Signature=f"t=soon,v1={'a' * 64}"), "malformed_signature"),
        (_h(Moneybird_Signature=f"t=1,t=2,v1={'a' * 64}"), "malformed_signature"),
        (_h(Moneybird_Signature=_mb(t=int(NOW) - 301)), "stale"),
        (_h(Moneybird_Signature=_mb(t=int(NOW) + 301)), "stale"),
    ],
    ids=[
        "missing",
        "wrong-secret",
        "wrong-digest",
        "no-timestamp",
        "no-v1",
        "v1-not-hex",
        "timestamp-not-a-number",
        "two-timestamps",
        "too-old",
        "too-far-ahead",
    ],
)
def test_moneybird_rejections(headers: CIMultiDict[str], reason: str) -> None:
    assert _reject("moneybird", headers) == reason


def test_moneybird_within_five_minutes_either_way_is_fresh() -> None:
    for t in (int(NOW) - 299, int(NOW) + 299):
        headers = _h(Moneybird_Signature=_mb(t=t))
        assert verify_delivery("moneybird", SECRET, headers, BODY, now=NOW).signed_at == t


def test_moneybird_tampered_body_or_timestamp_is_rejected() -> None:
    signature = _mb()
    assert _reject("moneybird", _h(Moneybird_Signature=signature), BODY + b" ") == "bad_signature"
    moved = signature.replace(f"t={int(NOW)}", f"t={int(NOW) - 10}")
    assert _reject("moneybird", _h(Moneybird_Signature=moved)) == "bad_signature"


def test_a_vendor_header_wins_over_the_syncd_scheme() -> None:
    t = int(NOW)
    headers = _h(
        Moneybird_Signature=_mb(secret=OTHER),
        X_Syncd_Signature=f"v1={sign_timestamped(SECRET, t, BODY)}",
        X_Syncd_Timestamp=str(t),
    )
    assert _reject("moneybird", headers) == "bad_signature"


# --------------------------------------------------------------------------- simplicate


def test_simplicate_body_signature_with_sha256_prefix() -> None:
    headers = _h(X_Webhook_Signature=f"sha256={sign_body(SECRET, BODY)}")
    verified = verify_delivery("simplicate", SECRET, headers, BODY, now=NOW)
    assert verified.scheme == "simplicate"
    assert verified.signed_at is None
    assert verified.delivery_id == "sha256:" + hashlib.sha256(BODY).hexdigest()


def test_simplicate_signature_has_no_timestamp_so_age_is_not_judged() -> None:
    headers = _h(X_Webhook_Signature=f"sha256={sign_body(SECRET, BODY).upper()}")
    assert verify_delivery("simplicate", SECRET, headers, BODY, now=NOW + 10**6).scheme == (
        "simplicate"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"sha256={sign_body(OTHER, BODY)}", "bad_signature"),
        ("sha256=abc", "malformed_signature"),
        ("md5=" + "a" * 64, "malformed_signature"),
    ],
)
def test_simplicate_rejections(value: str, reason: str) -> None:
    assert _reject("simplicate", _h(X_Webhook_Signature=value)) == reason


def test_simplicate_ignores_other_vendors_headers() -> None:
    assert _reject("simplicate", _h(Moneybird_Signature=_mb())) == "missing_signature"


# --------------------------------------------------------------------------- perfex


def test_perfex_module_signature_is_timestamped() -> None:
    headers = _h(X_Perfex_Signature=_mb())
    assert verify_delivery("perfex", SECRET, headers, BODY, now=NOW).scheme == "perfex"
    stale = _h(X_Perfex_Signature=_mb(t=int(NOW) - 600))
    assert _reject("perfex", stale) == "stale"


def test_perfex_api_v1_signature_is_a_plain_body_hmac() -> None:
    headers = _h(X_Webhook_Signature=sign_body(SECRET, BODY))
    assert verify_delivery("perfex", SECRET, headers, BODY, now=NOW).scheme == "perfex-v1"
    assert _reject("perfex", _h(X_Webhook_Signature=sign_body(OTHER, BODY))) == "bad_signature"


def test_perfex_prefers_the_timestamped_header_when_both_are_sent() -> None:
    headers = _h(X_Perfex_Signature=_mb(secret=OTHER), X_Webhook_Signature=sign_body(SECRET, BODY))
    assert _reject("perfex", headers) == "bad_signature"


# --------------------------------------------------------------------------- syncd scheme


def test_syncd_scheme_for_a_vendor_without_webhooks() -> None:
    t = int(NOW)
    headers = _h(
        X_Syncd_Signature=f"v1={sign_timestamped(SECRET, t, BODY)}",
        X_Syncd_Timestamp=str(t),
        X_Syncd_Delivery="d-1",
    )
    verified = verify_delivery("simplbooks", SECRET, headers, BODY, now=NOW)
    assert (verified.scheme, verified.delivery_id) == ("syncd", "x-syncd-delivery:d-1")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            _h(X_Syncd_Signature=f"v1={sign_timestamped(SECRET, int(NOW), BODY)}"),
            "malformed_signature",
        ),
        (_h(X_Syncd_Signature="v1=xyz", X_Syncd_Timestamp=str(int(NOW))), "malformed_signature"),
        (
            _h(
                X_Syncd_Signature=f"v1={sign_timestamped(SECRET, int(NOW) - 400, BODY)}",
                X_Syncd_Timestamp=str(int(NOW) - 400),
            ),
            "stale",
        ),
        (
            _h(
                X_Syncd_Signature=f"v1={sign_timestamped(SECRET, int(NOW) - 5, BODY)}",
                X_Syncd_Timestamp=str(int(NOW)),
            ),
            "bad_signature",
        ),
    ],
    ids=["no-timestamp", "not-hex", "stale", "timestamp-swapped"],
)
def test_syncd_scheme_rejections(headers: CIMultiDict[str], reason: str) -> None:
    assert _reject("simplbooks", headers) == reason


# --------------------------------------------------------------------------- hygiene


def test_an_empty_secret_verifies_nothing() -> None:
    with pytest.raises(WebhookRejected) as info:
        verify_delivery(
            "simplicate", "", _h(X_Webhook_Signature=sign_body("", BODY)), BODY, now=NOW
        )
    assert info.value.reason == "no_secret"


def test_digests_are_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify_delivery("moneybird", SECRET, _h(Moneybird_Signature=_mb()), BODY, now=NOW)
    verify_delivery(
        "simplicate", SECRET, _h(X_Webhook_Signature=sign_body(SECRET, BODY)), BODY, now=NOW
    )
    assert len(calls) == 2


def test_rejection_messages_never_quote_the_signature() -> None:
    signature = _mb(secret=OTHER)
    with pytest.raises(WebhookRejected) as info:
        verify_delivery("moneybird", SECRET, _h(Moneybird_Signature=signature), BODY, now=NOW)
    assert signature.split("v1=")[1] not in info.value.message
    assert "Moneybird-Signature" in info.value.message


def test_delivery_id_falls_back_to_the_body_digest() -> None:
    def delivery_id(body: bytes) -> str:
        headers = _h(X_Webhook_Signature=sign_body(SECRET, body))
        return verify_delivery("simplicate", SECRET, headers, body, now=NOW).delivery_id

    assert delivery_id(BODY) == delivery_id(BODY)
    assert delivery_id(BODY) != delivery_id(BODY + b"\n")


def test_webhook_account_repr_hides_the_secret() -> None:
    account = WebhookAccount("moneybird", SecretStr(SECRET))
    assert SECRET not in repr(account)
    assert SECRET not in str(account)


def test_webhook_accounts_lists_only_accounts_with_a_secret(tmp_path: Path) -> None:
    data = tomllib.loads(
        """
[[workspace]]
name = "acme"
  [[workspace.account]]
  name = "crm"
  vendor = "simplicate"
  base_url = "https://acme.simplicate.nl/api/v2"
  credentials = { key = "k-value", secret = "s-value" }
  webhook_secret = "crm-hook-secret"
  [[workspace.account]]
  name = "books"
  vendor = "moneybird"
  base_url = "https://moneybird.com/api/v2/1"
  credentials = { token = "t-value" }
"""
    )
    settings = parse_settings(data, environ={}, base_dir=tmp_path)
    accounts = webhook_accounts(settings)
    assert list(accounts) == ["crm"]
    assert accounts["crm"].vendor == "simplicate"
    assert accounts["crm"].secret.get_secret_value() == "crm-hook-secret"


# --------------------------------------------------------------------------- cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_reports_duplicates_per_account() -> None:
    cache = DeliveryCache(clock=FakeClock())
    assert cache.add("crm", "d1") is True
    assert cache.add("crm", "d1") is False
    assert cache.add("books", "d1") is True
    assert cache.seen("crm", "d1")
    assert not cache.seen("crm", "d2")


def test_cache_forgets_after_the_ttl() -> None:
    clock = FakeClock()
    cache = DeliveryCache(ttl=60, clock=clock)
    cache.add("crm", "d1")
    clock.now += 59
    assert cache.add("crm", "d1") is False
    clock.now += 2
    assert cache.add("crm", "d1") is True


def test_cache_evicts_the_oldest_beyond_its_size() -> None:
    cache = DeliveryCache(max_size=3, clock=FakeClock())
    for delivery in ("a", "b", "c", "d"):
        cache.add("crm", delivery)
    assert len(cache) == 3
    assert not cache.seen("crm", "a")
    assert all(cache.seen("crm", d) for d in ("b", "c", "d"))


def test_cache_forget_lets_a_retry_in() -> None:
    cache = DeliveryCache(clock=FakeClock())
    cache.add("crm", "d1")
    cache.forget("crm", "d1")
    assert cache.add("crm", "d1") is True


def test_cache_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        DeliveryCache(ttl=0)
    with pytest.raises(ValueError, match="positive"):
        DeliveryCache(max_size=0)

"""VendorHttp: the one place where vendor HTTP outcomes become ``syncd.errors`` exceptions.

Every adapter talks to its vendor through a :class:`VendorHttp` built over the one
``aiohttp.ClientSession`` the application owns. It adds the account's auth headers,
takes a token from the account's rate budget before *every* attempt, applies timeouts,
retries what is safe to retry, and maps every outcome in one table:

=============================================  =============================================
outcome                                        result
=============================================  =============================================
``classify(...)`` returns an error             that error, raised as is (never retried)
2xx with JSON (or an empty 204/205)            :class:`HttpResponse`
2xx with HTML or unparsable JSON               like a 5xx: never handed out as data
3xx                                            ``Fatal`` (redirects are not followed: they
                                               would carry our auth headers elsewhere)
401, 403                                       ``AuthFailed`` (never retried)
404                                            ``NotFound``
other 4xx (400, 409, 422, ...)                 ``SkipRecord(reason=<vendor's message>)``
429                                            ``budget.penalize(retry_after)``, retried (a 429
                                               was not processed, so even a POST is safe), then
                                               ``RateLimited(retry_after)``
5xx, reset, disconnect, timeout, garbled 2xx   safe call: retried with jittered exponential
                                               backoff, then ``VendorUnavailable``; unsafe
                                               (non-idempotent write): ``Uncertain`` at once
connection refused, DNS, connect timeout       nothing was sent: retried even for writes,
                                               then ``VendorUnavailable``
=============================================  =============================================

A call is *safe* when it is idempotent: GET, HEAD, OPTIONS, PUT and DELETE by default,
POST and PATCH not; a POST that only reads passes ``idempotent=True``.

JSON numbers with a fraction are parsed as ``Decimal`` (money never passes through
float), and ``Decimal`` values in a request body are sent as JSON numbers with their
exact digits. Secret values (the auth header values) are scrubbed from every message this
module builds, including vendor text that echoes them back.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import logging
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from syncd.adapters.base import Lane
from syncd.errors import (
    AuthFailed,
    Fatal,
    NotFound,
    RateLimited,
    SkipRecord,
    SyncdError,
    Uncertain,
    VendorUnavailable,
)

__all__ = [
    "DEFAULT_ATTEMPTS",
    "SAFE_METHODS",
    "Classifier",
    "HttpResponse",
    "RateBudget",
    "RequestEvent",
    "RetryPolicy",
    "Timeouts",
    "VendorHttp",
    "parse_retry_after",
    "path_template",
    "vendor_message",
]

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TEXT_LIMIT = 2000  # HttpResponse.text keeps at most this many characters
MESSAGE_LIMIT = 300  # vendor messages in exceptions are cut to this length
EPOCH_THRESHOLD = 1e9  # a reset/retry value above this is a Unix timestamp, not a delay
_RATE_RESET_HEADERS = ("Retry-After", "RateLimit-Reset", "X-RateLimit-Reset")
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "apikey"})
_MIN_SECRET_PART = 4
_TAG_RE = re.compile(r"<[^>]*>")
_SPACE_RE = re.compile(r"\s+")
_ID_SEGMENT_RE = re.compile(r"^(?P<id>[^.]*\d[^.]*?)(?P<ext>\.[A-Za-z]+)?$")
# A JSON escape that parses into text no database can store: NUL or a UTF-16 surrogate.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Socket timeouts of one request; the whole request may take ``connect + read``."""

    connect: float = 10.0
    read: float = 30.0  # per request (sock_read); total = connect + read

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """The equivalent ``aiohttp.ClientTimeout``."""
        return aiohttp.ClientTimeout(
            total=self.connect + self.read, sock_connect=self.connect, sock_read=self.read
        )


# Tries of a safe call. A listing makes one call per page, so what matters is the chance
# that one call out of hundreds fails every try: at a 20 % fault rate that is
# 0.2**4 = 1.6e-3 per call with four tries (a 300-page listing then fails 38 % of the
# time) and 0.2**6 = 6.4e-5 with six (2 %; a later pass resumes from the checkpoint).
DEFAULT_ATTEMPTS: Final = 6


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a safe call is retried.

    Backoff between tries is jittered exponential, ``base_delay * 2**n * uniform(0.5, 1.5)``,
    each pause capped at ``max_backoff``: with the defaults a call that fails every try
    spends at most ``worst_case_backoff()`` (about 6.6 s) pausing. A vendor's Retry-After
    overrides the backoff when longer, up to ``max_delay``; a call asked to wait longer
    than that gives up at once with the vendor's Retry-After in the error.
    """

    attempts: int = DEFAULT_ATTEMPTS  # total tries for a safe call
    base_delay: float = 0.25
    max_backoff: float = 2.0  # cap on one backoff pause
    max_delay: float = 30.0  # the longest Retry-After a call waits out by itself

    def delay(self, retry: int, rng: random.Random) -> float:
        """Backoff before retry number ``retry`` (0 for the first retry)."""
        pause = self.base_delay * 2.0**retry * rng.uniform(0.5, 1.5)
        return min(self.max_backoff, self.max_delay, pause)

    def worst_case_backoff(self) -> float:
        """The most a call that fails every try can spend in backoff pauses (no Retry-After)."""
        cap = min(self.max_backoff, self.max_delay)
        return sum(min(cap, self.base_delay * 2.0**n * 1.5) for n in range(self.attempts - 1))


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A successful vendor answer."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: Any  # parsed JSON (fractions as Decimal); None for 204 / an empty body
    text: str  # raw text, cut to TEXT_LIMIT characters


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One attempt that went out (or tried to), for metrics."""

    account: str
    vendor: str
    method: str
    path: str  # the path with ids collapsed to "{id}" (low-cardinality metric label)
    status: int | None  # None when no HTTP answer arrived
    error: str | None  # the syncd error class or transport failure kind; None on success
    elapsed: float  # seconds on the wire, without budget waits
    lane: Lane


# Vendor-specific classification, consulted before the generic mapping for every answer:
# (status, headers, parsed body or None, text) -> an error to raise, or None.
Classifier = Callable[[int, Mapping[str, str], Any, str], SyncdError | None]


class RateBudget(Protocol):
    """An account's request budget (``syncd.adapters.ratelimit``)."""

    async def acquire(self, lane: Lane) -> None:
        """Wait until every window has a token, and take it."""
        ...

    async def penalize(self, retry_after: float | None) -> None:
        """The vendor answered 429: pause the account and slow down.

        A budget whose next ``acquire`` waits out the pause sets a true class attribute
        ``pauses_after_penalty``; otherwise VendorHttp also sleeps the Retry-After itself.
        """
        ...

    def record_success(self) -> None:
        """A request was processed: recover slowly from an earlier penalty."""
        ...


# --------------------------------------------------------------------------- helpers


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After / RateLimit-Reset value, or None if unreadable.

    Accepts delta seconds ("30", "1.5"), an HTTP date, or a Unix timestamp (any number
    above 1e9). ``now`` is the current Unix time. Never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT
            return None
        return max(0.0, when.timestamp() - now)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    if number > EPOCH_THRESHOLD:
        return max(0.0, number - now)
    return max(0.0, number)


def retry_after_from(headers: Mapping[str, str], *, now: float) -> float | None:
    """The first readable of Retry-After, RateLimit-Reset and X-RateLimit-Reset."""
    for name in _RATE_RESET_HEADERS:
        seconds = parse_retry_after(headers.get(name), now=now)
        if seconds is not None:
            return seconds
    return None


def path_template(path: str) -> str:
    """``path`` with every segment that holds a digit collapsed to "{id}" (".json" kept)."""
    path = path.partition("?")[0]
    parts: list[str] = []
    for segment in path.split("/"):
        match = _ID_SEGMENT_RE.match(segment)
        parts.append("{id}" + (match.group("ext") or "") if match else segment)
    return "/".join(parts)


def _plain(text: str) -> str:
    """Text without HTML tags and with whitespace collapsed."""
    return _SPACE_RE.sub(" ", _TAG_RE.sub(" ", text)).strip()


def _messages(value: Any) -> list[str]:
    """Human-readable messages from one error value of any vendor shape."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str):
        return [_plain(value)] if value.strip() else []
    if isinstance(value, int | float | Decimal):
        return [str(value)]
    if isinstance(value, Sequence):
        return [m for item in value for m in _messages(item)]
    if isinstance(value, Mapping):
        for key in ("message", "error", "detail", "title", "description"):
            found = _messages(value.get(key))
            if found:
                return found
        # A field map: {"company": "is required"} or {"firstname": ["is required"]}.
        out: list[str] = []
        for field, detail in value.items():
            for message in _messages(detail):
                out.append(f"{field}: {message}")
        return out
    return []


def vendor_message(body: Any, text: str = "", *, limit: int = MESSAGE_LIMIT) -> str:
    """The vendor's own error message from a parsed body (any vendor shape), else the text.

    Understands ``{"errors": [...]}``, ``{"error": "..."}``, ``{"error": {field: msgs}}``,
    ``{"message": "..."}`` (HTML stripped) and a bare JSON string. Cut to ``limit``.
    """
    found: list[str] = []
    if isinstance(body, Mapping):
        for key in ("errors", "error", "message", "detail", "title", "response"):
            found = _messages(body.get(key))
            if found:
                break
    elif body is not None:
        found = _messages(body)
    message = "; ".join(dict.fromkeys(found)) if found else _plain(text)
    if len(message) > limit:
        message = message[: limit - 1].rstrip() + "…"
    return message


def _encode_json(value: Any) -> bytes:
    """JSON bytes of ``value``; Decimals become JSON numbers with exactly their digits."""
    nonce = secrets.token_hex(8)
    decimals: list[Decimal] = []

    def marker(obj: Any) -> str:
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError(f"{obj} cannot be sent as JSON")
            decimals.append(obj)
            return f"\x00{nonce}:{len(decimals) - 1}\x00"
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    text = jsonlib.dumps(value, default=marker, ensure_ascii=False, separators=(",", ":"))
    for index, number in enumerate(decimals):
        quoted = jsonlib.dumps(f"\x00{nonce}:{index}\x00")
        text = text.replace(quoted, format(number, "f"), 1)
    return text.encode()


def _secret_parts(values: Iterable[str]) -> tuple[str, ...]:
    """Every auth header value, and each credential inside one ("Bearer <token>"), longest first."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        for part in value.split():
            if len(part) >= _MIN_SECRET_PART and part.lower() not in _AUTH_SCHEMES:
                found.add(part)
    return tuple(sorted(found, key=len, reverse=True))


def _looks_like_html(text: str, content_type: str) -> bool:
    head = text.lstrip()[:64].lower()
    return "html" in content_type.lower() or head.startswith(("<!doctype", "<html", "<"))


# --------------------------------------------------------------------------- the client


class _Failure(Exception):
    """One failed attempt, before it is known whether it will be retried."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        sent: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind  # "http", "timeout", "disconnect", "connect", "garbled", "html"
        self.detail = detail
        self.sent = sent  # whether the request may have reached the vendor
        self.status = status
        self.retry_after = retry_after


class VendorHttp:
    """HTTP to one vendor account: auth, budget, timeouts, retries and error mapping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account: str,
        vendor: str,
        base_url: str,
        auth_headers: Mapping[str, str],
        budget: RateBudget | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        classify: Classifier | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        observer: Callable[[RequestEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retry.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        self.session = session
        self.account = account
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self._auth_headers = dict(auth_headers)
        self._secrets = _secret_parts(auth_headers.values())
        self.budget = budget
        # A budget that pauses the account on penalize() (ratelimit.py's do) makes the next
        # acquire() wait out a 429; without one, VendorHttp sleeps Retry-After itself.
        self._budget_pauses = bool(getattr(budget, "pauses_after_penalty", False))
        self.timeouts = timeouts
        self.retry = retry
        self._classify = classify
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._observer = observer
        self._clock = clock
        self._client_timeout = timeouts.client_timeout()
        self.calls = 0  # attempts that reached the wire

    def __repr__(self) -> str:
        return f"VendorHttp(vendor={self.vendor!r}, account={self.account!r}, base_url={self.base_url!r})"

    # --- shorthands

    async def get(self, path: str, **kwargs: Any) -> HttpResponse:
        """``request("GET", path, ...)``."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> HttpResponse:
        """``request("POST", path, ...)``; not idempotent unless said so."""
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> HttpResponse:
        """``request("PUT", path, ...)``."""
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> HttpResponse:
        """``request("PATCH", path, ...)``; not idempotent unless said so."""
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> HttpResponse:
        """``request("DELETE", path, ...)``."""
        return await self.request("DELETE", path, **kwargs)

    # --- the request loop

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        json: Any = None,
        lane: Lane = "pull",
        idempotent: bool | None = None,
        expect_json: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send ``method base_url+path``; return the answer or raise a ``syncd.errors`` error."""
        method = method.upper()
        safe = method in SAFE_METHODS if idempotent is None else idempotent
        url = self.base_url + path
        template = path_template(path)
        send_headers = CIMultiDict[str]({"Accept": "application/json"})
        send_headers.update(self._auth_headers)
        data: bytes | None = None
        if json is not None:
            data = _encode_json(json)
            send_headers["Content-Type"] = "application/json"
        if headers:
            send_headers.update(headers)
        query: Any = list(params.items()) if isinstance(params, Mapping) else params

        last: _Failure | None = None
        for attempt in range(self.retry.attempts):
            if attempt and last is not None:
                await self._pause_before_retry(attempt - 1, last, method, template)
            if self.budget is not None:
                await self.budget.acquire(lane)
            try:
                return await self._attempt(
                    method, url, template, lane, query, data, send_headers, expect_json
                )
            except _Failure as failure:
                last = failure
                if failure.status == 429:
                    if self.budget is not None:
                        await self.budget.penalize(failure.retry_after)
                    if not self._budget_pauses and self._too_long(failure.retry_after):
                        break
                    continue
                if failure.sent and not safe:
                    raise Uncertain(
                        self._scrub(
                            f"{self.vendor} {method} {template} for account {self.account}: "
                            f"outcome unknown ({failure.detail}); look the record up before "
                            "retrying"
                        )
                    ) from None
                if self._too_long(failure.retry_after):
                    break
        assert last is not None  # attempts >= 1, and every success returned
        raise self._give_up(method, template, last)

    def _too_long(self, retry_after: float | None) -> bool:
        """Whether the vendor asks for a longer pause than this call should wait."""
        return retry_after is not None and retry_after > self.retry.max_delay

    async def _pause_before_retry(
        self, retry: int, failure: _Failure, method: str, template: str
    ) -> None:
        if failure.status == 429 and self._budget_pauses:
            return  # the budget holds the account until the penalty is over
        delay = self.retry.delay(retry, self._rng)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        logger.debug(
            "%s %s %s for account %s failed (%s); retry %d in %.2fs",
            self.vendor,
            method,
            template,
            self.account,
            self._scrub(failure.detail),
            retry + 1,
            delay,
        )
        await self._sleep(delay)

    def _give_up(self, method: str, template: str, last: _Failure) -> SyncdError:
        where = f"{self.vendor} {method} {template} for account {self.account}"
        if last.status == 429:
            after = "" if last.retry_after is None else f"; retry after {last.retry_after:.0f}s"
            return RateLimited(
                self._scrub(f"{where}: rate limited (429){after}"), retry_after=last.retry_after
            )
        return VendorUnavailable(
            self._scrub(f"{where}: vendor unavailable ({last.detail})"),
            retry_after=last.retry_after,
        )

    async def _attempt(
        self,
        method: str,
        url: str,
        template: str,
        lane: Lane,
        query: Any,
        data: bytes | None,
        send_headers: CIMultiDict[str],
        expect_json: bool,
    ) -> HttpResponse:
        """One try: an answer, or an error raised for good, or a ``_Failure``."""
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            try:
                async with self.session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=send_headers,
                    timeout=self._client_timeout,
                    allow_redirects=False,
                ) as resp:
                    self.calls += 1
                    status = resp.status
                    raw = await resp.read()
                    resp_headers = CIMultiDictProxy(CIMultiDict(resp.headers))
                    content_type = resp.content_type or ""
                    charset = resp.charset or "utf-8"
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Nothing reached the vendor: safe to retry even for a write.
                raise _Failure(
                    "connect", f"cannot connect: {type(exc).__name__}", sent=False
                ) from None
            except (TimeoutError, aiohttp.ServerTimeoutError):
                if status is None:
                    self.calls += 1
                raise _Failure("timeout", "timed out", sent=True, status=None) from None
            except aiohttp.ClientError as exc:
                if status is None:
                    self.calls += 1
                raise _Failure(
                    "disconnect", f"connection lost: {type(exc).__name__}", sent=True
                ) from None
            return self._interpret(
                method, template, status, resp_headers, raw, content_type, charset, expect_json
            )
        except _Failure as failure:
            error = failure.kind if failure.status is None else f"http_{failure.status}"
            raise
        except SyncdError as exc:
            error = type(exc).__name__
            raise
        finally:
            self._observe(method, template, status, error, time.monotonic() - started, lane)

    def _interpret(
        self,
        method: str,
        template: str,
        status: int,
        headers: Mapping[str, str],
        raw: bytes,
        content_type: str,
        charset: str,
        expect_json: bool,
    ) -> HttpResponse:
        try:
            full_text = raw.decode(charset)
        except LookupError:
            charset = "utf-8"
            full_text = raw.decode(charset, errors="replace")
        except UnicodeDecodeError:
            # Keep what can be read; U+FFFD marks what could not (as a browser would).
            full_text = raw.decode(charset, errors="replace")
            logger.warning(
                "%s %s %s for account %s: the answer is not valid %s; undecodable bytes "
                "replaced by U+FFFD",
                self.vendor,
                method,
                template,
                self.account,
                charset,
            )
        body: Any = None
        parsed = False
        if full_text.strip():
            try:
                body = jsonlib.loads(full_text, parse_float=Decimal)
                parsed = True
            except ValueError:
                body = None
            if parsed and _UNSTORABLE_ESCAPE.search(full_text):
                body = self._storable(body, method, template)
        text = full_text[:TEXT_LIMIT]

        if self._classify is not None:
            verdict = self._classify(status, headers, body, text)
            if verdict is not None:
                raise verdict

        where = f"{self.vendor} {method} {template}"
        if 200 <= status < 300:
            if not expect_json or status in (204, 205) or method == "HEAD" or parsed:
                if self.budget is not None:
                    self.budget.record_success()
                return HttpResponse(status=status, headers=headers, body=body, text=text)
            if not full_text.strip():
                detail = f"vendor answered {status} with an empty body"
                kind = "garbled"
            elif _looks_like_html(full_text, content_type):
                detail = f"vendor answered {status} with an HTML page"
                kind = "html"
            else:
                detail = f"vendor answered {status} with garbled JSON"
                kind = "garbled"
            raise _Failure(kind, detail, sent=True, status=None)
        message = self._scrub(vendor_message(body, full_text))
        if status == 429:
            retry_after = retry_after_from(headers, now=self._clock())
            raise _Failure("http", "429", sent=False, status=429, retry_after=retry_after)
        if status >= 500:
            retry_after = retry_after_from(headers, now=self._clock()) if status == 503 else None
            detail = f"{status}: {message}" if message else str(status)
            raise _Failure("http", detail, sent=True, status=status, retry_after=retry_after)
        if self.budget is not None:
            self.budget.record_success()
        if status in (401, 403):
            raise AuthFailed(
                self._scrub(
                    f"{self.vendor} rejected the credentials of account {self.account} "
                    f"({status}: {message or 'no message'})"
                )
            )
        if status == 404:
            raise NotFound(self._scrub(f"{where}: not found (404: {message or 'no message'})"))
        if 300 <= status < 400:
            location = self._scrub(headers.get("Location", "?"))
            raise Fatal(
                f"{where} for account {self.account} was redirected ({status}) to {location}; "
                "check the account's base_url"
            )
        if 400 <= status < 500:
            raise SkipRecord(message or f"{self.vendor} answered {status}")
        raise VendorUnavailable(self._scrub(f"{where}: unexpected status {status}"))

    def _storable(self, body: Any, method: str, template: str) -> Any:
        """``body`` with NUL and lone surrogates (from JSON escapes) replaced by U+FFFD.

        No database column can hold them (PostgreSQL refuses NUL; neither backend can
        encode a lone surrogate), so they are replaced here, where invalid UTF-8 bytes
        already become U+FFFD, instead of failing the page that carries them.
        """
        replaced = 0

        def clean(value: Any) -> Any:
            nonlocal replaced
            if isinstance(value, str):
                fixed, count = _UNSTORABLE_CHARS.subn("\ufffd", value)
                replaced += count
                return fixed
            if isinstance(value, dict):
                return {clean(k): clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        cleaned = clean(body)
        if replaced:
            logger.warning(
                "%s %s %s for account %s: %d NUL or lone surrogate character(s) in the "
                "answer replaced by U+FFFD",
                self.vendor,
                method,
                template,
                self.account,
                replaced,
            )
        return cleaned

    def _scrub(self, text: str) -> str:
        """``text`` with every auth header value replaced by "***"."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _observe(
        self,
        method: str,
        template: str,
        status: int | None,
        error: str | None,
        elapsed: float,
        lane: Lane,
    ) -> None:
        if self._observer is None:
            return
        event = RequestEvent(
            account=self.account,
            vendor=self.vendor,
            method=method,
            path=template,
            status=status,
            error=error,
            elapsed=elapsed,
            lane=lane,
        )
        try:
            self._observer(event)
        except Exception:  # metrics must never break a sync
            logger.exception("request observer failed for %s %s", method, template)

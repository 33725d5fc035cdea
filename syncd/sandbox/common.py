"""What every emulator shares: sliding-window rate limits, seeded faults, the middleware,
and JSON text with exact decimal numbers."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import email.utils
import json
import random
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from syncd.sandbox.base import FAULT_KINDS, RateDecision, VendorEmulator

READ_ONLY_FAULTS = frozenset({"garbled", "html"})
# The wait an injected 429 asks for. Retry-After counts whole seconds, so 1 s is the
# shortest a vendor can announce; it is not divided by options.rate_scale for that reason.
FAULT_RETRY_AFTER_SECONDS = 1.0
WRITE_ONLY_FAULTS = frozenset({"lost_response"})

# What a proxy or a hosting panel sends when the application behind it is broken: a page
# meant for a browser, with status 200, where the client expected JSON.
HTML_ERROR_PAGE = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    "<title>We'll be back soon</title></head>\n<body><h1>Something went wrong</h1>"
    "<p>The application could not handle your request. Please try again in a few minutes."
    "</p></body></html>\n"
)


# ---------------------------------------------------------------- JSON with exact decimals

# Writes one Decimal as the text of a JSON number; vendors differ only in this.
NumberFormat = Callable[[Decimal], str]


def plain_decimal(value: Decimal) -> str:
    """Positional digits without trailing fractional zeros: 13.70 -> "13.7", 1E+3 -> "1000".

    No rounding happens, whatever the number of digits (``Decimal.normalize`` would round
    to the context precision).
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def exact_json(value: Any, number: NumberFormat) -> str:
    """Compact JSON text in which every Decimal is a JSON number written by ``number``.

    Amounts never pass through float, so what the emulator stores is what the client
    reads. Mapping keys become strings; tuples are arrays; anything else raises TypeError.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = (
            f"{json.dumps(str(k), ensure_ascii=False)}:{exact_json(v, number)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(exact_json(v, number) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# ---------------------------------------------------------------- rate limits


@dataclass(frozen=True, slots=True)
class _Window:
    limit: int
    seconds: float


class SlidingWindowLimiter:
    """A precise sliding-window log over every window the emulator declares.

    A request at time ``t`` occupies each window until ``t + window``. The windows are
    read from ``emulator.current_rate_windows()`` on every call and divided by
    ``options.rate_scale``, so both can change at runtime.
    """

    def __init__(self, emulator: VendorEmulator) -> None:
        self._emulator = emulator
        self._log: list[float] = []  # sorted timestamps of requests that used the windows

    def clear(self) -> None:
        self._log.clear()

    def windows(self) -> tuple[_Window, ...]:
        scale = self._emulator.options.rate_scale
        return tuple(
            _Window(w.requests, w.per_seconds / scale)
            for w in self._emulator.current_rate_windows()
        )

    def take(self, now: float) -> RateDecision:
        """Take one request at ``now`` (seconds) from every window, or refuse it."""
        windows = self.windows()
        self._prune(now, windows)
        counts = [self._count(now, w) for w in windows]
        allowed = all(c < w.limit for c, w in zip(counts, windows, strict=True))
        if allowed or self._emulator.counts_rejected_requests():
            bisect.insort(self._log, now)
            counts = [c + 1 for c in counts]
        if not windows:
            return RateDecision(True, 0, 0, 0.0, 0.0)
        if allowed:
            # The tightest window is the one with the fewest requests left.
            return min(
                (
                    self._decision(now, w, c, allowed=True)
                    for c, w in zip(counts, windows, strict=True)
                ),
                key=lambda d: (d.remaining, -d.reset_seconds),
            )
        # Refused: the request may go once every full window has room again.
        return max(
            (
                self._decision(now, w, c, allowed=False)
                for c, w in zip(counts, windows, strict=True)
                if c >= w.limit
            ),
            key=lambda d: d.reset_seconds,
        )

    def fault_decision(self, now: float) -> RateDecision:
        """A refusal for an injected 429: the tightest window's size, a short fixed wait.

        An injected 429 stands for a passing refusal, not a used-up window, so it asks for
        FAULT_RETRY_AFTER_SECONDS whatever the window's length, and whether or not rate
        limits are on. Nothing is taken from the windows.
        """
        windows = self.windows()
        if not windows:
            return RateDecision(False, 0, 0, FAULT_RETRY_AFTER_SECONDS, FAULT_RETRY_AFTER_SECONDS)
        counted = [(self._count(now, w), w) for w in windows]
        _, tightest = min(counted, key=lambda cw: (cw[1].limit - cw[0], -cw[1].seconds))
        return RateDecision(False, tightest.limit, 0, FAULT_RETRY_AFTER_SECONDS, tightest.seconds)

    def _count(self, now: float, window: _Window) -> int:
        return len(self._log) - bisect.bisect_right(self._log, now - window.seconds)

    def _decision(self, now: float, window: _Window, count: int, *, allowed: bool) -> RateDecision:
        start = bisect.bisect_right(self._log, now - window.seconds)
        if count <= 0:
            reset = window.seconds
        elif count < window.limit:
            reset = self._log[start] + window.seconds - now  # the oldest request frees a slot
        else:
            # Enough requests must expire to bring the count below the limit.
            reset = self._log[start + count - window.limit] + window.seconds - now
        return RateDecision(
            allowed=allowed,
            limit=window.limit,
            remaining=max(0, window.limit - count),
            reset_seconds=max(0.0, reset),
            window_seconds=window.seconds,
        )

    def _prune(self, now: float, windows: tuple[_Window, ...]) -> None:
        longest = max((w.seconds for w in windows), default=0.0)
        cut = bisect.bisect_right(self._log, now - longest)
        if cut:
            del self._log[:cut]


# ---------------------------------------------------------------- faults


def fault_applies(kind: str, *, is_write: bool) -> bool:
    """Garbled and HTML bodies only on reads; a lost response only on writes."""
    if kind in READ_ONLY_FAULTS:
        return not is_write
    if kind in WRITE_ONLY_FAULTS:
        return is_write
    return kind in FAULT_KINDS


class FaultInjector:
    """Seeded fault selection: the same seed and request sequence give the same faults."""

    def __init__(self, seed: int | str) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not secrets

    def reseed(self, seed: int | str) -> None:
        self._rng.seed(seed)

    def choose(self, *, fault_rate: float, kinds: Iterable[str], is_write: bool) -> str | None:
        """One draw per request: a fault kind with probability ``fault_rate``, else None."""
        roll = self._rng.random()
        if roll >= fault_rate:
            return None
        wanted = set(kinds)
        # FAULT_KINDS order, not the caller's, so the outcome does not depend on how the
        # kinds were listed.
        applicable = [k for k in FAULT_KINDS if k in wanted and fault_applies(k, is_write=is_write)]
        if not applicable:
            return None
        return self._rng.choice(applicable)


def garble(body: bytes) -> bytes:
    """Cut a body short so it is no longer valid JSON (a dropped proxy buffer, say)."""
    cut = body[: len(body) // 2]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return cut + b'{"'


# ---------------------------------------------------------------- the middleware


@dataclass(slots=True)
class VendorRuntime:
    """One served vendor: its emulator plus the framework state kept beside it."""

    emulator: VendorEmulator
    limiter: SlidingWindowLimiter
    faults: FaultInjector
    prefix: str = ""  # where the vendor is mounted; left out of counter keys

    @classmethod
    def for_emulator(cls, emulator: VendorEmulator, prefix: str = "") -> VendorRuntime:
        return cls(
            emulator=emulator,
            limiter=SlidingWindowLimiter(emulator),
            faults=FaultInjector(fault_seed(emulator.options.seed, emulator.name)),
            prefix=prefix,
        )

    def counter_key(self, request: web.Request) -> str:
        """``emulator.route_key`` without the mount prefix: "GET /contacts/{id}"."""
        method, _, path = self.emulator.route_key(request).partition(" ")
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :] or "/"
        return f"{method} {path}"

    def reset(self) -> None:
        """Empty the rate windows and restart the fault sequence from the current seed."""
        self.limiter.clear()
        self.faults.reseed(fault_seed(self.emulator.options.seed, self.emulator.name))

    def now(self) -> float:
        return self.emulator.clock().timestamp()


def fault_seed(seed: int, vendor: str) -> str:
    """Each vendor gets its own fault sequence, fixed by the sandbox seed."""
    return f"{seed}:{vendor}"


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def _drop_connection(request: web.Request) -> None:
    """Close the client's connection at once with a TCP reset, sending nothing more."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of a graceful FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _run_handler(handler: Handler, request: web.Request) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return exc


def _body_of(response: web.StreamResponse) -> bytes:
    if isinstance(response, web.Response):
        body = response.body
        if isinstance(body, bytes | bytearray):
            return bytes(body)
        if response.text is not None:
            return response.text.encode()
    return b'{"data": [{"id": "1", "name": "'


async def _apply_fault(
    kind: str, runtime: VendorRuntime, request: web.Request, handler: Handler
) -> web.StreamResponse:
    emulator = runtime.emulator
    if kind == "rate_limit":
        emulator.counters.rate_limited += 1
        return emulator.rate_limited_response(runtime.limiter.fault_decision(runtime.now()))
    if kind == "server_error":
        return emulator.server_error_response(500)
    if kind == "unavailable":
        return emulator.server_error_response(503)
    if kind == "reset":
        _drop_connection(request)
        return web.Response(status=500)  # never reaches the client
    if kind == "slow":
        await asyncio.sleep(emulator.options.slow_seconds)
        return await handler(request)
    if kind == "garbled":
        response = await _run_handler(handler, request)
        content_type = response.content_type or "application/json"
        return web.Response(status=200, body=garble(_body_of(response)), content_type=content_type)
    if kind == "html":
        return web.Response(status=200, text=HTML_ERROR_PAGE, content_type="text/html")
    if kind == "lost_response":
        await _run_handler(handler, request)  # the write is committed ...
        _drop_connection(request)  # ... and its answer never arrives
        return web.Response(status=500)
    raise ValueError(f"unknown fault kind {kind!r}")


def vendor_middleware(runtime: VendorRuntime) -> Middleware:
    """count -> auth -> on_request -> rate limit -> fault -> handler, for one vendor sub-app."""

    @web.middleware
    async def sandbox_vendor(request: web.Request, handler: Handler) -> web.StreamResponse:
        emulator = runtime.emulator
        _bump(emulator.counters.requests, runtime.counter_key(request))
        denied = emulator.check_auth(request)
        if denied is not None:
            emulator.counters.auth_failures += 1
            return denied
        emulator.on_request(request)
        options = emulator.options
        if options.rate_limits:
            decision = runtime.limiter.take(runtime.now())
            if not decision.allowed:
                emulator.counters.rate_limited += 1
                return emulator.rate_limited_response(decision)
        kind = runtime.faults.choose(
            fault_rate=options.fault_rate,
            kinds=options.fault_kinds,
            is_write=emulator.is_write(request),
        )
        if kind is None:
            return _dated(await handler(request), emulator)
        _bump(emulator.counters.faults, kind)
        return _dated(await _apply_fault(kind, runtime, request, handler), emulator)

    return sandbox_vendor


def _dated(response: web.StreamResponse, emulator: VendorEmulator) -> web.StreamResponse:
    """Stamp the HTTP ``Date`` header from the emulator's clock (as a real server's own
    clock would), so a client comparing it with record versions sees one time line even
    when a test freezes or advances that clock."""
    if not response.prepared and "Date" not in response.headers:
        response.headers["Date"] = email.utils.format_datetime(
            emulator.clock().astimezone(dt.UTC), usegmt=True
        )
    return response

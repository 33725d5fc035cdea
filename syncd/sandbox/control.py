"""The test-only ``/_sandbox/`` control API: seed, act as a human user, read counters, tune.

Mounted on the root app only when ``options.control`` is true. Control requests are not
counted, not rate limited and never faulted (they bypass the vendor sub-apps). Errors:
an unknown vendor or record (KeyError) is a 404, a bad argument (ValueError) a 400,
both as ``{"error": message}``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from syncd.sandbox.base import FAULT_KINDS

if TYPE_CHECKING:
    from syncd.sandbox.server import Sandbox

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(data: Any) -> str:
    # Emulators return JSON-able data; str() is a safety net for a stray Decimal or date.
    return json.dumps(data, default=str, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _guarded(handler: ControlHandler) -> ControlHandler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except KeyError as exc:
            return _error(404, _message(exc))
        except ValueError as exc:
            return _error(400, _message(exc))

    return run


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body; an empty body is an empty object."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _int(data: dict[str, Any], key: str, default: int, *, minimum: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be at least {minimum}")
    return value


def _float(
    data: dict[str, Any],
    key: str,
    default: float,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    number = float(value)
    if not math.isfinite(number) or number > high or number < low or (low_open and number == low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        upper = f" and <= {high:g}" if math.isfinite(high) else ""
        raise ValueError(f"{key} must be {bound}{upper}")
    return number


class _Control:
    """Handlers bound to one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    # --- whole sandbox

    async def reset(self, request: web.Request) -> web.Response:
        self.sandbox.reset()
        return _json({"reset": True, "vendors": list(self.sandbox.emulators)})

    async def seed(self, request: web.Request) -> web.Response:
        data = await _body(request)
        unknown = sorted(set(data) - {"seed", "contacts", "invoices", "overlap"})
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        options = self.sandbox.options
        seed = _int(data, "seed", options.seed)
        contacts = _int(data, "contacts", options.contacts, minimum=0)
        invoices = _int(data, "invoices", options.invoices, minimum=0)
        overlap = _float(data, "overlap", options.overlap, low=0.0, high=1.0)
        options.seed, options.contacts, options.invoices = seed, contacts, invoices
        options.overlap = overlap
        world = self.sandbox.load_world()
        return _json(
            {
                "seed": seed,
                "contacts": {v: len(world[v].contacts) for v in self.sandbox.emulators},
                "invoices": {v: len(world[v].invoices) for v in self.sandbox.emulators},
            }
        )

    async def all_counters(self, request: web.Request) -> web.Response:
        return _json({v: e.counters.as_json() for v, e in self.sandbox.emulators.items()})

    async def get_settings(self, request: web.Request) -> web.Response:
        return _json(self._settings())

    async def put_settings(self, request: web.Request) -> web.Response:
        data = await _body(request)
        options = self.sandbox.options
        known = {"rate_limits", "rate_scale", "fault_rate", "fault_kinds", "slow_seconds"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        # Validate everything first, then apply: a bad request changes nothing.
        rate_limits = data.get("rate_limits", options.rate_limits)
        if not isinstance(rate_limits, bool):
            raise ValueError("rate_limits must be true or false")
        rate_scale = _float(data, "rate_scale", options.rate_scale, low=0.0, low_open=True)
        fault_rate = _float(data, "fault_rate", options.fault_rate, low=0.0, high=1.0)
        slow_seconds = _float(data, "slow_seconds", options.slow_seconds, low=0.0)
        kinds = data.get("fault_kinds", list(options.fault_kinds))
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError("fault_kinds must be a list of strings")
        bad = sorted(set(kinds) - set(FAULT_KINDS))
        if bad:
            raise ValueError(
                f"unknown fault kind(s): {', '.join(bad)}; known: {', '.join(FAULT_KINDS)}"
            )
        options.rate_limits = rate_limits
        options.rate_scale = rate_scale
        options.fault_rate = fault_rate
        options.fault_kinds = tuple(dict.fromkeys(kinds))
        options.slow_seconds = slow_seconds
        return _json(self._settings())

    def _settings(self) -> dict[str, Any]:
        options = self.sandbox.options
        return {
            "rate_limits": options.rate_limits,
            "rate_scale": options.rate_scale,
            "fault_rate": options.fault_rate,
            "fault_kinds": list(options.fault_kinds),
            "slow_seconds": options.slow_seconds,
        }

    # --- one vendor

    async def counters(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        return _json(emulator.counters.as_json())

    async def state(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        return _json(emulator.dump())

    async def create(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        record = emulator.create(request.match_info["resource"], await _body(request))
        return _json(record, status=201)

    async def mutate(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        info = request.match_info
        record = emulator.mutate(info["resource"], info["record_id"], await _body(request))
        return _json(record)

    async def delete(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        emulator.delete(request.match_info["resource"], request.match_info["record_id"])
        return _json({"deleted": True})

    async def archive(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        record = emulator.archive(request.match_info["resource"], request.match_info["record_id"])
        return _json(record)

    async def payment(self, request: web.Request) -> web.Response:
        emulator = self.sandbox.emulator(request.match_info["vendor"])
        data = await _body(request)
        raw_amount = data.get("amount")
        if not isinstance(raw_amount, str):
            raise ValueError('amount is required, as a decimal string (e.g. "121.00")')
        try:
            amount = Decimal(raw_amount)
        except InvalidOperation:
            raise ValueError(f"amount {raw_amount!r} is not a decimal number") from None
        if not amount.is_finite():
            raise ValueError(f"amount {raw_amount!r} is not a decimal number")
        raw_date = data.get("date")
        if raw_date is None:
            date = emulator.clock().date()
        elif isinstance(raw_date, str):
            try:
                date = dt.date.fromisoformat(raw_date)
            except ValueError:
                raise ValueError(f"date {raw_date!r} is not an ISO date (YYYY-MM-DD)") from None
        else:
            raise ValueError("date must be an ISO date string (YYYY-MM-DD)")
        record = emulator.register_payment(request.match_info["record_id"], amount, date)
        return _json(record, status=201)


def add_control_routes(app: web.Application, sandbox: Sandbox) -> None:
    """Mount ``/_sandbox/`` on the root app."""
    control = _Control(sandbox)
    vendor = "{vendor}"
    record = "/_sandbox/" + vendor + "/{resource}/{record_id}"
    routes = [
        web.post("/_sandbox/reset", _guarded(control.reset)),
        web.post("/_sandbox/seed", _guarded(control.seed)),
        web.get("/_sandbox/counters", _guarded(control.all_counters)),
        web.get("/_sandbox/settings", _guarded(control.get_settings)),
        web.put("/_sandbox/settings", _guarded(control.put_settings)),
        web.get(f"/_sandbox/{vendor}/counters", _guarded(control.counters)),
        web.get(f"/_sandbox/{vendor}/state", _guarded(control.state)),
        web.post(f"/_sandbox/{vendor}/{{resource}}", _guarded(control.create)),
        web.patch(record, _guarded(control.mutate)),
        web.delete(record, _guarded(control.delete)),
        web.post(record + "/archive", _guarded(control.archive)),
        web.post(record + "/payments", _guarded(control.payment)),
    ]
    app.add_routes(routes)

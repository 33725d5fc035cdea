"""The admin HTTP API: health, readiness, metrics, status and vendor webhooks (aiohttp).

=========================  ===================================================================
endpoint                   answer
=========================  ===================================================================
``GET /healthz``           200 ``ok``: the event loop is serving requests
``GET /readyz``            ``readiness()`` -> (ok, reasons): 200 ``{"ready": true}``, or 503
                           ``{"ready": false, "reasons": [...]}``
``GET /metrics``           Prometheus text (OpenMetrics when the scraper asks for it); gauges
                           are refreshed from ``status_provider()`` first when
                           ``metrics_from_status`` (a failed refresh sets ``syncd_status_up``
                           to 0 and still answers)
``GET /status``            the JSON of `syncd.status` (same as ``syncd status --json``)
``POST /hooks/{account}``  a vendor webhook: 404 for an account without a webhook secret,
                           401 for a missing, bad or stale signature, 200 ``duplicate`` for a
                           delivery already accepted, else ``on_webhook(account)`` (which
                           must only *schedule* a pull) and 202 ``accepted`` (200 for
                           Moneybird, which counts any other status as a failed delivery)
=========================  ===================================================================

``/status`` access: when an ``admin_token`` is configured, every request needs
``Authorization: Bearer <token>`` (compared in constant time), wherever the API
listens. Without a token it is open only when the API listens on loopback
(``loopback_only=True``); listening elsewhere without a token, ``/status`` is refused
with 403 and says how to fix it. ``/healthz``, ``/readyz`` and ``/metrics`` stay open
for orchestrators and scrapers; webhooks authenticate by signature.

``status_provider``, ``readiness`` and ``on_webhook`` may be plain functions or
coroutine functions. Nothing here logs or returns a secret, a signature or a token.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from pydantic import SecretStr

from syncd.metrics import Metrics
from syncd.webhooks import DeliveryCache, WebhookAccount, WebhookRejected, verify_delivery

__all__ = [
    "MAX_WEBHOOK_BYTES",
    "create_admin_app",
    "is_loopback_host",
    "split_listen",
    "start_admin",
    "stop_admin",
]

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES: Final = 4 * 1024 * 1024  # a Moneybird delivery carries a whole invoice

StatusProvider = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
Readiness = Callable[[], tuple[bool, Iterable[str]] | Awaitable[tuple[bool, Iterable[str]]]]
OnWebhook = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class _Config:
    """What the handlers need, stored on the application."""

    status_provider: StatusProvider
    metrics: Metrics
    readiness: Readiness
    on_webhook: OnWebhook
    webhook_secrets: Mapping[str, WebhookAccount]
    admin_token: str | None
    loopback_only: bool
    metrics_from_status: bool
    deliveries: DeliveryCache
    clock: Callable[[], float]


_CONFIG: Final = web.AppKey("syncd_admin", _Config)


async def _call(func: Callable[..., Any], *args: Any) -> Any:
    result = func(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _json(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=json.dumps)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) reaches only this machine."""
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8765"`` / ``"[::1]:8765"`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{listen!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


# --------------------------------------------------------------------------- handlers


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    cfg = request.app[_CONFIG]
    try:
        ok, reasons = await _call(cfg.readiness)
        reasons = [str(r) for r in reasons]
    except Exception as exc:  # a broken check means "not ready", never a 500
        logger.warning("readiness check failed: %s", type(exc).__name__)
        ok, reasons = False, [f"readiness check failed: {type(exc).__name__}"]
    if ok:
        return _json({"ready": True, "reasons": reasons})
    return _json({"ready": False, "reasons": reasons}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    cfg = request.app[_CONFIG]
    metrics = cfg.metrics
    if cfg.metrics_from_status:
        try:
            metrics.update_from_status(await _call(cfg.status_provider))
        except Exception as exc:
            logger.warning("status refresh for /metrics failed: %s", type(exc).__name__)
            metrics.status_failed()
    body, content_type = metrics.exposition(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _status(request: web.Request) -> web.Response:
    cfg = request.app[_CONFIG]
    token = cfg.admin_token
    if token is None and not cfg.loopback_only:
        return _json(
            {
                "error": "/status is disabled: the admin API listens beyond loopback and no "
                "admin_token is configured; set [daemon] admin_token (or admin_token_file), "
                "or listen on 127.0.0.1"
            },
            status=403,
        )
    if token is not None:
        given = _bearer(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return _json(
                {"error": "a valid 'Authorization: Bearer <admin_token>' header is required"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="syncd"'},
            )
    try:
        status = await _call(cfg.status_provider)
    except Exception as exc:
        logger.warning("status unavailable: %s", type(exc).__name__)
        return _json({"error": f"status unavailable ({type(exc).__name__})"}, status=503)
    return _json(status)


async def _hook(request: web.Request) -> web.Response:
    cfg = request.app[_CONFIG]
    metrics = cfg.metrics
    account = request.match_info["account"]
    target = cfg.webhook_secrets.get(account)
    if target is None:
        # Never label a metric with a name from the URL: that would let anyone grow it.
        metrics.webhook("_unknown", "unknown_account")
        return _json({"error": "no webhook endpoint for this account"}, status=404)
    body = await request.read()
    try:
        verified = verify_delivery(
            target.vendor, target.secret, request.headers, body, now=cfg.clock()
        )
    except WebhookRejected as exc:
        metrics.webhook(account, exc.reason)
        logger.warning("webhook for %s rejected: %s", account, exc.reason)
        return _json({"error": exc.message, "reason": exc.reason}, status=401)
    cache = cfg.deliveries
    if not cache.add(account, verified.delivery_id):
        metrics.webhook(account, "duplicate")
        return _json({"result": "duplicate"})
    try:
        await _call(cfg.on_webhook, account)
    except Exception:
        # Let the vendor's retry through: this delivery triggered nothing.
        cache.forget(account, verified.delivery_id)
        metrics.webhook(account, "failed")
        logger.exception("webhook for %s accepted but the pull could not be scheduled", account)
        return _json({"error": "could not schedule a pull; retry later"}, status=500)
    metrics.webhook(account, "accepted")
    logger.info("webhook for %s accepted (%s): pull scheduled", account, verified.scheme)
    return _json({"result": "accepted"}, status=200 if target.vendor == "moneybird" else 202)


# --------------------------------------------------------------------------- app


def create_admin_app(
    *,
    status_provider: StatusProvider,
    metrics: Metrics,
    readiness: Readiness,
    on_webhook: OnWebhook,
    webhook_secrets: Mapping[str, WebhookAccount],
    admin_token: SecretStr | str | None = None,
    loopback_only: bool,
    metrics_from_status: bool = True,
    deliveries: DeliveryCache | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The admin application (see the module docstring).

    ``webhook_secrets`` maps account name -> vendor and secret
    (`syncd.webhooks.webhook_accounts` builds it from the settings); ``clock`` is the
    Unix time used for signature staleness.
    """
    token = admin_token.get_secret_value() if isinstance(admin_token, SecretStr) else admin_token
    if token == "":
        raise ValueError("admin_token must not be empty")
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app[_CONFIG] = _Config(
        status_provider=status_provider,
        metrics=metrics,
        readiness=readiness,
        on_webhook=on_webhook,
        webhook_secrets=dict(webhook_secrets),
        admin_token=token,
        loopback_only=loopback_only,
        metrics_from_status=metrics_from_status,
        deliveries=deliveries if deliveries is not None else DeliveryCache(),
        clock=clock,
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/status", _status)
    app.router.add_post("/hooks/{account}", _hook)
    return app


async def start_admin(
    app: web.Application, listen: str, *, access_log: logging.Logger | None = None
) -> web.AppRunner:
    """Serve ``app`` on ``listen`` (``host:port``; port 0 picks a free one).

    Returns the runner; `stop_admin` shuts it down. ``runner.addresses`` holds the bound
    addresses. No access log unless one is given (scrapes every few seconds are noise).
    """
    host, port = split_listen(listen)
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def stop_admin(runner: web.AppRunner) -> None:
    """Stop serving and release the socket."""
    await runner.cleanup()

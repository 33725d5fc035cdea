"""Prometheus metrics: counters the runtime bumps, gauges refreshed from a status snapshot.

Every metric lives in the `Metrics` instance's own ``CollectorRegistry`` (never the
process-wide default), so two daemons in one test process, or two tests, never share
numbers. Label values are account, vendor and workspace names from the config, job and
state names from fixed sets, and the rate window ("1m", "1d"): cardinality is bounded by
the config.

Counters (the runtime calls the methods; ``observe_request`` plugs into VendorHttp's
``observer=`` hook):

- ``syncd_vendor_requests_total{account,vendor,status}``: attempts on the wire, by
  status class ``2xx``/``3xx``/``4xx``/``5xx`` or ``error`` (no HTTP answer);
- ``syncd_vendor_rate_limited_total{account,vendor}``: 429 answers (budget misses);
- ``syncd_vendor_request_duration_seconds{account,vendor}``: time on the wire;
- ``syncd_records_pulled_total{account}`` / ``syncd_records_pushed_total{account}``;
- ``syncd_runs_total{account,job,status}``: finished job runs;
- ``syncd_webhooks_total{account,result}``: deliveries by outcome (``accepted``,
  ``duplicate``, ``failed``, or the rejection reason such as ``bad_signature``).

Gauges (set by ``update_from_status`` from `syncd.status.collect_status`'s result;
account label sets that vanish from the status vanish here too):

- ``syncd_account_state{account,vendor,workspace,state}``: 1 for the account's state;
- ``syncd_budget_tokens`` / ``syncd_budget_capacity`` / ``syncd_budget_used`` /
  ``syncd_budget_allowed`` / ``syncd_budget_limit`` ``{account,window}``: the rate budget
  (``used`` = capacity - tokens; ``allowed`` = the most syncd sends per window; ``limit``
  = the vendor's limit). Budget use over time is
  ``increase(syncd_vendor_requests_total[<window>])`` against ``syncd_budget_allowed``;
- ``syncd_budget_penalty_seconds{account,window}``: pause left after a 429;
- ``syncd_outbox_depth{account,state}``, ``syncd_uncertain_writes{account}``,
  ``syncd_dead_letters{account}``;
- ``syncd_open_conflicts{workspace}``, ``syncd_account_open_conflicts{account}``,
  ``syncd_open_match_reviews{account}``, ``syncd_quarantined_records{account}``;
- ``syncd_last_success_timestamp_seconds{account}``: the latest successful run;
- ``syncd_pull_lag_seconds{account}``: seconds since the last successful pull, worked
  out at each ``render`` from the clock (absent until a pull has succeeded);
- ``syncd_lease_expiry_timestamp_seconds{account,owner}``;
- ``syncd_status_up``: 1 when the last status refresh worked, 0 when it failed;
  ``syncd_status_timestamp_seconds``: when that status was generated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder, generate_latest

from syncd.adapters.http import RequestEvent

__all__ = ["Metrics", "status_class"]

_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def status_class(status: int | None) -> str:
    """``"2xx"`` .. ``"5xx"`` for an HTTP status, ``"error"`` when none arrived."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Metrics:
    """syncd's metrics in a private registry; ``render()`` is the exposition text."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self._last_pull_ok: dict[str, float] = {}
        r = self.registry

        # --- counters
        self.requests = Counter(
            "syncd_vendor_requests",
            "Vendor HTTP attempts, by status class (error: no HTTP answer).",
            ["account", "vendor", "status"],
            registry=r,
        )
        self.rate_limited = Counter(
            "syncd_vendor_rate_limited",
            "Vendor 429 answers (rate budget misses).",
            ["account", "vendor"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "syncd_vendor_request_duration_seconds",
            "Time on the wire per vendor HTTP attempt.",
            ["account", "vendor"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.records_pulled = Counter(
            "syncd_records_pulled", "Vendor records read by pulls.", ["account"], registry=r
        )
        self.records_pushed = Counter(
            "syncd_records_pushed", "Writes pushed to a vendor.", ["account"], registry=r
        )
        self.runs = Counter(
            "syncd_runs", "Finished job runs.", ["account", "job", "status"], registry=r
        )
        self.webhooks = Counter(
            "syncd_webhooks",
            "Webhook deliveries by outcome (accepted, duplicate, failed, or why rejected).",
            ["account", "result"],
            registry=r,
        )

        # --- gauges from the status snapshot
        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self.account_state = gauge(
            "syncd_account_state",
            "1 for the account's current state (active, paused, auth_failed, unknown).",
            ["account", "vendor", "workspace", "state"],
        )
        window = ["account", "window"]
        self.budget_tokens = gauge(
            "syncd_budget_tokens", "Requests that may go now, per rate window.", window
        )
        self.budget_capacity = gauge(
            "syncd_budget_capacity", "Burst size (bucket) or quota per window.", window
        )
        self.budget_used = gauge("syncd_budget_used", "Capacity minus free tokens.", window)
        self.budget_allowed = gauge(
            "syncd_budget_allowed", "The most syncd sends in any interval of the window.", window
        )
        self.budget_limit = gauge("syncd_budget_limit", "The vendor's limit per window.", window)
        self.budget_penalty = gauge(
            "syncd_budget_penalty_seconds", "Pause left after a 429, per window.", window
        )
        self.outbox_depth = gauge(
            "syncd_outbox_depth", "Outbox rows not done, by state.", ["account", "state"]
        )
        self.uncertain = gauge(
            "syncd_uncertain_writes", "Writes that may or may not have landed.", ["account"]
        )
        self.dead = gauge("syncd_dead_letters", "Writes given up on (dead letters).", ["account"])
        self.open_conflicts = gauge(
            "syncd_open_conflicts", "Open conflicts per workspace.", ["workspace"]
        )
        self.account_conflicts = gauge(
            "syncd_account_open_conflicts",
            "Open conflicts with a candidate value from the account.",
            ["account"],
        )
        self.match_reviews = gauge(
            "syncd_open_match_reviews", "Ambiguous matches awaiting review.", ["account"]
        )
        self.quarantine = gauge(
            "syncd_quarantined_records", "Unresolved quarantined vendor records.", ["account"]
        )
        self.last_success = gauge(
            "syncd_last_success_timestamp_seconds",
            "Unix time of the account's latest successful job run.",
            ["account"],
        )
        self.pull_lag = gauge(
            "syncd_pull_lag_seconds", "Seconds since the last successful pull.", ["account"]
        )
        self.lease_expiry = gauge(
            "syncd_lease_expiry_timestamp_seconds",
            "Unix time the account's lease expires.",
            ["account", "owner"],
        )
        self.status_up = Gauge(
            "syncd_status_up", "1 if the last status refresh worked, else 0.", registry=r
        )
        self.status_time = Gauge(
            "syncd_status_timestamp_seconds", "When the last status was generated.", registry=r
        )
        self._status_gauges = (
            self.account_state,
            self.budget_tokens,
            self.budget_capacity,
            self.budget_used,
            self.budget_allowed,
            self.budget_limit,
            self.budget_penalty,
            self.outbox_depth,
            self.uncertain,
            self.dead,
            self.open_conflicts,
            self.account_conflicts,
            self.match_reviews,
            self.quarantine,
            self.last_success,
            self.pull_lag,
            self.lease_expiry,
        )

    # ----------------------------------------------------------------- counters

    def request(
        self, account: str, vendor: str, status: int | None, *, elapsed: float | None = None
    ) -> None:
        """Count one vendor HTTP attempt (``status`` None: no answer arrived)."""
        self.requests.labels(account, vendor, status_class(status)).inc()
        if status == 429:
            self.rate_limited.labels(account, vendor).inc()
        if elapsed is not None and elapsed >= 0:
            self.request_seconds.labels(account, vendor).observe(elapsed)

    def observe_request(self, event: RequestEvent) -> None:
        """VendorHttp's ``observer=`` hook."""
        self.request(event.account, event.vendor, event.status, elapsed=event.elapsed)

    def pulled(self, account: str, n: int = 1) -> None:
        """Count ``n`` vendor records read by a pull."""
        if n > 0:
            self.records_pulled.labels(account).inc(n)

    def pushed(self, account: str, n: int = 1) -> None:
        """Count ``n`` writes pushed to the vendor."""
        if n > 0:
            self.records_pushed.labels(account).inc(n)

    def run_finished(self, account: str, job: str, status: str) -> None:
        """Count one finished pull/push/reconcile run."""
        self.runs.labels(account, job, status).inc()

    def webhook(self, account: str, result: str) -> None:
        """Count one webhook delivery by outcome."""
        self.webhooks.labels(account, result).inc()

    # ----------------------------------------------------------------- gauges

    def status_failed(self) -> None:
        """The status could not be read: keep the last gauges, flag them as stale."""
        self.status_up.set(0)

    def update_from_status(self, status: Mapping[str, Any]) -> None:
        """Set every gauge from a `syncd.status.collect_status` result."""
        for g in self._status_gauges:
            g.clear()
        self._last_pull_ok = {}
        for workspace in status.get("workspaces", []):
            self.open_conflicts.labels(workspace["name"]).set(workspace.get("open_conflicts", 0))
            for account in workspace.get("accounts", []):
                self._update_account(workspace["name"], account)
        generated = _timestamp(status.get("generated_at"))
        if generated is not None:
            self.status_time.set(generated)
        self.status_up.set(1)
        self._refresh_lag()

    def _update_account(self, workspace: str, account: Mapping[str, Any]) -> None:
        name = account["name"]
        self.account_state.labels(
            name, account.get("vendor", ""), workspace, account.get("state", "unknown")
        ).set(1)
        for window in account.get("budget", []):
            labels = (name, str(window.get("per", "")))
            self.budget_tokens.labels(*labels).set(window.get("tokens", 0))
            self.budget_capacity.labels(*labels).set(window.get("capacity", 0))
            self.budget_used.labels(*labels).set(window.get("used", 0))
            if window.get("allowed") is not None:
                self.budget_allowed.labels(*labels).set(window["allowed"])
            if window.get("requests") is not None:
                self.budget_limit.labels(*labels).set(window["requests"])
            until = _timestamp(window.get("penalty_until"))
            remaining = max(0.0, until - self._clock()) if until is not None else 0.0
            self.budget_penalty.labels(*labels).set(remaining)
        outbox = account.get("outbox", {})
        for state, count in outbox.items():
            self.outbox_depth.labels(name, state).set(count)
        self.uncertain.labels(name).set(outbox.get("uncertain", 0))
        self.dead.labels(name).set(outbox.get("dead", 0))
        self.account_conflicts.labels(name).set(account.get("open_conflicts", 0))
        self.match_reviews.labels(name).set(account.get("open_match_reviews", 0))
        self.quarantine.labels(name).set(account.get("quarantine", 0))
        last = _timestamp(account.get("last_success_at"))
        if last is not None:
            self.last_success.labels(name).set(last)
        pull = _timestamp((account.get("last_success") or {}).get("pull"))
        if pull is not None:
            self._last_pull_ok[name] = pull
        lease = account.get("lease")
        if lease:
            expires = _timestamp(lease.get("expires_at"))
            if expires is not None:
                self.lease_expiry.labels(name, str(lease.get("owner", ""))).set(expires)

    def _refresh_lag(self) -> None:
        now = self._clock()
        for account, finished in self._last_pull_ok.items():
            self.pull_lag.labels(account).set(max(0.0, now - finished))

    # ----------------------------------------------------------------- exposition

    def render(self) -> str:
        """The Prometheus text exposition of every metric (pull lag worked out now)."""
        self._refresh_lag()
        return generate_latest(self.registry).decode()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type) in the format the scraper's Accept header asks for."""
        self._refresh_lag()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

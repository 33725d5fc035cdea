"""A minimal sd_notify client: tell systemd that syncd is ready, alive, reloading or stopping.

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service: the address of a Unix
datagram socket, either a filesystem path (``/run/systemd/notify``) or an abstract name
written ``@name``. Each datagram holds newline-separated ``KEY=VALUE`` assignments. When
the variable is unset (a terminal, a container, tests) every call here does nothing, so
callers never need to check.

Sending never blocks the event loop and never raises: a full or vanished socket only
drops the message (the return value says whether it went out). The watchdog period comes
from ``WATCHDOG_USEC`` and is meant for this process only when ``WATCHDOG_PID`` is unset
or names us; ``watchdog_interval()`` returns half of it, as systemd recommends.

Typical use (``syncd.app``)::

    notifier = Notifier.from_environ()
    notifier.ready("3 accounts scheduled")
    ...                             # every watchdog_interval() seconds, from a healthy loop:
    notifier.watchdog()
    ...                             # on SIGHUP:
    notifier.reloading()
    ...                             # reload done (or refused):
    notifier.ready("reloaded: 4 accounts")
    ...                             # on SIGTERM:
    notifier.stopping("draining")
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "monotonic_usec", "parse_notify_address", "watchdog_interval"]

_log = logging.getLogger(__name__)


def parse_notify_address(value: str | None) -> str | bytes | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value, or None if unset or unsupported.

    ``/path`` is a filesystem socket; ``@name`` is a Linux abstract socket (a leading NUL
    byte). Other forms (systemd's ``vsock:`` addresses, relative paths) are not supported.
    """
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd expects in ``MONOTONIC_USEC``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(
    environ: Mapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, or None if off.

    None when ``WATCHDOG_USEC`` is unset, not a positive integer, or when ``WATCHDOG_PID``
    is set and names another process (the watchdog is meant for that process, not us).
    """
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = env.get("WATCHDOG_PID")
    if raw_pid:
        try:
            target = int(raw_pid)
        except ValueError:
            return None
        if target != (os.getpid() if pid is None else pid):
            return None
    return usec / 2 / 1_000_000


def _one_line(text: str) -> str:
    """Status text on one line: a newline would start a new assignment in the datagram."""
    return " ".join(text.split())


class Notifier:
    """Sends sd_notify messages to one socket; every method is a no-op when disabled."""

    def __init__(self, address: str | bytes | None) -> None:
        self._address = address
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``NOTIFY_SOCKET`` (disabled when unset or unsupported)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        address = parse_notify_address(raw)
        if raw and address is None:
            _log.warning("NOTIFY_SOCKET=%r is not a supported address; sd_notify disabled", raw)
        return cls(address)

    @property
    def enabled(self) -> bool:
        """True when messages are sent somewhere (``NOTIFY_SOCKET`` was usable)."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True if it was sent."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # systemd reads the queue promptly; if it is full, drop rather than stall.
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(payload, self._address)
        except OSError as exc:
            # Log once per notifier: a missing socket would otherwise log on every ping.
            if not self._warned:
                self._warned = True
                _log.warning("sd_notify failed: %s", exc.strerror or type(exc).__name__)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: startup (or a reload) finished; optionally with a status line."""
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        """``STATUS=...``: one line that ``systemctl status`` shows."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is healthy (send every ``watchdog_interval()``)."""
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC``; send ``ready()`` once the reload is done."""
        return self.notify(
            "RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", *self._status(status)
        )

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown began (draining)."""
        return self.notify("STOPPING=1", *self._status(status))

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: ask for more time to start or stop (a long drain)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def close(self) -> None:
        """Close the socket (later calls reopen it)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        return () if text is None else (f"STATUS={_one_line(text)}",)

"""sd_notify client: messages arrive on a real Unix datagram socket, as systemd reads them."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.notify import Notifier, monotonic_usec, parse_notify_address, watchdog_interval

# A receive that never comes fails the test instead of hanging it.
RECV_TIMEOUT = 10.0
SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)


@pytest.fixture
def notify_dir() -> Iterator[Path]:
    """A short directory: a socket path must fit in sun_path (108 bytes), tmp_path may not."""
    with tempfile.TemporaryDirectory(prefix="syncd-notify-") as name:
        yield Path(name)


@pytest.fixture
def listener(notify_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket playing systemd, and the NOTIFY_SOCKET value that names it."""
    path = notify_dir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(RECV_TIMEOUT)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def _receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def _nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(RECV_TIMEOUT)
    return False


# --- addresses and the disabled notifier ------------------------------------------------


def test_notify_socket_forms_become_sendto_addresses() -> None:
    assert parse_notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_notify_address("@syncd/notify") == b"\0syncd/notify"
    assert parse_notify_address(None) is None
    assert parse_notify_address("") is None
    assert parse_notify_address("@") is None
    assert parse_notify_address("vsock:2:1234") is None
    assert parse_notify_address("relative/path") is None


def test_without_notify_socket_every_call_is_a_silent_no_op() -> None:
    notifier = Notifier.from_environ({})

    assert not notifier.enabled
    assert notifier.ready("up") is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier.extend_timeout(5) is False
    notifier.close()


def test_unsupported_notify_socket_disables_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="syncd.notify"):
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"})

    assert not notifier.enabled
    assert "not a supported address" in caplog.text


# --- messages ---------------------------------------------------------------------------


def test_ready_with_status_arrives_as_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})

    assert notifier.enabled
    assert notifier.ready("3 accounts scheduled") is True

    assert _receive(sock) == ["READY=1", "STATUS=3 accounts scheduled"]
    notifier.close()


def test_status_is_kept_on_one_line(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier(parse_notify_address(address))

    notifier.status("acme-crm: ok\nREADY=1\n  acme-books:\tparked")

    # A newline would have smuggled a second assignment (READY=1) into the datagram.
    assert _receive(sock) == ["STATUS=acme-crm: ok READY=1 acme-books: parked"]
    notifier.close()


def test_watchdog_stopping_and_extend_timeout(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier(parse_notify_address(address))

    notifier.watchdog()
    notifier.stopping("draining 2 pushes")
    notifier.stopping()
    notifier.extend_timeout(1.5)

    assert _receive(sock) == ["WATCHDOG=1"]
    assert _receive(sock) == ["STOPPING=1", "STATUS=draining 2 pushes"]
    assert _receive(sock) == ["STOPPING=1"]
    assert _receive(sock) == ["EXTEND_TIMEOUT_USEC=1500000"]
    assert _nothing_waiting(sock)
    notifier.close()


def test_reloading_carries_the_monotonic_clock_then_ready_ends_the_reload(
    listener: tuple[socket.socket, str],
) -> None:
    sock, address = listener
    notifier = Notifier(parse_notify_address(address))

    before = monotonic_usec()
    notifier.reloading("reloading config")
    after = monotonic_usec()
    notifier.ready("reloaded")

    first = _receive(sock)
    assert first[0] == "RELOADING=1"
    key, _, value = first[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert first[2:] == ["STATUS=reloading config"]
    assert _receive(sock) == ["READY=1", "STATUS=reloaded"]
    notifier.close()


def test_monotonic_usec_is_clock_monotonic_in_microseconds() -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    value = monotonic_usec()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    assert before <= value <= after


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_socket_address() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(RECV_TIMEOUT)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready() is True
        assert _receive(sock) == ["READY=1"]
        notifier.close()
    finally:
        sock.close()


def test_a_vanished_socket_drops_messages_and_warns_once(
    listener: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    sock, address = listener
    notifier = Notifier(parse_notify_address(address))
    assert notifier.watchdog() is True
    sock.close()
    os.unlink(address)

    with caplog.at_level(logging.WARNING, logger="syncd.notify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False

    assert len(caplog.records) == 1
    assert "sd_notify failed" in caplog.records[0].getMessage()
    notifier.close()


def test_a_full_socket_queue_never_blocks_the_sender(listener: tuple[socket.socket, str]) -> None:
    _sock, address = listener
    notifier = Notifier(parse_notify_address(address))

    # Nobody reads: the receive queue fills up, and sends must then fail fast, not block.
    results = [notifier.watchdog() for _ in range(10_000)]

    assert results[0] is True
    assert results[-1] is False
    notifier.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PASSCRED is Linux-only")
def test_sender_is_the_calling_process_as_systemd_checks(
    listener: tuple[socket.socket, str],
) -> None:
    """systemd accepts messages from the main pid only (NotifyAccess=main): check the creds."""
    sock, address = listener
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    code = "from syncd.notify import Notifier; Notifier.from_environ().ready('child up')"
    child = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "NOTIFY_SOCKET": address}
    )
    try:
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    finally:
        assert child.wait(timeout=60) == 0

    assert data.decode().split("\n") == ["READY=1", "STATUS=child up"]
    creds = [
        d for level, kind, d in ancillary if (level, kind) == (socket.SOL_SOCKET, SCM_CREDENTIALS)
    ]
    assert len(creds) == 1
    pid, _uid, _gid = struct.unpack("3i", creds[0])
    assert pid == child.pid


# --- watchdog interval ------------------------------------------------------------------


def test_watchdog_interval_is_half_the_period() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "500000"}) == 0.25


def test_watchdog_interval_is_none_when_the_watchdog_is_off_or_garbled() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": ""}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "-5"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30s"}) is None


def test_watchdog_interval_honours_watchdog_pid() -> None:
    env = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 10.0
    assert watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({**env, "WATCHDOG_PID": "1234"}, pid=1234) == 10.0
    assert watchdog_interval({**env, "WATCHDOG_PID": "x"}) is None


def test_watchdog_interval_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "8000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    assert watchdog_interval() == 4.0

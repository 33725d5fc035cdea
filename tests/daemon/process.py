"""Run real `syncd run` processes against an in-process sandbox, and watch what they do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.sandbox.base import SandboxOptions, VendorEmulator, VendorName
from syncd.sandbox.seed import generate_world
from syncd.sandbox.testing import SandboxHandle

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- config


def account_toml(
    handle: SandboxHandle,
    vendor: VendorName,
    name: str,
    *,
    poll: str = "1h",
    webhook_secret: str | None = None,
) -> str:
    credentials = dict(handle.credentials[vendor])
    if vendor == "perfex":
        credentials = {"api_key": credentials["api_key"]}
    creds = ", ".join(f"{k} = {json.dumps(v)}" for k, v in sorted(credentials.items()))
    lines = [
        "  [[workspace.account]]",
        f"  name = {json.dumps(name)}",
        f"  vendor = {json.dumps(vendor)}",
        f"  base_url = {json.dumps(handle.base_urls[vendor])}",
        f"  credentials = {{ {creds} }}",
        f"  poll_interval = {json.dumps(poll)}",
        '  reconcile_interval = "1h"',
        '  rate_limit = [{ requests = 1000, per = "1s" }]',
        "  allow_insecure_http = true",
    ]
    if webhook_secret is not None:
        lines.append(f"  webhook_secret = {json.dumps(webhook_secret)}")
    return "\n".join(lines) + "\n"


def workspace_toml(name: str, accounts: Sequence[str], account_blocks: Sequence[str]) -> str:
    flow = (
        "  [[workspace.flow]]\n"
        '  resource = "contacts"\n'
        f"  accounts = {json.dumps(list(accounts))}\n"
        '  conflict = "newest"\n'
        '  delete = "archive"\n'
    )
    return f'[[workspace]]\nname = "{name}"\n\n' + "\n".join(account_blocks) + "\n" + flow


def config_toml(
    db_url: str, admin_listen: str, workspaces: Sequence[str], *, grace: str = "5s"
) -> str:
    return (
        f"[database]\nurl = {json.dumps(db_url)}\n\n"
        "[daemon]\n"
        f"admin_listen = {json.dumps(admin_listen)}\n"
        'log_format = "json"\n'
        'log_level = "info"\n'
        f"shutdown_grace = {json.dumps(grace)}\n\n" + "\n".join(workspaces)
    )


# ---------------------------------------------------------------- what the vendors hold


def contact_count(emulator: VendorEmulator) -> int:
    """How many contacts (organisations and people) the vendor holds."""
    dump = emulator.dump()
    if emulator.name == "simplicate":
        return len(dump["organization"]) + len(dump["person"])
    if emulator.name == "moneybird":
        return len(dump["contacts"])
    if emulator.name == "perfex":
        return len(dump["customers"])
    return len(dump["clients"])


def seeded_union(options: SandboxOptions, vendors: Sequence[VendorName]) -> int:
    """How many distinct real-world contacts the served vendors were seeded with."""
    world = generate_world(options)
    return len({c.key for v in vendors for c in world[v].contacts})


# ---------------------------------------------------------------- sd_notify


class NotifySocket:
    """A NOTIFY_SOCKET for the child process; collects every datagram it sends."""

    def __init__(self) -> None:
        # AF_UNIX paths are short (108 bytes): keep it out of pytest's deep tmp_path.
        self.dir = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        # Read as datagrams arrive: the kernel queues only a few (WATCHDOG=1 is frequent).
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self.drain)

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def seen(self, key: str, value: str | None = None) -> int:
        return sum(1 for m in self.drain() if key in m and (value is None or m[key] == value))

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.dir)


# ---------------------------------------------------------------- the process


@dataclass
class Syncd:
    """One `syncd run` child process; its log lines (JSON) are kept in ``log_path``."""

    config: Path
    log_path: Path
    env: Mapping[str, str]
    process: asyncio.subprocess.Process | None = None
    _log: Any = None
    started: float = field(default_factory=time.monotonic)

    def _open_log(self) -> Any:
        return self.log_path.open("ab")

    async def start(self, *args: str) -> Syncd:
        self._log = self._open_log()  # closed in wait()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd",
            "--config",
            str(self.config),
            *(args or ("run",)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            cwd=str(REPO),
        )
        self.started = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, within: float = 20.0) -> int:
        assert self.process is not None
        try:
            code = await asyncio.wait_for(self.process.wait(), within)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return code

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines (optionally only those whose event is ``name``)."""
        found = []
        for line in self.text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if name is None or entry.get("event") == name:
                found.append(entry)
        return found

    async def stop(self) -> None:
        """SIGKILL if still running (test clean-up)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await self.wait(10.0)


def alive(*processes: Syncd) -> bool:
    """True; fails the test at once (with its output) if one of them has exited."""
    for p in processes:
        if not p.running():
            raise AssertionError(f"syncd pid {p.pid} exited early:\n{p.text()[-3000:]}")
    return True


@contextlib.asynccontextmanager
async def kept(processes: list[Syncd]) -> AsyncIterator[list[Syncd]]:
    """Make sure no child outlives the test (and show their logs when it fails)."""
    try:
        yield processes
    except BaseException:
        for p in processes:
            with contextlib.suppress(OSError):
                tail = p.text().splitlines()[-40:]
                pid = p.pid if p.process is not None else None
                print(f"--- last log lines of syncd pid {pid}:", *tail, sep="\n")
        raise
    finally:
        for p in processes:
            await p.stop()

"""Serve the sandbox in-process on a free 127.0.0.1 port, for pytest and other tools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from syncd.sandbox.base import VENDORS, Clock, Counters, SandboxOptions, VendorEmulator, VendorName
from syncd.sandbox.server import Sandbox, build_sandbox, start_site


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    """A running sandbox: where it listens and what it serves."""

    url: str  # root, e.g. "http://127.0.0.1:54321"
    base_urls: dict[VendorName, str]
    credentials: dict[VendorName, dict[str, str]]
    emulators: dict[VendorName, VendorEmulator]
    sandbox: Sandbox

    @property
    def options(self) -> SandboxOptions:
        return self.sandbox.options

    def counters(self, vendor: VendorName) -> Counters:
        """The live counters of one vendor (read in-process, no control API needed)."""
        return self.emulators[vendor].counters


@asynccontextmanager
async def running_sandbox(
    options: SandboxOptions | None = None,
    *,
    vendors: Iterable[VendorName] = VENDORS,
    clock: Clock | None = None,
    emulator_classes: Mapping[str, type[VendorEmulator]] | None = None,
) -> AsyncIterator[SandboxHandle]:
    """Build and serve a sandbox on 127.0.0.1 with a free port; stop it on exit."""
    sandbox = build_sandbox(
        options if options is not None else SandboxOptions(),
        clock=clock,
        vendors=vendors,
        emulator_classes=emulator_classes,
    )
    runner, port = await start_site(sandbox, "127.0.0.1", 0, shutdown_timeout=0.5)
    host_port = f"127.0.0.1:{port}"
    try:
        yield SandboxHandle(
            url=f"http://{host_port}",
            base_urls=sandbox.base_urls(host_port),
            credentials=sandbox.credentials(),
            emulators=sandbox.emulators,
            sandbox=sandbox,
        )
    finally:
        await runner.cleanup()

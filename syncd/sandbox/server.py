"""Build the sandbox app (four vendor sub-apps under their prefixes) and serve it."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from syncd.sandbox.base import (
    VENDORS,
    Clock,
    SandboxOptions,
    VendorEmulator,
    VendorName,
    VendorSeed,
)
from syncd.sandbox.common import VendorRuntime, vendor_middleware
from syncd.sandbox.registry import credentials_for, emulator_class
from syncd.sandbox.seed import generate_world

DEFAULT_LISTEN = "127.0.0.1:8900"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def vendor_prefix(vendor: VendorName, options: SandboxOptions) -> str:
    """Where a vendor is mounted; base_url = http://host:port + this prefix."""
    if vendor == "simplicate":
        return "/simplicate/api/v2"
    if vendor == "moneybird":
        return f"/moneybird/api/v2/{options.moneybird_administration_id}"
    if vendor == "perfex":
        return "/perfex/api/v1"
    if vendor == "simplbooks":
        return f"/simplbooks/{options.simplbooks_company_id}/api"
    raise KeyError(vendor)


@dataclass(slots=True)
class Sandbox:
    """The root app plus everything the control API and tests reach into."""

    app: web.Application
    options: SandboxOptions
    emulators: dict[VendorName, VendorEmulator]
    runtimes: dict[VendorName, VendorRuntime]

    def base_urls(self, host_port: str) -> dict[VendorName, str]:
        """The exact ``base_url`` for each vendor's account in a syncd config."""
        return {
            vendor: f"http://{host_port}{vendor_prefix(vendor, self.options)}"
            for vendor in self.emulators
        }

    def credentials(self) -> dict[VendorName, dict[str, str]]:
        """The credentials each vendor accepts (fixed defaults unless overridden)."""
        return {
            vendor: credentials_for(vendor, self.options.credentials) for vendor in self.emulators
        }

    def emulator(self, vendor: str) -> VendorEmulator:
        """The emulator serving ``vendor``; KeyError when it is not served."""
        for name, emulator in self.emulators.items():
            if name == vendor:
                return emulator
        raise KeyError(f"vendor {vendor!r} is not served by this sandbox")

    def load_world(self) -> dict[VendorName, VendorSeed]:
        """Regenerate the world from the options and load it: clean records, counters, windows."""
        world = generate_world(self.options)
        for vendor, emulator in self.emulators.items():
            emulator.reset()
            emulator.load_seed(world[vendor])
            self.runtimes[vendor].reset()
        return world

    def reset(self) -> None:
        """Forget every record and counter, empty the rate windows, restart the fault sequence."""
        for vendor, emulator in self.emulators.items():
            emulator.reset()
            self.runtimes[vendor].reset()


def build_sandbox(
    options: SandboxOptions,
    *,
    clock: Clock | None = None,
    vendors: Iterable[VendorName] = VENDORS,
    emulator_classes: Mapping[str, type[VendorEmulator]] | None = None,
) -> Sandbox:
    """The sandbox app serving ``vendors``, each seeded from ``generate_world(options)``.

    ``emulator_classes`` overrides the registry (tests use tiny stand-in emulators).
    """
    from syncd.sandbox.control import add_control_routes  # control needs Sandbox

    now = clock or utc_now
    app = web.Application()
    emulators: dict[VendorName, VendorEmulator] = {}
    runtimes: dict[VendorName, VendorRuntime] = {}
    for vendor in dict.fromkeys(vendors):  # keep order, drop repeats
        if vendor not in VENDORS:
            raise ValueError(f"unknown vendor {vendor!r}; known: {', '.join(VENDORS)}")
        overrides = emulator_classes or {}
        cls = overrides[vendor] if vendor in overrides else emulator_class(vendor)
        emulator = cls(options, now)
        prefix = vendor_prefix(vendor, options)
        runtime = VendorRuntime.for_emulator(emulator, prefix)
        sub = web.Application(middlewares=[vendor_middleware(runtime)])
        emulator.build_routes(sub)
        app.add_subapp(prefix, sub)
        emulators[vendor] = emulator
        runtimes[vendor] = runtime
    sandbox = Sandbox(app=app, options=options, emulators=emulators, runtimes=runtimes)
    world = generate_world(options)
    for vendor, emulator in emulators.items():
        emulator.load_seed(world[vendor])
    if options.control:
        add_control_routes(app, sandbox)
    return sandbox


def parse_listen(listen: str) -> tuple[str, int]:
    """ "127.0.0.1:8900" or "[::1]:8900" -> (host, port); ValueError otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{listen!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    return host.strip("[]"), int(port)


def _display_host_port(host: str, port: int) -> str:
    if host in {"0.0.0.0", "", "::"}:  # noqa: S104 - only deciding what to print
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe(sandbox: Sandbox, host_port: str) -> str:
    """The banner `syncd sandbox` prints: base URL and credentials per vendor."""
    urls = sandbox.base_urls(host_port)
    creds = sandbox.credentials()
    options = sandbox.options
    lines = [f"syncd sandbox listening on http://{host_port} (seed {options.seed})", ""]
    for vendor, url in urls.items():
        lines.append(f"  {vendor:<11} base_url = {url}")
        shown = ", ".join(f"{key} = {value}" for key, value in creds[vendor].items())
        lines.append(f"  {'':<11} credentials: {shown}")
    lines.append("")
    limits = f"on (scale {options.rate_scale:g})" if options.rate_limits else "off"
    faults = f"{options.fault_rate:g} ({', '.join(options.fault_kinds)})"
    lines.append(f"  rate limits: {limits}; fault rate: {faults}")
    if options.control:
        lines.append(f"  control API: http://{host_port}/_sandbox/")
    return "\n".join(lines)


async def start_site(
    sandbox: Sandbox, host: str, port: int, *, shutdown_timeout: float = 5.0
) -> tuple[web.AppRunner, int]:
    """Serve ``sandbox`` on host:port (0 picks a free port); return the runner and the port."""
    # handler_cancellation: a "slow" fault stops sleeping once its client has given up.
    runner = web.AppRunner(
        sandbox.app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


async def serve(
    listen: str,
    options: SandboxOptions,
    *,
    ready: Callable[[str], None] | None = None,
    vendors: Iterable[VendorName] = VENDORS,
    emulator_classes: Mapping[str, type[VendorEmulator]] | None = None,
) -> None:
    """Serve the emulators on ``listen`` until cancelled.

    Prints the base URLs and credentials once listening, then calls ``ready`` with the root
    URL (e.g. "http://127.0.0.1:8900"; the real port when ``listen`` asked for port 0).
    """
    host, port = parse_listen(listen)
    sandbox = build_sandbox(options, vendors=vendors, emulator_classes=emulator_classes)
    runner, bound = await start_site(sandbox, host, port)
    try:
        host_port = _display_host_port(host, bound)
        sys.stdout.write(describe(sandbox, host_port) + "\n")
        sys.stdout.flush()
        if ready is not None:
            ready(f"http://{host_port}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

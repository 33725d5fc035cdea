"""The `syncd` command line: parse arguments, call into the application, print results."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from syncd import __version__
from syncd.errors import ConfigError, SchemaBehind

if TYPE_CHECKING:
    from syncd.settings import Settings

# Exit codes (DESIGN §7): 0 success, 1 sync errors, 2 bad usage or config.
EXIT_OK = 0
EXIT_SYNC_ERROR = 1
EXIT_USAGE = 2

CONFIG_SEARCH = (Path("syncd.toml"), Path("/etc/syncd/syncd.toml"))


def resolve_config_path(explicit: str | None, environ: dict[str, str] | None = None) -> Path:
    """`--config`, else $SYNCD_CONFIG, else ./syncd.toml, else /etc/syncd/syncd.toml."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("SYNCD_CONFIG"):
        return Path(env["SYNCD_CONFIG"])
    for candidate in CONFIG_SEARCH:
        if candidate.exists():
            return candidate
    return CONFIG_SEARCH[0]


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"syncd: {message}", err=True)
    sys.exit(code)


def _load(ctx: click.Context) -> Settings:
    """Load the settings named by the global --config option, or exit 2 with every problem."""
    from syncd.app import check_directions
    from syncd.settings import load_settings

    path = resolve_config_path(ctx.obj.get("config"))
    try:
        settings = load_settings(path)
        check_directions(settings)
        return settings
    except ConfigError as exc:
        click.echo(f"syncd: {path}: {len(exc.problems)} problem(s) in the configuration:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="PATH",
    envvar=None,
    help="Config file. Default: $SYNCD_CONFIG, else ./syncd.toml, else /etc/syncd/syncd.toml.",
)
@click.version_option(__version__, prog_name="syncd")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """syncd keeps contacts and invoices in step between Simplicate, Perfex CRM, Moneybird
    and SimplBooks.

    Exit codes: 0 success, 1 sync errors, 2 bad usage or configuration.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the config file and print every problem with its TOML path (no network)."""
    settings = _load(ctx)
    accounts = sum(len(w.accounts) for w in settings.workspaces)
    flows = sum(len(w.flows) for w in settings.workspaces)
    click.echo(
        f"{resolve_config_path(ctx.obj.get('config'))}: OK "
        f"({len(settings.workspaces)} workspace(s), {accounts} account(s), {flows} flow(s))"
    )


@main.group("db")
def db() -> None:
    """Database schema: upgrade it, or check that it is current."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (alembic upgrade head)."""
    from syncd.store import migrate

    settings = _load(ctx)
    migrate.upgrade(settings.database.url)
    status = migrate.current(settings.database.url)
    click.echo(f"database schema is at {status.current} (head)")


@db.command("check")
@click.pass_context
def db_check(ctx: click.Context) -> None:
    """Exit 0 when the schema is at head; otherwise say what to run and exit 1."""
    from syncd.store import migrate

    settings = _load(ctx)
    try:
        migrate.ensure_current(settings.database.url)
    except SchemaBehind as exc:
        _fail(str(exc), EXIT_SYNC_ERROR)
    status = migrate.current(settings.database.url)
    click.echo(f"database schema is current ({status.current})")


@main.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon in the foreground (Type=notify under systemd).

    SIGTERM/SIGINT drain and exit 0; SIGHUP re-reads the config file.
    """
    from syncd.daemon import Daemon, DaemonError
    from syncd.errors import Fatal
    from syncd.logs import get_logger, redact

    settings = _load(ctx)
    _configure_logging(settings)
    path = resolve_config_path(ctx.obj.get("config"))
    try:
        code = asyncio.run(Daemon(settings, config_path=path).run())
    except DaemonError as exc:
        _fail(str(exc), exc.code)
    except SchemaBehind as exc:
        _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted before the daemon was up", EXIT_SYNC_ERROR)
    except Fatal as exc:
        _fail(redact(str(exc)), EXIT_SYNC_ERROR)
    except Exception as exc:
        get_logger("syncd.cli").exception("daemon_failed")
        _fail(
            redact(f"stopped by an unexpected error: {type(exc).__name__}: {exc}"), EXIT_SYNC_ERROR
        )
    sys.exit(code)


@main.command("once")
@click.option("--workspace", metavar="W", help="Only this workspace.")
@click.option("--account", metavar="A", help="Only this account.")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing to any vendor.")
@click.pass_context
def once(ctx: click.Context, workspace: str | None, account: str | None, dry_run: bool) -> None:
    """Pull, merge and push until quiet, then exit with a summary."""
    settings = _load(ctx)
    _configure_logging(settings)
    try:
        code = asyncio.run(_once(settings, workspace, account, dry_run))
    except KeyboardInterrupt:
        _fail("interrupted; the next run resumes where this one stopped", EXIT_SYNC_ERROR)
    sys.exit(code)


def _configure_logging(settings: Settings) -> None:
    from syncd.logs import configure_logging

    configure_logging(
        log_format=settings.daemon.log_format,
        log_level=settings.daemon.log_level,
        secrets=settings.secret_values(),
        # alembic narrates every schema check at INFO; only its warnings matter here.
        quiet=("alembic",),
    )


async def _once(
    settings: Settings, workspace: str | None, account: str | None, dry_run: bool
) -> int:
    from syncd.app import open_runtime, select_accounts
    from syncd.runner import describe_plan

    try:
        names = select_accounts(settings, workspace=workspace, account=account)
    except LookupError as exc:
        _fail(str(exc), EXIT_USAGE)
    if not names:
        _fail("the configuration has no accounts to sync", EXIT_USAGE)
    try:
        async with open_runtime(settings, shared_budgets=not dry_run) as runtime:
            engine = runtime.engine
            if dry_run:
                planned = await engine.dry_run(names)
                lines = describe_plan(planned)
                click.echo("dry run: nothing was written to any vendor or to the database")
                for line in lines or ["nothing to write: every account is in step"]:
                    click.echo(f"  {line}")
                return EXIT_OK
            with _progress(names) as show:
                engine.progress = show
                totals = await engine.once(names)
            _print_summary(totals)
            failed = [n for n, st in totals.items() if st.errors or st.failed]
            return EXIT_SYNC_ERROR if failed else EXIT_OK
    except SchemaBehind as exc:
        _fail(str(exc), EXIT_USAGE)


@contextlib.contextmanager
def _progress(names: list[str]) -> Iterator[Callable[[str, str], None]]:
    """On a TTY: one live line per account saying what it is doing; elsewhere: nothing."""
    if not sys.stderr.isatty():
        yield lambda account, what: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks = {name: bar.add_task(f"{name}: waiting", total=None) for name in names}

        def show(account: str, what: str) -> None:
            if account in tasks:
                bar.update(tasks[account], description=f"{account}: {what}")

        yield show


def _print_summary(totals: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="syncd once")
    columns = ("pulled", "matched", "created", "updated", "conflicts", "skipped", "API calls")
    table.add_column("account")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("problems")
    for name, st in totals.items():
        problems = "; ".join(st.errors[:2])
        if st.failed:
            problems = (problems + "; " if problems else "") + f"{st.failed} failed write(s)"
        table.add_row(
            name,
            str(st.pulled),
            str(st.matched),
            str(st.created + st.new_entities),
            str(st.updated),
            str(st.conflicts),
            str(st.skipped),
            str(st.api_calls),
            problems or "-",
        )
    Console(width=160).print(table)


def _operate(ctx: click.Context, work: Callable[[Settings], Coroutine[Any, Any, str]]) -> None:
    """Run one operator command (syncd/operator.py) and print its output.

    A mistake in what was asked (unknown id, already decided, bad value) or a schema that
    is behind is a usage error: exit 2 with the message.
    """
    from syncd.operator import OperatorError

    settings = _load(ctx)
    _configure_logging(settings)
    try:
        text = asyncio.run(work(settings))
    except (OperatorError, SchemaBehind) as exc:
        _fail(str(exc), EXIT_USAGE)
    click.echo(text, nl=False)


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Per account: last runs, cursor, budget, outbox, conflicts, quarantine, lease."""
    from syncd.operator import status_command

    _operate(ctx, lambda settings: status_command(settings, as_json=as_json))


@main.group("conflicts")
def conflicts() -> None:
    """The manual conflict queue."""


@conflicts.command("list")
@click.option("--workspace", metavar="W", help="Only this workspace.")
@click.option("--all", "include_resolved", is_flag=True, help="Resolved conflicts too.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def conflicts_list(
    ctx: click.Context, workspace: str | None, include_resolved: bool, as_json: bool
) -> None:
    """List open conflicts: record, field, each account's value, age."""
    from syncd.operator import conflicts_list_command

    _operate(
        ctx,
        lambda settings: conflicts_list_command(
            settings, workspace=workspace, include_resolved=include_resolved, as_json=as_json
        ),
    )


@conflicts.command("show")
@click.argument("conflict_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def conflicts_show(ctx: click.Context, conflict_id: str, as_json: bool) -> None:
    """Show one conflict: every candidate, the current value, its history, how to resolve."""
    from syncd.operator import conflicts_show_command

    _operate(ctx, lambda settings: conflicts_show_command(settings, conflict_id, as_json=as_json))


@conflicts.command("resolve")
@click.argument("conflict_id")
@click.option("--take", "take", metavar="ACCOUNT", help="Keep this account's value.")
@click.option(
    "--value",
    "value",
    metavar="VALUE",
    help="Set this value instead (parsed for the field: text, a date, JSON for invoice lines).",
)
@click.pass_context
def conflicts_resolve(
    ctx: click.Context, conflict_id: str, take: str | None, value: str | None
) -> None:
    """Resolve a conflict: take one account's value, or set one; the next pass pushes it."""
    from syncd.operator import conflicts_resolve_command

    if (take is None) == (value is None):
        raise click.UsageError("give exactly one of --take ACCOUNT or --value VALUE")
    _operate(
        ctx,
        lambda settings: conflicts_resolve_command(settings, conflict_id, take=take, value=value),
    )


@main.group("matches")
def matches() -> None:
    """The identity-review queue (ambiguous matches)."""


@matches.command("list")
@click.option("--workspace", metavar="W", help="Only this workspace.")
@click.option("--all", "include_decided", is_flag=True, help="Decided reviews too.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def matches_list(
    ctx: click.Context, workspace: str | None, include_decided: bool, as_json: bool
) -> None:
    """List matches awaiting a decision, with their candidates and scores."""
    from syncd.operator import matches_list_command

    _operate(
        ctx,
        lambda settings: matches_list_command(
            settings, workspace=workspace, include_decided=include_decided, as_json=as_json
        ),
    )


@matches.command("accept")
@click.argument("match_id")
@click.option(
    "--candidate",
    metavar="CANONICAL_ID",
    help="Link to this candidate (default: the best-scored one).",
)
@click.pass_context
def matches_accept(ctx: click.Context, match_id: str, candidate: str | None) -> None:
    """Accept a proposed match: the record is linked on its account's next pull."""
    from syncd.operator import matches_decide_command

    _operate(
        ctx,
        lambda settings: matches_decide_command(
            settings, match_id, accept=True, candidate=candidate
        ),
    )


@matches.command("reject")
@click.argument("match_id")
@click.pass_context
def matches_reject(ctx: click.Context, match_id: str) -> None:
    """Reject a proposed match: the record becomes a new entity on its account's next pull."""
    from syncd.operator import matches_decide_command

    _operate(ctx, lambda settings: matches_decide_command(settings, match_id, accept=False))


@main.command("explain")
@click.argument("resource", type=click.Choice(["contacts", "invoices", "payments"]))
@click.argument("record_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def explain(ctx: click.Context, resource: str, record_id: str, as_json: bool) -> None:
    """Every decision made for one record (canonical id or ACCOUNT:EXTERNAL_ID)."""
    from syncd.operator import explain_command

    _operate(ctx, lambda settings: explain_command(settings, resource, record_id, as_json=as_json))


@main.command("sandbox")
@click.option("--listen", default="127.0.0.1:8900", show_default=True, metavar="HOST:PORT")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the generated data.")
@click.option("--contacts", default=40, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option("--invoices", default=40, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option(
    "--overlap",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of contacts that exist in more than one vendor.",
)
@click.option(
    "--rate-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Divide every rate-limit window by this (60: a minute's budget per second).",
)
@click.option("--no-rate-limits", is_flag=True, help="Serve without rate limits.")
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Probability that a request gets an injected fault.",
)
@click.option(
    "--fault-kinds",
    default=None,
    metavar="K1,K2",
    help="Only these fault kinds (default: all).",
)
@click.option("--control", is_flag=True, help="Serve the test-only /_sandbox/ control API.")
def sandbox(
    listen: str,
    seed: int,
    contacts: int,
    invoices: int,
    overlap: float,
    rate_scale: float,
    no_rate_limits: bool,
    fault_rate: float,
    fault_kinds: str | None,
    control: bool,
) -> None:
    """Serve faithful emulators of the four vendor APIs (for tests and the demo)."""
    from syncd.sandbox.base import FAULT_KINDS, SandboxOptions
    from syncd.sandbox.server import serve

    _parse_listen(listen)
    kinds = FAULT_KINDS
    if fault_kinds:
        kinds = tuple(k.strip() for k in fault_kinds.split(",") if k.strip())
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise click.BadParameter(
                f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}",
                param_hint="--fault-kinds",
            )
    options = SandboxOptions(
        seed=seed,
        contacts=contacts,
        invoices=invoices,
        overlap=overlap,
        rate_limits=not no_rate_limits,
        rate_scale=rate_scale,
        fault_rate=fault_rate,
        fault_kinds=kinds,
        control=control,
    )
    try:
        asyncio.run(_until_signal(serve(listen, options)))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"cannot listen on {listen}: {exc.strerror or exc}", EXIT_USAGE)


async def _until_signal(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until it ends or SIGTERM/SIGINT arrives; then cancel it and return."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(
            f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:8900)", param_hint="--listen"
        )
    return host.strip("[]"), int(port)


@main.command("demo")
@click.option("--once", "run_once", is_flag=True, help="Exit 0 after convergence, with a summary.")
@click.pass_context
def demo(ctx: click.Context, run_once: bool) -> None:
    """Sandbox + daemon on SQLite with config/demo.toml, showing live progress.

    The four vendor sandboxes are served on 127.0.0.1:8900 with seeded, overlapping data;
    the demo database (./syncd-demo.db) starts empty on every run. Ctrl-C stops.
    """
    from syncd import demo as demos
    from syncd.daemon import DaemonError
    from syncd.logs import configure_logging

    if not ctx.obj.get("config"):
        try:
            ctx.obj["config"] = str(demos.find_demo_config())
        except demos.DemoError as exc:
            _fail(str(exc), EXIT_USAGE)
    settings = _load(ctx)
    _configure_logging(settings)
    try:
        if run_once:
            names = [account.name for _, account in settings.iter_accounts()]
            with _progress(names) as show:
                totals = asyncio.run(demos.demo_once(settings, progress=show))
            _print_summary(totals)
            failed = [n for n, st in totals.items() if st.errors or st.failed]
            sys.exit(EXIT_SYNC_ERROR if failed else EXIT_OK)

        def quiet_logs(stream: Any) -> None:
            # The live table shows the progress: only problems print, above the table.
            configure_logging(
                log_format="console",
                log_level="warning",
                secrets=settings.secret_values(),
                stream=stream,
            )

        code = asyncio.run(
            demos.demo_daemon(
                settings,
                config_path=resolve_config_path(ctx.obj.get("config")),
                on_tty_start=quiet_logs,
            )
        )
    except (demos.DemoError, DaemonError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except SchemaBehind as exc:
        _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_SYNC_ERROR)
    sys.exit(code)

"""``syncd once --dry-run`` then ``syncd once`` through the CLI, against a served sandbox.

The dry run prints the plan ("would create 3 contacts in acme-books: ...") and writes
nothing, anywhere; the real run that follows must then do exactly that: the same number
of creates in each account, of the records named.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from syncd.cli import main
from syncd.sandbox.base import VENDORS, SandboxOptions, VendorName
from tests.integration.helpers import (
    config_data,
    held_contacts,
    load_seeds,
    sandbox_in_thread,
    sandbox_options,
    seeds_for,
    toml_text,
)

PLAN_LINE = re.compile(
    r"^\s*would (?P<op>create|update|archive|delete) (?P<n>\d+) contacts? in (?P<account>\S+?)"
    r"(?: \(fields: [^)]*\))?: (?P<names>.*)$"
)


def syncd(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    return result.exit_code, result.output


def planned(output: str) -> tuple[Counter[tuple[str, str]], dict[str, list[str]]]:
    """(op, account) -> count, and the names listed for each account's creates."""
    counts: Counter[tuple[str, str]] = Counter()
    names: dict[str, list[str]] = {}
    for line in output.splitlines():
        found = PLAN_LINE.match(line)
        if found is None:
            continue
        counts[(found["op"], found["account"])] += int(found["n"])
        if found["op"] == "create":
            names[found["account"]] = [n for n in found["names"].split(", ") if n != "..."]
    return counts, names


def _dry_run_then_once(
    tmp_path: Path, options: SandboxOptions, vendors: tuple[VendorName, ...]
) -> None:
    seeds = seeds_for(options, vendors, ("organization", "person"))
    with sandbox_in_thread(options, vendors) as handle:
        load_seeds(handle, seeds)
        config = tmp_path / "syncd.toml"
        url = f"sqlite+aiosqlite:///{tmp_path / 'syncd.db'}"
        config.write_text(toml_text(config_data(handle, vendors, url)), encoding="utf-8")
        assert syncd(config, "db", "upgrade")[0] == 0
        held = {v: held_contacts(handle.emulators[v]) for v in vendors}

        code, dry = syncd(config, "once", "--dry-run")

        assert code == 0, dry
        counts, names = planned(dry)
        assert counts, dry
        assert all(handle.counters(v).writes == 0 for v in vendors)
        assert syncd(config, "once", "--dry-run")[1] == dry  # nothing was kept either

        code, real = syncd(config, "once")

        assert code == 0, real
        created = {v: len(held_contacts(handle.emulators[v])) - len(held[v]) for v in vendors}
        assert {a: n for (op, a), n in counts.items() if op == "create"} == {
            v: n for v, n in created.items() if n
        }, dry
        for vendor in vendors:
            listed = names.get(vendor, [])
            now = {h.name for h in held_contacts(handle.emulators[vendor])}
            before = {h.name for h in held[vendor]}
            assert set(listed) <= now - before, (vendor, listed)
        code, after = syncd(config, "once", "--dry-run")
        assert code == 0 and "nothing to write" in after, after


def test_dry_run_matches_the_real_run(tmp_path: Path) -> None:
    # Every contact lives in one vendor: each must be created in the three others.
    _dry_run_then_once(tmp_path, sandbox_options(seed=5, contacts=10, overlap=0.0), VENDORS)


def test_dry_run_matches_the_real_run_with_overlapping_companies(tmp_path: Path) -> None:
    _dry_run_then_once(tmp_path, sandbox_options(seed=3, overlap=1.0), ("simplicate", "moneybird"))

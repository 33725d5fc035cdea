"""deploy/: the systemd unit passes systemd-analyze, the container files say what they promise.

Docker cannot build or run here (no daemon, no registry), and PyYAML is not a dependency,
so the Dockerfile and compose.yaml are checked line by line; the HEALTHCHECK command is
run for real against a local HTTP server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from syncd.settings import DEFAULT_ADMIN_LISTEN, DEFAULT_DATABASE_URL, DEFAULT_SHUTDOWN_GRACE

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "syncd.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"

REQUIRE_SYSTEMD_ENV = "SYNCD_REQUIRE_SYSTEMD"
CONFIG = "/etc/syncd/syncd.toml"

# Hardening the unit must keep, with the value it must have.
HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
}


# --- the systemd unit ------------------------------------------------------------------


@dataclass(frozen=True)
class Directive:
    """One ``Key=value`` line of a unit file, and how it is documented."""

    key: str
    value: str
    own_comment: bool  # the line right above is a comment
    covered: bool  # it has its own comment, or continues a commented group without a gap


Section = list[Directive]


def parse_unit(text: str) -> dict[str, Section]:
    """Sections of a unit file with their directives, in order.

    Keys may repeat (ExecStartPre=, LoadCredential=), so this is not configparser.
    """
    sections: dict[str, Section] = {}
    current: Section | None = None
    above = "blank"  # what the previous line was: blank, comment, or a (covered) directive
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            above = "blank"
        elif line.startswith(("#", ";")):
            above = "comment"
        elif line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            above = "blank"
        else:
            assert current is not None, f"directive outside a section: {raw!r}"
            assert not line.endswith("\\"), "keep directives on one line"
            key, sep, value = line.partition("=")
            assert sep, f"not a directive: {raw!r}"
            own = above == "comment"
            covered = own or above == "covered"
            current.append(Directive(key.strip(), value.strip(), own, covered))
            above = "covered" if covered else "directive"
    return sections


def _values(section: Section, key: str) -> list[str]:
    return [d.value for d in section if d.key == key]


def _one(section: Section, key: str) -> str:
    values = _values(section, key)
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


def _seconds(value: str) -> float:
    """A systemd time span such as ``45s``, ``5min`` or ``1min 30s``."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def service() -> Section:
    return parse_unit(UNIT.read_text())["Service"]


def test_unit_is_type_notify_with_watchdog_and_restart_on_failure(
    service: Section,
) -> None:
    assert _one(service, "Type") == "notify"
    assert _one(service, "NotifyAccess") == "main"
    assert _seconds(_one(service, "WatchdogSec")) > 0
    assert _one(service, "Restart") == "on-failure"
    # Exit 2 is a bad config (DESIGN §7): restarting cannot fix it.
    assert _one(service, "RestartPreventExitStatus") == "2"


def test_unit_runs_syncd_with_the_config_and_migrates_first(
    service: Section,
) -> None:
    start = _one(service, "ExecStart").split()
    assert start[0].endswith("/syncd")
    assert start[1:] == ["--config", CONFIG, "run"]
    [pre] = _values(service, "ExecStartPre")
    assert pre.split()[1:] == ["--config", CONFIG, "db", "upgrade"]
    assert _one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_unit_gives_the_drain_time_to_stop(service: Section) -> None:
    stop = _seconds(_one(service, "TimeoutStopSec"))
    assert stop > DEFAULT_SHUTDOWN_GRACE.total_seconds()


def test_unit_runs_unprivileged_with_state_and_credentials(
    service: Section,
) -> None:
    assert _one(service, "DynamicUser") == "yes"
    assert _one(service, "StateDirectory") == "syncd"
    # The default SQLite database lives in the state directory.
    assert DEFAULT_DATABASE_URL.endswith("/var/lib/syncd/syncd.db")
    credentials = _values(service, "LoadCredential")
    assert credentials
    for credential in credentials:
        name, _, source = credential.partition(":")
        assert name and source.startswith("/etc/syncd/credentials/"), credential


def test_unit_header_shows_how_config_keys_point_at_credentials() -> None:
    text = UNIT.read_text()
    assert '_file = "${CREDENTIALS_DIRECTORY}/' in text
    assert "/run/credentials/syncd.service/" in text


def test_unit_keeps_every_hardening_directive(service: Section) -> None:
    for key, expected in HARDENING.items():
        assert expected in _values(service, key), f"{key}={expected} missing"


def test_every_service_directive_has_a_comment(service: Section) -> None:
    """Each directive, or the group it belongs to, says why it is there."""
    assert [d.key for d in service if not d.covered] == []
    # ...and each hardening directive carries a comment of its own.
    assert [d.key for d in service if d.key in HARDENING and not d.own_comment] == []


def test_the_comment_check_can_fail() -> None:
    text = "[Service]\n# why\nA=1\nB=2\n\nC=3\n# why\nD=4\n"
    section = parse_unit(text)["Service"]
    assert [(d.key, d.own_comment, d.covered) for d in section] == [
        ("A", True, True),
        ("B", False, True),
        ("C", False, False),
        ("D", True, True),
    ]


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze not found (install systemd to check deploy/syncd.service)"
        if os.environ.get(REQUIRE_SYSTEMD_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_SYSTEMD_ENV}=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return found


def _syncd_executable() -> str:
    """An existing ``syncd``: the one installed next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "syncd"
    if beside.is_file():
        return str(beside)
    found = shutil.which("syncd")
    if found is None:
        pytest.skip("the syncd console script is not installed")
    return found


def _verifiable_copy(tmp_path: Path, text: str) -> Path:
    """The unit under its real name in tmp, with ExecStart paths made to exist here.

    ``systemd-analyze verify`` refuses a unit whose ExecStart= binary is missing, and
    /usr/bin/syncd exists only on a packaged install; everything else stays as shipped.
    """
    copy = tmp_path / "syncd.service"
    copy.write_text(text.replace("/usr/bin/syncd", _syncd_executable()))
    return copy


def _verify(unit: Path) -> tuple[int, list[str]]:
    """Run ``systemd-analyze verify``; its exit status and every line about our unit."""
    result = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    ours = [line for line in output if unit.name in line or str(unit) in line]
    return result.returncode, ours


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    code, complaints = _verify(_verifiable_copy(tmp_path, UNIT.read_text()))

    assert code == 0, complaints
    assert complaints == []


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomee=yes")

    _, complaints = _verify(_verifiable_copy(tmp_path, broken))

    assert any("ProtectHomee" in line for line in complaints), complaints


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    """systemd's own exposure score (0 safest, 10 worst) stays in its "OK" band."""
    unit = _verifiable_copy(tmp_path, UNIT.read_text())
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate unit files offline: {result.stderr[:200]}")
    exposure = float(match.group(1))
    missing = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    print(f"exposure {exposure}", *missing, sep="\n")
    assert exposure <= 2.0, missing


# --- the container image --------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions (continuations joined, comments dropped) as (NAME, args)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        name, _, args = full.partition(" ")
        out.append((name.upper(), args.strip()))
    assert not pending, "a continuation line ends the Dockerfile"
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _args(dockerfile: list[tuple[str, str]], name: str) -> list[str]:
    return [args for n, args in dockerfile if n == name]


def _final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (name, _) in enumerate(dockerfile) if name == "FROM"]
    return dockerfile[starts[-1] :]


def test_image_is_built_on_python_311_slim(dockerfile: list[tuple[str, str]]) -> None:
    bases = [args.split()[0] for args in _args(dockerfile, "FROM")]
    assert bases
    assert all(base == "python:3.11-slim" for base in bases), bases


def test_image_runs_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    final = _final_stage(dockerfile)
    users = [args for name, args in final if name == "USER"]
    assert users, "the final stage never switches user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    last_user = max(i for i, (name, _) in enumerate(final) if name == "USER")
    last_entry = max(i for i, (name, _) in enumerate(final) if name == "ENTRYPOINT")
    assert last_user < last_entry


def test_image_installs_the_project_without_extras(dockerfile: list[tuple[str, str]]) -> None:
    installs = [args for args in _args(dockerfile, "RUN") if "pip install" in args]
    assert installs
    for args in installs:
        assert "[" not in args, f"installs extras: {args}"
        assert "-e " not in args, f"editable install: {args}"


def test_image_copies_only_what_exists_and_is_not_ignored(
    dockerfile: list[tuple[str, str]],
) -> None:
    ignore = DOCKERIGNORE.read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, ".dockerignore should exclude everything by default"
    for args in _args(dockerfile, "COPY"):
        if args.startswith("--from="):
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    lines = DOCKERIGNORE.read_text().splitlines()
    for pattern in ("**/*.db", "**/*.db-*", "**/__pycache__"):
        assert pattern in lines
    for kept in (".venv", ".git", "tests", "deploy"):
        assert f"!{kept}" not in lines and f"!{kept}/" not in lines


def test_image_keeps_config_and_state_in_volumes(dockerfile: list[tuple[str, str]]) -> None:
    [volumes] = _args(dockerfile, "VOLUME")
    assert set(json.loads(volumes)) == {"/etc/syncd", "/var/lib/syncd"}


def test_image_entrypoint_and_default_command(dockerfile: list[tuple[str, str]]) -> None:
    [entrypoint] = _args(dockerfile, "ENTRYPOINT")
    [cmd] = _args(dockerfile, "CMD")
    assert json.loads(entrypoint) == ["syncd"]
    assert json.loads(cmd) == ["--config", CONFIG, "run"]
    assert "SYNCD_CONFIG=/etc/syncd/syncd.toml" in " ".join(_args(dockerfile, "ENV"))


def _healthcheck_command(dockerfile: list[tuple[str, str]]) -> list[str]:
    [healthcheck] = _args(dockerfile, "HEALTHCHECK")
    _, sep, command = healthcheck.partition("CMD ")
    assert sep, healthcheck
    parsed = json.loads(command)
    assert isinstance(parsed, list)
    return [str(part) for part in parsed]


def test_healthcheck_uses_python_not_curl_and_matches_the_default_listen(
    dockerfile: list[tuple[str, str]],
) -> None:
    command = _healthcheck_command(dockerfile)
    assert command[0] == "python"
    assert "urllib.request" in command[-1]
    env = " ".join(_args(dockerfile, "ENV"))
    assert f"SYNCD_HEALTHCHECK_URL=http://{DEFAULT_ADMIN_LISTEN}/healthz" in env


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    dockerfile: list[tuple[str, str]],
    health_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    exit_code: int,
) -> None:
    monkeypatch.setattr(_Health, "status", status)
    port = health_server.server_address[1]
    command = _healthcheck_command(dockerfile)
    env = {**os.environ, "SYNCD_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/healthz"}

    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=60, check=False
    )

    assert result.returncode == exit_code, result.stderr


def test_healthcheck_command_fails_when_nothing_listens(
    dockerfile: list[tuple[str, str]], health_server: HTTPServer
) -> None:
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    command = _healthcheck_command(dockerfile)
    env = {**os.environ, "SYNCD_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/healthz"}

    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=60, check=False
    )

    assert result.returncode == 1


# --- compose.yaml -----------------------------------------------------------------------


def _blocks(text: str, indent: int) -> dict[str, str]:
    """Top-level keys at ``indent`` spaces and the text nested under each (no YAML parser)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    prefix = " " * indent
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(prefix) and not line.startswith(prefix + " "):
            key = line.strip().split(":", 1)[0]
            current = blocks.setdefault(key, [])
            current.append(line)
        elif len(line) - len(line.lstrip()) < indent:
            current = None
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines) for key, lines in blocks.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, str]:
    text = COMPOSE.read_text()
    top = _blocks(text, 0)
    assert "services" in top
    return _blocks(top["services"], 2)


def _compact(block: str) -> str:
    return " ".join(block.split())


def test_compose_runs_postgres_16_with_a_healthcheck_and_a_volume(compose: dict[str, str]) -> None:
    db = _compact(compose["db"])
    assert "image: postgres:16" in db
    assert "healthcheck:" in db and "pg_isready" in db
    assert "- pgdata:/var/lib/postgresql/data" in db
    assert "pgdata:" in _blocks(COMPOSE.read_text(), 0)["volumes"]


def test_compose_migrates_once_after_the_database_is_healthy(compose: dict[str, str]) -> None:
    migrate = _compact(compose["migrate"])
    assert "<<: *syncd" in migrate
    assert 'command: ["--config", "/etc/syncd/syncd.toml", "db", "upgrade"]' in migrate
    assert 'restart: "no"' in migrate
    assert "depends_on: db: condition: service_healthy" in migrate


def test_compose_runs_two_replicas_after_a_successful_migration(compose: dict[str, str]) -> None:
    replicas = [name for name in compose if name.startswith("syncd-")]
    assert replicas == ["syncd-a", "syncd-b"]
    hostnames = set()
    for name in replicas:
        block = _compact(compose[name])
        assert "<<: *syncd" in block
        assert "depends_on: migrate: condition: service_completed_successfully" in block
        assert "command:" not in block  # the image's CMD: `run`
        hostname = re.search(r"hostname: (\S+)", block)
        assert hostname is not None, f"{name} has no hostname"
        hostnames.add(hostname.group(1))
    assert len(hostnames) == 2  # lease owners stay distinguishable


def test_compose_replicas_share_one_config_and_database() -> None:
    shared = _compact(_blocks(COMPOSE.read_text(), 0)["x-syncd"])
    assert "x-syncd: &syncd" in shared
    assert "dockerfile: deploy/Dockerfile" in shared
    assert "- ./etc:/etc/syncd:ro" in shared
    assert "SYNCD_DB_PASSWORD: ${SYNCD_DB_PASSWORD:?" in shared
    # A drain needs shutdown_grace; compose's default is 10 s.
    grace = re.search(r"stop_grace_period: (\d+)s", shared)
    assert grace is not None
    assert int(grace.group(1)) > DEFAULT_SHUTDOWN_GRACE.total_seconds()

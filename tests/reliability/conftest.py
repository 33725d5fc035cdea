"""Fixtures for the reliability tests: JSON log capture through syncd's own logging set-up."""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.logs import configure_logging, reset_logging


class JsonLogs:
    """The JSON lines syncd's logging wrote during one test."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def matching(self, *needles: str) -> list[dict[str, Any]]:
        """Lines whose JSON text contains every one of ``needles``."""
        found = []
        for line in self.text().splitlines():
            if all(n in line for n in needles):
                found.append(json.loads(line))
        return found


def capture_json_logs(level: str, secrets: Iterable[str] = ()) -> tuple[JsonLogs, io.StringIO]:
    stream = io.StringIO()
    configure_logging(log_format="json", log_level=level, secrets=secrets, stream=stream)
    return JsonLogs(stream), stream


@pytest.fixture
def json_logs() -> Iterator[JsonLogs]:
    """syncd logging in JSON at INFO (vendor HTTP retries at DEBUG), captured in memory."""
    logs, _ = capture_json_logs("info")
    http_logger = logging.getLogger("syncd.adapters.http")
    previous = http_logger.level
    http_logger.setLevel(logging.DEBUG)
    try:
        yield logs
    finally:
        http_logger.setLevel(previous)
        reset_logging()


@pytest.fixture
def sqlite_db(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A SQLite database at the newest schema (a copy of the session's migrated template)."""
    path = tmp_path / "syncd.db"
    shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
    path.chmod(0o600)
    return f"sqlite+aiosqlite:///{path}"

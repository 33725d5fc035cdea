"""Tests for logging: secrets never reach the output, JSON lines, console mode, bound context."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from syncd.logs import (
    MIN_SECRET_LENGTH,
    REDACTED,
    add_secrets,
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_logger,
    redact,
    reset_logging,
    unbind_context,
)

SECRET = "s3cr3t-TOKEN-value"
# The same literal as SECRET, spelled out so it shows up in traceback source lines.
OTHER_SECRET = 'pk_"quoted\\back€slash'


class FakeTty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text  # JSON-escaped form
        assert json.dumps(secret, ensure_ascii=False)[1:-1] not in text


@pytest.fixture
def out() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(log_format="json", secrets=[SECRET, OTHER_SECRET], stream=stream)
    return stream


def _fail_with_secret_in_source() -> None:
    raise ValueError("vendor said: bad token s3cr3t-TOKEN-value")


# ----------------------------------------------------------------------------- redaction


def test_secret_in_event_text_is_redacted(out: io.StringIO) -> None:
    get_logger("syncd.test").info(f"calling with {SECRET} and {OTHER_SECRET}")
    (line,) = json_lines(out)
    assert line["event"] == f"calling with {REDACTED} and {REDACTED}"
    assert_no_secret(out.getvalue(), SECRET, OTHER_SECRET)


def test_secret_in_nested_values_and_keys_is_redacted(out: io.StringIO) -> None:
    get_logger("syncd.test").info(
        "request",
        body={"items": [({"note": f"x{SECRET}y"}, 1)], f"k-{SECRET}": 2},
        tags={OTHER_SECRET},
        raw=SECRET.encode(),
        count=3,
    )
    (line,) = json_lines(out)
    assert line["body"] == {"items": [[{"note": f"x{REDACTED}y"}, 1]], f"k-{REDACTED}": 2}
    assert line["tags"] == [REDACTED]
    assert line["count"] == 3
    assert_no_secret(out.getvalue(), SECRET, OTHER_SECRET)


def test_secret_in_exception_message_and_traceback_is_redacted(out: io.StringIO) -> None:
    log = get_logger("syncd.test")
    try:
        try:
            _fail_with_secret_in_source()
        except ValueError as inner:
            raise RuntimeError(f"wrapped {SECRET}") from inner
    except RuntimeError as exc:
        log.exception("push failed", error=exc)
    (line,) = json_lines(out)
    assert "Traceback" in line["exception"]
    assert "_fail_with_secret_in_source" in line["exception"]  # really the rendered traceback
    assert "raise ValueError(" in line["exception"]  # its source line, with the literal
    assert line["error"] == f"RuntimeError: wrapped {REDACTED}"
    assert_no_secret(out.getvalue(), SECRET)


def test_secret_in_stdlib_logger_message_is_redacted(out: io.StringIO) -> None:
    logging.getLogger("aiohttp.client").warning("GET https://x.test/?key=%s failed", SECRET)
    logging.getLogger("sqlalchemy.pool").error("lost %r", {"password": "hunter2-long"})
    lines = json_lines(out)
    assert [line["logger"] for line in lines] == ["aiohttp.client", "sqlalchemy.pool"]
    assert lines[0]["event"] == f"GET https://x.test/?key={REDACTED} failed"
    assert lines[0]["level"] == "warning"
    assert_no_secret(out.getvalue(), SECRET)


def test_secret_in_stdlib_exception_and_extra_is_redacted(out: io.StringIO) -> None:
    try:
        _fail_with_secret_in_source()
    except ValueError:
        logging.getLogger("apscheduler.scheduler").exception(
            "job crashed", extra={"token": "unconfigured-token", "detail": SECRET}
        )
    (line,) = json_lines(out)
    assert "Traceback" in line["exception"]
    assert "message" not in line  # another handler's formatting is not an extra
    assert line["token"] == REDACTED
    assert line["detail"] == REDACTED
    assert_no_secret(out.getvalue(), SECRET, "unconfigured-token")


@pytest.mark.parametrize(
    "header",
    [
        "Authentication-Secret",
        "authentication-key",
        "Authorization",
        "X-API-KEY",
        "x-api-key",
        "X-Simplbooks-Token",
        "authtoken",
        "TOKEN",
        "secret",
        "Password",
        "api_key",
        "API-KEY",
        "jwt",
    ],
)
def test_values_of_secret_header_names_are_redacted_without_being_configured(
    out: io.StringIO, header: str
) -> None:
    unknown = "never-configured-credential"
    get_logger().info("request", headers={header: unknown, "Accept": "application/json"})
    (line,) = json_lines(out)
    assert line["headers"] == {header: REDACTED, "Accept": "application/json"}
    assert_no_secret(out.getvalue(), unknown)


def test_secret_keys_hide_whole_nested_values(out: io.StringIO) -> None:
    get_logger().info("account", credentials={"key": "k-1234", "secret": "s-5678"}, token=None)
    (line,) = json_lines(out)
    assert line["credentials"] == REDACTED
    assert line["token"] == REDACTED


def test_secret_in_bound_context_and_object_repr_is_redacted(out: io.StringIO) -> None:
    class Client:
        def __repr__(self) -> str:
            return f"Client(key={SECRET!r})"

    bind_context(url=f"https://x.test/?k={SECRET}")
    get_logger().info("client", client=Client())
    (line,) = json_lines(out)
    assert line["url"] == f"https://x.test/?k={REDACTED}"
    assert line["client"] == f"Client(key='{REDACTED}')"
    assert_no_secret(out.getvalue(), SECRET)


def test_secrets_added_after_configuration_are_redacted(out: io.StringIO) -> None:
    rotated = "rotated-secret-after-reload"
    log = get_logger()
    log.info(f"before {rotated}")
    add_secrets([rotated])
    log.info(f"after {rotated}")
    before, after = json_lines(out)
    assert before["event"] == f"before {rotated}"  # proves the test can see a leak
    assert after["event"] == f"after {REDACTED}"


def test_longest_secret_wins_when_secrets_overlap(out: io.StringIO) -> None:
    add_secrets(["abcd", "abcdefgh"])
    get_logger().info("x abcdefgh y abcd")
    assert json_lines(out)[0]["event"] == f"x {REDACTED} y {REDACTED}"


def test_secrets_shorter_than_the_minimum_are_not_used_for_substring_redaction(
    out: io.StringIO,
) -> None:
    short = "a" * (MIN_SECRET_LENGTH - 1)
    add_secrets([short])
    get_logger().info(f"banana {short}")
    assert json_lines(out)[0]["event"] == f"banana {short}"


def test_redact_helper_works_on_plain_values() -> None:
    add_secrets([SECRET])
    assert redact({"Authorization": "Bearer x", "msg": f"k={SECRET}"}) == {
        "Authorization": REDACTED,
        "msg": f"k={REDACTED}",
    }


def test_a_logger_created_before_configuration_still_redacts() -> None:
    early = get_logger("syncd.early")
    stream = io.StringIO()
    configure_logging(log_format="json", secrets=[SECRET], stream=stream)
    early.info(f"late use {SECRET}")
    assert json_lines(stream)[0]["event"] == f"late use {REDACTED}"


# ----------------------------------------------------------------------------- JSON format


def test_json_mode_writes_one_object_per_line_with_timestamp_level_and_event(
    out: io.StringIO,
) -> None:
    log = get_logger("syncd.runner")
    log.info("pass done", pulled=3)
    log.warning("multi\nline event")
    logging.getLogger("alembic.runtime").info("upgrade")
    raw = out.getvalue().splitlines()
    assert len(raw) == 3
    for text in raw:
        line = json.loads(text)
        assert {"timestamp", "level", "event"} <= set(line)
        stamp = dt.datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() == dt.timedelta(0)
        assert line["timestamp"].endswith("Z")
    first = json.loads(raw[0])
    assert first == {**first, "event": "pass done", "level": "info", "pulled": 3}


def test_auto_mode_writes_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger().info("hello")
    assert json_lines(stream)[0]["event"] == "hello"


def test_level_filters_structlog_and_stdlib_records() -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", log_level="warning", stream=stream)
    get_logger().info("hidden")
    logging.getLogger("aiohttp.client").info("hidden too")
    get_logger().warning("shown")
    assert [line["event"] for line in json_lines(stream)] == ["shown"]


def test_chatty_library_loggers_stay_quiet_at_info_and_speak_at_debug() -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", log_level="info", stream=stream)
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    logging.getLogger("apscheduler.executors.default").info("Running job")
    assert stream.getvalue() == ""
    configure_logging(log_format="json", log_level="debug", stream=stream)
    logging.getLogger("apscheduler.executors.default").info("Running job")
    assert [line["event"] for line in json_lines(stream)] == ["Running job"]


def test_configuring_twice_does_not_duplicate_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(log_format="json", stream=first)
    configure_logging(log_format="json", stream=second)
    get_logger().info("once")
    logging.getLogger("aiohttp").info("once too")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once", "once too"]
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_SyncdHandler"]
    assert len(ours) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"log_format": "xml"}, "log_format"), ({"log_level": "loud"}, "log_level")],
)
def test_bad_format_or_level_is_rejected(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_logging(stream=io.StringIO(), **kwargs)


# ----------------------------------------------------------------------------- context


def test_bound_context_appears_on_structlog_and_stdlib_lines(out: io.StringIO) -> None:
    bind_context(workspace="acme", account="acme-crm", run_id="r1")
    get_logger().info("pull")
    logging.getLogger("aiohttp.client").warning("slow")
    for line in json_lines(out):
        assert (line["workspace"], line["account"], line["run_id"]) == ("acme", "acme-crm", "r1")


def test_unbind_and_clear_context_remove_keys(out: io.StringIO) -> None:
    bind_context(account="a", run_id="r")
    unbind_context("run_id")
    get_logger().info("one")
    clear_context()
    get_logger().info("two")
    one, two = json_lines(out)
    assert one["account"] == "a" and "run_id" not in one
    assert "account" not in two


def test_bound_context_block_restores_previous_values(out: io.StringIO) -> None:
    bind_context(account="outer")
    with bound_context(account="inner", run_id="r2"):
        get_logger().info("inside")
    get_logger().info("outside")
    inside, outside = json_lines(out)
    assert (inside["account"], inside["run_id"]) == ("inner", "r2")
    assert outside["account"] == "outer" and "run_id" not in outside


# ----------------------------------------------------------------------------- console


def test_console_mode_renders_readable_lines_and_redacts() -> None:
    stream = io.StringIO()
    configure_logging(log_format="console", secrets=[SECRET], stream=stream)
    bind_context(account="acme-crm")
    get_logger("syncd.runner").info("pass done", pulled=3, key=SECRET)
    try:
        _fail_with_secret_in_source()
    except ValueError:
        get_logger("syncd.runner").exception("push failed")
    text = stream.getvalue()
    first = text.splitlines()[0]
    assert "pass done" in first and "pulled=3" in first and "account=acme-crm" in first
    assert "[syncd.runner]" in first
    assert not first.startswith("{")
    assert "\x1b[" not in text  # no colours when the stream is not a terminal
    assert "Traceback" in text and "ValueError" in text
    assert_no_secret(text, SECRET)


def test_auto_mode_uses_console_on_a_tty() -> None:
    stream = FakeTty()
    configure_logging(stream=stream, secrets=[SECRET])
    get_logger().warning(f"careful {SECRET}")
    text = stream.getvalue()
    assert "careful" in text and not text.startswith("{")
    assert_no_secret(text, SECRET)


def test_reset_restores_logger_levels_and_removes_the_handler() -> None:
    root = logging.getLogger()
    before = root.level
    configure_logging(log_format="json", log_level="debug", stream=io.StringIO())
    configure_logging(log_format="json", log_level="error", stream=io.StringIO())
    reset_logging()
    assert root.level == before
    assert not [h for h in root.handlers if type(h).__name__ == "_SyncdHandler"]

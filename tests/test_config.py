"""Config and window parsing: every bad input is one clear line naming the key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from evidence.config import load_config, parse_config
from evidence.errors import ConfigError, UsageError
from evidence.window import parse_interval, parse_last, parse_quarter

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_full_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "evidence.toml"
    path.write_text(
        """
[scope]
organisation = "Contoso Ltd"
subscription = "00000000-0000-0000-0000-000000000001"
resource_group = "rg-ml-prod"
workspaces = ["mlw-b", "mlw-a"]

[window]
quarter = "2026Q3"

[policy]
allowed_deployers = ["11111111-1111-1111-1111-111111111111"]
monitoring_window_days = 14

[signing]
key = "keys/signer.key.pem"
""",
        encoding="utf-8",
    )
    config = load_config(path)
    scope = config.scope.to_scope()
    assert [w.name for w in scope.workspaces] == ["mlw-a", "mlw-b"]
    assert config.window.resolve(NOW).start == datetime(2026, 7, 1, tzinfo=UTC)
    assert config.policy.monitoring_window_days == 14
    # relative key paths are relative to the config file, not the working directory
    assert config.signing.key == str(tmp_path / "keys/signer.key.pem")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scope": {"workspace": ["x"]}}, "unknown key [scope] workspace"),
        ({"scopes": {}}, "unknown section [scopes]"),
        ({"scope": {"workspaces": "a b"}}, None),  # a single string is accepted as one name
        ({"scope": {"workspaces": [1]}}, "[scope] workspaces: expected a list of strings"),
        ({"policy": {"monitoring_window_days": -1}}, "[policy] monitoring_window_days: expected a whole number"),
        ({"output": {"page_size": "A3"}}, 'page_size must be "A4" or "Letter"'),
        ({"window": {"start": "2026-07-01"}}, "[window] needs both start and end"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, object], message: str | None) -> None:
    if message is None:
        parse_config(data)
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in caught.value.diagnostics()
    assert "\n" not in caught.value.diagnostics()


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scope\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_scope_requires_its_keys() -> None:
    with pytest.raises(ConfigError, match="subscription is not set"):
        parse_config({}).scope.to_scope()


def test_interval_quarter_last() -> None:
    window = parse_interval("2026-07-01T00:00:00Z/2026-10-01T00:00:00Z", NOW)
    assert (window.start, window.end) == (datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    assert parse_interval("2026-07-01/2026-08-01", NOW).end == datetime(2026, 8, 1, tzinfo=UTC)
    # offsets are converted to UTC
    assert parse_interval("2026-07-01T02:00:00+02:00/2026-08-01T00:00:00Z", NOW).start == datetime(
        2026, 7, 1, tzinfo=UTC
    )
    q4 = parse_quarter("2025Q4", NOW)
    assert (q4.start, q4.end) == (datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    last = parse_last("30d", NOW)
    assert (last.end - last.start).days == 30 and last.end == NOW


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_interval("2026-10-01T00:00:00Z/2026-07-01T00:00:00Z", NOW), "is not after its start"),
        (lambda: parse_interval("2026-10-01T00:00:00Z/2027-01-01T00:00:00Z", NOW), "is in the future"),
        (lambda: parse_interval("yesterday/today", NOW), "is not an ISO 8601"),
        (lambda: parse_interval("2026-07-01", NOW), "is not an interval"),
        (lambda: parse_quarter("2026Q4", NOW), "is in the future"),
        (lambda: parse_quarter("2026-Q5", NOW), "is not of the form YYYYQn"),
        (lambda: parse_last("0d", NOW), "is not a duration"),
        (lambda: parse_last("3 months", NOW), "is not a duration"),
    ],
)
def test_bad_windows_are_refused(call: object, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        call()  # type: ignore[operator]
    assert message in caught.value.diagnostics()


def test_window_given_two_ways_is_refused() -> None:
    config = parse_config({"window": {"quarter": "2026Q3", "last": "30d"}})
    with pytest.raises(UsageError, match="more than one way"):
        config.window.resolve(NOW)

"""``evidence.toml``: what to collect, for which window, and how to package and sign it.

Parsed once into frozen dataclasses; every key is checked and unknown keys are errors, so a typo
never silently drops a setting. Every key can also be set by a CLI flag (the CLI overlays flags on
top of the file through ``Config.replace``-style overrides).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from evidence.domain import Scope, Window, Workspace
from evidence.errors import ConfigError, UsageError
from evidence.window import parse_interval, parse_last, parse_quarter

DEFAULT_APPROVAL_TAGS = ("approved_by", "approval_date", "approval_ticket")
DEFAULT_PRIVILEGED_ROLES = ("Owner", "Contributor", "User Access Administrator", "AzureML Data Scientist")


@dataclass(frozen=True)
class ScopeConfig:
    organisation: str = ""
    subscriptions: tuple[str, ...] = ()
    resource_group: str = ""
    workspaces: tuple[str, ...] = ()
    registries: tuple[str, ...] = ()

    @property
    def lists_workspaces(self) -> bool:
        """A resource group and no workspace names: every workspace in that resource group.

        The names are then listed through Azure ML at run time
        (``evidence.collect.discovery.list_resource_group_scope``), not taken from this config.
        """
        return bool(self.subscriptions and self.resource_group and not self.workspaces)

    def to_scope(self) -> Scope:
        """The scope of the workspaces named here (a config that lists them has none yet: see above)."""
        if not self.subscriptions:
            raise ConfigError("[scope] subscription is not set", hint="set it in evidence.toml or pass --subscription")
        if not self.resource_group:
            raise ConfigError(
                "[scope] resource_group is not set", hint="set it in evidence.toml or pass --resource-group"
            )
        if not self.workspaces:
            raise ConfigError(
                "[scope] workspaces is empty",
                hint="list the workspace names or pass --workspace (package and collect list every workspace "
                "in the resource group when none is named)",
            )
        return Scope(
            workspaces=tuple(
                sorted(Workspace(s, self.resource_group, w) for s in self.subscriptions for w in self.workspaces)
            ),
            registries=self.registries,
            organisation=self.organisation,
        )


@dataclass(frozen=True)
class WindowConfig:
    """Exactly one way of naming the window may be used."""

    interval: str = ""
    quarter: str = ""
    last: str = ""

    def resolve(self, now: datetime) -> Window:
        given = [(k, v) for k, v in (("interval", self.interval), ("quarter", self.quarter), ("last", self.last)) if v]
        if not given:
            raise UsageError(
                "no time window given",
                hint="pass --window START/END, --quarter 2026Q3 or --last 30d (or set [window] in evidence.toml)",
            )
        if len(given) > 1:
            raise UsageError(
                f"the window is given more than one way ({', '.join(k for k, _ in given)})",
                hint="use only one of --window, --quarter and --last",
            )
        kind, value = given[0]
        if kind == "interval":
            return parse_interval(value, now)
        if kind == "quarter":
            return parse_quarter(value, now)
        return parse_last(value, now)


@dataclass(frozen=True)
class AzureConfig:
    cloud: str = "AzureCloud"
    resource_manager: str = ""
    credential: str = "default"
    log_analytics_workspace: str = ""


@dataclass(frozen=True)
class PolicyConfig:
    approval_tags: tuple[str, ...] = DEFAULT_APPROVAL_TAGS
    approved_stages: tuple[str, ...] = ()
    owner_tag: str = "owner"
    allowed_deployers: tuple[str, ...] = ()
    privileged_roles: tuple[str, ...] = DEFAULT_PRIVILEGED_ROLES
    monitoring_window_days: int = 7
    waivers: str = ""


@dataclass(frozen=True)
class OutputConfig:
    directory: str = "out"
    page_size: str = "A4"


@dataclass(frozen=True)
class SigningConfig:
    key: str = ""
    certificate: str = ""
    password_env: str = ""
    key_vault_key_id: str = ""
    tsa_url: str = ""


@dataclass(frozen=True)
class Config:
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    azure: AzureConfig = field(default_factory=AzureConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    source: str = ""  # the file it came from, for messages

    def with_overrides(self, section: str, **values: Any) -> Config:
        """A copy with some keys of one section replaced (CLI flags win over the file)."""
        given = {k: v for k, v in values.items() if v not in (None, "", ())}
        if not given:
            return self
        return replace(self, **{section: replace(getattr(self, section), **given)})


# --------------------------------------------------------------------------------------- parsing
def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _strs(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(value)


def _int(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: expected a whole number of 0 or more")
    return value


def _section(data: dict[str, Any], name: str, allowed: dict[str, Any], source: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{source}: unknown key [{name}] {key}", hint=f"known keys: {known}")
        out[allowed[key][0]] = allowed[key][1](f"{source}: [{name}] {key}", value)
    return out


def parse_config(data: dict[str, Any], source: str = "evidence.toml") -> Config:
    sections = {"scope", "window", "azure", "policy", "output", "signing"}
    for key in data:
        if key not in sections:
            raise ConfigError(
                f"{source}: unknown section [{key}]", hint=f"known sections: {', '.join(sorted(sections))}"
            )
    scope = _section(
        data,
        "scope",
        {
            "organisation": ("organisation", _str),
            "subscription": ("subscriptions", _strs),
            "subscriptions": ("subscriptions", _strs),
            "resource_group": ("resource_group", _str),
            "workspaces": ("workspaces", _strs),
            "registries": ("registries", _strs),
        },
        source,
    )
    window = _section(
        data,
        "window",
        {
            "start": ("start", _str),
            "end": ("end", _str),
            "interval": ("interval", _str),
            "quarter": ("quarter", _str),
            "last": ("last", _str),
        },
        source,
    )
    if ("start" in window) != ("end" in window):
        raise ConfigError(f"{source}: [window] needs both start and end")
    if "start" in window:
        if "interval" in window:
            raise ConfigError(f"{source}: [window] has both start/end and interval; keep one")
        window["interval"] = f"{window.pop('start')}/{window.pop('end')}"
    azure = _section(
        data,
        "azure",
        {
            "cloud": ("cloud", _str),
            "resource_manager": ("resource_manager", _str),
            "credential": ("credential", _str),
            "log_analytics_workspace": ("log_analytics_workspace", _str),
        },
        source,
    )
    policy = _section(
        data,
        "policy",
        {
            "approval_tags": ("approval_tags", _strs),
            "approved_stages": ("approved_stages", _strs),
            "owner_tag": ("owner_tag", _str),
            "allowed_deployers": ("allowed_deployers", _strs),
            "privileged_roles": ("privileged_roles", _strs),
            "monitoring_window_days": ("monitoring_window_days", _int),
            "waivers": ("waivers", _str),
        },
        source,
    )
    output = _section(data, "output", {"directory": ("directory", _str), "page_size": ("page_size", _str)}, source)
    if output.get("page_size", "A4") not in ("A4", "Letter"):
        raise ConfigError(f'{source}: [output] page_size must be "A4" or "Letter"')
    signing = _section(
        data,
        "signing",
        {
            "key": ("key", _str),
            "certificate": ("certificate", _str),
            "password_env": ("password_env", _str),
            "key_vault_key_id": ("key_vault_key_id", _str),
            "tsa_url": ("tsa_url", _str),
        },
        source,
    )
    return Config(
        scope=ScopeConfig(**scope),
        window=WindowConfig(**window),
        azure=AzureConfig(**azure),
        policy=PolicyConfig(**policy),
        output=OutputConfig(**output),
        signing=SigningConfig(**signing),
        source=source,
    )


def load_config(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="pass --config PATH or create evidence.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    config = parse_config(data, source=str(path))
    # Relative paths in the file are relative to the file, not to wherever the command runs.
    base = path.parent
    signing = config.signing
    if signing.key and not Path(signing.key).is_absolute():
        signing = replace(signing, key=str(base / signing.key))
    if signing.certificate and not Path(signing.certificate).is_absolute():
        signing = replace(signing, certificate=str(base / signing.certificate))
    policy = config.policy
    if policy.waivers and not Path(policy.waivers).is_absolute():
        policy = replace(policy, waivers=str(base / policy.waivers))
    return replace(config, signing=signing, policy=policy)

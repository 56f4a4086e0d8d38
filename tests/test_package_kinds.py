"""``evidence package`` end to end over the Contoso recording: waivers, release and access review.

Every test goes through ``main([...])`` (the CLI itself) and the real SDK pipelines replaying the
bundled cassette, then reads the package back with the verifier's safe reader.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from evidence.cli import main
from evidence.resources import bundled
from evidence.verify import OpenedPackage

SAMPLE = bundled("samples") / "contoso"
WS = (
    "/subscriptions/89baca1f-d4bd-5f8d-8a98-1ad174a67ed2/resourceGroups/rg-ml-prod"
    "/providers/Microsoft.MachineLearningServices/workspaces"
)
FRAUD_V3 = f"{WS}/mlw-fraud-prod/models/fraud-detector/versions/3"


def package(out: Path, *extra: str) -> int:
    return main(
        [
            "package",
            "--config",
            str(SAMPLE / "evidence.toml"),
            "--replay",
            str(SAMPLE / "cassette"),
            "--unsigned",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def read(zip_path: Path, rel: str) -> bytes:
    with OpenedPackage.open(zip_path) as pkg:
        return pkg.read(rel, max_bytes=1 << 30)


def members(zip_path: Path) -> tuple[str, ...]:
    with OpenedPackage.open(zip_path) as pkg:
        return pkg.files


def findings(zip_path: Path) -> dict[str, Any]:
    return dict(json.loads(read(zip_path, "data/findings.json")))


WAIVERS = f"""
[[waiver]]
control = "EV-01"
subject = "{FRAUD_V3}"
reason = "Approved in the change board minutes; tags added in the next release"
owner = "alice@contoso.com"
approver = "carol@contoso.com"
ticket = "CHG-1042"
expiry = 2026-12-31

[[waiver]]
control = "EV-08"
subject = "/subscriptions/x/roleAssignments/old"
reason = "Break-glass account"
owner = "bob@contoso.com"
approver = "carol@contoso.com"
ticket = "CHG-0999"
expiry = 2026-06-30
"""


# ------------------------------------------------------------------------------------------ waivers
def test_waivers_flag_applies_reports_expired_and_is_kept(tmp_path: Path) -> None:
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    out = tmp_path / "out"
    assert package(out, "--waivers", str(waivers)) == 0
    (zip_path,) = out.glob("*.zip")
    assert read(zip_path, "data/inputs/waivers.toml") == waivers.read_bytes()
    doc = findings(zip_path)
    assert doc["summary"]["waived"] == 1
    by_id = {c["id"]: c for c in doc["controls"]}
    (waived,) = [f for f in by_id["EV-01"]["findings"] if f["waiver"]]
    assert waived["status"] == "fail" and waived["subject"] == FRAUD_V3  # kept visible, not a pass
    register = by_id["EV-W1"]
    assert register["status"] == "fail"
    messages = [f["message"] for f in register["findings"]]
    assert any("CHG-0999" in m and "expired on 2026-06-30" in m for m in messages)
    assert any("CHG-1042" in m and "applied" in m for m in messages)
    rows = list(csv.DictReader(io.StringIO(read(zip_path, "data/findings.csv").decode())))
    assert [r["waiver_ticket"] for r in rows if r["waiver_ticket"]] == ["CHG-1042"]
    html = read(zip_path, "data/report/report.html").decode()
    assert "Waived" in html and "CHG-1042" in html and "EV-W1" in html


def test_a_waived_finding_does_not_trip_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    assert package(tmp_path / "out", "--waivers", str(waivers), "--fail-on", "high") == 1  # other highs remain
    err = capsys.readouterr().err
    assert "gate: EV-08" in err
    assert "fraud-detector/versions/3" not in err, "the waived EV-01 fail is accepted, not a gate failure"
    (zip_path,) = (tmp_path / "out").glob("*.zip")
    assert main(["verify", str(zip_path), "--rebuild"]) == 1  # unsigned: integrity only, never a pass
    out = capsys.readouterr().out
    assert "PASSED        rebuild.derived" in out and "PASSED        rebuild.report" in out


def test_waivers_from_the_config_file_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "waivers.toml").write_text(WAIVERS, encoding="utf-8")
    config = (SAMPLE / "evidence.toml").read_text(encoding="utf-8")
    assert config.count("[policy]\n") == 1
    config = config.replace("[policy]\n", '[policy]\nwaivers = "waivers.toml"  # relative to this file\n')
    (tmp_path / "evidence.toml").write_text(config, encoding="utf-8")
    out = tmp_path / "out"
    code = main(
        [
            "package",
            "--config",
            str(tmp_path / "evidence.toml"),
            "--replay",
            str(SAMPLE / "cassette"),
            "--unsigned",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    (zip_path,) = out.glob("*.zip")
    assert findings(zip_path)["summary"]["waived"] == 1


def test_a_broken_waivers_file_is_a_usage_error_before_collecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "waivers.toml"
    bad.write_text('[[waiver]]\ncontrol = "EV-01"\n', encoding="utf-8")
    assert package(tmp_path / "out", "--waivers", str(bad)) == 2
    err = capsys.readouterr().err
    assert "missing" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.zip"))
    assert package(tmp_path / "out", "--waivers", str(tmp_path / "nope.toml")) == 2


def test_findings_csv_is_in_every_package(tmp_path: Path) -> None:
    assert package(tmp_path) == 0
    (zip_path,) = tmp_path.glob("*.zip")
    rows = list(csv.DictReader(io.StringIO(read(zip_path, "data/findings.csv").decode())))
    doc = findings(zip_path)
    assert len(rows) == sum(len(c["findings"]) for c in doc["controls"])
    assert "EV-W1" not in {c["id"] for c in doc["controls"]}  # no waivers, no register


# ------------------------------------------------------------------------------------------ release
#: credit-risk version 4 was registered at this instant (samples/contoso/tenant.toml); the tenant's
#: "now" (the recording's clock) ends every release window.
CREDIT_V4_REGISTERED = "2026-08-18T07:45:31Z"
TENANT_NOW = "2026-09-28T06:00:00Z"


@pytest.fixture(scope="module")
def release_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A recording of the Contoso tenant for credit-risk 4's release window (registration to now).

    Recorded by samples/generate.py against the simulated tenant, exactly as the bundled cassette.
    """
    import importlib.util
    import sys

    root = tmp_path_factory.mktemp("release-sample")
    config = (SAMPLE / "evidence.toml").read_text(encoding="utf-8")
    head, _, rest = config.partition("[window]")
    tail = rest.split("\n[", 1)[1] if "\n[" in rest else ""
    config = f'{head}[window]\ninterval = "{CREDIT_V4_REGISTERED}/{TENANT_NOW}"\n' + (f"\n[{tail}" if tail else "")
    (root / "evidence.toml").write_text(config, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("samples_generate", Path(bundled("samples")) / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.generate(root / "cassette", config_path=root / "evidence.toml")
    return root / "evidence.toml", root / "cassette"


def release(sample: tuple[Path, Path], out: Path, *extra: str) -> int:
    config, cassette = sample
    common = ["package", "--config", str(config), "--replay", str(cassette), "--unsigned", "--out", str(out), "-q"]
    return main([*common, "--kind", "release", *extra])


def test_release_window_runs_from_registration_to_the_recorded_now(
    release_sample: tuple[Path, Path], tmp_path: Path
) -> None:
    assert release(release_sample, tmp_path, "--model", "credit-risk", "--version", "4") == 0
    (zip_path,) = tmp_path.glob("*.zip")
    assert "-release-" in zip_path.name
    collection = json.loads(read(zip_path, "data/collection.json"))
    assert collection["window"] == {"start": CREDIT_V4_REGISTERED, "end": TENANT_NOW}
    request = json.loads(read(zip_path, "data/inputs/request.json"))
    assert request["kind"] == "release"
    assert request["release"] == {"model": "credit-risk", "version": "4", "window_start": "registration"}
    # The registration lookup's answers are evidence too: kept raw, on their own channel, with provenance.
    lookups = [r for r in collection["requests"] if r["collector"] == "release"]
    assert lookups and all(r["status"] == 200 and r["file"].startswith("data/raw/release/") for r in lookups)
    assert any("/models/credit-risk/versions" in r["url"] for r in lookups)
    assert {m for m in members(zip_path) if m.startswith("data/raw/release/")} == {r["file"] for r in lookups}
    answers = [json.loads(read(zip_path, r["file"])) for r in lookups if "/models/credit-risk/versions" in r["url"]]
    assert any(
        v["name"] == "4" and v["systemData"]["createdAt"].startswith("2026-08-18T07:45:31")
        for page in answers
        for v in page["value"]
    )
    # The window start is the registration recorded in the package's own model version records.
    versions = [json.loads(line) for line in read(zip_path, "data/records/model_versions.jsonl").splitlines()]
    (v4,) = [v for v in versions if v["model_name"] == "credit-risk" and v["version"] == "4"]
    assert v4["created_at"] == CREDIT_V4_REGISTERED
    controls = {c["id"]: c for c in findings(zip_path)["controls"]}
    # Scoped to the release: the served population of EV-01 is credit-risk 4 only.
    subjects = {f["subject"] for f in controls["EV-01"]["findings"]}
    assert subjects and all(s.endswith("/models/credit-risk/versions/4") for s in subjects)
    # Monitoring before vs after the rollout (EV-10).
    assert any("before" in f["message"] and "after" in f["message"] for f in controls["EV-10"]["findings"])
    html = read(zip_path, "data/report/report.html").decode()
    assert "Release close-out: credit-risk version 4" in html


def test_release_gate_fails_on_an_unapproved_version_and_keeps_the_package(
    release_sample: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = release(
        release_sample,
        tmp_path,
        "--model",
        "fraud-detector",
        "--version",
        "3",
        "--since",
        CREDIT_V4_REGISTERED,
        "--fail-on",
        "high",
    )
    assert code == 1
    (zip_path,) = tmp_path.glob("*.zip")  # the evidence of the failure is kept
    request = json.loads(read(zip_path, "data/inputs/request.json"))
    assert request["release"]["window_start"] == "since"
    assert not [m for m in members(zip_path) if m.startswith("data/raw/release/")]  # --since: no lookup
    err = capsys.readouterr().err
    assert "gate: EV-01 fail (high)" in err and "fraud-detector" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "credit-risk"], "needs --model NAME and --version V"),
        (["--model", "credit-risk", "--version", "4", "--last", "7d"], "cannot be used with --kind release"),
        (["--model", "credit-risk", "--version", "99"], "credit-risk version 99 is not registered"),
        (["--model", "credit-risk", "--version", "4", "--since", "yesterday"], "is not an ISO 8601"),
    ],
)
def test_release_usage_errors(
    release_sample: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    assert release(release_sample, tmp_path, *flags) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.zip"))


def test_kind_specific_flags_are_refused_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert package(tmp_path, "--model", "credit-risk") == 2
    assert package(tmp_path, "--kind", "release", "--decisions", str(tmp_path / "d.csv")) == 2
    err = capsys.readouterr().err
    assert "--model is for --kind release" in err and "--decisions is for --kind access-review" in err


# ------------------------------------------------------------------------------------ access review
@pytest.fixture(scope="module")
def review_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review")
    assert package(out, "--kind", "access-review") == 0
    (zip_path,) = out.glob("*.zip")
    return zip_path


def test_access_review_freezes_population_and_writes_the_reviewer_sheet(review_zip: Path) -> None:
    names = members(review_zip)
    for kind in ("access_review_population", "access_review_changes"):
        assert f"data/records/{kind}.jsonl" in names and f"data/records/{kind}.csv" in names
    assert "data/records/access_review_decisions.jsonl" not in names
    sheet = review_zip.with_name(review_zip.name.replace(".zip", ".decisions.csv"))
    assert sheet.read_bytes() == read(review_zip, "data/review/decisions_template.csv")
    rows = list(csv.DictReader(io.StringIO(sheet.read_text(encoding="utf-8"))))
    population = [
        json.loads(line) for line in read(review_zip, "data/records/access_review_population.jsonl").splitlines()
    ]
    assert len(rows) == len({p["assignment"].lower() for p in population}) > 0
    assert all(r["decision"] == "" for r in rows)
    html = read(review_zip, "data/report/report.html").decode()
    for anchor in ("inv-review-population", "inv-review-changes", "inv-review-diff", "inv-signoff"):
        assert f'id="{anchor}"' in html
    assert "No previous review package was given" in html


def test_access_review_with_decisions_reports_pending_removals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decisions = SAMPLE / "decisions.csv"
    assert package(tmp_path, "--kind", "access-review", "--decisions", str(decisions)) == 0
    out = capsys.readouterr().out
    pending = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("removal pending: ")]
    assert len(pending) == 2 and all("/roleAssignments/" in p for p in pending)
    (zip_path,) = tmp_path.glob("*.zip")
    assert read(zip_path, "data/inputs/decisions.csv") == decisions.read_bytes()
    decided = [json.loads(line) for line in read(zip_path, "data/records/access_review_decisions.jsonl").splitlines()]
    assert {d["assignment"] for d in decided if d["decision"] == "remove"} == set(pending)
    html = read(zip_path, "data/report/report.html").decode()
    assert "Removals pending" in html and "erin@contoso.com" in html


def _sheet(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "assignment(s) have no decision"),
        ("unknown", "unknown assignment"),
        ("undecided", "decision must be keep or remove"),
    ],
)
def test_incomplete_decisions_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    rows = list(csv.DictReader(io.StringIO((SAMPLE / "decisions.csv").read_text(encoding="utf-8"))))
    if change == "missing":
        rows = rows[1:]
    elif change == "unknown":
        rows[0] = {**rows[0], "assignment": rows[0]["assignment"][:-4] + "ffff"}
    else:
        rows[0] = {**rows[0], "decision": ""}
    sheet = tmp_path / "decisions.csv"
    sheet.write_text(_sheet(rows), encoding="utf-8")
    out = tmp_path / "out"
    assert package(out, "--kind", "access-review", "--decisions", str(sheet)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(out.glob("*.zip")), "a refused sheet leaves no package"


def test_a_sheet_with_the_wrong_header_is_refused_before_collecting(tmp_path: Path) -> None:
    sheet = tmp_path / "decisions.csv"
    sheet.write_text("assignment,decision\nx,keep\n", encoding="utf-8")
    assert package(tmp_path / "out", "--kind", "access-review", "--decisions", str(sheet)) == 2
    assert not (tmp_path / "out").exists()


def _previous_package(path: Path, rows: list[dict[str, Any]], *, name: str = "evidence-prev") -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
        zf.writestr(f"{name}/bag-info.txt", "Package-Id: " + "ab" * 32 + "\n")
        zf.writestr(f"{name}/data/records/role_assignments.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def test_previous_review_diff_shows_added_and_removed(review_zip: Path, tmp_path: Path) -> None:
    current = [json.loads(line) for line in read(review_zip, "data/records/role_assignments.jsonl").splitlines()]
    gone = {
        "assignment_id": "/subscriptions/x/providers/Microsoft.Authorization/roleAssignments/gone",
        "role_name": "Owner",
    }
    previous = tmp_path / "previous.zip"
    first = current[0]["assignment_id"]  # one row per workspace: drop every row of it
    _previous_package(previous, [*(r for r in current if r["assignment_id"] != first), gone])
    out = tmp_path / "out"
    assert package(out, "--kind", "access-review", "--previous", str(previous)) == 0
    (zip_path,) = out.glob("*.zip")
    added = [json.loads(line) for line in read(zip_path, "data/records/access_review_added.jsonl").splitlines()]
    removed = [json.loads(line) for line in read(zip_path, "data/records/access_review_removed.jsonl").splitlines()]
    assert [a["assignment_id"] for a in added] == [first]
    assert [r["assignment_id"] for r in removed] == [gone["assignment_id"]]
    request = json.loads(read(zip_path, "data/inputs/request.json"))
    assert request["inputs"]["previous_package"]["package_id"] == "ab" * 32
    html = read(zip_path, "data/report/report.html").decode()
    assert "1 added, 1 removed" in html and "previous.zip" in html


def test_an_unsafe_previous_package_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zipfile

    slip = tmp_path / "zip_slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("evidence-prev/data/records/role_assignments.jsonl", "")
        zf.writestr("evidence-prev/../../evil.txt", "x")
    assert package(tmp_path / "out", "--kind", "access-review", "--previous", str(slip)) == 2
    err = capsys.readouterr().err
    assert "refused" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------------------------- demo
@pytest.mark.parametrize("kind", ["release", "access-review"])
def test_demo_builds_every_kind_offline(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--kind", kind, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (zip_path,) = tmp_path.glob("*.zip")
    assert f"-{kind}-" in zip_path.name
    request = json.loads(read(zip_path, "data/inputs/request.json"))
    assert request["kind"] == kind
    if kind == "release":
        assert request["release"] == {"model": "credit-risk", "version": "4", "window_start": "window"}
    else:
        assert "reviewer sheet:" in out and out.count("removal pending:") == 2
        assert read(zip_path, "data/inputs/decisions.csv") == (SAMPLE / "decisions.csv").read_bytes()
    cert = next(tmp_path.glob("*.cert.pem"))
    # Everything derived (records, review views, decisions, findings, report) follows from data/inputs.
    assert main(["verify", str(zip_path), "--trust", str(cert), "--rebuild"]) == 0


def test_access_review_demo_is_byte_identical_across_runs(tmp_path: Path) -> None:
    import hashlib

    digests = []
    for run in ("a", "b"):
        assert main(["demo", "--kind", "access-review", "--out", str(tmp_path / run), "-q"]) == 0
        (zip_path,) = (tmp_path / run).glob("*.zip")
        sheet = next((tmp_path / run).glob("*.decisions.csv"))
        digests.append((hashlib.sha256(zip_path.read_bytes()).hexdigest(), sheet.read_bytes()))
    assert digests[0] == digests[1]

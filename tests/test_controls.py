"""Controls EV-01..EV-11 against the sample tenant's planted problems, a clean variant, empty and gap cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from evidence.check.interface import Finding, Status
from evidence.check.runner import ControlResult, default_controls, run_checks
from tests.fixtures_records import (
    ALICE,
    CAROL,
    CHURN_GREEN,
    DANA,
    FRAUD_BLUE,
    FRAUD_EP,
    FRAUD_GREEN,
    WS,
    assignment_id,
    clean_records,
    context,
    event,
    gap,
    model_id,
    policy,
    sample_records,
)

CONTROL_IDS = [f"EV-{n:02d}" for n in range(1, 12)]
FRAUD_V3 = model_id("fraud-detector", "3")


def run(**kwargs: Any) -> dict[str, ControlResult]:
    return {r.control.info.id: r for r in run_checks(default_controls(), context(**kwargs))}


def findings(results: dict[str, ControlResult], status: Status) -> set[tuple[str, str]]:
    return {(cid, f.subject) for cid, r in results.items() for f in r.findings if f.status is status}


def only(results: dict[str, ControlResult], cid: str) -> list[Finding]:
    return list(results[cid].findings)


def test_default_controls_are_the_eleven_with_frameworks() -> None:
    controls = default_controls()
    assert [c.info.id for c in controls] == CONTROL_IDS
    for control in controls:
        assert control.info.title and control.info.rationale and control.info.frameworks


# ------------------------------------------------------------------------------ planted problems
def test_sample_every_planted_problem_is_found_and_nothing_else_fails() -> None:
    results = run()
    assert findings(results, Status.FAIL) == {
        ("EV-01", FRAUD_V3),  # (a) served without approval tags
        ("EV-07", CHURN_GREEN),  # (c) deployment written by alice, not the pipeline
        ("EV-08", assignment_id(3)),  # (b) bob holds Owner directly at workspace scope
        ("EV-08", assignment_id(4)),  # (e) principal no longer resolves
        ("EV-09", assignment_id(6)),  # (d) created in the window without an Activity Log event
    }
    assert findings(results, Status.ERROR) == set()
    # Consequences of (a), honest rather than pass: no approval date to compare, no approver to separate.
    assert findings(results, Status.NOT_ASSESSED) == {("EV-02", FRAUD_V3)}
    assert findings(results, Status.MANUAL_REVIEW) == {("EV-06", FRAUD_V3)}
    for cid in ("EV-03", "EV-04", "EV-05", "EV-10", "EV-11"):
        assert results[cid].status is Status.PASS, cid


def test_planted_messages_name_the_problem() -> None:
    results = run()
    by_subject = {(f.control_id, f.subject): f for r in results.values() for f in r.findings}
    assert "without approval evidence" in by_subject[("EV-01", FRAUD_V3)].message
    assert ALICE in by_subject[("EV-07", CHURN_GREEN)].message
    assert "directly at workspace scope" in by_subject[("EV-08", assignment_id(3))].message
    assert "no longer resolves" in by_subject[("EV-08", assignment_id(4))].message
    assert "no matching roleAssignments/write event" in by_subject[("EV-09", assignment_id(6))].message
    for finding in by_subject.values():
        assert finding.evidence, finding  # every finding points at its evidence


def test_clean_variant_every_control_passes() -> None:
    results = run(records=clean_records())
    assert {cid: r.status for cid, r in results.items()} == dict.fromkeys(CONTROL_IDS, Status.PASS)


def test_a_failed_write_by_a_person_is_not_a_change() -> None:
    results = run(records=clean_records())
    subjects = {f.subject for f in only(results, "EV-07")}
    assert FRAUD_BLUE not in subjects  # bob's attempt failed


# ------------------------------------------------------------------------------ empty and gaps
def test_empty_population_is_never_a_pass() -> None:
    empty = {kind: [] for kind in sample_records()}
    results = run(records=empty)
    for cid in CONTROL_IDS[:-1]:
        assert results[cid].status is Status.NOT_ASSESSED, cid
        assert all(f.message.startswith("not assessed") for f in results[cid].findings), cid


def test_nothing_collected_is_not_assessed_with_reason() -> None:
    results = run(records={})
    for cid in CONTROL_IDS[:-1]:
        assert results[cid].status is Status.NOT_ASSESSED, cid
    assert any("not collected" in f.message for f in results["EV-08"].findings)


DEPENDS = {
    "model_versions": ["EV-01", "EV-02", "EV-03", "EV-05", "EV-06"],
    "endpoints": ["EV-01", "EV-02", "EV-03", "EV-04", "EV-05", "EV-06", "EV-10"],
    "activity_log": ["EV-01", "EV-02", "EV-03", "EV-06", "EV-07", "EV-09", "EV-10"],
    "role_assignments": ["EV-08", "EV-09"],
    "metrics": ["EV-10"],
}


@pytest.mark.parametrize("collector", sorted(DEPENDS))
def test_a_gap_keeps_every_dependent_control_from_passing(collector: str) -> None:
    results = run(records=clean_records(), gaps=[gap(collector)])
    for cid in DEPENDS[collector]:
        assert results[cid].status is Status.NOT_ASSESSED, cid
        assert any(collector in f.message for f in results[cid].findings if f.status is Status.NOT_ASSESSED)
    assert results["EV-11"].status is Status.FAIL
    for cid in set(CONTROL_IDS[:-1]) - set(DEPENDS[collector]):
        assert results[cid].status is Status.PASS, cid


def test_missing_version_record_with_a_gap_is_not_assessed_not_fail() -> None:
    records = sample_records()
    records["model_versions"] = [r for r in records["model_versions"] if r["version"] != "3"]
    results = run(records=records, gaps=[gap("model_versions")])
    assert ("EV-01", FRAUD_V3) not in findings(results, Status.FAIL)
    assert ("EV-01", FRAUD_V3) in findings(results, Status.NOT_ASSESSED)


def test_unreadable_records_are_an_error_not_a_crash() -> None:
    records = clean_records()
    records["deployments"][0]["traffic_percent"] = "lots"
    results = run(records=records)
    assert results["EV-05"].status is Status.ERROR


# ---------------------------------------------------------------------------- control details
def _version(records: dict[str, Any], name: str, number: str) -> dict[str, Any]:
    return next(r for r in records["model_versions"] if r["model_name"] == name and r["version"] == number)


def test_an_approved_stage_counts_as_approval() -> None:
    records = sample_records()
    _version(records, "fraud-detector", "3")["stage"] = "Production"
    results = run(records=records, policy_config=policy(approved_stages=("Production",)))
    assert results["EV-01"].status is Status.PASS
    # a stage carries no date: the order of approval and deployment needs a person
    assert ("EV-02", FRAUD_V3) in findings(results, Status.MANUAL_REVIEW)


def test_partial_approval_tags_fail_and_name_the_missing_tag() -> None:
    records = sample_records()
    _version(records, "fraud-detector", "3")["tags"]["approved_by"] = CAROL
    message = next(f.message for f in run(records=records)["EV-01"].findings if f.status is Status.FAIL)
    assert "approval_date, approval_ticket" in message and "approved_by" not in message.split("missing")[1]


@pytest.mark.parametrize(
    ("day", "status"),
    [("2026-05-21", Status.PASS), ("2026-05-22", Status.MANUAL_REVIEW), ("2026-05-23", Status.FAIL)],
)
def test_approval_must_predate_the_deployment_write(day: str, status: Status) -> None:
    records = clean_records()
    _version(records, "churn-model", "5")["tags"]["approval_date"] = day  # deployed 2026-05-22T14:00:03Z
    subject = model_id("churn-model", "5")
    assert ("EV-02", subject) in findings(run(records=records), status)


def test_approval_timestamp_is_compared_exactly() -> None:
    records = clean_records()
    _version(records, "churn-model", "5")["tags"]["approval_date"] = "2026-05-22T13:59:00Z"
    assert ("EV-02", model_id("churn-model", "5")) in findings(run(records=records), Status.PASS)


def test_missing_owner_fails() -> None:
    records = clean_records()
    del _version(records, "churn-model", "5")["tags"]["owner"]
    assert findings(run(records=records), Status.FAIL) == {("EV-03", model_id("churn-model", "5"))}


def test_owner_tag_comes_from_policy() -> None:
    results = run(records=clean_records(), policy_config=policy(owner_tag="accountable"))
    assert results["EV-03"].status is Status.FAIL


def test_unpinned_model_reference_fails() -> None:
    records = clean_records()
    row = next(r for r in records["deployments"] if r["deployment_id"] == FRAUD_GREEN)
    row.update(model_asset_id="azureml:fraud-detector@latest", model_version=None)
    results = run(records=records)
    assert findings(results, Status.FAIL) == {("EV-04", FRAUD_GREEN)}
    assert "does not pin" in only(results, "EV-04")[-1].message or any(
        "does not pin" in f.message for f in only(results, "EV-04")
    )


def test_no_rollback_target_when_the_earlier_version_is_archived() -> None:
    records = clean_records()
    _version(records, "fraud-detector", "2")["archived"] = True
    results = run(records=records)
    assert findings(results, Status.FAIL) == {("EV-05", FRAUD_EP)}
    message = next(f.message for f in only(results, "EV-05") if f.status is Status.FAIL)
    assert "version 2: archived" in message and "version 1: archived" in message


@pytest.mark.parametrize(
    ("approver", "deployer", "reason"),
    [
        (DANA, None, "the approver registered the version"),
        (ALICE, ALICE, "the approver deployed it"),
        (CAROL, DANA, "the same person registered and deployed it"),
    ],
)
def test_separation_of_duties_flags_one_person_in_two_roles(approver: str, deployer: str | None, reason: str) -> None:
    records = clean_records()
    _version(records, "churn-model", "5")["tags"]["approved_by"] = approver
    if deployer:
        for row in records["activity_events"]:
            if row["resource_id"] == CHURN_GREEN:
                row["caller"] = deployer
    results = run(records=records, policy_config=policy(allowed_deployers=("x",)))
    fail = [f for f in only(results, "EV-06") if f.status is Status.FAIL]
    assert [f.subject for f in fail] == [model_id("churn-model", "5")]
    assert reason in fail[0].message


def test_pipeline_identity_registering_and_deploying_is_not_a_clash() -> None:
    records = clean_records()
    sp = policy().allowed_deployers[0]
    _version(records, "churn-model", "5")["created_by"] = sp
    assert run(records=records)["EV-06"].status is Status.PASS


def test_empty_allow_list_is_not_assessed_never_pass() -> None:
    results = run(records=clean_records(), policy_config=policy(allowed_deployers=()))
    [finding] = only(results, "EV-07")
    assert finding.status is Status.NOT_ASSESSED
    assert "no allowed deployers configured" in finding.message


def test_pim_activation_is_manual_review_and_inherited_user_owner_passes() -> None:
    records = sample_records()
    bob = next(r for r in records["role_assignments"] if r["principal_id"] == "bob-oid")
    eligible = copy.deepcopy(records["role_eligibility"][0])
    eligible.update(eligibility_id="bob-eligible", principal_id="bob-oid")
    records["role_eligibility"].append(eligible)
    results = run(records=records)
    assert ("EV-08", bob["assignment_id"]) in findings(results, Status.MANUAL_REVIEW)
    inherited = copy.deepcopy(bob)
    inherited.update(
        assignment_id="/subscriptions/x/providers/Microsoft.Authorization/roleAssignments/y",
        scope="/subscriptions/x",
        inherited=True,
    )
    records = clean_records()
    records["role_assignments"].append(inherited)
    assert run(records=records)["EV-08"].status is Status.PASS


def test_role_name_unresolved_still_matches_the_builtin_guid() -> None:
    records = sample_records()
    for row in records["role_assignments"]:
        row["role_name"] = None
    assert ("EV-08", assignment_id(3)) in findings(run(records=records), Status.FAIL)


def test_role_change_matched_by_principal_role_and_scope_within_tolerance() -> None:
    records = sample_records()
    records["activity_events"].append(
        event(
            "20",
            "2026-06-02T11:05:00Z",
            "Microsoft.Authorization/roleAssignments/write",
            "Succeeded",
            "it-admin@contoso.com",
            f"{WS}/providers/Microsoft.Authorization/roleAssignments/other-id",
            "c-20",
            request_principal_id="erin-oid",
            request_role_definition_id="acdd72a7-3385-48ef-bd42-f606fba81ae7",
            request_scope=WS,
        )
    )
    assert ("EV-09", assignment_id(6)) in findings(run(records=records), Status.PASS)
    records["activity_events"][-1]["timestamp"] = "2026-06-02T13:00:00Z"  # two hours off: no match
    assert ("EV-09", assignment_id(6)) in findings(run(records=records), Status.FAIL)


def test_role_removal_in_window_is_listed() -> None:
    records = clean_records()
    records["activity_events"].append(
        event(
            "21",
            "2026-06-10T09:00:00Z",
            "Microsoft.Authorization/roleAssignments/delete",
            "Succeeded",
            "it-admin@contoso.com",
            assignment_id(9),
            "c-21",
        )
    )
    results = run(records=records)
    assert ("EV-09", assignment_id(9)) in findings(results, Status.PASS)


def test_no_metrics_for_an_endpoint_fails_monitoring() -> None:
    records = clean_records()
    records["metrics"] = [m for m in records["metrics"] if m["resource_id"] != FRAUD_EP]
    results = run(records=records)
    assert findings(results, Status.FAIL) == {("EV-10", FRAUD_BLUE), ("EV-10", FRAUD_GREEN)}


def test_monitoring_summary_numbers() -> None:
    results = run(records=clean_records())
    message = next(f.message for f in only(results, "EV-10") if f.subject == FRAUD_GREEN)
    # two daily points of 10.0 + 0.1 requests a minute: 2 x 1440 x 10.1
    assert "29088 requests" in message and "0.99%" in message and "P99 max 120 ms" in message


def test_release_kind_scopes_to_the_release_version_and_compares_before_after() -> None:
    results = run(records=clean_records(), kind="release", release_model="fraud-detector", release_version="3")
    subjects = {f.subject for f in only(results, "EV-01")}
    assert subjects == {FRAUD_V3}
    release = [f for f in only(results, "EV-10") if f.subject == FRAUD_EP]
    assert release and "days before" in release[0].message and "after" in release[0].message


def test_release_covers_only_the_endpoints_that_serve_or_served_it() -> None:
    # churn-endpoint's green was written by alice (planted c): not part of fraud-detector's release.
    results = run(records=sample_records(), kind="release", release_model="fraud-detector", release_version="3")
    for cid in ("EV-04", "EV-07"):
        subjects = {f.subject for f in only(results, cid)}
        assert subjects and all(s.lower().startswith(FRAUD_EP.lower()) for s in subjects), cid
    # The audit of the same records still sees it.
    assert ("EV-07", CHURN_GREEN) in findings(run(records=sample_records()), Status.FAIL)


def test_a_release_that_served_no_traffic_fails_ev01() -> None:
    results = run(records=clean_records(), kind="release", release_model="fraud-detector", release_version="1")
    failed = [f for f in only(results, "EV-01") if f.status is Status.FAIL]
    assert len(failed) == 1 and failed[0].severity.value == "high"
    assert "served no traffic in the window" in failed[0].message


def test_unrecorded_model_on_a_serving_deployment_needs_review() -> None:
    records = clean_records()
    # an in-place update of fraud green: the model it served before is not in the log
    records["activity_events"].append(
        event(
            "30",
            "2026-06-05T10:00:00Z",
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write",
            "Succeeded",
            policy().allowed_deployers[0],
            FRAUD_GREEN,
            "c-30",
        )
    )
    results = run(records=records)
    assert ("EV-01", FRAUD_GREEN) in findings(results, Status.MANUAL_REVIEW)
    assert findings(results, Status.FAIL) == set()


# ---------------------------------------------------------------------------- registry models
REGISTRY = "contoso-registry"
REGISTRY_ID = (
    "/subscriptions/99999999-8888-7777-6666-555555555555/resourceGroups/rg-ml-shared"
    f"/providers/Microsoft.MachineLearningServices/registries/{REGISTRY}"
)


def registry_version_id(name: str, number: str) -> str:
    return f"{REGISTRY_ID}/models/{name}/versions/{number}"


def fraud_in_registry(records: dict[str, Any]) -> dict[str, Any]:
    """fraud-detector registered in the registry (as models.py records it), deployed from there.

    Blue pins version 2 by ARM ID, green pins version 3 by ``azureml://registries/...`` URI.
    """
    records = copy.deepcopy(records)
    for row in records["model_versions"]:
        if row["model_name"] == "fraud-detector":
            row.update(
                workspace_id=None, registry=REGISTRY, asset_id=registry_version_id("fraud-detector", row["version"])
            )
        else:
            row["registry"] = None
    for row in records["deployments"]:
        if row["deployment_id"] == FRAUD_BLUE:
            row["model_asset_id"] = registry_version_id("fraud-detector", "2")
        if row["deployment_id"] == FRAUD_GREEN:
            row["model_asset_id"] = f"azureml://registries/{REGISTRY}/models/fraud-detector/versions/3"
    return records


REGISTRY_V3 = registry_version_id("fraud-detector", "3")


def test_deployments_of_registry_models_are_assessed_like_workspace_ones() -> None:
    results = run(records=fraud_in_registry(sample_records()), registries=[REGISTRY])
    # The same planted problem (a), found on the registry version; nothing else changes.
    assert findings(results, Status.FAIL) == {
        ("EV-01", REGISTRY_V3),
        ("EV-07", CHURN_GREEN),
        ("EV-08", assignment_id(3)),
        ("EV-08", assignment_id(4)),
        ("EV-09", assignment_id(6)),
    }
    assert findings(results, Status.NOT_ASSESSED) == {("EV-02", REGISTRY_V3)}
    assert findings(results, Status.MANUAL_REVIEW) == {("EV-06", REGISTRY_V3)}
    owner = next(f for f in only(results, "EV-03") if f.subject == REGISTRY_V3)
    assert owner.status is Status.PASS and "fraud-team@contoso.com" in owner.message
    rollback = next(f for f in only(results, "EV-05") if f.subject == FRAUD_EP)
    assert rollback.status is Status.PASS and "roll back to version 2" in rollback.message
    assert any(e.pointer == f"asset_id={registry_version_id('fraud-detector', '2')}" for e in rollback.evidence)


def test_clean_registry_variant_every_control_passes() -> None:
    results = run(records=fraud_in_registry(clean_records()), registries=[REGISTRY])
    assert {cid: r.status for cid, r in results.items()} == dict.fromkeys(CONTROL_IDS, Status.PASS)
    approvals = {f.subject for f in only(results, "EV-01")}
    assert REGISTRY_V3 in approvals


def test_registrant_of_a_registry_version_is_checked_for_separation_of_duties() -> None:
    records = fraud_in_registry(clean_records())
    _version(records, "fraud-detector", "3")["created_by"] = CAROL  # CAROL approved it too
    results = run(records=records, registries=[REGISTRY])
    assert findings(results, Status.FAIL) == {("EV-06", REGISTRY_V3)}
    clash = next(f for f in only(results, "EV-06") if f.subject == REGISTRY_V3)
    assert "the approver registered the version" in clash.message


def test_rollback_target_stays_in_the_registry() -> None:
    records = fraud_in_registry(clean_records())
    _version(records, "fraud-detector", "2")["archived"] = True
    # A workspace model of the same name, approved and active, is another model: not a target.
    workspace_v2 = copy.deepcopy(_version(sample_records(), "fraud-detector", "2"))
    records["model_versions"].append({**workspace_v2, "registry": None})
    results = run(records=records, registries=[REGISTRY])
    assert findings(results, Status.FAIL) == {("EV-05", FRAUD_EP)}


def test_a_registry_outside_the_scope_is_not_assessed_and_says_why() -> None:
    records = fraud_in_registry(clean_records())
    records["model_versions"] = [r for r in records["model_versions"] if not r.get("registry")]
    results = run(records=records)  # no registries in the scope
    for cid in ("EV-01", "EV-03", "EV-06"):
        finding = next(f for f in only(results, cid) if "registries/" in f.subject)
        assert finding.status is Status.NOT_ASSESSED, cid
        assert f"registry {REGISTRY}, which is not in the scope" in finding.message, cid


# ------------------------------------------------------------------------- the real sample tenant
def contoso_results() -> tuple[dict[str, ControlResult], set[str]]:
    """Collect the bundled Contoso tenant through the real collectors (simulated ARM) and check it.

    Returns the results and the planted problems' subjects (as full ARM IDs) from tenant.toml.
    """
    import tempfile
    import tomllib
    from pathlib import Path

    from evidence.azure.clients import AzureClients
    from evidence.azure.credentials import StaticCredential
    from evidence.azure.simulator import SimulatedAzure, Throttle, VirtualTime, load_tenant
    from evidence.azure.tap import EvidenceTap
    from evidence.check.interface import CheckContext
    from evidence.clock import FixedClock
    from evidence.collect.runner import default_collectors, run_collection
    from evidence.collect.store import load_raw, normalise_all, write_raw
    from evidence.config import load_config

    sample_dir = Path(__file__).resolve().parents[1] / "samples" / "contoso"
    tenant = load_tenant(sample_dir / "tenant.toml")
    config = load_config(sample_dir / "evidence.toml")
    clock, virtual = FixedClock(tenant.now), VirtualTime()
    simulator = SimulatedAzure(tenant, throttle=Throttle(), clock=virtual.now, sleep=virtual.sleep, strict=True)
    tap = EvidenceTap(simulator, clock)
    scope, window = config.scope.to_scope(), config.window.resolve(clock.now())
    collectors = default_collectors()
    run_ = run_collection(
        clients=AzureClients(StaticCredential(), tap),
        tap=tap,
        scope=scope,
        window=window,
        clock=clock,
        collectors=collectors,
    )
    with tempfile.TemporaryDirectory() as tmp:
        provenance, _ = write_raw(run_.exchanges, Path(tmp))
        records = normalise_all(collectors, load_raw(Path(tmp), provenance))
    raw = tomllib.loads((sample_dir / "tenant.toml").read_text(encoding="utf-8"))
    release = next(p for p in raw["principals"] if p["name"] == "sp-mlops-release")
    # The sample's own policy (samples/contoso/evidence.toml, as the demo uses it): the pipeline
    # identity in both forms it is recorded in (object ID in the Activity Log, application ID in
    # systemData), and privileged roles without AzureML Data Scientist, which the sample grants
    # to named data scientists on purpose.
    sample_policy = config.policy
    assert set(sample_policy.allowed_deployers) == {release["id"], release["app_id"]}
    assert sample_policy.privileged_roles == ("Owner", "Contributor", "User Access Administrator")
    ctx = CheckContext(records, run_.gaps, scope, window, clock.now(), policy=sample_policy)
    results = {r.control.info.id: r for r in run_checks(default_controls(), ctx)}
    base = {ws.name: ws.arm_id for ws in scope.workspaces}
    subjects = set()
    for planted in raw["planted_problems"]:
        _, name, rest = planted["subject"].split("/", 2)
        subjects.add(f"{base[name]}/{rest}".lower())
    return results, subjects


def test_contoso_sample_planted_problems_found_and_nothing_else_fails() -> None:
    results, planted = contoso_results()
    failing = {f.subject.lower() for r in results.values() for f in r.findings if f.status is Status.FAIL}
    assert failing == planted
    assert findings(results, Status.ERROR) == set()
    for cid in ("EV-03", "EV-04", "EV-05", "EV-10", "EV-11"):
        assert results[cid].status is Status.PASS, cid

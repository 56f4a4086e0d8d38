"""A fixed, realistic ReportInput (the Contoso sample tenant): used by the render tests, the
benchmark, and anyone who wants to preview the report without collecting anything.
"""

from __future__ import annotations

from typing import Any

from evidence.render import ReportInput

SUB = "00000000-0000-4000-8000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ml-prod"
WS = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/mlw-contoso-prod"
WS_DEV = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/mlw-contoso-dev"
EP = f"{WS}/onlineEndpoints/credit-score"
XSS_IMG = "<img src=http://127.0.0.1:1/x>"
XSS_SCRIPT = "<script>alert(1)</script>"
PIPELINE = "11111111-2222-4333-8444-555555555555"
PERSON = "alice@contoso.example"


def _digest(n: int) -> str:
    return f"{n:02x}" * 32


def model_versions() -> list[dict[str, Any]]:
    rows = []
    for name, versions in (("credit-score", 4), ("fraud-detect", 2)):
        for v in range(1, versions + 1):
            approved = not (name == "credit-score" and v == 4)
            tags: dict[str, Any] = {"owner": "risk-ml@contoso.example"}
            if approved:
                tags["approval"] = f"CAB-{100 + v}"
            if name == "fraud-detect" and v == 2:
                tags["note"] = XSS_IMG + " " + XSS_SCRIPT
            rows.append(
                {
                    "workspace_id": WS,
                    "model_name": name,
                    "version": str(v),
                    "asset_id": f"{WS}/models/{name}/versions/{v}",
                    "stage": "Production" if v == versions else "Archived" if v == 1 else "Development",
                    "tags": tags,
                    "properties": {},
                    "archived": v == 1,
                    "created_at": f"2025-0{v}-10T08:00:00Z",
                    "created_by": PIPELINE if v != 3 else PERSON,
                    "created_by_type": "Application" if v != 3 else "User",
                    "job_name": f"train-{name}-{v}",
                    "description": "",
                }
            )
    return rows


def sample_report(**overrides: Any) -> ReportInput:
    deployments = [
        {
            "endpoint_id": EP,
            "endpoint_name": "credit-score",
            "deployment_name": "blue",
            "deployment_id": f"{EP}/deployments/blue",
            "model_asset_id": f"{WS}/models/credit-score/versions/3",
            "model_name": "credit-score",
            "model_version": "3",
            "traffic_percent": 90,
            "mirror_traffic_percent": 0,
            "provisioning_state": "Succeeded",
            "instance_type": "Standard_DS3_v2",
            "instance_count": 2,
        },
        {
            "endpoint_id": EP,
            "endpoint_name": "credit-score",
            "deployment_name": "green",
            "deployment_id": f"{EP}/deployments/green",
            "model_asset_id": f"{WS}/models/credit-score/versions/4",
            "model_name": "credit-score",
            "model_version": "4",
            "traffic_percent": 10,
            "mirror_traffic_percent": 0,
            "provisioning_state": "Succeeded",
            "instance_type": "Standard_DS3_v2",
            "instance_count": 1,
        },
    ]
    roles = [
        {
            "assignment_id": f"{WS}/providers/Microsoft.Authorization/roleAssignments/ra-owner-alice",
            "scope": WS,
            "inherited": False,
            "principal_id": "aaaaaaaa-0000-4000-8000-00000000a11c",
            "principal_type": "User",
            "role_definition_id": "/providers/Microsoft.Authorization/roleDefinitions/8e3af657",
            "role_name": "Owner",
            "created_on": "2025-02-01T10:00:00Z",
            "created_by": PERSON,
            "condition": None,
        },
        {
            "assignment_id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/ra-reader",
            "scope": f"/subscriptions/{SUB}",
            "inherited": True,
            "principal_id": "bbbbbbbb-0000-4000-8000-0000000000bb",
            "principal_type": "Group",
            "role_definition_id": "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7",
            "role_name": "Reader",
            "created_on": "2024-11-01T10:00:00Z",
            "created_by": None,
            "condition": None,
        },
        {
            "assignment_id": f"{RG}/providers/Microsoft.Authorization/roleAssignments/ra-ds",
            "scope": RG,
            "inherited": True,
            "principal_id": PIPELINE,
            "principal_type": "ServicePrincipal",
            "role_definition_id": "/providers/Microsoft.Authorization/roleDefinitions/f6c7c914",
            "role_name": "AzureML Data Scientist",
            "created_on": "2024-12-01T10:00:00Z",
            "created_by": None,
            "condition": None,
        },
    ]
    events = []
    for i in range(12):
        person = i % 5 == 0
        op = (
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write"
            if i % 3 == 0
            else "Microsoft.MachineLearningServices/workspaces/read"
        )
        events.append(
            {
                "event_id": f"ev-{i:03d}",
                "timestamp": f"2025-03-{1 + i:02d}T12:00:00Z",
                "operation": op,
                "status": "Failed" if i == 7 else "Succeeded",
                "caller": PERSON if person else PIPELINE,
                "resource_id": f"{EP}/deployments/green" if i % 3 == 0 else WS,
                "correlation_id": f"corr-{i:03d}",
                "level": "Informational",
            }
        )
    metrics = [
        {
            "resource_id": EP,
            "metric": "RequestsPerMinute",
            "aggregation": "Average",
            "unit": "Count",
            "interval": "PT1H",
            "dimensions": {"deployment": "blue"},
            "points": [
                {"timestamp": f"2025-03-{d:02d}T{h:02d}:00:00Z", "value": 100 + (d * 7 + h * 3) % 40}
                for d in range(1, 29)
                for h in (0, 12)
            ],
        },
        {
            "resource_id": EP,
            "metric": "RequestLatency_P99",
            "aggregation": "Maximum",
            "unit": "Milliseconds",
            "interval": "PT1H",
            "dimensions": {},
            "points": [{"timestamp": f"2025-03-{d:02d}T00:00:00Z", "value": 80 + d % 9 * 4} for d in range(1, 29)],
        },
    ]
    timeline = [
        {
            "endpoint_id": EP,
            "deployment_name": "blue",
            "model_asset_id": f"{WS}/models/credit-score/versions/3",
            "traffic_percent": 100,
            "from": "2025-03-01T00:00:00Z",
            "to": "2025-03-20T00:00:00Z",
        },
        {
            "endpoint_id": EP,
            "deployment_name": "blue",
            "model_asset_id": f"{WS}/models/credit-score/versions/3",
            "traffic_percent": 90,
            "from": "2025-03-20T00:00:00Z",
            "to": None,
        },
        {
            "endpoint_id": EP,
            "deployment_name": "green",
            "model_asset_id": f"{WS}/models/credit-score/versions/4",
            "traffic_percent": 10,
            "from": "2025-03-20T00:00:00Z",
            "to": None,
        },
    ]
    controls = [
        {
            "id": "MG-1",
            "title": "Deployed model versions carry an approval",
            "rationale": "A change must be approved before it serves traffic (SOC 2 CC8.1).",
            "frameworks": ["SOC 2 CC8.1", "ISO 27001 A.8.32"],
            "status": "fail",
        },
        {
            "id": "MG-2",
            "title": "Deployments are written by the release pipeline",
            "rationale": "Segregation of duties: people should not deploy directly.",
            "frameworks": ["SOC 2 CC8.1"],
            "status": "manual_review",
        },
        {
            "id": "AC-1",
            "title": "No direct user Owner assignments on workspaces",
            "rationale": "Privileged access goes through groups and PIM.",
            "frameworks": ["SOC 2 CC6.3", "ISO 27001 A.8.2"],
            "status": "fail",
        },
        {
            "id": "AC-2",
            "title": "Role assignments reviewed in the window",
            "rationale": "Quarterly access review.",
            "frameworks": [],
            "status": "not_assessed",
        },
        {
            "id": "LG-1",
            "title": "Activity Log covers the window",
            "rationale": "The population of changes must be complete.",
            "frameworks": ["EU AI Act Art. 12"],
            "status": "pass",
        },
    ]
    findings = [
        {
            "control_id": "MG-1",
            "status": "fail",
            "severity": "high",
            "subject": f"{WS}/models/credit-score/versions/4",
            "message": "credit-score:4 serves 10% of traffic on credit-score/green without an approval tag.",
            "evidence": [
                {"file": "data/records/model_versions.jsonl", "pointer": "/3/tags"},
                {"file": "data/records/deployments.jsonl", "pointer": "/1"},
            ],
        },
        {
            "control_id": "MG-1",
            "status": "pass",
            "severity": "info",
            "subject": f"{WS}/models/credit-score/versions/3",
            "message": "Approved: CAB-103.",
            "evidence": [{"file": "data/records/model_versions.jsonl", "pointer": "/2/tags"}],
        },
        {
            "control_id": "MG-2",
            "status": "manual_review",
            "severity": "medium",
            "subject": "ev-000",
            "message": f"Deployment written by a person ({PERSON}), not by the pipeline identity.",
            "evidence": [{"file": "data/records/activity_events.jsonl", "pointer": "/0"}],
        },
        {
            "control_id": "AC-1",
            "status": "fail",
            "severity": "high",
            "subject": roles[0]["assignment_id"],
            "message": "User has a direct Owner assignment on the workspace. " + XSS_SCRIPT,
            "evidence": [{"file": "data/records/role_assignments.jsonl", "pointer": "/0"}],
        },
        {
            "control_id": "LG-1",
            "status": "pass",
            "severity": "info",
            "subject": WS,
            "message": "Events found from the first to the last day of the window.",
            "evidence": [{"file": "data/records/activity_events.jsonl", "pointer": ""}],
        },
    ]
    files = [
        "data/collection.json",
        "data/records/activity_events.csv",
        "data/records/activity_events.jsonl",
        "data/records/deployments.csv",
        "data/records/deployments.jsonl",
        "data/records/model_versions.csv",
        "data/records/model_versions.jsonl",
        "data/records/role_assignments.csv",
        "data/records/role_assignments.jsonl",
    ]
    base: dict[str, Any] = {
        "kind": "audit",
        "title": "Contoso ML governance evidence, Q1 2025",
        "organisation": "Contoso Ltd",
        "scope": {"organisation": "Contoso Ltd", "subscriptions": [SUB], "workspaces": [WS, WS_DEV], "registries": []},
        "window": {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"},
        "generated_at": "2025-04-01T06:00:00Z",
        "tool_version": "0.1.0",
        "package_id": "3f" * 32,
        "signer": {
            "label": "evidence demo key",
            "fingerprint": "SHA256:q1w2e3r4t5y6u7i8o9p0AbCdEfGhIjKlMnOpQrStUvW",
            "algorithm": "ssh-ed25519",
            "insecure_demo": True,
        },
        "records": {
            "model_versions": model_versions(),
            "endpoints": [
                {
                    "endpoint_id": EP,
                    "workspace_id": WS,
                    "endpoint_name": "credit-score",
                    "auth_mode": "aad_token",
                    "provisioning_state": "Succeeded",
                    "traffic": {"blue": 90, "green": 10},
                    "mirror_traffic": {},
                }
            ],
            "deployments": deployments,
            "role_assignments": roles,
            "activity_events": events,
            "metrics": metrics,
            "serving_timeline": timeline,
        },
        "controls": controls,
        "findings": findings,
        "gaps": [
            {
                "collector": "metrics",
                "scope": WS_DEV,
                "status": 403,
                "error_code": "AuthorizationFailed",
                "message": "The client does not have authorization to perform action Microsoft.Insights/metrics/read.",
                "at": "2025-04-01T05:59:00Z",
            }
        ],
        "requests": [
            {
                "collector": "model_versions",
                "method": "GET",
                "url": f"https://management.azure.com{WS}/models",
                "api_version": "2024-04-01",
                "status": 200,
                "request_id": f"req-{i}",
                "received_at": f"2025-04-01T05:5{i}:00Z",
                "file": f"data/raw/model_versions/{i}.json",
            }
            for i in range(3)
        ]
        + [
            {
                "collector": "metrics",
                "method": "GET",
                "url": f"https://management.azure.com{WS_DEV}/metrics",
                "api_version": "2023-10-01",
                "status": 403,
                "request_id": "req-m",
                "received_at": "2025-04-01T05:59:00Z",
                "file": None,
            }
        ],
        "redactions": [
            {"file": "data/raw/endpoints/0.json", "pointer": "/properties/keys/primaryKey", "reason": "endpoint key"}
        ],
        "evidence_files": [(f, _digest(i + 1)) for i, f in enumerate(files)],
    }
    base.update(overrides)
    return ReportInput(**base)

"""EV-05 each serving endpoint has a rollback target.

A rollback target is an earlier version of the same model, in the same workspace, that is approved
(``approval_of``), still registered and not archived: the version a rollback can redeploy without
a new approval. Versions are ordered numerically when numeric (``version_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from evidence.check.approval import approval_of
from evidence.check.interface import CheckContext, Control, ControlInfo, Finding, Record, Severity, Status
from evidence.check.population import (
    gap_findings,
    has_gap,
    lower,
    model_home,
    model_version_of,
    not_collected,
    ref,
    scope_subject,
)
from evidence.collect.normalise import version_key


class RollbackTarget(Control):
    info: ClassVar[ControlInfo] = ControlInfo(
        id="EV-05",
        title="Each endpoint has a rollback target",
        rationale=(
            "A release is only as safe as the way back: an earlier approved version of the same model must "
            "still be registered and not archived, so a failed release can be reverted without an unapproved change."
        ),
        frameworks=("SOC 2 CC8.1", "SOC 2 A1.2", "ISO/IEC 27001:2022 A.8.32", "SR 11-7 (contingency)"),
    )

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        early = not_collected(self, ctx, "deployments", "model_versions")
        if early:
            return early
        findings = gap_findings(
            self, ctx, "endpoints or versions there were not assessed", "endpoints", "model_versions"
        )
        by_endpoint: dict[str, list[Record]] = {}
        for row in ctx.rows("deployments"):
            by_endpoint.setdefault(lower(row.get("endpoint_id")), []).append(row)
        for key in sorted(by_endpoint):
            rows = by_endpoint[key]
            if (
                ctx.kind == "release"
                and ctx.release_model
                and not any(r.get("model_name") == ctx.release_model for r in rows)
            ):
                continue
            findings.extend(self._endpoint(ctx, str(rows[0].get("endpoint_id")), rows))
        if not by_endpoint:
            findings.append(self.not_assessed(scope_subject(ctx), "not assessed: no online endpoints were found"))
        return findings

    def _endpoint(self, ctx: CheckContext, endpoint: str, rows: Sequence[Record]) -> list[Finding]:
        evidence = ref("endpoints", "endpoint_id", endpoint)
        serving = [r for r in rows if r.get("traffic_percent") is None or int(r["traffic_percent"]) > 0]
        if not serving:
            return [
                self.not_assessed(endpoint, "not assessed: the endpoint served no traffic at collection time", evidence)
            ]
        versions = ctx.rows("model_versions")
        newest: dict[tuple[str, str], Record] = {}
        for row in serving:
            if not row.get("model_name") or not row.get("model_version"):
                continue  # EV-04's finding
            found = model_version_of(
                versions, row.get("workspace_id"), row.get("model_asset_id"), row["model_name"], row["model_version"]
            )
            if found is None:
                continue
            key = (model_home(found), str(found.get("model_name")))  # a workspace, or a registry
            if key not in newest or version_key(str(found["version"])) > version_key(str(newest[key]["version"])):
                newest[key] = found
        if not newest:
            reason = (
                "the served model versions were not collected (model_versions has a gap)"
                if has_gap(ctx, "model_versions")
                else "no served deployment pins a collected model version (see EV-04 and EV-01)"
            )
            return [self.not_assessed(endpoint, f"not assessed: {reason}", evidence)]
        out: list[Finding] = []
        for (home, name), current in sorted(newest.items()):
            earlier = [
                v
                for v in versions
                if model_home(v) == home
                and v.get("model_name") == name
                and version_key(str(v.get("version"))) < version_key(str(current["version"]))
            ]
            usable = [v for v in earlier if not v.get("archived") and approval_of(v, ctx.policy).approved]
            refs = (evidence, ref("model_versions", "asset_id", current.get("asset_id")))
            if usable:
                target = max(usable, key=lambda v: version_key(str(v["version"])))
                out.append(
                    self.finding(
                        Status.PASS,
                        Severity.INFO,
                        endpoint,
                        f"{name} version {current['version']} can roll back to version {target['version']} "
                        "(approved, registered, not archived)",
                        *refs,
                        ref("model_versions", "asset_id", target.get("asset_id")),
                    )
                )
                continue
            why = "; ".join(
                f"version {v['version']}: " + ("archived" if v.get("archived") else "not approved") for v in earlier
            )
            out.append(
                self.finding(
                    Status.FAIL,
                    Severity.MEDIUM,
                    endpoint,
                    f"no rollback target for {name} version {current['version']}: "
                    + (why if why else "no earlier version is registered"),
                    *refs,
                )
            )
        return out

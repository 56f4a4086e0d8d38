"""The start of a release window: the version's registration, looked up through the real SDK.

Against the simulated Contoso tenant (evidence.azure.simulator): found, not registered (usage
error), and a workspace that cannot be read (could not run, with --since as the way out).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evidence.azure.clients import AzureClients
from evidence.azure.credentials import StaticCredential
from evidence.azure.simulator import Fault, SimulatedAzure, Throttle, VirtualTime, load_tenant
from evidence.azure.tap import EvidenceTap
from evidence.clock import FixedClock
from evidence.collect.release import registered_at
from evidence.config import load_config
from evidence.errors import PackageError, UsageError
from evidence.resources import bundled

SAMPLE = bundled("samples") / "contoso"


def lookup(model: str, version: str, faults: tuple[Fault, ...] = ()) -> datetime:
    tenant = load_tenant(SAMPLE / "tenant.toml")
    virtual = VirtualTime()
    simulator = SimulatedAzure(tenant, throttle=Throttle(), clock=virtual.now, sleep=virtual.sleep, faults=faults)
    tap = EvidenceTap(simulator, FixedClock(tenant.now))
    scope = load_config(SAMPLE / "evidence.toml").scope.to_scope()
    return registered_at(AzureClients(StaticCredential(), tap), tap, scope, model, version)


def test_the_registration_of_the_version_is_the_window_start() -> None:
    assert lookup("credit-risk", "4") == datetime(2026, 8, 18, 7, 45, 31, tzinfo=UTC)
    assert lookup("fraud-detector", "3").tzinfo is UTC


def test_a_version_that_is_not_registered_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="credit-risk version 9 is not registered"):
        lookup("credit-risk", "9")
    with pytest.raises(UsageError, match="no-such-model version 1"):
        lookup("no-such-model", "1")


def test_an_unreadable_workspace_cannot_fix_the_window_and_says_so() -> None:
    denied = Fault.forbidden(r"/workspaces/mlw-credit-prod/models", action="Microsoft.MachineLearningServices/read")
    with pytest.raises(PackageError, match="could not look up credit-risk version 4 in mlw-credit-prod") as caught:
        lookup("credit-risk", "4", (denied,))
    assert "--since" in caught.value.diagnostics()

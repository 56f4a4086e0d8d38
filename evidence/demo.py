"""``evidence demo``: the whole pipeline on the bundled Contoso sample tenant, fully offline.

The sample is a recording (Azure SDK test-proxy format) replayed through the real SDK pipelines;
the package is signed with the public, insecure demo key so that verification can be tried, and
the report and the verifier both say plainly that this key proves nothing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from evidence.azure.session import replay_session
from evidence.config import load_config
from evidence.pipeline import Observer, PackageRequest, PackageResult, build_package
from evidence.resources import bundled


@dataclass(frozen=True)
class DemoResult(PackageResult):
    trust_hint: str | None = None


def sample_dir() -> Path:
    return bundled("samples") / "contoso"


#: ``evidence demo --kind release`` closes out this version of the sample (registered 2026-08-18,
#: rolled out to 10 % of credit-risk-endpoint on 2026-08-24).
DEMO_RELEASE = ("credit-risk", "4")
#: The completed reviewer sheet ``evidence demo --kind access-review`` takes (one removal decided).
DEMO_DECISIONS = "decisions.csv"


def run_demo(out_dir: Path, *, kind: str = "audit", observer: Observer | None = None) -> DemoResult:
    from evidence.check.runner import default_controls
    from evidence.collect.runner import default_collectors
    from evidence.inputs import attachments
    from evidence.sign.demo import demo_key_dir, demo_signer

    sample = sample_dir()
    config = load_config(sample / "evidence.toml")
    session = replay_session(sample / "cassette")
    # Every kind uses the recording's window: a replay can only answer the requests it recorded
    # (a real release window runs from the version's registration to now; see `package --kind release`).
    release = DEMO_RELEASE if kind == "release" else (None, None)
    attached = attachments(
        waivers=Path(config.policy.waivers) if config.policy.waivers else None,
        decisions=sample / DEMO_DECISIONS if kind == "access-review" else None,
    )
    request = PackageRequest(
        scope=config.scope.to_scope(),
        window=config.window.resolve(session.clock.now()),
        out_dir=out_dir,
        kind=kind,
        mode="replay",
        policy=config.policy,
        page_size=config.output.page_size,
        release_model=release[0],
        release_version=release[1],
        release_window_start="window" if kind == "release" else None,  # the recording's window, as given
        attachments=attached,
    )
    result = build_package(
        request,
        clients=session.clients,
        tap=session.tap,
        clock=session.clock,
        collectors=default_collectors(),
        controls=default_controls(),
        signer=demo_signer(),
        observer=observer,
    )
    # The certificate travels beside the zip so the printed verify command works as given; it is
    # the demo certificate, which a real verification must never be told to trust.
    cert = next(demo_key_dir().glob("*.cert.pem"))
    target = out_dir / cert.name
    temp = target.with_name(f".{target.name}.partial")
    shutil.copyfile(cert, temp)
    os.replace(temp, target)
    fields = {name: getattr(result, name) for name in PackageResult.__dataclass_fields__}
    return DemoResult(**fields, trust_hint=str(target))

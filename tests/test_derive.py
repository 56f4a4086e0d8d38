"""derive: everything derived in a package is recomputed from its inputs alone, zip or folder.

The demo package is read back through the verifier's safe archive reader (never extracted) and
re-derived: every derived file, the package ID and the HTML report must come out byte for byte.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from evidence.cli import main
from evidence.derive import (
    COLLECTION_FILE,
    REQUEST_FILE,
    DerivationError,
    derive,
    is_derived,
    read_request,
)
from evidence.verify import OpenedPackage


class ZipReader:
    """A BagReader over an OpenedPackage, with payload-sized reads allowed."""

    def __init__(self, pkg: OpenedPackage, replace: dict[str, bytes] | None = None) -> None:
        self.pkg = pkg
        self.replace = replace or {}

    @property
    def files(self) -> Sequence[str]:
        return self.pkg.files

    def read(self, relpath: str) -> bytes:
        if relpath in self.replace:
            return self.replace[relpath]
        return self.pkg.read(relpath, max_bytes=1 << 30)


@pytest.fixture(scope="module")
def demo_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    (zip_path,) = out.glob("*.zip")
    return zip_path


def test_demo_package_records_its_inputs(demo_zip: Path) -> None:
    with OpenedPackage.open(demo_zip) as pkg:
        request = json.loads(pkg.read(REQUEST_FILE))
        assert request["kind"] == "audit"
        assert request["signer"]["insecure_demo"] is True
        assert request["window"] == json.loads(pkg.read(COLLECTION_FILE))["window"]
        assert "data/records/serving_timeline.jsonl" in pkg
        assert "data/findings.csv" in pkg
        assert read_request(ZipReader(pkg)).scope.organisation == "Contoso Ltd"


def test_rebuild_from_the_zip_is_byte_identical(demo_zip: Path) -> None:
    from evidence.render.html import render_html

    with OpenedPackage.open(demo_zip) as pkg:
        derivation = derive(ZipReader(pkg))
        stored = {f for f in pkg.files if is_derived(f)}
        assert stored == set(derivation.files)
        for path, data in derivation.files.items():
            assert pkg.read(path, max_bytes=1 << 30) == data, path
        assert derivation.package_id in pkg.read("bag-info.txt").decode()
        assert render_html(derivation.report).encode("utf-8") == pkg.read("data/report/report.html", max_bytes=1 << 30)


def test_rebuild_sees_a_changed_raw_response(demo_zip: Path) -> None:
    with OpenedPackage.open(demo_zip) as pkg:
        original = derive(ZipReader(pkg))
        raw = next(
            f
            for f in pkg.files
            if f.startswith("data/raw/model_versions/") and b"/versions/" in pkg.read(f, max_bytes=1 << 30)
        )
        body = json.loads(pkg.read(raw, max_bytes=1 << 30))
        body["value"] = body["value"][1:]  # one model version fewer
        changed = derive(ZipReader(pkg, {raw: json.dumps(body).encode()}))
    assert changed.package_id != original.package_id
    assert changed.files["data/records/model_versions.jsonl"] != original.files["data/records/model_versions.jsonl"]


def test_missing_or_malformed_inputs_are_a_derivation_error(demo_zip: Path) -> None:
    with OpenedPackage.open(demo_zip) as pkg:
        with pytest.raises(DerivationError, match=r"request\.json is malformed"):
            derive(ZipReader(pkg, {REQUEST_FILE: b'{"format": "evidence-inputs/v1", "kind": "audit"}'}))
        with pytest.raises(DerivationError, match="not valid JSON"):
            derive(ZipReader(pkg, {COLLECTION_FILE: b"{"}))

    with OpenedPackage.open(demo_zip) as pkg:
        request = json.loads(pkg.read(REQUEST_FILE))
        request["release"]["window_start"] = "guessed"
        with pytest.raises(DerivationError, match="unknown release window_start 'guessed'"):
            derive(ZipReader(pkg, {REQUEST_FILE: json.dumps(request).encode()}))

    class Without(ZipReader):
        def read(self, relpath: str) -> bytes:
            if relpath == REQUEST_FILE:
                raise KeyError(relpath)
            return super().read(relpath)

    with OpenedPackage.open(demo_zip) as pkg, pytest.raises(DerivationError, match=r"request\.json is missing"):
        derive(Without(pkg))


@pytest.mark.parametrize("start", [None, "registration", "since", "window"])
def test_request_json_round_trips_byte_for_byte(demo_zip: Path, start: str | None) -> None:
    """request.json is an input: read back and written again, it must not change (verify --rebuild)."""
    from dataclasses import replace

    with OpenedPackage.open(demo_zip) as pkg:
        request = read_request(ZipReader(pkg))
    if start is not None:
        request = replace(request, kind="release", release_model="credit-risk", release_version="4")
    request = replace(request, release_window_start=start)
    written = request.files()[REQUEST_FILE]
    assert ("window_start" in json.loads(written)["release"]) is (start is not None)

    class Only:
        files = (REQUEST_FILE,)

        def read(self, relpath: str) -> bytes:
            return written

    again = read_request(Only())
    assert again == request and again.files()[REQUEST_FILE] == written


def test_rebuild_from_an_extracted_folder(demo_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(demo_zip) as zf:
        zf.extractall(tmp_path)  # our own package, just written: safe to extract in a test
    (bag,) = tmp_path.iterdir()
    derivation = derive(bag)
    for path, data in derivation.files.items():
        assert (bag / path).read_bytes() == data, path


def test_importing_derive_does_not_import_azure() -> None:
    import subprocess

    code = (
        "import sys, evidence.derive\n"
        "bad = sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

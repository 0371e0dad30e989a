"""byoc.sbom without Docker: the artifact manifest, and a report that never passes what it
did not scan (a trivy that fails stands in for one without its database)."""

from __future__ import annotations

import hashlib
import json
import stat

from byoc import sbom


def fake_trivy(tmp_path, script: str) -> str:
    path = tmp_path / "trivy"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def made_sbom(tmp_path) -> sbom.Sbom:
    path = tmp_path / "x.cdx.json"
    path.write_text(json.dumps({"bomFormat": "CycloneDX", "components": []}))
    return sbom.Sbom(path, 0, 0, 0, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())


def test_no_database_is_not_checked_never_a_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_TRIVY", fake_trivy(
        tmp_path, 'echo "FATAL init error: DB error: failed to download vulnerability DB" >&2\n'
                  "exit 1\n"))
    monkeypatch.setenv("BYOC_TRIVY_CACHE", str(tmp_path / "cache"))
    report = sbom.vulnerability_report(made_sbom(tmp_path), tmp_path / "v.json")
    assert report.status == "not checked" and report.findings is None
    assert "failed to download vulnerability DB" in report.detail


def test_a_scan_counts_its_findings(tmp_path, monkeypatch):
    result = {"Results": [{"Packages": [{}, {}], "Vulnerabilities": [{"VulnerabilityID": "X"}]}]}
    monkeypatch.setenv("BYOC_TRIVY", fake_trivy(tmp_path, (
        'while [ "$1" != "--output" ]; do shift; done\n'
        f"echo '{json.dumps(result)}' > \"$2\"\n")))
    report = sbom.vulnerability_report(made_sbom(tmp_path), tmp_path / "v.json")
    assert (report.status, report.findings) == ("checked", 1)
    assert "not seen" in report.detail


def test_artifact_manifest_refers_to_the_image(tmp_path):
    made = made_sbom(tmp_path)
    manifest = json.loads(sbom.oci_artifact_manifest(made, "sha256:" + "a" * 64,
                                                     "application/vnd.docker.distribution"
                                                     ".manifest.v2+json", 1234))
    assert manifest["artifactType"] == sbom.CYCLONEDX_MEDIA_TYPE
    assert manifest["subject"] == {"mediaType": "application/vnd.docker.distribution"
                                                ".manifest.v2+json",
                                   "digest": "sha256:" + "a" * 64, "size": 1234}
    assert manifest["layers"][0]["digest"] == made.digest
    assert manifest["config"]["digest"] == sbom.EMPTY_DIGEST
    assert sbom.artifact_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64 + ".sbom"

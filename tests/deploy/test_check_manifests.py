"""The manifest checks pass on the manifests as shipped, and fail on broken copies of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy import check_manifests
from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (apt-get install kubectl)"
)
CHECKOV = ROOT / ".venv-deploy" / "bin" / "checkov"
needs_checkov = pytest.mark.skipif(
    not CHECKOV.exists(), reason="checkov is not installed (`make manifests` installs it)"
)
DEPLOYMENT = "k8s/base/deployment.yaml"
ISVC = "kserve/inferenceservice.yaml"


def _copy(tmp_path: Path, file: str | None = None, old: str = "", new: str = "") -> Path:
    """deploy/ copied, with `old` replaced by `new` once in `file`."""
    root = tmp_path / "deploy"
    for part in ("k8s", "kserve"):
        shutil.copytree(check_manifests.DEPLOY / part, root / part)
    if file is not None:
        text = (root / file).read_text()
        assert old in text, f"{old!r} not in {file}"
        (root / file).write_text(text.replace(old, new, 1))
    return root


def _check(root: Path) -> tuple[dict, list[str]]:
    return check_manifests.check(root / "k8s" / "overlays", root / "kserve")


def test_shipped_manifests_render_and_validate() -> None:
    rendered, findings = check_manifests.check()
    assert findings == []
    assert set(rendered) == {
        "k8s-cpu.yaml", "k8s-gpu.yaml", "k8s-queue-scaling.yaml", "kserve-inferenceservice.yaml"
    }  # fmt: skip
    kinds = {o["kind"] for o in rendered["k8s-cpu.yaml"]}
    assert kinds == {
        "Namespace", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
        "NetworkPolicy",
    }  # fmt: skip
    gpu = next(o for o in rendered["k8s-gpu.yaml"] if o["kind"] == "Deployment")
    container = gpu["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "MAX_BATCH_SIZE", "value": "128"} in container["env"]


@pytest.mark.parametrize(
    ("file", "old", "new", "finding"),
    [
        (DEPLOYMENT, "readinessProbe:", "readynessProbe:", "readynessProbe"),
        (DEPLOYMENT, "containerPort: 8000", "containerPort: eighty", "eighty"),
        ("k8s/base/service.yaml", "port: 80\n", "port: \"80\"\n", "is not of type"),
        ("k8s/base/kustomization.yaml", "- service.yaml", "- services.yaml", "kustomize"),
        (ISVC, "minReplicas: 1", "minReplica: 1", "minReplica: unknown field"),
        (ISVC, "containerPort: 8000", 'containerPort: "8000"', "int expected"),
        (ISVC, "path: /health/live", "path: /healthz", "livenessProbe"),
    ],
    ids=["misspelt-field", "port-not-a-number", "port-a-string", "missing-file",
         "isvc-unknown-field", "isvc-wrong-type", "isvc-probe-drift"],
)  # fmt: skip
def test_a_broken_manifest_is_a_finding(
    tmp_path: Path, file: str, old: str, new: str, finding: str
) -> None:
    _, findings = _check(_copy(tmp_path, file, old, new))
    assert any(finding in f for f in findings), findings


@pytest.mark.slow  # checkov scans every rendering, 3-4 s each
@needs_checkov
@pytest.mark.parametrize(
    ("old", "new"),
    [("", ""), ("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"),
     ("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true")],
    ids=["as-shipped", "writable-root", "privilege-escalation"],
)  # fmt: skip
def test_checkov_passes_as_shipped_and_fails_when_weakened(
    tmp_path: Path, old: str, new: str
) -> None:
    root = _copy(tmp_path, DEPLOYMENT if old else None, old, new)
    rendered, findings = _check(root)
    assert findings == []  # still valid Kubernetes: only the security scan can object
    status = check_manifests.run_checkov(str(CHECKOV), rendered)
    assert (status == 0) == (old == "")

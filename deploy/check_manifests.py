"""Check the deployment manifests without a cluster:

    python -m deploy.check_manifests [--checkov PATH] [--kubernetes-version 1.33]

1. `kubectl kustomize` renders every overlay under deploy/k8s/overlays;
2. every rendered object validates against the Kubernetes OpenAPI schemas of that version
   (kubernetes-validate, strict: an unknown field is an error);
3. the KServe InferenceService validates against KServe's API types as its Python SDK defines
   them (generated from the CRD's OpenAPI schema): unknown fields, wrong types and missing
   required fields are errors, down to the Kubernetes types of its containers;
4. the InferenceService's container probes are the Kubernetes Deployment's (one source);
5. with --checkov, checkov scans everything rendered; the checks it may skip, each with its
   reason, are in deploy/.checkov.yaml (and deploy/README.md).

Prints one line per object and exits 1 on any finding. Without kubectl it says so and exits 0
(CI installs it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
OVERLAYS = DEPLOY / "k8s" / "overlays"
KSERVE = DEPLOY / "kserve"
CHECKOV_CONFIG = DEPLOY / ".checkov.yaml"
KUBERNETES_VERSION = "1.33"  # a version every current managed Kubernetes offers
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def render(overlay: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from an overlay."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ValueError(f"kubectl kustomize {overlay.name} failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kubernetes_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Schema errors of one built-in Kubernetes object (none when it validates)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(top level)"
        return [f"{where}: {exc.message}"]
    except kubernetes_validate.utils.SchemaNotFoundError as exc:
        return [f"no Kubernetes {version} schema for {exc}"]
    return []


# --- KServe: its SDK's generated API types --------------------------------------------------

# The two generators spell containers differently: list[X] and dict(str, X) (KServe),
# List[X] and Dict[str, X] (Kubernetes).
_LIST = re.compile(r"^list\[(.+)\]$", re.IGNORECASE)
_DICT = re.compile(r"^dict[(\[]str, (.+)[)\]]$", re.IGNORECASE)
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
    "object": (object,),
}


def _model_class(name: str) -> type | None:
    import kserve.models
    import kubernetes.client.models

    return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name, None)


def sdk_type_errors(value: Any, type_name: str, path: str = "") -> Iterator[str]:
    """Where `value` departs from the SDK type `type_name` ('V1beta1InferenceService',
    'list[V1Container]', 'dict(str, str)', 'int', ...): unknown fields, wrong types, missing
    required fields."""
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            yield f"{path}: a list expected, got {type(value).__name__}"
            return
        for i, item in enumerate(value):
            yield from sdk_type_errors(item, m.group(1), f"{path}[{i}]")
        return
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            yield f"{path}: a mapping expected, got {type(value).__name__}"
            return
        for key, item in value.items():
            yield from sdk_type_errors(item, m.group(1), f"{path}.{key}")
        return
    if type_name in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        if not ok:
            yield f"{path}: {type_name} expected, got {value!r}"
        return
    cls = _model_class(type_name)
    if cls is None:
        yield f"{path}: the SDKs have no type {type_name}"
        return
    if not isinstance(value, dict):
        yield f"{path}: an object ({type_name}) expected, got {type(value).__name__}"
        return
    fields = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in fields:
            yield f"{path}.{key}: unknown field of {type_name}"
        else:
            yield from sdk_type_errors(item, cls.openapi_types[fields[key]], f"{path}.{key}")
    # Required fields: the generated constructors refuse None for them.
    try:
        cls(**{fields[k]: v for k, v in value.items() if k in fields})
    except ValueError as exc:
        yield f"{path or type_name}: {exc}"


def inference_service_errors(obj: dict[str, Any]) -> list[str]:
    if obj.get("apiVersion") != "serving.kserve.io/v1beta1":
        return [f"apiVersion {obj.get('apiVersion')!r}: serving.kserve.io/v1beta1 expected"]
    return list(sdk_type_errors(obj, "V1beta1InferenceService"))


def probe_drift(deployment: dict[str, Any], service: dict[str, Any]) -> list[str]:
    """Probes of the InferenceService's container that differ from the Deployment's."""
    ours = deployment["spec"]["template"]["spec"]["containers"][0]
    theirs = service["spec"]["predictor"]["containers"][0]
    return [
        f"{probe}: {theirs.get(probe)} in the InferenceService, {ours.get(probe)} in the base"
        for probe in PROBES
        if theirs.get(probe) != ours.get(probe)
    ]


# --- the whole check ------------------------------------------------------------------------


def check(
    overlays: Path = OVERLAYS, kserve: Path = KSERVE, version: str = KUBERNETES_VERSION
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Render and validate everything: (rendered objects per file name, findings)."""
    findings: list[str] = []
    rendered: dict[str, list[dict[str, Any]]] = {}
    for overlay in sorted(p for p in overlays.iterdir() if (p / "kustomization.yaml").exists()):
        try:
            objects = render(overlay)
        except ValueError as exc:
            findings.append(str(exc))
            continue
        rendered[f"k8s-{overlay.name}.yaml"] = objects
        for obj in objects:
            name = f"{overlay.name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            errors = kubernetes_errors(obj, version)
            findings += [f"{name}: {e}" for e in errors]
            print(f"{'FAIL' if errors else 'ok  '} {name} (Kubernetes {version} schema)")
    # The Deployment whose probes the InferenceService must repeat.
    base = next((o for o in rendered.get("k8s-cpu.yaml", []) if o["kind"] == "Deployment"), None)
    for path in sorted(kserve.glob("*.yaml")):
        objects = [d for d in yaml.safe_load_all(path.read_text()) if d]
        rendered[f"kserve-{path.name}"] = objects
        for obj in objects:
            name = f"{path.name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            errors = inference_service_errors(obj)
            if base is not None and not errors:
                errors += probe_drift(base, obj)
            findings += [f"{name}: {e}" for e in errors]
            print(f"{'FAIL' if errors else 'ok  '} {name} (KServe API types, probes as the base)")
    return rendered, findings


def run_checkov(checkov: str, rendered: dict[str, list[dict[str, Any]]]) -> int:
    """checkov over the rendered manifests; its exit status."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, objects in rendered.items():
            Path(tmp, name).write_text(yaml.safe_dump_all(objects, sort_keys=False))
        cmd = [checkov, "--config-file", str(CHECKOV_CONFIG), "--directory", tmp]
        # BC_SKIP_MAPPING: no attempt to fetch check names from the vendor's API (no network).
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
        return subprocess.run(cmd, check=False, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkov", help="checkov executable: also run the security scan")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    if shutil.which("kubectl") is None:
        print("skipped: kubectl is not installed (CI installs it: apt-get install kubectl)")
        return 0
    rendered, findings = check(version=args.kubernetes_version)
    for finding in findings:
        print(f"finding: {finding}", file=sys.stderr)
    status = 1 if findings else 0
    if args.checkov and run_checkov(args.checkov, rendered) != 0:
        status = 1
    print("manifests: " + ("FAILED" if status else "all checks passed"))
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Offline checks of KubeRay manifests (RayCluster, RayJob) for tests/test_kuberay.py.

Two layers, both returning problems as "<where>: <what> (<how to fix>)":
- `schema_problems`: the CRD's OpenAPI v3 schema (from ../shared/kuberay/), made strict the way
  `kubectl apply` (server-side field validation, Strict) is: unknown fields are errors.
- `semantic_problems`: what the schema cannot say. KubeRay's own rules (its controller's
  validation.go, as listed in shared/kuberay/README.md) and this project's (no literal
  credentials, GPU groups take their GPUs from limits, /dev/shm for the object store, ...).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
GPU = "nvidia.com/gpu"
MAX_CLUSTER_NAME = 53  # KubeRay: a RayCluster's name makes Service/Pod names
# a RayJob's cluster is named `<job>-<5 random characters>`
MAX_JOB_NAME = MAX_CLUSTER_NAME - 6
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|CREDENTIAL|ACCESS_KEY|API_KEY)", re.I)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE])?$")
_FACTORS = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "P": 1e15, "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
            "Pi": 2**50, "Ei": 2**60}


def find_crd_dir(root: Path) -> Path | None:
    """`shared/kuberay` beside the project root (`../shared/kuberay`), in it, or beside one of
    its parents (a worktree below the main checkout); None when there is none."""
    for base in (root, *root.parents):
        cand = base / "shared" / "kuberay"
        if all((cand / name).is_file() for name in CRD_FILES.values()):
            return cand
    return None


def load_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)


def load_schema(crd_dir: Path, kind: str) -> dict[str, Any]:
    """The strict v1 OpenAPI schema of `kind` from its CRD file."""
    crd = load_yaml(crd_dir / CRD_FILES[kind])
    assert crd["spec"]["names"]["kind"] == kind, f"{crd_dir}: not the {kind} CRD"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(v1["schema"]["openAPIV3Schema"])
    _strict(schema)
    return schema


def _strict(node: Any) -> None:
    """Unknown fields become errors (the API server prunes them silently otherwise, and
    `kubectl apply` rejects them): `additionalProperties: false` wherever fields are listed
    and unknown ones are not explicitly kept."""
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


def schema_problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "<document>"
        out.append(f"{where}: {err.message} (the {doc.get('kind')} CRD schema)")
    return out


def quantity(value: Any) -> float:
    """A Kubernetes quantity ("560Gi", "500m", 8) as a number; ValueError when malformed."""
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(m.group(1)) * _FACTORS[m.group(2) or ""]


def _qty(value: Any) -> float:
    """`quantity`, or 0 for a malformed one (the schema layer reports those)."""
    try:
        return quantity(value)
    except ValueError:
        return 0.0


def _groups(spec: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    yield f"{where}.headGroupSpec", spec.get("headGroupSpec") or {}, True
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        yield f"{where}.workerGroupSpecs[{i}]", group, False


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(node, str):
        yield where, node


def _name_problems(doc: dict[str, Any]) -> list[str]:
    name = str((doc.get("metadata") or {}).get("name", ""))
    limit = MAX_CLUSTER_NAME if doc.get("kind") == "RayCluster" else MAX_JOB_NAME
    out = []
    if not _DNS_1035.match(name):
        out.append(f"metadata.name: {name!r} is not a DNS-1035 label (lower-case letters, "
                   "digits and '-', starting with a letter)")
    if len(name) > limit:
        out.append(f"metadata.name: {len(name)} characters, at most {limit} for a "
                   f"{doc.get('kind')} (shorten it)")
    return out


def _credential_problems(doc: dict[str, Any]) -> list[str]:
    out = []
    for where, text in _strings(doc, "<document>"):
        if _AWS_KEY_ID.search(text):
            out.append(f"{where}: a literal AWS access key id (put credentials in a Secret, "
                       "read them through env valueFrom.secretKeyRef)")
    return out


def _env_problems(pod: dict[str, Any], where: str) -> list[str]:
    out = []
    for c in _containers(pod):
        for e in c.get("env") or []:
            name = str(e.get("name", ""))
            if _SECRET_NAME.search(name) and "value" in e:
                out.append(f"{where}.containers[{c.get('name')}].env[{name}]: a literal value "
                           "for a credential (use valueFrom.secretKeyRef on a Secret)")
    return out


def _group_problems(group: dict[str, Any], where: str, head: bool) -> list[str]:
    out = []
    params = group.get("rayStartParams") or {}
    for key, value in params.items():
        if not isinstance(value, str):
            out.append(f"{where}.rayStartParams.{key}: {value!r} is a {type(value).__name__}; "
                       f"rayStartParams values are strings (write {key}: \"{value}\")")
    pod = (group.get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or []
    if not containers:
        out.append(f"{where}.template.spec.containers: no container (a group needs its Ray "
                   "container)")
        return out
    ray_c = containers[0]
    limits = (ray_c.get("resources") or {}).get("limits") or {}
    gpus = _qty(limits.get(GPU, 0))
    if "num-gpus" in params and gpus > 0:
        out.append(f"{where}.rayStartParams.num-gpus: set beside resources.limits[{GPU}]; KubeRay "
                   "takes the GPUs from the limit (remove num-gpus)")
    if "num-gpus" in params and gpus == 0 and _float(params["num-gpus"]) > 0:
        out.append(f"{where}.rayStartParams.num-gpus: GPUs without resources.limits[{GPU}] (ask "
                   "Kubernetes for them in the container's limits, not in num-gpus)")
    wants_gpu_nodes = any(t.get("key") == GPU for t in pod.get("tolerations") or []) or any(
        "gpu" in f"{k}={v}".lower() or "accelerator" in k.lower()
        for k, v in (pod.get("nodeSelector") or {}).items())
    if head and gpus > 0:
        out.append(f"{where}: the head asks for GPUs (keep GPUs on worker groups; set "
                   "num-gpus: \"0\")")
    if not head and wants_gpu_nodes and gpus == 0:
        out.append(f"{where}: a GPU worker group (GPU node selector/toleration) without "
                   f"resources.limits[{GPU}] in its Ray container (add the limit)")
    out += _shm_problems(pod, ray_c, params, limits, where)
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _shm_problems(pod: dict[str, Any], ray_c: dict[str, Any], params: dict[str, Any],
                  limits: dict[str, Any], where: str) -> list[str]:
    """Ray's object store lives in /dev/shm: a Memory emptyDir at least as large as it."""
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("mountPath"): m.get("name") for m in ray_c.get("volumeMounts") or []}
    shm = volumes.get(mounts.get("/dev/shm"), {}).get("emptyDir")
    if shm is None or shm.get("medium") != "Memory":
        return [f"{where}: no /dev/shm from an emptyDir with medium: Memory in the Ray "
                "container (the container's default /dev/shm is 64 MiB: Ray's object store "
                "would fall back to disk)"]
    out = []
    store = params.get("object-store-memory")
    if store is not None and "sizeLimit" in shm:
        if _float(store) > _qty(shm["sizeLimit"]):
            out.append(f"{where}.rayStartParams.object-store-memory: {store} bytes, more than "
                       f"the /dev/shm sizeLimit {shm['sizeLimit']} (enlarge the volume)")
        if "memory" in limits and _float(store) >= _qty(limits["memory"]):
            out.append(f"{where}.rayStartParams.object-store-memory: {store} bytes, not less "
                       f"than the memory limit {limits['memory']}")
    return out


def _replica_problems(group: dict[str, Any], where: str) -> list[str]:
    lo, hi, n = group.get("minReplicas", 0), group.get("maxReplicas", 0), group.get("replicas")
    out = [f"{where}.{key}: {value} is negative" for key, value in
           (("minReplicas", lo), ("maxReplicas", hi), ("replicas", n))
           if isinstance(value, int) and value < 0]
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        out.append(f"{where}: minReplicas {lo} > maxReplicas {hi}")
    if isinstance(n, int) and isinstance(lo, int) and isinstance(hi, int) and not lo <= n <= hi:
        out.append(f"{where}.replicas: {n} outside [minReplicas {lo}, maxReplicas {hi}]")
    return out


def semantic_problems(doc: Any) -> list[str]:
    """KubeRay's semantic rules and the project's, for a RayCluster or a RayJob."""
    if not isinstance(doc, dict) or doc.get("kind") not in CRD_FILES:
        return [f"<document>: kind {doc.get('kind') if isinstance(doc, dict) else doc!r} is "
                f"not one of {sorted(CRD_FILES)}"]
    out = _name_problems(doc) + _credential_problems(doc)
    spec = doc.get("spec") or {}
    where = "spec"
    if doc["kind"] == "RayJob":
        if not spec.get("entrypoint"):
            out.append("spec.entrypoint: empty (the command the job runs)")
        if "rayClusterSpec" not in spec:
            return out  # a job for an existing cluster (clusterSelector)
        spec, where = spec["rayClusterSpec"], "spec.rayClusterSpec"
    names = [g.get("groupName") for g in spec.get("workerGroupSpecs") or []]
    out += [f"{where}.workerGroupSpecs: groupName {n!r} used twice" for n in set(names)
            if names.count(n) > 1]
    for gwhere, group, head in _groups(spec, where):
        out += _group_problems(group, gwhere, head)
        out += _env_problems((group.get("template") or {}).get("spec") or {}, gwhere)
        if not head:
            out += _replica_problems(group, gwhere)
    return out


def problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    return schema_problems(doc, schema) + semantic_problems(doc)

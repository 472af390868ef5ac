"""`ray-cluster.yaml` and `k8s/rayjob-train.yaml` validate offline against KubeRay's CRD schemas
(`../shared/kuberay/`) and its semantic rules (tests/_kuberay.py), describe the cluster the
project needs, and agree with the Dockerfile, constraints.txt and jobs.train; manifests that
break a rule are rejected with a message that names the rule."""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _kuberay as kr
import pytest

pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "ray-cluster.yaml"
JOB_YAML = ROOT / "k8s" / "rayjob-train.yaml"


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    crd_dir = kr.find_crd_dir(ROOT)
    if crd_dir is None:
        pytest.skip(f"no shared/kuberay/ with the KubeRay CRDs beside {ROOT} or its parents "
                    "(CI has shared/ beside the clone)")
    return {kind: kr.load_schema(crd_dir, kind) for kind in kr.CRD_FILES}


@pytest.fixture
def cluster() -> dict[str, Any]:
    return kr.load_yaml(CLUSTER_YAML)


@pytest.fixture
def job() -> dict[str, Any]:
    return kr.load_yaml(JOB_YAML)


def _ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("path", [CLUSTER_YAML, JOB_YAML], ids=["raycluster", "rayjob"])
def test_manifest_is_valid(schemas: dict[str, Any], path: Path) -> None:
    doc = kr.load_yaml(path)
    assert doc["apiVersion"] == "ray.io/v1"
    assert kr.problems(doc, schemas[doc["kind"]]) == []


def test_cluster_has_a_cpu_head_and_8xa100_workers(cluster: dict[str, Any]) -> None:
    spec = cluster["spec"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    head_c = _ray_container(head)
    assert kr.GPU not in head_c["resources"].get("limits", {})
    assert {"containerPort": 8265, "name": "dashboard"} in head_c["ports"]
    (gpu,) = [g for g in spec["workerGroupSpecs"]
              if kr.GPU in _ray_container(g)["resources"]["limits"]]
    res = _ray_container(gpu)["resources"]
    assert kr.quantity(res["limits"][kr.GPU]) == 8
    assert kr.quantity(res["limits"]["cpu"]) >= 64
    assert kr.quantity(res["limits"]["memory"]) >= 256 * 2**30
    pod = gpu["template"]["spec"]
    assert {"key": kr.GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"]
    # autoscaling between bounds
    assert spec["enableInTreeAutoscaling"] is True
    assert 1 <= gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"] == 8


def test_gpu_workers_mount_shm_and_a_local_nvme_cache(cluster: dict[str, Any]) -> None:
    (gpu,) = cluster["spec"]["workerGroupSpecs"]
    pod = gpu["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _ray_container(gpu)["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    cache = volumes[mounts["/nvme/plane"]]["emptyDir"]
    assert "medium" not in cache  # on the node's disk (its NVMe), not in memory
    storage = _ray_container(gpu)["resources"]["requests"]["ephemeral-storage"]
    assert kr.quantity(storage) >= kr.quantity(cache["sizeLimit"])


def test_s3_credentials_come_from_a_secret(cluster: dict[str, Any]) -> None:
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        env = {e["name"]: e for e in _ray_container(group)["env"]}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "tensorplane-s3", "key": name}
            assert "value" not in env[name]


def test_rayjob_runs_the_cluster_of_ray_cluster_yaml(cluster: dict[str, Any],
                                                     job: dict[str, Any]) -> None:
    """One shape, two entry points: the RayJob's pod templates are ray-cluster.yaml's."""
    mine, theirs = job["spec"]["rayClusterSpec"], cluster["spec"]
    assert mine["headGroupSpec"] == theirs["headGroupSpec"]
    assert [g["template"] for g in mine["workerGroupSpecs"]] == \
           [g["template"] for g in theirs["workerGroupSpecs"]]
    assert mine["rayVersion"] == theirs["rayVersion"]
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def _assert_jobs_train_parses(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m jobs.train <args>`: every flag exists (jobs.train's own argparse)."""
    ray = pytest.importorskip("ray")
    from jobs import train

    assert argv[:3] == ["python", "-m", "jobs.train"], argv

    class Parsed(Exception):
        pass

    def stop(*args: Any, **kwargs: Any) -> None:
        raise Parsed  # main() calls ray.init() right after parsing its arguments

    with monkeypatch.context() as mp:
        mp.setattr(ray, "init", stop)
        with pytest.raises(Parsed):
            train.main(argv[3:])


def test_rayjob_entrypoint_is_a_valid_jobs_train_command(
        job: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(job["spec"]["entrypoint"])
    _assert_jobs_train_parses(argv, monkeypatch)
    assert "--gpu" in argv and argv[argv.index("--dataset") + 1].startswith("s3://")


def test_readme_job_submit_commands_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README promises no flag that jobs.train does not have."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    commands = [line.split(" -- ", 1)[1] for line in text.splitlines()
                if line.lstrip().startswith("ray job submit") and "jobs.train" in line]
    assert len(commands) >= 2, "README: the `ray job submit ... jobs.train` commands"
    for command in commands:
        _assert_jobs_train_parses(shlex.split(command), monkeypatch)


def test_ray_version_agrees_across_image_yaml_and_constraints(cluster: dict[str, Any],
                                                              job: dict[str, Any]) -> None:
    docker = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\d+\.\d+\.\d+)-", docker, re.M)
    assert base, "Dockerfile: no ARG RAY_IMAGE=rayproject/ray:<version>-..."
    pin = re.search(r"^ray==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pin, "constraints.txt: no ray pin"
    assert cluster["spec"]["rayVersion"] == base.group(1) == pin.group(1)
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == pin.group(1)
    for group in [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]:
        image = _ray_container(group)["image"]
        assert not image.startswith("rayproject/"), "the image must have the project installed"
        assert image.endswith(f"-ray{pin.group(1)}"), image


def test_dockerfile_installs_the_project_with_its_cluster_extras() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    m = re.search(r'pip install[^\n]*-c constraints\.txt "\.\[([a-z0-9,]+)\]"', docker)
    assert m, "Dockerfile: no `pip install -c constraints.txt \".[extras]\"`"
    assert {"ray", "s3", "index", "media", "torch"} <= set(m.group(1).split(","))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


# -- manifests that break a rule ------------------------------------------------------------


def _worker(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["workerGroupSpecs"][0]


def _set_env(doc: dict[str, Any], name: str, value: str) -> None:
    c = _ray_container(_worker(doc))
    c["env"] = [e for e in c["env"] if e["name"] != name] + [{"name": name, "value": value}]


def _no_gpu_limit(doc: dict[str, Any]) -> None:
    res = _ray_container(_worker(doc))["resources"]
    del res["limits"][kr.GPU], res["requests"][kr.GPU]


def _no_shm(doc: dict[str, Any]) -> None:
    c = _ray_container(_worker(doc))
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["mountPath"] != "/dev/shm"]


Mutation = Callable[[dict[str, Any]], None]
BROKEN: dict[str, tuple[Mutation, str]] = {
    "aws-secret-as-value": (lambda d: _set_env(d, "AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
                            "env[AWS_SECRET_ACCESS_KEY]: a literal value for a credential"),
    "gpu-group-without-gpu-limit": (_no_gpu_limit, "GPU worker group"),
    "num-gpus-beside-the-limit": (
        lambda d: _worker(d)["rayStartParams"].update({"num-gpus": "8"}),
        "rayStartParams.num-gpus: set beside resources.limits[nvidia.com/gpu]"),
    "gpus-from-num-gpus-only": (
        lambda d: (_no_gpu_limit(d), _worker(d)["rayStartParams"].update({"num-gpus": "8"})),
        "GPUs without resources.limits"),
    "head-with-gpus": (
        lambda d: _ray_container(d["spec"]["headGroupSpec"])["resources"]["limits"].update(
            {kr.GPU: 1}), "the head asks for GPUs"),
    "name-too-long": (lambda d: d["metadata"].update(name="t" * 54), "at most 53"),
    "name-not-dns-1035": (lambda d: d["metadata"].update(name="Tensor_Plane"), "DNS-1035"),
    "min-above-replicas": (lambda d: _worker(d).update(minReplicas=2, replicas=1),
                           "replicas: 1 outside [minReplicas 2"),
    "min-above-max": (lambda d: _worker(d).update(minReplicas=9), "minReplicas 9 > maxReplicas 8"),
    "negative-replicas": (lambda d: _worker(d).update(minReplicas=-1), "-1 is negative"),
    "no-container": (lambda d: _worker(d)["template"]["spec"].update(containers=[]),
                     "no container"),
    "non-string-ray-start-param": (
        lambda d: _worker(d)["rayStartParams"].update({"object-store-memory": 10**9}),
        "rayStartParams values are strings"),
    "no-dev-shm": (_no_shm, "no /dev/shm"),
    "object-store-above-shm": (
        lambda d: _worker(d)["rayStartParams"].update({"object-store-memory": str(200 << 30)}),
        "more than the /dev/shm sizeLimit"),
    "duplicate-group": (lambda d: d["spec"]["workerGroupSpecs"].append(
        copy.deepcopy(_worker(d))), "groupName 'a100x8' used twice"),
    "unknown-field": (lambda d: _worker(d)["template"]["spec"].update(nodeselector={"a": "b"}),
                      "'nodeselector' was unexpected"),
    "malformed-quantity": (
        lambda d: _ray_container(_worker(d))["resources"]["limits"].update(memory="560GB"),
        "does not match"),
    "wrong-type": (lambda d: d["spec"].update(enableInTreeAutoscaling="yes"),
                   "'yes' is not of type 'boolean'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_cluster_is_rejected(schemas: dict[str, Any], cluster: dict[str, Any],
                                    case: str) -> None:
    mutate, expected = BROKEN[case]
    mutate(cluster)
    found = kr.problems(cluster, schemas["RayCluster"])
    assert any(expected in p for p in found), found


def test_literal_aws_key_in_the_yaml_is_rejected(schemas: dict[str, Any]) -> None:
    """The YAML text as someone would write it: the key id pasted in place of the Secret."""
    text = CLUSTER_YAML.read_text()
    ref = ("                valueFrom:\n"
           "                  secretKeyRef: {name: tensorplane-s3, key: AWS_ACCESS_KEY_ID}\n")
    assert ref in text
    doc = kr.yaml.safe_load(text.replace(ref, "                value: AKIAIOSFODNN7EXAMPLE\n"))
    found = kr.problems(doc, schemas["RayCluster"])
    assert any("a literal AWS access key id" in p for p in found), found
    assert any("env[AWS_ACCESS_KEY_ID]: a literal value" in p for p in found), found


def test_broken_rayjob_is_rejected(schemas: dict[str, Any], job: dict[str, Any]) -> None:
    job["spec"]["entrypoint"] += " --storage-path s3://AKIAIOSFODNN7EXAMPLE:x@bucket/r"
    job["metadata"]["name"] = "j" * 48  # its cluster would be named j...j-xxxxx: 54
    _no_gpu_limit({"spec": job["spec"]["rayClusterSpec"]})
    found = kr.problems(job, schemas["RayJob"])
    for expected in ("spec.entrypoint: a literal AWS access key id", "at most 47",
                     "spec.rayClusterSpec.workerGroupSpecs[0]: a GPU worker group"):
        assert any(expected in p for p in found), (expected, found)


def test_missing_crd_folder_is_reported_as_none(tmp_path: Path) -> None:
    """The skip reason's condition: no shared/kuberay/ anywhere above -> None, not an error
    (above the test's tmp dir there is none, unless the machine has one higher up)."""
    above = kr.find_crd_dir(tmp_path.parent)
    assert kr.find_crd_dir(tmp_path / "repo") == above
    crds = tmp_path / "shared" / "kuberay"
    crds.mkdir(parents=True)
    (crds / "ray.io_rayclusters.yaml").write_text("x")
    assert kr.find_crd_dir(tmp_path / "repo") != crds  # one file is not the folder
    (crds / "ray.io_rayjobs.yaml").write_text("x")
    assert kr.find_crd_dir(tmp_path / "repo") == crds

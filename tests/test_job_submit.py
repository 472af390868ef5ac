"""`ray job submit --working-dir . -- python -m jobs.train ...` end to end, as on Kubernetes after
`kubectl port-forward svc/<cluster>-head-svc 8265`, against a local head this module starts.

The head is a `ray start --head` with the dashboard (the job-submission server, from
`ray[default]`) on free ports, its own `--temp-dir` and its own auth token, started in a new
session: `ray.init()` elsewhere in the test session never finds it (it records its address only
in its own temp dir), and teardown ends exactly the processes of that session (never `ray stop`,
which would end every Ray instance on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane

pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip(
    "aiohttp_cors",
    reason="the Ray job-submission server needs ray[default] (the project's `ray` extra)")
psutil = pytest.importorskip("psutil")
pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="the head's processes are found through Linux sessions"),
]

ROOT = Path(__file__).resolve().parents[1]
N, PER_CHUNK, CLASSES = 96, 40, 3
_MARKER = "TENSORPLANE_TEST_RAY_HEAD"


@dataclass(frozen=True)
class Head:
    dashboard: str  # http://127.0.0.1:<port>, what `ray job submit --address` takes
    env: dict[str, str]  # the environment a client of this head needs (its auth token)
    temp_dir: Path


def _ray_cli() -> list[str]:
    """The `ray` command of the interpreter running the tests."""
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _head_processes(sid: int, marker: str) -> list[Any]:
    """Processes of the head's session, plus any that carry its marker in their environment
    (the job driver runs in a session of its own)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and (
                    os.getsid(proc.pid) == sid or proc.environ().get(_MARKER) == marker):
                found.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue  # gone, or not ours
    return found


def _stop_head(sid: int, marker: str) -> None:
    procs = _head_processes(sid, marker)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=3)  # gcs_server and raylet may linger
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    # a short path: Ray's unix sockets live under it (at most 107 bytes)
    temp_dir = Path(tempfile.mkdtemp(prefix="tp-ray-", dir="/tmp"))
    marker = secrets.token_hex(8)
    # no PYTHONPATH: the job imports the project from its uploaded working dir, as on a cluster
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH",
                        "PYTHONPATH")}
    env.update({
        # the job's `python` is this interpreter
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "RAY_AUTH_MODE": "token",  # as KubeRay's `authOptions: {mode: token}` sets it
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        _MARKER: marker,
    })
    gcs, dash, client, agent = _free_ports(4)
    # a new session: `ray start` leads it (session id = its pid) and every process it starts
    # stays in it after it exits
    start = subprocess.Popen(
        [*_ray_cli(), "start", "--head", f"--port={gcs}", f"--dashboard-port={dash}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2",
         f"--object-store-memory={200 << 20}", f"--temp-dir={temp_dir}",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        log, _ = start.communicate(timeout=300)
        assert start.returncode == 0, f"ray start failed:\n{log[-5000:]}"
        yield Head(f"http://127.0.0.1:{dash}", env, temp_dir)
    finally:
        if start.poll() is None:
            start.kill()
            start.wait()
        _stop_head(start.pid, marker)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _tiny_dataset(path: Path) -> plane.Dataset:
    rng = np.random.default_rng(3)
    ds = plane.create(str(path))
    ds.create_tensor("images", htype="image", chunk_bytes=PER_CHUNK * 8 * 8 * 3)
    ds.create_tensor("labels", htype="class_label")
    ds.extend({"images": rng.integers(0, 255, (N, 8, 8, 3), np.uint8),
               "labels": (np.arange(N) % CLASSES).astype(np.int64)})
    ds.commit("rows")
    return ds


def _submit(head: Head, *entrypoint: str) -> subprocess.CompletedProcess[str]:
    """`ray job submit --working-dir . -- <entrypoint>` from the project root; waits for the end."""
    return subprocess.run(
        [*_ray_cli(), "job", "submit", "--address", head.dashboard, "--working-dir", ".", "--",
         *entrypoint],
        cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=480)


def test_job_runs_the_uploaded_working_dir(ray_head: Head) -> None:
    """The job imports `jobs` and `plane` from the uploaded checkout (what `--working-dir .`
    promises on a cluster whose image has an older copy installed), and the upload is small."""
    out = _submit(ray_head, "python", "-c",
                  "import jobs.train, plane; print('FROM', jobs.train.__file__, plane.__file__)")
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    froms = [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 1, out.stdout[-3000:]
    uploads = ray_head.temp_dir.resolve()
    for path in froms[0]:
        assert Path(path).resolve().is_relative_to(uploads), (path, uploads)
    unpacked = Path(froms[0][0]).resolve().parents[1]  # <package>/jobs/train.py
    assert unpacked.name.startswith("_ray_pkg_"), unpacked
    assert (unpacked / "jobs" / "train.py").is_file()
    assert not (unpacked / ".venv").exists() and not (unpacked / ".git").exists()
    size = sum(f.stat().st_size for f in unpacked.rglob("*") if f.is_file())
    assert size < 50 << 20, f"{size} bytes uploaded: add what the job does not need to .rayignore"


@pytest.mark.slow
def test_ray_job_submit_runs_jobs_train(ray_head: Head, tmp_path: Path) -> None:
    """The README's command trains 2 epochs on a tiny local dataset; every epoch covers the
    dataset, the job reports success and rank 0 saved a checkpoint."""
    ds = _tiny_dataset(tmp_path / "ds")
    out = _submit(ray_head, "python", "-m", "jobs.train", "--dataset", ds.url,
                  "--workers", "1", "--epochs", "2", "--batch-size", "16",
                  "--cpus-per-worker", "0.5", "--storage-path", str(ray_head.temp_dir / "results"))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert "succeeded" in log, log[-3000:]
    reports = [json.loads(line) for line in out.stdout.splitlines()
               if line.startswith('{"metrics"')]
    assert len(reports) == 1, out.stdout[-3000:]
    metrics = reports[0]["metrics"]
    assert metrics["epoch"] == 1
    assert metrics["samples_all_per_epoch"] == [N, N]  # one entry per epoch, all rows each
    assert metrics["batches"] == -(-N // 16)
    assert np.isfinite(metrics["loss"])
    assert (Path(reports[0]["checkpoint"]) / "model.pt").stat().st_size > 0

"""A sweep on a real 2-node local Ray cluster (ray.cluster_utils.Cluster), in a subprocess so it does not
share a process with the session's Ray: trials and evaluators are placed on both nodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray_cluster, pytest.mark.slow]  # ~2 min on 2 busy cores
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import ray
    from ray.cluster_utils import Cluster
    from sweeps.run import run_sweep
    from tests.sweeps.sweep_helpers import eval_keys, tiny_spec, tune_results

    run_dir = Path(sys.argv[1])
    # Each node: 2 logical CPUs = one 1-CPU trial + one 1-CPU evaluator (SPREAD puts one evaluator per node).
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="mdpt", log_to_driver=False)
    spec = tiny_spec(resources={"trial": {"cpu": 1}, "evaluators": {"count": 2, "cpu": 1}})
    summary = run_sweep(spec, run_dir, address=cluster.address, printer=lambda s: None, report=False)
    results = tune_results(run_dir, "train")
    print(json.dumps({"nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]],
                      "trial_nodes": sorted({r["node_id"] for rs in results.values() for r in rs}),
                      "eval_nodes": summary["evaluators"]["jobs_by_node"],
                      "errors": summary["stages"]["train"]["errors"], "rows": len(eval_keys(run_dir)),
                      "unique_rows": len(set(eval_keys(run_dir)))}))
    ray.shutdown()
    cluster.shutdown()
""")


def test_trials_and_evaluators_use_both_nodes(tiny_data_root, tmp_path):
    script = tmp_path / "cluster_sweep.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", MDPT_DATA=str(tiny_data_root), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the script and the cluster it started
    assert proc.returncode == 0, stderr[-4000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert len(out["nodes"]) == 2 and out["errors"] == 0
    assert sorted(out["trial_nodes"]) == sorted(out["nodes"])  # one trial per node
    assert sorted(out["eval_nodes"]) == sorted(out["nodes"])  # evaluators on both nodes did work
    assert out["rows"] == out["unique_rows"] == 2 * 2 * 2

"""Exactly-once evaluation under combined faults, on a real two-raylet Ray cluster (`ray start --head` and
`ray start --address` subprocesses, tests/sweeps/ray_cluster.py) driven by `mdpt sweep --address`.

* combined: while the sweep runs, an evaluator's process is SIGKILLed (when the first rows land), then a
  training trial's process (once it has checkpointed step 800), then the driver (once the restarted trial
  runs again and a snapshot's evaluation is in flight: the driver's pool takes it down with it); then
  `mdpt sweep --resume RUN_DIR --address ...` finishes the run;
* node loss: the second node dies (its raylet and every process on it) while trials run on both nodes;
  the same driver finishes the run on the head node.

Both end with exactly one row per (trial, step, inference variant, episode) for every snapshot on disk
(own critic and the double-guidance recombination), none missing, and the sweep's summary saying
"0 snapshots without rows". Each test prints one ``FAULTS {...}`` line (kill moments in seconds since the
driver started, rows expected / found, resume time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sweeps.spec import dump_spec
from tests.sweeps.ray_cluster import LocalCluster
from tests.sweeps.sweep_helpers import eval_keys, tiny_spec, trials, tune_results

pytestmark = [pytest.mark.slow, pytest.mark.ray_cluster]
ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("self", "seed:+1")  # own critic, and the other seed's step-matched critic (recombination)
PROBE = """
import json, sys, ray
from trainables.evaluator import coordinator_name
ray.init(address=sys.argv[1], namespace="mdpt", log_to_driver=False)
coord = ray.get_actor(coordinator_name(sys.argv[2]))
head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"])
print(json.dumps({"head": head, "coordinator": ray.get(coord.where.remote(), timeout=60),
                  "evaluators": ray.get(coord.ready.remote(), timeout=60)}))
"""


def _spec(tmp_path: Path, steps: int) -> Path:
    joint = {"algo": "dql", "train_guidance": "joint"}
    spec = tiny_spec(steps=steps, max_failures=3,
                     resources={"trial": {"cpu": 1}, "evaluators": {"count": 2, "cpu": 1}},
                     recombination=[{"name": "double", "kind": "double_guidance", "diffusion": joint,
                                     "guidance": {"trained": joint}, "match": "step"}])
    path = tmp_path / "faults.yaml"
    path.write_text(dump_spec({k: v for k, v in spec.items() if k not in ("scale", "budget")}))
    return path


class Driver:
    """`mdpt sweep ...` in its own session, output to a file (read at the end)."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.log, self.t0 = log, time.time()
        with open(log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=ROOT, env=env, text=True,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def elapsed(self) -> float:
        return round(time.time() - self.t0, 1)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"driver still running after {timeout} s:\n{self.output()[-4000:]}") from None


def _until(what: str, cond, driver: Driver, timeout: float = 600):
    """Poll ``cond()`` until it returns something truthy (returned); fail if the driver exits or time runs out."""
    deadline = time.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert driver.alive(), f"the driver ended before {what}:\n{driver.output()[-4000:]}"
        assert time.time() < deadline, f"timed out waiting for {what}:\n{driver.output()[-4000:]}"
        time.sleep(0.5)


def _probe(address: str, run_dir: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, address, str(run_dir)], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rows_written(run_dir: Path) -> int:
    return len(list((run_dir / "results" / "evals").glob("*/*.parquet")))


def _latest_results(run_dir: Path) -> dict[str, dict]:
    """trial_id -> its latest Tune result (step, pid, node_id, restored_from)."""
    try:
        return {t: rs[-1] for t, rs in tune_results(run_dir, "train").items() if rs}
    except (json.JSONDecodeError, OSError):  # a line being written
        return {}


def _snapshot_without_rows(run_dir: Path):
    from trainables.ledger import self_eval_ledger

    try:
        return next((e for e in self_eval_ledger(run_dir) if not e.done), None)
    except Exception:  # noqa: BLE001 - a table file being replaced
        return None


def _check_rows(run_dir: Path, episodes: int = 2) -> dict:
    """Exactly one row per (trial, step, infer_source, episode) for every snapshot on disk; returns the counts."""
    rows = {t: r for t, r in trials(run_dir).items() if r["stage"] == "train"}
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {"TERMINATED"}, rows
    expected = set()
    for trial_id in rows:
        steps = sorted(int(p.stem.split("_")[1]) for p in (run_dir / "snapshots" / trial_id).glob("step_*.pt"))
        assert steps, f"trial {trial_id} has no snapshots"
        expected |= {(trial_id, s, src, ep) for s in steps for src in SOURCES for ep in range(episodes)}
    keys = eval_keys(run_dir)
    duplicated = [k for k, n in Counter(keys).items() if n > 1]
    assert not duplicated, f"duplicated rows: {duplicated[:10]}"
    assert set(keys) == expected, (f"missing {sorted(expected - set(keys))[:10]}, "
                                   f"unexpected {sorted(set(keys) - expected)[:10]}")
    return {"rows_expected": len(expected), "rows_found": len(keys)}


@pytest.fixture
def cluster(tiny_data_root):
    env = dict(os.environ, MDPT_DATA=str(tiny_data_root), PYTHONPATH=str(ROOT))
    c = LocalCluster(cpus=(2, 2), env=env)
    yield c
    c.shutdown()


def test_evaluator_trial_and_driver_killed_then_resumed(cluster, tmp_path):
    env, run_dir = cluster.env, tmp_path / "run"
    spec = _spec(tmp_path, steps=2400)
    driver = Driver(["sweep", str(spec), "--out", str(run_dir), "--no-report", "--address", cluster.address],
                    env, tmp_path / "driver.log")
    moments: dict = {}

    # 1. an evaluator, as soon as the first rows landed
    _until("the first evaluation rows", lambda: _rows_written(run_dir), driver)
    victim = _probe(cluster.address, run_dir, env)["evaluators"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    moments["evaluator_killed_s"] = driver.elapsed()

    # 2. a training trial that has checkpointed step 800 and is still running
    def running_past_800():
        status = {t: r["status"] for t, r in trials(run_dir).items()}
        return next(((t, r) for t, r in _latest_results(run_dir).items()
                     if 800 <= r["step"] < 2400 and status.get(t) == "RUNNING"), None)

    trial_id, result = _until("a trial past step 800", running_past_800, driver)
    os.kill(int(result["pid"]), signal.SIGKILL)
    moments.update(trial_killed_s=driver.elapsed(), trial_killed_at_step=int(result["step"]))

    # 3. the driver, once the killed trial runs again (restored) and a snapshot's evaluation is in flight;
    #    preferably one whose trial has already reported a checkpoint at or past that step (a restore from
    #    that checkpoint does not write the snapshot again: only the ledger brings its rows back)
    _until("the killed trial running again", lambda: _latest_results(run_dir).get(trial_id, {}).get(
        "restored_from", -1) >= 0, driver)
    deadline = time.time() + 30
    while time.time() < deadline:
        lost = _until("an evaluation in flight", lambda: _snapshot_without_rows(run_dir), driver)
        if _latest_results(run_dir).get(lost.trial_id, {}).get("step", -1) >= lost.step:
            break
    driver.kill()
    moments.update(driver_killed_s=driver.elapsed(), in_flight=f"{lost.trial_id} step {lost.step}")

    t0 = time.time()
    resumed = Driver(["sweep", "--resume", str(run_dir), "--no-report", "--address", cluster.address], env,
                     tmp_path / "resumed.log")
    rc = resumed.wait(900)
    out = resumed.output()
    moments["resume_s"] = round(time.time() - t0, 1)
    assert rc == 0, out[-4000:]
    assert "[train] restoring" in out and "ledger: 0 snapshots without rows" in out, out[-4000:]
    moments.update(_check_rows(run_dir))
    assert trials(run_dir)[trial_id]["num_failures"] >= 1
    moments["restored_from"] = {t: r["restored_from"] for t, r in trials(run_dir).items()}
    moments["resumed_log"] = [ln for ln in out.splitlines() if ln.startswith(("[ledger]", "evaluators:", "[recombine] "))]
    print("FAULTS", json.dumps(moments))


def test_node_lost_mid_run(cluster, tmp_path):
    env, run_dir = cluster.env, tmp_path / "run"
    spec = _spec(tmp_path, steps=1600)
    driver = Driver(["sweep", str(spec), "--out", str(run_dir), "--no-report", "--address", cluster.address],
                    env, tmp_path / "driver.log")

    def on_both_nodes():  # both trials running, on different nodes, each past its first checkpoint
        latest = _latest_results(run_dir)
        nodes = {r["node_id"] for r in latest.values() if r["step"] < 1600}
        return len(latest) == 2 and len(nodes) == 2 and latest

    latest = _until("trials on both nodes", on_both_nodes, driver)
    where = _probe(cluster.address, run_dir, env)
    assert where["coordinator"]["node_id"] == where["head"]  # pinned to the driver's node: it survives
    cluster.kill_node(1)
    moments = {"node_killed_s": driver.elapsed(), "steps_at_kill": sorted(int(r["step"]) for r in latest.values()),
               "evaluator_nodes": sorted({e["node_id"][:8] for e in where["evaluators"]}),
               "coordinator_node": where["coordinator"]["node_id"][:8]}
    rc = driver.wait(900)
    out = driver.output()
    moments["run_s"] = driver.elapsed()
    assert rc == 0, out[-4000:]
    assert "ledger: 0 snapshots without rows" in out, out[-4000:]
    moments.update(_check_rows(run_dir))
    assert sum(r["num_failures"] for r in trials(run_dir).values()) >= 1  # the lost node's trial was retried
    moments["log"] = [ln for ln in out.splitlines() if ln.startswith(("[ledger]", "evaluators:", "ledger:"))]
    print("FAULTS", json.dumps(moments))

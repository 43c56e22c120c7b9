"""A real multi-raylet Ray cluster on this machine for fault tests: each node is a `ray start --block`
subprocess (head, then workers joining its address), with its own free ports and a private temp dir.
A node is stopped the way a machine dies: SIGKILL to its `ray start` process and every process under it
(raylet, workers, agents). Only processes this helper started are signalled."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


def kill_tree(pid: int) -> None:
    for p in process_tree(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalCluster:
    """``LocalCluster(cpus=(2, 2))``: a head and one worker node with 2 logical CPUs each; ``address`` to connect."""

    def __init__(self, cpus: tuple[int, ...] = (2, 2), env: dict | None = None, timeout: float = 180) -> None:
        self.env = dict(env or os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
        self.temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Unix socket paths live under it
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.nodes: list[subprocess.Popen] = []
        try:
            self._start(cpus[0], "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.temp}")
            self.wait_nodes(1, timeout)
            for n in cpus[1:]:
                self._start(n, f"--address={self.address}")
                self.wait_nodes(len(self.nodes), timeout)
        except BaseException:
            self.shutdown()
            raise

    def _start(self, cpus: int, *args: str) -> None:
        log = open(Path(self.temp) / f"node{len(self.nodes)}.log", "w")
        self.nodes.append(subprocess.Popen(
            [RAY, "start", "--block", f"--num-cpus={cpus}", "--num-gpus=0",
             f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats", *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def alive_nodes(self) -> int:
        """Alive nodes as the GCS sees them (asked from a subprocess, so this process stays Ray-free)."""
        code = ("import ray; ray.init(address=%r, log_to_driver=False); "
                "print(sum(n['Alive'] for n in ray.nodes()))" % self.address)
        try:
            out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return -1
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else -1

    def wait_nodes(self, n: int, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while True:
            for p in self.nodes:
                if p.poll() is not None:
                    raise RuntimeError(f"`ray start` exited ({p.returncode}): "
                                       + (Path(self.temp) / f"node{self.nodes.index(p)}.log").read_text()[-2000:])
            if self.alive_nodes() == n:
                return
            if time.time() > deadline:
                raise TimeoutError(f"{n} Ray node(s) not up after {timeout} s; logs in {self.temp}")
            time.sleep(2)

    def kill_node(self, i: int) -> None:
        """Node ``i`` dies (its whole process tree, SIGKILL), as a lost machine."""
        kill_tree(self.nodes[i].pid)
        self.nodes[i].wait()

    def shutdown(self) -> None:
        for i in reversed(range(len(self.nodes))):
            self.kill_node(i)
        shutil.rmtree(self.temp, ignore_errors=True)

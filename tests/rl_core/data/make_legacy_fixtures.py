"""Write the legacy-layout fixtures of ``test_precision.py`` (run ONCE with a checkout from before the stacked
TwinQ first on the import path, e.g. ``git archive 6c32873 | tar -x -C /tmp/old``)::

    PYTHONPATH=/tmp/old python tests/rl_core/data/make_legacy_fixtures.py tests/rl_core/data

Files: ``legacy_guidance.pt`` (a TD-critic artifact with Adam state after 3 updates), ``legacy_snapshot.pt``
(a tiny DQL snapshot with its critic) and ``legacy_expected.pt`` (what the old code computes from them:
Q heads on fixed inputs, and after one more critic update).
"""

import sys
from pathlib import Path

import torch

from rl_core import guidance as G
from rl_core.algos import get_algorithm
from rl_core.snapshot import load_snapshot, save_snapshot
from rl_core.types import Batch, Normalizer

OBS, ACT = 4, 2


def batch(seed: int) -> tuple[Batch, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return Batch(r(16, OBS), torch.rand(16, ACT, generator=g) * 2 - 1, r(16), r(16, OBS), torch.zeros(16)), \
        torch.rand(16, ACT, generator=g) * 2 - 1


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"algo": "pretrain", "seed": 0, "steps": 3, "dataset_fingerprint": "legacy", "task": "legacy",
            "normalizer": Normalizer.identity(OBS)}
    critic = G.make_guidance(G.GuidanceConfig(kind="td", hidden=8), OBS, ACT, seed=0)
    for s in range(3):
        critic.update(*batch(s))
    G.save_artifact(out / "legacy_guidance.pt", critic, meta)
    probe, nxt = batch(100)
    loaded, _ = G.load_artifact(out / "legacy_guidance.pt")
    expected = {"q": loaded.q_heads(probe.obs, probe.act).detach(),
                "q_target": loaded.q_heads(probe.obs, probe.act, target=True).detach()}
    loaded.update(probe, nxt)
    expected["q_after_update"] = loaded.q_heads(probe.obs, probe.act).detach()
    cls = get_algorithm("dql")
    cfg = cls.Config(hidden=8, n_layers=2, emb_dim=4, T=2, sampling_steps=2, ema_start=0)
    algo = cls(cfg, OBS, ACT, guidance=critic, guidance_mode="joint", seed=0)
    algo.update(probe, torch.Generator().manual_seed(0))
    save_snapshot(out / "legacy_snapshot.pt", algo, step=1, config={"algo": "dql"}, normalizer=Normalizer.identity(OBS),
                  dataset_meta={"env_id": "HopperBulletEnv-v0", "fingerprint": "legacy"},
                  guidance_meta={"kind": "td"})
    snap = load_snapshot(out / "legacy_snapshot.pt")
    expected["snapshot_q"] = snap.guidance.q_heads(probe.obs, probe.act).detach()
    torch.save(expected, out / "legacy_expected.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

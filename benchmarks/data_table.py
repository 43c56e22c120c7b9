"""The datasets of a data root as a Markdown table: transitions, episodes, mean return, normalized score on
mdpt's and on D4RL's bullet scale, fingerprint and the seconds it took to make (from each metadata.json).

    .venv/bin/mdpt data make all --out /tmp/all      # prints its own wall and CPU time at the end
    .venv/bin/python benchmarks/data_table.py /tmp/all

Reads only the metadata the generator wrote; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rl_core.config import D4RL_BULLET_REF_SCORES, KNOWN_TASKS
from rl_core.data.dataset import normalized_score
from rl_core.data.io import META_FILE, data_root


def rows(root: Path) -> list[dict]:
    out = []
    for task in KNOWN_TASKS:
        path = root / task / META_FILE
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        d4rl = D4RL_BULLET_REF_SCORES.get(m["env_id"])
        out.append({"task": task, "transitions": m["n_transitions"], "episodes": m["n_episodes"],
                    "return": m["return_mean"],
                    "mdpt": float(normalized_score(m["return_mean"], m["ref_min_score"], m["ref_max_score"])),
                    "d4rl": float(normalized_score(m["return_mean"], *d4rl)) if d4rl else float("nan"),
                    "fingerprint": m["fingerprint"], "seconds": m.get("generation_seconds", float("nan")),
                    "cpu_seconds": m.get("generation_cpu_seconds", float("nan")), "budget": m.get("budget")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, nargs="?", default=None, help="data root (default: $MDPT_DATA)")
    args = ap.parse_args()
    root = args.root or data_root()
    table = rows(root)
    print(f"data root {root}: {len(table)} of {len(KNOWN_TASKS)} known tasks")
    print("| dataset | transitions | episodes | mean return | normalized (mdpt) | normalized (D4RL bullet) "
          "| fingerprint | s to make (wall / CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['task']} | {r['transitions']:,} | {r['episodes']} | {r['return']:.1f} | {r['mdpt']:.1f} | "
              f"{r['d4rl']:.1f} | `{r['fingerprint']}` | {r['seconds']:.0f} / {r['cpu_seconds']:.0f} |")


if __name__ == "__main__":
    main()

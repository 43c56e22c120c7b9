"""Sweep budgets: their names, the deprecated aliases, and what a run at each budget can show.

The one home of this vocabulary. A sweep spec (``sweeps/spec.py``) sizes a run once per budget name
(``budgets.smoke | cpu | paper``); ``mdpt sweep --scale NAME`` chooses one and prints `summary`;
``RUN_DIR/run.json`` records the chosen name under ``scale``; the report reads it back by that key and
opens a smoke run's report with `banner`. It lives in ``analysis`` because ``analysis`` imports nothing
from ``sweeps`` (the dependency runs sweeps -> analysis) and both sides need it. Importing it loads no
scipy (``mdpt --help`` stays fast); `summary` imports `analysis.stats` when called.

- ``smoke``: a few minutes; checks that the pipeline runs end to end. Its policies are not trained
  and its statistics are not evidence.
- ``laptop``: at most 15 minutes on a 2-core machine (the packaged quickstart has it, and `mdpt quickstart` runs
  it by default: 11.5 min measured): one task, 2 seeds, a few thousand steps -- enough for the policies to learn
  (they hop), too few seeds for a test (2 vs 2: smallest attainable p = 0.33): descriptive only.
- ``cpu``: one task, enough steps (a few thousand) and seeds (>= 5) for the policies to learn on a 2-core
  machine in about 1 to 2 1/4 hours (each packaged spec's header estimates its own); descriptive statistics plus per-seed tests that can reach p < 0.05.
- ``paper``: the papers' budgets (docs/protocol.md), sized for a GPU cluster.
"""

from __future__ import annotations

BUDGETS = ("smoke", "laptop", "cpu", "paper")
REQUIRED_BUDGETS = ("smoke", "paper")  # every spec has these; `laptop` and `cpu` are optional
BUDGET_ALIASES = {"quick": "smoke"}  # deprecated names, still accepted (with a warning) for one release
NOT_EVIDENCE = ("smoke",)  # budgets whose policies are not trained: their reports open with `banner`
ALPHA = 0.05  # the significance level `summary` measures the per-seed test against


class DeprecatedName(FutureWarning):
    """Warned when a deprecated budget name is used (``--scale quick``, a spec's ``budgets.quick``); ``mdpt``
    prints it as one line ``mdpt: warning: ...``."""


def budget_name(name: object) -> str | None:
    """The budget ``name`` stands for (an alias maps to its new name); None for anything else
    (an unknown name, or None: a run directory written by ``mdpt train``)."""
    name = BUDGET_ALIASES.get(name, name) if isinstance(name, str) else None
    return name if name in BUDGETS else None


def deprecation(name: object, where: str = "--scale") -> str | None:
    """One line for a deprecated alias (``quick``), naming where it was used; None for other names."""
    if name not in BUDGET_ALIASES:
        return None
    new = BUDGET_ALIASES[name]
    return (f"{where}: the budget name `{name}` is deprecated and will be removed in the next release; "
            f"it is now called `{new}` (same budget)")


def summary(name: str, *, tasks: int, seeds: int, steps: int, eval_every: int, episodes: int) -> str:
    """One line: which budget a sweep runs and what that budget can show (``mdpt sweep`` and ``--dry-run``)."""
    size = (f"{_n(tasks, 'task')}, {_n(seeds, 'seed')}, {steps} steps, a checkpoint every {eval_every} steps with "
            f"{_n(episodes, 'episode')}")
    if name == "smoke":
        return f"budget smoke ({size}): checks the pipeline; policies are not trained; statistics are not evidence"
    if name in ("laptop", "cpu"):
        from analysis.stats import min_attainable_p, mwu_method  # scipy: only when a summary is asked for

        p = min_attainable_p(seeds, seeds, mwu_method(seeds, seeds, ties=False))
        can = (f"per-seed Mann-Whitney tests with smallest attainable p = {p:.2g} ({seeds} vs {seeds} seeds, "
               "two-sided)" + ("" if p < ALPHA else f", which cannot reach p < {ALPHA}: descriptive only"))
        what = ("a short run sized for a laptop whose policies learn (the quickstart's: about 11.5 min on 2 cores)"
                if name == "laptop" else "sized for a 2-core machine")
        return f"budget {name} ({size}): {what}; descriptive statistics + {can}"
    if name == "paper":
        return f"budget paper ({size}): the papers' budgets (docs/protocol.md), sized for a GPU cluster"
    raise ValueError(f"unknown budget {name!r}; allowed: {list(BUDGETS)}")


def _n(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def banner(name: object) -> str | None:
    """The sentence a report opens with when its run's budget (run.json ``scale``, aliases accepted) is not
    evidence; None otherwise (cpu, paper, or no recorded budget)."""
    if budget_name(name) not in NOT_EVIDENCE:
        return None
    return (f"**Smoke run (budget `{budget_name(name)}`): it checks that the pipeline runs. Its policies are not "
            "trained and its statistics are not evidence** — read the numbers below as a test of the plumbing, "
            "not as a result. Run the `cpu` or `paper` budget for evidence.")

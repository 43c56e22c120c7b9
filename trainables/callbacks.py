"""Driver-side Tune callbacks: record failures and retries in the ``trials`` table.

A trial whose process dies (crash, OOM kill, node loss) cannot write its own row, so the driver
does: ``on_trial_recover`` (failed, stays RUNNING: it will be retried from its last checkpoint) and
``on_trial_error`` (failed for good) update status, ``num_failures`` and ``failure_reason``; the
restarted trial then writes RUNNING with the step it was ``restored_from``.
"""

from __future__ import annotations

from ray import tune

from trainables.results import ResultStore, trial_row
from trainables.trial import TrialSpec


def _reason(trial) -> str:
    """Last non-empty line of the trial's error trace (the exception and its message)."""
    text = str(trial.get_error() or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else "trial process failed (no error trace)"


class TrialsTableCallback(tune.Callback):
    """Writes the trials row of a failed trial: RUNNING while Tune retries it, ERROR when it gives up."""

    def __init__(self, run_dir: str) -> None:
        self.store = ResultStore(run_dir)

    def _write(self, trial, status: str) -> None:
        spec = TrialSpec.from_dict(trial.config["trial"])
        i = spec.identity
        ident = {"sweep": spec.runtime.sweep, "trial_id": trial.trial_id, "task": i.task, "algo": i.algo,
                 "train_guidance": i.train_guidance, "seed": i.seed}
        prev = self.store.read_trial(trial.trial_id) or {"restored_from": -1}
        self.store.write_trial(trial_row(ident, stage=spec.stage, config=spec.to_dict(), status=status,
                                         failure_reason=_reason(trial), restored_from=prev["restored_from"],
                                         num_failures=int(trial.num_failures)))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._write(trial, "RUNNING")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._write(trial, "ERROR")

"""Driver-side Tune callbacks: record failures and retries in the ``trials`` table; live TensorBoard curves.

A trial whose process dies (crash, OOM kill, node loss) cannot write its own row, so the driver
does: ``on_trial_recover`` (failed, stays RUNNING: it will be retried from its last checkpoint) and
``on_trial_error`` (failed for good) update status, ``num_failures`` and ``failure_reason``; the
restarted trial then writes RUNNING with the step it was ``restored_from``.

``LiveTensorBoard`` is Tune's own TensorBoard logger (``TBXLoggerCallback``: every reported metric, the
training losses and the latest eval score included, as a scalar ``ray/tune/<metric>``) writing into
``RUN_DIR/tensorboard/<stage>/<trial label>_<trial_id>/`` and flushing at every report, so the curves can
be watched while the sweep runs. Tune's default instance writes into a staging directory in the Ray
session (``/tmp/ray/session_*``) that reaches the run directory only every few minutes; when this one is
given, Tune adds no other. The x axis is the trial's gradient step.
"""

from __future__ import annotations

import re
from pathlib import Path

from ray import tune
from ray.tune.logger import TBXLoggerCallback

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


def tensorboard_dir(run_dir: str | Path, stage: str | None = None) -> Path:
    """RUN_DIR/tensorboard (or its ``stage`` subdirectory): ``tensorboard --logdir`` it."""
    root = Path(run_dir) / "tensorboard"
    return root / stage if stage else root


class LiveTensorBoard(TBXLoggerCallback):
    """Tune's TensorBoard logger writing into ``tensorboard_dir(run_dir, stage)`` (module docstring).
    Raises ImportError without tensorboardX (installed with ``ray[tune]``)."""

    def __init__(self, run_dir: str, stage: str) -> None:
        super().__init__()
        self.root = tensorboard_dir(run_dir, stage)

    def log_trial_start(self, trial) -> None:
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        label = TrialSpec.from_dict(trial.config["trial"]).label
        logdir = self.root / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{label}_{trial.trial_id}")
        logdir.mkdir(parents=True, exist_ok=True)
        self._trial_writer[trial] = self._summary_writer_cls(str(logdir), flush_secs=30)
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        if "step" in result:  # x axis = gradient steps (Tune's default: its report count)
            result = {**result, "timesteps_total": result["step"]}
        super().log_trial_result(iteration, trial, result)  # flushes the writer

    def _try_log_hparams(self, trial, result: dict) -> None:
        """No hparams summary: a trial's whole config is its TrialSpec dict (in the trials table)."""


def live_tensorboard(run_dir: str | Path, stage: str) -> list[tune.Callback]:
    """``[LiveTensorBoard(run_dir, stage)]``, or [] without tensorboardX (Tune then writes no event files)."""
    try:
        return [LiveTensorBoard(str(run_dir), stage)]
    except ImportError:
        return []

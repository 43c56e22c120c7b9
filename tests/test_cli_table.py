"""The `mdpt` command line as a table: every subcommand's ``--help``, and every documented bad input ->
exit status 2 and ONE stderr line (``mdpt: error: ...``) naming what to fix, no traceback.

In-process through ``sweeps.cli.main(argv)`` (fast; nothing here starts Ray or trains), plus two
through a real subprocess of ``python -m sweeps.cli``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rl_core.buffer import make_normalizer
from rl_core.guidance import save_artifact
from rl_core.snapshot import save_snapshot
from sweeps.cli import build_parser, main
from tests.rl_core.algo_tester import gen, make_algo, tiny_buffer, tiny_guidance
from tests.sweeps.test_spec import _with

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("quickstart", "data", "data make", "data list", "data info", "data import", "data train-policies",
               "pretrain-guidance", "train",
               "evaluate", "sweep", "status", "tune-guidance", "report")


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand of ``parser`` by its space-separated name."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[prefix + name] = sub
                out |= _subcommands(sub, prefix + name + " ")
    return out


def test_the_documented_subcommands_are_all_registered():
    assert sorted(_subcommands(build_parser())) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_exits_0_with_its_usage_line(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"usage: mdpt {command}"), out[:200]
    assert "show this help message and exit" in out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: mdpt")
    for command in SUBCOMMANDS:
        if " " not in command:
            assert re.search(rf"^\s+{re.escape(command)}\s", out, re.M), command


# ----- bad inputs -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A snapshot (with its own critic), a guidance artifact of another dataset, a spec with a bad field
    and a directory that already holds a sweep."""
    root = tmp_path_factory.mktemp("cli")
    buf, ds = tiny_buffer()
    algo, g = make_algo("dql", "joint"), gen(0)
    algo.update(buf.sample(8, g), g)
    norm = make_normalizer(ds)
    snapshot = save_snapshot(root / "step_00000001.pt", algo, step=1, config={}, normalizer=norm,
                             dataset_meta={"fingerprint": ds.fingerprint, "env_id": "Toy-v0"},
                             guidance_meta={"kind": "td"})
    foreign = save_artifact(root / "foreign.pt", tiny_guidance("td"), {
        "algo": "pretrain", "seed": 0, "steps": 1, "dataset_fingerprint": "another-dataset", "task": "other-medium",
        "normalizer": norm})
    bad_spec = root / "bad.yaml"
    bad_spec.write_text(yaml.safe_dump(_with("algorithms", ["dql", "sac"])))
    existing = root / "existing"
    existing.mkdir()
    (existing / "spec.yaml").write_text("name: x\n")
    from sweeps.run import write_run_dir
    from sweeps.spec import load_spec, resolve

    quickstart_smoke = root / "quickstart_smoke"  # a quickstart run at the former default budget
    write_run_dir(resolve(load_spec("quickstart"), "smoke"), quickstart_smoke)
    return {"snapshot": Path(snapshot), "foreign": Path(foreign), "bad_spec": bad_spec, "existing": existing,
            "missing": root / "missing" / "run", "quickstart_smoke": quickstart_smoke}


# (id, argv with {placeholders} from the `files` fixture, pattern the one stderr line matches)
BAD_INPUTS = [
    ("bad spec field", ["sweep", "{bad_spec}"], r"spec field `algorithms\[1\]`: bad value 'sac'; allowed: .*dql"),
    ("bad spec field via --dry-run", ["sweep", "{bad_spec}", "--dry-run"], r"spec field `algorithms\[1\]`"),
    ("--set unknown key", ["sweep", "quickstart", "--set", "budgets.smoke.nosuch=3"],
     r"spec field `budgets\.smoke`: unknown key 'nosuch'; allowed keys: \[.*'steps'"),
    ("--set unknown top-level key", ["sweep", "quickstart", "--dry-run", "--set", "nosuch=3"],
     r"spec field `<spec>`: unknown key 'nosuch'"),
    ("--set bad value", ["sweep", "quickstart", "--set", "seeds=[0,-1]"], r"spec field `seeds\[1\]`: bad value -1"),
    ("--set without =", ["sweep", "quickstart", "--set", "seeds"], r"--set 'seeds': expected PATH=VALUE"),
    ("unknown spec", ["sweep", "nosuchspec"], r"spec 'nosuchspec' is neither a file nor a packaged spec; packaged"),
    ("no spec", ["sweep"], r"give a SPEC \(file or packaged name\) or --resume RUN_DIR"),
    ("missing dataset", ["sweep", "quickstart", "--set", "tasks=[{missing}/mine]", "--out", "{missing}"],
     r"missing/run/mine: no such dataset file or directory"),  # (a generated task is made on first use instead)
    ("existing sweep dir", ["sweep", "quickstart", "--out", "{existing}"],
     r"already holds a sweep; continue it with `mdpt sweep --resume .*existing` or choose another --out"),
    ("quickstart over another budget", ["quickstart", "--out", "{quickstart_smoke}"],  # before any data is made
     r"holds a different sweep \(quickstart, scale smoke\); continue it with `mdpt quickstart --scale smoke` or "
     r"choose another --out"),
    ("--resume with --set", ["sweep", "--resume", "{existing}", "--set", "seeds=[0]"],
     r"--set cannot change a sweep being resumed"),
    ("--resume without a sweep", ["sweep", "--resume", "{missing}"], r"--resume .*missing/run: no spec\.yaml there"),
    ("bad --algo-config JSON", ["train", "--task", "hopper-medium", "--algo-config", "{{eta: 1", "--out", "{missing}"],
     r"--algo-config is not valid JSON \(.*\); give an object such as '\{\"eta\": 0\.5\}'"),
    ("--algo-config not an object", ["train", "--task", "hopper-medium", "--algo-config", "[1]", "--out", "{missing}"],
     r"--algo-config must be a JSON object, got list"),
    ("train on a missing dataset", ["train", "--task", "hopper-medium", "--out", "{missing}"],
     r"create it with `mdpt data make hopper-medium`"),
    ("frozen without artifact", ["train", "--task", "hopper-medium", "--guidance", "frozen", "--out", "{missing}"],
     r"guidance_artifact=None is not allowed; allowed: a path for train_guidance frozen \| unfrozen"),
    ("tune-guidance missing run dir", ["tune-guidance", "{missing}"],
     r"missing/run: no such run directory, spec file or packaged spec \(.*quickstart.*\); pass a run directory"),
    ("tune-guidance spec never run", ["tune-guidance", "quickstart"],
     r"quickstart: its run directory runs/quickstart does not exist; run `mdpt sweep quickstart` first"),
    ("status missing run dir", ["status", "{missing}"], r"missing/run has no run\.json; is it a run directory"),
    ("report missing run dir", ["report", "{missing}"], r"run directory .*missing/run does not exist"),
    ("report bad score scale", ["report", "{existing}", "--score-scale", "x"],
     r"score scale 'x' .* is unknown; allowed: \['mdpt', 'd4rl'\]"),
    ("evaluate missing snapshot", ["evaluate", "{missing}/step_00000001.pt"], r"snapshot not found: .*step_00000001\.pt"),
    ("evaluate a foreign artifact", ["evaluate", "{snapshot}", "--guidance-artifact", "{foreign}"],
     r"guidance artifact .*foreign\.pt does not match: dataset_fingerprint differs \(expected [0-9a-f]+, artifact "
     r"has another-dataset; .*task 'other-medium'"),
    ("evaluate a snapshot as artifact", ["evaluate", "{snapshot}", "--guidance-artifact", "{snapshot}"],
     r"step_00000001\.pt is a policy snapshot .*, not a guidance artifact"),
    ("evaluate a missing artifact", ["evaluate", "{snapshot}", "--guidance-artifact", "{missing}/g.pt"],
     r"guidance artifact not found: .*g\.pt; check the path or create it with `mdpt pretrain-guidance"),
    ("data make unknown task", ["data", "make", "nosuch-task"], r"unknown task 'nosuch-task'; known tasks: hopper-random"),
    ("data info missing dataset", ["data", "info", "hopper-medium"], r"create it with `mdpt data make hopper-medium`"),
]


def _argv(template: list[str], files: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in template]


@pytest.mark.parametrize("template,pattern", [pytest.param(a, p, id=i) for i, a, p in BAD_INPUTS])
def test_bad_input_exits_2_with_one_stderr_line(template, pattern, files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDPT_DATA", str(tmp_path / "no-data"))
    monkeypatch.chdir(tmp_path)  # no ./runs here
    code = main(_argv(template, files))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("mdpt: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert not (files["missing"] / "spec.yaml").exists()  # a failed sweep leaves no run directory behind
    assert not list(Path(tmp_path).glob("runs"))


@pytest.mark.parametrize("case", ["bad --algo-config JSON", "evaluate a foreign artifact"])
def test_bad_input_through_the_real_entry_point(case, files, tmp_path):
    _, template, pattern = next(c for c in BAD_INPUTS if c[0] == case)
    env = {**os.environ, "MDPT_DATA": str(tmp_path / "no-data"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", *_argv(template, files)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and re.search(pattern, lines[0]), proc.stderr


def test_a_sweep_refused_for_a_missing_dataset_can_be_rerun(files, tmp_path, monkeypatch, capsys):
    """The dataset check runs before the run directory is written, so the rerun is not told to --resume."""
    monkeypatch.setenv("MDPT_DATA", str(tmp_path / "no-data"))
    out = tmp_path / "run"
    for _ in range(2):  # an imported dataset's path (a generated task would be made on first use instead)
        assert main(["sweep", "quickstart", "--set", f"tasks=[{tmp_path / 'mine'}]", "--out", str(out)]) == 2
        assert "mine: no such dataset file or directory" in capsys.readouterr().err
    assert not out.exists()


#!/usr/bin/env bash
# Mutation testing of the claim-bearing code (a developer habit, NOT part of CI: tens of minutes on 2 cores).
#
#   bash scripts/mutation.sh            # both parts below
#   bash scripts/mutation.sh known      # part 1 only (about 2 minutes)
#   bash scripts/mutation.sh mutmut [MUTANT_GLOB ...]   # part 2 only, optionally on other mutant names
#
# Part 1 ("known"): hand-made mutations of the project's claims, each of which must make a fast test
# fail: the policy's Q term with its sign flipped, noise mode ignoring its random critic, the
# recombination pairing shift with its sign flipped, and the actor acting with the snapshot's own critic
# instead of the plugged-in one. mutmut cannot make the first two kinds (it does not mutate module-level
# tables such as rl_core.modes.MODES).
#
# Part 2 ("mutmut"): mutmut (the `dev` extra: pip install -e '.[dev]') on the functions that carry the
# claims, with the fast tests that cover them (mutmut runs, per mutant, the tests that executed it):
#   rl_core/modes.py (all), rl_core/algos/base.py q_policy_loss, rl_core/guidance.py td_target /
#   critic_loss / value_loss, sweeps/run.py recombination_jobs / _pick, analysis/metrics.py and
#   analysis/stats.py (all).
# Results: $MUTATION_DIR/mutmut-results.txt (one line per mutant); `cd $MUTATION_DIR && python -m mutmut
# show NAME` prints a mutant's diff. Survivors judged harmless are listed in CONTRIBUTING.md.
#
# Everything runs in a copy of the work tree ($MUTATION_DIR, default ${TMPDIR:-/tmp}/mdpt-mutation), so
# the checkout is never modified. PYTHON (default: python) must have mdpt's dependencies and mutmut
# (MUTMUT_PYTHONPATH: extra import path for a mutmut installed with `pip install --target DIR`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${MUTATION_DIR:-${TMPDIR:-/tmp}/mdpt-mutation}"
PY="${PYTHON:-python}"
CHILDREN="${MUTATION_CHILDREN:-2}"
PART="${1:-all}"
[ $# -gt 0 ] && shift
export MDPT_DATA="${MDPT_DATA:-$ROOT/.pytest_cache/mdpt_data}" RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

MUTANTS=("rl_core.modes.*" "rl_core.algos.base.x_q_policy_loss__mutmut_*"
         "rl_core.guidance.x_td_target__mutmut_*" "rl_core.guidance.x_critic_loss__mutmut_*"
         "rl_core.guidance.x_value_loss__mutmut_*"
         "sweeps.run.x_recombination_jobs__mutmut_*" "sweeps.run.x__pick__mutmut_*"
         "analysis.metrics.*" "analysis.stats.*")
TESTS=(tests/rl_core/test_actor_guidance.py tests/rl_core/test_guidance.py tests/rl_core/test_algos_contract.py
       tests/rl_core/test_modes_table.py tests/sweeps/test_spec.py tests/sweeps/test_recombination_jobs.py
       tests/analysis/test_metrics.py tests/analysis/test_metrics_edges.py tests/analysis/test_stats.py tests/analysis/test_known_values.py
       tests/analysis/test_aggregate.py tests/analysis/test_tables.py)

copy_tree() {  # the tracked and untracked-but-not-ignored files of the checkout, nothing else
    rm -rf "$WORK" && mkdir -p "$WORK"
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$WORK"
}

# ----- part 1: known mutations ------------------------------------------------------------------------------
# file | exact text | replacement | tests that must fail
KNOWN=(
  "rl_core/algos/base.py|return -q_heads[i].mean() / q_heads[j].abs().mean().detach()|return q_heads[i].mean() / q_heads[j].abs().mean().detach()|tests/rl_core/test_actor_guidance.py"
  "rl_core/modes.py|\"noise\": Mode(\"noise\", critic=\"random\", trained=False, guides_actor=True)|\"noise\": Mode(\"noise\", critic=\"random\", trained=False, guides_actor=False)|tests/rl_core/test_actor_guidance.py tests/rl_core/test_modes_table.py"
  "sweeps/run.py|g_seed = seeds[(i + item[\"seed_shift\"]) % len(seeds)]|g_seed = seeds[(i - item[\"seed_shift\"]) % len(seeds)]|tests/sweeps/test_recombination_jobs.py"
  "rl_core/snapshot.py|guidance if guidance is not None else snapshot.guidance,|snapshot.guidance,|tests/trainables/test_guidance_file.py"
)

run_known() {
    copy_tree
    local failed=0
    for entry in "${KNOWN[@]}"; do
        IFS='|' read -r file old new tests <<<"$entry"
        cp "$WORK/$file" "$WORK/$file.orig"
        "$PY" - "$WORK/$file" "$old" "$new" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"known mutation: {old!r} occurs {text.count(old)} times in {path} (expected once); update scripts/mutation.sh")
open(path, "w").write(text.replace(old, new))
EOF
        # shellcheck disable=SC2086
        if (cd "$WORK" && PYTHONPATH="$WORK" "$PY" -m pytest -x -q -m "not slow" -p no:cacheprovider $tests >/dev/null 2>&1); then
            echo "SURVIVED  $file: $new"
            failed=1
        else
            echo "killed    $file: $new"
        fi
        mv "$WORK/$file.orig" "$WORK/$file"
    done
    return $failed
}

# ----- part 2: mutmut ------------------------------------------------------------------------------------
run_mutmut() {
    PYTHONPATH="${MUTMUT_PYTHONPATH:-}" "$PY" -c "import mutmut" 2>/dev/null || { echo "mutmut is not importable by $PY; pip install -e '.[dev]'" >&2; exit 2; }
    copy_tree
    {
        echo "[mutmut]"
        echo "source_paths ="
        printf '    %s\n' rl_core sweeps analysis trainables
        echo "only_mutate ="
        printf '    %s\n' rl_core/modes.py rl_core/algos/base.py rl_core/guidance.py sweeps/run.py analysis/metrics.py \
            analysis/stats.py
        echo "also_copy ="
        printf '    %s\n' rl_core sweeps analysis trainables benchmarks
        echo "pytest_add_cli_args_test_selection ="
        printf '    %s\n' "${TESTS[@]}"
        echo "pytest_add_cli_args ="
        printf '    %s\n' -m "not slow" -p no:cacheprovider
        echo "process_isolation = forkserver"
        echo "use_git_change_detection = false"
        echo "timeout_multiplier = 5.0"
    } >"$WORK/setup.cfg"
    # mutmut's trampolines add members to a class, which breaks isinstance() on a runtime_checkable Protocol
    # (tests check that stand-in critics satisfy rl_core.guidance.Guidance): leave Protocol classes alone.
    sed -i -E 's/^(class [A-Za-z_]+\(Protocol\):)$/\1  # pragma: no mutate block/' \
        "$WORK"/rl_core/modes.py "$WORK"/rl_core/algos/base.py "$WORK"/rl_core/guidance.py
    local names=("$@")
    [ ${#names[@]} -eq 0 ] && names=("${MUTANTS[@]}")
    cd "$WORK"
    PYTHONPATH="${MUTMUT_PYTHONPATH:-}" "$PY" -m mutmut run --max-children "$CHILDREN" "${names[@]}" | tail -n 40
    PYTHONPATH="${MUTMUT_PYTHONPATH:-}" "$PY" -m mutmut results --all true >"$WORK/mutmut-results.txt" || true
    "$PY" - "$WORK/mutmut-results.txt" "${names[@]}" <<'EOF'
import collections, fnmatch, sys
path, globs = sys.argv[1], sys.argv[2:]
counts, survivors = collections.Counter(), []
for line in open(path):
    if ":" not in line:
        continue
    name, status = (s.strip() for s in line.rsplit(":", 1))
    if not any(fnmatch.fnmatch(name, g) for g in globs):
        continue
    counts[status] += 1
    if status == "survived":
        survivors.append(name)
print("mutants by status:", dict(counts))
print("survivors:", *survivors, sep="\n  ")
EOF
}

case "$PART" in
    known) run_known ;;
    mutmut) run_mutmut "$@" ;;
    all) run_known || echo "a known mutation survived (see above)"; run_mutmut "$@" ;;
    *) echo "usage: bash scripts/mutation.sh [known|mutmut [MUTANT_GLOB ...]]" >&2; exit 2 ;;
esac

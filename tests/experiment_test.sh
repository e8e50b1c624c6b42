#!/usr/bin/env bash
# scripts/experiment.py end to end on a tiny data set: the seeds table (with one failing run),
# the block sweep and its plot, a usage error and every run failing; then scripts/scaling.sh
# over three layouts, strong and weak; then scripts/method_bench.py with a traced bp run.
# Usage: experiment_test.sh BLL_TRAIN MAKE_FIXTURE REPO_ROOT
set -u
train=$1 fixture=$2 root=$3
exp=$root/scripts/experiment.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; shift; for f in "$@"; do sed 's/^/     /' "$f"; done; }
# check NAME 'CONDITION': the shell condition holds; on failure show the experiment's stdout and stderr.
check() { if eval "$2"; then ok "$1"; else fail "$1" "$work/out" "$work/err"; fi; }

"$fixture" "$work/data" 256 64 >/dev/null
cat >"$work/tiny.yaml" <<YAML
data: {dataset: fashion-mnist, dir: $work/data}
model: {type: cnn, widths: [4, 8], head_hidden: 0, blocks: 3}
train: {epochs: 1, batch_size: 32}
runtime: {threads: 1, save_params: false}
YAML

# A launcher like launch/mpirun.sh NP CONFIG ... that fails for seed 2.
cat >"$work/launcher.sh" <<SH
#!/usr/bin/env bash
np=\$1; shift
for a in "\$@"; do
  if [ "\$a" = train.seed=2 ]; then echo "launcher: seed 2 fails on purpose" >&2; exit 3; fi
done
exec mpirun -np "\$np" --bind-to none "$train" "\$@"
SH
printf '#!/usr/bin/env bash\necho "launcher: always fails" >&2\nexit 4\n' >"$work/broken.sh"
chmod +x "$work/launcher.sh" "$work/broken.sh"

# seeds: 3 runs, seed 2 fails -> exit 1, a table of the 2 others.
out=$work/seeds
BLL_LAUNCHER=$work/launcher.sh "$exp" seeds "$work/tiny.yaml" --np 2 --seeds 1,2,3 --out "$out" \
  optim.lr=0.002 >"$work/out" 2>"$work/err"
rc=$?
check "seeds with one failing run exits 1" '[ "$rc" -eq 1 ]'
check "seeds writes table.md and table.csv" '[ -s "$out/table.md" ] && [ -s "$out/table.csv" ]'
check "table has N = 2 for the runs that succeeded" \
  'grep -Eq "^\| test_top1 \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ \| 2 \| [0-9.]+ \| [0-9.]+ \|$" "$out/table.md"'
check "table names the failed run" 'grep -q "^failed: seed 2 (exit 3)$" "$out/table.md"'
check "progress line for seed 1" 'grep -Eq "^\[1/3\] seed 1: done in [0-9]+ s: test_top1 [0-9.]+$" "$work/out"'
check "progress line for the failure, with the log tail" \
  'grep -A5 "^\[2/3\] seed 2: FAILED (exit 3) after [0-9]* s; see .*logs/seed_2.log$" "$work/out" |
     grep -q "^    launcher: seed 2 fails on purpose"'
check "progress line for seed 3" 'grep -q "^\[3/3\] seed 3: done" "$work/out"'
check "overrides reach the runs" 'grep -q "optim.lr=0.002" "$work/out"'
# mean and sample std of test_top1 from the per-seed columns (seed_1, seed_3) agree with the CSV.
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i }
  $1 == "test_top1" { a = $col["seed_1"]; b = $col["seed_3"]; m = (a + b) / 2; s = sqrt((a - m)^2 + (b - m)^2)
    found = 1; bad = ($2 - m > 0.001 || m - $2 > 0.001 || $3 - s > 0.001 || s - $3 > 0.001 || $5 != 2) }
  END { exit !(found && !bad) }' "$out/table.csv"
stats=$?
check "mean and std are right" '[ "$stats" -eq 0 ] && grep -q "^| test_top1 | $(awk -F, '"'"'$1 == "test_top1" { printf "%.2f ± %.2f", $2, $3 }'"'"' "$out/table.csv") |" "$out/table.md"'

# sweep: blocks 1 and 3 through the default launcher (launch/mpirun.sh, which honours BLL_TRAIN).
out=$work/sweep
BLL_TRAIN=$train "$exp" sweep "$work/tiny.yaml" --blocks 1,3 --np 2 --seeds 1 --out "$out" >"$work/out" 2>"$work/err"
rc=$?
check "sweep exits 0" '[ "$rc" -eq 0 ]'
check "sweep runs on min(np, blocks) ranks" \
  'grep -q "^\[1/2\] blocks 1, seed 1: running (1 rank) ...$" "$work/out" &&
   grep -q "^\[2/2\] blocks 3, seed 1: running (2 ranks) ...$" "$work/out"'
check "sweep.csv has 2 runs" '[ "$(tail -n +2 "$out/sweep.csv" | grep -c .)" -eq 2 ]'
check "sweep.md has a row per block count" 'grep -Eq "^\| 3 \| [0-9.]+ ± 0.00 \| 1 \|$" "$out/sweep.md"'
check "sweep.png is a PNG" '[ "$(head -c 4 "$out/sweep.png" | od -An -c | tr -d " ")" = "211PNG" ]'

# Usage errors: one line on stderr, exit 2.
"$exp" seeds "$work/absent.yaml" --np 2 >"$work/out" 2>"$work/err"
rc=$?
check "missing config exits 2 with one line" \
  '[ "$rc" -eq 2 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "^experiment.py: " "$work/err"'
"$exp" seeds "$work/tiny.yaml" --np 2 notanoverride >"$work/out" 2>"$work/err"
rc=$?
check "positional without = exits 2" '[ "$rc" -eq 2 ] && grep -q "^experiment.py: .*notanoverride" "$work/err"'

# Every run failing: exit 3, no table.
out=$work/broken
BLL_LAUNCHER=$work/broken.sh "$exp" seeds "$work/tiny.yaml" --np 2 --seeds 1,2 --out "$out" >"$work/out" 2>"$work/err"
rc=$?
check "every run failing exits 3 without a table" '[ "$rc" -eq 3 ] && [ ! -e "$out/table.md" ]'

# scaling.sh: strong and weak over three layouts, calibrated and predicted, table and plot.
out=$work/scaling
"$root/scripts/scaling.sh" "$work/tiny.yaml" --layouts 1x1,1x2,2x1 --methods bll --weak --samples 128 \
  --launcher mpirun --out "$out" >"$work/out" 2>"$work/err"
rc=$?
check "scaling.sh exits 0" '[ "$rc" -eq 0 ] && grep -q "^wrote .*scaling.png" "$work/out"'
check "scaling.sh writes the csv, the table and the plot" '[ -s "$out/scaling.csv" ] && [ -s "$out/scaling.md" ] && [ -s "$out/scaling.png" ]'
check "every run has its measurement and the model's prediction" "python3 -c \"
import csv, sys
rows = list(csv.DictReader(open('$out/scaling.csv')))
layouts = sorted((r['mode'], r['stages'], r['replicas']) for r in rows)
want = sorted([('strong', '1', '1'), ('strong', '1', '2'), ('strong', '2', '1'), ('weak', '1', '1'), ('weak', '1', '2')])
sys.exit(0 if layouts == want and all(float(r['samples_per_sec']) > 0 and float(r['predicted']) > 0 for r in rows) else 1)
\""
check "scaling.sh refuses an unknown method in one line" \
  '! "$root/scripts/scaling.sh" "$work/tiny.yaml" --methods backprop >/dev/null 2>"$work/err" && grep -q "methods" "$work/err"'

# method_bench.py: bll and bp with GPipe on 2 ranks and each alone; the 2-rank bp run is
# traced, and the table gives each rank's idle share and the formula's, from the stage times.
out=$work/methods
BLL_LAUNCHER=$work/launcher.sh "$root/scripts/method_bench.py" "$work/tiny.yaml" --np 2 --samples 128 \
  --methods bll,bp:gpipe:2 --out "$out" >"$work/out" 2>"$work/err"
rc=$?
check "method_bench.py exits 0 and writes the csv, the table and the plot" \
  '[ "$rc" -eq 0 ] && [ -s "$out/methods.csv" ] && [ -s "$out/methods.md" ] && [ -s "$out/methods.png" ]'
check "the traced bp run predicts each rank's idle share; bll and the 1-rank runs have none" "python3 -c \"
import csv, sys
rows = list(csv.DictReader(open('$out/methods.csv')))
bp = [r for r in rows if r['method'] == 'bp' and r['ranks'] == '2']
rest = [r for r in rows if r not in bp]
ok = len(bp) == 2 and all(0 <= float(r['predicted_idle_traced']) < 1 and 0 <= float(r['idle_share']) < 1 for r in bp)
sys.exit(0 if ok and len(rest) == 4 and all(r['predicted_idle_traced'] == '' for r in rest) else 1)
\""

check "played out with equal stages, both schedules give the bubble (K-1)/(M+K-1)" "python3 -c \"
import sys
sys.path.insert(0, '$root/scripts')
from method_bench import play_out
for schedule in ('gpipe', '1f1b'):
    for k in (2, 3, 4):
        for m in (1, 2, 4, 8):
            idle = 1 - m * 3.0 / play_out(schedule, [1.0] * k, [2.0] * k, [0.0] * k, m)
            assert abs(idle - (k - 1) / (m + k - 1)) < 1e-9, (schedule, k, m, idle)
\""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

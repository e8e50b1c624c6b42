#!/usr/bin/env python3
"""Runs the paper's experiments with bll-train and summarises them as tables and a plot.

  scripts/experiment.py seeds CONFIG --np K [--seeds 1,2,3] [--out DIR] [section.key=value ...]
      Trains CONFIG once per seed on K ranks and writes DIR/table.md and DIR/table.csv: per
      metric (test_top1, test_top3, train_top1, and test_seq_acc when present) the mean ± sample
      std, the best of N, N and each seed's value. Default DIR: runs/experiments/<stem>-seeds.

  scripts/experiment.py sweep CONFIG --blocks 1,2,4 --np K [--seeds 1] [--metric test_top1]
                              [--out DIR] [section.key=value ...]
      Trains CONFIG with model.blocks=N for each N (on min(K, N) ranks) and each seed, and writes
      DIR/sweep.csv, DIR/sweep.md and DIR/sweep.png (metric against blocks, error bars = std).
      Default DIR: runs/experiments/<stem>-sweep. Needs matplotlib (Debian: python3-matplotlib).

Each run is `launch/mpirun.sh K CONFIG train.seed=S runtime.run_dir=DIR/runs/<run>
runtime.progress=off runtime.overwrite=true [model.blocks=N] <overrides>`, one after another; its output goes to
DIR/logs/<run>.log and its result is the last line of DIR/runs/<run>/metrics.jsonl. The
environment variable BLL_LAUNCHER replaces launch/mpirun.sh. A failed run is reported and the
others go on; the tables are made from the runs that succeeded.

Exit codes: 0 all runs succeeded, 1 some failed, 2 usage error, 3 every run failed (no table).
"""
import argparse
import csv
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_METRICS = ["test_top1", "test_top3", "train_top1", "test_seq_acc"]
OPTIONAL_METRICS = {"test_seq_acc"}
SWEEP_METRICS = ["test_top1", "test_top3", "train_top1", "train_loss", "test_seq_acc", "samples_per_sec", "seconds"]
MPL_MISSING = "experiment.py: matplotlib is missing (install python3-matplotlib, or run scripts/install_deps.sh)"


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2
        raise UsageError(message)


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'")
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct positive integers, got '{text}'")
    return values


def build_parsers():
    top = Parser(prog="experiment.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = top.add_subparsers(dest="command", required=True, metavar="{seeds,sweep}", parser_class=Parser)
    seeds = subs.add_parser("seeds", help="one run per seed; mean ± std table")
    sweep = subs.add_parser("sweep", help="metric against the number of blocks; table and plot")
    for p in (seeds, sweep):
        p.add_argument("config", metavar="CONFIG", help="run configuration (YAML)")
        p.add_argument("overrides", nargs="*", metavar="section.key=value", help="passed on to every run")
        p.add_argument("--np", type=int, required=True, metavar="K", help="ranks per run (sweep: min(K, N))")
        p.add_argument("--out", metavar="DIR", help="output folder (default runs/experiments/<stem>-<command>)")
    seeds.add_argument("--seeds", type=int_list, default=[1, 2, 3], metavar="S,...", help="seeds (default 1,2,3)")
    sweep.add_argument("--seeds", type=int_list, default=[1], metavar="S,...", help="seeds per block count (default 1)")
    sweep.add_argument("--blocks", type=int_list, required=True, metavar="N,...", help="block counts, e.g. 1,2,4")
    sweep.add_argument("--metric", default="test_top1", choices=SWEEP_METRICS, metavar="METRIC",
                       help="metric to plot: " + ", ".join(SWEEP_METRICS) + " (default test_top1)")
    return top, {"seeds": seeds, "sweep": sweep}


def parse_args(argv):
    top, subs = build_parsers()
    if not argv or argv[0] not in subs:
        top.parse_args(argv)  # prints help or raises UsageError
    args = subs[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    if args.np < 1:
        raise UsageError("--np must be at least 1")
    if not os.path.isfile(args.config):
        raise UsageError(f"{args.config}: no such config file")
    reserved = {"train.seed": "--seeds", "runtime.run_dir": "--out", "model.blocks": "--blocks"}
    for o in args.overrides:
        if not re.match(r"^[A-Za-z_]\w*\.[\w.]+=", o):
            raise UsageError(f"'{o}' is not an override of the form section.key=value")
        key = o.split("=", 1)[0]
        if key in reserved and (key != "model.blocks" or args.command == "sweep"):
            raise UsageError(f"{key} is set by experiment.py; use {reserved[key]}")
    stem = os.path.splitext(os.path.basename(args.config))[0]
    args.stem = stem
    args.out = args.out or os.path.join("runs", "experiments", f"{stem}-{args.command}")
    return args


def import_pyplot():
    """matplotlib.pyplot with the Agg backend; re-executes under Debian's Python when needed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        system = "/usr/bin/python3"
        if (os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system)
                and not os.environ.get("BLL_EXPERIMENT_REEXEC")):
            os.environ["BLL_EXPERIMENT_REEXEC"] = "1"
            sys.stdout.flush()
            os.execv(system, [system, os.path.abspath(sys.argv[0])] + sys.argv[1:])
        print(MPL_MISSING, file=sys.stderr)
        sys.exit(2)


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


def last_metrics(run_dir):
    """The last epoch's record in run_dir/metrics.jsonl, or None."""
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            lines = [line for line in f if line.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def run_one(run, args, index, total):
    """Runs one job; returns (record, None) or (None, reason). run: dict(name, label, ranks, extra)."""
    run_dir = os.path.join(args.out, "runs", run["name"])
    log = os.path.join(args.out, "logs", run["name"] + ".log")
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    try:
        os.remove(os.path.join(run_dir, "metrics.jsonl"))  # never read a stale result
    except FileNotFoundError:
        pass
    launcher = os.environ.get("BLL_LAUNCHER") or os.path.join(ROOT, "launch", "mpirun.sh")
    cmd = [launcher, str(run["ranks"]), args.config, f"train.seed={run['seed']}", f"runtime.run_dir={run_dir}",
           "runtime.progress=off", "runtime.overwrite=true"] + run["extra"] + args.overrides
    args.commands.append(shlex.join(cmd))
    head = f"[{index}/{total}] {run['label']}"
    print(f"{head}: running ({run['ranks']} rank{'s' if run['ranks'] > 1 else ''}) ...", flush=True)
    start = time.monotonic()
    with open(log, "w") as out:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        except OSError as e:
            print(f"experiment.py: cannot start {launcher}: {e.strerror}", file=out)
            rc = 127
    secs = time.monotonic() - start
    record = last_metrics(run_dir) if rc == 0 else None
    if rc != 0:
        reason = f"exit {rc}"
    elif record is None:
        reason = "no metrics.jsonl"
    elif not isinstance(record.get(args.metric), (int, float)):
        record, reason = None, f"no {args.metric} in metrics.jsonl"
    if record is None:
        print(f"{head}: FAILED ({reason}) after {secs:.0f} s; see {log}", flush=True)
        for line in tail(log):
            print("    " + line, flush=True)
        return None, reason
    print(f"{head}: done in {secs:.0f} s: {args.metric} {record[args.metric]:.2f}", flush=True)
    return record, None


def run_all(runs, args):
    """Runs every job; returns the successes as (run, record) and the failures as (run, reason)."""
    args.commands, done, failed = [], [], []
    for i, run in enumerate(runs, 1):
        record, reason = run_one(run, args, i, len(runs))
        (done if record else failed).append((run, record or reason))
    return done, failed


def summary(values):
    """(mean, sample std, best) of a non-empty list."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std, max(values)


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def finish(args, markdown, failed):
    print()
    print(markdown, end="")
    print("\ncommands:")
    for c in args.commands:
        print("  " + c)
    return 1 if failed else 0


def failed_lines(failed):
    return "".join(f"failed: {run['label']} ({reason})\n" for run, reason in failed)


def cmd_seeds(args):
    args.metric = "test_top1"
    runs = [dict(name=f"seed_{s}", label=f"seed {s}", seed=s, ranks=args.np, extra=[]) for s in args.seeds]
    done, failed = run_all(runs, args)
    if not done:
        print("experiment.py: every run failed; no table written", file=sys.stderr)
        return 3
    seeds = [run["seed"] for run, _ in done]
    md = ["| metric | mean ± std | best of N | N | " + " | ".join(f"seed {s}" for s in seeds) + " |",
          "|---" * (4 + len(seeds)) + "|"]
    rows = [["metric", "mean", "std", "best", "n"] + [f"seed_{s}" for s in seeds]]
    for m in SEED_METRICS:
        per_seed = [rec.get(m) if isinstance(rec.get(m), (int, float)) else None for _, rec in done]
        values = [v for v in per_seed if v is not None]
        if not values:
            continue
        mean, std, best = summary(values)
        cells = ["" if v is None else f"{v:.2f}" for v in per_seed]
        md.append(f"| {m} | {mean:.2f} ± {std:.2f} | {best:.2f} | {len(values)} | " + " | ".join(cells) + " |")
        rows.append([m, f"{mean:.4f}", f"{std:.4f}", f"{best:.4f}", len(values)]
                    + ["" if v is None else f"{v:.4f}" for v in per_seed])
    markdown = "\n".join(md) + "\n" + failed_lines(failed)
    write_text(os.path.join(args.out, "table.md"), markdown)
    with open(os.path.join(args.out, "table.csv"), "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return finish(args, markdown, failed)


def plot_sweep(plt, path, blocks, means, stds, args):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(blocks, means, yerr=stds, marker="o", linestyle="-", capsize=3)
    ax.set_xticks(blocks)
    ax.set_xlabel("blocks")
    ax.set_ylabel(args.metric)
    if "top" in args.metric or "acc" in args.metric:  # a percentage: nothing above 100 to show
        ax.set_ylim(top=min(ax.get_ylim()[1], 100.5))
    ax.set_title(args.stem)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_sweep(args):
    plt = import_pyplot()  # before any run: a missing matplotlib must not cost the runs
    runs = [dict(name=f"blocks_{n}_seed_{s}", label=f"blocks {n}, seed {s}", seed=s, blocks=n,
                 ranks=min(args.np, n), extra=[f"model.blocks={n}"]) for n in args.blocks for s in args.seeds]
    done, failed = run_all(runs, args)
    if not done:
        print("experiment.py: every run failed; no table written", file=sys.stderr)
        return 3
    with open(os.path.join(args.out, "sweep.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["blocks", "seed", args.metric])
        w.writerows([run["blocks"], run["seed"], f"{rec[args.metric]:.4f}"] for run, rec in done)
    md = [f"| blocks | {args.metric} mean ± std | seeds |", "|---|---|---|"]
    xs, means, stds = [], [], []
    for n in args.blocks:
        values = [rec[args.metric] for run, rec in done if run["blocks"] == n]
        if values:
            mean, std, _ = summary(values)
            xs.append(n), means.append(mean), stds.append(std)
            md.append(f"| {n} | {mean:.2f} ± {std:.2f} | {len(values)} |")
    markdown = "\n".join(md) + "\n" + failed_lines(failed)
    write_text(os.path.join(args.out, "sweep.md"), markdown)
    plot_sweep(plt, os.path.join(args.out, "sweep.png"), xs, means, stds, args)
    return finish(args, markdown, failed)


def main(argv):
    try:
        args = parse_args(argv)
    except UsageError as e:
        print(f"experiment.py: {e} (see --help)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    try:
        return cmd_seeds(args) if args.command == "seeds" else cmd_sweep(args)
    except KeyboardInterrupt:
        print("\nexperiment.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Benchmarks training methods side by side: the same configuration, data, batch and ranks.

  scripts/method_bench.py CONFIG [--np 2] [--samples 12000] [--threads 1]
                          [--methods bll,bp:gpipe:1,...] [--no-alone] [--timelines] [--reuse]
                          [--out DIR] [section.key=value ...]

Runs one training epoch on --samples samples per method (METHOD[:SCHEDULE[:M]], M =
train.micro_batches) and rank count, one run after another, with --threads intra-op threads per
rank. Unless --no-alone, each method also runs on 1 rank, whose per-block compute times give
each rank's compute time *alone* (the ranks of one machine slow each other down; compare with
that, not with the multi-rank run's own). Writes DIR/methods.csv (a row per run and rank),
DIR/methods.md (a row per run) and DIR/methods.png (samples/s and the busiest rank's idle share).
Per run: samples/s, test top-1 after the epoch, per rank the seconds computing, waiting for
messages (idle) and the rest (communication calls and bookkeeping), the idle share
1 - compute / training time, the same against the compute time alone, the pipeline efficiency
(1 - idle share of the busiest rank), the bubble its schedule's formula predicts ((K-1)/(M+K-1)
for gpipe and 1f1b, fill and drain (K-1)/(n+K-1) over the epoch's n batches for the stream)
and each rank's peak resident memory. The back-propagation runs on several ranks are traced
(runtime.trace), and each rank's idle share is also predicted from its own stage times: the
trace gives each rank's forward and backward time per micro-batch and optimizer step per
mini-batch, and the schedule's order of operations (the same as src/schedules/) is played out
with them, every operation starting once the rank is free and its input (or gradient) is there;
for equal stages this gives the formula, (K-1)/(M+K-1).
--timelines also traces bll and bp:gpipe:4 on the first rank count and draws
DIR/timeline_bll.png and DIR/timeline_gpipe.png (scripts/timeline.py).
--reuse tabulates the runs already in DIR. Default DIR: runs/experiments/<stem>-methods. Needs matplotlib (python3-matplotlib).
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import experiment  # noqa: E402  (run_one, import_pyplot and the result helpers)

DEFAULT_METHODS = "bll,bp:gpipe:1,bp:gpipe:4,bp:1f1b:1,bp:1f1b:4,fa:1f1b:4,greedy,predsim"
END_TO_END = {"bp", "fa"}


def parse_method(text):
    parts = text.split(":")
    method = parts[0]
    if method not in END_TO_END | {"bll", "greedy", "predsim"} or len(parts) > 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not METHOD[:SCHEDULE[:M]] with a known method")
    if method not in END_TO_END and len(parts) > 1:
        raise argparse.ArgumentTypeError(f"'{text}': {method} runs on the stream schedule, without micro-batches")
    schedule = parts[1] if len(parts) > 1 else ("gpipe" if method in END_TO_END else "stream")
    if schedule not in ("stream", "gpipe", "1f1b"):
        raise argparse.ArgumentTypeError(f"'{text}': unknown schedule {schedule}")
    m = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
    label = method if method not in END_TO_END else f"{method} {schedule} M={m}"
    keys = [f"train.method={method}"]
    if method in END_TO_END:
        keys += [f"train.schedule={schedule}", f"train.micro_batches={m}"]
    return dict(method=method, schedule=schedule, M=m, label=label, keys=keys)


def parse_args(argv):
    ap = experiment.Parser(prog="method_bench.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", metavar="CONFIG")
    ap.add_argument("overrides", nargs="*", metavar="section.key=value")
    ap.add_argument("--np", type=experiment.int_list, default=[2], metavar="K,...", help="rank counts (default 2)")
    ap.add_argument("--samples", type=int, default=12000, help="training samples of the epoch (default 12000)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank (default 1)")
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    ap.add_argument("--no-alone", action="store_true", help="skip the 1-rank runs that give compute alone")
    ap.add_argument("--timelines", action="store_true", help="trace bll and bp:gpipe:4 and draw their timelines")
    ap.add_argument("--reuse", action="store_true", help="tabulate the runs already in DIR instead of running them")
    ap.add_argument("--out", metavar="DIR")
    args = ap.parse_intermixed_args(argv)
    args.methods = [parse_method(m) for m in args.methods.split(",") if m]
    if not os.path.isfile(args.config):
        raise experiment.UsageError(f"{args.config}: no such config file")
    for o in args.overrides:
        if not re.match(r"^[A-Za-z_]\w*\.[\w.]+=", o):
            raise experiment.UsageError(f"'{o}' is not an override of the form section.key=value")
    args.stem = os.path.splitext(os.path.basename(args.config))[0]
    args.out = args.out or os.path.join("runs", "experiments", f"{args.stem}-methods")
    args.metric = "samples_per_sec"
    return args


def batch_size(run_dir):
    """train.batch_size from the run's resolved config.yaml."""
    with open(os.path.join(run_dir, "config.yaml")) as f:
        return int(re.search(r"batch_size:\s*(\d+)", f.read()).group(1))


def even_blocks(blocks, ranks):
    """The default placement: contiguous, earlier ranks take the extra blocks."""
    sizes = [blocks // ranks + (1 if r < blocks % ranks else 0) for r in range(ranks)]
    return [sum(sizes[:r]) for r in range(ranks + 1)]


def describe(run, rec, alone):
    """One run's figures: run-level dict and per-rank rows."""
    k, train = run["ranks"], rec["rank_train_seconds"]
    compute, wait, rss = rec["rank_compute_seconds"], rec["rank_wait_seconds"], rec.get("rank_peak_rss_mb", [0] * k)
    n = round(rec["samples_per_sec"] * rec["train_seconds"] / batch_size(run["dir"]))
    m = run["spec"]["M"] if run["spec"]["schedule"] != "stream" else n
    cut = even_blocks(len(rec["block_train_seconds"]), k)
    ranks = []
    for r in range(k):
        solo = sum(alone["block_train_seconds"][cut[r]:cut[r + 1]]) if alone else None
        ranks.append(dict(rank=r, train_s=train[r], compute_s=compute[r], wait_s=wait[r],
                          other_s=max(0.0, train[r] - compute[r] - wait[r]), idle=1 - compute[r] / train[r],
                          idle_alone=(1 - solo / train[r]) if solo is not None else None, rss_mb=rss[r]))
    busiest = max(range(k), key=lambda r: compute[r])
    predicted = traced_bubble(os.path.join(run["dir"], "trace.json"), k, m, n, run["spec"]["schedule"])
    for r in ranks:
        r["predicted"] = predicted[r["rank"]] if predicted else None
    return dict(samples_per_sec=rec["samples_per_sec"], test_top1=rec["test_top1"],
                efficiency=rec["pipeline_efficiency"], bubble=(k - 1) / (m + k - 1),
                predicted=predicted[busiest] if predicted else None, busiest=busiest), ranks


def traced_bubble(path, k, m, n, schedule):
    """Each rank's idle share as its schedule predicts it from the stage times in the run's
    trace (see the top of this file), or None for a run that was not traced."""
    if schedule == "stream" or k < 2 or not os.path.exists(path):
        return None
    f, b, s = [0.0] * k, [0.0] * k, [0.0] * k
    with open(path) as fh:
        for e in json.load(fh)["traceEvents"]:
            if e.get("ph") == "X":
                into = {"forward": f, "backward": b, "optimizer step": s}.get(e["name"])
                if into is not None:
                    into[e["pid"]] += e["dur"] / 1e6
    f, b, s = [x / (n * m) for x in f], [x / (n * m) for x in b], [x / n for x in s]
    period = play_out(schedule, f, b, s, m)
    return [1 - (m * (f[r] + b[r]) + s[r]) / period for r in range(k)]


def schedule_order(schedule, rank, k, m):
    """(forward?, micro-batch) in the order rank runs them, as the schedules in src/schedules/."""
    if schedule == "gpipe":
        return [(True, i) for i in range(m)] + [(False, i) for i in reversed(range(m))]
    warmup = min(k - 1 - rank, m)
    ops = [(True, i) for i in range(warmup)]
    for i in range(m - warmup):
        ops += [(True, warmup + i), (False, i)]
    return ops + [(False, i) for i in range(m - warmup, m)]


def play_out(schedule, f, b, s, m, batches=4):
    """The steady-state time per mini-batch of a pipeline whose rank r takes f[r] per forward
    and b[r] per backward of a micro-batch and s[r] per optimizer step."""
    k = len(f)
    free, first_rank_done = [0.0] * k, []
    for _ in range(batches):
        ops = [schedule_order(schedule, r, k, m) for r in range(k)]
        done = {}  # (forward?, rank, micro-batch) -> when it ended
        at = [0] * k
        while any(at[r] < len(ops[r]) for r in range(k)):
            moved = False
            for r in range(k):
                while at[r] < len(ops[r]):
                    forward, i = ops[r][at[r]]
                    before = (True, r - 1, i) if forward else (False, r + 1, i)
                    ready = 0.0 if forward and r == 0 else done.get(before if r < k - 1 or forward else (True, r, i))
                    if ready is None:
                        break
                    free[r] = max(free[r], ready) + (f[r] if forward else b[r])
                    done[(forward, r, i)] = free[r]
                    at[r] += 1
                    moved = True
            if not moved:
                raise RuntimeError(f"{schedule}: the order of operations deadlocks")
        free = [t + s[r] for r, t in enumerate(free)]
        first_rank_done.append(free[0])
    return first_rank_done[-1] - first_rank_done[-2]


def run_plan(args):
    runs = []
    for spec in args.methods:
        counts = sorted(set(args.np) | ({1} if not args.no_alone else set()))
        for k in counts:
            name = re.sub(r"[^A-Za-z0-9]+", "_", spec["label"]) + f"_np{k}"
            traced = ["runtime.trace=true"] if spec["method"] in END_TO_END and k > 1 else []
            runs.append(dict(name=name, label=f"{spec['label']}, {k} rank{'s' if k > 1 else ''}", seed=1, ranks=k,
                             spec=spec, extra=spec["keys"] + traced + [f"runtime.threads={args.threads}", "train.epochs=1",
                                                                       f"data.train_limit={args.samples}",
                                                                       "runtime.save_params=false"]))
    return runs


def write_tables(args, results):
    fmt = lambda v, f="{:.1%}": "–" if v is None else f.format(v)  # noqa: E731
    joined = lambda ranks, key, f: " / ".join(fmt(r[key], f) for r in ranks)  # noqa: E731
    md = ["| method | ranks | samples/s | vs 1 rank | idle share per rank | the same vs compute alone | "
          "efficiency | predicted bubble, equal stages | predicted idle share per rank, stages as traced | "
          "compute / wait / other s, busiest rank | peak RSS MiB per rank | test top-1 |", "|---" * 12 + "|"]
    rows = [["method", "schedule", "M", "ranks", "rank", "samples_per_sec", "test_top1", "efficiency",
             "predicted_bubble", "predicted_idle_traced", "train_s", "compute_s", "wait_s", "other_s", "idle_share", "idle_share_alone",
             "peak_rss_mb"]]
    for run, fig, ranks in results:
        spec, k = run["spec"], run["ranks"]
        one = next((f for r, f, _ in results if r["spec"] is spec and r["ranks"] == 1), None)
        speedup = f"{fig['samples_per_sec'] / one['samples_per_sec']:.2f}x" if one and k > 1 else "–"
        b = ranks[fig["busiest"]]
        md.append(f"| {spec['label']} | {k} | {fig['samples_per_sec']:.0f} | {speedup} | {joined(ranks, 'idle', '{:.1%}')} | "
                  f"{joined(ranks, 'idle_alone', '{:.1%}')} | {fig['efficiency']:.1%} | {fig['bubble']:.1%} | {joined(ranks, 'predicted', '{:.1%}')} | "
                  f"{b['compute_s']:.1f} / {b['wait_s']:.1f} / {b['other_s']:.1f} | {joined(ranks, 'rss_mb', '{:.0f}')} | "
                  f"{fig['test_top1']:.2f} |")
        for r in ranks:
            rows.append([spec["method"], spec["schedule"], spec["M"], k, r["rank"], f"{fig['samples_per_sec']:.1f}",
                         f"{fig['test_top1']:.2f}", f"{fig['efficiency']:.4f}", f"{fig['bubble']:.4f}",
                         "" if r["predicted"] is None else f"{r['predicted']:.4f}",
                         f"{r['train_s']:.3f}", f"{r['compute_s']:.3f}", f"{r['wait_s']:.3f}", f"{r['other_s']:.3f}",
                         f"{r['idle']:.4f}", "" if r["idle_alone"] is None else f"{r['idle_alone']:.4f}",
                         f"{r['rss_mb']:.0f}"])
    with open(os.path.join(args.out, "methods.csv"), "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return "\n".join(md) + "\n"


def plot(plt, path, results, args):
    multi = [(run, fig) for run, fig, _ in results if run["ranks"] > 1] or [(run, fig) for run, fig, _ in results]
    labels = [f"{run['spec']['label']}\n{run['ranks']} ranks" for run, _ in multi]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 1.1 * len(multi)), 6), sharex=True)
    xs = range(len(multi))
    top.bar(xs, [f["samples_per_sec"] for _, f in multi], color="#4c72b0")
    top.set_ylabel("samples/s")
    top.set_title(f"{args.stem}: {args.samples} samples, {args.threads} thread(s) per rank")
    bottom.bar(xs, [1 - f["efficiency"] for _, f in multi], color="#c44e52", label="measured")
    bottom.plot(xs, [f["bubble"] for _, f in multi], "k_", markersize=18, label="formula, equal stages")
    predicted = [(x, f["predicted"]) for x, (_, f) in zip(xs, multi) if f["predicted"] is not None]
    if predicted:
        bottom.plot([x for x, _ in predicted], [v for _, v in predicted], "bx", label="formula, stages as traced")
    bottom.set_ylabel("idle share, busiest rank")
    bottom.legend(fontsize=8)
    bottom.set_xticks(list(xs))
    bottom.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timelines(args):
    k = max(args.np)
    for spec, png in ((parse_method("bll"), "timeline_bll.png"), (parse_method("bp:gpipe:4"), "timeline_gpipe.png")):
        run = dict(name="trace_" + spec["method"], label=f"{spec['label']} traced", seed=1, ranks=k, spec=spec,
                   extra=spec["keys"] + [f"runtime.threads={args.threads}", "train.epochs=1", "runtime.trace=true",
                                         f"data.train_limit={min(args.samples, 6000)}", "runtime.save_params=false"])
        rec, _ = experiment.run_one(run, args, 1, 1)
        if rec:
            trace = os.path.join(args.out, "runs", run["name"], "trace.json")
            start = rec["train_seconds"] * 0.4  # a window in the steady state
            subprocess.run([sys.executable, os.path.join(experiment.ROOT, "scripts", "timeline.py"), trace,
                            os.path.join(args.out, png), "--from", f"{start:.2f}", "--to", f"{start + 0.6:.2f}",
                            "--title", f"{spec['label']}, {k} ranks"], check=False)


def main(argv):
    try:
        args = parse_args(argv)
    except experiment.UsageError as e:
        print(f"method_bench.py: {e} (see --help)", file=sys.stderr)
        return 2
    plt = experiment.import_pyplot()  # before any run: a missing matplotlib must not cost the runs
    os.makedirs(args.out, exist_ok=True)
    runs = run_plan(args)
    if args.reuse:
        args.commands = []
        done = [(run, experiment.last_metrics(os.path.join(args.out, "runs", run["name"]))) for run in runs]
        failed = [(run, "no metrics.jsonl in DIR") for run, rec in done if rec is None]
        done = [(run, rec) for run, rec in done if rec is not None]
    else:
        done, failed = experiment.run_all(runs, args)
    records = {run["name"]: rec for run, rec in done}
    results = []
    for run, rec in done:
        run["dir"] = os.path.join(args.out, "runs", run["name"])
        alone = next((records[r["name"]] for r, _ in done if r["spec"] is run["spec"] and r["ranks"] == 1), None)
        results.append((run, *describe(run, rec, alone)))
    if not results:
        print("method_bench.py: every run failed; no table written", file=sys.stderr)
        return 3
    markdown = write_tables(args, results) + experiment.failed_lines(failed)
    experiment.write_text(os.path.join(args.out, "methods.md"), markdown)
    plot(plt, os.path.join(args.out, "methods.png"), results, args)
    if args.timelines and not args.reuse:
        timelines(args)
    return experiment.finish(args, markdown, failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

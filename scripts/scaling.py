#!/usr/bin/env python3
"""Scaling benchmark: throughput over layouts of stages x replicas (and nodes), strong and weak,
measured and beside it what the performance model (scripts/perf_model.py) predicts.

  scripts/scaling.sh [CONFIG] [--layouts 1x1,2x1,4x1,1x2,2x2] [--nodes 1] [--methods bll,bp:gpipe:4]
                     [--weak] [--samples 12000] [--threads 1] [--launcher auto|slurm|mpirun]
                     [--reuse] [--one-host] [--out DIR] [section.key=value ...]

A layout SxR is S pipeline stages x R replicas (runtime.replicas=R) on S*R ranks. Strong
scaling keeps the configuration's global batch and --samples training samples for every
layout; --weak also runs each layout with R times the batch and the samples (every replica
keeps the 1-replica work). Each method (METHOD[:SCHEDULE[:M]]) runs every layout for one epoch,
one run after another, with --threads intra-op threads per rank, on --nodes nodes (a list: each
layout runs on each node count that divides its ranks). --reuse tabulates the runs already in DIR.
--one-host says that the nodes are one machine (scripts/local_slurm.sh): the model then shares
its cores and its link among them.

Runs go through SLURM (launch/sbatch_wait.sh: sbatch --wait, one job per run) when sbatch and a
responding controller are there (--launcher auto) and through launch/mpirun.sh otherwise (one
node). The model is calibrated from the 1x1 runs of each method at the batch and at a quarter
of it (per-block fixed and per-sample costs, from metrics.jsonl), the alpha sizes from the
1-rank run's plan, the parameters per block from metrics.jsonl, and this machine's cores and
link from `nproc` and bll-transport-bench; it then predicts every other run.

Writes DIR/scaling.csv (a row per run), DIR/scaling.md (the table: measured samples/s, speed-up
and efficiency against the 1x1 run times the ranks, the prediction and its error) and
DIR/scaling.png (throughput and efficiency against ranks, with the ideal line). Default DIR:
runs/experiments/<stem>-scaling. Needs matplotlib for the plot (python3-matplotlib).
"""
import argparse
import csv
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import experiment  # noqa: E402  (run_one, import_pyplot)
import perf_model as pm  # noqa: E402

ROOT = experiment.ROOT


def parse_args(argv):
    p = experiment.Parser(prog="scaling.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("config", nargs="?", default="configs/fmnist_cnn.yaml")
    p.add_argument("--layouts", default="1x1,2x1,4x1,1x2,2x2")
    p.add_argument("--nodes", type=experiment.int_list, default=[1])
    p.add_argument("--methods", default="bll,bp:gpipe:4")
    p.add_argument("--weak", action="store_true")
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--launcher", choices=["auto", "slurm", "mpirun"], default="auto")
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--one-host", action="store_true")
    p.add_argument("--out")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if "=" not in a or a.startswith("-")]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides = rest
    try:
        args.layouts = [tuple(int(x) for x in l.split("x")) for l in args.layouts.split(",")]
    except ValueError:
        p.error(f"--layouts: SxR,SxR,... expected, got {args.layouts}")
    if (1, 1) not in args.layouts:
        args.layouts.insert(0, (1, 1))  # the reference of speed-ups and the model's calibration
    args.methods = [method_spec(m, p) for m in args.methods.split(",")]
    stem = os.path.splitext(os.path.basename(args.config))[0]
    args.out = os.path.abspath(args.out or os.path.join(ROOT, "runs", "experiments", f"{stem}-scaling"))
    args.metric = "samples_per_sec"
    return args


def method_spec(text, p):
    parts = text.split(":")
    method = parts[0]
    if method not in ("bll", "bp", "fa", "greedy", "predsim") or len(parts) > 3:
        p.error(f"--methods: METHOD[:SCHEDULE[:M]] expected, got {text}")
    schedule = parts[1] if len(parts) > 1 else ("stream" if method in ("bll", "greedy", "predsim") else "gpipe")
    m = int(parts[2]) if len(parts) > 2 else 1
    keys = [f"train.method={method}", f"train.schedule={schedule}", f"train.micro_batches={m}"]
    return dict(label=text, method=method, schedule=schedule, M=m, keys=keys)


def slurm_ready():
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def config_batch(args):
    for o in reversed(args.overrides):
        if o.startswith("train.batch_size="):
            return int(o.split("=", 1)[1])
    text = open(os.path.join(ROOT, args.config) if not os.path.isabs(args.config) else args.config).read()
    m = re.search(r"batch_size:\s*(\d+)", text)
    if not m:
        raise SystemExit(f"scaling.sh: no train.batch_size in {args.config}; give train.batch_size=N")
    return int(m.group(1))


def plan(args, batch):
    runs = []
    for spec in args.methods:
        name = re.sub(r"[^A-Za-z0-9]+", "_", spec["label"])
        base = spec["keys"] + [f"runtime.threads={args.threads}", "train.epochs=1", "runtime.save_params=false"]
        # Calibration: the 1x1 layout at a quarter of the batch (the 1x1 run itself is in the grid).
        runs.append(dict(name=f"{name}_calib", label=f"{spec['label']}, 1x1, batch {batch // 4} (calibration)",
                         seed=1, ranks=1, nodes=1, spec=spec, S=1, R=1, batch=batch // 4, samples=args.samples // 4,
                         mode="calibration",
                         extra=base + [f"train.batch_size={batch // 4}", f"data.train_limit={args.samples // 4}"]))
        for mode in ["strong"] + (["weak"] if args.weak else []):
            for s, r in args.layouts:
                if mode == "weak" and r == 1 and (s, r) != (1, 1):
                    continue  # the same run as strong
                for nodes in args.nodes:
                    if (s * r) % nodes or (nodes > 1 and args.launcher_used != "slurm"):
                        continue
                    grow = r if mode == "weak" else 1
                    b, n = batch * grow, args.samples * grow
                    runs.append(dict(name=f"{name}_{mode}_{s}x{r}_n{nodes}", seed=1, ranks=s * r, nodes=nodes,
                                     label=f"{spec['label']}, {s}x{r} on {nodes} node(s), {mode}", spec=spec,
                                     S=s, R=r, batch=b, samples=n, mode=mode,
                                     extra=base + [f"runtime.replicas={r}", f"train.batch_size={b}",
                                                   f"data.train_limit={n}"]))
    return runs


def run_all(args, runs):
    args.commands, done = [], []
    for i, run in enumerate(runs, 1):
        os.environ["BLL_NODES"] = str(run["nodes"])
        os.environ["BLL_THREADS"] = str(args.threads)
        if args.reuse:
            record = experiment.last_metrics(os.path.join(args.out, "runs", run["name"]))
        else:
            record, _ = experiment.run_one(run, args, i, len(runs))
        if record:
            run["record"] = record
            run["log"] = os.path.join(args.out, "logs", run["name"] + ".log")
            done.append(run)
    return done


def alpha_bytes(log, blocks):
    """Bytes per sample of each block's output (fp32), from the plan bll-train prints."""
    out = [0] * blocks
    for line in open(log, errors="replace"):
        m = re.search(r"block (\d+) \[[0-9,]+\] -> \[([0-9,]+)\]", line)
        if m:
            n = 1
            for d in m.group(2).split(","):
                n *= int(d)
            out[int(m.group(1))] = 4 * n
    return out


def link_cost(args):
    """(bytes/s, latency s, measured?) between two ranks here: a least-squares line through the
    seconds per alpha message against its bytes, from bll-transport-bench."""
    bench = os.path.join(ROOT, "build", "bll-transport-bench")
    cmd = [os.path.join(ROOT, "launch", "mpirun.sh"), "2", args.config] + args.overrides
    env = dict(os.environ, BLL_TRAIN=bench)
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    args.commands.append(" ".join(cmd) + "   (with BLL_TRAIN=build/bll-transport-bench)")
    pts = [(float(b), float(us) * 1e-6) for b, us in re.findall(r"^\d+,[0-9x]+,([0-9.]+),([0-9.]+),", text, re.M)]
    if len(pts) < 2:
        return 5e9, 20e-6, False
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    var = sum((p[0] - mx) ** 2 for p in pts)
    slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / var if var else 0
    if slope <= 0:
        return 5e9, 20e-6, False
    return 1 / slope, max(0.0, my - slope * mx), True


def contention(args, runs):
    """Speed of each of two single-threaded ranks busy at once, against one alone: the first
    method's 1x1 run, twice at the same time (independent jobs), over the same run alone."""
    alone = next((r for r in runs if r["S"] == r["R"] == 1 and r["mode"] == "strong"), None)
    if not alone or (os.cpu_count() or 1) // args.threads < 2:
        return 1.0
    launcher = os.path.join(ROOT, "launch", "mpirun.sh")
    procs, dirs = [], []
    for i in range(2):
        d = os.path.join(args.out, "runs", f"contention_{i}")
        dirs.append(d)
        cmd = [launcher, "1", args.config, "train.seed=1", f"runtime.run_dir={d}", "runtime.progress=off",
               "runtime.overwrite=true"] + alone["extra"] + args.overrides
        args.commands.append(shlex.join(cmd) + "   (two at once)")
        if not args.reuse:
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    both = [experiment.last_metrics(d) for d in dirs] if not any(p.wait() for p in procs) else []
    if not both or not all(both):
        return 1.0
    return sum(rec["samples_per_sec"] for rec in both) / 2 / alone["record"]["samples_per_sec"]


def calibrate(runs, spec):
    """The method's Workload from its 1x1 runs at the batch and a quarter of it."""
    mine = [r for r in runs if r["spec"] is spec and r["S"] == 1 and r["R"] == 1]
    full = next((r for r in mine if r["mode"] == "strong"), None)
    part = next((r for r in mine if r["mode"] == "calibration"), None)
    if not full or not part:
        return None
    per_step = []
    for r in (full, part):
        rec = r["record"]
        steps = rec["samples_per_sec"] * rec["train_seconds"] / r["batch"]
        per_step.append([s / steps for s in rec["block_train_seconds"]])
    bf, bp_ = full["batch"], part["batch"]
    per = [max(0.0, (a - b) / (bf - bp_)) for a, b in zip(*per_step)]
    fixed = [max(0.0, a - c * bf) for a, c in zip(per_step[0], per)]
    micro = [f / spec["M"] for f in fixed]  # under bp a step is M micro-batches, each with the fixed part
    rec = full["record"]
    return pm.Workload(fixed=fixed, per_sample=per, bp_fixed=micro, bp_per_sample=per,
                       alpha_bytes=alpha_bytes(full["log"], len(per)),
                       params=rec.get("block_params") or [0] * len(per))


def predict(run, w, machine, one_host):
    spec = run["spec"]
    w.batches = run["samples"] // run["batch"]
    m = pm.Machine(**{**machine.__dict__, "ranks_per_node": run["ranks"] // run["nodes"]})
    if one_host:  # the nodes share this machine's cores and its memory
        m.cores = max(1, machine.cores // run["nodes"])
        m.net_bw, m.net_latency = m.node_bw, m.node_latency
    if spec["schedule"] == "stream":
        return pm.predict(w, m, run["S"], run["R"], run["batch"])
    return pm.predict(w, m, run["S"], run["R"], run["batch"], "gpipe", spec["M"])


def tabulate(args, runs, machine):
    rows, md = [], []
    md.append("| method | mode | nodes | stages x replicas | ranks | global batch | samples/s | speed-up | efficiency "
              "| predicted | error |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.methods:
        w = calibrate(runs, spec)
        ref = next((r for r in runs if r["spec"] is spec and r["S"] == r["R"] == 1 and r["mode"] == "strong"), None)
        for r in runs:
            if r["spec"] is not spec or r["mode"] == "calibration":
                continue
            got = r["record"]["samples_per_sec"]
            base = ref["record"]["samples_per_sec"] if ref else 0
            speedup = got / base if base else 0
            eff = speedup / r["ranks"] if base else 0
            pred = predict(r, w, machine, args.one_host) if w else 0
            err = (pred - got) / got * 100 if pred else 0
            rows.append(dict(method=spec["label"], mode=r["mode"], nodes=r["nodes"], stages=r["S"], replicas=r["R"],
                             ranks=r["ranks"], global_batch=r["batch"], samples_per_sec=round(got, 1),
                             speedup=round(speedup, 3), efficiency=round(eff, 3), predicted=round(pred, 1),
                             error_pct=round(err, 1), launcher=args.launcher_used))
            md.append(f"| {spec['label']} | {r['mode']} | {r['nodes']} | {r['S']} x {r['R']} | {r['ranks']} | {r['batch']} "
                      f"| {got:.0f} | {speedup:.2f}x | {eff:.0%} | {pred:.0f} | {err:+.0f}% |")
    return rows, "\n".join(md) + "\n"


def plot(plt, args, rows):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for label in dict.fromkeys(r["method"] for r in rows):
        for mode, style in (("strong", "o"), ("weak", "s")):
            pts = sorted((r["ranks"], r["samples_per_sec"], r["predicted"], r["efficiency"], r["stages"], r["replicas"],
                          r["nodes"]) for r in rows if r["method"] == label and r["mode"] == mode)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            line, = top.plot(xs, [p[1] for p in pts], style, label=f"{label}, {mode} (measured)")
            top.plot(xs, [p[2] for p in pts], "x", color=line.get_color(), label=f"{label}, {mode} (model)")
            bottom.plot(xs, [p[3] for p in pts], style, color=line.get_color(), label=f"{label}, {mode}")
            for p in pts:
                name = f"{p[4]}x{p[5]}" + (f" on {p[6]} nodes" if p[6] > 1 else "")
                top.annotate(name, (p[0], p[1]), fontsize=7, textcoords="offset points", xytext=(3, 3))
            if mode == "strong":
                one = next((p[1] for p in pts if p[0] == 1), None)
                if one:
                    top.plot([1, max(xs)], [one, one * max(xs)], color=line.get_color(), alpha=0.25, lw=4,
                             label=f"{label}: ideal")
    bottom.axhline(1.0, color="grey", lw=1)
    top.set_ylabel("training samples/s")
    bottom.set_ylabel("efficiency (speed-up / ranks)")
    bottom.set_xlabel("ranks (stages x replicas)")
    top.legend(fontsize=7)
    top.set_title(f"{os.path.basename(args.config)}: scaling ({args.launcher_used}, {args.threads} thread/rank)")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "scaling.png"), dpi=110)


def main(argv):
    try:
        args = parse_args(argv)
    except experiment.UsageError as e:
        print(f"scaling.sh: {e}", file=sys.stderr)
        return 2
    if not os.access(os.path.join(ROOT, "build", "bll-train"), os.X_OK):
        print("scaling.sh: build first (scripts/build.sh)", file=sys.stderr)
        return 2
    ready = slurm_ready() if not args.reuse else args.launcher == "slurm"  # reuse: as the runs were made
    if args.launcher == "slurm" and not ready:
        print("scaling.sh: --launcher slurm, but sbatch/sinfo are missing or the controller does not answer",
              file=sys.stderr)
        return 2
    args.launcher_used = "slurm" if (args.launcher == "slurm" or (args.launcher == "auto" and ready)) else "mpirun"
    if args.launcher_used == "slurm":
        os.environ["BLL_LAUNCHER"] = os.path.join(ROOT, "launch", "sbatch_wait.sh")
    plt = experiment.import_pyplot()  # before any run: a missing matplotlib must not cost the runs
    os.makedirs(args.out, exist_ok=True)
    batch = config_batch(args)
    runs = run_all(args, plan(args, batch))
    if not runs:
        print("scaling.sh: every run failed", file=sys.stderr)
        return 3
    bw, latency, measured = link_cost(args)
    gamma = contention(args, runs)
    machine = pm.Machine(ranks_per_node=1, cores=max(1, (os.cpu_count() or 1) // args.threads), contention=gamma,
                         node_bw=bw, node_latency=latency, net_bw=bw / 10, net_latency=10 * latency, overlap=False)
    rows, md = tabulate(args, runs, machine)
    note = (f"\nModel inputs: {machine.cores} core(s) per node for the ranks' threads; contention {gamma:.2f} (two "
            "1x1 runs at once, each against one alone); "
            f"link {bw / 1e9:.2f} GB/s and {latency * 1e6:.0f} us latency "
            f"({'fitted to bll-transport-bench' if measured else 'assumed: the bench gave nothing'}); between nodes "
            "a tenth of the bandwidth and ten times the latency (assumed).\n")
    md += note
    with open(os.path.join(args.out, "scaling.csv"), "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        out.writeheader()
        out.writerows(rows)
    experiment.write_text(os.path.join(args.out, "scaling.md"), md)
    plot(plt, args, rows)
    print()
    print(md, end="")
    print("\ncommands:")
    for c in args.commands:
        print("  " + c)
    print(f"\nwrote {args.out}/scaling.csv, scaling.md, scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""bll against the plain PyTorch loop of the same network, side by side in one invocation.

For each method (bll's BLL and back-propagation), runs bll-train in one process and
scripts/torch_reference.py in turn, PAIRS times (AB, BA, AB, ...), on the same data, batch,
threads and device, and prints a Markdown table: each pair's training samples/s of both and
their ratio, then each method's median ratio. Both figures time the same thing: every training
batch of one epoch (bll's metrics.jsonl samples_per_sec; the reference's clock runs from its
first batch to the read-back after its last).

  scripts/reference_bench.py [--pairs 3] [--model cnn|resnet18] [--width 16] [--device cpu|cuda]
                             [--precision fp32|bf16] [--samples 12000] [--threads 2]

Both run with OPENBLAS_NUM_THREADS=1 and glibc's malloc kept from returning memory to the
kernel (bll does that itself, runtime.keep_freed_memory; the reference gets the same settings as
MALLOC_* variables). Needs bll built (scripts/build.sh), the data (scripts/get_data.sh
fashion-mnist) and a Python with torch (--python; Debian's python3-torch on the CPU).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
             "MALLOC_TOP_PAD_": str(64 << 20)}


def bll_run(args, method, out):
    config = "configs/fmnist_cnn.yaml" if args.model == "cnn" else "configs/fmnist_resnet18.yaml"
    keys = [f"train.method={method}", "train.epochs=1", f"data.train_limit={args.samples}", "data.test_limit=256",
            "data.hflip=false", f"runtime.threads={args.threads}", "runtime.progress=off", "runtime.save_params=false",
            f"runtime.device={args.device}", f"runtime.precision={args.precision}", f"data.dir={args.data}",
            f"runtime.run_dir={out}", "runtime.overwrite=true"]
    if args.model == "resnet18":
        keys.append(f"model.width={args.width}")
    cmd = [args.bll, config] + keys
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"reference_bench: bll-train failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return json.loads(f.readline())["samples_per_sec"]


def reference_run(args, method):
    cmd = [args.python, os.path.join(ROOT, "scripts", "torch_reference.py"), "--method", method, "--model", args.model,
           "--width", str(args.width), "--samples", str(args.samples), "--threads", str(args.threads),
           "--device", args.device, "--precision", args.precision, "--data", args.data]
    if args.model == "resnet18":
        cmd += ["--readout-pool", "4"]  # as configs/fmnist_resnet18.yaml
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **ALLOCATOR)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"reference_bench: the reference failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["samples_per_sec"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--methods", default="bll,bp")
    p.add_argument("--model", choices=["cnn", "resnet18"], default="cnn")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="data/fashion-mnist")
    p.add_argument("--bll", default=os.path.join(ROOT, "build", "bll-train"))
    p.add_argument("--python", default="/usr/bin/python3", help="the Python whose torch runs the reference")
    args = p.parse_args()

    what = f"{args.model}{'' if args.model == 'cnn' else ' width ' + str(args.width)}, {args.device}, {args.precision}"
    print(f"| method ({what}) | pair | bll samples/s | PyTorch loop samples/s | bll / loop |")
    print("|---|---|---|---|---|")
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            ratios = []
            for i in range(args.pairs):
                order = ["bll", "ref"] if i % 2 == 0 else ["ref", "bll"]
                got = {}
                for who in order:
                    got[who] = bll_run(args, method, os.path.join(tmp, f"{method}{i}")) if who == "bll" else \
                        reference_run(args, method)
                ratios.append(got["bll"] / got["ref"])
                print(f"| {method} | {i + 1} | {got['bll']:.0f} | {got['ref']:.0f} | {ratios[-1]:.2f} |", flush=True)
            medians[method] = statistics.median(ratios)
    for method, m in medians.items():
        print(f"\n{method}: median bll / PyTorch loop {m:.2f}")


if __name__ == "__main__":
    main()

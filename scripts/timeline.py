#!/usr/bin/env python3
"""Draws a run's trace.json (runtime.trace: true) as a timeline PNG, one row per rank.

    scripts/timeline.py RUN_DIR/trace.json OUT.png [--from S] [--to S] [--title TEXT]

Compute events (forward [+ local loss], backward, optimizer step, evaluation) are drawn in
colour, waits in grey, sends and batch loading thin; --from/--to pick a window in seconds.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {
    "forward + local loss": "#4c72b0",
    "forward": "#4c72b0",
    "backward": "#dd8452",
    "optimizer step": "#55a868",
    "evaluation": "#8172b3",
    "load batch": "#937860",
    "send alpha": "#c44e52",
    "send gradient": "#da8bc3",
}
WAIT = "#bbbbbb"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--from", dest="start", type=float, default=None, help="window start, seconds")
    ap.add_argument("--to", dest="end", type=float, default=None, help="window end, seconds")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    events = [e for e in json.load(open(args.trace))["traceEvents"] if e.get("ph") == "X"]
    if not events:
        raise SystemExit(f"{args.trace}: no events (was runtime.trace on?)")
    ranks = sorted({e["pid"] for e in events})
    start = args.start if args.start is not None else min(e["ts"] for e in events) / 1e6
    end = args.end if args.end is not None else max(e["ts"] + e["dur"] for e in events) / 1e6
    fig, ax = plt.subplots(figsize=(12, 0.6 * len(ranks) + 1.8))
    for e in events:
        t0, t1 = e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6
        if t1 < start or t0 > end:
            continue
        row = ranks.index(e["pid"])
        colour = WAIT if e["cat"] == "wait" else COLOURS.get(e["name"], "#333333")
        ax.broken_barh([(t0, t1 - t0)], (row - 0.4, 0.8), facecolors=colour, linewidth=0)
    ax.set_xlim(start, end)
    ax.set_yticks(range(len(ranks)), [f"rank {r}" for r in ranks])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in list(COLOURS.values()) + [WAIT]]
    fig.legend(handles, list(COLOURS) + ["waiting"], ncol=len(handles), fontsize=7, loc="lower center")
    if args.title:
        ax.set_title(args.title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()

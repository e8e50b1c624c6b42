#!/usr/bin/env python3
"""bll's performance model: training throughput of a layout predicted from per-block costs and
the machine (docs/scaling.md derives it; scripts/scaling.py checks it against runs).

  scripts/perf_model.py predict [--gpus 8,64,512] [--batch 4096] [--fixed-ms 0.25]
      The 8/64/512-GPU predictions of docs/scaling.md: ResNet-50 on ImageNet split into 16
      blocks, on H100s with NVLink inside a node and 400 Gb/s InfiniBand between nodes (the
      assumptions are the H100 and RESNET50 constants below), every stages x replicas layout,
      for BLL's stream and for GPipe/1F1B. Prints Markdown.

The model, for S stages x R replicas, a global batch B (b = B / R per replica) and one rank per
processor:
  compute   block k costs o_k + c_k * n seconds for a step on n samples (a fixed part: kernel
            launches, the optimizer step; a per-sample part). A stage's cost is the sum over its
            blocks, divided by the speed its rank gets on a shared node (speed()).
  messages  alpha of block k is a_k bytes per sample; a message of m bytes over a link costs
            latency + m / bandwidth; the link is the node's own between ranks of one node.
  sync      sync grads: an all-reduce of the stage's p_s parameters (4 bytes each) over the
            R replicas after every step, 2 (R - 1) / R * 4 p_s / bandwidth (a ring's) +
            2 ceil(log2 R) latency (a tree's), over the slowest link the replicas of the stage span.
  stream    (BLL) every stage runs its own steps as soon as a batch arrives, so the pipeline
            runs at the pace of its slowest stage: period = max_s (compute_s(b) + comm_s + sync_s),
            where comm_s is the time stage s spends on its messages (on the CPU the copies are
            the rank's own work; with NCCL on a GPU they overlap compute and count only where
            they are longer). Throughput = B / period, times n / (n + S - 1) for filling and
            draining the pipeline over an epoch of n batches.
  gpipe     (back-propagation, GPipe and 1F1B alike) a batch is M micro-batches of b / M; the
            last micro-batch leaves the last stage after (M + S - 1) micro-batch slots of the
            slowest stage's forward and backward, then every stage syncs:
            period = (M + S - 1) * max_s (bp_compute_s(b / M) + 2 comm_s(b / M)) + max_s sync_s.
"""
import argparse
import math
import sys
from dataclasses import dataclass, field


@dataclass
class Machine:
    ranks_per_node: int          # ranks (GPUs, or single-threaded CPU ranks) per node
    cores: int = 0               # CPU only: cores per node shared by its ranks (0: a GPU per rank)
    contention: float = 1.0      # CPU only: speed of each of two busy cores next to each other (0.7 here)
    node_bw: float = 1e10        # bytes/s between ranks of one node
    node_latency: float = 1e-5   # s
    net_bw: float = 1e10         # bytes/s between nodes (per rank)
    net_latency: float = 1e-5    # s
    overlap: bool = False        # messages overlap compute (GPU with NCCL) or cost the rank (CPU)


@dataclass
class Workload:
    fixed: list                  # o_k, seconds per step of block k (BLL local step)
    per_sample: list             # c_k, seconds per sample of block k (BLL local step)
    alpha_bytes: list            # a_k, bytes per sample of block k's output message
    params: list                 # p_k, parameters of block k (gradients averaged over replicas)
    bp_fixed: list = field(default_factory=list)       # the same for a forward + backward under bp
    bp_per_sample: list = field(default_factory=list)
    batches: int = 0             # batches in an epoch (fill and drain); 0: ignore


def even_split(blocks, stages):
    """Contiguous block ranges, earlier stages taking the extra blocks (as bll's Placement)."""
    base, extra = divmod(blocks, stages)
    cuts, at = [], 0
    for s in range(stages):
        n = base + (1 if s < extra else 0)
        cuts.append((at, at + n))
        at += n
    return cuts


def contention(m, ranks_on_node):
    """Speed of a busy core next to other busy ones (CPU), or 1 (a processor per rank)."""
    return m.contention if m.cores and min(m.cores, ranks_on_node) > 1 else 1.0


def link(m, rank_a, rank_b):
    same = rank_a // m.ranks_per_node == rank_b // m.ranks_per_node
    return (m.node_bw, m.node_latency) if same else (m.net_bw, m.net_latency)


def message_time(m, nbytes, rank_a, rank_b):
    bw, lat = link(m, rank_a, rank_b)
    return lat + nbytes / bw


def allreduce_time(m, nbytes, ranks):
    r = len(ranks)
    if r < 2 or nbytes == 0:
        return 0.0
    slowest = min((link(m, a, b) for a, b in zip(ranks, ranks[1:] + ranks[:1])), key=lambda x: x[0])
    bw, lat = slowest
    # Bandwidth as a ring; latency as a tree (NCCL switches to trees when rings get long).
    return 2 * (r - 1) / r * nbytes / bw + 2 * math.ceil(math.log2(r)) * lat


def stage_terms(w, m, stages, replicas, n, bp):
    """Per stage: (compute seconds for a step on n samples at a whole processor's speed, message
    seconds, sync seconds)."""
    fixed = w.bp_fixed if bp else w.fixed
    per = w.bp_per_sample if bp else w.per_sample
    out = []
    for s, (lo, hi) in enumerate(even_split(len(w.fixed), stages)):
        compute = sum(fixed[k] + per[k] * n for k in range(lo, hi))
        comm = 0.0
        if s > 0:
            comm += message_time(m, w.alpha_bytes[lo - 1] * n, s - 1, s)
        if s + 1 < stages:
            comm += message_time(m, w.alpha_bytes[hi - 1] * n, s, s + 1)
        sync = allreduce_time(m, 4 * sum(w.params[lo:hi]), [r * stages + s for r in range(replicas)])
        out.append((compute, comm, sync))
    return out


def node_bound(m, stages, replicas, work):
    """On CPU nodes: the busiest node's work (work[s]: seconds of stage s's rank per period at a
    whole core's speed) over its cores. A waiting rank sleeps and leaves its core to the others,
    so a node with more ranks than cores is bounded by its total work, not by an even share."""
    if not m.cores:
        return 0.0
    world = stages * replicas
    worst = 0.0
    for first in range(0, world, m.ranks_per_node):
        ranks = range(first, min(world, first + m.ranks_per_node))
        g = contention(m, len(ranks))
        worst = max(worst, sum(work[r % stages] for r in ranks) / (min(m.cores, len(ranks)) * g))
    return worst


def predict(w, m, stages, replicas, batch, schedule="stream", micro_batches=1):
    """Training samples per second of the whole grid. The period of a batch is the longer of
    the slowest stage (its compute at the speed of a busy core, plus messages and sync) and,
    on CPU nodes, the busiest node's total work over its cores."""
    b = batch / replicas
    g = contention(m, min(m.ranks_per_node, stages * replicas))
    if schedule == "stream":
        terms = stage_terms(w, m, stages, replicas, b, bp=False)
        own = [(max(c / g, x) if m.overlap else c / g + x) + y for c, x, y in terms]
        period = max(max(own), node_bound(m, stages, replicas, [c + x + y for c, x, y in terms]))
        fill = w.batches / (w.batches + stages - 1) if w.batches else 1.0
        return batch / period * fill
    mb = b / micro_batches
    terms = stage_terms(w, m, stages, replicas, mb, bp=True)
    slot = max((max(c / g, 2 * x) if m.overlap else c / g + 2 * x) for c, x, _ in terms)
    sync = max(y for _, _, y in terms)
    work = [micro_batches * (c + 2 * x) + y for c, x, y in terms]
    period = max((micro_batches + stages - 1) * slot + sync, node_bound(m, stages, replicas, work))
    return batch / period


# ---- the stated hardware and workload of docs/scaling.md's predictions ---------------------------
# H100 SXM nodes of 8 GPUs: NVLink/NVSwitch inside a node (NCCL reaches ~350 GB/s of the 450 GB/s
# per direction), one 400 Gb/s InfiniBand NIC per GPU between nodes (~45 GB/s), latencies of a
# few microseconds; NCCL on separate streams, so messages overlap compute.
H100 = Machine(ranks_per_node=8, node_bw=350e9, node_latency=5e-6, net_bw=45e9, net_latency=10e-6, overlap=True)

# ResNet-50 on 224x224 ImageNet in bf16, its 16 bottleneck blocks as 16 bll blocks (the stem
# with the first, the classifier with the last). Training runs at about 3,000 images/s on one
# H100 (MLPerf-class implementations), i.e. ~330 us per image for forward and backward; BLL's
# local losses and feedback add ~10% (assumed), and each block costs ~0.25 ms per step in
# launches and its optimizer step (assumed; CUDA graphs would lower it). The blocks of a stage
# of ResNet cost about the same FLOPs, so the per-sample cost is spread evenly. Alpha: the
# bottleneck outputs, 256x56x56, 512x28x28, 1024x14x14, 2048x7x7 values in bf16.
_R50_ALPHA = [256 * 56 * 56] * 3 + [512 * 28 * 28] * 4 + [1024 * 14 * 14] * 6 + [2048 * 7 * 7] * 3
_R50_PARAMS = [0.07e6] * 3 + [0.30e6] * 4 + [1.18e6] * 6 + [5.0e6] * 3
_R50_PARAMS[0] += 0.01e6   # stem
_R50_PARAMS[-1] += 2.05e6  # classifier
RESNET50 = Workload(fixed=[0.25e-3] * 16, per_sample=[330e-6 * 1.1 / 16] * 16,
                    alpha_bytes=[2 * a for a in _R50_ALPHA], params=_R50_PARAMS,
                    bp_fixed=[0.25e-3] * 16, bp_per_sample=[330e-6 / 16] * 16, batches=1_281_167 // 4096)


def layouts(gpus, max_stages):
    s = 1
    while s <= min(gpus, max_stages):
        if gpus % s == 0:
            yield s, gpus // s
        s *= 2


def cmd_predict(args):
    w = RESNET50
    w.fixed = w.bp_fixed = [args.fixed_ms * 1e-3] * len(w.fixed)
    print(f"Predicted training throughput (images/s), ResNet-50 / ImageNet in 16 blocks, global batch {args.batch}, "
          f"{args.fixed_ms} ms fixed cost per block and step, H100 + NVLink in a node of 8, 400 Gb/s InfiniBand "
          "between nodes (scripts/perf_model.py predict):\n")
    print("| GPUs | stages x replicas | batch per replica | BLL stream | per GPU | GPipe/1F1B, M = min(4 S, b) | per GPU |")
    print("|---|---|---|---|---|---|---|")
    for gpus in args.gpus:
        for s, r in layouts(gpus, 16):
            if args.batch % r:
                continue
            bll = predict(w, H100, s, r, args.batch)
            bp = predict(w, H100, s, r, args.batch, "gpipe", micro_batches=min(4 * s, args.batch // r) if s > 1 else 1)
            print(f"| {gpus} | {s} x {r} | {args.batch // r} | {bll:,.0f} | {bll / gpus:,.0f} | {bp:,.0f} | {bp / gpus:,.0f} |")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("predict")
    pr.add_argument("--gpus", type=lambda t: [int(x) for x in t.split(",")], default=[8, 64, 512])
    pr.add_argument("--batch", type=int, default=4096)
    pr.add_argument("--fixed-ms", type=float, default=0.25, help="fixed cost per block and step (micro-batch under bp)")
    args = p.parse_args(argv)
    if args.cmd == "predict":
        cmd_predict(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

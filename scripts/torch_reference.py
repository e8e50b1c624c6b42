#!/usr/bin/env python3
"""A plain PyTorch loop of bll's networks: the peer that bll's own step is measured against.

What a user would write instead of bll, in one process: the same network cut into the same
blocks, the same batch, the same Adam, and either end-to-end back-propagation (`--method bp`)
or the same block-local loss (`--method bll`: each block's forward, its closed-form feedback
message, the Gaussian KL to the posterior plus its readout's cross-entropy, backward inside the
block, its own Adam step). Statistics (loss, correct top-1) accumulate in device tensors and
are read once at the end, as a careful loop does, so nothing waits on the host.

It prints one JSON line: {"method", "model", "device", "samples", "seconds", "samples_per_sec", ...}.
It is frozen as the yardstick of docs/benchmarks.md: change it only with a note there.

  OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \\
  MALLOC_TOP_PAD_=67108864 python3 scripts/torch_reference.py --method bll --samples 12000

Needs torch (Debian's python3-torch on the CPU: `apt-get install python3-torch`).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- data: IDX files as bll reads them (scaled to [0, 1], standardised with the train-set mean and std)
def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def find(folder, stem):
    for name in (stem + "-ubyte.gz", stem + "-ubyte", stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    sys.exit(f"torch_reference: {folder}: no {stem}-ubyte[.gz]")


def load_images(folder, samples):
    """The first `samples` training images [N, 1, 28, 28] (float, standardised) and labels; random
    images of that shape when `folder` is empty (throughput does not depend on the pixels)."""
    if not folder:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (samples, 1, 28, 28), generator=g, dtype=torch.uint8).float().div_(255), \
            torch.randint(0, 10, (samples,), generator=g)
    images = read_idx(find(folder, "train-images-idx3"))[:samples].unsqueeze(1)
    labels = read_idx(find(folder, "train-labels-idx1"))[:samples].long()
    x = images.float().div_(255)
    return (x - x.mean()) / x.std(), labels


# ---- networks: the units of bll's plans (src/models/cnn.cpp, resnet.cpp), cut as bll cuts them
class Basic(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = None
        if stride != 1 or cin != width:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


def cnn_units(widths, head_hidden, classes, side=28):
    """(unit, weight layers, output channels, output side) per unit."""
    units, cin = [], 1
    for w in widths:
        units.append((nn.Sequential(nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                                    nn.MaxPool2d(2)), 1, w, side // 2))
        cin, side = w, side // 2
    head = [nn.Flatten()]
    if head_hidden:
        head += [nn.Linear(cin * side * side, head_hidden), nn.ReLU(), nn.Linear(head_hidden, classes)]
    else:
        head += [nn.Linear(cin * side * side, classes)]
    units.append((nn.Sequential(*head), 2 if head_hidden else 1, classes, 0))
    return units


def resnet18_units(width, classes, side=28):
    units = [(nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()), 1, width, side)]
    cin = width
    for stage in range(4):
        w = width << stage
        for u in range(2):
            stride = 2 if stage > 0 and u == 0 else 1
            side = side if stride == 1 else (side - 1) // 2 + 1
            units.append((Basic(cin, w, stride), 2, w, side))
            cin = w
    units.append((nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)), 1, classes, 0))
    return units


def split(layers, blocks):
    """bll's cut (src/models/registry.cpp): unit boundaries nearest equal shares of the layers, ties later."""
    cum = [0]
    for n in layers:
        cum.append(cum[-1] + n)
    cuts, units = [0], len(layers)
    for k in range(1, blocks):
        target = cum[-1] * k / blocks
        best = cuts[-1] + 1
        for u in range(best, units - (blocks - k) + 1):
            if abs(cum[u] - target) <= abs(cum[best] - target):
                best = u
        cuts.append(best)
    return list(zip(cuts, cuts[1:] + [units]))


class Block(nn.Module):
    """Forward units; a hidden block also has its readout (on alpha pooled to pool x pool) and the
    closed-form feedback table (per class, one value per channel)."""
    def __init__(self, units, channels, output, classes, pool):
        super().__init__()
        self.net = nn.Sequential(*units)
        self.output, self.pool = output, pool
        if not output:
            self.readout = nn.Linear(channels * pool * pool, classes)
            self.register_buffer("beta", torch.zeros(classes, channels))

    def forward(self, x):
        return self.net(x)


def make_blocks(args, classes=10):
    if args.model == "cnn":
        units = cnn_units(args.widths, args.head_hidden, classes)
    else:
        units = resnet18_units(args.width, classes)
    blocks = []
    for first, last in split([u[1] for u in units], args.blocks):
        output = last == len(units)
        blocks.append(Block([u[0] for u in units[first:last]], units[last - 1][2], output, classes, args.readout_pool))
    return blocks


# ---- the two methods
def bll_loss(block, alpha, y, m, kl_weight, classes):
    """Readout cross-entropy plus kl_weight * KL(rho || alpha) of Gaussian messages (sigma = 1), where
    rho = alpha * beta^m and beta is each class's mean of the batch's channel means (closed form)."""
    a = alpha.mean((2, 3)) if alpha.dim() == 4 else alpha
    with torch.no_grad():  # the feedback fit: this batch's class means replace the present classes
        sums = torch.zeros(classes, a.size(1), device=a.device).index_add_(0, y, a.detach())
        counts = torch.bincount(y, minlength=classes).to(a.dtype)
        block.beta.copy_(torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp_min(1).unsqueeze(1), block.beta))
    b = block.beta[y]
    # rho ~ N((a + m b) / (1 + m), 1 / (1 + m)); KL(rho || N(a, 1)) summed over channels.
    kl = 0.5 * ((m * (b - a) / (1 + m)).pow(2) + 1 / (1 + m) - 1 + torch.log1p(torch.tensor(m))).sum(1).mean()
    pooled = F.adaptive_avg_pool2d(alpha, block.pool).flatten(1) if alpha.dim() == 4 else alpha
    pred = F.cross_entropy(block.readout(pooled), y)
    return kl_weight * kl + pred


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", choices=["bll", "bp"], default="bll")
    p.add_argument("--model", choices=["cnn", "resnet18"], default="cnn")
    p.add_argument("--widths", type=lambda s: [int(v) for v in s.split(",")], default=[32, 64, 128])
    p.add_argument("--head-hidden", type=int, default=256)
    p.add_argument("--width", type=int, default=16, help="resnet18: channels of the first stage")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--readout-pool", type=int, default=2)
    p.add_argument("--kl-weight", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--data", default="", help="IDX folder (e.g. data/fashion-mnist); empty: random images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--memory-format", choices=["auto", "channels_last", "contiguous"], default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=0,
                   help="batches before the clock starts (0: every batch, as bll's samples_per_sec counts them)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    layout = torch.channels_last if args.memory_format == "channels_last" or (
        args.memory_format == "auto" and device.type == "cpu") else torch.contiguous_format
    x_all, y_all = load_images(args.data, args.samples)
    x_all, y_all = x_all.to(device).contiguous(memory_format=layout), y_all.to(device)

    blocks = [b.to(device).to(memory_format=layout) for b in make_blocks(args)]
    if args.method == "bp":
        params = [q for b in blocks for q in b.net.parameters()]
        optims = [torch.optim.Adam(params, lr=args.lr)]
    else:
        optims = [torch.optim.Adam(b.parameters(), lr=args.lr) for b in blocks]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    m, classes = 1.0, 10  # the mixing schedule's m in epoch 1

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    batches = args.samples // args.batch
    order = torch.randperm(args.samples, device=device)

    def step(t):
        nonlocal loss_sum, correct
        idx = order[t * args.batch:(t + 1) * args.batch]
        x, y = x_all[idx], y_all[idx]
        if args.method == "bp":
            optims[0].zero_grad(set_to_none=True)
            with autocast:
                for b in blocks:
                    x = b(x)
                loss = F.cross_entropy(x.float(), y)
            loss.backward()
            optims[0].step()
        else:
            for b, opt in zip(blocks, optims):
                opt.zero_grad(set_to_none=True)
                with autocast:
                    alpha = b(x.detach()).float()
                    loss = F.cross_entropy(alpha, y) if b.output else bll_loss(b, alpha, y, m, args.kl_weight, classes)
                loss.backward()
                opt.step()
                x = alpha.detach()
        loss_sum += loss.detach()
        correct += (x.detach().argmax(1) == y).sum()

    for b in blocks:
        b.train()
    warm = min(args.warmup, batches - 1)
    for t in range(warm):
        step(t)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for t in range(warm, batches):
        step(t)
    final = loss_sum.item(), correct.item()  # the one read-back: it waits for the device
    seconds = time.perf_counter() - start
    timed = (batches - warm) * args.batch
    print(json.dumps({"method": args.method, "model": args.model, "device": str(device), "precision": args.precision,
                      "samples": timed, "seconds": round(seconds, 4), "samples_per_sec": round(timed / seconds, 1),
                      "train_loss": round(final[0] / batches, 4), "train_top1": round(100.0 * final[1] / (batches * args.batch), 2),
                      "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()

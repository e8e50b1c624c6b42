"""The peer of bll-data-bench: torchvision's ImageFolder and DataLoader on the same image folder.

    torchvision_bench.py FOLDER SIZE WORKERS [BATCH_SIZE (64)]

FOLDER/train is read as ImageFolder does by default (PIL decoding), each image through
RandomResizedCrop(SIZE) (antialiased bilinear), RandomHorizontalFlip and ToTensor, in batches of
BATCH_SIZE from a shuffling DataLoader with WORKERS worker processes: bll-data-bench's work on a
folder without normalization (the two benches read one epoch after a warm-up batch). Prints one
JSON line as bll-data-bench does. Run by scripts/loader_bench.sh beside bll's loaders.
"""
import json
import resource
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def main():
    folder, size, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    torch.set_num_threads(1)  # as bll's feeding rank: the workers decode, the main process waits
    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    data = datasets.ImageFolder(f"{folder}/train", transform=tf)
    loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False)
    it = iter(loader)
    next(it)  # warm-up: the workers start, the first batch is read
    start, images, batches = time.perf_counter(), 0, 0
    for x, _ in it:
        images += x.shape[0]
        batches += 1
    seconds = time.perf_counter() - start
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"dataset": "torchvision ImageFolder", "workers": workers, "image_size": size, "batch_size": batch,
                      "batches": batches, "images": images, "seconds": round(seconds, 3),
                      "images_per_sec": round(images / seconds, 1), "peak_rss_mb": round(rss / 1024.0, 1)}))


if __name__ == "__main__":
    main()

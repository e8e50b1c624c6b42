"""bll's training transform against torchvision's on the same crop boxes.

    torchvision_test.py BLL_DATA_BENCH MAKE_FIXTURE

Writes a folder of JPEGs and PNGs (colour and grey), has bll-data-bench --dump write the first
training batch of data.dataset folder with each image's file, crop box and flip, and rebuilds
every image with torchvision: torchvision.io.read_image (libjpeg-turbo and libpng, as bll), then
transforms.functional.resized_crop on that box with antialias=True (bilinear, torchvision's
default for RandomResizedCrop) and hflip where bll flipped.

Tolerance: bll's pixels (x * 255, rounded) differ from torchvision's by at most 1 of 255 (the
last bit of float rounding), and on average by less than 0.05. To show that the comparison can
fail, the same boxes resized without antialiasing must differ from bll's by far more (the crops
shrink: 96-pixel images to 32).

Exit 77 (CTest's skip) where Python has no torchvision (Debian: python3-torchvision).
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torchvision
    import torchvision.transforms.functional as TF
    from torchvision.io import ImageReadMode, read_image
except ImportError as e:
    print(f"skip: no torchvision in this Python ({e}); Debian: apt-get install python3-torchvision")
    sys.exit(77)

TOLERANCE_MAX, TOLERANCE_MEAN = 1.0, 0.05
SIZE = 32


def main():
    bench, make_fixture = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="bll-torchvision-") as work:
        images = os.path.join(work, "images")
        subprocess.run([make_fixture, images, "96", "8", "--folder", "--side", "96"], check=True,
                       stdout=subprocess.DEVNULL)
        config = os.path.join(work, "bench.yaml")
        with open(config, "w") as f:
            f.write(f"data: {{dataset: folder, dir: {images}, image_size: {SIZE}, hflip: true, normalize: false}}\n"
                    "model: {type: cnn, widths: [8], blocks: 1}\n"
                    "train: {epochs: 1, batch_size: 64, seed: 5}\n")
        out = os.path.join(work, "dump")
        subprocess.run([bench, config, "--dump", out], check=True)
        with open(os.path.join(out, "batch.json")) as f:
            meta = json.load(f)
        x = torch.from_numpy(np.fromfile(os.path.join(out, "batch.f32"), dtype=np.float32)).reshape(meta["shape"])
        ours = (x * 255).round()

        diff_max = diff_sum = plain_max = 0.0
        flips = grey = 0
        for i, row in enumerate(meta["rows"]):
            img = read_image(row["file"], ImageReadMode.RGB)
            top, left, h, w = row["box"]
            ref = TF.resized_crop(img, top, left, h, w, [SIZE, SIZE], antialias=True)
            plain = TF.resized_crop(img, top, left, h, w, [SIZE, SIZE], antialias=False)
            if row["flip"]:
                ref, plain, flips = TF.hflip(ref), TF.hflip(plain), flips + 1
            grey += int(bool((img[0] == img[1]).all() and (img[1] == img[2]).all()))
            d = (ours[i] - ref.float()).abs()
            diff_max, diff_sum = max(diff_max, d.max().item()), diff_sum + d.mean().item()
            plain_max = max(plain_max, (ours[i] - plain.float()).abs().max().item())
        n = len(meta["rows"])
        diff_mean = diff_sum / n
        print(f"torchvision {torchvision.__version__}: {n} images ({flips} flipped, {grey} grey), {SIZE}x{SIZE}: "
              f"max |bll - torchvision| {diff_max:.0f}, mean {diff_mean:.4f}; without antialiasing max {plain_max:.0f}")
        failures = []
        if diff_max > TOLERANCE_MAX or diff_mean > TOLERANCE_MEAN:
            failures.append(f"bll's crops differ from torchvision's by up to {diff_max:.0f} (mean {diff_mean:.4f}); "
                            f"tolerance {TOLERANCE_MAX:.0f} (mean {TOLERANCE_MEAN})")
        if plain_max <= 8 * TOLERANCE_MAX:
            failures.append(f"the boxes without antialiasing differ by only {plain_max:.0f}: this batch cannot tell")
        if flips == 0 or flips == n or grey == 0:
            failures.append(f"the batch lacks a case: {flips} of {n} flipped, {grey} grey")
        for f in failures:
            print("FAIL: " + f)
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

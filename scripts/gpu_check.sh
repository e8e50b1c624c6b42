#!/usr/bin/env bash
# The one prepared GPU check: from a bare lent GPU machine (one H100 or H200, 16 cores, CUDA,
# a Python with a CUDA torch; no Open MPI, yaml-cpp or Catch2) it builds the CUDA build, runs the
# GPU suite, measures bll against the plain PyTorch loop of the same networks and writes one
# Markdown table, in about five minutes.
#
# On a development machine (Debian, with network to Debian's mirror), once:
#   scripts/gpu_check.sh --prepare
#     downloads the Debian packages the GPU machine lacks into gpu-debs/ and the data into data/
#     (both ignored by git: the device tool carries them, `carry: ["gpu-debs", "data"]`)
# On the GPU machine, from the repository root:
#   scripts/gpu_check.sh [--out DIR] [--quick]
#     writes DIR/gpu_check.md (default $OUT when set, else gpu-check-out/) and prints it; each
#     stage has a time limit, and a stage that cannot run says why in the table. --quick: one
#     pair per comparison instead of three.
# Without a GPU it goes as far as it can (a dry run): the build and the GPU suite are skipped
# with their reason, and the comparisons run on the CPU with the CPU build, so that the script
# itself is tested wherever it runs.
#
#   PYTHON     the Python whose torch is the reference and whose libtorch bll builds against
#              (default python3; /usr/bin/python3 with Debian's python3-torch on the CPU)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
debs=$root/gpu-debs
PACKAGES=(openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libpmix-dev libhwloc15 libhwloc-dev
          libevent-2.1-7 libevent-core-2.1-7 libevent-pthreads-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7
          libevent-dev libfabric1 libucx0 libpsm2-2 libpsm-infinipath1 libibverbs1 libibverbs-dev librdmacm1
          libnl-3-200 libnl-3-dev libnl-route-3-200 libnl-route-3-dev libmunge2 libnuma1 libnuma-dev libltdl7
          libltdl-dev libyaml-cpp0.7 libyaml-cpp-dev catch2 nlohmann-json3-dev
          libjpeg62-turbo libjpeg62-turbo-dev libpng16-16 libpng-dev)

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$debs"
  (cd "$debs" && apt-get download "${PACKAGES[@]}") || { echo "gpu_check: apt-get download failed" >&2; exit 1; }
  scripts/get_data.sh fashion-mnist || exit 1
  du -sh "$debs" data
  echo "gpu_check: ready; on the device: scripts/gpu_check.sh (carry gpu-debs and data)"
  exit 0
fi

out=${OUT:-$root/gpu-check-out}
pairs=3
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --quick) pairs=1; shift ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
report=$out/gpu_check.md
log=$out/gpu_check.log
: >"$log"
started=$SECONDS
if [ -z "${PYTHON:-}" ]; then  # python3 with torch; else Debian's (a pyenv python3 may lack it)
  PYTHON=python3
  python3 -c 'import torch' 2>/dev/null || PYTHON=/usr/bin/python3
fi
row() { echo "$*" >>"$report"; }
note() { echo "gpu_check [$((SECONDS - started)) s]: $*" | tee -a "$log" >&2; }

gpu=""
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=$(nvidia-smi -L | head -1); fi
has_cuda_torch=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
{
  echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo
  echo "- machine: ${gpu:-no GPU visible}; $(nproc) cores; $("$PYTHON" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo 'no torch in '"$PYTHON")"
} >"$report"
trap 'cat "$report"' EXIT  # the table so far, however the check ends

# 1. The CUDA build, against the CUDA libtorch of $PYTHON's torch, with Debian's packages unpacked.
bll=build/bll-train device=cpu build_dir=build
if [ -n "$gpu" ] && [ "$has_cuda_torch" = 1 ]; then
  deps=/tmp/bll-deps
  if [ ! -d "$deps/usr" ]; then
    [ -d "$debs" ] || { note "no gpu-debs/ (run scripts/gpu_check.sh --prepare where Debian's mirror is reachable)"; exit 3; }
    mkdir -p "$deps"
    for d in "$debs"/*.deb; do dpkg -x "$d" "$deps"; done
  fi
  export BLL_DEPS_PREFIX=$deps PYTHON
  note "building build-cuda"
  if timeout 420 scripts/build_cuda.sh -DBLL_USE_PCH=ON >>"$log" 2>&1; then
    bll=build-cuda/bll-train device=cuda build_dir=build-cuda
    row "- build: build-cuda in $((SECONDS - started)) s"
  else
    row "- build: **failed** (see gpu_check.log)"; tail -30 "$log" >&2; exit 4
  fi
  # shellcheck source=cuda_env.sh
  source scripts/cuda_env.sh
else
  why="no GPU visible"; [ -n "$gpu" ] && why="$PYTHON's torch has no CUDA"
  row "- build: skipped ($why); the rows below are the CPU dry run with build/"
  [ -x build/bll-train ] || scripts/build.sh >>"$log" 2>&1 || { row "- CPU build failed"; exit 4; }
fi

# 2. The GPU suite (the NCCL exception test and the synchronisation debug mode among them).
if [ "$device" = cuda ]; then
  note "ctest -L gpu"
  if (cd "$build_dir" && timeout 300 ctest -L gpu --output-on-failure >>"$log" 2>&1); then
    row "- GPU suite (\`ctest -L gpu\`): passed"
  else
    row "- GPU suite (\`ctest -L gpu\`): **failed** (see gpu_check.log)"
  fi
  # A rank that throws over NCCL: the job ends at once with its message (2 ranks on one GPU need
  # NCCL >= 2.30 and its opt-in; older NCCL refuses them, which the row says).
  line=$(BLL_INJECT_FAILURE=1:3 NCCL_MULTI_RANK_GPU_ENABLE=1 timeout 120 mpirun -np 2 --bind-to none "$bll" \
         configs/fmnist_cnn.yaml runtime.device=cuda runtime.transport=nccl runtime.ranks_per_gpu=2 train.epochs=1 \
         data.train_limit=2560 runtime.progress=off runtime.save_params=false runtime.run_dir="$out/inject" \
         runtime.overwrite=true 2>&1 >/dev/null | grep -m1 'bll-train: error')
  row "- injected failure over NCCL, 2 ranks on one GPU: \`${line:-no error line}\`"
else
  row "- GPU suite: skipped (no CUDA build)"
fi

# 3. bll against the plain PyTorch loop, alternated in pairs (scripts/reference_bench.py).
compare() {  # compare LABEL reference_bench.py options...
  local label=$1; shift
  note "comparing: $label"
  if timeout 240 /usr/bin/env "$PYTHON" scripts/reference_bench.py --pairs "$pairs" --bll "$bll" --python "$PYTHON" \
       --device "$device" "$@" >"$out/compare.tmp" 2>>"$log"; then
    row ""; row "### $label"; row ""; cat "$out/compare.tmp" >>"$report"
  else
    row ""; row "### $label: did not finish within its time (see gpu_check.log)"
  fi
}
threads=2; [ "$device" = cuda ] && threads=4
samples=12000; [ "$device" = cuda ] && samples=25600
compare "configs/fmnist_cnn.yaml, fp32" --model cnn --samples "$samples" --threads "$threads"
if [ "$device" = cpu ]; then  # the dry run: the ResNet path once, small (a width-64 ResNet runs ~100 samples/s here)
  pairs=1 compare "ResNet-18 width 16, fp32 (CPU dry run)" --model resnet18 --width 16 --samples 1024 --threads "$threads"
else
  compare "ResNet-18 width 64, fp32" --model resnet18 --width 64 --samples $((samples / 4)) --threads "$threads"
  compare "ResNet-18 width 64, bf16" --model resnet18 --width 64 --samples $((samples / 4)) --precision bf16 --threads "$threads"
  pairs=1 compare "ResNet-18 width 16, fp32" --model resnet18 --width 16 --samples $((samples / 2)) --threads "$threads"
  pairs=1 compare "ResNet-18 width 16, bf16" --model resnet18 --width 16 --samples $((samples / 2)) --precision bf16 --threads "$threads"
  pairs=1 compare "configs/fmnist_cnn.yaml, bf16" --model cnn --samples "$samples" --precision bf16 --threads "$threads"
fi

# 4. Four ranks sharing the device, messages staged through pinned host memory (mpi transport).
if [ "$device" = cuda ]; then
  row ""; row "### 4 ranks sharing the GPU (mpi transport, \`runtime.ranks_per_gpu=4\`)"; row ""
  # runtime.mpi_staging: sync (the host waits for each message's copy) against async (the copy
  # runs on a stream of its own); async becomes the default only once it is measured faster here.
  row "| config | runtime.mpi_staging | samples/s |"; row "|---|---|---|"
  for cfg in "configs/fmnist_cnn.yaml" "configs/fmnist_resnet18.yaml model.width=64"; do
    for staging in sync async; do
      rm -f "$out/four/metrics.jsonl"
      # shellcheck disable=SC2086
      timeout 120 mpirun -np 4 --bind-to none "$bll" $cfg runtime.device=cuda runtime.ranks_per_gpu=4 train.epochs=1 \
        runtime.mpi_staging=$staging data.train_limit=$((samples / 2)) data.test_limit=256 runtime.progress=off \
        runtime.save_params=false runtime.run_dir="$out/four" runtime.overwrite=true >>"$log" 2>&1
      sps=$(sed -n 's/.*"samples_per_sec":\([0-9.]*\).*/\1/p' "$out/four/metrics.jsonl" 2>/dev/null | head -1)
      row "| $cfg | $staging | ${sps:-failed} |"
    done
  done
fi
# 5. The layout on the GPU: runtime.memory_format auto is contiguous there until channels-last is
# measured faster (ResNet-18 width 64, one rank, each precision, the two layouts alternated).
if [ "$device" = cuda ]; then
  row ""; row "### ResNet-18 width 64 on one rank: runtime.memory_format"; row ""
  row "| precision | contiguous samples/s | channels_last samples/s |"; row "|---|---|---|"
  for precision in fp32 bf16; do
    cells=""
    for layout in contiguous channels_last; do
      rm -f "$out/layout/metrics.jsonl"
      timeout 120 "$bll" configs/fmnist_resnet18.yaml model.width=64 runtime.device=cuda runtime.precision=$precision \
        runtime.memory_format=$layout train.epochs=1 data.train_limit=$((samples / 4)) data.test_limit=256 \
        runtime.progress=off runtime.save_params=false runtime.run_dir="$out/layout" runtime.overwrite=true >>"$log" 2>&1
      sps=$(sed -n 's/.*"samples_per_sec":\([0-9.]*\).*/\1/p' "$out/layout/metrics.jsonl" 2>/dev/null | head -1)
      cells="$cells | ${sps:-failed}"
    done
    row "| $precision$cells |"
  done
fi
row ""
row "Took $((SECONDS - started)) s. Commands: scripts/reference_bench.py (per table), scripts/gpu_check.sh."

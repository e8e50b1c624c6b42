# Environment for building and running the CUDA build of bll (scripts/build_cuda.sh); source it.
#   PYTHON           the Python whose torch (CUDA libtorch) and nvidia-nccl wheel to use
#   BLL_DEPS_PREFIX  a folder with Debian packages unpacked by `dpkg -x` (OpenMPI, yaml-cpp, ...)
PYTHON=${PYTHON:-python3}
BLL_TORCH_CMAKE=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
# The NCCL that torch loads, so that one process never holds two.
BLL_NCCL_ROOT=$("$PYTHON" -c 'import os, nvidia.nccl as n; print(os.path.dirname(n.__file__) if n.__file__ else list(n.__path__)[0])' 2>/dev/null || true)
export BLL_TORCH_CMAKE BLL_NCCL_ROOT
torch_lib=$(dirname "$BLL_TORCH_CMAKE")/../lib
export LD_LIBRARY_PATH="$torch_lib${BLL_NCCL_ROOT:+:$BLL_NCCL_ROOT/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -n "${BLL_DEPS_PREFIX:-}" ]; then
  d=$BLL_DEPS_PREFIX
  # Debian's absolute symlinks point at the Debian machine's files: repoint the broken ones at
  # this machine's library of the same name.
  find "$d/usr/lib/x86_64-linux-gnu" -maxdepth 1 -xtype l 2>/dev/null | while read -r link; do
    base=$(basename "$link"); sys=$(ls /lib/x86_64-linux-gnu/"$base".* 2>/dev/null | head -1 || true)
    [ -n "$sys" ] && ln -sf "$sys" "$link"
  done
  # Debian names OpenMPI's commands through update-alternatives, which dpkg -x does not run.
  for tool in mpicc mpicxx mpic++ mpirun mpiexec; do
    [ -e "$d/usr/bin/$tool" ] || ln -sf "$tool.openmpi" "$d/usr/bin/$tool"
  done
  export OPAL_PREFIX="$d/usr" PATH="$d/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$d/usr/lib/x86_64-linux-gnu:$d/usr/lib/x86_64-linux-gnu/openmpi/lib:$LD_LIBRARY_PATH"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_pcompress_base_silence_warning=1

// The NCCL backend of Transport: GPU tensors move GPU to GPU. Built where CMake finds a CUDA
// toolkit and NCCL (BLL_CUDA); its sources use the CUDA runtime and NCCL only, no CUDA-only
// libtorch API, so that they compile (and are compiled in CI) against a CPU-only libtorch.
//
// Streams: point-to-point messages to the next and from the previous rank each run on a
// communicator of that pair and a stream of their own; broadcasts and all-reduces on the
// world communicator and a third stream. All are ordered after the work already queued on
// libtorch's default stream (a CUDA event), so communication overlaps compute; a receive is
// complete, and its tensor readable, once its Work reports completion.
//
// Failures: asynchronous NCCL errors and runtime.timeout_s are polled while waiting; on either,
// every communicator of the rank is aborted and the call throws RuntimeError naming the rank,
// the operation and the peer. Tensors on the CPU (metrics, strings) go through `host`.
#pragma once

#include <mpi.h>

#include <memory>

#include "bll/transport/transport.h"

namespace bll {

struct NcclOptions {
  int device = 0;            // CUDA device of this rank
  double timeout_s = 600;    // a wait longer than this aborts the communicators and throws
  bool ranks_share_gpus = false;  // for the hint when NCCL refuses two ranks on one GPU
};

// Collective over `comm` (the NCCL id is made by rank 0 and broadcast over MPI).
std::unique_ptr<Transport> make_nccl_transport(MPI_Comm comm, const NcclOptions& options,
                                               std::unique_ptr<Transport> host);

// "2.28.9": the version of the NCCL library loaded at run time.
std::string nccl_version();

}  // namespace bll

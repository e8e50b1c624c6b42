// Where a rank computes and with what arithmetic: the device of its node-local rank, bf16
// autocast, and host-to-device staging of input batches. Code that needs raw CUDA lives in the
// transports; this file uses only the libtorch API, so it builds against a CPU-only libtorch.
#pragma once

#include <torch/torch.h>

#include <deque>
#include <memory>
#include <string>

#include "bll/config.h"
#include "bll/data/loader.h"
#include "bll/placement.h"

namespace bll {

// The device runtime.device asks for: cpu, or GPU local_rank / runtime.ranks_per_gpu. Throws
// RuntimeError with one line naming the rank, the node and how many GPUs it sees when it has
// no such GPU.
torch::Device select_device(const RuntimeConfig& config, const RankLocation& where);

// Process-wide settings for `device`: runtime.deterministic (cuDNN and scatter-adds).
void prepare_device(const RuntimeConfig& config, torch::Device device);

// True where this libtorch was built with CUDA (whether or not a GPU is visible).
bool torch_has_cuda();

// While alive, ops on `device` run under autocast to bf16 (matrix products and convolutions in
// bf16, reductions and losses in fp32); weights stay fp32. A no-op when not enabled.
class Autocast {
 public:
  Autocast(torch::Device device, bool enabled);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool enabled_;
  torch::DeviceType type_;
  bool previous_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

// A CPU tensor on `device`: copied through pinned memory, asynchronously to the host.
torch::Tensor to_device(const torch::Tensor& t, torch::Device device);

// Rank 0's input batches on their way to its device: next() returns batch t, ordered before any
// kernel queued after the call, and has already started moving batch t + 1. On a GPU the copy
// runs from pinned memory on a stream of its own (where the CUDA runtime is built in), so the
// copy of batch t + 1 overlaps batch t's compute.
class InputStager {
 public:
  class Copier {  // one device's way to copy a batch; see make_cuda_copier
   public:
    virtual ~Copier() = default;
    virtual void start(const Batch& host, Batch& on_device) = 0;  // on_device is allocated
    virtual void finish() = 0;  // the oldest started copy: order the compute stream after it
  };

  // Batches first .. batches - 1 of `source`, in order (null on ranks that do not feed: nothing
  // to stage). rank: named in errors.
  InputStager(BatchSource* source, int64_t first, int64_t batches, torch::Device device, int rank);
  ~InputStager();
  Batch next();

 private:
  void stage(Batch batch);
  Batch take();

  BatchSource* source_;
  int64_t batches_, staged_count_ = 0;
  torch::Device device_;
  // The batches before the copier: members are destroyed in reverse order, so the copier (which
  // waits for its copies) goes first and no copy still writes into a freed batch.
  std::deque<Batch> staged_;
  std::unique_ptr<Copier> copier_;  // null: copy at take(), on the compute stream
};

// The layout of 4-D tensors on `device` (runtime.memory_format): channels-last (NHWC) or
// contiguous (NCHW); auto is channels-last on the CPU, where oneDNN's convolutions, batch norm
// and pooling run faster on it, and contiguous on a GPU.
at::MemoryFormat memory_format(const RuntimeConfig& config, torch::Device device);

// Puts the 4-D parameters and buffers of `module` (convolution weights, fixed feedback
// kernels) in `format`, keeping the same tensors: an optimizer that holds them is unaffected.
void use_memory_format(torch::nn::Module& module, at::MemoryFormat format);

// `x` in `format` if it is 4-D (an image batch), else `x`.
torch::Tensor in_memory_format(const torch::Tensor& x, at::MemoryFormat format);

// The dtype alpha travels in between spans (runtime.message_precision).
torch::Dtype message_dtype(const RuntimeConfig& config);

}  // namespace bll

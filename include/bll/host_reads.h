// Every read of a computed tensor back to the host goes through here, and is counted.
//
// A read of a device tensor makes the CPU wait until the GPU has computed it: the CPU can no
// longer queue work ahead, and each step becomes a chain of launch-and-wait. On the training
// path there is none in steady state: statistics add up in device tensors (bll/step_stats.h)
// and are read at runtime.log_every steps and at the end of a phase, in one transfer. The
// counter is kept on every device, the CPU included, so that a CPU test can tell that a step
// stayed free of reads (tests/test_mpi_steps.cpp), and tests/check_host_reads.sh refuses a raw
// `.item(`, `.cpu()` or `to(torch::kCPU)` in src/ outside this file and a short allow-list of
// start-up and loading code.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace bll {

// A contiguous host copy of `t` (a copy on the CPU too). Counts one read.
torch::Tensor read_to_host(const torch::Tensor& t);

// The value of a one-element tensor. Counts one read.
double read_scalar(const torch::Tensor& t);

// Reads counted so far by this process (all threads).
int64_t host_reads();

// The value of a one-element tensor that lives in host memory by construction (a stop vote, a
// credit: the control traffic of the schedules): not a read of computed data, so not counted.
// Throws when the tensor is not on the host.
int64_t host_control_value(const torch::Tensor& t);

}  // namespace bll

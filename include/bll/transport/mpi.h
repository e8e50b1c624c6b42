// The MPI backend of Transport. GPU tensors travel through pinned host memory.
#pragma once

#include <mpi.h>

#include <functional>
#include <memory>

#include "bll/placement.h"
#include "bll/transport/transport.h"

namespace bll {

// Copies a message into host memory without making the host wait (the GPU's staging of
// runtime.mpi_staging async): the transport posts the message to MPI once the copy is complete.
class HostStager {
 public:
  virtual ~HostStager() = default;
  // Whether `t` travels through a staged copy (a GPU tensor).
  virtual bool stages(const torch::Tensor& t) const { return !t.device().is_cpu(); }
  // Starts copying `from` into `to` (host memory of its size) after the work already queued
  // that produces `from`; returns a test that is true once the copy is complete. The test never
  // blocks, and keeps `from` alive until it has returned true.
  virtual std::function<bool()> start(const torch::Tensor& from, const torch::Tensor& to) = 0;
};

struct MpiOptions {
  double timeout_s = 600;     // a wait longer than this throws
  bool poll_with_sleep = true;  // back off while waiting instead of spinning a core
  // Null: a device tensor is copied to the host before its send is posted, the host waiting for
  // the copy (and for the kernels that produce the tensor). Set: the copy is started and the send,
  // or the collective, posted once it is complete; the operations issued after it wait their turn,
  // so that MPI sees every send and collective in the order they were issued.
  std::shared_ptr<HostStager> stager;
};

// Wraps a communicator (not owned, not freed). MPI must be initialized.
std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm, MpiOptions options = {});

// Where this rank of `comm` runs: its rank among the ranks of its node (shared-memory domain), how
// many share the node, and the host name.
RankLocation locate(MPI_Comm comm);

// Runs `step` on every rank of `comm` (a collective call). If it throws bll::Error on any rank,
// every rank throws AgreedError with the message and code of the lowest failing rank, which alone
// reports it: a start-up check that fails on several ranks (no GPU, say) is read once.
void on_every_rank(MPI_Comm comm, const std::function<void()>& step);

}  // namespace bll

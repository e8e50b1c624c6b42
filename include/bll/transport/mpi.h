// The MPI backend of Transport. GPU tensors travel through pinned host memory.
#pragma once

#include <mpi.h>

#include <functional>
#include <memory>

#include "bll/placement.h"
#include "bll/transport/transport.h"

namespace bll {

struct MpiOptions {
  double timeout_s = 600;     // a wait longer than this throws
  bool poll_with_sleep = true;  // back off while waiting instead of spinning a core
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

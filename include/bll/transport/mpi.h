// The MPI backend of Transport (CPU tensors).
#pragma once

#include <mpi.h>

#include <memory>

#include "bll/transport/transport.h"

namespace bll {

struct MpiOptions {
  double timeout_s = 600;     // a wait longer than this throws
  bool poll_with_sleep = true;  // back off while waiting instead of spinning a core
};

// Wraps a communicator (not owned, not freed). MPI must be initialized.
std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm, MpiOptions options = {});

// Number of ranks of `comm` on this rank's node (shared-memory domain).
int local_ranks(MPI_Comm comm);

}  // namespace bll

// The transports bll knows, by the name runtime.transport gives. A new backend is one file that
// implements Transport plus one line in src/transport/registry.cpp.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/placement.h"
#include "bll/transport/transport.h"

namespace bll {

struct TransportSetup {
  MPI_Comm comm;               // the ranks of the job (not owned)
  RankLocation where;          // this rank
  torch::Device device;        // where this rank's tensors live
  const RuntimeConfig& runtime;
};

// Collective over setup.comm. Throws RuntimeError when the backend cannot start on this rank.
std::unique_ptr<Transport> make_transport(const std::string& name, const TransportSetup& setup);

// Names of the backends compiled into this bll.
std::vector<std::string> transport_names();

}  // namespace bll

// Data x pipeline parallelism: the world's K ranks as a grid of S pipeline stages x R replicas
// (runtime.replicas). World rank w is stage w % S of replica w / S, so a replica's stages are
// consecutive ranks (a pipeline stays inside a node where it fits) and the replicas of one stage
// are S ranks apart. Alpha and labels stay inside a replica (the pipeline transport); the
// replicas of a stage keep their parameters in agreement over a transport of their own.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "bll/transport/registry.h"
#include "bll/transport/transport.h"

namespace bll {

// What the trainer sees of the grid. With one replica `world` and `pipeline` are one transport
// and `replicas` is null.
struct Grid {
  Transport& world;      // every rank: start-up agreement, metrics
  Transport& pipeline;   // this rank's replica: its S stages, ranked by stage
  Transport* replicas;   // this rank's stage: its R replicas, ranked by replica (null if R == 1)
  int replica = 0, num_replicas = 1;
};

// ConfigError unless `replicas` divides `ranks` (the same verdict on every rank).
void check_grid(int ranks, int64_t replicas);

// The transports of the grid, made collectively over setup.comm: the pipeline and the replica
// groups with the backend runtime.transport names, the world (CPU tensors only) over MPI.
class GridTransports {
 public:
  // Throws ConfigError as check_grid does.
  GridTransports(const std::string& backend, const TransportSetup& setup, int replicas);
  ~GridTransports();
  GridTransports(const GridTransports&) = delete;
  GridTransports& operator=(const GridTransports&) = delete;

  Grid view() const;

 private:
  int replica_ = 0, replicas_ = 1;
  MPI_Comm pipeline_comm_ = MPI_COMM_NULL, replica_comm_ = MPI_COMM_NULL;
  std::unique_ptr<Transport> world_, pipeline_, replica_group_;
};

}  // namespace bll

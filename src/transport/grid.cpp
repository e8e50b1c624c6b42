#include "bll/transport/grid.h"

#include "bll/error.h"

namespace bll {

void check_grid(int ranks, int64_t replicas) {
  if (replicas < 1 || ranks % replicas != 0)
    throw ConfigError("key 'runtime.replicas': " + std::to_string(replicas) + " replicas do not divide the " +
                      std::to_string(ranks) + " ranks of the job (launch stages x replicas ranks)");
}

GridTransports::GridTransports(const std::string& backend, const TransportSetup& setup, int replicas) {
  int rank = 0, size = 1;
  BLL_MPI_CHECK(MPI_Comm_rank(setup.comm, &rank));
  BLL_MPI_CHECK(MPI_Comm_size(setup.comm, &size));
  check_grid(size, replicas);
  replicas_ = replicas;
  if (replicas == 1) {
    pipeline_ = make_transport(backend, setup);
    return;
  }
  const int stages = size / replicas;
  replica_ = rank / stages;
  BLL_MPI_CHECK(MPI_Comm_split(setup.comm, replica_, rank, &pipeline_comm_));
  BLL_MPI_CHECK(MPI_Comm_split(setup.comm, rank % stages, rank, &replica_comm_));
  BLL_MPI_CHECK(MPI_Comm_set_errhandler(pipeline_comm_, MPI_ERRORS_RETURN));
  BLL_MPI_CHECK(MPI_Comm_set_errhandler(replica_comm_, MPI_ERRORS_RETURN));
  world_ = make_transport("mpi", setup);
  TransportSetup part = setup;
  part.comm = pipeline_comm_;
  pipeline_ = make_transport(backend, part);
  part.comm = replica_comm_;
  replica_group_ = make_transport(backend, part);
}

GridTransports::~GridTransports() {
  replica_group_.reset();  // the transports before the communicators they use
  pipeline_.reset();
  world_.reset();
  for (MPI_Comm* c : {&pipeline_comm_, &replica_comm_})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);  // nothing to report from a destructor
}

Grid GridTransports::view() const {
  Transport& world = world_ ? *world_ : *pipeline_;
  return Grid{world, *pipeline_, replica_group_.get(), replica_, replicas_};
}

}  // namespace bll

// The identity check of the project: a K-rank run and a 1-rank run of one configuration end with
// the same parameters. Shared by the CPU (test_mpi) and GPU (test_gpu) suites.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "bll/config.h"
#include "bll/trainer.h"
#include "bll/transport/transport.h"

namespace bll::test {

// The MPI transport over MPI_COMM_WORLD, which every case of the MPI suites starts from.
std::unique_ptr<Transport> world();

// The fixture data set (512 training, 256 test images), written once by rank 0 into a folder
// every rank can read; every rank gets its path. Collective over `t`.
std::string shared_fixture(Transport& t);

struct Identity {
  double worst = 0;  // largest |difference| of any parameter or buffer (rank 0; 0 elsewhere)
  EpochRecord single, multi;  // last epochs (single: rank 0 only)
};

// Trains `config` on rank 0 alone (the transport `make_self` makes over MPI_COMM_SELF, the same
// code path) and on every rank of `t`, then compares on rank 0. Collective over `t`.
Identity train_alone_and_together(Transport& t, const std::function<std::unique_ptr<Transport>()>& make_self,
                                  Config config, const TrainOptions& options);

}  // namespace bll::test

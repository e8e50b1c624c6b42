// Catch2 main for MPI tests: every rank runs every test case in the same order (the cases use
// collectives). The result is agreed across ranks so that all exit with the same code.
// Built with BLL_SUITE_NEEDS_GPU (the GPU suite), every rank exits with 77 where no GPU is
// visible, which CTest reports as skipped, with a line saying why.
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <torch/torch.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  torch::set_num_threads(1);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#ifdef BLL_SUITE_NEEDS_GPU
  if (torch::cuda::device_count() == 0) {
    if (rank == 0) std::printf("no GPU visible to this process: GPU tests skipped\n");
    MPI_Finalize();
    return 77;
  }
#endif
  Catch::Session session;
  if (rank != 0) session.configData().reporterName = "compact";  // other ranks: failures and a total
  int failed = session.run(argc, argv);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any && !failed) std::fprintf(stderr, "a test failed on another rank\n");
  MPI_Finalize();
  return any ? 1 : 0;
}

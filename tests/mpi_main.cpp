// Catch2 main for MPI tests: every rank runs every test case in the same order (the cases use
// collectives). The result is agreed across ranks so that all exit with the same code. A failure
// that ends a test case on one rank (a REQUIRE, an unexpected exception) would leave the other
// ranks waiting in a collective, so it aborts the whole job at once, naming the rank.
// Built with BLL_SUITE_NEEDS_GPU (the GPU suite), every rank exits with 77 where no GPU is
// visible, which CTest reports as skipped, with a line saying why.
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <torch/torch.h>

namespace {

struct AbortOnFatalFailure : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    const Catch::AssertionResult& r = stats.assertionResult;
    if (r.isOk() || Catch::shouldContinueOnFailure(r.m_info.resultDisposition)) return true;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr, "rank %d: fatal failure in '%s' at %s:%zu: %s %s; aborting every rank\n", rank,
                 currentTestCaseInfo ? currentTestCaseInfo->name.c_str() : "?", r.getSourceInfo().file,
                 r.getSourceInfo().line, r.getExpressionInMacro().c_str(),
                 r.hasMessage() ? ("(" + r.getMessage() + ")").c_str() : "");
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return true;
  }
};
CATCH_REGISTER_LISTENER(AbortOnFatalFailure)

}  // namespace

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

// bll-train: block-local learning, one block range per MPI rank.
//   mpirun -np K bll-train CONFIG.yaml [section.key=value ...]
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <chrono>
#include <exception>
#include <thread>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/device.h"
#include "bll/error.h"
#include "bll/fault_injection.h"
#include "bll/runtime.h"
#include "bll/stop.h"
#include "bll/trainer.h"
#include "bll/transport/mpi.h"
#include "bll/transport/grid.h"
#include "bll/transport/registry.h"

namespace {

const char* kUsage =
    "usage: bll-train CONFIG.yaml [section.key=value ...]\n"
    "       mpirun -np K bll-train CONFIG.yaml [section.key=value ...]\n"
    "\n"
    "Trains the network of CONFIG.yaml with block-local learning; each of the K ranks owns a\n"
    "contiguous range of the model.blocks blocks (with runtime.replicas=R, the K ranks form\n"
    "K/R pipeline stages x R replicas). Overrides take YAML values, e.g.\n"
    "train.epochs=1 model.widths=[16,32].\n"
    "SIGTERM or SIGUSR1 (as SLURM sends them) make every rank save a checkpoint at one agreed batch\n"
    "and exit with code 75; run again with checkpoint.resume=auto to go on.\n"
    "Exit codes: 0 done, 2 usage or configuration error, 3 data error, 4 runtime error,\n"
    "75 stopped on request (checkpoint saved).\n"
    "\n"
    "Configuration keys:\n";

// One rank's failure, as main() reports it: the exit code and the first line of the message.
struct Failure {
  int code;
  std::string message;
};

Failure classify(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const bll::Error& e) {
    return {e.code(), e.what()};
  } catch (const c10::Error& e) {
    return {bll::kExitRuntime, std::string("torch: ") + e.what_without_backtrace()};
  } catch (const std::exception& e) {
    return {bll::kExitRuntime, e.what()};
  } catch (...) {
    return {bll::kExitRuntime, "unknown error"};
  }
}

// Prints this rank's error and, with other ranks, takes the whole job down at once, so that no
// rank waits forever and the first line the user reads is the failing rank's own.
int report_failure(int rank, int world, const Failure& f) {
  const auto nl = f.message.find('\n');
  std::fprintf(stderr, "bll-train: error on rank %d: %s\n", rank, f.message.substr(0, nl).c_str());
  std::fflush(stderr);
  if (world > 1) {
    // mpirun forwards a rank's output asynchronously: a moment, so that this line reaches the
    // user before mpirun's own report of the abort.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    MPI_Abort(MPI_COMM_WORLD, f.code);
  }
  return f.code;
}

int run(int argc, char** argv, int rank, int world) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      if (rank == 0) std::printf("%s%s", kUsage, bll::config_help().c_str());
      return bll::kExitOk;
    }
  if (args.empty() || args[0].rfind("-", 0) == 0)
    throw bll::AgreedError(bll::kExitUsage, args.empty() ? "missing CONFIG.yaml (bll-train --help)"
                                                         : "unknown option '" + args[0] + "' (bll-train --help)",
                           rank == 0);

  const bll::Config config =
      bll::agreed(rank, [&] { return bll::load_config(args[0], {args.begin() + 1, args.end()}); });

  if (config.runtime.keep_freed_memory && !bll::keep_freed_memory() && rank == 0)
    std::fprintf(stderr, "bll-train: warning: glibc refused the malloc settings; training may be slower\n");
  const bll::RankLocation where = bll::locate(MPI_COMM_WORLD);
  const bll::ThreadSetup threads = bll::configure_threads(config.runtime, where.local_ranks);
  torch::Device device = torch::kCPU;
  bll::on_every_rank(MPI_COMM_WORLD, [&] { device = bll::select_device(config.runtime, where); });
  bll::prepare_device(config.runtime, device);
  if (rank == 0)
    std::printf("bll-train: %d rank%s, %d on this node, %d intra-op thread%s each%s, device %s\n", world,
                world > 1 ? "s" : "", where.local_ranks, threads.threads, threads.threads > 1 ? "s" : "",
                threads.blas_threads > 0 ? (" (OpenBLAS " + std::to_string(threads.blas_threads) + ")").c_str() : "",
                device.str().c_str());

  bll::agreed(rank, [&] { bll::check_grid(world, config.runtime.replicas); });
  const bll::GridTransports grid(config.runtime.transport, {MPI_COMM_WORLD, where, device, config.runtime},
                                 int(config.runtime.replicas));
  bll::TrainOptions options;
  options.device = device;
  options.before_step = bll::agreed(rank, [&] { return bll::injected_failure(rank); });
  try {
    bll::run_training(config, grid.view(), options);
  } catch (const bll::AgreedError&) {
    throw;  // every rank has it: they end together, cleanly
  } catch (...) {
    // Report and abort while the transports are still alive: tearing down a NCCL communicator
    // whose peers still wait on this rank could take runtime.timeout_s, and the first line
    // would then be another rank's timeout.
    if (world > 1) report_failure(rank, world, classify(std::current_exception()));
    throw;
  }
  return bll::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "bll-train: error: MPI_Init_thread failed\n");
    return bll::kExitRuntime;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);  // errors come back as codes we check
  bll::install_stop_handlers();  // SIGTERM, SIGUSR1: save a checkpoint and exit with kExitStopped
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);

  int code = bll::kExitOk;
  try {
    code = run(argc, argv, rank, world);
  } catch (const bll::AgreedError& e) {
    if (e.report && e.code() == bll::kExitStopped) std::printf("bll-train: %s\n", e.what());
    else if (e.report) std::fprintf(stderr, "bll-train: error: %s\n", e.what());
    code = e.code();
  } catch (...) {
    code = report_failure(rank, world, classify(std::current_exception()));
  }
  MPI_Finalize();
  return code;
}

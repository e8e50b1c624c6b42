// bll-transport-bench: the bandwidth a transport achieves for the alpha messages of a
// configuration (each block boundary's batch of activations), rank 0 streaming to rank 1 with the
// pipeline's in-flight window.
//   mpirun -np 2 bll-transport-bench CONFIG.yaml [section.key=value ...]
// runtime.device, runtime.transport, runtime.message_precision, train.batch_size and
// train.in_flight of the configuration apply.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <deque>

#include "bll/data/dataset.h"
#include "bll/config.h"
#include "bll/device.h"
#include "bll/error.h"
#include "bll/models/model.h"
#include "bll/transport/mpi.h"
#include "bll/transport/registry.h"

namespace {

bll::DataShape data_shape(const bll::DataConfig& data) {
  const auto known = bll::known_shape(data);
  if (!known || known->sample.size() != 3)
    throw bll::ConfigError("bll-transport-bench: data.dataset " + data.dataset + " is not an image data set");
  return *known;
}

// Seconds for `n` messages like `msg` from rank 0 to rank 1, measured on rank 1 after a warm-up.
double stream(bll::Transport& t, const torch::Tensor& msg, int n, size_t window) {
  const int rank = t.rank();
  std::deque<bll::WorkPtr> works;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    if (i == n / 10) start = std::chrono::steady_clock::now();  // the first tenth warms up
    if (rank == 0) works.push_back(t.isend(msg, 1, 11, "alpha"));
    else if (rank == 1) t.irecv(torch::empty_like(msg), 0, 11, "alpha")->wait();
    while (works.size() > window) works.front()->wait(), works.pop_front();
  }
  for (auto& w : works) w->wait();
  if (msg.is_cuda()) torch::cuda::synchronize();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  t.barrier();
  return s;
}

int run(int argc, char** argv) {
  if (argc < 2) throw bll::ConfigError("usage: mpirun -np 2 bll-transport-bench CONFIG.yaml [section.key=value ...]");
  const bll::Config c = bll::load_config(argv[1], {argv + 2, argv + argc});
  const bll::RankLocation where = bll::locate(MPI_COMM_WORLD);
  torch::Device device = torch::kCPU;
  bll::on_every_rank(MPI_COMM_WORLD, [&] { device = bll::select_device(c.runtime, where); });
  auto t = bll::make_transport(c.runtime.transport, {MPI_COMM_WORLD, where, device, c.runtime});
  if (t->size() < 2) throw bll::ConfigError("bll-transport-bench: run it with 2 ranks (mpirun -np 2)");
  const bll::DataShape data = data_shape(c.data);
  const auto shapes = bll::block_boundary_shapes(c.model, data.sample, data.num_classes);
  if (where.rank == 0)
    std::printf("transport %s, device %s, messages in %s, batch %lld, in_flight %lld\n"
                "boundary,shape,bytes,us_per_message,GB_per_s\n",
                t->name().c_str(), device.str().c_str(), c.runtime.message_precision.c_str(),
                (long long)c.train.batch_size, (long long)c.train.in_flight);
  for (size_t k = 1; k + 1 < shapes.size(); ++k) {
    bll::Shape s{c.train.batch_size};
    s.insert(s.end(), shapes[k].begin(), shapes[k].end());
    const auto msg = torch::randn(s).to(device).to(bll::message_dtype(c.runtime)).contiguous();
    const double bytes = double(msg.numel() * msg.element_size());
    const int n = int(std::clamp(2e9 / bytes, 200.0, 5000.0));
    const double secs = stream(*t, msg, n, size_t(c.train.in_flight));
    const double timed = double(n - n / 10);
    double result[2] = {secs / timed * 1e6, bytes * timed / secs / 1e9};
    // Rank 1 measured; rank 0 prints.
    BLL_MPI_CHECK(MPI_Bcast(result, 2, MPI_DOUBLE, 1, MPI_COMM_WORLD));
    if (where.rank == 0) {
      std::string shape;
      for (auto d : s) shape += (shape.empty() ? "" : "x") + std::to_string(d);
      std::printf("%zu,%s,%.0f,%.1f,%.2f\n", k, shape.c_str(), bytes, result[0], result[1]);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const bll::AgreedError& e) {
    if (e.report) std::fprintf(stderr, "bll-transport-bench: error: %s\n", e.what());
    code = e.code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bll-transport-bench: error on rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 4);
  }
  MPI_Finalize();
  return code;
}

#include <chrono>
#include <thread>

#include "bll/error.h"
#include "bll/transport/mpi.h"

namespace bll {
namespace {

using Clock = std::chrono::steady_clock;

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8: return MPI_UINT8_T;
    case torch::kBFloat16:
    case torch::kFloat16: return MPI_UINT16_T;  // moved as raw 16-bit words
    default: throw RuntimeError(std::string("mpi transport: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

void require_cpu_contiguous(const torch::Tensor& t, const std::string& what) {
  if (!t.device().is_cpu()) throw RuntimeError("mpi transport: " + what + ": tensor is not on the CPU");
  if (!t.is_contiguous()) throw RuntimeError("mpi transport: " + what + ": tensor is not contiguous");
  if (t.numel() > std::numeric_limits<int>::max()) throw RuntimeError("mpi transport: " + what + ": tensor too large");
}

class MpiWork : public Work {
 public:
  MpiWork(MPI_Request req, torch::Tensor keep, std::string what, const MpiOptions& opt)
      : req_(req), keep_(std::move(keep)), what_(std::move(what)), opt_(opt) {}
  ~MpiWork() override {
    // Dropped before completion (only on the way to an abort): MPI may still write into the
    // buffer, so keep it alive rather than free memory under MPI.
    if (req_ != MPI_REQUEST_NULL) new torch::Tensor(keep_);
  }

  bool test() override {
    if (req_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    BLL_MPI_CHECK(MPI_Test(&req_, &done, MPI_STATUS_IGNORE));
    return done != 0;
  }

  void wait() override {
    if (test()) return;
    const auto start = Clock::now();
    auto pause = std::chrono::microseconds(2);
    while (!test()) {
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      if (s > opt_.timeout_s)
        throw RuntimeError("timed out after " + std::to_string(int(s)) + " s waiting for " + what_ +
                           " (runtime: a peer rank stopped or is stuck)");
      if (opt_.poll_with_sleep) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(500));
      }
    }
    waited_ += std::chrono::duration<double>(Clock::now() - start).count();
  }

 private:
  MPI_Request req_;
  torch::Tensor keep_;
  std::string what_;
  MpiOptions opt_;
};

class MpiTransport : public Transport {
 public:
  MpiTransport(MPI_Comm comm, MpiOptions opt) : comm_(comm), opt_(opt) {
    BLL_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    BLL_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  WorkPtr isend(const torch::Tensor& t, int dst, int tag, const std::string& what) override {
    require_cpu_contiguous(t, what);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Isend(t.data_ptr(), int(t.numel()), mpi_type(t), dst, tag, comm_, &req));
    return std::make_unique<MpiWork>(req, t, "send of " + what + " to rank " + std::to_string(dst), opt_);
  }

  WorkPtr irecv(const torch::Tensor& t, int src, int tag, const std::string& what) override {
    require_cpu_contiguous(t, what);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Irecv(t.data_ptr(), int(t.numel()), mpi_type(t), src, tag, comm_, &req));
    return std::make_unique<MpiWork>(req, t, what + " from rank " + std::to_string(src), opt_);
  }

  WorkPtr ibroadcast(const torch::Tensor& t, int root, const std::string& what) override {
    require_cpu_contiguous(t, what);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Ibcast(t.data_ptr(), int(t.numel()), mpi_type(t), root, comm_, &req));
    return std::make_unique<MpiWork>(req, t, "broadcast of " + what + " from rank " + std::to_string(root), opt_);
  }

  void allreduce_sum(const torch::Tensor& t) override {
    require_cpu_contiguous(t, "allreduce");
    BLL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), int(t.numel()), mpi_type(t), MPI_SUM, comm_));
  }

  void broadcast_string(std::string& s, int root) override {
    int64_t n = int64_t(s.size());
    BLL_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_));
    s.resize(size_t(n));
    if (n > 0) BLL_MPI_CHECK(MPI_Bcast(s.data(), int(n), MPI_CHAR, root, comm_));
  }

  void barrier() override { BLL_MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  MPI_Comm comm_;
  MpiOptions opt_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm, MpiOptions options) {
  return std::make_unique<MpiTransport>(comm, options);
}

int local_ranks(MPI_Comm comm) {
  MPI_Comm node;
  BLL_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int n = 1;
  BLL_MPI_CHECK(MPI_Comm_size(node, &n));
  BLL_MPI_CHECK(MPI_Comm_free(&node));
  return n;
}

}  // namespace bll

#include <cstring>

#include "bll/error.h"
#include "bll/transport/mpi.h"

namespace bll {
namespace {

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

void require_contiguous(const torch::Tensor& t, const std::string& what) {
  if (!t.is_contiguous()) throw RuntimeError("mpi transport: " + what + ": tensor is not contiguous");
  if (t.numel() > std::numeric_limits<int>::max()) throw RuntimeError("mpi transport: " + what + ": tensor too large");
}

// MPI moves host memory. A GPU tensor travels through a pinned host copy: `outgoing` gives what
// to send (the tensor itself, or its host copy), `incoming` the buffer to receive into.
torch::Tensor outgoing(const torch::Tensor& t) {
  if (t.device().is_cpu()) return t;
  auto host = torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
  host.copy_(t);  // waits for the kernels that produce t
  return host;
}

torch::Tensor incoming(const torch::Tensor& t) {
  return t.device().is_cpu() ? t : torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
}

class MpiWork : public Work {
  static std::vector<torch::Tensor>& abandoned() {
    static auto* buffers = new std::vector<torch::Tensor>;  // never destroyed: MPI may still use them
    return *buffers;
  }

 public:
  // `keep`: the host buffer MPI reads or writes; `target`: where a received GPU tensor goes once
  // the message is in (undefined when MPI writes the target itself).
  MpiWork(MPI_Request req, torch::Tensor keep, std::string what, const MpiOptions& opt, torch::Tensor target = {})
      : req_(req), keep_(std::move(keep)), target_(std::move(target)), what_(std::move(what)), opt_(opt) {}
  ~MpiWork() override {
    // Dropped before completion (only on the way to an abort): MPI may still write into the
    // buffer, so keep it alive for the rest of the process rather than free memory under MPI.
    if (req_ != MPI_REQUEST_NULL) abandoned().push_back(keep_);
  }

  bool test() override {
    if (req_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    BLL_MPI_CHECK(MPI_Test(&req_, &done, MPI_STATUS_IGNORE));
    if (done && target_.defined()) {
      target_.copy_(keep_, /*non_blocking=*/true);  // ordered before the kernels that read it
      target_ = torch::Tensor();
    }
    return done != 0;
  }

  void wait() override {
    poll(opt_.timeout_s, opt_.poll_with_sleep, std::chrono::microseconds(500), [&](double s) {
      throw RuntimeError("timed out after " + std::to_string(int(s)) + " s waiting for " + what_ +
                         " (runtime: a peer rank stopped or is stuck)");
    });
  }

 private:
  MPI_Request req_;
  torch::Tensor keep_, target_;
  std::string what_;
  MpiOptions opt_;
};

class MpiTransport : public Transport {
 public:
  // `owned`: the communicator is this transport's own (a duplicate), freed with it.
  MpiTransport(MPI_Comm comm, MpiOptions opt, bool owned = false) : comm_(comm), opt_(opt), owned_(owned) {
    BLL_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    BLL_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiTransport() override {
    if (owned_) MPI_Comm_free(&comm_);  // unchecked: on the way to an abort the job is ending anyway
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  WorkPtr isend(const torch::Tensor& t, int dst, int tag, const std::string& what) override {
    require_contiguous(t, what);
    auto host = outgoing(t);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Isend(host.data_ptr(), int(t.numel()), mpi_type(t), dst, tag, comm_, &req));
    return std::make_unique<MpiWork>(req, host, "send of " + what + " to rank " + std::to_string(dst), opt_);
  }

  WorkPtr irecv(const torch::Tensor& t, int src, int tag, const std::string& what) override {
    require_contiguous(t, what);
    auto host = incoming(t);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Irecv(host.data_ptr(), int(t.numel()), mpi_type(t), src, tag, comm_, &req));
    return std::make_unique<MpiWork>(req, host, what + " from rank " + std::to_string(src), opt_,
                                     host.is_same(t) ? torch::Tensor() : t);
  }

  WorkPtr ibroadcast(const torch::Tensor& t, int root, const std::string& what) override {
    require_contiguous(t, what);
    if (size_ == 1) return done(what);  // no peer: nothing to stage through the host (the GPU's labels)
    auto host = rank_ == root ? outgoing(t) : incoming(t);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Ibcast(host.data_ptr(), int(t.numel()), mpi_type(t), root, comm_, &req));
    return std::make_unique<MpiWork>(req, host, "broadcast of " + what + " from rank " + std::to_string(root), opt_,
                                     host.is_same(t) || rank_ == root ? torch::Tensor() : t);
  }

  WorkPtr iallreduce_sum(const torch::Tensor& t, const std::string& what) override {
    require_contiguous(t, "allreduce");
    if (t.element_size() == 2 && t.is_floating_point())  // moved as raw 16-bit words: MPI cannot add them
      throw RuntimeError(std::string("mpi transport: allreduce of ") + c10::toString(t.scalar_type()) + " is not supported");
    if (size_ == 1) return done(what);
    auto host = outgoing(t);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, host.data_ptr(), int(t.numel()), mpi_type(t), MPI_SUM, comm_, &req));
    return std::make_unique<MpiWork>(req, host,
                                     what + " (" + std::to_string(t.numel()) + " values over " + std::to_string(size_) + " ranks)",
                                     opt_, host.is_same(t) ? torch::Tensor() : t);
  }

  // The blocking collectives wait like every other operation: runtime.timeout_s, then an error
  // naming what was waited for. Their buffers are tensors, which a wait given up keeps alive.
  void broadcast_string(std::string& s, int root) override {
    auto n = torch::full({1}, int64_t(s.size()), torch::kInt64);
    ibroadcast(n, root, "the length of a string")->wait();
    const int64_t length = n.data_ptr<int64_t>()[0];
    auto bytes = torch::empty({length}, torch::kUInt8);
    if (rank_ == root && length > 0) std::memcpy(bytes.data_ptr(), s.data(), size_t(length));
    if (length > 0) ibroadcast(bytes, root, "a string")->wait();
    s.assign(static_cast<const char*>(bytes.data_ptr()), size_t(length));
  }

  void barrier() override {
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Ibarrier(comm_, &req));
    MpiWork(req, {}, "a barrier of " + std::to_string(size_) + " ranks", opt_).wait();
  }

  std::unique_ptr<Transport> duplicate() override {
    // Given up on, the request may still write the new communicator: its home outlives the wait.
    auto dup = std::make_unique<MPI_Comm>(MPI_COMM_NULL);
    MPI_Request req;
    BLL_MPI_CHECK(MPI_Comm_idup(comm_, dup.get(), &req));
    try {
      MpiWork(req, {}, "the duplication of a communicator of " + std::to_string(size_) + " ranks", opt_).wait();
    } catch (...) {
      dup.release();
      throw;
    }
    return std::make_unique<MpiTransport>(*dup, opt_, true);
  }

 private:
  // A collective of one rank: complete at once, with no copy.
  WorkPtr done(const std::string& what) const { return std::make_unique<MpiWork>(MPI_REQUEST_NULL, torch::Tensor(), what, opt_); }

  MPI_Comm comm_;
  MpiOptions opt_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm, MpiOptions options) {
  return std::make_unique<MpiTransport>(comm, options);
}

RankLocation locate(MPI_Comm comm) {
  RankLocation where;
  BLL_MPI_CHECK(MPI_Comm_rank(comm, &where.rank));
  MPI_Comm node;
  BLL_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, where.rank, MPI_INFO_NULL, &node));
  BLL_MPI_CHECK(MPI_Comm_rank(node, &where.local_rank));
  BLL_MPI_CHECK(MPI_Comm_size(node, &where.local_ranks));
  BLL_MPI_CHECK(MPI_Comm_free(&node));
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  BLL_MPI_CHECK(MPI_Get_processor_name(name, &len));
  where.node.assign(name, size_t(len));
  return where;
}

void on_every_rank(MPI_Comm comm, const std::function<void()>& step) {
  agree_on_every_rank(*make_mpi_transport(comm), step);
}

}  // namespace bll

#include <cstring>
#include <deque>
#include <functional>

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

// MPI moves host memory. A GPU tensor travels through a pinned host copy; `incoming` gives the
// buffer to receive into (the tensor itself on the host).
torch::Tensor host_buffer(const torch::Tensor& t) {
  return torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(t.is_cuda()));
}

torch::Tensor incoming(const torch::Tensor& t) { return t.device().is_cpu() ? t : host_buffer(t); }

bool now() { return true; }

// An MPI request, and whether the operation has been handed to MPI yet.
struct Request {
  MPI_Request req = MPI_REQUEST_NULL;
  bool posted = false;
};

// The sends and collectives of one transport, handed to MPI in the order they were issued. An
// operation whose host copy is still being made (runtime.mpi_staging async) waits at the head
// of the line, and those issued after it wait behind it: messages of one tag must be matched in
// the order they were sent, and every rank must call the collectives in one order. Progress is
// made whenever the transport is called or one of its operations tested.
class PostQueue {
 public:
  struct Op {
    std::function<bool()> ready;  // true once the operation's host buffer holds its data
    std::function<void()> post;   // hands it to MPI
  };
  void push(Op op) {
    ops_.push_back(std::move(op));
    progress();
  }
  void progress() {
    while (!ops_.empty() && ops_.front().ready()) {
      Op op = std::move(ops_.front());
      ops_.pop_front();
      op.post();
    }
  }

 private:
  std::deque<Op> ops_;
};

class MpiWork : public Work {
  static std::vector<torch::Tensor>& abandoned() {
    static auto* buffers = new std::vector<torch::Tensor>;  // never destroyed: MPI may still use them
    return *buffers;
  }

 public:
  // `keep`: the host buffer MPI reads or writes; `target`: where a received GPU tensor goes once
  // the message is in (undefined when MPI writes the target itself).
  MpiWork(std::shared_ptr<Request> request, std::shared_ptr<PostQueue> queue, torch::Tensor keep, std::string what,
          const MpiOptions& opt, torch::Tensor target = {})
      : request_(std::move(request)), queue_(std::move(queue)), keep_(std::move(keep)), target_(std::move(target)),
        what_(std::move(what)), opt_(opt) {}
  ~MpiWork() override {
    // Dropped before completion (only on the way to an abort): MPI may still write into the
    // buffer, or the operation may yet be posted, so keep the buffer alive for the rest of the
    // process rather than free memory under MPI.
    if (!request_->posted || request_->req != MPI_REQUEST_NULL) abandoned().push_back(keep_);
  }

  bool test() override {
    if (queue_) queue_->progress();
    if (!request_->posted) return false;
    if (request_->req == MPI_REQUEST_NULL) return true;
    int done = 0;
    BLL_MPI_CHECK(MPI_Test(&request_->req, &done, MPI_STATUS_IGNORE));
    if (done && target_.defined()) {
      target_.copy_(keep_, /*non_blocking=*/true);  // ordered before the kernels that read it
      target_ = torch::Tensor();
    }
    return done != 0;
  }

  void wait() override {
    poll(opt_.timeout_s, opt_.poll_with_sleep, std::chrono::microseconds(500), [&](double s) {
      throw RuntimeError("timed out after " + std::to_string(int(s)) + " s waiting for " + what_ +
                         (request_->posted ? "" : " (its copy to host memory never completed)") +
                         " (runtime: a peer rank stopped or is stuck)");
    });
  }

 private:
  std::shared_ptr<Request> request_;
  std::shared_ptr<PostQueue> queue_;
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
    const Outgoing out = outgoing(t);
    void* data = out.host.data_ptr();
    const int n = int(t.numel());
    const MPI_Datatype type = mpi_type(t);
    MPI_Comm comm = comm_;
    return queue(out, [=](MPI_Request* r) { BLL_MPI_CHECK(MPI_Isend(data, n, type, dst, tag, comm, r)); },
                 "send of " + what + " to rank " + std::to_string(dst));
  }

  WorkPtr irecv(const torch::Tensor& t, int src, int tag, const std::string& what) override {
    require_contiguous(t, what);
    auto host = incoming(t);
    auto request = std::make_shared<Request>();  // receives need no turn: posted at once
    BLL_MPI_CHECK(MPI_Irecv(host.data_ptr(), int(t.numel()), mpi_type(t), src, tag, comm_, &request->req));
    request->posted = true;
    return std::make_unique<MpiWork>(request, queue_, host, what + " from rank " + std::to_string(src), opt_,
                                     host.is_same(t) ? torch::Tensor() : t);
  }

  WorkPtr ibroadcast(const torch::Tensor& t, int root, const std::string& what) override {
    require_contiguous(t, what);
    if (size_ == 1) return done(what);  // no peer: nothing to stage through the host (the GPU's labels)
    const Outgoing out = rank_ == root ? outgoing(t) : Outgoing{incoming(t), now};
    void* data = out.host.data_ptr();
    const int n = int(t.numel());
    const MPI_Datatype type = mpi_type(t);
    MPI_Comm comm = comm_;
    return queue(out, [=](MPI_Request* r) { BLL_MPI_CHECK(MPI_Ibcast(data, n, type, root, comm, r)); },
                 "broadcast of " + what + " from rank " + std::to_string(root),
                 out.host.is_same(t) || rank_ == root ? torch::Tensor() : t);
  }

  WorkPtr iallreduce_sum(const torch::Tensor& t, const std::string& what) override {
    require_contiguous(t, "allreduce");
    if (t.element_size() == 2 && t.is_floating_point())  // moved as raw 16-bit words: MPI cannot add them
      throw RuntimeError(std::string("mpi transport: allreduce of ") + c10::toString(t.scalar_type()) + " is not supported");
    if (size_ == 1) return done(what);
    const Outgoing out = outgoing(t);
    void* data = out.host.data_ptr();
    const int n = int(t.numel());
    const MPI_Datatype type = mpi_type(t);
    MPI_Comm comm = comm_;
    return queue(out, [=](MPI_Request* r) { BLL_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, n, type, MPI_SUM, comm, r)); },
                 what + " (" + std::to_string(t.numel()) + " values over " + std::to_string(size_) + " ranks)",
                 out.host.is_same(t) ? torch::Tensor() : t);
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
    MPI_Comm comm = comm_;
    queue({}, [=](MPI_Request* r) { BLL_MPI_CHECK(MPI_Ibarrier(comm, r)); },
          "a barrier of " + std::to_string(size_) + " ranks")
        ->wait();
  }

  std::unique_ptr<Transport> duplicate() override {
    // Given up on, the request may still write the new communicator: its home outlives the wait.
    auto dup = std::make_unique<MPI_Comm>(MPI_COMM_NULL);
    MPI_Comm comm = comm_, *into = dup.get();
    try {
      queue({}, [=](MPI_Request* r) { BLL_MPI_CHECK(MPI_Comm_idup(comm, into, r)); },
            "the duplication of a communicator of " + std::to_string(size_) + " ranks")
          ->wait();
    } catch (...) {
      dup.release();
      throw;
    }
    MpiOptions opt = opt_;
    opt.stager = nullptr;  // control traffic: host tensors
    return std::make_unique<MpiTransport>(*dup, opt, true);
  }

 private:
  // The host side of an outgoing tensor, and a test that is true once it holds the tensor's data.
  struct Outgoing {
    torch::Tensor host;
    std::function<bool()> ready = now;
  };

  // A host tensor is sent as it is. A device tensor is copied: by the stager, whose copy runs
  // while the host goes on, or here, the host waiting for the copy and the kernels before it.
  Outgoing outgoing(const torch::Tensor& t) {
    if (opt_.stager && opt_.stager->stages(t)) {
      auto host = host_buffer(t);
      auto ready = opt_.stager->start(t, host);
      return {host, std::move(ready)};
    }
    if (t.device().is_cpu()) return {t};
    auto host = host_buffer(t);
    host.copy_(t);  // waits for the kernels that produce t
    return {host};
  }

  // Queues a send or collective on `out`'s host buffer: handed to MPI at once, unless its copy
  // or an operation issued before it is still on its way.
  WorkPtr queue(const Outgoing& out, std::function<void(MPI_Request*)> post, std::string what, torch::Tensor target = {}) {
    auto request = std::make_shared<Request>();
    queue_->push({out.ready, [request, post = std::move(post)] {
                    post(&request->req);
                    request->posted = true;
                  }});
    return std::make_unique<MpiWork>(request, queue_, out.host, std::move(what), opt_, std::move(target));
  }

  // A collective of one rank: complete at once, with no copy.
  WorkPtr done(const std::string& what) const {
    auto request = std::make_shared<Request>();
    request->posted = true;
    return std::make_unique<MpiWork>(request, nullptr, torch::Tensor(), what, opt_);
  }

  MPI_Comm comm_;
  MpiOptions opt_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::shared_ptr<PostQueue> queue_ = std::make_shared<PostQueue>();
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

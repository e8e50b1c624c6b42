#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <vector>
#include <thread>

#include "bll/error.h"
#include "device/cuda_check.h"
#include "bll/transport/nccl.h"

namespace bll {
namespace {

using Clock = std::chrono::steady_clock;

// Checks an NCCL call that may also answer ncclInProgress (non-blocking communicators).
#define BLL_NCCL_CHECK(rank, call)                                                                     \
  do {                                                                                                 \
    ncclResult_t bll_r_ = (call);                                                                      \
    if (bll_r_ != ncclSuccess && bll_r_ != ncclInProgress)                                             \
      throw RuntimeError("rank " + std::to_string(rank) + ": " #call " failed" + source_line(__FILE__, __LINE__) + \
                         ": " + ncclGetErrorString(bll_r_) + " (" + ncclGetLastError(nullptr) + ")");  \
  } while (0)

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kFloat16: return ncclFloat16;
    default: throw RuntimeError(std::string("nccl transport: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

class NcclTransport;

class NcclWork : public Work {
 public:
  NcclWork(NcclTransport& owner, cudaEvent_t done, torch::Tensor keep, std::string what)
      : owner_(owner), done_(done), keep_(std::move(keep)), what_(std::move(what)) {}
  ~NcclWork() override;
  bool test() override;
  void wait() override;

 private:
  NcclTransport& owner_;
  cudaEvent_t done_;
  torch::Tensor keep_;  // the tensor NCCL reads or writes, alive until the operation is done
  std::string what_;
  bool complete_ = false;
};

class NcclTransport : public Transport {
 public:
  NcclTransport(MPI_Comm comm, const NcclOptions& opt, std::unique_ptr<Transport> host)
      : host_(std::move(host)), opt_(opt) {
    BLL_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
    BLL_MPI_CHECK(MPI_Comm_size(comm, &size_));
    BLL_CUDA_CHECK(rank_, cudaSetDevice(opt_.device));
    ncclUniqueId id;
    if (rank_ == 0) BLL_NCCL_CHECK(rank_, ncclGetUniqueId(&id));
    {  // over the host transport: a rank that never comes times out like any other wait
      auto bytes = torch::empty({int64_t(sizeof id)}, torch::kUInt8);
      std::memcpy(bytes.data_ptr(), &id, sizeof id);
      host_->ibroadcast(bytes, 0, "the NCCL unique id")->wait();
      std::memcpy(&id, bytes.data_ptr(), sizeof id);
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // calls return at once; settle() polls, so that a lost peer times out
    BLL_NCCL_CHECK(rank_, ncclCommInitRankConfig(&world_, size_, id, rank_, &config));
    settle(world_, "creating the NCCL communicator");
    // A communicator per neighbouring pair and direction: pairs (0,1),(2,3),... in one split,
    // (1,2),(3,4),... in the other, once for alpha (toward higher ranks) and once for gradients
    // (toward lower ranks). Each communicator then carries one direction on one stream, so the
    // two ends issue its operations in the same order and neither direction queues behind the
    // other.
    for (int dir = 0; dir < 2 && size_ > 1; ++dir)
      for (int phase = 0; phase < 2; ++phase) {
        const int partner = (rank_ % 2 == phase) ? rank_ + 1 : rank_ - 1;
        const bool paired = partner >= 0 && partner < size_;
        const int color = paired ? std::min(rank_, partner) : NCCL_SPLIT_NOCOLOR;
        ncclComm_t pair = nullptr;
        BLL_NCCL_CHECK(rank_, ncclCommSplit(world_, color, rank_, &pair, &config));
        settle(world_, "splitting the NCCL communicator");
        if (paired) settle(pair, "creating the communicator with rank " + std::to_string(partner));
        pair_[dir][partner > rank_ ? 1 : 0] = paired ? pair : nullptr;
      }
    for (cudaStream_t* st : streams())
      BLL_CUDA_CHECK(rank_, cudaStreamCreateWithFlags(st, cudaStreamNonBlocking));
  }

  ~NcclTransport() override {
    // Queued work drains within the timeout; while an error on this rank is unwinding (its
    // peers' matching operations may never come) the communicators are aborted at once.
    drain_or_abort(
        [&] {
          if (aborted_) return true;
          for (cudaStream_t* st : streams())
            if (*st && cudaStreamQuery(*st) == cudaErrorNotReady) return false;
          return true;
        },
        [&] { abort(); }, opt_.timeout_s);
    // The communicators go first: NCCL may still refer to the streams they last ran on.
    for (ncclComm_t* c : comms())
      if (*c && !aborted_) ncclCommDestroy(*c);
    for (cudaStream_t* st : streams())
      if (*st) cudaStreamDestroy(*st);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl " + nccl_version(); }

  WorkPtr isend(const torch::Tensor& t, int dst, int tag, const std::string& what) override {
    if (t.device().is_cpu()) return host_->isend(t, dst, tag, what);
    const Link l = link(dst, /*sending=*/true);
    return enqueue(t, l.stream, l.comm, "send of " + what + " to rank " + std::to_string(dst), [&](cudaStream_t st) {
      return ncclSend(t.data_ptr(), size_t(t.numel()), nccl_type(t), l.peer, l.comm, st);
    });
  }

  WorkPtr irecv(const torch::Tensor& t, int src, int tag, const std::string& what) override {
    if (t.device().is_cpu()) return host_->irecv(t, src, tag, what);
    const Link l = link(src, /*sending=*/false);
    return enqueue(t, l.stream, l.comm, what + " from rank " + std::to_string(src), [&](cudaStream_t st) {
      return ncclRecv(t.data_ptr(), size_t(t.numel()), nccl_type(t), l.peer, l.comm, st);
    });
  }

  WorkPtr ibroadcast(const torch::Tensor& t, int root, const std::string& what) override {
    if (t.device().is_cpu()) return host_->ibroadcast(t, root, what);
    return enqueue(t, coll_stream_, world_, "broadcast of " + what + " from rank " + std::to_string(root),
                   [&](cudaStream_t st) {
                     return ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t), root, world_, st);
                   });
  }

  WorkPtr iallreduce_sum(const torch::Tensor& t, const std::string& what) override {
    if (t.device().is_cpu()) return host_->iallreduce_sum(t, what);
    return enqueue(t, coll_stream_, world_, what, [&](cudaStream_t st) {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t), ncclSum, world_, st);
    });
  }

  void broadcast_string(std::string& s, int root) override { host_->broadcast_string(s, root); }
  void barrier() override { host_->barrier(); }
  std::unique_ptr<Transport> duplicate() override { return host_->duplicate(); }

  // Throws if a communicator reported an asynchronous error (after aborting them all).
  void check_async(const std::string& what) {
    for (ncclComm_t* cp : comms()) {
      ncclComm_t c = *cp;
      if (!c) continue;
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(c, &state);
      if (state != ncclSuccess && state != ncclInProgress) {
        const std::string detail = ncclGetLastError(c);
        abort();
        throw RuntimeError("rank " + std::to_string(rank_) + ": NCCL error during " + what + ": " +
                           ncclGetErrorString(state) + (detail.empty() ? "" : " (" + detail + ")") +
                           "; communicators aborted");
      }
    }
  }

  // Aborts every communicator and throws: `what` has waited longer than runtime.timeout_s.
  [[noreturn]] void time_out(const std::string& what, double waited) {
    abort();
    throw RuntimeError("rank " + std::to_string(rank_) + ": timed out after " + std::to_string(int(waited)) +
                       " s waiting for " + what + " (nccl; a peer rank stopped or is stuck; communicators aborted)");
  }

  int rank_id() const { return rank_; }
  bool aborted() const { return aborted_; }
  double timeout_s() const { return opt_.timeout_s; }

 private:
  struct Link {
    ncclComm_t comm;
    int peer;  // the other end's index in comm
    cudaStream_t stream;
  };
  // The communicator, the peer's index in it and the stream for a message to (`sending`) or
  // from `other`: alpha goes up (to rank + 1, from rank - 1), gradients down; anything else
  // uses the world communicator on the collective stream.
  Link link(int other, bool sending) const {
    const int side = other == rank_ + 1 ? 1 : other == rank_ - 1 ? 0 : -1;
    if (side >= 0) {
      const int dir = (side == 1) == sending ? 0 : 1;
      if (pair_[dir][side]) return {pair_[dir][side], side, pair_stream_[dir][side]};
    }
    return {world_, other, coll_stream_};
  }

  std::vector<ncclComm_t*> comms() {
    return {&pair_[0][0], &pair_[0][1], &pair_[1][0], &pair_[1][1], &world_};
  }
  std::vector<cudaStream_t*> streams() {
    return {&pair_stream_[0][0], &pair_stream_[0][1], &pair_stream_[1][0], &pair_stream_[1][1], &coll_stream_};
  }

  // Orders `stream` after the work queued so far on libtorch's default stream, issues the NCCL
  // call on it and returns a Work that completes with it.
  template <class Call>
  WorkPtr enqueue(const torch::Tensor& t, cudaStream_t stream, ncclComm_t comm, const std::string& what, Call call) {
    if (aborted_) throw RuntimeError("rank " + std::to_string(rank_) + ": nccl transport: " + what + " after the communicators were aborted");
    if (!t.is_cuda() || t.get_device() != opt_.device)
      throw RuntimeError("nccl transport: " + what + ": tensor is not on this rank's GPU " + std::to_string(opt_.device));
    if (!t.is_contiguous()) throw RuntimeError("nccl transport: " + what + ": tensor is not contiguous");
    cudaEvent_t ready = nullptr, done = nullptr;
    BLL_CUDA_CHECK(rank_, cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    BLL_CUDA_CHECK(rank_, cudaEventRecord(ready, cudaStreamLegacy));  // libtorch's default stream
    BLL_CUDA_CHECK(rank_, cudaStreamWaitEvent(stream, ready, 0));
    BLL_CUDA_CHECK(rank_, cudaEventDestroy(ready));
    BLL_NCCL_CHECK(rank_, call(stream));
    settle(comm, what);
    BLL_CUDA_CHECK(rank_, cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    BLL_CUDA_CHECK(rank_, cudaEventRecord(done, stream));
    return std::make_unique<NcclWork>(*this, done, t, what);
  }

  // Waits until a non-blocking communicator has finished the call in progress.
  void settle(ncclComm_t comm, const std::string& what) {
    const auto start = Clock::now();
    for (;;) {
      ncclResult_t state = ncclInProgress;
      BLL_NCCL_CHECK(rank_, ncclCommGetAsyncError(comm, &state));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) {
        const std::string detail = ncclGetLastError(comm);
        std::string hint;
        if (opt_.ranks_share_gpus)
          hint = "; NCCL " + nccl_version() +
                 " may refuse two ranks on one GPU: use runtime.transport=mpi, or NCCL >= 2.30 with "
                 "NCCL_MULTI_RANK_GPU_ENABLE=1";
        abort();
        throw RuntimeError("rank " + std::to_string(rank_) + ": NCCL failed " + what + ": " +
                           ncclGetErrorString(state) + (detail.empty() ? "" : " (" + detail + ")") + hint);
      }
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      if (s > opt_.timeout_s) time_out(what, s);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void abort() {
    if (aborted_) return;
    aborted_ = true;
    for (ncclComm_t* c : comms())
      if (*c) ncclCommAbort(*c), *c = nullptr;  // freed by the abort
  }

  std::unique_ptr<Transport> host_;
  NcclOptions opt_;
  int rank_ = 0, size_ = 1;
  ncclComm_t world_ = nullptr;
  ncclComm_t pair_[2][2] = {};  // [direction: 0 alpha, 1 gradients][side: 0 rank - 1, 1 rank + 1]
  cudaStream_t pair_stream_[2][2] = {}, coll_stream_ = nullptr;
  bool aborted_ = false;
};

NcclWork::~NcclWork() {
  // Dropped before completion (only on the way to an abort): keep the memory NCCL may still use.
  if (!complete_) new torch::Tensor(keep_);
  cudaEventDestroy(done_);
}

bool NcclWork::test() {
  if (complete_) return true;
  if (owner_.aborted())
    throw RuntimeError("rank " + std::to_string(owner_.rank_id()) + ": " + what_ + ": the NCCL communicators were aborted");
  const cudaError_t e = cudaEventQuery(done_);
  if (e == cudaErrorNotReady) {
    owner_.check_async(what_);
    return false;
  }
  BLL_CUDA_CHECK(owner_.rank_id(), e);
  // Later kernels on libtorch's default stream read a received tensor only after it arrived.
  BLL_CUDA_CHECK(owner_.rank_id(), cudaStreamWaitEvent(cudaStreamLegacy, done_, 0));
  complete_ = true;
  return true;
}

void NcclWork::wait() {
  poll(owner_.timeout_s(), /*sleep=*/true, std::chrono::microseconds(200),
       [&](double s) { owner_.time_out(what_, s); });
}

}  // namespace

std::unique_ptr<Transport> make_nccl_transport(MPI_Comm comm, const NcclOptions& options,
                                               std::unique_ptr<Transport> host) {
  return std::make_unique<NcclTransport>(comm, options, std::move(host));
}

std::string nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "(unknown version)";
  // NCCL_VERSION(X,Y,Z) = X*10000 + Y*100 + Z since 2.9.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

}  // namespace bll

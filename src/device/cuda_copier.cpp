#include "cuda_copier.h"

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "cuda_check.h"

namespace bll {
namespace {

// Copies batches host-to-device on a non-blocking stream of its own. A copy starts after the
// kernels already queued on libtorch's default stream (the memory it writes may have just been
// freed by them), so staging batch t + 1 before queuing batch t's compute overlaps the two;
// finish() makes the default stream wait for the copy. The pinned sources stay alive until
// their copy has completed.
class CudaCopier : public InputStager::Copier {
 public:
  CudaCopier(torch::Device device, int rank) : device_(device.index()), rank_(rank) {
    BLL_CUDA_CHECK(rank_, cudaSetDevice(device_));
    BLL_CUDA_CHECK(rank_, cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }

  ~CudaCopier() override {
    // Nothing may throw here: on an error path the copies are abandoned with the process.
    for (auto& c : copies_) {
      cudaEventSynchronize(c.done);
      cudaEventDestroy(c.done);
    }
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
    cudaStreamDestroy(stream_);
  }

  void start(const Batch& host, Batch& on_device) override {
    BLL_CUDA_CHECK(rank_, cudaSetDevice(device_));  // the legacy stream below is this device's
    retire();
    cudaEvent_t queued = event(), done = event();
    BLL_CUDA_CHECK(rank_, cudaEventRecord(queued, cudaStreamLegacy));  // libtorch's default stream
    BLL_CUDA_CHECK(rank_, cudaStreamWaitEvent(stream_, queued, 0));
    free_.push_back(queued);  // reusable at once: the wait was queued with the event's state now
    copy(host.x, on_device.x);
    copy(host.y, on_device.y);
    BLL_CUDA_CHECK(rank_, cudaEventRecord(done, stream_));
    copies_.push_back({host, done, false});
  }

  void finish() override {
    for (auto& c : copies_) {
      if (c.waited) continue;
      BLL_CUDA_CHECK(rank_, cudaSetDevice(device_));
      BLL_CUDA_CHECK(rank_, cudaStreamWaitEvent(cudaStreamLegacy, c.done, 0));
      c.waited = true;
      return;
    }
    throw RuntimeError("rank " + std::to_string(rank_) + ": input stager: no copy to finish");
  }

 private:
  struct Copy {
    Batch pinned;  // the source, alive until `done`
    cudaEvent_t done;
    bool waited;
  };

  cudaEvent_t event() {
    if (!free_.empty()) {
      cudaEvent_t e = free_.back();
      free_.pop_back();
      return e;
    }
    cudaEvent_t e;
    BLL_CUDA_CHECK(rank_, cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }

  void copy(const torch::Tensor& from, torch::Tensor& to) {
    BLL_CUDA_CHECK(rank_, cudaMemcpyAsync(to.data_ptr(), from.data_ptr(), size_t(from.nbytes()),
                                            cudaMemcpyHostToDevice, stream_));
  }

  // Releases the pinned sources of the copies that have completed and been handed over.
  void retire() {
    while (!copies_.empty() && copies_.front().waited) {
      cudaError_t e = cudaEventQuery(copies_.front().done);
      if (e == cudaErrorNotReady) return;
      BLL_CUDA_CHECK(rank_, e);
      free_.push_back(copies_.front().done);
      copies_.pop_front();
    }
  }

  int device_, rank_;
  cudaStream_t stream_ = nullptr;
  std::deque<Copy> copies_;
  std::vector<cudaEvent_t> free_;
};

// Device-to-host copies on a non-blocking stream of their own: a copy waits (on the device) for
// the kernels queued before it on libtorch's default stream, which produce its source, and
// blocks neither that stream nor the host. Each copy's test queries its event.
class CudaHostStager : public HostStager {
 public:
  CudaHostStager(torch::Device device, int rank) : device_(device.index()), rank_(rank) {
    BLL_CUDA_CHECK(rank_, cudaSetDevice(device_));
    BLL_CUDA_CHECK(rank_, cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~CudaHostStager() override { cudaStreamDestroy(stream_); }  // queued copies still complete

  std::function<bool()> start(const torch::Tensor& from, const torch::Tensor& to) override {
    BLL_CUDA_CHECK(rank_, cudaSetDevice(device_));
    const Event queued(rank_);  // destroyed at once: the wait below has taken its state
    auto done = std::make_shared<Event>(rank_);
    BLL_CUDA_CHECK(rank_, cudaEventRecord(queued.e, cudaStreamLegacy));  // libtorch's default stream
    BLL_CUDA_CHECK(rank_, cudaStreamWaitEvent(stream_, queued.e, 0));
    BLL_CUDA_CHECK(rank_, cudaMemcpyAsync(to.data_ptr(), from.data_ptr(), size_t(from.nbytes()),
                                            cudaMemcpyDeviceToHost, stream_));
    BLL_CUDA_CHECK(rank_, cudaEventRecord(done->e, stream_));
    // The source stays alive until the copy is complete: its memory is not reused under it.
    return [done, source = from, rank = rank_]() mutable {
      if (!source.defined()) return true;
      const cudaError_t e = cudaEventQuery(done->e);
      if (e == cudaErrorNotReady) return false;
      BLL_CUDA_CHECK(rank, e);
      source = torch::Tensor();
      return true;
    };
  }

 private:
  struct Event {
    explicit Event(int rank) { BLL_CUDA_CHECK(rank, cudaEventCreateWithFlags(&e, cudaEventDisableTiming)); }
    ~Event() { cudaEventDestroy(e); }  // released by CUDA once its work is complete
    cudaEvent_t e = nullptr;
  };

  int device_, rank_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::shared_ptr<HostStager> make_cuda_host_stager(torch::Device device, int rank) {
  return std::make_shared<CudaHostStager>(device, rank);
}

std::unique_ptr<InputStager::Copier> make_cuda_copier(torch::Device device, int rank) {
  return std::make_unique<CudaCopier>(device, rank);
}

}  // namespace bll

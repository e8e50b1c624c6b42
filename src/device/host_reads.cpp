#include "bll/host_reads.h"

#include <atomic>

#include "bll/error.h"

namespace bll {
namespace {
std::atomic<int64_t> g_reads{0};
}  // namespace

torch::Tensor read_to_host(const torch::Tensor& t) {
  g_reads.fetch_add(1, std::memory_order_relaxed);
  return t.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

double read_scalar(const torch::Tensor& t) {
  g_reads.fetch_add(1, std::memory_order_relaxed);
  return t.item<double>();
}

int64_t host_reads() { return g_reads.load(std::memory_order_relaxed); }

int64_t host_control_value(const torch::Tensor& t) {
  if (!t.device().is_cpu() || t.numel() != 1)
    throw RuntimeError("host_control_value: expects a one-element host tensor, got one on " + t.device().str());
  return t.to(torch::kInt64).data_ptr<int64_t>()[0];
}

}  // namespace bll

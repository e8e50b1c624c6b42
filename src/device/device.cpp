#include "bll/device.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "bll/error.h"
#include "cuda_copier.h"

// The autocast API took a device type in libtorch 2.4; before that it had one switch per device.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define BLL_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace bll {

bool torch_has_cuda() {
#ifdef BLL_TORCH_CUDA
  return true;
#else
  return false;
#endif
}

torch::Device select_device(const RuntimeConfig& config, const RankLocation& where) {
  if (config.device == "cpu") return torch::kCPU;
  const int64_t visible = int64_t(torch::cuda::device_count());
  const int64_t gpu = where.local_rank / config.ranks_per_gpu;
  if (gpu < visible) return torch::Device(torch::kCUDA, torch::DeviceIndex(gpu));
  std::string why = "rank " + std::to_string(where.rank) + " on node " + where.node +
                    ": runtime.device is cuda, but this rank sees " + std::to_string(visible) + " GPU" +
                    (visible == 1 ? "" : "s");
  if (!torch_has_cuda()) why += " (this bll is built with a libtorch without CUDA; see scripts/build_cuda.sh)";
  else if (visible > 0)
    why += " and needs GPU " + std::to_string(gpu) + " (node-local rank " + std::to_string(where.local_rank) +
           ", runtime.ranks_per_gpu " + std::to_string(config.ranks_per_gpu) + "; raise it to share GPUs)";
  throw RuntimeError(why);
}

void prepare_device(const RuntimeConfig& config, torch::Device device) {
  if (!device.is_cuda()) return;
  auto& ctx = at::globalContext();
  ctx.setBenchmarkCuDNN(!config.deterministic);
  ctx.setDeterministicCuDNN(config.deterministic);
  // warn_only: an op with no deterministic kernel warns instead of stopping the run.
  ctx.setDeterministicAlgorithms(config.deterministic, /*warn_only=*/true);
}

Autocast::Autocast(torch::Device device, bool enabled) : enabled_(enabled), type_(device.type()) {
  if (!enabled_) return;
#ifdef BLL_AUTOCAST_BY_DEVICE_TYPE
  previous_ = at::autocast::is_autocast_enabled(type_);
  previous_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::set_autocast_enabled(type_, true);
#else
  if (type_ == torch::kCUDA) {
    previous_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    previous_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

Autocast::~Autocast() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();  // the bf16 copies of weights
#ifdef BLL_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(type_, previous_);
  at::autocast::set_autocast_dtype(type_, previous_dtype_);
#else
  if (type_ == torch::kCUDA) {
    at::autocast::set_enabled(previous_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_cpu_enabled(previous_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  }
#endif
}

torch::Tensor to_device(const torch::Tensor& t, torch::Device device) {
  if (t.device() == device) return t;
  if (!device.is_cuda()) return t.to(device);
  // The pinned copy stays reserved by torch's host allocator until the transfer has completed.
  return t.pin_memory().to(device, /*non_blocking=*/true);
}

InputStager::InputStager(BatchSource* source, int64_t first, int64_t batches, torch::Device device, int rank)
    : source_(source), batches_(batches), staged_count_(first), device_(device) {
  if (!source_ || first >= batches_) return;
#ifdef BLL_HAVE_CUDART
  if (device.is_cuda()) copier_ = make_cuda_copier(device, rank);
#endif
  stage(source_->get(first));
}

InputStager::~InputStager() = default;

Batch InputStager::next() {
  Batch batch = take();
  if (staged_count_ < batches_) stage(source_->get(staged_count_));
  return batch;
}

void InputStager::stage(Batch batch) {
  if (copier_) {
    Batch host{batch.x.contiguous().pin_memory(), batch.y.contiguous().pin_memory()};
    Batch dev{torch::empty_like(host.x, host.x.options().device(device_).pinned_memory(false)),
              torch::empty_like(host.y, host.y.options().device(device_).pinned_memory(false))};
    copier_->start(host, dev);
    batch = std::move(dev);
  }
  staged_.push_back(std::move(batch));
  ++staged_count_;
}

Batch InputStager::take() {
  if (staged_.empty()) throw RuntimeError("input stager: next() past the last batch, or on a rank without data");
  Batch batch = std::move(staged_.front());
  staged_.pop_front();
  if (copier_) {
    copier_->finish();
    return batch;
  }
  return {to_device(batch.x, device_), to_device(batch.y, device_)};
}

at::MemoryFormat memory_format(const RuntimeConfig& config, torch::Device device) {
  if (config.memory_format == "channels_last" || (config.memory_format == "auto" && device.is_cpu()))
    return at::MemoryFormat::ChannelsLast;
  return at::MemoryFormat::Contiguous;
}

namespace {
// `t` with the strides of `format`. Not contiguous(format): a tensor with one channel (a
// first convolution's weight [C, 1, k, k], a grey image batch) counts as contiguous in both
// layouts, so contiguous() keeps its NCHW strides, and the convolution then picks its NCHW
// kernels, whose output slows every following element-wise and pooling op (5x for max-pooling on
// the main job's first stage). suggest_memory_format() reads the strides as the kernels do.
torch::Tensor with_strides_of(const torch::Tensor& t, at::MemoryFormat format) {
  if (t.suggest_memory_format() == format && t.is_contiguous(format)) return t;
  return t.to(t.options(), /*non_blocking=*/false, /*copy=*/false, format);
}
}  // namespace

void use_memory_format(torch::nn::Module& module, at::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  auto convert = [&](torch::Tensor t) {
    if (t.defined() && t.dim() == 4) t.set_data(with_strides_of(t.data(), format));
  };
  for (auto& p : module.parameters()) convert(p);
  for (auto& b : module.buffers()) convert(b);
}

torch::Tensor in_memory_format(const torch::Tensor& x, at::MemoryFormat format) {
  return x.dim() == 4 ? with_strides_of(x, format) : x;
}

torch::Dtype message_dtype(const RuntimeConfig& config) {
  return config.message_precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
}

}  // namespace bll

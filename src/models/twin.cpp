// The backward twin (supplement §2.2): the forward network reversed, fed with the labels. The
// twin of block k+1 mirrors block k+1's units in reverse order, each unit mapping its forward
// output shape back to its input shape, so it turns the twin message of block k+1 into
// beta_k, shaped like alpha_k. Mirrors are built from the shapes alone:
//   image -> image   nearest up-sampling where the forward unit down-sampled, then as many 3x3
//                    convolutions (batch norm, ReLU) as the unit has layers
//   vector -> image  linear map and unflatten (the mirror of a classifier head)
//   vector -> vector linear, batch norm, ReLU
//   tokens -> tokens per-token linear maps with ReLU
// The twin's last layer has no normalization or activation: beta_k is a message parameter.
#include "bll/error.h"
#include "bll/models/twin.h"
#include "layers.h"

namespace bll {
namespace nn = torch::nn;
namespace {

void mirror_unit(nn::Sequential& seq, const UnitPlan& u, bool final) {
  const Shape &from = u.out, &to = u.in;
  const int64_t layers = std::max<int64_t>(1, u.layers);
  auto finish = [&](bool last, auto norm) {
    if (last && final) return;
    norm();
    seq->push_back(nn::ReLU());
  };
  if (from.size() == 3 && to.size() == 3) {
    if (from[1] != to[1] || from[2] != to[2])
      seq->push_back(nn::Upsample(
          nn::UpsampleOptions().size(std::vector<int64_t>{to[1], to[2]}).mode(torch::kNearest)));
    for (int64_t l = 0; l < layers; ++l) {
      seq->push_back(nn::Conv2d(nn::Conv2dOptions(l == 0 ? from[0] : to[0], to[0], 3).padding(1)));
      finish(l + 1 == layers, [&] { seq->push_back(nn::BatchNorm2d(to[0])); });
    }
  } else if (from.size() == 1 && to.size() == 3) {
    seq->push_back(nn::Linear(from[0], models::numel(to)));
    seq->push_back(nn::Unflatten(nn::UnflattenOptions(1, to)));
    finish(true, [&] { seq->push_back(nn::BatchNorm2d(to[0])); });
  } else if (from.size() == 1 && to.size() == 1) {
    seq->push_back(nn::Linear(from[0], to[0]));
    finish(true, [&] { seq->push_back(nn::BatchNorm1d(to[0])); });
  } else if (from.size() == 2 && to.size() == 2) {
    for (int64_t l = 0; l < layers; ++l) {
      seq->push_back(nn::Linear(l == 0 ? from[1] : to[1], to[1]));
      finish(l + 1 == layers, [] {});
    }
  } else {
    throw ConfigError("loss.feedback twin: cannot mirror unit '" + u.name + "' (" + std::to_string(from.size()) +
                      "-d output to " + std::to_string(to.size()) + "-d input)");
  }
}

}  // namespace

torch::nn::Sequential make_twin(const Config& config, int64_t k, const Shape& data_shape, int64_t num_classes) {
  const auto plan = model_plan(config.model, data_shape, num_classes);
  const auto ranges = split_units(plan, config.model);
  if (k < 0 || k + 1 >= int64_t(ranges.size()))
    throw RuntimeError("twin of block " + std::to_string(k + 1) + ": no such hidden block boundary");
  torch::manual_seed(uint64_t(config.train.seed) * 1000003ull + 500009ull + uint64_t(k));
  nn::Sequential twin;
  const auto [first, last] = ranges[size_t(k + 1)];
  for (int64_t u = last - 1; u >= first; --u) mirror_unit(twin, plan[size_t(u)], u == first);
  return twin;
}

std::vector<int64_t> twin_layer_counts(const ModelConfig& model, const Shape& data_shape, int64_t num_classes) {
  auto counts = block_layer_counts(model, data_shape, num_classes);
  counts.erase(counts.begin());  // block 0 has no twin
  std::reverse(counts.begin(), counts.end());
  return counts;
}

TwinCodes::TwinCodes(const Config& config, const Shape& data_shape, int64_t num_classes) {
  offsets_.push_back(0);
  for (int64_t k = 0; k + 1 < config.model.blocks; ++k) {
    twins_.push_back(make_twin(config, k, data_shape, num_classes));
    int64_t n = 0;
    for (const auto& t : state_of(*twins_.back())) n += t.numel();
    offsets_.push_back(offsets_.back() + n);
  }
  codes_.resize(size_t(config.model.blocks));
  one_hot_ = torch::eye(num_classes);
  compute_codes();
}

std::vector<torch::Tensor> TwinCodes::state_of(const torch::nn::Module& twin) const {
  std::vector<torch::Tensor> state = twin.parameters();
  for (const auto& b : twin.buffers()) state.push_back(b);
  return state;
}

torch::Tensor TwinCodes::hosted_state(const std::vector<Block>& blocks) const {
  auto flat = torch::zeros({offsets_.back()}, torch::kFloat64);
  for (const auto& block : blocks) {
    if (!block->has_twin()) continue;
    int64_t at = offsets_[size_t(block->index())];
    for (const auto& t : state_of(*block->twin_module())) {
      flat.narrow(0, at, t.numel()).copy_(t.detach().reshape(-1));
      at += t.numel();
    }
  }
  return flat;
}

torch::Tensor TwinCodes::state() const {
  auto flat = torch::zeros({offsets_.back()}, torch::kFloat64);
  for (size_t k = 0; k < twins_.size(); ++k) {
    int64_t at = offsets_[k];
    for (const auto& t : state_of(*twins_[k])) {
      flat.narrow(0, at, t.numel()).copy_(t.detach().reshape(-1));
      at += t.numel();
    }
  }
  return flat;
}

void TwinCodes::load(const torch::Tensor& state) {
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < twins_.size(); ++k) {
    int64_t at = offsets_[k];
    for (auto& t : state_of(*twins_[k])) {
      t.copy_(state.narrow(0, at, t.numel()).view(t.sizes()));
      at += t.numel();
    }
  }
  compute_codes();
}

void TwinCodes::compute_codes() {
  torch::NoGradGuard no_grad;
  torch::Tensor code = one_hot_;
  codes_.back() = code.to(device_);
  for (int64_t k = int64_t(twins_.size()) - 1; k >= 0; --k) {
    twins_[size_t(k)]->eval();
    code = twins_[size_t(k)]->forward(code);
    codes_[size_t(k)] = code.to(device_);
  }
}

void TwinCodes::to(torch::Device device) {
  device_ = device;
  for (auto& c : codes_) c = c.to(device_);
}

torch::Tensor TwinCodes::input(int64_t k, const torch::Tensor& y) const {
  const auto& code = codes_.at(size_t(k) + 1);
  std::vector<int64_t> shape(y.sizes().begin(), y.sizes().end());
  shape.insert(shape.end(), code.sizes().begin() + 1, code.sizes().end());
  return code.index_select(0, y.reshape(-1)).view(shape);
}

}  // namespace bll

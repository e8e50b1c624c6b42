#include "bll/model.h"

#include "bll/error.h"

namespace bll {
namespace nn = torch::nn;

std::vector<UnitSpec> network_units(const ModelConfig& c) {
  std::vector<UnitSpec> units;
  for (int64_t w : c.widths) units.push_back({c.type == "cnn" ? UnitSpec::ConvStage : UnitSpec::Dense, w, c.convs_per_stage});
  units.push_back({UnitSpec::Head, c.head_hidden, 0});
  return units;
}

std::vector<std::pair<int64_t, int64_t>> split_units(int64_t num_units, const ModelConfig& c) {
  const int64_t n = c.blocks;
  if (n > num_units)
    throw ConfigError("model.blocks: " + std::to_string(n) + " blocks but the network has only " +
                      std::to_string(num_units) + " units (" + std::to_string(c.widths.size()) +
                      " from model.widths + the head)");
  std::vector<int64_t> sizes(size_t(n), num_units / n);
  if (!c.split.empty()) {
    sizes = c.split;
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    if (total != num_units)
      throw ConfigError("model.split: entries add up to " + std::to_string(total) + " but the network has " +
                        std::to_string(num_units) + " units");
  } else {
    for (int64_t i = 0; i < num_units % n; ++i) sizes[size_t(i)] += 1;
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t first = 0;
  for (int64_t s : sizes) {
    ranges.emplace_back(first, first + s);
    first += s;
  }
  return ranges;
}

Shape unit_output_shape(const UnitSpec& u, const Shape& in, int64_t num_classes) {
  switch (u.kind) {
    case UnitSpec::ConvStage:
      if (in.size() != 3) throw ConfigError("model.type cnn needs image input, got a vector");
      return {u.width, in[1] / 2, in[2] / 2};
    case UnitSpec::Dense: return {u.width};
    case UnitSpec::Head: return {num_classes};
  }
  return {};
}

std::vector<Shape> block_boundary_shapes(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  const auto units = network_units(c);
  std::vector<Shape> shapes{input};
  Shape s = input;
  for (const auto& [first, last] : split_units(int64_t(units.size()), c)) {
    for (int64_t u = first; u < last; ++u) s = unit_output_shape(units[size_t(u)], s, num_classes);
    shapes.push_back(s);
  }
  return shapes;
}

namespace {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

void append_unit(nn::Sequential& seq, const UnitSpec& u, const Shape& in, int64_t num_classes) {
  switch (u.kind) {
    case UnitSpec::ConvStage: {
      int64_t c = in[0];
      for (int64_t i = 0; i < u.convs; ++i) {
        seq->push_back(nn::Conv2d(nn::Conv2dOptions(c, u.width, 3).padding(1).bias(false)));
        seq->push_back(nn::BatchNorm2d(u.width));
        seq->push_back(nn::ReLU());
        c = u.width;
      }
      seq->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
      break;
    }
    case UnitSpec::Dense:
      if (in.size() > 1) seq->push_back(nn::Flatten());
      seq->push_back(nn::Linear(numel(in), u.width));
      seq->push_back(nn::BatchNorm1d(u.width));
      seq->push_back(nn::ReLU());
      break;
    case UnitSpec::Head:
      if (in.size() > 1) seq->push_back(nn::Flatten());
      if (u.width > 0) {
        seq->push_back(nn::Linear(numel(in), u.width));
        seq->push_back(nn::ReLU());
        seq->push_back(nn::Linear(u.width, num_classes));
      } else {
        seq->push_back(nn::Linear(numel(in), num_classes));
      }
      break;
  }
}

}  // namespace

BlockImpl::BlockImpl(const ModelConfig& model, const LossConfig& loss, int64_t index, const Shape& input,
                     int64_t num_classes)
    : index_(index), pool_(loss.readout_pool), input_(input) {
  const auto units = network_units(model);
  const auto ranges = split_units(int64_t(units.size()), model);
  if (index < 0 || index >= int64_t(ranges.size()))
    throw RuntimeError("block index " + std::to_string(index) + " out of range");
  body = register_module("body", nn::Sequential());
  Shape s = input;
  for (int64_t u = ranges[size_t(index)].first; u < ranges[size_t(index)].second; ++u) {
    append_unit(body, units[size_t(u)], s, num_classes);
    s = unit_output_shape(units[size_t(u)], s, num_classes);
  }
  output_ = s;
  is_output_ = ranges[size_t(index)].second == int64_t(units.size());
  if (!is_output_) {
    const int64_t c = channels_of(output_);
    const int64_t readout_in = output_.size() == 3 ? c * pool_ * pool_ : c;
    feedback_ = register_module("feedback", nn::Linear(num_classes, c));
    readout_ = register_module("readout", nn::Linear(readout_in, num_classes));
  }
}

torch::Tensor BlockImpl::readout(const torch::Tensor& alpha) {
  if (alpha.dim() == 4) return readout_->forward(torch::adaptive_avg_pool2d(alpha, {pool_, pool_}).flatten(1));
  return readout_->forward(alpha);
}

void BlockImpl::fit_feedback(const torch::Tensor& a, const torch::Tensor& y, double momentum) {
  torch::NoGradGuard no_grad;
  auto& w = feedback_->weight;  // [C, classes]
  const int64_t classes = w.size(1);
  auto sums = torch::zeros({classes, a.size(1)}, a.options()).index_add_(0, y, a);
  auto counts = torch::bincount(y, {}, classes).to(a.dtype());
  auto present = counts.gt(0);
  auto means = sums / counts.clamp_min(1).unsqueeze(1);          // [classes, C]
  auto blended = means * (1.0 - momentum) + w.t() * momentum;
  w.copy_(torch::where(present.unsqueeze(1), blended, w.t()).t());
  feedback_->bias.zero_();
}

Block make_block(const Config& config, int64_t index, const Shape& data_shape, int64_t num_classes) {
  const auto shapes = block_boundary_shapes(config.model, data_shape, num_classes);
  torch::manual_seed(uint64_t(config.train.seed) * 1000003ull + uint64_t(index) + 1);
  return Block(config.model, config.loss, index, shapes[size_t(index)], num_classes);
}

}  // namespace bll

// The model registry, the split of a plan into blocks, and the block itself.
#include <map>

#include "bll/error.h"
#include "bll/models/families.h"
#include "bll/models/twin.h"
#include "layers.h"

namespace bll {
namespace nn = torch::nn;
namespace {

using Factory = ModelPlan (*)(const ModelConfig&, const Shape&, int64_t);

// One line per model family.
const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> r{
      {"mlp", models::mlp},
      {"cnn", models::cnn},
      {"resnet18", models::resnet18},
      {"resnet50", models::resnet50},
      {"transformer", models::transformer},
      {"autoencoder", models::autoencoder},
  };
  return r;
}

std::string describe_units(const ModelPlan& plan) {
  std::string s;
  for (size_t i = 0; i < plan.size(); ++i) s += (i ? ", " : "") + plan[i].name;
  return s;
}

}  // namespace

namespace models {

UnitPlan dense_head(const Shape& in, int64_t hidden, int64_t num_classes) {
  const int64_t features = numel(in);
  const bool flatten = in.size() > 1;
  return {"head", in, {num_classes}, hidden > 0 ? 2 : 1, [=] {
            nn::Sequential seq;
            if (flatten) seq->push_back(nn::Flatten());
            if (hidden > 0) {
              seq->push_back(Dense(features, hidden));
              seq->push_back(nn::ReLU());
              seq->push_back(Dense(hidden, num_classes));
            } else {
              seq->push_back(Dense(features, num_classes));
            }
            return seq;
          }};
}

void require_widths(const std::string& type, const std::vector<int64_t>& widths) {
  if (widths.empty())
    throw ConfigError("model.widths: model.type " + type + " needs at least one entry (e.g. model.widths=[32,64,128])");
}

void require_image(const std::string& type, const Shape& in, int64_t min_side) {
  if (in.size() != 3)
    throw ConfigError("model.type " + type + " needs image input {C, H, W}, got a vector of " + std::to_string(numel(in)));
  if (in[1] < min_side || in[2] < min_side)
    throw ConfigError("model.type " + type + ": images of " + std::to_string(in[1]) + "x" + std::to_string(in[2]) +
                      " are too small for this network (it needs at least " + std::to_string(min_side) + "x" +
                      std::to_string(min_side) + ")");
}

}  // namespace models

const std::vector<std::string>& model_types() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, factory] : registry()) n.push_back(name);
    return n;
  }();
  return names;
}

ModelPlan model_plan(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  const auto it = registry().find(c.type);
  if (it == registry().end()) throw ConfigError("model.type '" + c.type + "' is not a known model");
  return it->second(c, input, num_classes);
}

std::vector<std::pair<int64_t, int64_t>> split_units(const ModelPlan& plan, const ModelConfig& c) {
  const int64_t units = int64_t(plan.size()), n = c.blocks;
  if (n > units)
    throw ConfigError("model.blocks: " + std::to_string(n) + " blocks but " + c.type + " has only " +
                      std::to_string(units) + " units to split at (" + describe_units(plan) + ")");
  std::vector<int64_t> cuts{0};  // unit index where each block starts, then the end
  if (!c.split.empty()) {
    int64_t total = 0;
    for (int64_t s : c.split) cuts.push_back(total += s);
    if (total != units)
      throw ConfigError("model.split: entries add up to " + std::to_string(total) + " but " + c.type + " has " +
                        std::to_string(units) + " units (" + describe_units(plan) + ")");
  } else {
    std::vector<int64_t> cumulative{0};  // layers before unit u
    for (const auto& u : plan) cumulative.push_back(cumulative.back() + u.layers);
    const double total = double(cumulative.back());
    for (int64_t k = 1; k < n; ++k) {
      const double target = total * double(k) / double(n);
      int64_t best = cuts.back() + 1;
      for (int64_t u = best; u <= units - (n - k); ++u)
        if (std::abs(double(cumulative[size_t(u)]) - target) <= std::abs(double(cumulative[size_t(best)]) - target))
          best = u;
      cuts.push_back(best);
    }
    cuts.push_back(units);
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t k = 0; k + 1 < cuts.size(); ++k) ranges.emplace_back(cuts[k], cuts[k + 1]);
  return ranges;
}

std::vector<Shape> block_boundary_shapes(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  const auto plan = model_plan(c, input, num_classes);
  std::vector<Shape> shapes{input};
  for (const auto& [first, last] : split_units(plan, c)) shapes.push_back(plan[size_t(last - 1)].out);
  return shapes;
}

std::vector<int64_t> block_layer_counts(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  const auto plan = model_plan(c, input, num_classes);
  std::vector<int64_t> counts;
  for (const auto& [first, last] : split_units(plan, c)) {
    counts.push_back(0);
    for (int64_t u = first; u < last; ++u) counts.back() += plan[size_t(u)].layers;
  }
  return counts;
}

BlockImpl::BlockImpl(const ModelConfig& model, const LossConfig& loss, int64_t index, const Shape& data_shape,
                     int64_t num_classes)
    : index_(index), pool_(loss.readout_pool) {
  const auto plan = model_plan(model, data_shape, num_classes);
  const auto ranges = split_units(plan, model);
  if (index < 0 || index >= int64_t(ranges.size()))
    throw RuntimeError("block index " + std::to_string(index) + " out of range");
  const auto [first, last] = ranges[size_t(index)];
  for (int64_t u = first; u < last; ++u)
    units_.push_back(register_module(plan[size_t(u)].name, plan[size_t(u)].build()));
  input_ = plan[size_t(first)].in;
  output_ = plan[size_t(last - 1)].out;
  is_output_ = last == int64_t(plan.size());
  if (!is_output_) {
    const int64_t c = channels_of(output_);
    const int64_t readout_in = output_.size() == 3 ? c * pool_ * pool_ : c;
    if (loss.feedback != "twin") feedback_ = register_module("feedback", nn::Linear(num_classes, c));
    readout_ = register_module("readout", nn::Linear(readout_in, num_classes));
  }
}

torch::Tensor BlockImpl::forward(torch::Tensor x) {
  for (auto& unit : units_) x = unit->forward(x);
  return x;
}

torch::Tensor BlockImpl::readout(const torch::Tensor& alpha) {
  if (alpha.dim() == 4) return readout_->forward(torch::adaptive_avg_pool2d(alpha, {pool_, pool_}).flatten(1));
  return readout_->forward(alpha);
}

void BlockImpl::fit_feedback(const torch::Tensor& targets, const torch::Tensor& y, double momentum,
                             const std::function<torch::Tensor(const torch::Tensor&)>& to_message,
                             const std::function<void(const torch::Tensor&)>& sum_replicas) {
  torch::NoGradGuard no_grad;
  auto& w = feedback_->weight;  // [C, classes]
  const int64_t classes = w.size(1), C = targets.size(1);
  // Per-class sums and counts in one scatter-add (no bincount: on a GPU it reads the largest
  // label back to the host).
  auto both = torch::zeros({classes, C + 1}, targets.options())
                  .index_add_(0, y, torch::cat({targets, torch::ones({targets.size(0), 1}, targets.options())}, 1));
  if (sum_replicas) sum_replicas(both);
  auto sums = both.narrow(1, 0, C), counts = both.select(1, C);
  auto present = counts.gt(0);
  auto means = to_message(sums / counts.clamp_min(1).unsqueeze(1));  // [classes, C]
  auto blended = means * (1.0 - momentum) + w.t() * momentum;
  w.copy_(torch::where(present.unsqueeze(1), blended, w.t()).t());
  feedback_->bias.zero_();
}

void BlockImpl::attach_twin(torch::nn::Sequential twin) { twin_ = register_module("twin", std::move(twin)); }

namespace {
std::string model_named(const Config& config, const std::string& where) {
  return "model.type " + config.model.type + " (" + where + ")";
}
}  // namespace

void require_method(const Config& config, const Shape& data_shape, int64_t num_classes) {
  if (config.train.method != "fa") return;
  for (const auto& unit : model_plan(config.model, data_shape, num_classes)) {
    auto built = unit.build();
    use_feedback_alignment(*built, model_named(config, "unit " + unit.name));
  }
}

Block make_block(const Config& config, int64_t index, const Shape& data_shape, int64_t num_classes) {
  torch::manual_seed(uint64_t(config.train.seed) * 1000003ull + uint64_t(index) + 1);
  Block block(config.model, config.loss, index, data_shape, num_classes);
  if (config.train.method == "fa")  // the random feedback weights come from the block's seed too
    for (auto unit : block->units()) use_feedback_alignment(*unit, model_named(config, "block " + std::to_string(index)));
  if (config.loss.feedback == "twin" && !block->is_output())
    block->attach_twin(make_twin(config, index, data_shape, num_classes));
  return block;
}

}  // namespace bll

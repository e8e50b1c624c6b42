// Multi-layer perceptron: one unit per hidden layer (linear, batch norm, ReLU), then the head.
#include "bll/models/families.h"
#include "layers.h"

namespace bll::models {
namespace nn = torch::nn;

ModelPlan mlp(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  require_widths("mlp", c.widths);
  ModelPlan plan;
  Shape s = input;
  for (size_t i = 0; i < c.widths.size(); ++i) {
    const int64_t in = numel(s), w = c.widths[i];
    const bool flatten = s.size() > 1;
    plan.push_back({"dense" + std::to_string(i + 1), s, {w}, 1, [=] {
                      nn::Sequential seq;
                      if (flatten) seq->push_back(nn::Flatten());
                      seq->push_back(Dense(in, w));
                      seq->push_back(nn::BatchNorm1d(w));
                      seq->push_back(nn::ReLU());
                      return seq;
                    }});
    s = {w};
  }
  plan.push_back(dense_head(s, c.head_hidden, num_classes));
  return plan;
}

}  // namespace bll::models

// Plain convolutional network: one unit per stage (model.convs_per_stage conv-bn-relu layers,
// then 2x2 max-pooling), then the head.
#include "bll/models/families.h"
#include "layers.h"

namespace bll::models {
namespace nn = torch::nn;

ModelPlan cnn(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  require_image("cnn", input, int64_t(1) << c.widths.size());
  require_widths("cnn", c.widths);
  ModelPlan plan;
  Shape s = input;
  for (size_t i = 0; i < c.widths.size(); ++i) {
    const int64_t in = s[0], w = c.widths[i], convs = c.convs_per_stage;
    const Shape out{w, s[1] / 2, s[2] / 2};
    plan.push_back({"stage" + std::to_string(i + 1), s, out, convs, [=] {
                      nn::Sequential seq;
                      for (int64_t j = 0; j < convs; ++j) {
                        seq->push_back(Conv(nn::Conv2dOptions(j == 0 ? in : w, w, 3).padding(1).bias(false)));
                        seq->push_back(nn::BatchNorm2d(w));
                        seq->push_back(nn::ReLU());
                      }
                      seq->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
                      return seq;
                    }});
    s = out;
  }
  plan.push_back(dense_head(s, c.head_hidden, num_classes));
  return plan;
}

}  // namespace bll::models

// The convolutional uncertainty autoencoder of supplement §2.1. Input and output are 56x28: an
// image stacked on its uncertainty patch; the output's top half is the predicted mean, its bottom
// half the predicted log-variance (losses/reconstruction.h). Encoder: two 3x3 convolutions with
// batch norm, leaky ReLU and 2x2 max-pooling, widths model.widths[0] and the bottleneck
// model.widths[1] (128 in the supplement). Decoder: two 2x2 stride-2 transposed convolutions, the
// first with batch norm and leaky ReLU, the second linear. One unit per layer: enc1, enc2, dec1,
// and dec2, the head.
#include "bll/error.h"
#include "bll/models/families.h"
#include "layers.h"

namespace bll::models {
namespace nn = torch::nn;

ModelPlan autoencoder(const ModelConfig& c, const Shape& input, int64_t) {
  require_image("autoencoder", input, 8);
  if (c.widths.size() != 2)
    throw ConfigError("model.widths: model.type autoencoder needs two entries, [encoder width, bottleneck] (e.g. [32,128])");
  if (input[1] % 4 != 0 || input[2] % 4 != 0)
    throw ConfigError("model.type autoencoder: image sides must be multiples of 4, got " + std::to_string(input[1]) +
                      "x" + std::to_string(input[2]));
  const int64_t ch = input[0], h = input[1], w = input[2], w1 = c.widths[0], w2 = c.widths[1];
  auto leaky = [] { return nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)); };
  auto encode = [=](int64_t in, int64_t out) {
    return [=] {
      return nn::Sequential(Conv(nn::Conv2dOptions(in, out, 3).padding(1)), nn::BatchNorm2d(out), leaky(),
                            nn::MaxPool2d(2));
    };
  };
  auto up = [](int64_t in, int64_t out) { return nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, 2).stride(2)); };
  ModelPlan plan;
  plan.push_back({"enc1", input, {w1, h / 2, w / 2}, 1, encode(ch, w1)});
  plan.push_back({"enc2", {w1, h / 2, w / 2}, {w2, h / 4, w / 4}, 1, encode(w1, w2)});
  plan.push_back({"dec1", {w2, h / 4, w / 4}, {w1, h / 2, w / 2}, 1,
                  [=] { return nn::Sequential(up(w2, w1), nn::BatchNorm2d(w1), leaky()); }});
  plan.push_back({"dec2", {w1, h / 2, w / 2}, input, 1, [=] { return nn::Sequential(up(w1, ch)); }});
  return plan;
}

}  // namespace bll::models

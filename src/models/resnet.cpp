// ResNet-18 and ResNet-50 (He et al. 2016). The stem (model.stem) is a 3x3 convolution without
// max-pooling for small images (as is usual for 28x28 to 64x64 inputs), or ImageNet's 7x7
// stride-2 convolution and 3x3 stride-2 max pooling (224x224 inputs); then four stages of
// residual units at widths w, 2w, 4w, 8w (w = model.width; 64 is the standard network) with
// stride 2 at the start of stages 2-4, batch norm after every convolution, then global average
// pooling and a linear classifier.
// Units: the stem (1 layer), each residual unit (basic: 2 layers, bottleneck: 3), the head (1),
// so ResNet-18 has 18 layers in 10 units and ResNet-50 has 50 in 18.
#include "bll/models/families.h"
#include "layers.h"

namespace bll::models {
namespace nn = torch::nn;
namespace {

Conv conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return Conv(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

// The projection on the shortcut when a unit changes shape: 1x1 convolution + batch norm.
nn::Sequential projection(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(conv(in, out, 1, stride), nn::BatchNorm2d(out));
}

// Two 3x3 convolutions (ResNet-18/34).
struct BasicUnitImpl : nn::Module {
  BasicUnitImpl(int64_t in, int64_t width, int64_t stride)
      : conv1(register_module("conv1", conv(in, width, 3, stride))),
        bn1(register_module("bn1", nn::BatchNorm2d(width))),
        conv2(register_module("conv2", conv(width, width, 3, 1))),
        bn2(register_module("bn2", nn::BatchNorm2d(width))) {
    if (stride != 1 || in != width) shortcut = register_module("shortcut", projection(in, width, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = bn2(conv2(torch::relu(bn1(conv1(x)))));
    return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  Conv conv1;
  nn::BatchNorm2d bn1;
  Conv conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(BasicUnit);

// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).
struct BottleneckUnitImpl : nn::Module {
  BottleneckUnitImpl(int64_t in, int64_t width, int64_t stride)
      : conv1(register_module("conv1", conv(in, width, 1, 1))),
        bn1(register_module("bn1", nn::BatchNorm2d(width))),
        conv2(register_module("conv2", conv(width, width, 3, stride))),
        bn2(register_module("bn2", nn::BatchNorm2d(width))),
        conv3(register_module("conv3", conv(width, 4 * width, 1, 1))),
        bn3(register_module("bn3", nn::BatchNorm2d(4 * width))) {
    if (stride != 1 || in != 4 * width) shortcut = register_module("shortcut", projection(in, 4 * width, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1(conv1(x)));
    y = bn3(conv3(torch::relu(bn2(conv2(y)))));
    return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  Conv conv1;
  nn::BatchNorm2d bn1;
  Conv conv2;
  nn::BatchNorm2d bn2;
  Conv conv3;
  nn::BatchNorm2d bn3;
  nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(BottleneckUnit);

int64_t strided(int64_t side, int64_t stride) { return stride == 1 ? side : (side - 1) / 2 + 1; }

ModelPlan resnet(const std::string& type, bool bottleneck, const std::vector<int64_t>& units_per_stage,
                 const ModelConfig& c, const Shape& input, int64_t num_classes) {
  require_image(type, input, 8);
  const int64_t w = c.width, in_c = input[0];
  ModelPlan plan;
  const bool imagenet = c.stem == "imagenet" || (c.stem == "auto" && std::min(input[1], input[2]) >= 128);
  Shape s{w, input[1], input[2]};
  if (imagenet) {  // /4: the convolution and the pooling each halve the side (rounding up)
    s = {w, strided(strided(input[1], 2), 2), strided(strided(input[2], 2), 2)};
    plan.push_back({"stem", input, s, 1, [=] {
                      return nn::Sequential(conv(in_c, w, 7, 2), nn::BatchNorm2d(w), nn::ReLU(),
                                            nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
                    }});
  } else {
    plan.push_back({"stem", input, s, 1, [=] {
                      return nn::Sequential(conv(in_c, w, 3, 1), nn::BatchNorm2d(w), nn::ReLU());
                    }});
  }
  const int64_t expansion = bottleneck ? 4 : 1;
  for (size_t stage = 0; stage < units_per_stage.size(); ++stage) {
    const int64_t width = w << stage;
    for (int64_t u = 0; u < units_per_stage[stage]; ++u) {
      const int64_t stride = (stage > 0 && u == 0) ? 2 : 1, in = s[0];
      const Shape out{width * expansion, strided(s[1], stride), strided(s[2], stride)};
      const std::string name = "stage" + std::to_string(stage + 1) + "_unit" + std::to_string(u + 1);
      if (bottleneck)
        plan.push_back({name, s, out, 3, [=] { return nn::Sequential(BottleneckUnit(in, width, stride)); }});
      else
        plan.push_back({name, s, out, 2, [=] { return nn::Sequential(BasicUnit(in, width, stride)); }});
      s = out;
    }
  }
  const int64_t features = s[0];
  plan.push_back({"head", s, {num_classes}, 1, [=] {
                    return nn::Sequential(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)), nn::Flatten(),
                                          Dense(features, num_classes));
                  }});
  return plan;
}

}  // namespace

ModelPlan resnet18(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  return resnet("resnet18", false, {2, 2, 2, 2}, c, input, num_classes);
}

ModelPlan resnet50(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  return resnet("resnet50", true, {3, 4, 6, 3}, c, input, num_classes);
}

}  // namespace bll::models

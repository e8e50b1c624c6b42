#include "bll/models/layers.h"

#include <cmath>

#include "bll/error.h"

namespace bll {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The gradient arrives in the output's dtype (bf16 under autocast); the backward runs in the
// input's.
torch::Tensor incoming(const variable_list& grads, const torch::Tensor& like) { return grads[0].to(like.scalar_type()); }

struct DenseFA : torch::autograd::Function<DenseFA> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& feedback) {
    ctx->save_for_backward({x, feedback});
    return torch::nn::functional::linear(x, w);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto g = incoming(grads, x);
    const auto g2 = g.reshape({-1, g.size(-1)}), x2 = x.reshape({-1, x.size(-1)});
    return {g.matmul(saved[1]), g2.t().mm(x2), torch::Tensor()};
  }
};

struct ConvFA : torch::autograd::Function<ConvFA> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& feedback, std::vector<int64_t> stride,
                               std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
    ctx->save_for_backward({x, w, feedback});
    ctx->saved_data["stride"] = stride, ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation, ctx->saved_data["groups"] = groups;
    return torch::conv2d(x, w, {}, stride, padding, dilation, groups);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &feedback = saved[2];
    const auto g = incoming(grads, x);
    const auto stride = ctx->saved_data["stride"].toIntVector(), padding = ctx->saved_data["padding"].toIntVector(),
               dilation = ctx->saved_data["dilation"].toIntVector();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const std::vector<int64_t> no_output_padding{0, 0};
    // The input's gradient through the random kernel; the weight's through its own.
    const auto gx = std::get<0>(at::convolution_backward(g, x, feedback, c10::nullopt, stride, padding, dilation, false,
                                                         no_output_padding, groups, {true, false, false}));
    const auto gw = std::get<1>(at::convolution_backward(g, x, w, c10::nullopt, stride, padding, dilation, false,
                                                         no_output_padding, groups, {false, true, false}));
    return {gx, gw, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor kaiming_uniform_like(const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  auto feedback = torch::empty_like(w);
  torch::nn::init::kaiming_uniform_(feedback);  // U(-b, b), b = sqrt(6 / fan_in)
  return feedback;
}

}  // namespace

torch::Tensor DenseImpl::forward(const torch::Tensor& x) {
  if (!feedback_.defined() || !torch::GradMode::is_enabled()) return LinearImpl::forward(x);
  // The bias is added outside: autograd's functions take no undefined tensors.
  const auto y = DenseFA::apply(x, weight, feedback_);
  return bias.defined() ? y + bias : y;
}

void DenseImpl::use_feedback_alignment() {
  if (!feedback_.defined()) feedback_ = register_buffer("feedback_alignment", kaiming_uniform_like(weight));
}

torch::Tensor ConvImpl::forward(const torch::Tensor& x) {
  if (!feedback_.defined() || !torch::GradMode::is_enabled()) return Conv2dImpl::forward(x);
  const auto& o = options;
  // Numeric padding (checked when fa was turned on) as torch keeps it: {w, w, h, h}.
  const auto& p = _reversed_padding_repeated_twice;
  const auto y = ConvFA::apply(x, weight, feedback_, std::vector<int64_t>(o.stride()->begin(), o.stride()->end()),
                               std::vector<int64_t>{p[2], p[0]},
                               std::vector<int64_t>(o.dilation()->begin(), o.dilation()->end()), o.groups());
  return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
}

void ConvImpl::use_feedback_alignment() {
  // index() works on libtorch 1.13's c10::variant and 2.x's std::variant alike: alternative 0
  // is numeric padding, and zero padding.
  if (options.padding().index() != 0 || options.padding_mode().index() != 0)
    throw ConfigError("train.method fa: a convolution with padding by name or a padding mode other than zeros is not covered");
  if (!feedback_.defined()) feedback_ = register_buffer("feedback_alignment", kaiming_uniform_like(weight));
}

void use_feedback_alignment(torch::nn::Module& module, const std::string& what) {
  for (const auto& item : module.named_modules()) {
    torch::nn::Module& m = *item.value();
    if (auto* dense = dynamic_cast<DenseImpl*>(&m)) dense->use_feedback_alignment();
    else if (auto* conv = dynamic_cast<ConvImpl*>(&m)) conv->use_feedback_alignment();
    else if (!m.named_parameters(/*recurse=*/false).is_empty() && !dynamic_cast<torch::nn::BatchNorm2dImpl*>(&m) &&
             !dynamic_cast<torch::nn::BatchNorm1dImpl*>(&m) && !dynamic_cast<torch::nn::LayerNormImpl*>(&m) &&
             !dynamic_cast<torch::nn::EmbeddingImpl*>(&m))
      throw ConfigError("train.method fa: " + what + " has a layer that feedback alignment does not cover (" +
                        m.name() + " at '" + item.key() + "')");
  }
}

}  // namespace bll

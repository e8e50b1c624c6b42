// A transformer encoder for token sequences (the paper's sequence-to-sequence model, Fig. 3):
// L layers (model.layers; 0 = one per block) with one attention head each, model dimension d = model.width, feed-forward 4d,
// pre-layer-norm residual layers, learned positional embeddings, no dropout. Every position
// predicts its target token, so the output is [T, vocabulary].
// Units: layer 1 (token and position embeddings + the first layer), layers 2..L, and the head
// (layer norm + linear to the vocabulary). The head counts no layer of its own, so that a split
// into blocks counts transformer layers: 20 layers in 5 blocks are 4 layers a block, the head
// riding with the last. Messages alpha_k are the residual stream [T, d]: one message per token.
#include <cmath>

#include "bll/error.h"
#include "bll/models/families.h"
#include "layers.h"

namespace bll::models {
namespace nn = torch::nn;
namespace F = torch::nn::functional;
namespace {

// Token ids (as floats, [B, T]) -> token embedding + position embedding, [B, T, d].
struct EmbeddingImpl : nn::Module {
  EmbeddingImpl(int64_t vocabulary, int64_t length, int64_t d)
      : tokens(register_module("tokens", nn::Embedding(vocabulary, d))),
        positions(register_parameter("positions", torch::randn({length, d}))) {}
  torch::Tensor forward(const torch::Tensor& ids) { return tokens(ids.to(torch::kLong)) + positions; }
  nn::Embedding tokens;
  torch::Tensor positions;
};
TORCH_MODULE(Embedding);

// x + attention(norm(x)), then x + mlp(norm(x)); one head.
struct LayerImpl : nn::Module {
  explicit LayerImpl(int64_t d)
      : norm1(register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({d})))),
        qkv(register_module("qkv", Dense(d, 3 * d))),
        proj(register_module("proj", Dense(d, d))),
        norm2(register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({d})))),
        up(register_module("up", Dense(d, 4 * d))),
        down(register_module("down", Dense(4 * d, d))),
        scale(1.0 / std::sqrt(double(d))) {}
  torch::Tensor forward(torch::Tensor x) {
    const auto parts = qkv(norm1(x)).chunk(3, -1);  // q, k, v: [B, T, d]
    const auto weights = torch::softmax(torch::matmul(parts[0], parts[1].transpose(1, 2)) * scale, -1);
    x = x + proj(torch::matmul(weights, parts[2]));
    return x + down(F::gelu(up(norm2(x))));
  }
  nn::LayerNorm norm1;
  Dense qkv, proj;
  nn::LayerNorm norm2;
  Dense up, down;
  double scale;
};
TORCH_MODULE(Layer);

}  // namespace

ModelPlan transformer(const ModelConfig& c, const Shape& input, int64_t num_classes) {
  if (input.size() != 1)
    throw ConfigError("model.type transformer needs token sequences (data.dataset: reversal), got samples of shape " +
                      std::to_string(input.size()) + "-d");
  const int64_t T = input[0], d = c.width, vocabulary = num_classes, layers = c.layers > 0 ? c.layers : c.blocks;
  ModelPlan plan;
  for (int64_t l = 1; l <= layers; ++l)
    plan.push_back({"layer" + std::to_string(l), l == 1 ? input : Shape{T, d}, {T, d}, 1, [=] {
                      nn::Sequential seq;
                      if (l == 1) seq->push_back(Embedding(vocabulary, T, d));
                      seq->push_back(Layer(d));
                      return seq;
                    }});
  plan.push_back({"head", {T, d}, {T, num_classes}, 0, [=] {
                    return nn::Sequential(nn::LayerNorm(nn::LayerNormOptions({d})), Dense(d, num_classes));
                  }});
  return plan;
}

}  // namespace bll::models

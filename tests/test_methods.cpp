// The baselines' own pieces: feedback-alignment layers (train.method fa), the similarity-matching
// loss (predsim), and what greedy and predsim learners train.
#include <catch2/catch.hpp>

#include <algorithm>

#include "bll/config.h"
#include "bll/error.h"
#include "bll/learner.h"
#include "bll/losses/similarity.h"
#include "bll/models/layers.h"
#include "bll/models/model.h"
#include "bll/schedules/backprop_order.h"
#include "fixtures.h"

using namespace bll;
using Catch::Matchers::Contains;

namespace {
Config cnn_config(const std::string& method) { return test::small_cnn_config({"train.method=" + method}); }

bool close(const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-6); }
}  // namespace

TEST_CASE("fa: a dense layer sends the input gradient through its fixed random matrix, the weight's through x") {
  torch::manual_seed(1);
  Dense dense(5, 3);
  dense->use_feedback_alignment();
  REQUIRE(dense->feedback_weight().sizes() == dense->weight.sizes());
  CHECK_FALSE(close(dense->feedback_weight(), dense->weight));
  auto x = torch::randn({4, 5}, torch::requires_grad());
  const auto g = torch::randn({4, 3});
  const auto out = dense(x);
  CHECK(close(out, torch::nn::functional::linear(x, dense->weight, dense->bias)));  // the forward is the layer's
  out.backward(g);
  CHECK(close(x.grad(), g.mm(dense->feedback_weight())));
  CHECK_FALSE(close(x.grad(), g.mm(dense->weight)));
  CHECK(close(dense->weight.grad(), g.t().mm(x.detach())));
  CHECK(close(dense->bias.grad(), g.sum(0)));
}

TEST_CASE("fa: a convolution sends the input gradient through its fixed random kernel, the weight's through x") {
  torch::manual_seed(2);
  for (bool bias : {false, true}) {
    Conv conv(torch::nn::Conv2dOptions(2, 3, 3).stride(2).padding(1).bias(bias));
    conv->use_feedback_alignment();
    auto x = torch::randn({2, 2, 7, 7}, torch::requires_grad());
    const auto out = conv(x);
    const auto g = torch::randn(out.sizes());
    out.backward(g);
    // References: plain convolutions with the random kernel (input gradient) and the weight.
    auto x1 = x.detach().clone().requires_grad_(true);
    torch::conv2d(x1, conv->feedback_weight(), {}, 2, 1).backward(g);
    CHECK(close(x.grad(), x1.grad()));
    auto w = conv->weight.detach().clone().requires_grad_(true);
    auto b = bias ? conv->bias.detach().clone().requires_grad_(true) : torch::Tensor();
    torch::conv2d(x.detach(), w, b, 2, 1).backward(g);
    CHECK(close(conv->weight.grad(), w.grad()));
    if (bias) CHECK(close(conv->bias.grad(), b.grad()));
  }
}

TEST_CASE("fa: the random weights are buffers drawn from the block's seed, and models it cannot run are refused") {
  const auto c = cnn_config("fa");
  const auto a = make_block(c, 1, {1, 28, 28}, 10), b = make_block(c, 1, {1, 28, 28}, 10);
  int64_t buffers = 0;
  for (const auto& item : a->named_buffers())
    if (item.key().find("feedback_alignment") != std::string::npos) {
      ++buffers;
      CHECK(torch::equal(item.value(), b->named_buffers()[item.key()]));
    }
  CHECK(buffers == c.model.convs_per_stage);  // one per convolution of the stage
  CHECK_NOTHROW(require_method(c, {1, 28, 28}, 10));
  auto transformer = parse_config("data: {dataset: reversal}\nmodel: {type: transformer, blocks: 2}\ntrain: {epochs: 1}\n",
                                  "t", {"train.method=fa"});
  CHECK_THROWS_WITH(require_method(transformer, {10}, 10), Contains("train.method fa") && Contains("model.type transformer"));
}

TEST_CASE("predsim: the similarity-matching loss is zero when the representation's similarities are the labels'") {
  const auto y = torch::tensor({0, 1, 0, 2}, torch::kInt64);
  const auto one_hot = torch::nn::functional::one_hot(y, 3).to(torch::kFloat32);
  CHECK(similarity_matching_loss(one_hot * 5.0, y, 3).item<double>() == Approx(0).margin(1e-10));
  const auto s = similarity_matrix(torch::randn({6, 2, 3, 3}));
  CHECK(s.sizes() == torch::IntArrayRef({6, 6}));
  CHECK(close(s, s.t()));
  CHECK(similarity_matching_loss(torch::randn({4, 8}), y, 3).item<double>() > 0.01);
}

TEST_CASE("greedy and predsim train the block and its readout but not the feedback network") {
  auto x = torch::randn({8, 4, 14, 14});
  auto y = torch::randint(0, 10, {8}, torch::kInt64);
  for (const std::string method : {"greedy", "predsim"}) {
    const auto c = cnn_config(method);
    BlockLearner learner(c, {make_block(c, 1, {1, 28, 28}, 10)}, 10);
    learner.start_epoch(0);
    auto& block = learner.blocks()[0];
    const auto feedback = block->named_parameters()["feedback.weight"].detach().clone();
    const auto readout = block->named_parameters()["readout.weight"].detach().clone();
    std::vector<BlockStats> stats(4);
    learner.train_step(x, y, stats);
    learner.flush_stats(stats);
    INFO(method);
    CHECK(torch::equal(feedback, block->named_parameters()["feedback.weight"]));
    CHECK_FALSE(torch::equal(readout, block->named_parameters()["readout.weight"]));
    CHECK(stats[1].pred > 0);
    CHECK((method == "predsim" ? stats[1].kl > 0 : stats[1].kl == 0));
    const double beta = c.train.sim_weight;
    CHECK(stats[1].loss == Approx(method == "predsim" ? (1 - beta) * stats[1].pred + beta * stats[1].kl : stats[1].pred));
  }
}

namespace {
// Checks that `ops` runs each of `micro` micro-batches forward once, then backward once, and
// returns the most micro-batches alive (forward done, backward not yet) at any point.
int64_t most_alive(const std::vector<BackpropOp>& ops, int64_t micro) {
  std::vector<int> state(size_t(micro), 0);  // 0 not started, 1 forward done, 2 backward done
  int64_t alive = 0, most = 0;
  for (const auto& op : ops) {
    REQUIRE(op.micro >= 0);
    REQUIRE(op.micro < micro);
    int& s = state[size_t(op.micro)];
    CHECK(s == (op.forward ? 0 : 1));
    s = op.forward ? 1 : 2;
    alive += op.forward ? 1 : -1;
    most = std::max(most, alive);
  }
  for (int s : state) CHECK(s == 2);
  return most;
}
}  // namespace

TEST_CASE("schedule orders: 1F1B keeps at most K - r micro-batches alive on rank r, GPipe all M") {
  const int K = 4;
  const int64_t M = 8;
  for (int r = 0; r < K; ++r) {
    INFO("rank " << r);
    const auto gpipe = gpipe_order(r, K, M), f1b1 = one_f_one_b_order(r, K, M);
    CHECK(most_alive(gpipe, M) == M);  // every forward before the first backward
    CHECK(gpipe[size_t(M)].forward == false);
    CHECK(most_alive(f1b1, M) == K - r);
    // After its warm-up of K - 1 - r forwards, rank r alternates one forward and one backward.
    for (int64_t i = 0; i < M - (K - 1 - r); ++i) {
      CHECK(f1b1[size_t(K - 1 - r + 2 * i)].forward);
      CHECK_FALSE(f1b1[size_t(K - 1 - r + 2 * i + 1)].forward);
    }
  }
  CHECK(most_alive(one_f_one_b_order(0, 4, 2), 2) == 2);  // fewer micro-batches than ranks
}

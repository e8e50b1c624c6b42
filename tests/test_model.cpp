#include <catch2/catch.hpp>

#include "bll/config.h"
#include "bll/error.h"
#include "bll/learner.h"
#include "bll/models/model.h"
#include "bll/models/twin.h"
#include "bll/placement.h"
#include "fixtures.h"

using namespace bll;
using Catch::Matchers::Contains;

namespace {
Config cnn_config(int64_t blocks, std::vector<int64_t> split = {}) {
  Config c = test::small_cnn_config();
  c.model.blocks = blocks;
  c.model.split = split;
  return c;
}
using Ranges = std::vector<std::pair<int64_t, int64_t>>;

// Builds every block of a 28x28 grey-image model and runs a batch through the chain: each block
// outputs its declared shape, and only the last is the output block.
void check_chain(const Config& c) {
  const Shape input{1, 28, 28};
  const auto shapes = block_boundary_shapes(c.model, input, 10);
  auto x = torch::randn({2, 1, 28, 28});
  for (int64_t k = 0; k < c.model.blocks; ++k) {
    auto b = make_block(c, k, input, 10);
    b->eval();
    x = b->forward(x);
    CHECK(Shape(x.sizes().begin() + 1, x.sizes().end()) == shapes[size_t(k) + 1]);
    CHECK(b->is_output() == (k == c.model.blocks - 1));
  }
}
}  // namespace

TEST_CASE("units split into blocks of equal layer shares, larger blocks first") {
  auto c = cnn_config(2);
  const auto plan = model_plan(c.model, {1, 28, 28}, 10);  // 3 stages (1 layer each) + head (2 layers)
  REQUIRE(plan.size() == 4);
  CHECK(split_units(plan, c.model) == Ranges{{0, 3}, {3, 4}});  // layers (3, 2): a tie goes to the earlier block
  c.model.blocks = 3;
  CHECK(split_units(plan, c.model) == Ranges{{0, 2}, {2, 3}, {3, 4}});
  c.model.blocks = 4;
  CHECK(split_units(plan, c.model) == Ranges{{0, 1}, {1, 2}, {2, 3}, {3, 4}});
  c.model.blocks = 1;
  CHECK(split_units(plan, c.model) == Ranges{{0, 4}});
}

TEST_CASE("an explicit split is honoured and checked") {
  auto c = cnn_config(2, {3, 1});
  const auto plan = model_plan(c.model, {1, 28, 28}, 10);
  CHECK(split_units(plan, c.model) == Ranges{{0, 3}, {3, 4}});
  c.model.split = {2, 1};
  CHECK_THROWS_WITH(split_units(plan, c.model), Contains("add up to 3") && Contains("4 units"));
  c.model.blocks = 5;
  c.model.split = {};
  CHECK_THROWS_WITH(split_units(plan, c.model),
                    Contains("5 blocks but cnn has only 4 units") && Contains("stage1, stage2, stage3, head"));
}

TEST_CASE("resnet18 and resnet50 split into 4 blocks of the paper's layer counts at residual units") {
  Config c = parse_config("data: {dataset: fashion-mnist, dir: d}\nmodel: {type: resnet18, width: 4, blocks: 4}\n"
                          "train: {epochs: 1}\n", "t", {});
  // 18 layers in 10 units (stem, 8 basic units, head); 50 layers in 18 units (16 bottlenecks).
  // The paper's (4,5,4,5) cannot fall on unit boundaries (blocks of units hold 2 layers each
  // plus the stem or head), so the nearest cut holds the same sizes: (5,4,4,5).
  CHECK(block_layer_counts(c.model, {1, 28, 28}, 10) == std::vector<int64_t>{5, 4, 4, 5});
  CHECK(model_plan(c.model, {1, 28, 28}, 10).size() == 10);
  c.model.type = "resnet50";
  CHECK(block_layer_counts(c.model, {3, 32, 32}, 10) == std::vector<int64_t>{13, 12, 12, 13});
  CHECK(model_plan(c.model, {3, 32, 32}, 10).size() == 18);
  c.model.type = "resnet18";
  const auto shapes = block_boundary_shapes(c.model, {3, 32, 32}, 10);
  CHECK(shapes[1] == Shape{4, 32, 32});
  CHECK(shapes[2] == Shape{8, 16, 16});
  CHECK(shapes[3] == Shape{16, 8, 8});
  CHECK(shapes[4] == Shape{10});
  c.model.blocks = 11;
  CHECK_THROWS_WITH(block_layer_counts(c.model, {1, 28, 28}, 10), Contains("resnet18 has only 10 units"));
}

TEST_CASE("resnet blocks compute the declared shapes") {
  for (const char* type : {"resnet18", "resnet50"}) {
    INFO(type);
    check_chain(parse_config(std::string("data: {dataset: fashion-mnist, dir: d}\nmodel: {type: ") + type +
                                 ", width: 4, blocks: 4}\ntrain: {epochs: 1}\n", "t", {}));
  }
}

TEST_CASE("resnet: the ImageNet stem quarters the image, and at 224 pixels both networks have torchvision's parameters") {
  Config c = parse_config("data: {dataset: folder, dir: d}\nmodel: {type: resnet18, width: 4, blocks: 4}\n"
                          "train: {epochs: 1}\n", "t", {});
  CHECK(block_boundary_shapes(c.model, {3, 64, 64}, 10)[1] == Shape{4, 64, 64});  // auto: small below 128
  c.model.stem = "imagenet";
  CHECK(block_boundary_shapes(c.model, {3, 64, 64}, 10)[1] == Shape{4, 16, 16});
  CHECK(block_boundary_shapes(c.model, {3, 65, 65}, 10)[1] == Shape{4, 17, 17});  // each halving rounds up
  check_chain(c);  // 28x28 -> 7x7 after the stem, the blocks as declared
  c.model.stem = "auto";
  CHECK(block_boundary_shapes(c.model, {3, 128, 128}, 10)[1] == Shape{4, 32, 32});
  // torchvision.models.resnet18() and resnet50(): 11,689,512 and 25,557,032 parameters.
  c.model.width = 64, c.model.blocks = 1;
  const auto count = [&](const char* type) {
    c.model.type = type;
    int64_t n = 0;
    for (const auto& p : make_block(c, 0, {3, 224, 224}, 1000)->parameters()) n += p.numel();
    return n;
  };
  CHECK(count("resnet18") == 11689512);
  CHECK(count("resnet50") == 25557032);
}

TEST_CASE("a model that cannot take the input says why") {
  Config c = parse_config("data: {dataset: fashion-mnist, dir: d}\nmodel: {type: cnn, widths: [4,4,4,4,4,4], blocks: 2}\n"
                          "train: {epochs: 1}\n", "t", {});
  CHECK_THROWS_WITH(block_boundary_shapes(c.model, {1, 28, 28}, 10), Contains("too small") && Contains("64x64"));
  c.model.widths = {};
  CHECK_THROWS_WITH(block_boundary_shapes(c.model, {1, 28, 28}, 10), Contains("model.widths"));
}

TEST_CASE("block boundary shapes follow the CNN stages") {
  const auto s = block_boundary_shapes(cnn_config(4).model, {1, 28, 28}, 10);
  REQUIRE(s.size() == 5);
  CHECK(s[1] == Shape{4, 14, 14});
  CHECK(s[2] == Shape{8, 7, 7});
  CHECK(s[3] == Shape{8, 3, 3});
  CHECK(s[4] == Shape{10});
}

TEST_CASE("built blocks produce the declared shapes and only the last is the output block") {
  check_chain(cnn_config(4));
}

TEST_CASE("a block's initial weights depend only on (seed, index)") {
  const auto c = cnn_config(4);
  auto first = make_block(c, 2, {1, 28, 28}, 10);
  make_block(c, 0, {1, 28, 28}, 10);  // building others in between changes nothing
  torch::randn({100});
  auto again = make_block(c, 2, {1, 28, 28}, 10);
  auto p = first->parameters(), q = again->parameters();
  REQUIRE(p.size() == q.size());
  for (size_t i = 0; i < p.size(); ++i) CHECK(torch::equal(p[i], q[i]));
  auto other = make_block(c, 1, {1, 28, 28}, 10);
  CHECK_FALSE(torch::equal(other->units()[0]->parameters()[0].flatten().narrow(0, 0, 4),
                           first->units()[0]->parameters()[0].flatten().narrow(0, 0, 4)));
}

TEST_CASE("mlp blocks flatten images and chain dense layers") {
  Config c = parse_config("data: {dataset: mnist, dir: d}\nmodel: {type: mlp, widths: [32, 16], blocks: 3}\ntrain: {epochs: 1}\n", "t", {});
  const auto shapes = block_boundary_shapes(c.model, {1, 28, 28}, 10);
  CHECK(shapes[1] == Shape{32});
  CHECK(shapes[3] == Shape{10});
  auto b = make_block(c, 0, {1, 28, 28}, 10);
  b->eval();
  CHECK(b->forward(torch::randn({3, 1, 28, 28})).sizes() == torch::IntArrayRef({3, 32}));
  CHECK(b->readout(torch::randn({3, 32})).sizes() == torch::IntArrayRef({3, 10}));
}

TEST_CASE("closed-form feedback is the per-class mean of the forward message") {
  const auto c = cnn_config(4);
  auto b = make_block(c, 0, {1, 28, 28}, 10);
  auto a = torch::randn({6, 4});
  auto y = torch::tensor({2, 5, 2, 2, 5, 9}, torch::kInt64);
  auto w_before = b->feedback_layer()->weight.detach().clone();
  const auto same = [](const torch::Tensor& t) { return t; };
  b->fit_feedback(a, y, 0.0, same);
  auto beta = b->feedback(torch::nn::functional::one_hot(y, 10).to(torch::kFloat32));
  CHECK(torch::allclose(beta[0], (a[0] + a[2] + a[3]) / 3, 1e-6, 1e-6));
  CHECK(torch::allclose(beta[1], (a[1] + a[4]) / 2, 1e-6, 1e-6));
  CHECK(torch::allclose(beta[5], a[5], 1e-6, 1e-6));
  // Absent classes keep their column.
  CHECK(torch::equal(b->feedback_layer()->weight.select(1, 0), w_before.select(1, 0)));
  // With momentum the old solution is blended in.
  b->fit_feedback(torch::zeros({6, 4}), y, 0.75, same);
  auto beta2 = b->feedback(torch::nn::functional::one_hot(y, 10).to(torch::kFloat32));
  CHECK(torch::allclose(beta2[5], a[5] * 0.75, 1e-6, 1e-6));
}

TEST_CASE("a train step stops the gradient at the block input and updates only the block") {
  const auto c = cnn_config(4);
  BlockLearner learner(c, {make_block(c, 1, {1, 28, 28}, 10)}, 10);
  learner.start_epoch(0);
  auto x = torch::randn({8, 4, 14, 14}).requires_grad_(true);
  auto y = torch::randint(0, 10, {8}, torch::kInt64);
  auto before = learner.blocks()[0]->units()[0]->parameters()[0].detach().clone();
  std::vector<BlockStats> stats(4);
  auto out = learner.train_step(x, y, stats);
  learner.flush_stats(stats);
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(out.requires_grad());
  CHECK_FALSE(torch::equal(before, learner.blocks()[0]->units()[0]->parameters()[0]));
  CHECK(stats[1].batches == 1);
  CHECK(stats[1].samples == 8);
  CHECK(stats[1].kl > 0);
  CHECK(stats[0].batches == 0);
}

TEST_CASE("a span of blocks trains as one: the second block's loss reaches the first block") {
  // BLL(2): block 0's update depends on block 1's loss as well; in plain BLL it does not.
  const auto c = cnn_config(4);
  auto x = torch::randn({8, 1, 28, 28});
  auto y = torch::randint(0, 10, {8}, torch::kInt64);
  auto first_block_after_one_step = [&](bool span) {
    std::vector<Block> blocks{make_block(c, 0, {1, 28, 28}, 10), make_block(c, 1, {1, 28, 28}, 10)};
    std::vector<BlockStats> stats(4);
    if (span) {
      BlockLearner l(c, blocks, 10);
      l.start_epoch(0);
      CHECK_FALSE(l.train_step(x, y, stats).requires_grad());
    } else {
      BlockLearner l0(c, {blocks[0]}, 10), l1(c, {blocks[1]}, 10);
      l0.start_epoch(0), l1.start_epoch(0);
      l1.train_step(l0.train_step(x, y, stats), y, stats);
    }
    CHECK(stats[0].batches == 1);
    CHECK(stats[1].batches == 1);
    return blocks[0]->units()[0]->parameters()[0].detach().clone();
  };
  CHECK_FALSE(torch::allclose(first_block_after_one_step(true), first_block_after_one_step(false)));
}

TEST_CASE("placement: contiguous ranges, earlier ranks take the extra blocks") {
  Placement p(7, 3);
  CHECK(p.first_block(0) == 0);
  CHECK(p.end_block(0) == 3);
  CHECK(p.first_block(1) == 3);
  CHECK(p.end_block(1) == 5);
  CHECK(p.end_block(2) == 7);
  CHECK(p.owner(4) == 1);
  CHECK(p.owner(6) == 2);
  CHECK(p.feeds_pipeline(0));
  CHECK(p.ends_pipeline(2));
  Placement one(4, 1);
  CHECK(one.end_block(0) == 4);
  CHECK_THROWS_WITH(Placement(2, 4), Contains("model.blocks is 2") && Contains("4 ranks"));
}

TEST_CASE("placement: explicit blocks per rank are honoured and checked") {
  Placement p(4, 2, {1, 3});
  CHECK(p.end_block(0) == 1);
  CHECK(p.first_block(1) == 1);
  CHECK(p.end_block(1) == 4);
  CHECK(p.owner(0) == 0);
  CHECK(p.owner(3) == 1);
  CHECK_THROWS_WITH(Placement(4, 2, {1, 2}), Contains("runtime.blocks_per_rank") && Contains("adding up to 3"));
  CHECK_THROWS_WITH(Placement(4, 2, {1, 1, 2}), Contains("3 entries") && Contains("2 ranks"));
}

TEST_CASE("placement: spans of loss.span blocks stay on one rank") {
  Placement p(8, 2, {}, 2);  // 4 spans over 2 ranks
  CHECK(p.end_block(0) == 4);
  Placement q(7, 3, {}, 2);  // spans [0,2) [2,4) [4,6) [6,7): 2 + 1 + 1 spans
  CHECK(q.end_block(0) == 4);
  CHECK(q.end_block(1) == 6);
  CHECK(q.end_block(2) == 7);
  CHECK_THROWS_WITH(Placement(4, 4, {}, 2), Contains("loss.span 2") && Contains("2 spans") && Contains("4 ranks"));
  CHECK_THROWS_WITH(Placement(4, 2, {1, 3}, 2), Contains("cuts a span"));
  Placement r(4, 2, {2, 2}, 2);
  CHECK(r.first_block(1) == 2);
}

TEST_CASE("the transformer has one unit per layer, split by layers, and maps tokens to per-token logits") {
  Config c = parse_config(
      "data: {dataset: reversal}\n"
      "model: {type: transformer, width: 8, layers: 20, blocks: 5}\n"
      "train: {epochs: 1, seed: 3}\n",
      "t", {});
  const auto plan = model_plan(c.model, {10}, 10);
  REQUIRE(plan.size() == 21);  // 20 layers + the head
  CHECK(block_layer_counts(c.model, {10}, 10) == std::vector<int64_t>{4, 4, 4, 4, 4});
  const auto shapes = block_boundary_shapes(c.model, {10}, 10);
  CHECK(shapes.front() == Shape{10});
  CHECK(shapes[1] == Shape{10, 8});
  CHECK(shapes.back() == Shape{10, 10});
  auto tokens = torch::randperm(10).to(torch::kFloat32).repeat({3, 1});  // [3, 10]
  auto first = make_block(c, 0, {10}, 10), last = make_block(c, 4, {10}, 10);
  const auto alpha = first->forward(tokens);
  CHECK(alpha.sizes() == torch::IntArrayRef({3, 10, 8}));
  CHECK(first->readout(alpha).sizes() == torch::IntArrayRef({3, 10, 10}));
  CHECK(first->feedback(torch::eye(10)).sizes() == torch::IntArrayRef({10, 8}));  // one message per token
  CHECK(last->forward(alpha).sizes() == torch::IntArrayRef({3, 10, 10}));
  c.model.layers = 0;  // one layer per block
  CHECK(model_plan(c.model, {10}, 10).size() == 6);
  CHECK_THROWS_WITH(model_plan(c.model, {1, 28, 28}, 10), Contains("needs token sequences"));
}

TEST_CASE("a sequence learner counts tokens and whole sequences") {
  Config c = parse_config(
      "data: {dataset: reversal}\n"
      "model: {type: transformer, width: 8, layers: 1, blocks: 1}\n"
      "train: {epochs: 1, seed: 3}\n",
      "t", {});
  std::vector<Block> blocks{make_block(c, 0, {10}, 10)};
  BlockLearner learner(c, blocks, 10);
  learner.start_epoch(0);
  auto x = torch::randperm(10).to(torch::kFloat32).repeat({4, 1});
  std::vector<BlockStats> stats(1);
  const auto logits = learner.eval_step(x, torch::zeros({4, 10}, torch::kInt64), stats);
  learner.flush_stats(stats);
  const auto pred = logits.argmax(-1);  // [4, 10]
  CHECK(stats[0].samples == 40);
  CHECK(stats[0].sequences == 4);
  CHECK(stats[0].correct1 == double(pred.eq(0).sum().item<int64_t>()));
  CHECK(stats[0].seq_correct == double(pred.eq(0).all(1).sum().item<int64_t>()));
  std::vector<BlockStats> again(1);
  learner.eval_step(x, pred, again);  // the model's own predictions are every token right
  learner.flush_stats(again);
  CHECK(again[0].correct1 == 40);
  CHECK(again[0].seq_correct == 4);
  const auto before = blocks[0]->parameters()[0].clone();
  learner.train_step(x, pred, again);
  CHECK_FALSE(torch::equal(before, blocks[0]->parameters()[0]));
}

TEST_CASE("the backward twin mirrors the forward blocks in reverse, up-sampling back to each block's shape") {
  Config c = parse_config(
      "data: {dataset: fashion-mnist, dir: d}\n"
      "model: {type: resnet18, width: 4, blocks: 4}\n"
      "loss: {feedback: twin}\n"
      "train: {epochs: 1, seed: 3}\n",
      "t", {});
  const Shape input{1, 28, 28};
  CHECK(twin_layer_counts(c.model, input, 10) == std::vector<int64_t>{5, 4, 4});
  const auto shapes = block_boundary_shapes(c.model, input, 10);
  TwinCodes codes(c, input, 10);
  auto y = torch::tensor({3, 0, 9}, torch::kInt64);
  for (int64_t k = 0; k < 3; ++k) {
    auto block = make_block(c, k, input, 10);
    REQUIRE(block->has_twin());
    block->eval();
    const auto beta = block->twin(codes.input(k, y));
    INFO("block " << k);
    CHECK(Shape(beta.sizes().begin() + 1, beta.sizes().end()) == shapes[size_t(k) + 1]);  // shaped like alpha_k
  }
  CHECK(torch::equal(codes.input(2, y), torch::eye(10).index_select(0, y)));  // the last twin reads the labels
  CHECK_FALSE(make_block(c, 3, input, 10)->has_twin());
}

TEST_CASE("twin codes follow the hosted twins' state after an exchange") {
  Config c = cnn_config(4);
  c.loss.feedback = "twin";
  const Shape input{1, 28, 28};
  TwinCodes codes(c, input, 10);
  std::vector<Block> blocks;
  for (int64_t k = 0; k < 4; ++k) blocks.push_back(make_block(c, k, input, 10));
  auto y = torch::arange(10);
  // At the start the snapshot equals the blocks' own twins: block 1's code is twin 2 of the labels.
  blocks[2]->eval();
  CHECK(torch::allclose(codes.input(1, y), blocks[2]->twin(torch::eye(10))));
  {  // a training step changes twin 2; the exchanged state carries the change into block 1's code
    torch::NoGradGuard no_grad;
    for (auto& p : blocks[2]->twin_module()->parameters()) p.add_(0.1);
  }
  const auto before = codes.input(1, y).clone();
  // Two "ranks": one hosts blocks 0-1, the other 2-3; their states add up.
  auto state = codes.hosted_state({blocks[0], blocks[1]}) + codes.hosted_state({blocks[2], blocks[3]});
  codes.load(state);
  CHECK_FALSE(torch::allclose(codes.input(1, y), before));
  CHECK(torch::allclose(codes.input(1, y), blocks[2]->twin(torch::eye(10))));
  const auto fours = torch::full({2}, 4, torch::kInt64);  // a code per label, looked up
  CHECK(torch::equal(codes.input(1, fours), codes.input(1, y).index_select(0, fours)));
}

TEST_CASE("the autoencoder maps 56x28 to 56x28 through a bottleneck in four units") {
  Config c = parse_config(
      "data: {dataset: fashion-mnist, dir: d, task: autoencode}\n"
      "model: {type: autoencoder, widths: [4, 8], blocks: 4}\n"
      "loss: {feedback: gradient}\n"
      "train: {epochs: 1}\n",
      "t", {});
  const Shape input{1, 56, 28};
  const auto shapes = block_boundary_shapes(c.model, input, 56 * 28);
  CHECK(shapes == std::vector<Shape>{{1, 56, 28}, {4, 28, 14}, {8, 14, 7}, {4, 28, 14}, {1, 56, 28}});
  auto x = torch::rand({2, 1, 56, 28});
  for (int64_t k = 0; k < 4; ++k) x = make_block(c, k, input, 56 * 28)->forward(x);
  CHECK(x.sizes() == torch::IntArrayRef({2, 1, 56, 28}));
  c.model.widths = {4};
  CHECK_THROWS_WITH(model_plan(c.model, input, 56 * 28), Contains("two entries"));
}

TEST_CASE("placement: balancing by cost makes the slowest rank as fast as it can be") {
  // One expensive block at the end: three cheap ones share a rank.
  auto b = balance({1, 1, 1, 5}, {1, 1, 1, 1}, 2);
  CHECK(b.blocks_per_rank == std::vector<int64_t>{3, 1});
  CHECK(b.load == std::vector<double>{3, 5});
  // An expensive first block: it gets a rank of its own.
  b = balance({4, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, 2);
  CHECK(b.blocks_per_rank == std::vector<int64_t>{1, 4});
  // Spans of 2 blocks (the last span shorter) stay whole; 3 ranks.
  b = balance({2, 2, 3, 1}, {2, 2, 2, 1}, 3);
  CHECK(b.blocks_per_rank == std::vector<int64_t>{4, 2, 1});
  CHECK(*std::max_element(b.load.begin(), b.load.end()) == 4);
  CHECK_THROWS(balance({1, 1}, {1, 1}, 3));
}

TEST_CASE("placement: the plans predicted near the best, best first, for trials") {
  // Costs 43, 45, 35, 12 (the main CNN's blocks): [2,2] predicts 88, [1,3] 92, [3,1] 123.
  auto near = near_balanced({43, 45, 35, 12}, {1, 1, 1, 1}, 2, 0.15, 4);
  REQUIRE(near.size() == 2);
  CHECK(near[0].blocks_per_rank == std::vector<int64_t>{2, 2});
  CHECK(near[1].blocks_per_rank == std::vector<int64_t>{1, 3});
  CHECK(near[1].load == std::vector<double>{43, 92});
  CHECK(near_balanced({43, 45, 35, 12}, {1, 1, 1, 1}, 2, 0.15, 1).size() == 1);
  CHECK(near_balanced({1, 1, 1, 1}, {1, 1, 1, 1}, 4, 0.15, 4).size() == 1);  // one way to cut 4 spans for 4 ranks
  // Too many plans to score: the one balance() gives.
  const std::vector<double> many(30, 1.0);
  const auto big = near_balanced(many, std::vector<int64_t>(30, 1), 8, 0.5, 4, /*enumerate_limit=*/10);
  REQUIRE(big.size() == 1);
  CHECK(big[0].blocks_per_rank == balance(many, std::vector<int64_t>(30, 1), 8).blocks_per_rank);
}

#include "bll/learner.h"

#include <chrono>
#include <cmath>

#include "bll/error.h"
#include "bll/losses/local_loss.h"
#include "bll/optim.h"

namespace bll {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

void BlockStats::to(double* out) const {
  const double v[kFields] = {loss, kl, pred, batches, correct1, correct3, samples, seconds, seq_correct, sequences};
  std::copy(v, v + kFields, out);
}

BlockStats BlockStats::from(const double* in) {
  BlockStats s;
  s.loss = in[0], s.kl = in[1], s.pred = in[2], s.batches = in[3], s.correct1 = in[4], s.correct3 = in[5],
  s.samples = in[6], s.seconds = in[7], s.seq_correct = in[8], s.sequences = in[9];
  return s;
}

BlockLearner::BlockLearner(const Config& config, std::vector<Block> blocks, int64_t num_classes, const TwinCodes* twin)
    : config_(config), blocks_(std::move(blocks)), num_classes_(num_classes), family_(make_family(config.loss)),
      twin_(twin) {
  for (auto& block : blocks_)
    if (block->has_twin() && !twin_)
      throw RuntimeError("block " + std::to_string(block->index()) + " has a twin feedback but no twin codes");
  std::vector<torch::Tensor> trained;
  for (auto& block : blocks_)
    for (const auto& p : block->named_parameters()) {
      const bool solved = closed_form_feedback(block) && p.key().rfind("feedback.", 0) == 0;
      p.value().set_requires_grad(!solved);
      if (!solved) trained.push_back(p.value());
    }
  optimizer_ = make_optimizer(trained, config.optim);
}

bool BlockLearner::closed_form_feedback(const Block& block) const {
  return !block->is_output() && config_.loss.feedback == "closed_form";
}

void BlockLearner::start_epoch(int64_t epoch) {
  lr_ = learning_rate(config_.optim, epoch, config_.train.epochs);
  set_learning_rate(*optimizer_, lr_);
  m_ = mixing_m(config_.loss, epoch);
}

namespace {
// A sequence task's tensors with the tokens as the batch: [B, T, F] -> [B*T, F], [B, T] -> [B*T].
torch::Tensor per_token(const torch::Tensor& t, bool tokens) {
  return tokens ? t.reshape({-1, t.size(-1)}) : t;
}
}  // namespace

void BlockLearner::count(const torch::Tensor& logits, const torch::Tensor& y, BlockStats& stats) const {
  const bool tokens = y.dim() == 2;
  const auto flat_y = y.reshape(-1);
  const auto flat = per_token(logits, tokens);
  const int64_t k = std::min<int64_t>(3, flat.size(1));
  const auto hit = std::get<1>(flat.topk(k, 1)).eq(flat_y.unsqueeze(1));
  const auto top1 = hit.select(1, 0);
  stats.correct1 += double(top1.sum().item<int64_t>());
  stats.correct3 += double(hit.any(1).sum().item<int64_t>());
  stats.samples += double(flat_y.size(0));
  if (tokens) {
    stats.seq_correct += double(top1.view({y.size(0), y.size(1)}).all(1).sum().item<int64_t>());
    stats.sequences += double(y.size(0));
  }
}

torch::Tensor BlockLearner::train_step(const torch::Tensor& alpha_in, const torch::Tensor& y,
                                       std::vector<BlockStats>& stats) {
  const auto start = Clock::now();
  optimizer_->zero_grad();
  const auto& c = config_.loss;
  const bool tokens = y.dim() == 2;  // a class per token: every token is a sample of the loss
  const auto yt = y.reshape(-1);
  // Gradient stop: this span's graph starts at its input.
  torch::Tensor x = alpha_in.detach(), total;
  for (auto& block : blocks_) {
    block->train();
    BlockStats& s = stats[size_t(block->index())];
    const auto alpha = block->forward(x);
    torch::Tensor logits;
    LocalLoss loss;
    if (block->is_output()) {
      logits = per_token(alpha, tokens);
      loss.total = loss.pred = torch::nn::functional::cross_entropy(logits, yt);
      loss.kl = torch::zeros({});
      x = alpha;
    } else {
      const auto message = per_token(alpha, tokens);
      const auto a = channel_means(message);
      if (closed_form_feedback(block))
        block->fit_feedback(family_->expectation(a.detach()), yt, c.feedback_momentum,
                            [&](const torch::Tensor& e) { return family_->from_expectation(e); });
      const auto beta = block->has_twin()
                            ? channel_means(per_token(block->twin(twin_->input(block->index(), y)), tokens))
                            : block->feedback(torch::nn::functional::one_hot(yt, num_classes_).to(alpha.dtype()));
      logits = per_token(block->readout(alpha), tokens);
      loss = block_local_loss(*family_, message, beta, logits, yt, m_, c);
      x = c.forward_posterior ? posterior_message(message, a, loss.posterior).view_as(alpha) : alpha;
    }
    const double value = loss.total.item<double>();
    if (!std::isfinite(value))
      throw RuntimeError("block " + std::to_string(block->index()) + ": local loss is " + std::to_string(value) +
                         " after " + std::to_string(int64_t(s.batches)) +
                         " batches of this epoch (training diverged; lower optim.lr)");
    total = total.defined() ? total + loss.total : loss.total;
    s.loss += value;
    s.kl += loss.kl.item<double>();
    s.pred += loss.pred.item<double>();
    s.batches += 1;
    count(logits.detach(), y, s);
  }
  total.backward();
  optimizer_->step();
  // A span's forward and backward run as one piece: its time is shared evenly by its blocks.
  const double share = since(start) / double(blocks_.size());
  for (auto& block : blocks_) stats[size_t(block->index())].seconds += share;
  return x.detach();
}

torch::Tensor BlockLearner::eval_step(const torch::Tensor& alpha_in, const torch::Tensor& y,
                                      std::vector<BlockStats>& stats) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = alpha_in;
  for (auto& block : blocks_) {
    block->eval();
    x = block->forward(x);
    count(block->is_output() ? x : block->readout(x), y, stats[size_t(block->index())]);
  }
  return x;
}

}  // namespace bll

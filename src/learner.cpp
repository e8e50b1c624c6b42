#include "bll/learner.h"

#include <cmath>

#include "bll/error.h"
#include "bll/loss.h"
#include "bll/optim.h"

namespace bll {

void BlockStats::to(double* out) const {
  const double v[kFields] = {loss, kl, pred, batches, correct1, correct3, samples, seconds};
  std::copy(v, v + kFields, out);
}

BlockStats BlockStats::from(const double* in) {
  BlockStats s;
  s.loss = in[0], s.kl = in[1], s.pred = in[2], s.batches = in[3], s.correct1 = in[4], s.correct3 = in[5],
  s.samples = in[6], s.seconds = in[7];
  return s;
}

BlockLearner::BlockLearner(const Config& config, Block block, int64_t num_classes)
    : config_(config), block_(std::move(block)), num_classes_(num_classes) {
  std::vector<torch::Tensor> trained;
  for (const auto& p : block_->named_parameters()) {
    const bool solved = closed_form_feedback() && p.key().rfind("feedback.", 0) == 0;
    p.value().set_requires_grad(!solved);
    if (!solved) trained.push_back(p.value());
  }
  optimizer_ = make_optimizer(trained, config.optim);
}

bool BlockLearner::closed_form_feedback() const {
  return !block_->is_output() && config_.loss.feedback == "closed_form";
}

void BlockLearner::start_epoch(int64_t epoch) {
  lr_ = learning_rate(config_.optim, epoch, config_.train.epochs);
  set_learning_rate(*optimizer_, lr_);
  m_ = mixing_m(config_.loss, epoch);
}

void BlockLearner::count(const torch::Tensor& logits, const torch::Tensor& y, BlockStats& stats) const {
  const int64_t k = std::min<int64_t>(3, logits.size(1));
  const auto topk = std::get<1>(logits.topk(k, 1));
  const auto hit = topk.eq(y.unsqueeze(1));
  stats.correct1 += double(hit.select(1, 0).sum().item<int64_t>());
  stats.correct3 += double(hit.any(1).sum().item<int64_t>());
  stats.samples += double(y.size(0));
}

torch::Tensor BlockLearner::train_step(const torch::Tensor& alpha_in, const torch::Tensor& y, BlockStats& stats) {
  block_->train();
  optimizer_->zero_grad();
  // Gradient stop: this block's graph starts at its input.
  const auto alpha = block_->forward(alpha_in.detach());
  torch::Tensor logits;
  LocalLoss loss;
  if (block_->is_output()) {
    logits = alpha;
    loss.total = torch::nn::functional::cross_entropy(logits, y);
    loss.pred = loss.total;
    loss.kl = torch::zeros({});
  } else {
    if (closed_form_feedback()) block_->fit_feedback(channel_means(alpha).detach(), y, config_.loss.feedback_momentum);
    const auto beta = block_->feedback(torch::nn::functional::one_hot(y, num_classes_).to(alpha.dtype()));
    logits = block_->readout(alpha);
    loss = block_local_loss(alpha, beta, logits, y, m_, config_.loss);
  }
  const double total = loss.total.item<double>();
  if (!std::isfinite(total))
    throw RuntimeError("block " + std::to_string(block_->index()) + ": local loss is " + std::to_string(total) +
                       " after " + std::to_string(int64_t(stats.batches)) +
                       " batches of this epoch (training diverged; lower optim.lr)");
  loss.total.backward();
  optimizer_->step();

  stats.loss += total;
  stats.kl += loss.kl.item<double>();
  stats.pred += loss.pred.item<double>();
  stats.batches += 1;
  count(logits.detach(), y, stats);
  return alpha.detach();
}

torch::Tensor BlockLearner::eval_step(const torch::Tensor& alpha_in, const torch::Tensor& y, BlockStats& stats) {
  torch::NoGradGuard no_grad;
  block_->eval();
  const auto alpha = block_->forward(alpha_in);
  count(block_->is_output() ? alpha : block_->readout(alpha), y, stats);
  return alpha;
}

}  // namespace bll

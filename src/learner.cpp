#include "bll/learner.h"

#include <cmath>

#include "bll/device.h"
#include "bll/error.h"
#include "bll/losses/local_loss.h"
#include "bll/losses/reconstruction.h"
#include "bll/losses/similarity.h"
#include "bll/optim.h"

namespace bll {

void BlockStats::to(double* out) const {
  const double v[kFields] = {loss, kl, pred, batches, correct1, correct3, samples, seconds, seq_correct, sequences,
                             s15, s16, s17, params};
  std::copy(v, v + kFields, out);
}

BlockStats BlockStats::from(const double* in) {
  BlockStats s;
  s.loss = in[0], s.kl = in[1], s.pred = in[2], s.batches = in[3], s.correct1 = in[4], s.correct3 = in[5],
  s.samples = in[6], s.seconds = in[7], s.seq_correct = in[8], s.sequences = in[9];
  s.s15 = in[10], s.s16 = in[11], s.s17 = in[12], s.params = in[13];
  return s;
}

BlockLearner::BlockLearner(const Config& config, std::vector<Block> blocks, int64_t num_classes, const TwinCodes* twin)
    : config_(config), blocks_(std::move(blocks)), num_classes_(num_classes), family_(make_family(config.loss)),
      twin_(twin), reconstruct_(config.data.task == "autoencode"), bf16_(config.runtime.precision == "bf16"),
      format_(at::MemoryFormat::Contiguous) {
  if (!blocks_.empty())
    if (const auto params = blocks_.front()->parameters(); !params.empty())
      format_ = memory_format(config.runtime, params.front().device());
  for (auto& block : blocks_) use_memory_format(*block, format_);
  for (auto& block : blocks_)
    if (block->has_twin() && !twin_)
      throw RuntimeError("block " + std::to_string(block->index()) + " has a twin feedback but no twin codes");
  // Parameters the method does not train: a feedback network solved in closed form; feedback
  // and twin networks outside bll; readouts under the end-to-end methods.
  const std::string& method = config.train.method;
  auto untrained = [&](const Block& block, const std::string& key) {
    const bool feedback = key.rfind("feedback.", 0) == 0 || key.rfind("twin.", 0) == 0;
    return (feedback && (method != "bll" || closed_form_feedback(block))) ||
           (key.rfind("readout.", 0) == 0 && config.train.end_to_end());
  };
  for (auto& block : blocks_)
    for (const auto& p : block->named_parameters()) {
      const bool skip = untrained(block, p.key());
      p.value().set_requires_grad(!skip);
      if (!skip) trained_.push_back(p.value());
    }
  optimizer_ = make_optimizer(trained_, config.optim);
}

void BlockLearner::step() {
  if (sync_) {
    Tracer::Span span(tracer_, "replica sync", "comm");
    sync_->before_step(trained_);
  }
  optimizer_->step();
  ++steps_;
  if (sync_) sync_->after_step(trained_, steps_);
}

void BlockLearner::save(torch::serialize::OutputArchive& archive) const {
  for (const auto& block : blocks_) {
    torch::serialize::OutputArchive sub;
    block->save(sub);
    archive.write("block_" + std::to_string(block->index()), sub);
  }
  torch::serialize::OutputArchive opt;
  optimizer_->save(opt);
  archive.write("optimizer", opt);
  archive.write("steps", torch::tensor({steps_}, torch::kInt64));
}

void BlockLearner::load(torch::serialize::InputArchive& archive) {
  for (auto& block : blocks_) {
    torch::serialize::InputArchive sub;
    archive.read("block_" + std::to_string(block->index()), sub);
    block->load(sub);
    use_memory_format(*block, format_);  // the file keeps the layout it was saved in
  }
  torch::serialize::InputArchive opt;
  archive.read("optimizer", opt);
  optimizer_->load(opt);
  torch::Tensor steps;
  archive.read("steps", steps);
  steps_ = steps.item<int64_t>();
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

torch::Tensor BlockLearner::prediction(Block& block, const torch::Tensor& alpha, const torch::Tensor& y) const {
  const auto p = (block->is_output() ? alpha : block->readout(alpha)).to(torch::kFloat32);
  return reconstruct_ ? p.view(y.sizes()) : p;
}

torch::Tensor BlockLearner::predictive_loss(const torch::Tensor& prediction, const torch::Tensor& y) const {
  if (reconstruct_) return uncertainty_terms(prediction, y).s15.mean();
  return torch::nn::functional::cross_entropy(per_token(prediction, y.dim() == 2), y.reshape(-1));
}

torch::Tensor BlockLearner::feedback_message(Block& block, const torch::Tensor& y) const {
  if (block->has_twin()) return channel_means(per_token(block->twin(twin_->input(block->index(), y)), y.dim() == 2));
  if (reconstruct_) return block->feedback(y.flatten(1));
  return block->feedback(torch::nn::functional::one_hot(y.reshape(-1), num_classes_).to(torch::kFloat32));
}

void BlockLearner::score(const torch::Tensor& prediction, const torch::Tensor& y, BlockStats& stats) const {
  if (reconstruct_) {
    const auto t = uncertainty_terms(prediction, y);
    stats.s15 += t.s15.sum().item<double>();
    stats.s16 += t.s16.sum().item<double>();
    stats.s17 += t.s17.sum().item<double>();
    stats.samples += double(y.size(0));
    return;
  }
  const bool tokens = y.dim() == 2;
  const auto flat_y = y.reshape(-1);
  const auto flat = per_token(prediction, tokens);
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
  optimizer_->zero_grad();
  // Gradient stop: this span's graph starts at its input.
  torch::Tensor x = in_memory_format(alpha_in.detach(), format_), total;
  {
    Tracer::Span span(tracer_, "forward + local loss", "compute");
    total = local_losses(x, y, stats);
  }
  {
    Tracer::Span span(tracer_, "backward", "compute");
    total.backward();
  }
  Tracer::Span span(tracer_, "optimizer step", "compute");
  step();
  return x.detach();
}

torch::Tensor BlockLearner::local_losses(torch::Tensor& x, const torch::Tensor& y, std::vector<BlockStats>& stats) {
  const auto& c = config_.loss;
  const bool tokens = y.dim() == 2;  // a class per token: every token is a sample of the loss
  Autocast autocast(x.device(), bf16_);  // the forward and the local losses; the backward runs outside
  torch::Tensor total;
  for (auto& block : blocks_) {
    block->train();
    BlockStats& s = stats[size_t(block->index())];
    const auto alpha = block->forward(x).to(torch::kFloat32);
    const auto pred = prediction(block, alpha, y);
    LocalLoss loss;
    if (block->is_output()) {
      loss.total = loss.pred = predictive_loss(pred, y);
      loss.kl = torch::zeros({});
      x = alpha;
    } else if (config_.train.method != "bll") {  // greedy or predsim: no feedback, no KL
      loss = readout_loss(alpha, pred, y);
      x = alpha;
    } else {
      const auto message = per_token(alpha, tokens);
      const auto a = channel_means(message);
      if (closed_form_feedback(block))
        block->fit_feedback(
            family_->expectation(a.detach()), y.reshape(-1), c.feedback_momentum,
            [&](const torch::Tensor& e) { return family_->from_expectation(e); },
            sync_ ? [&](const torch::Tensor& t) { sync_->sum(t); } : std::function<void(const torch::Tensor&)>());
      loss = block_local_loss(*family_, message, feedback_message(block, y), predictive_loss(pred, y), m_, c);
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
    score(pred.detach(), y, s);
  }
  return total;
}

LocalLoss BlockLearner::readout_loss(const torch::Tensor& alpha, const torch::Tensor& pred, const torch::Tensor& y) const {
  LocalLoss loss;
  loss.pred = predictive_loss(pred, y);
  if (config_.train.method == "predsim") {
    const bool tokens = y.dim() == 2;
    loss.kl = similarity_matching_loss(per_token(alpha, tokens), y.reshape(-1), num_classes_);
    const double beta = config_.train.sim_weight;
    loss.total = (1.0 - beta) * loss.pred + beta * loss.kl;
  } else {
    loss.kl = torch::zeros({}, pred.options());
    loss.total = loss.pred;
  }
  return loss;
}

torch::Tensor BlockLearner::forward_graph(const torch::Tensor& x) {
  Tracer::Span span(tracer_, "forward", "compute");
  Autocast autocast(x.device(), bf16_);
  torch::Tensor out = in_memory_format(x, format_);
  for (auto& block : blocks_) {
    block->train();
    out = block->forward(out).to(torch::kFloat32);
  }
  return out;
}

torch::Tensor BlockLearner::output_loss(const torch::Tensor& out, const torch::Tensor& y, double scale,
                                        std::vector<BlockStats>& stats) {
  Block& last = blocks_.back();
  if (!last->is_output()) throw RuntimeError("output_loss: block " + std::to_string(last->index()) + " is not the output block");
  Autocast autocast(out.device(), bf16_);
  const auto pred = prediction(last, out, y);
  const auto loss = predictive_loss(pred, y);
  BlockStats& s = stats[size_t(last->index())];
  const double value = loss.item<double>();
  if (!std::isfinite(value))
    throw RuntimeError("block " + std::to_string(last->index()) + ": loss is " + std::to_string(value) +
                       " (training diverged; lower optim.lr)");
  s.loss += value, s.pred += value, s.batches += 1;
  score(pred.detach(), y, s);
  return loss * scale;
}

torch::Tensor BlockLearner::eval_step(const torch::Tensor& alpha_in, const torch::Tensor& y,
                                      std::vector<BlockStats>& stats) {
  torch::NoGradGuard no_grad;
  Tracer::Span span(tracer_, "evaluation", "compute");
  torch::Tensor x = in_memory_format(alpha_in, format_);
  Autocast autocast(alpha_in.device(), bf16_);
  for (auto& block : blocks_) {
    block->eval();
    x = block->forward(x).to(torch::kFloat32);
    score(prediction(block, x, y), y, stats[size_t(block->index())]);
  }
  return x;
}

std::vector<BlockLearner> make_learners(const Config& config, const Placement& placement, int rank,
                                        const Shape& sample_shape, int64_t num_classes, const TwinCodes* twin,
                                        torch::Device device) {
  std::vector<BlockLearner> learners;
  for (int64_t k = placement.first_block(rank); k < placement.end_block(rank);) {
    std::vector<Block> span;
    do {
      span.push_back(make_block(config, k, sample_shape, num_classes));
      span.back()->to(device);  // before the optimizer sees its parameters
    } while (++k < placement.end_block(rank) && k % config.loss.span != 0);
    learners.emplace_back(config, std::move(span), num_classes, twin);
  }
  return learners;
}

}  // namespace bll

#include "bll/learner.h"

#include "bll/device.h"
#include "bll/error.h"
#include "bll/host_reads.h"
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

BlockLearner::BlockLearner(const Config& config, std::vector<Block> blocks, int64_t num_classes, const TwinCodes* twin,
                           std::shared_ptr<StepStats> step_stats)
    : config_(config), blocks_(std::move(blocks)), num_classes_(num_classes), family_(make_family(config.loss)),
      step_stats_(std::move(step_stats)), twin_(twin), reconstruct_(config.data.task == "autoencode"),
      bf16_(config.runtime.precision == "bf16"),
      format_(at::MemoryFormat::Contiguous) {
  if (!blocks_.empty())
    if (const auto params = blocks_.front()->parameters(); !params.empty()) {
      format_ = memory_format(config.runtime, params.front().device());
      zero_ = torch::zeros({}, params.front().options().requires_grad(false));
      if (!step_stats_) step_stats_ = std::make_shared<StepStats>(config.model.blocks, params.front().device());
    }
  if (!step_stats_) throw RuntimeError("a learner needs blocks with parameters");
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
  steps_ = int64_t(read_scalar(steps));
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
  return block->feedback_of_labels(y.reshape(-1));
}

void BlockLearner::record(const Block& block, const torch::Tensor& prediction, const torch::Tensor& y,
                          BlockStats& stats, std::vector<torch::Tensor> values) const {
  // One device addition per block and step: the losses (zeros in evaluation), then the scores.
  if (values.empty()) values = {zero_, zero_, zero_};
  if (reconstruct_) {
    const auto t = uncertainty_terms(prediction, y);
    values.insert(values.end(), {zero_, zero_, zero_, t.s15.sum(), t.s16.sum(), t.s17.sum()});
    step_stats_->add(block->index(), StepStats::kLoss, values);
    stats.samples += double(y.size(0));
    return;
  }
  const bool tokens = y.dim() == 2;
  const auto flat_y = y.reshape(-1);
  const auto flat = per_token(prediction, tokens);
  torch::Tensor top1;
  if (block->is_output()) {  // top-3 too: the network's own output
    const auto hit = std::get<1>(flat.topk(std::min<int64_t>(3, flat.size(1)), 1)).eq(flat_y.unsqueeze(1));
    top1 = hit.select(1, 0);
    values.insert(values.end(), {top1.sum(torch::kFloat), hit.any(1).sum(torch::kFloat)});
  } else {  // a readout: its top-1 is all that is reported
    top1 = flat.argmax(1).eq(flat_y);
    values.insert(values.end(), {top1.sum(torch::kFloat), zero_});
  }
  if (tokens) {
    values.push_back(top1.view({y.size(0), y.size(1)}).all(1).sum(torch::kFloat));
    stats.sequences += double(y.size(0));
  }
  step_stats_->add(block->index(), StepStats::kLoss, values);
  stats.samples += double(flat_y.size(0));
}

void BlockLearner::zero_grad() {
  // Undefined, not zero-filled: the backward then writes each gradient instead of adding it to
  // zeros, which saves a fill and a read of every gradient per step (as PyTorch's set_to_none).
  for (auto& p : trained_) p.mutable_grad().reset();
}

torch::Tensor BlockLearner::train_step(const torch::Tensor& alpha_in, const torch::Tensor& y,
                                       std::vector<BlockStats>& stats) {
  zero_grad();
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
    // BLL's channel means come before the readout. Autograd runs the later-made readout first, so
    // the gradient of the block's output starts in the readout's layout (channels-last on the CPU)
    // and the mean's NCHW gradient is added to it, not the other way round: otherwise the
    // max-pool before them copies the sum back to channels-last (half the pool's backward time).
    const bool bll = !block->is_output() && config_.train.method == "bll";
    const auto message = bll ? per_token(alpha, tokens) : torch::Tensor();
    const auto a = bll ? channel_means(message) : torch::Tensor();
    const auto pred = prediction(block, alpha, y);
    LocalLoss loss;
    if (block->is_output()) {
      loss.total = loss.pred = predictive_loss(pred, y);
      loss.kl = zero_;
      x = alpha;
    } else if (config_.train.method != "bll") {  // greedy or predsim: no feedback, no KL
      loss = readout_loss(alpha, pred, y);
      x = alpha;
    } else {
      if (closed_form_feedback(block))
        block->fit_feedback(
            family_->expectation(a.detach()), y.reshape(-1), c.feedback_momentum,
            [&](const torch::Tensor& e) { return family_->from_expectation(e); },
            sync_ ? [&](const torch::Tensor& t) { sync_->sum(t); } : std::function<void(const torch::Tensor&)>());
      loss = local_loss_of_means(*family_, a, feedback_message(block, y), predictive_loss(pred, y), m_, c);
      x = c.forward_posterior ? posterior_message(message, a, loss.posterior).view_as(alpha) : alpha;
    }
    total = total.defined() ? total + loss.total : loss.total;
    // Summed where they are computed; the divergence check runs where they are read (step_stats.h).
    s.batches += 1;
    record(block, pred.detach(), y, s, {loss.total.detach(), loss.kl.detach(), loss.pred.detach()});
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
    loss.kl = zero_;
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
  const auto value = loss.detach();
  s.batches += 1;
  record(last, pred.detach(), y, s, {value, zero_, value});
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
    record(block, prediction(block, x, y), y, stats[size_t(block->index())]);
  }
  return x;
}

std::vector<BlockLearner> make_learners(const Config& config, const Placement& placement, int rank,
                                        const Shape& sample_shape, int64_t num_classes, const TwinCodes* twin,
                                        torch::Device device) {
  std::vector<BlockLearner> learners;
  auto step_stats = std::make_shared<StepStats>(config.model.blocks, device);  // one for the rank: one read
  for (int64_t k = placement.first_block(rank); k < placement.end_block(rank);) {
    std::vector<Block> span;
    do {
      span.push_back(make_block(config, k, sample_shape, num_classes));
      span.back()->to(device);  // before the optimizer sees its parameters
    } while (++k < placement.end_block(rank) && k % config.loss.span != 0);
    learners.emplace_back(config, std::move(span), num_classes, twin, step_stats);
  }
  return learners;
}

}  // namespace bll

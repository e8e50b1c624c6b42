#include "bll/step_stats.h"

#include <cmath>

#include "bll/error.h"
#include "bll/host_reads.h"
#include "bll/learner.h"

namespace bll {

StepStats::StepStats(int64_t blocks, torch::Device device)
    : sums_(torch::zeros({blocks, kFields}, torch::TensorOptions().dtype(torch::kFloat64).device(device))),
      steps_since_(size_t(blocks), 0) {}

void StepStats::add(int64_t block, Field first, const std::vector<torch::Tensor>& values) {
  sums_[block].narrow(0, first, int64_t(values.size())).add_(torch::stack(values).to(torch::kFloat64));
  if (first == kLoss) ++steps_since_[size_t(block)];
  pending_ = true;
}

void StepStats::flush(std::vector<BlockStats>& stats) {
  if (!pending_) return;
  const torch::Tensor host = read_to_host(sums_);
  sums_.zero_();
  pending_ = false;
  const auto v = host.accessor<double, 2>();
  for (int64_t k = 0; k < host.size(0) && k < int64_t(stats.size()); ++k) {
    BlockStats& s = stats[size_t(k)];
    const int64_t steps = steps_since_[size_t(k)];
    steps_since_[size_t(k)] = 0;
    if (!std::isfinite(v[k][kLoss])) {
      const int64_t last = int64_t(s.batches), first = last - steps + 1;
      throw RuntimeError("block " + std::to_string(k) + ": local loss is " + std::to_string(v[k][kLoss]) + " in batch" +
                         (steps > 1 ? "es " + std::to_string(first) + "-" : " ") + std::to_string(last) +
                         " of this epoch (training diverged; lower optim.lr)");
    }
    s.loss += v[k][kLoss], s.kl += v[k][kKl], s.pred += v[k][kPred];
    s.correct1 += v[k][kCorrect1], s.correct3 += v[k][kCorrect3], s.seq_correct += v[k][kSeqCorrect];
    s.s15 += v[k][kS15], s.s16 += v[k][kS16], s.s17 += v[k][kS17];
  }
}

}  // namespace bll

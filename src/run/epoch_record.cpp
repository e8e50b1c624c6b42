#include "epoch_record.h"

#include <sys/resource.h>

#include <algorithm>

namespace bll {
namespace {

// This process's peak resident set size in MiB (Linux reports ru_maxrss in KiB).
double peak_resident_mb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

double percent(double num, double den) { return den > 0 ? 100.0 * num / den : 0.0; }

}  // namespace

EpochRecord gather_epoch(Transport& t, int64_t epoch, const std::vector<BlockStats>& train,
                         const std::vector<BlockStats>& test, const PhaseTiming& tt, const PhaseTiming& et,
                         int64_t trained_samples, const BlockLearner& any_learner, bool recon,
                         double divergence, int64_t replaced_files) {
  const int64_t nb = int64_t(train.size()), K = t.size(), F = BlockStats::kFields;
  auto buf = torch::zeros({2 * nb * F + 9 * K}, torch::kFloat64);
  double* p = buf.data_ptr<double>();
  for (int64_t k = 0; k < nb; ++k) {
    train[size_t(k)].to(p + k * F);
    test[size_t(k)].to(p + (nb + k) * F);
  }
  double* timing = p + 2 * nb * F;
  timing[t.rank()] = tt.seconds;
  timing[K + t.rank()] = tt.wait_s;
  timing[2 * K + t.rank()] = et.seconds;
  timing[3 * K + t.rank()] = double(tt.max_ahead);
  for (const auto& s : train) timing[4 * K + t.rank()] += s.seconds;  // this rank's blocks only
  timing[5 * K + t.rank()] = peak_resident_mb();
  timing[6 * K + t.rank()] = divergence;
  timing[7 * K + t.rank()] = tt.checkpoint_s;
  timing[8 * K + t.rank()] = double(replaced_files);
  t.allreduce_sum(buf);

  EpochRecord r;
  r.epoch = epoch + 1;
  for (int64_t k = 0; k < nb; ++k) {
    const auto tr = BlockStats::from(p + k * F), te = BlockStats::from(p + (nb + k) * F);
    r.block_loss.push_back(tr.batches > 0 ? tr.loss / tr.batches : 0);
    r.block_kl.push_back(tr.batches > 0 ? tr.kl / tr.batches : 0);
    r.block_pred.push_back(tr.batches > 0 ? tr.pred / tr.batches : 0);
    r.block_train_seconds.push_back(tr.seconds);
    r.block_params.push_back(int64_t(tr.params));
    auto mean = [](double sum, double n) { return n > 0 ? sum / n : 0.0; };
    if (k + 1 < nb) {
      r.readout_train.push_back(recon ? mean(tr.s15, tr.samples) : percent(tr.correct1, tr.samples));
      r.readout_test.push_back(recon ? mean(te.s15, te.samples) : percent(te.correct1, te.samples));
    } else {
      r.reconstruction = recon;
      r.test_s15 = mean(te.s15, te.samples), r.test_s16 = mean(te.s16, te.samples);
      r.test_s17 = mean(te.s17, te.samples), r.train_s15 = mean(tr.s15, tr.samples);
      r.train_top1 = percent(tr.correct1, tr.samples);
      r.train_loss = r.block_loss.back();
      r.test_top1 = percent(te.correct1, te.samples);
      r.test_top3 = percent(te.correct3, te.samples);
      r.sequences = te.sequences > 0;
      r.test_seq_acc = percent(te.seq_correct, te.sequences);
      r.train_seq_acc = percent(tr.seq_correct, tr.sequences);
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    r.train_seconds = std::max(r.train_seconds, timing[k]);
    r.rank_wait_seconds.push_back(timing[K + k]);
    r.rank_max_ahead.push_back(int64_t(timing[3 * K + k]));
    r.rank_train_seconds.push_back(timing[k]);
    r.rank_compute_seconds.push_back(timing[4 * K + k]);
    r.rank_peak_rss_mb.push_back(timing[5 * K + k]);
    r.rank_checkpoint_seconds.push_back(timing[7 * K + k]);
    r.eval_seconds = std::max(r.eval_seconds, timing[2 * K + k]);
    r.replica_divergence = std::max(r.replica_divergence, timing[6 * K + k]);
    r.replaced_files += int64_t(timing[8 * K + k]);
  }
  r.seconds = r.train_seconds + r.eval_seconds;
  // Pipeline efficiency: the share of its training time the busiest rank spent computing.
  const auto busiest = std::max_element(r.rank_compute_seconds.begin(), r.rank_compute_seconds.end()) -
                       r.rank_compute_seconds.begin();
  const double busiest_s = r.rank_train_seconds[size_t(busiest)];
  r.pipeline_efficiency = busiest_s > 0 ? r.rank_compute_seconds[size_t(busiest)] / busiest_s : 0;
  r.samples_per_sec = r.train_seconds > 0 ? double(trained_samples) / r.train_seconds : 0;
  r.mixing = any_learner.mixing();
  r.lr = any_learner.lr();
  return r;
}

}  // namespace bll

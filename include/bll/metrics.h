// What a run reports: one record per epoch, printed by rank 0 as one line and appended to
// metrics.jsonl in the run directory; a progress bar while an epoch runs on a terminal.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace bll {

struct EpochRecord {
  int64_t epoch = 0;            // 1-based
  double test_top1 = 0, test_top3 = 0, train_top1 = 0;  // percent, network output (per token for sequences)
  bool sequences = false;       // a sequence task: the next two are reported
  double test_seq_acc = 0, train_seq_acc = 0;  // percent of sequences with every token right
  bool reconstruction = false;  // data.task autoencode: accuracies are 0 and these are reported
  double test_s15 = 0, test_s16 = 0, test_s17 = 0, train_s15 = 0;  // means over samples
  double train_loss = 0;        // mean cross-entropy of the network output
  double samples_per_sec = 0;   // training samples / slowest rank's training time
  double seconds = 0;           // wall time of the epoch: training + evaluation
  double train_seconds = 0, eval_seconds = 0;
  double mixing = 0, lr = 0;
  std::vector<double> readout_test, readout_train;  // percent, per hidden block
  std::vector<double> block_loss, block_kl, block_pred;  // mean per batch, per block
  std::vector<double> block_train_seconds;  // compute time of each block's training steps (all replicas)
  std::vector<int64_t> block_params;        // parameters each block trains
  std::vector<double> rank_wait_seconds;  // training time each rank spent blocked on messages
  std::vector<int64_t> rank_max_ahead;    // most batches each rank had sent and the next had not taken
  std::vector<double> rank_train_seconds;    // each rank's wall time of the training phase
  std::vector<double> rank_checkpoint_seconds;  // of which saving checkpoints
  std::vector<double> rank_compute_seconds;  // of which running its blocks' steps
  std::vector<double> rank_peak_rss_mb;      // each rank's peak resident memory so far (MiB)
  double pipeline_efficiency = 0;            // compute share of the busiest rank's training time
  int64_t replicas = 1;                      // runtime.replicas; the rank_ lists cover every replica
  double replica_divergence = 0;             // largest |parameter - replica 0's| before the epoch's sync
  int64_t replaced_files = 0;                // unreadable image files replaced (data.on_bad_file skip)
};

std::string to_json_line(const EpochRecord& r);
std::string format_epoch_line(const EpochRecord& r, int64_t epochs);

class MetricsLog {
 public:
  // Starts the file anew, keeping its first `keep` records (a resumed run keeps the epochs
  // before the one it goes on in).
  explicit MetricsLog(const std::string& path, int64_t keep = 0);
  void append(const EpochRecord& r);

 private:
  std::string path_;
  std::ofstream out_;
};

// A one-line progress bar on stdout, redrawn at most a few times a second.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void update(int64_t done, int64_t total, const std::string& label, double samples_per_sec);
  void clear();

 private:
  bool enabled_;
  double last_ = -1;
  bool drawn_ = false;
};

bool stdout_is_terminal();

}  // namespace bll

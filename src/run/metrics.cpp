#include "bll/metrics.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "bll/error.h"

namespace bll {

std::string to_json_line(const EpochRecord& r) {
  nlohmann::json j;
  j["epoch"] = r.epoch;
  j["test_top1"] = r.test_top1;
  j["test_top3"] = r.test_top3;
  j["train_top1"] = r.train_top1;
  if (r.sequences) {
    j["test_seq_acc"] = r.test_seq_acc;
    j["train_seq_acc"] = r.train_seq_acc;
  }
  if (r.reconstruction) {
    j["test_s15_kl"] = r.test_s15;
    j["test_s16_mm"] = r.test_s16;
    j["test_s17_me"] = r.test_s17;
    j["train_s15_kl"] = r.train_s15;
  }
  j["train_loss"] = r.train_loss;
  j["samples_per_sec"] = r.samples_per_sec;
  j["seconds"] = r.seconds;
  j["train_seconds"] = r.train_seconds;
  j["eval_seconds"] = r.eval_seconds;
  j["mixing"] = r.mixing;
  j["lr"] = r.lr;
  j["readout_test_top1"] = r.readout_test;
  j["readout_train_top1"] = r.readout_train;
  j["block_loss"] = r.block_loss;
  j["block_kl"] = r.block_kl;
  j["block_pred"] = r.block_pred;
  j["block_train_seconds"] = r.block_train_seconds;
  j["rank_wait_seconds"] = r.rank_wait_seconds;
  j["rank_max_ahead"] = r.rank_max_ahead;
  j["rank_train_seconds"] = r.rank_train_seconds;
  j["rank_checkpoint_seconds"] = r.rank_checkpoint_seconds;
  j["rank_compute_seconds"] = r.rank_compute_seconds;
  j["rank_peak_rss_mb"] = r.rank_peak_rss_mb;
  j["pipeline_efficiency"] = r.pipeline_efficiency;
  j["block_params"] = r.block_params;
  if (r.replaced_files > 0) j["replaced_files"] = r.replaced_files;
  if (r.replicas > 1) {
    j["replicas"] = r.replicas;
    j["replica_divergence"] = r.replica_divergence;
  }
  return j.dump();
}

std::string format_epoch_line(const EpochRecord& r, int64_t epochs) {
  char head[256];
  if (r.reconstruction)
    std::snprintf(head, sizeof head, "epoch %lld/%lld  loss %.4f  test S15 %.4f  S16 %.4f  S17 %.4f", (long long)r.epoch,
                  (long long)epochs, r.train_loss, r.test_s15, r.test_s16, r.test_s17);
  else
    std::snprintf(head, sizeof head, "epoch %lld/%lld  loss %.4f  train %.2f%%  test %.2f%% (top-3 %.2f%%)",
                  (long long)r.epoch, (long long)epochs, r.train_loss, r.train_top1, r.test_top1, r.test_top3);
  std::string line = head;
  if (r.sequences) {
    char b[48];
    std::snprintf(b, sizeof b, "  sequences %.2f%%", r.test_seq_acc);
    line += b;
  }
  if (!r.readout_test.empty()) {
    line += "  readouts";
    for (size_t i = 0; i < r.readout_test.size(); ++i) {
      char b[32];
      std::snprintf(b, sizeof b, r.reconstruction ? "%s%.3f" : "%s%.1f", i ? "/" : " ", r.readout_test[i]);
      line += b;
    }
    line += r.reconstruction ? " (readout S15)" : "%";
  }
  if (r.replicas > 1) {
    char b[64];
    std::snprintf(b, sizeof b, "  replicas differ by %.1e", r.replica_divergence);
    line += b;
  }
  if (r.replaced_files > 0) line += "  " + std::to_string(r.replaced_files) + " bad files replaced";
  char tail[160];
  std::snprintf(tail, sizeof tail, "  m %.3f  lr %.2e  %.0f samples/s  %.1fs", r.mixing, r.lr, r.samples_per_sec,
                r.seconds);
  return line + tail;
}

namespace {
std::string first_lines(const std::string& path, int64_t keep) {
  std::ifstream in(path);
  std::string kept, line;
  for (int64_t i = 0; i < keep && std::getline(in, line); ++i) kept += line + "\n";
  return kept;
}
}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t keep) : path_(path) {
  const std::string kept = keep > 0 ? first_lines(path, keep) : "";
  out_.open(path, std::ios::trunc);
  if (!out_) throw RuntimeError(path + ": cannot create metrics file");
  out_ << kept;
  out_.flush();
}

void MetricsLog::append(const EpochRecord& r) {
  out_ << to_json_line(r) << "\n";
  out_.flush();
  if (!out_) throw RuntimeError(path_ + ": write failed");
}

bool stdout_is_terminal() {
  // mpirun hands rank 0 a pseudo-terminal even when its own output goes to a file, so a launcher
  // that knows better says so in BLL_STDOUT_TTY (launch/mpirun.sh does).
  if (const char* said = std::getenv("BLL_STDOUT_TTY")) return std::string(said) == "1";
  const char* term = std::getenv("TERM");
  const bool real_term = term && *term && std::string(term) != "dumb";
  return isatty(STDOUT_FILENO) != 0 && real_term && !std::getenv("CI");
}

void ProgressBar::update(int64_t done, int64_t total, const std::string& label, double samples_per_sec) {
  if (!enabled_ || total <= 0) return;
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (done < total && now - last_ < 0.2) return;
  last_ = now;
  const int width = 30;
  const int filled = int(double(width) * double(done) / double(total));
  std::string bar(size_t(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(size_t(width), ' ');
  std::printf("\r%s [%s] %lld/%lld batches  %.0f samples/s", label.c_str(), bar.c_str(), (long long)done,
              (long long)total, samples_per_sec);
  std::fflush(stdout);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (!drawn_) return;
  std::printf("\r%80s\r", "");
  std::fflush(stdout);
  drawn_ = false;
}

}  // namespace bll

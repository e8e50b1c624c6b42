// bll-eval: the test-set accuracy of a network exported with `bll-ckpt export`, in one process.
//   bll-eval CONFIG.yaml NETWORK.safetensors [section.key=value ...]
// The configuration says how to build the blocks and which data to read; the file gives every
// block's parameters and buffers by name, and the image normalization the run used where it
// saved one. Prints the output block's top-1 and top-3 accuracy
// (S15 for data.task autoencode) and each hidden block's readout, as the epoch lines do.
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bll/checkpoint.h"
#include "bll/config.h"
#include "bll/data/sources.h"
#include "bll/error.h"
#include "bll/learner.h"
#include "bll/models/model.h"
#include "bll/models/twin.h"
#include "tool_main.h"

namespace {

const char* kUsage =
    "usage: bll-eval CONFIG.yaml NETWORK.safetensors [section.key=value ...]\n"
    "Evaluates the network (bll-ckpt export) on the test set of CONFIG's data, on the CPU.\n"
    "Exit codes: 0 done, 2 usage or configuration error, 3 data error, 4 runtime error.\n";

// Copies the file's tensors into a block's parameters and buffers, each by its name.
void load_block(bll::Block& block, const std::map<std::string, torch::Tensor>& file, const std::string& path) {
  torch::NoGradGuard no_grad;
  const std::string prefix = "block" + std::to_string(block->index()) + ".";
  auto fill = [&](const std::string& key, torch::Tensor& t) {
    const auto it = file.find(prefix + key);
    if (it == file.end())
      throw bll::RuntimeError(path + ": has no tensor " + prefix + key + " (exported from another configuration?)");
    if (it->second.sizes() != t.sizes())
      throw bll::RuntimeError(path + ": " + prefix + key + " has another shape than this configuration's");
    t.copy_(it->second);
  };
  for (auto& p : block->named_parameters()) fill(p.key(), p.value());
  for (auto& b : block->named_buffers()) fill(b.key(), b.value());
}

int run(const std::vector<std::string>& args) {
  const bll::Config config = bll::load_config(args[0], {args.begin() + 2, args.end()});
  std::map<std::string, torch::Tensor> file;
  for (auto& [name, t] : bll::read_safetensors(args[1])) file[name] = t;

  // The image statistics the run normalized with, where the export carries them.
  std::optional<bll::Normalizer> saved;
  if (file.count(bll::kExportedMean) && file.count(bll::kExportedStd))
    saved = bll::Normalizer{file[bll::kExportedMean], file[bll::kExportedStd]};
  bll::OpenData data = bll::open_data(config, 0, 1, saved ? &*saved : nullptr);
  const bll::Shape sample = data.info.sample_shape;
  const bool recon = data.info.float_labels != 0;
  const int64_t classes = data.info.num_classes;
  std::optional<bll::TwinCodes> twin;
  if (config.loss.feedback == "twin") twin.emplace(config, sample, classes);
  const bll::Placement one_process(config.model.blocks, 1, {}, config.loss.span);
  auto learners = bll::make_learners(config, one_process, 0, sample, classes, twin ? &*twin : nullptr, torch::kCPU);
  for (auto& l : learners)
    for (auto& block : l.blocks()) load_block(block, file, args[1]);

  bll::BatchSource& test = *data.test;
  test.start_epoch(0);
  std::vector<bll::BlockStats> stats(size_t(config.model.blocks));
  for (int64_t t = 0; t < test.num_batches(); ++t) {
    bll::Batch b = test.get(t);
    torch::Tensor x = b.x;
    for (auto& l : learners) x = l.eval_step(x, b.y, stats);
  }
  learners.front().flush_stats(stats);  // the counts summed where they were computed
  const bll::BlockStats& out = stats.back();
  if (recon) {
    std::printf("bll-eval: %s on the %s test set (%lld samples): S15 %.4f\n", args[1].c_str(),
                config.data.dataset.c_str(), (long long)data.info.n_test, out.s15 / out.samples);
  } else {
    std::printf("bll-eval: %s on the %s test set (%lld samples): top-1 %.2f%%  top-3 %.2f%%\n", args[1].c_str(),
                config.data.dataset.c_str(), (long long)data.info.n_test, 100.0 * out.correct1 / out.samples,
                100.0 * out.correct3 / out.samples);
    for (size_t k = 0; k + 1 < stats.size(); ++k)
      std::printf("  block %zu readout: top-1 %.2f%%\n", k, 100.0 * stats[k].correct1 / std::max(1.0, stats[k].samples));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bll::tool_main("bll-eval", kUsage, argc, argv, 2, run); }

#include "start_up.h"

#include <filesystem>
#include <fstream>

#include "bll/error.h"
#include "bll/run_dir.h"
#include "checkpoint/checkpointer.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

// DataInfo as a fixed-size tensor for one broadcast: sizes, then each shape as rank + dims.
constexpr int64_t kMaxRank = 4, kInfoSize = 4 + 2 * (1 + kMaxRank);

torch::Tensor pack(const DataInfo& info) {
  auto v = torch::zeros({kInfoSize}, torch::kInt64);
  auto a = v.accessor<int64_t, 1>();
  a[0] = info.n_train, a[1] = info.n_test, a[2] = info.num_classes, a[3] = info.float_labels;
  int64_t at = 4;
  for (const Shape* s : {&info.sample_shape, &info.label_shape}) {
    if (int64_t(s->size()) > kMaxRank) throw RuntimeError("data description: a sample or label shape of rank > 4");
    a[at] = int64_t(s->size());
    for (size_t i = 0; i < s->size(); ++i) a[at + 1 + int64_t(i)] = (*s)[i];
    at += 1 + kMaxRank;
  }
  return v;
}

DataInfo unpack(const torch::Tensor& v) {
  auto a = v.accessor<int64_t, 1>();
  DataInfo info{a[0], a[1], a[2], {}, {}, a[3]};
  int64_t at = 4;
  for (Shape* s : {&info.sample_shape, &info.label_shape}) {
    for (int64_t i = 0; i < a[at]; ++i) s->push_back(a[at + 1 + i]);
    at += 1 + kMaxRank;
  }
  return info;
}



}  // namespace

DataInfo start_up(const Config& config, std::string& run_dir, std::string& resume_from, const Grid& grid,
                  RankData& data) {
  agree_on_every_rank(grid.world, [&] {
    if (grid.world.rank() != 0) return;
    const auto point = find_resume_point(config);
    if (point) resume_from = point->checkpoint;
    // A resumed run goes on in its own run directory, unless runtime.run_dir names another.
    if (point && (config.runtime.run_dir.empty() ||
                  fs::weakly_canonical(config.runtime.run_dir) == fs::weakly_canonical(point->run_dir)))
      run_dir = point->run_dir;
    else
      run_dir = claim_run_dir(config);
    std::ofstream(fs::path(run_dir) / "config.yaml") << config_to_yaml(config);
  });
  grid.world.broadcast_string(run_dir, 0);
  grid.world.broadcast_string(resume_from, 0);
  DataInfo info;
  agree_on_every_rank(grid.world, [&] {
    if (grid.pipeline.rank() != 0) return;
    // A resumed run normalizes its images with the statistics its checkpoint saved.
    std::optional<Normalizer> saved;
    const fs::path saved_file = fs::path(resume_from) / kNormalizationFile;
    if (!resume_from.empty() && fs::exists(saved_file)) saved = Normalizer::load(saved_file.string());
    OpenData opened = open_data(config, grid.replica, grid.num_replicas, saved ? &*saved : nullptr);
    info = opened.info;
    data.train = std::move(opened.train);
    data.test = std::move(opened.test);
    if (opened.image_norm) {
      data.normalization = opened.image_norm->to_json();
      if (grid.world.rank() == 0) write_atomically((fs::path(run_dir) / kNormalizationFile).string(), data.normalization);
    }
    if (data.train->num_batches() == 0)
      throw ConfigError(config.source + ": key 'train.batch_size': " + std::to_string(config.train.batch_size) +
                        " is larger than the training set (" + std::to_string(info.n_train) + " samples)");
  });
  auto meta = grid.world.rank() == 0 ? pack(info) : torch::zeros({kInfoSize}, torch::kInt64);
  grid.world.ibroadcast(meta, 0, "data description")->wait();
  return unpack(meta);
}

}  // namespace bll

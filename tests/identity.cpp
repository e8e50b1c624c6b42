#include "identity.h"

#include <map>

#include "bll/error.h"
#include "bll/placement.h"
#include "bll/transport/mpi.h"
#include "fixtures.h"
#include "bll/data/packed.h"

namespace bll::test {

std::unique_ptr<Transport> world() { return make_mpi_transport(MPI_COMM_WORLD); }

namespace {

// Every rank sends its blocks' state to rank 0 (through host memory), which returns the largest
// difference from the 1-rank reference (other ranks return 0).
double worst_difference(Transport& t, const TrainResult& single, const TrainResult& multi, const Placement& placement) {
  std::vector<WorkPtr> works;
  std::map<int64_t, std::vector<torch::Tensor>> gathered;
  if (t.rank() != 0) {
    for (auto& [block, state] : multi.block_state)
      for (auto& tensor : state) works.push_back(t.isend(tensor.cpu().contiguous(), 0, 40 + int(block), "state"));
  } else {
    for (const auto& [block, reference] : single.block_state) {
      const int owner = placement.owner(block);
      for (size_t i = 0; i < reference.size(); ++i) {
        if (owner == 0) {
          gathered[block].push_back(multi.block_state.at(block).at(i).cpu());
          continue;
        }
        gathered[block].push_back(torch::empty(reference[i].sizes(), reference[i].options().device(torch::kCPU)));
        works.push_back(t.irecv(gathered[block].back(), owner, 40 + int(block), "state"));
      }
    }
  }
  for (auto& w : works) w->wait();
  double worst = 0;
  if (t.rank() == 0)
    for (const auto& [block, reference] : single.block_state) {
      if (gathered[block].size() != reference.size()) throw RuntimeError("identity: block state of different sizes");
      for (size_t i = 0; i < reference.size(); ++i) {
        const auto diff = (gathered[block][i].to(torch::kFloat64) - reference[i].cpu().to(torch::kFloat64)).abs();
        worst = std::max(worst, diff.numel() ? diff.max().item<double>() : 0.0);
      }
    }
  return worst;
}

}  // namespace

std::string shared_fixture(Transport& t) {
  std::string dir;
  if (t.rank() == 0) {
    dir = temp_dir("mpi-data");
    write_idx_dataset(dir, 512, 256, 5);
    write_image_folder(dir + "/folder", 512, 96, 40, 5);  // data.dataset folder, in <dir>/folder
    PackOptions pack;                                        // and packed, in <dir>/packed
    pack.side = 36, pack.shard_images = 200;
    pack_image_folder(dir + "/folder", dir + "/packed", pack);
  }
  t.broadcast_string(dir, 0);
  return dir;
}

Identity train_alone_and_together(Transport& t, const std::function<std::unique_ptr<Transport>()>& make_self,
                                  Config config, const TrainOptions& options) {
  const auto base = temp_dir("identity-" + std::to_string(t.rank()));
  TrainResult single;
  Identity out;
  if (t.rank() == 0) {
    auto self = make_self();
    Config alone = config;
    alone.runtime.run_dir = base + "/single";
    alone.runtime.blocks_per_rank.clear();  // one rank holds every block
    single = run_training(alone, *self, options);
    if (int64_t(single.block_state.size()) != config.model.blocks)
      throw RuntimeError("identity: the 1-rank run does not hold every block");
    out.single = single.epochs.back();
  }
  config.runtime.run_dir = base + "/multi";
  const auto multi = run_training(config, t, options);
  out.multi = multi.epochs.back();
  const Placement placement(config.model.blocks, t.size(), multi.blocks_per_rank, config.loss.span);
  out.worst = worst_difference(t, single, multi, placement);
  t.barrier();
  return out;
}

}  // namespace bll::test

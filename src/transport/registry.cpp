#include "bll/transport/registry.h"

#include <functional>
#include <map>

#include "bll/error.h"
#include "bll/transport/mpi.h"
#ifdef BLL_HAVE_NCCL
#include "bll/transport/nccl.h"
#endif
#ifdef BLL_HAVE_CUDART
#include "device/cuda_copier.h"
#endif

namespace bll {
namespace {

using Factory = std::function<std::unique_ptr<Transport>(const TransportSetup&)>;

std::unique_ptr<Transport> mpi(const TransportSetup& s) {
  MpiOptions opt;
  opt.timeout_s = s.runtime.timeout_s;
  opt.poll_with_sleep = s.runtime.wait == "sleep";
#ifdef BLL_HAVE_CUDART
  if (s.runtime.mpi_staging == "async" && s.device.is_cuda()) opt.stager = make_cuda_host_stager(s.device, s.where.rank);
#endif
  return make_mpi_transport(s.comm, opt);
}

#ifdef BLL_HAVE_NCCL
std::unique_ptr<Transport> nccl(const TransportSetup& s) {
  if (!s.device.is_cuda())
    throw RuntimeError("rank " + std::to_string(s.where.rank) + ": runtime.transport nccl needs a GPU (runtime.device=cuda)");
  NcclOptions opt;
  opt.device = s.device.index();
  opt.timeout_s = s.runtime.timeout_s;
  opt.ranks_share_gpus = s.runtime.ranks_per_gpu > 1 && s.where.local_ranks > 1;
  return make_nccl_transport(s.comm, opt, mpi(s));
}
#endif

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> factories = {
      {"mpi", mpi},
#ifdef BLL_HAVE_NCCL
      {"nccl", nccl},
#endif
  };
  return factories;
}

}  // namespace

std::unique_ptr<Transport> make_transport(const std::string& name, const TransportSetup& setup) {
  const auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : transport_names()) known += (known.empty() ? "" : ", ") + n;
    throw RuntimeError("rank " + std::to_string(setup.where.rank) + ": runtime.transport " + name +
                       " is not built into this bll (built: " + known +
                       "; the nccl transport needs a CUDA toolkit and NCCL at configure time)");
  }
  return it->second(setup);
}

std::vector<std::string> transport_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

}  // namespace bll

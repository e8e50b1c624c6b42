#include "bll/error.h"
#include "bll/host_reads.h"
#include "bll/transport/transport.h"

namespace bll {

void agree_on_every_rank(Transport& t, const std::function<void()>& step) {
  std::string message;
  int64_t code = kExitOk;
  try {
    step();
  } catch (const Error& e) {
    message = e.what(), code = e.code();
  }
  auto codes = torch::zeros({t.size()}, torch::kInt64);
  codes[t.rank()] = code;
  t.allreduce_sum(codes);
  const auto failed = codes.nonzero();
  if (failed.numel() == 0) return;
  const int first = int(host_control_value(failed[0][0]));
  t.broadcast_string(message, first);
  throw AgreedError(ExitCode(host_control_value(codes[first])), message, t.rank() == first);
}

}  // namespace bll

#include "bll/error.h"
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
  const int first = int(failed[0][0].item<int64_t>());
  t.broadcast_string(message, first);
  throw AgreedError(ExitCode(codes[first].item<int64_t>()), message, t.rank() == first);
}

}  // namespace bll

#include "bll/fault_injection.h"

#include <cstdlib>
#include <string>

#include "bll/error.h"

namespace bll {

std::function<void(int64_t)> injected_failure(int world_rank) {
  const char* value = std::getenv("BLL_INJECT_FAILURE");
  if (!value || !*value) return {};
  const std::string text = value;
  const auto colon = text.find(':');
  int64_t rank = -1, batch = -1;
  try {
    size_t used = 0;
    if (colon != std::string::npos) {
      rank = std::stoll(text.substr(0, colon), &used);
      if (used != colon) rank = -1;
      batch = std::stoll(text.substr(colon + 1), &used);
      if (used != text.size() - colon - 1) batch = -1;
    }
  } catch (const std::exception&) {
    rank = batch = -1;
  }
  if (rank < 0 || batch < 0)
    throw ConfigError("BLL_INJECT_FAILURE='" + text + "': expected RANK:BATCH, two whole numbers (a test setting)");
  if (rank != world_rank) return {};
  return [batch](int64_t t) {
    if (t == batch)
      throw RuntimeError("injected failure before batch " + std::to_string(t) + " (BLL_INJECT_FAILURE)");
  };
}

}  // namespace bll

// A test-only way to make one rank fail in the middle of training, as a bug or a lost device
// would: BLL_INJECT_FAILURE=RANK:BATCH in the environment makes world rank RANK throw a
// RuntimeError before its first step of batch BATCH (training comes first). The fault tests use
// it to check that such a job ends at once with that rank's message first (tests/cli_test.sh).
#pragma once

#include <cstdint>
#include <functional>

namespace bll {

// The hook to call before each step with the batch index, or an empty function when the
// variable is unset. Throws ConfigError when it is set but malformed.
std::function<void(int64_t)> injected_failure(int world_rank);

}  // namespace bll

// The main() of bll's single-command tools (bll-eval, bll-pack, bll-data-bench): --help prints
// the usage; fewer than `min_args` arguments print it to stderr with the usage exit code; an
// error is one line "TOOL: error: ..." and its exit code (bll/error.h).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

#include "bll/error.h"

namespace bll {

template <class Run>
int tool_main(const char* tool, const char* usage, int argc, char** argv, size_t min_args, Run run) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::printf("%s", usage);
    return 0;
  }
  if (args.size() < min_args) {
    std::fprintf(stderr, "%s", usage);
    return kExitUsage;
  }
  try {
    return run(args);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
    return e.code();
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s: error: torch: %s\n", tool, e.what_without_backtrace());
    return kExitRuntime;
  }
}

}  // namespace bll

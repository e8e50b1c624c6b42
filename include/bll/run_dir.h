// Where a run writes: runtime.run_dir, or a new runs/<config name>/<date-time> for every run,
// so that no run overwrites another.
#pragma once

#include <string>

#include "bll/config.h"

namespace bll {

// Rank 0, before anything is written. With runtime.run_dir empty: creates and returns a new
// folder runs/<config name>/<YYYYmmdd-HHMMSS>[-N] and points runs/<config name>/latest at it.
// With runtime.run_dir given: creates it and returns it; if it already holds a run
// (metrics.jsonl), throws ConfigError naming it unless runtime.overwrite, which removes that
// run's outputs first. Throws RuntimeError when a folder cannot be created.
std::string claim_run_dir(const Config& config);

// runs/<config file name>: where the default run directories of `config` go.
std::string default_runs_base(const Config& config);

}  // namespace bll

// Stop requests: SLURM sends SIGTERM at a time limit or on preemption, and the signal of
// `#SBATCH --signal=USR1@120` ahead of one. bll-train catches both; the trainer's ranks then agree
// on a batch, save a checkpoint there and exit with kExitStopped (bll/error.h; src/checkpoint/).
#pragma once

namespace bll {

// Catches SIGTERM and SIGUSR1 (the first of them is noted; after it any SIGTERM ends the process
// as usual) and ignores SIGXFSZ, so that a file-size limit fails a write instead of killing.
void install_stop_handlers();

// The signal that asked this process to stop, or 0.
int stop_requested();

// Asks this process to stop as if `signal` had arrived (tests).
void request_stop(int signal);

// "SIGTERM", "SIGUSR1", or "signal N".
const char* signal_name(int signal);

}  // namespace bll

// Error types and checking helpers. Library code throws; only main() turns an error into a
// message on stderr and an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace bll {

// Exit codes of bll-train: 0 success, 2 usage/configuration, 3 data, 4 runtime, 75 stopped on
// request after saving a checkpoint (EX_TEMPFAIL: run it again to go on; bll/stop.h).
enum ExitCode : int { kExitOk = 0, kExitUsage = 2, kExitData = 3, kExitRuntime = 4, kExitStopped = 75 };

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// A bad configuration file, key, value or command line.
struct ConfigError : Error {
  explicit ConfigError(const std::string& what) : Error(kExitUsage, what) {}
};

// A missing, truncated or malformed data file.
struct DataError : Error {
  explicit DataError(const std::string& what) : Error(kExitData, what) {}
};

// Anything that goes wrong while training: communication, shapes, numerics.
struct RuntimeError : Error {
  explicit RuntimeError(const std::string& what) : Error(kExitRuntime, what) {}
};

// An error that every rank of the job raises together (a bad configuration, a start-up failure
// that rank 0 shared). main() exits every rank cleanly with its code; only the rank with
// `report` set prints it, so the user reads it once. Any other error is one rank's alone and
// must bring the job down (main() calls MPI_Abort), or the other ranks would wait for it forever.
struct AgreedError : Error {
  AgreedError(ExitCode code, const std::string& what, bool report) : Error(code, what), report(report) {}
  bool report;
};

// Runs a step that every rank performs on the same inputs (parsing the config, placing blocks):
// an Error it throws is every rank's, so it becomes an AgreedError that rank 0 reports.
template <class F>
auto agreed(int rank, F&& step) {
  try {
    return step();
  } catch (const AgreedError&) {
    throw;
  } catch (const Error& e) {
    throw AgreedError(e.code(), e.what(), rank == 0);
  }
}

// Text of an MPI error code, for messages.
std::string mpi_error_string(int code);

}  // namespace bll

// Checks an MPI call; throws RuntimeError naming the call, file and line.
#define BLL_MPI_CHECK(call)                                                                    \
  do {                                                                                         \
    int bll_mpi_rc_ = (call);                                                                  \
    if (bll_mpi_rc_ != 0 /* MPI_SUCCESS */)                                                    \
      throw ::bll::RuntimeError(std::string(#call) + " failed at " + __FILE__ + ":" +          \
                                std::to_string(__LINE__) + ": " +                              \
                                ::bll::mpi_error_string(bll_mpi_rc_));                         \
  } while (0)

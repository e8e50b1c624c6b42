// libFuzzer target: the configuration parser. The input is a YAML file, then '\0'-separated
// `section.key=value` overrides. Every input must end in a configuration or a bll::Error
// (ConfigError: a line naming the key); anything else (another exception, a crash, a
// sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t nul; (nul = input.find('\0', at)) != std::string::npos; at = nul + 1) parts.push_back(input.substr(at, nul - at));
  parts.push_back(input.substr(at));
  std::optional<bll::Config> config;
  try {
    config = bll::parse_config(parts[0], "fuzz.yaml", {parts.begin() + 1, parts.end()});
  } catch (const bll::Error&) {
    return 0;  // refused with a message: fine
  }
  // What parses must print as YAML that parses back to the same configuration.
  const std::string yaml = bll::config_to_yaml(*config);
  try {
    if (bll::config_to_yaml(bll::parse_config(yaml, "fuzz.yaml", {})) == yaml) return 0;
    std::fprintf(stderr, "fuzz_config: the printed configuration reads back differently:\n%s", yaml.c_str());
  } catch (const bll::Error& e) {
    std::fprintf(stderr, "fuzz_config: the printed configuration does not parse: %s\n%s", e.what(), yaml.c_str());
  }
  __builtin_trap();
}

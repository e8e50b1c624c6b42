#include <map>

#include "bll/error.h"
#include "bll/schedules/schedule.h"

namespace bll {

// One declaration and one line in the table per schedule.
std::unique_ptr<Schedule> make_stream_schedule(ScheduleContext context);
std::unique_ptr<Schedule> make_gpipe_schedule(ScheduleContext context);
std::unique_ptr<Schedule> make_1f1b_schedule(ScheduleContext context);

namespace {

using Factory = std::unique_ptr<Schedule> (*)(ScheduleContext);

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> factories = {
      {"stream", make_stream_schedule},
      {"gpipe", make_gpipe_schedule},
      {"1f1b", make_1f1b_schedule},
  };
  return factories;
}

}  // namespace

std::unique_ptr<Schedule> make_schedule(const std::string& name, ScheduleContext context) {
  const auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : schedule_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown schedule '" + name + "' (known: " + known + ")");
  }
  return it->second(std::move(context));
}

std::vector<std::string> schedule_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

}  // namespace bll

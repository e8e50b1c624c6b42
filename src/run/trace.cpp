#include "bll/trace.h"

#include "bll/host_reads.h"

#include <cstdio>
#include <fstream>

#include "bll/error.h"

namespace bll {

void Tracer::add(const char* name, const char* category, Clock::time_point begin, Clock::time_point end) {
  if (!enabled_) return;
  const double ts = std::chrono::duration<double, std::micro>(begin - origin_).count();
  const double dur = std::chrono::duration<double, std::micro>(end - begin).count();
  events_.push_back({name, category, ts, dur, batch_});
}

std::string Tracer::events_json(int rank) const {
  std::string out;
  char buf[256];
  for (const auto& e : events_) {
    std::snprintf(buf, sizeof buf, "%s{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":0,\"ts\":%.1f,\"dur\":%.1f",
                  out.empty() ? "" : ",\n", e.name, e.category, rank, e.ts_us, e.dur_us);
    out += buf;
    if (e.batch >= 0) out += ",\"args\":{\"batch\":" + std::to_string(e.batch) + "}";
    out += "}";
  }
  return out;
}

void write_trace(Transport& t, const Tracer& tracer, const std::string& path) {
  constexpr int kTagTrace = 90;
  const std::string mine = tracer.events_json(t.rank());
  if (t.rank() != 0) {
    auto size = torch::full({1}, int64_t(mine.size()), torch::kInt64);
    t.isend(size, 0, kTagTrace, "trace size")->wait();
    if (!mine.empty()) {
      auto bytes = torch::from_blob(const_cast<char*>(mine.data()), {int64_t(mine.size())}, torch::kUInt8);
      t.isend(bytes, 0, kTagTrace, "trace events")->wait();
    }
    return;
  }
  std::vector<std::string> rows{mine};  // every rank's events first, so that no rank waits on a failure here
  for (int r = 1; r < t.size(); ++r) {
    auto size = torch::empty({1}, torch::kInt64);
    t.irecv(size, r, kTagTrace, "trace size")->wait();
    std::string events(size_t(host_control_value(size)), '\0');
    if (!events.empty()) {
      auto bytes = torch::from_blob(events.data(), {int64_t(events.size())}, torch::kUInt8);
      t.irecv(bytes, r, kTagTrace, "trace events")->wait();
    }
    rows.push_back(std::move(events));
  }
  std::ofstream out(path);
  if (!out) throw RuntimeError(path + ": cannot write the trace");
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  for (int r = 0; r < t.size(); ++r) {
    const std::string& events = rows[size_t(r)];
    out << (r ? ",\n" : "") << "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" << r
        << ",\"args\":{\"name\":\"rank " << r << "\"}},\n"
        << "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":" << r << ",\"args\":{\"sort_index\":" << r << "}}";
    if (!events.empty()) out << ",\n" << events;
  }
  out << "\n]}\n";
  if (!out) throw RuntimeError(path + ": writing the trace failed");
}

}  // namespace bll

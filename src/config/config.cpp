#include "bll/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "bll/error.h"

namespace bll {
namespace {

std::string type_name(const KeySpec& k) {
  switch (k.type) {
    case KeyType::Int: return "an integer";
    case KeyType::Float: return "a number";
    case KeyType::Bool: return "true or false";
    case KeyType::String: return "a string";
    case KeyType::IntList: return "a list of integers";
  }
  return "?";
}

std::string fmt_num(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

std::string expectation(const KeySpec& k) {
  std::string e = type_name(k);
  if (k.type == KeyType::IntList) {
    if (k.min > -1e299 && k.max < 1e299) e += " in [" + fmt_num(k.min) + ", " + fmt_num(k.max) + "]";
    for (const auto& word : k.choices) e += ", or " + word;
    return e;
  }
  if (!k.choices.empty()) {
    e = "one of";
    for (size_t i = 0; i < k.choices.size(); ++i) e += (i ? ", " : " ") + k.choices[i];
  }
  const bool lo = k.min > -1e299, hi = k.max < 1e299;
  if (lo && hi) e += " in [" + fmt_num(k.min) + ", " + fmt_num(k.max) + "]";
  else if (lo) e += " >= " + fmt_num(k.min);
  return e;
}

std::string describe(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

[[noreturn]] void fail(const std::string& where, const KeySpec& k, const YAML::Node& got) {
  throw ConfigError(where + ": key '" + k.name + "': expected " + expectation(k) + ", got " + describe(got));
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    long long v = std::stoll(s, &pos, 10);
    if (pos != s.size()) return false;
    out = v;
    return true;
  } catch (...) {
    return false;
  }
}

bool parse_float(const std::string& s, double& out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    double v = std::stod(s, &pos);
    if (pos != s.size() || !std::isfinite(v)) return false;
    out = v;
    return true;
  } catch (...) {
    return false;
  }
}

Value convert(const KeySpec& k, const YAML::Node& n, const std::string& where) {
  Value v;
  auto in_range = [&](double x) { return x >= k.min && x <= k.max; };
  switch (k.type) {
    case KeyType::Int:
      if (!n.IsScalar() || !parse_int(n.Scalar(), v.i) || !in_range(double(v.i))) fail(where, k, n);
      break;
    case KeyType::Float:
      if (!n.IsScalar() || !parse_float(n.Scalar(), v.f) || !in_range(v.f)) fail(where, k, n);
      break;
    case KeyType::Bool: {
      if (!n.IsScalar()) fail(where, k, n);
      const std::string& s = n.Scalar();
      if (s == "true" || s == "True" || s == "yes" || s == "on") v.b = true;
      else if (s == "false" || s == "False" || s == "no" || s == "off") v.b = false;
      else fail(where, k, n);
      break;
    }
    case KeyType::String:
      if (!n.IsScalar() && !n.IsNull()) fail(where, k, n);
      v.s = n.IsNull() ? "" : n.Scalar();
      if (!k.choices.empty() && std::find(k.choices.begin(), k.choices.end(), v.s) == k.choices.end())
        fail(where, k, n);
      break;
    case KeyType::IntList:
      if (n.IsScalar() && std::find(k.choices.begin(), k.choices.end(), n.Scalar()) != k.choices.end()) {
        v.s = n.Scalar();  // a word the key takes instead of a list
        break;
      }
      if (!n.IsSequence()) fail(where, k, n);
      for (const auto& e : n) {
        int64_t x;
        if (!e.IsScalar() || !parse_int(e.Scalar(), x) || !in_range(double(x))) fail(where, k, n);
        v.list.push_back(x);
      }
      break;
  }
  return v;
}

const KeySpec* find_key(const std::string& name) {
  for (const auto& k : config_schema())
    if (k.name == name) return &k;
  return nullptr;
}

[[noreturn]] void unknown_key(const std::string& where, const std::string& name) {
  const KeySpec* best = nullptr;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& k : config_schema()) {
    size_t d = edit_distance(name, k.name);
    // Also match a right key put in the wrong section, e.g. "train.lr" -> "optim.lr".
    auto leaf = [](const std::string& s) { return s.substr(s.find('.') + 1); };
    if (leaf(name) == leaf(k.name)) d = std::min<size_t>(d, 1);
    if (d < best_d) { best_d = d; best = &k; }
  }
  std::string msg = where + ": unknown key '" + name + "'";
  if (best && best_d <= std::max<size_t>(3, name.size() / 3)) msg += " (did you mean '" + best->name + "'?)";
  else msg += " (bll-train --help lists the keys)";
  throw ConfigError(msg);
}

using Entries = std::map<std::string, std::pair<YAML::Node, std::string>>;  // key -> (node, where)

// "file:line" of a node, for messages.
std::string at(const std::string& source, const YAML::Node& node) {
  const int line = node.Mark().line;
  return line >= 0 ? source + ":" + std::to_string(line + 1) : source;
}

void collect_file(const YAML::Node& root, const std::string& source, Entries& out) {
  if (!root || root.IsNull()) return;
  if (!root.IsMap()) throw ConfigError(source + ": expected a mapping of sections (data:, model:, ...) at the top level");
  auto name_of = [&](const YAML::Node& key) {  // a key is a plain name, never a list or a mapping
    if (!key.IsScalar()) throw ConfigError(at(source, key) + ": a key must be a plain name, not a list or a mapping");
    return key.as<std::string>();
  };
  // yaml-cpp keeps a key that appears twice; each would silently win over or lose to the other.
  std::map<std::string, std::string> seen;  // section or key -> where it first appeared
  auto once = [&](const YAML::Node& key, const std::string& name, const char* what) {
    const auto [first, fresh] = seen.emplace(name, at(source, key));
    if (!fresh)
      throw ConfigError(at(source, key) + ": " + what + " '" + name + "' appears twice (first at " + first->second +
                        "); write it once");
  };
  for (const auto& sec : root) {
    const std::string section = name_of(sec.first);
    once(sec.first, section, "section");
    if (!sec.second.IsMap()) {
      bool is_section = false;
      for (const auto& k : config_schema()) is_section |= k.name.rfind(section + ".", 0) == 0;
      if (!is_section) unknown_key(at(source, sec.first), section);
      throw ConfigError(at(source, sec.first) + ": section '" + section + "' must be a mapping of keys");
    }
    for (const auto& kv : sec.second) {
      const std::string name = section + "." + name_of(kv.first);
      if (!find_key(name)) unknown_key(at(source, kv.first), name);
      once(kv.first, name, "key");
      out[name] = {kv.second, at(source, kv.second)};
    }
  }
}

void collect_override(const std::string& text, Entries& out) {
  const std::string where = "command line";
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(where + ": override '" + text + "' is not of the form section.key=value");
  const std::string name = text.substr(0, eq);
  if (!find_key(name)) unknown_key(where, name);
  YAML::Node node;
  try {
    node = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(where + ": key '" + name + "': cannot parse value '" + text.substr(eq + 1) + "'");
  }
  out[name] = {node, where};
}

Config resolve(const Entries& entries, const std::string& source) {
  Config c;
  c.source = source;
  for (const auto& k : config_schema()) {
    auto it = entries.find(k.name);
    if (it != entries.end()) {
      k.assign(c, convert(k, it->second.first, it->second.second));
    } else if (k.required) {
      throw ConfigError(source + ": missing required key '" + k.name + "' (" + k.help + ")");
    } else {
      k.assign(c, convert(k, YAML::Load(k.default_yaml), "default of " + k.name));
    }
  }
  // Cross-key rules.
  if (c.data.task == "autoencode" && (c.data.dataset == "reversal" || c.data.dataset == "cifar10"))
    throw ConfigError(source + ": key 'data.task': autoencode needs grey 28x28 images (mnist or fashion-mnist), not " +
                      c.data.dataset);
  if (c.data.task == "autoencode" && c.loss.feedback != "gradient")
    throw ConfigError(source + ": key 'loss.feedback': data.task autoencode has image targets, not classes; use "
                      "loss.feedback=gradient (closed_form and twin need class labels)");
  if (c.data.dataset != "reversal" && c.data.dir.empty())
    throw ConfigError(source + ": missing required key 'data.dir' (data.dataset " + c.data.dataset +
                      " is read from files; scripts/get_data.sh " + c.data.dataset + " puts them in data/)");
  if (c.train.schedule == "auto") c.train.schedule = c.train.end_to_end() ? "gpipe" : "stream";
  if (c.train.end_to_end() == (c.train.schedule == "stream"))
    throw ConfigError(source + ": key 'train.schedule': " + c.train.schedule + " does not run train.method " +
                      c.train.method + " (bll, greedy and predsim run on stream; bp and fa on gpipe or 1f1b)");
  if (c.train.method == "predsim" && c.data.task == "autoencode")
    throw ConfigError(source + ": key 'train.method': predsim matches similarities of class labels; data.task "
                      "autoencode has image targets (use bll, bp, fa or greedy)");
  if (c.train.micro_batches > c.train.batch_size)
    throw ConfigError(source + ": key 'train.micro_batches': " + std::to_string(c.train.micro_batches) +
                      " micro-batches do not fit in a batch of " + std::to_string(c.train.batch_size));
  if (c.train.batch_size % c.runtime.replicas != 0)
    throw ConfigError(source + ": key 'runtime.replicas': " + std::to_string(c.runtime.replicas) +
                      " replicas cannot share a batch of " + std::to_string(c.train.batch_size) +
                      " equally (train.batch_size must be a multiple of runtime.replicas)");
  if (c.train.micro_batches > c.train.batch_size / c.runtime.replicas)
    throw ConfigError(source + ": key 'train.micro_batches': " + std::to_string(c.train.micro_batches) +
                      " micro-batches do not fit in a replica's share of the batch (" +
                      std::to_string(c.train.batch_size / c.runtime.replicas) + " samples)");
  if (c.runtime.overwrite && c.checkpoint.resume != "never")
    throw ConfigError(source + ": key 'runtime.overwrite': true removes the run in runtime.run_dir, checkpoints "
                      "included, while checkpoint.resume " + c.checkpoint.resume +
                      " goes on from them; choose one (overwrite=false to go on, resume=never to start over)");
  if (c.data.channels == 2)
    throw ConfigError(source + ": key 'data.channels': 2 channels is neither grey (1) nor RGB (3)");
  if (c.data.scale_min > c.data.scale_max || c.data.ratio_min > c.data.ratio_max)
    throw ConfigError(source + ": key 'data." + std::string(c.data.scale_min > c.data.scale_max ? "scale" : "ratio") +
                      "_min': larger than its _max");
  if (c.data.task == "autoencode" && (c.data.dataset == "folder" || c.data.dataset == "packed"))
    throw ConfigError(source + ": key 'data.task': autoencode needs grey 28x28 images (mnist or fashion-mnist), not " +
                      c.data.dataset);
  if (c.loss.span > c.model.blocks)
    throw ConfigError(source + ": key 'loss.span': a span of " + std::to_string(c.loss.span) +
                      " blocks is longer than the network (model.blocks " + std::to_string(c.model.blocks) + ")");
  if (c.train.end_to_end() && c.runtime.message_precision != "fp32")
    throw ConfigError(source + ": key 'runtime.message_precision': " + c.runtime.message_precision +
                      " messages are for the local methods; train.method " + c.train.method +
                      " sends activations and gradients in fp32 (set runtime.message_precision=fp32)");
  if (c.runtime.transport == "nccl" && c.runtime.device != "cuda")
    throw ConfigError(source + ": key 'runtime.transport': nccl moves GPU memory; it needs runtime.device=cuda "
                      "(runtime.device is " + c.runtime.device + ")");
  if (c.checkpoint.resume.empty())
    throw ConfigError(source + ": key 'checkpoint.resume': expected never, auto or the path of a checkpoint");
  if (!c.model.split.empty()) {
    if (int64_t(c.model.split.size()) != c.model.blocks)
      throw ConfigError(source + ": key 'model.split': has " + std::to_string(c.model.split.size()) +
                        " entries but model.blocks is " + std::to_string(c.model.blocks));
  }
  return c;
}

YAML::Node load_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  Entries entries;
  try {
    collect_file(load_yaml(yaml_text, source), source, entries);
    for (const auto& o : overrides) collect_override(o, entries);
    return resolve(entries, source);
  } catch (const YAML::Exception& e) {  // a shape of YAML the checks above did not foresee: still one line
    throw ConfigError(source + (e.mark.line >= 0 ? ":" + std::to_string(e.mark.line + 1) : "") + ": " + e.msg);
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open configuration file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

namespace {
void emit_value(YAML::Emitter& out, const KeySpec& k, const Config& config) {
  const Value v = k.read(config);
  switch (k.type) {
    case KeyType::Int: out << v.i; break;
    case KeyType::Float: out << v.f; break;
    case KeyType::Bool: out << v.b; break;
    case KeyType::String: out << YAML::DoubleQuoted << v.s; break;
    case KeyType::IntList:
      if (!v.s.empty()) out << v.s;
      else out << YAML::Flow << v.list;
      break;
  }
}
}  // namespace

std::string training_difference(const Config& a, const Config& b) {
  for (const auto& k : config_schema()) {
    if (k.free_on_resume) continue;
    YAML::Emitter ea, eb;
    emit_value(ea, k, a);
    emit_value(eb, k, b);
    if (std::string(ea.c_str()) != eb.c_str())
      return "key '" + k.name + "': " + ea.c_str() + " vs " + eb.c_str();
  }
  return "";
}

std::string config_to_yaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const auto& k : config_schema()) {
    const std::string sec = k.name.substr(0, k.name.find('.'));
    const std::string key = k.name.substr(k.name.find('.') + 1);
    if (sec != section) {
      if (!section.empty()) out << YAML::EndMap;
      out << YAML::Key << sec << YAML::Value << YAML::BeginMap;
      section = sec;
    }
    out << YAML::Key << key << YAML::Value;
    emit_value(out, k, config);
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string config_help() {
  std::ostringstream s;
  std::string section;
  for (const auto& k : config_schema()) {
    const std::string sec = k.name.substr(0, k.name.find('.'));
    if (sec != section) {
      s << "\n" << sec << ":\n";
      section = sec;
    }
    std::string tail = k.required ? "required" : "default " + (k.default_yaml.empty() ? std::string("\"\"") : k.default_yaml);
    s << "  " << k.name;
    for (size_t pad = k.name.size(); pad < 22; ++pad) s << ' ';
    s << "  " << k.help << "\n";
    for (size_t pad = 0; pad < 26; ++pad) s << ' ';
    s << "(" << expectation(k) << "; " << tail << (k.free_on_resume ? "; a resume may change it" : "") << ")\n";
  }
  return s.str();
}

}  // namespace bll

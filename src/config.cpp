#include "bll/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "bll/error.h"
#include "bll/losses/family.h"
#include "bll/models/model.h"

namespace bll {
namespace {

// ---- the table --------------------------------------------------------------------------------

template <class T> struct TypeOf;
template <> struct TypeOf<int64_t> { static constexpr KeyType v = KeyType::Int; };
template <> struct TypeOf<double> { static constexpr KeyType v = KeyType::Float; };
template <> struct TypeOf<bool> { static constexpr KeyType v = KeyType::Bool; };
template <> struct TypeOf<std::string> { static constexpr KeyType v = KeyType::String; };
template <> struct TypeOf<std::vector<int64_t>> { static constexpr KeyType v = KeyType::IntList; };

void store(int64_t& out, const Value& v) { out = v.i; }
void store(double& out, const Value& v) { out = v.f; }
void store(bool& out, const Value& v) { out = v.b; }
void store(std::string& out, const Value& v) { out = v.s; }
void store(std::vector<int64_t>& out, const Value& v) { out = v.list; }
Value load(int64_t x) { Value v; v.i = x; return v; }
Value load(double x) { Value v; v.f = x; return v; }
Value load(bool x) { Value v; v.b = x; return v; }
Value load(const std::string& x) { Value v; v.s = x; return v; }
Value load(const std::vector<int64_t>& x) { Value v; v.list = x; return v; }

struct Opt {  // optional parts of a row
  double min = -1e300, max = 1e300;
  std::vector<std::string> choices;
  bool required = false;
};

template <class S, class T>
KeySpec row(const char* name, S Config::*section, T S::*field, const char* default_yaml,
            const char* help, Opt opt = {}) {
  KeySpec k;
  k.name = name;
  k.type = TypeOf<T>::v;
  k.default_yaml = default_yaml;
  k.required = opt.required;
  k.min = opt.min;
  k.max = opt.max;
  k.choices = opt.choices;
  k.help = help;
  k.assign = [section, field](Config& c, const Value& v) { store(c.*section.*field, v); };
  k.read = [section, field](const Config& c) { return load(c.*section.*field); };
  return k;
}

Opt range(double lo, double hi) { Opt o; o.min = lo; o.max = hi; return o; }
Opt one_of(std::vector<std::string> c) { Opt o; o.choices = std::move(c); return o; }
Opt required_one_of(std::vector<std::string> c) { Opt o = one_of(std::move(c)); o.required = true; return o; }
Opt required_range(double lo, double hi) { Opt o = range(lo, hi); o.required = true; return o; }
constexpr double kBig = 9.0e15;  // integers beyond this are not meaningful here

std::vector<KeySpec> make_schema() {
  using C = Config;
  return {
    row("data.dataset", &C::data, &DataConfig::dataset, "",
        "data set: fashion-mnist, mnist, cifar10, or reversal (the sequence task, generated from train.seed)",
        required_one_of({"fashion-mnist", "mnist", "cifar10", "reversal"})),
    row("data.dir", &C::data, &DataConfig::dir, "",
        "folder with the data set's files, relative to the working directory (scripts/get_data.sh fills data/); required but for reversal"),
    row("data.normalize", &C::data, &DataConfig::normalize, "true", "standardize each channel with train-set mean and std"),
    row("data.hflip", &C::data, &DataConfig::hflip, "false", "random horizontal flip of training images"),
    row("data.crop_padding", &C::data, &DataConfig::crop_padding, "0", "random crop after zero padding by this many pixels (0 = off)", range(0, 16)),
    row("data.train_limit", &C::data, &DataConfig::train_limit, "0", "use only the first N training samples (0 = all; reversal: sequences per epoch, 0 = 50000)", range(0, kBig)),
    row("data.test_limit", &C::data, &DataConfig::test_limit, "0", "use only the first N test samples (0 = all; reversal: held-out sequences, 0 = 10000)", range(0, kBig)),

    row("model.type", &C::model, &ModelConfig::type, "", "network, one file each in src/models/",
        required_one_of(model_types())),
    row("model.widths", &C::model, &ModelConfig::widths, "[]", "cnn: channels of each stage; mlp: size of each hidden layer",
        range(1, 1 << 16)),
    row("model.width", &C::model, &ModelConfig::width, "64", "resnet: channels of the first stage (64 is the standard network); transformer: model dimension",
        range(1, 1 << 12)),
    row("model.layers", &C::model, &ModelConfig::layers, "0",
        "transformer: number of layers, one attention head each (0 = model.blocks: one layer per block)", range(0, 1024)),
    row("model.convs_per_stage", &C::model, &ModelConfig::convs_per_stage, "1", "cnn: conv-bn-relu layers per stage", range(1, 16)),
    row("model.head_hidden", &C::model, &ModelConfig::head_hidden, "0", "hidden units of the classifier head (0 = linear head)", range(0, 1 << 16)),
    row("model.blocks", &C::model, &ModelConfig::blocks, "", "N: number of blocks the network is split into", required_range(1, 1024)),
    row("model.split", &C::model, &ModelConfig::split, "[]",
        "units per block, e.g. [1,1,2]; empty = cut at units so that blocks hold equal shares of the layers", range(1, 1024)),

    row("loss.family", &C::loss, &LossConfig::family, "gaussian",
        "exponential family of the messages alpha_k, beta_k, one file each in src/losses/",
        one_of(family_names())),
    row("loss.kl_weight", &C::loss, &LossConfig::kl_weight, "1.0", "weight of the variational term D_KL(rho_k || alpha_k)", range(0, 1e6)),
    row("loss.pred_weight", &C::loss, &LossConfig::pred_weight, "1.0", "weight of the local predictive cross-entropy", range(0, 1e6)),
    row("loss.sigma", &C::loss, &LossConfig::sigma, "1.0", "gaussian: standard deviation of the messages", range(1e-6, 1e6)),
    row("loss.mixing", &C::loss, &LossConfig::mixing, "schedule",
        "posterior rho ~ alpha * beta^m: schedule (m = 1/(1+tau*epoch)) or constant (m = loss.mixing_m)",
        one_of({"schedule", "constant"})),
    row("loss.tau", &C::loss, &LossConfig::tau, "0.5", "annealing rate of the mixing schedule", range(0, 1e6)),
    row("loss.mixing_m", &C::loss, &LossConfig::mixing_m, "0.5", "m when loss.mixing is constant (1 = the full product alpha*beta)",
        range(0, 1)),
    row("loss.feedback", &C::loss, &LossConfig::feedback, "closed_form",
        "feedback g_k: closed_form (least squares on each batch) or gradient (trained by the optimizer)",
        one_of({"closed_form", "gradient"})),
    row("loss.feedback_momentum", &C::loss, &LossConfig::feedback_momentum, "0.0",
        "closed_form: weight of the previous solution, per class (0 = this batch only)", range(0, 0.9999)),
    row("loss.forward_posterior", &C::loss, &LossConfig::forward_posterior, "false",
        "training passes the posterior rho_k to the next block instead of alpha_k (evaluation always passes alpha_k)"),
    row("loss.span", &C::loss, &LossConfig::span, "1",
        "BLL(x): gradients flow across x consecutive blocks before they stop (1 = plain BLL); a span stays on one rank",
        range(1, 1024)),
    row("loss.readout_pool", &C::loss, &LossConfig::readout_pool, "2", "local readout sees alpha average-pooled to PxP", range(1, 64)),

    row("optim.name", &C::optim, &OptimConfig::name, "adam", "optimizer of every block: sgd (with momentum) or adam", one_of({"sgd", "adam"})),
    row("optim.lr", &C::optim, &OptimConfig::lr, "0.001", "learning rate", range(1e-12, 100)),
    row("optim.momentum", &C::optim, &OptimConfig::momentum, "0.9", "sgd momentum", range(0, 1)),
    row("optim.weight_decay", &C::optim, &OptimConfig::weight_decay, "0.0", "L2 weight decay", range(0, 1)),
    row("optim.schedule", &C::optim, &OptimConfig::schedule, "constant", "learning-rate schedule: constant or cosine (annealing per epoch)",
        one_of({"constant", "cosine"})),
    row("optim.t_max", &C::optim, &OptimConfig::t_max, "0", "cosine period in epochs (0 = train.epochs)", range(0, 1e6)),
    row("optim.lr_min", &C::optim, &OptimConfig::lr_min, "0.0", "cosine floor of the learning rate", range(0, 100)),

    row("train.epochs", &C::train, &TrainConfig::epochs, "", "training epochs", required_range(1, 1e6)),
    row("train.batch_size", &C::train, &TrainConfig::batch_size, "128", "samples per batch", range(1, 1 << 20)),
    row("train.seed", &C::train, &TrainConfig::seed, "0", "seed of initialization, shuffling and augmentation", range(0, kBig)),
    row("train.in_flight", &C::train, &TrainConfig::in_flight, "2", "batches a rank may run ahead of the next rank", range(1, 1024)),

    row("runtime.run_dir", &C::runtime, &RuntimeConfig::run_dir, "", "run directory, relative to the working directory (default: runs/<config file name>)"),
    row("runtime.threads", &C::runtime, &RuntimeConfig::threads, "0", "intra-op threads per rank (0 = node cores / ranks on the node)", range(0, 4096)),
    row("runtime.progress", &C::runtime, &RuntimeConfig::progress, "auto", "progress bar on rank 0: auto (when stdout is a terminal), on, off",
        one_of({"auto", "on", "off"})),
    row("runtime.wait", &C::runtime, &RuntimeConfig::wait, "sleep",
        "waiting for a message: sleep (back off; right when ranks share cores) or spin (busy-poll)",
        one_of({"sleep", "spin"})),
    row("runtime.timeout_s", &C::runtime, &RuntimeConfig::timeout_s, "600",
        "a wait for a message longer than this stops the job with an error", range(0.1, 1e7)),
    row("runtime.keep_freed_memory", &C::runtime, &RuntimeConfig::keep_freed_memory, "true",
        "keep freed heap memory for reuse instead of returning it to the kernel (glibc malloc)"),
    row("runtime.blocks_per_rank", &C::runtime, &RuntimeConfig::blocks_per_rank, "[]",
        "blocks owned by each rank, in order, e.g. [1,3]; empty = as even as possible (earlier ranks take extras)",
        range(1, 1024)),
    row("runtime.save_params", &C::runtime, &RuntimeConfig::save_params, "true", "save each block's parameters in the run directory at the end"),
  };
}

// ---- parsing ---------------------------------------------------------------------------------

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
  for (const auto& sec : root) {
    const std::string section = sec.first.as<std::string>();
    if (!sec.second.IsMap()) {
      bool is_section = false;
      for (const auto& k : config_schema()) is_section |= k.name.rfind(section + ".", 0) == 0;
      if (!is_section) unknown_key(at(source, sec.first), section);
      throw ConfigError(at(source, sec.first) + ": section '" + section + "' must be a mapping of keys");
    }
    for (const auto& kv : sec.second) {
      const std::string name = section + "." + kv.first.as<std::string>();
      if (!find_key(name)) unknown_key(at(source, kv.first), name);
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
  if (c.data.dataset != "reversal" && c.data.dir.empty())
    throw ConfigError(source + ": missing required key 'data.dir' (data.dataset " + c.data.dataset +
                      " is read from files; scripts/get_data.sh " + c.data.dataset + " puts them in data/)");
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

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = make_schema();
  return schema;
}

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
  collect_file(load_yaml(yaml_text, source), source, entries);
  for (const auto& o : overrides) collect_override(o, entries);
  return resolve(entries, source);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open configuration file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
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
    const Value v = k.read(config);
    out << YAML::Key << key << YAML::Value;
    switch (k.type) {
      case KeyType::Int: out << v.i; break;
      case KeyType::Float: out << v.f; break;
      case KeyType::Bool: out << v.b; break;
      case KeyType::String: out << YAML::DoubleQuoted << v.s; break;
      case KeyType::IntList: out << YAML::Flow << v.list; break;
    }
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
    s << "(" << expectation(k) << "; " << tail << ")\n";
  }
  return s.str();
}

}  // namespace bll

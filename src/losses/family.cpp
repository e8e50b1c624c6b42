// The family registry and the code path every family shares.
#include <functional>
#include <map>

#include "bll/error.h"
#include "bll/losses/family.h"
#include "families.h"

namespace bll {
namespace {

using Factory = std::function<std::unique_ptr<Family>(const LossConfig&)>;

// One line per family.
const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> r{
      {"gaussian", [](const LossConfig& c) { return losses::gaussian(c.sigma); }},
      {"bernoulli", [](const LossConfig&) { return losses::bernoulli(); }},
      {"poisson", [](const LossConfig&) { return losses::poisson(); }},
  };
  return r;
}

}  // namespace

const std::vector<std::string>& family_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, factory] : registry()) n.push_back(name);
    return n;
  }();
  return names;
}

std::unique_ptr<Family> make_family(const LossConfig& c) {
  const auto it = registry().find(c.family);
  if (it == registry().end()) throw ConfigError("loss.family '" + c.family + "' is not a known family");
  return it->second(c);
}

torch::Tensor kl_divergence(const Family& f, const torch::Tensor& gamma, const torch::Tensor& phi) {
  return (f.mean_statistics(gamma) * (gamma - phi)).sum(-1) - f.log_partition(gamma) + f.log_partition(phi);
}

Family::Posterior Family::posterior(const torch::Tensor& a, const torch::Tensor& b, double m) const {
  const auto gamma = posterior_natural(*this, a, b, m);
  return {parameter(gamma), kl_divergence(*this, gamma, natural(a))};
}

torch::Tensor posterior_natural(const Family& f, const torch::Tensor& a, const torch::Tensor& b, double m) {
  return f.natural(a) + f.natural(b) * m;
}

}  // namespace bll

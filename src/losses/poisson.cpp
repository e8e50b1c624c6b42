// Poisson messages (supplement §1.3.3): a block outputs log-rates, T(z) = z,
// A(eta) = e^eta, mu = Var = e^eta.
#include "families.h"

namespace bll::losses {
namespace {

class Poisson : public Family {
 public:
  std::string name() const override { return "poisson"; }
  int64_t stats() const override { return 1; }
  torch::Tensor natural(const torch::Tensor& x) const override { return x.unsqueeze(-1); }
  torch::Tensor parameter(const torch::Tensor& eta) const override { return eta.squeeze(-1); }
  torch::Tensor log_partition(const torch::Tensor& eta) const override { return torch::exp(eta).squeeze(-1); }
  torch::Tensor mean_statistics(const torch::Tensor& eta) const override { return torch::exp(eta); }
  torch::Tensor expectation(const torch::Tensor& x) const override { return torch::exp(x); }
  torch::Tensor from_expectation(const torch::Tensor& e) const override { return torch::log(e.clamp_min(1e-6)); }
};

}  // namespace

std::unique_ptr<Family> poisson() { return std::make_unique<Poisson>(); }

}  // namespace bll::losses

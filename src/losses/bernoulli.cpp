// Bernoulli messages (supplement §1.3.1): a block outputs log-odds, T(z) = z,
// A(eta) = log(1 + e^eta), mu = sigmoid(eta), Var = mu (1 - mu).
#include "families.h"

namespace bll::losses {
namespace {

class Bernoulli : public Family {
 public:
  std::string name() const override { return "bernoulli"; }
  int64_t stats() const override { return 1; }
  torch::Tensor natural(const torch::Tensor& x) const override { return x.unsqueeze(-1); }
  torch::Tensor parameter(const torch::Tensor& eta) const override { return eta.squeeze(-1); }
  torch::Tensor log_partition(const torch::Tensor& eta) const override { return torch::softplus(eta).squeeze(-1); }
  torch::Tensor mean_statistics(const torch::Tensor& eta) const override { return torch::sigmoid(eta); }
  torch::Tensor expectation(const torch::Tensor& x) const override { return torch::sigmoid(x); }
  torch::Tensor from_expectation(const torch::Tensor& e) const override { return torch::logit(e, 1e-6); }
};

}  // namespace

std::unique_ptr<Family> bernoulli() { return std::make_unique<Bernoulli>(); }

}  // namespace bll::losses

// Gaussian messages with known variance sigma^2: a block outputs the mean. Natural parameters
// are those of the two-parameter family, T(z) = (z, z^2):
//   eta = (mean / sigma^2, -1 / (2 sigma^2)),   A(eta) = -eta1^2 / (4 eta2) - log(-2 eta2) / 2.
// Keeping the second component is what makes the ansatz gamma = phi + m·b a product of Gaussians:
// rho = alpha · beta^m has mean (a + m b) / (1 + m) and variance sigma^2 / (1 + m), so m = 1
// gives the paper's rho = (alpha + beta) / 2 (docs/algorithm.md).
#include <cmath>

#include "families.h"

namespace bll::losses {
namespace {

class Gaussian : public Family {
 public:
  explicit Gaussian(double sigma) : var_(sigma * sigma) {}
  std::string name() const override { return "gaussian"; }
  int64_t stats() const override { return 2; }

  torch::Tensor natural(const torch::Tensor& x) const override {
    return torch::stack({x / var_, torch::full_like(x, -0.5 / var_)}, -1);
  }
  torch::Tensor parameter(const torch::Tensor& eta) const override {
    return -eta.select(-1, 0) / (2 * eta.select(-1, 1));
  }
  torch::Tensor log_partition(const torch::Tensor& eta) const override {
    const auto e1 = eta.select(-1, 0), e2 = eta.select(-1, 1);
    return -e1.pow(2) / (4 * e2) - 0.5 * torch::log(-2 * e2);
  }
  torch::Tensor mean_statistics(const torch::Tensor& eta) const override {
    const auto e1 = eta.select(-1, 0), e2 = eta.select(-1, 1);
    const auto mean = -e1 / (2 * e2);
    return torch::stack({mean, mean.pow(2) - 1 / (2 * e2)}, -1);
  }
  torch::Tensor expectation(const torch::Tensor& x) const override { return x; }
  torch::Tensor from_expectation(const torch::Tensor& e) const override { return e; }

  // rho = N((a + m b) / (1 + m), sigma^2 / (1 + m)), and against alpha = N(a, sigma^2)
  //   D_KL = (log(1 + m) + 1 / (1 + m) - 1) / 2 + (m / (1 + m))^2 (b - a)^2 / (2 sigma^2)
  // (gaussian_kl of local_loss.h with these moments): the shared path's value in four operations.
  Posterior posterior(const torch::Tensor& a, const torch::Tensor& b, double m) const override {
    const double w = m / (1 + m), constant = 0.5 * (std::log1p(m) + 1 / (1 + m) - 1);
    const auto shift = (b - a) * w;  // rho's mean minus a
    return {a + shift, shift.square().mul(0.5 / var_).add(constant)};
  }

 private:
  double var_;
};

}  // namespace

std::unique_ptr<Family> gaussian(double sigma) { return std::make_unique<Gaussian>(sigma); }

}  // namespace bll::losses

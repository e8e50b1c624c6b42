// Exponential-family messages (supplement §1.3). A block's output and a feedback message are
// read as the parameters of channel-wise independent distributions of one family:
//   p(z) = h(z) exp(T(z)·eta - A(eta))
// with sufficient statistics T, natural parameters eta and log-partition function A. A family
// is defined by A and its gradient mu = dA/deta (the mean of T); one code path (kl_divergence,
// posterior) serves every family. One file per family in src/losses/, one line in the registry.
//
// Tensors of natural parameters have a trailing dimension of size stats() (the length of T).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "bll/config.h"

namespace bll {

class Family {
 public:
  virtual ~Family() = default;
  virtual std::string name() const = 0;
  virtual int64_t stats() const = 0;

  // Natural parameters [..., S] of the message whose parameter (the number a block outputs) is x.
  virtual torch::Tensor natural(const torch::Tensor& x) const = 0;
  // The message parameter of natural parameters eta [..., S] (inverse of natural()).
  virtual torch::Tensor parameter(const torch::Tensor& eta) const = 0;
  // A(eta) -> [...].
  virtual torch::Tensor log_partition(const torch::Tensor& eta) const = 0;
  // mu(eta) = E[T(z)] = dA/deta -> [..., S].
  virtual torch::Tensor mean_statistics(const torch::Tensor& eta) const = 0;
  // E[z] of the message with parameter x, and back: the closed-form feedback matches these moments.
  virtual torch::Tensor expectation(const torch::Tensor& x) const = 0;
  virtual torch::Tensor from_expectation(const torch::Tensor& e) const = 0;

  // The posterior rho ∝ alpha · beta^m of forward messages a and feedback messages b [..., C]:
  // its message parameter and D_KL(rho || alpha) per element. The default takes the shared path
  // (posterior_natural, kl_divergence); a family may give the same in closed form with fewer
  // operations, which a step pays for in every block.
  struct Posterior {
    torch::Tensor parameter, kl;
  };
  virtual Posterior posterior(const torch::Tensor& a, const torch::Tensor& b, double m) const;
};

// The family of loss.family (gaussian uses loss.sigma).
std::unique_ptr<Family> make_family(const LossConfig& config);
const std::vector<std::string>& family_names();

// D_KL(rho || alpha) per element for natural parameters gamma (rho) and phi (alpha):
//   sum_s mu(gamma)_s (gamma_s - phi_s) - A(gamma) + A(phi)        -> [...]
torch::Tensor kl_divergence(const Family& f, const torch::Tensor& gamma, const torch::Tensor& phi);

// The supplement's ansatz for the posterior rho ∝ alpha · beta^m in natural parameters:
//   gamma = natural(a) + m · natural(b)
// for forward message a and feedback message b; m = 1 is the full product alpha·beta, m -> 0
// gives rho = alpha.
torch::Tensor posterior_natural(const Family& f, const torch::Tensor& a, const torch::Tensor& b, double m);

}  // namespace bll

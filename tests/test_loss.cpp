#include <catch2/catch.hpp>

#include <cmath>

#include "bll/loss.h"
#include "bll/optim.h"

using namespace bll;

namespace {
LossConfig loss_config(double kl_w = 1.0, double pred_w = 1.0, double sigma = 1.0) {
  LossConfig c;
  c.kl_weight = kl_w, c.pred_weight = pred_w, c.sigma = sigma, c.mixing = "schedule", c.tau = 0.5;
  return c;
}

// KL(q || p) by numerical integration over z, for scalar Gaussians.
double kl_numeric(double mq, double vq, double mp, double vp) {
  auto logpdf = [](double z, double m, double v) { return -0.5 * std::log(2 * M_PI * v) - (z - m) * (z - m) / (2 * v); };
  const double sd = std::sqrt(vq), lo = mq - 12 * sd, hi = mq + 12 * sd;
  const int n = 200000;
  const double h = (hi - lo) / n;
  double s = 0;
  for (int i = 0; i <= n; ++i) {
    const double z = lo + i * h, w = (i == 0 || i == n) ? 0.5 : 1.0;
    const double lq = logpdf(z, mq, vq);
    s += w * std::exp(lq) * (lq - logpdf(z, mp, vp));
  }
  return s * h;
}
}  // namespace

TEST_CASE("general Gaussian KL matches numerical integration") {
  const double cases[][4] = {{0, 1, 0, 1}, {1, 1, 0, 1}, {0.3, 0.5, -1, 2}, {2, 3, 1, 0.7}};
  for (const auto& c : cases) {
    const auto t = [](double x) { return torch::tensor({x}, torch::kFloat64); };
    const double kl = gaussian_kl(t(c[0]), t(c[1]), t(c[2]), t(c[3])).item<double>();
    CHECK(kl == Approx(kl_numeric(c[0], c[1], c[2], c[3])).epsilon(1e-6).margin(1e-9));
  }
}

TEST_CASE("fixed-variance KL is the general KL at equal variances") {
  auto mq = torch::randn({5, 7}, torch::kFloat64), mp = torch::randn({5, 7}, torch::kFloat64);
  for (double sigma : {0.5, 1.0, 2.0}) {
    auto var = torch::full({5, 7}, sigma * sigma, torch::kFloat64);
    CHECK(torch::allclose(gaussian_kl_fixed_var(mq, mp, sigma), gaussian_kl(mq, var, mp, var), 1e-12, 1e-12));
  }
}

TEST_CASE("posterior mean is (alpha + beta)/2 at m = 1/2 and alpha at m = 0") {
  auto a = torch::randn({3, 4}), b = torch::randn({3, 4});
  CHECK(torch::allclose(posterior_mean(a, b, 0.5), (a + b) / 2));
  CHECK(torch::allclose(posterior_mean(a, b, 0.0), a));
  CHECK(torch::allclose(posterior_mean(a, b, 1.0), b));
}

TEST_CASE("mixing schedule m = 1/(1 + tau*epoch) and constant") {
  auto c = loss_config();
  CHECK(mixing_m(c, 0) == Approx(1.0));
  CHECK(mixing_m(c, 2) == Approx(0.5));
  CHECK(mixing_m(c, 6) == Approx(0.25));
  c.mixing = "constant", c.mixing_m = 0.01;
  CHECK(mixing_m(c, 0) == Approx(0.01));
  CHECK(mixing_m(c, 9) == Approx(0.01));
}

TEST_CASE("channel means pool feature maps and keep vectors") {
  auto x = torch::arange(2 * 3 * 2 * 2, torch::kFloat64).view({2, 3, 2, 2});
  auto m = channel_means(x);
  REQUIRE(m.sizes() == torch::IntArrayRef({2, 3}));
  CHECK(m[1][2].item<double>() == Approx((20 + 21 + 22 + 23) / 4.0));
  auto v = torch::randn({4, 5});
  CHECK(torch::equal(channel_means(v), v));
}

TEST_CASE("the local KL term has the closed form m^2/(2 sigma^2) * mean_b sum_j (beta - a)^2") {
  auto alpha = torch::randn({6, 4, 3, 3}, torch::kFloat64), beta = torch::randn({6, 4}, torch::kFloat64);
  auto logits = torch::randn({6, 10}, torch::kFloat64);
  auto y = torch::randint(0, 10, {6}, torch::kInt64);
  const double m = 0.4, sigma = 1.5;
  auto loss = block_local_loss(alpha, beta, logits, y, m, loss_config(2.0, 0.5, sigma));
  auto a = alpha.mean({2, 3});
  const double kl = ((beta - a).pow(2).sum(1).mean() * m * m / (2 * sigma * sigma)).item<double>();
  const double ce = torch::nn::functional::cross_entropy(logits, y).item<double>();
  CHECK(loss.kl.item<double>() == Approx(kl).epsilon(1e-12));
  CHECK(loss.pred.item<double>() == Approx(ce).epsilon(1e-12));
  CHECK(loss.total.item<double>() == Approx(2.0 * kl + 0.5 * ce).epsilon(1e-12));
}

TEST_CASE("local loss gradients match finite differences and the analytic form") {
  auto alpha = torch::randn({4, 3, 2, 2}, torch::kFloat64).requires_grad_(true);
  auto beta = torch::randn({4, 3}, torch::kFloat64).requires_grad_(true);
  auto w = torch::randn({10, 3}, torch::kFloat64).requires_grad_(true);  // readout on channel means
  auto y = torch::tensor({1, 7, 3, 1}, torch::kInt64);
  const double m = 0.7, sigma = 0.8;
  const auto cfg = loss_config(1.3, 0.6, sigma);
  auto f = [&]() { return block_local_loss(alpha, beta, channel_means(alpha).matmul(w.t()), y, m, cfg).total; };

  auto loss = f();
  loss.backward();
  for (auto* p : {&alpha, &beta, &w}) {
    auto g = p->grad().clone();
    auto flat = p->detach().view(-1);
    const double eps = 1e-6;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      torch::NoGradGuard ng;
      const double x0 = flat[i].item<double>();
      flat[i] = x0 + eps;
      const double up = f().item<double>();
      flat[i] = x0 - eps;
      const double down = f().item<double>();
      flat[i] = x0;
      CHECK(g.view(-1)[i].item<double>() == Approx((up - down) / (2 * eps)).epsilon(1e-5).margin(1e-8));
    }
  }
  // The KL part alone: dKL/dbeta = m^2 (beta - a) / (sigma^2 B).
  beta.grad().zero_();
  auto kl_only = block_local_loss(alpha, beta, channel_means(alpha).matmul(w.t()), y, m, loss_config(1.0, 0.0, sigma));
  kl_only.total.backward();
  auto a = channel_means(alpha).detach();
  auto expected = (beta.detach() - a) * (m * m / (sigma * sigma * 4));
  CHECK(torch::allclose(beta.grad(), expected, 1e-10, 1e-12));
}

TEST_CASE("learning-rate schedules") {
  OptimConfig c;
  c.lr = 0.1, c.lr_min = 0.0, c.schedule = "constant";
  CHECK(learning_rate(c, 5, 10) == Approx(0.1));
  c.schedule = "cosine";
  CHECK(learning_rate(c, 0, 10) == Approx(0.1));
  CHECK(learning_rate(c, 5, 10) == Approx(0.05));
  CHECK(learning_rate(c, 10, 10) == Approx(0.0).margin(1e-12));
  c.t_max = 4, c.lr_min = 0.02;
  CHECK(learning_rate(c, 2, 10) == Approx(0.06));
  CHECK(learning_rate(c, 8, 10) == Approx(0.02));
}

TEST_CASE("optimizers are built as configured and take the scheduled rate") {
  auto p = torch::ones({3}, torch::kFloat32).requires_grad_(true);
  OptimConfig c;
  c.name = "sgd", c.lr = 0.5, c.momentum = 0.0, c.weight_decay = 0.0;
  auto opt = make_optimizer({p}, c);
  set_learning_rate(*opt, 0.25);
  p.sum().backward();
  opt->step();
  CHECK(torch::allclose(p.detach(), torch::full({3}, 0.75f)));
  c.name = "adam";
  auto adam = make_optimizer({p}, c);
  CHECK(dynamic_cast<torch::optim::Adam*>(adam.get()) != nullptr);
}

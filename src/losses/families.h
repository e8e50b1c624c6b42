// The families, one file each. Internal to src/losses/; use make_family().
#pragma once

#include <memory>

#include "bll/losses/family.h"

namespace bll::losses {

std::unique_ptr<Family> gaussian(double sigma);
std::unique_ptr<Family> bernoulli();
std::unique_ptr<Family> poisson();

}  // namespace bll::losses

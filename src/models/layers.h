// Pieces that several model families share. Internal to src/models/.
#pragma once

#include <torch/torch.h>

#include <string>

#include "bll/models/layers.h"
#include "bll/models/model.h"

namespace bll::models {

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}


// The classifier head: flatten, optional hidden layer with ReLU, linear to the classes.
UnitPlan dense_head(const Shape& in, int64_t hidden, int64_t num_classes);

// Throws ConfigError unless model.widths names at least one layer or stage.
void require_widths(const std::string& type, const std::vector<int64_t>& widths);

// Throws ConfigError unless the input is an image {C, H, W} of at least `min_side` pixels.
void require_image(const std::string& type, const Shape& in, int64_t min_side);

}  // namespace bll::models

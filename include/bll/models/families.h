// The model families, one file each in src/models/. Each returns the plan of its units; the
// registry (src/models/registry.cpp) maps model.type to one of these. Shared layer helpers live
// in src/models/layers.h.
#pragma once

#include "bll/models/model.h"

namespace bll::models {

ModelPlan mlp(const ModelConfig& model, const Shape& input, int64_t num_classes);
ModelPlan cnn(const ModelConfig& model, const Shape& input, int64_t num_classes);
ModelPlan resnet18(const ModelConfig& model, const Shape& input, int64_t num_classes);
ModelPlan resnet50(const ModelConfig& model, const Shape& input, int64_t num_classes);
ModelPlan autoencoder(const ModelConfig& model, const Shape& input, int64_t num_classes);
ModelPlan transformer(const ModelConfig& model, const Shape& input, int64_t num_classes);

}  // namespace bll::models

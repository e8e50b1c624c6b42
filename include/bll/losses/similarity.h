// The local losses of the baselines that learn block by block without feedback (train.method
// greedy and predsim). Pred-Sim (Nøkland and Eidnes, 2019) adds to a block's readout
// cross-entropy a similarity-matching loss: the batch's pairwise similarities in the block's
// output should be those of its labels.
#pragma once

#include <torch/torch.h>

namespace bll {

// Cosine similarities between the samples of a batch, after centring each feature over the
// batch: x [B, ...] -> [B, B]. A sample whose centred features are all zero has similarity 0.
torch::Tensor similarity_matrix(const torch::Tensor& x);

// mean over the B x B entries of (S(h) - S(one-hot y))^2, with S = similarity_matrix.
torch::Tensor similarity_matching_loss(const torch::Tensor& h, const torch::Tensor& y, int64_t num_classes);

}  // namespace bll

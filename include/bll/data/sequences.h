// The sequence task of the paper (Fig. 3C): a random permutation of 0..9 is the input and the
// same permutation in reverse order the target, token by token. Generated from the seed; no files.
#pragma once

#include <cstdint>

#include "bll/data/dataset.h"

namespace bll {

constexpr int64_t kReversalLength = 10;  // tokens per sequence, and the size of the alphabet

// n_train training and n_test test sequences: inputs uint8 [N, 10], labels int64 [N, 10] (the
// reversed input). The test set holds distinct permutations and no training sequence is one of
// them. The same seed gives the same sets.
DataSplit make_reversal_task(int64_t n_train, int64_t n_test, uint64_t seed);

// Index of a permutation of 0..n-1 among all n! (its Lehmer code): the key of the overlap check.
int64_t permutation_rank(const int64_t* perm, int64_t n);

}  // namespace bll

#include "bll/data/sequences.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <unordered_set>

#include "bll/error.h"

namespace bll {
namespace {

// A uniformly random permutation of 0..n-1 (Fisher-Yates with our own draws, as the loader).
void draw_permutation(std::mt19937_64& rng, int64_t* out, int64_t n) {
  std::iota(out, out + n, int64_t(0));
  for (int64_t i = n; i > 1; --i) std::swap(out[i - 1], out[int64_t(rng() % uint64_t(i))]);
}

Dataset to_dataset(const std::vector<int64_t>& tokens, int64_t n) {
  auto x = torch::tensor(tokens, torch::kInt64).view({n, kReversalLength});
  return {x.to(torch::kUInt8), x.flip({1}).contiguous()};
}

}  // namespace

int64_t permutation_rank(const int64_t* perm, int64_t n) {
  int64_t rank = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t smaller = 0;
    for (int64_t j = i + 1; j < n; ++j) smaller += perm[j] < perm[i];
    rank = rank * (n - i) + smaller;
  }
  return rank;
}

DataSplit make_reversal_task(int64_t n_train, int64_t n_test, uint64_t seed) {
  const int64_t L = kReversalLength, all = 3628800;  // 10!
  if (n_test > all / 2)
    throw DataError("data.test_limit: " + std::to_string(n_test) + " test sequences leave too few of the " +
                    std::to_string(all) + " permutations for training");
  std::mt19937_64 rng(seed * 2654435761ull + 17);
  std::unordered_set<int64_t> held_out;
  std::vector<int64_t> test(size_t(n_test * L)), train(size_t(n_train * L));
  for (int64_t i = 0; i < n_test;) {  // distinct test permutations
    draw_permutation(rng, &test[size_t(i * L)], L);
    if (held_out.insert(permutation_rank(&test[size_t(i * L)], L)).second) ++i;
  }
  for (int64_t i = 0; i < n_train;) {  // training sequences: anything but a test permutation
    draw_permutation(rng, &train[size_t(i * L)], L);
    if (!held_out.count(permutation_rank(&train[size_t(i * L)], L))) ++i;
  }
  DataSplit s;
  s.name = "reversal";
  s.num_classes = L;
  s.train = to_dataset(train, n_train);
  s.test = to_dataset(test, n_test);
  return s;
}

}  // namespace bll

// make_fixture DIR [N_TRAIN N_TEST]: writes a small learnable IDX data set (for the CLI tests).
#include <cstdio>
#include <string>

#include "fixtures.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_fixture DIR [N_TRAIN N_TEST]\n");
    return 2;
  }
  const int64_t n_train = argc > 2 ? std::stoll(argv[2]) : 512, n_test = argc > 3 ? std::stoll(argv[3]) : 256;
  bll::test::write_idx_dataset(argv[1], n_train, n_test, 11);
  return 0;
}

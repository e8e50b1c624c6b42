// make_fixture DIR [N_TRAIN N_TEST] [--cifar]: writes a small learnable data set (for the CLI
// tests): IDX files as MNIST has them, or CIFAR-10 binary batches with --cifar.
#include <cstdio>
#include <string>

#include "fixtures.h"

int main(int argc, char** argv) {
  bool cifar = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) (std::string(argv[i]) == "--cifar" ? void(cifar = true) : args.push_back(argv[i]));
  if (args.empty() || args.size() > 3) {
    std::fprintf(stderr, "usage: make_fixture DIR [N_TRAIN N_TEST] [--cifar]\n");
    return 2;
  }
  const int64_t n_train = args.size() > 1 ? std::stoll(args[1]) : 512, n_test = args.size() > 2 ? std::stoll(args[2]) : 256;
  if (cifar)
    bll::test::write_cifar_dataset(args[0], n_train, n_test, 11);
  else
    bll::test::write_idx_dataset(args[0], n_train, n_test, 11);
  return 0;
}

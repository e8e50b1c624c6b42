// make_fixture DIR [N_TRAIN N_TEST] [--cifar | --folder]: writes a small learnable data set (for
// the CLI tests): IDX files as MNIST has them, CIFAR-10 binary batches with --cifar, or an image
// folder of JPEGs and PNGs with --folder (40x40, or --side N pixels a side; --jpeg: colour JPEGs only).
#include <cstdio>
#include <string>

#include "fixtures.h"

int main(int argc, char** argv) {
  bool cifar = false, folder = false, jpeg_only = false;
  int64_t side = 40;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cifar") cifar = true;
    else if (a == "--folder") folder = true;
    else if (a == "--side" && i + 1 < argc) side = std::stoll(argv[++i]);
    else if (a == "--jpeg") jpeg_only = true;
    else args.push_back(a);
  }
  if (args.empty() || args.size() > 3) {
    std::fprintf(stderr, "usage: make_fixture DIR [N_TRAIN N_TEST] [--cifar | --folder [--side N] [--jpeg]]\n");
    return 2;
  }
  const int64_t n_train = args.size() > 1 ? std::stoll(args[1]) : 512, n_test = args.size() > 2 ? std::stoll(args[2]) : 256;
  if (folder)
    bll::test::write_image_folder(args[0], n_train, n_test, side, 11, jpeg_only);
  else if (cifar)
    bll::test::write_cifar_dataset(args[0], n_train, n_test, 11);
  else
    bll::test::write_idx_dataset(args[0], n_train, n_test, 11);
  return 0;
}

// Image files and the transforms of image training: decoding JPEG (libjpeg-turbo) and PNG
// (libpng) into 8-bit pixels, resizing with antialiasing, and the crops of ImageNet training.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace bll {

// 8-bit pixels, rows of interleaved channels (HWC).
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
};

// Decodes a JPEG or PNG file (told apart by its first bytes) into `channels` channels (1 or 3):
// grey, CMYK, palette and alpha images are converted. Throws DataError naming `path`.
Image decode_image(const std::string& path, int64_t channels);
Image decode_image_bytes(const std::vector<uint8_t>& bytes, int64_t channels, const std::string& path);

// Writes a JPEG (quality 0-100) or PNG file of `image` (1 or 3 channels): tests, bll-pack.
void write_jpeg(const std::string& path, const Image& image, int quality = 90);
void write_png(const std::string& path, const Image& image);

// The draws of one image's augmentation: SplitMix64 (Steele, Lea and Flood 2014), seeded by the
// numbers that name the image (seed, epoch, batch, row). Cheap to seed, unlike a Mersenne
// twister's 312 words, and the same on every platform.
class ImageRng {
 public:
  using result_type = uint64_t;
  explicit ImageRng(std::initializer_list<uint64_t> keys) {
    for (uint64_t k : keys) state_ = mix_bits((state_ ^ k) + 0x9e3779b97f4a7c15ull);
  }
  uint64_t operator()() { return mix(state_); }
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return ~uint64_t(0); }

 private:
  static uint64_t mix_bits(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t mix(uint64_t& s) { return mix_bits(s += 0x9e3779b97f4a7c15ull); }
  uint64_t state_ = 0x51ed2705u;
};

// A box of an image: rows [top, top + height), columns [left, left + width).
struct Box {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// The region `box` of `image` resized to height x width, bilinear with antialiasing when it
// shrinks (a triangle filter widened by the scale, as Pillow and torchvision's antialias do).
Image resize(const Image& image, const Box& box, int64_t height, int64_t width);

// Where resize_planar and write_planar put an image: the floats the network sees, one plane per
// channel (CHW), each value byte * scale[c] + shift[c], mirrored left to right with `flip`.
struct Planar {
  float* data = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool flip = false;
};

// resize() and then write_planar(), in one pass over the output and without the byte image
// between them: the same values.
void resize_planar(const Image& image, const Box& box, int64_t height, int64_t width, const Planar& out);
void write_planar(const Image& image, const Planar& out);

// torchvision's RandomResizedCrop box: an area fraction in [scale_min, scale_max] and an aspect
// ratio in [ratio_min, ratio_max] (log-uniform), ten tries, then the centre crop that fits.
Box random_resized_box(int64_t height, int64_t width, double scale_min, double scale_max, double ratio_min,
                       double ratio_max, ImageRng& rng);

// The shorter side resized to `shorter`, then the centre size x size.
Image center_crop(const Image& image, int64_t size, int64_t shorter);
// Evaluation: the shorter side resized to size / 0.875 (256 for 224), then the centre size x size.
Image resize_center_crop(const Image& image, int64_t size);
// Packing: the shorter side resized to `side`, then the centre side x side.
Image center_square(const Image& image, int64_t side);

// Mirrors the image left to right, in place.
void flip_horizontal(Image& image);

}  // namespace bll

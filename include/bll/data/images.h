// Image files and the transforms of image training: decoding JPEG (libjpeg-turbo) and PNG
// (libpng) into 8-bit pixels, resizing with antialiasing, and the crops of ImageNet training.
#pragma once

#include <cstdint>
#include <random>
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

// A box of an image: rows [top, top + height), columns [left, left + width).
struct Box {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// The region `box` of `image` resized to height x width, bilinear with antialiasing when it
// shrinks (a triangle filter widened by the scale, as Pillow and torchvision's antialias do).
Image resize(const Image& image, const Box& box, int64_t height, int64_t width);

// torchvision's RandomResizedCrop box: an area fraction in [scale_min, scale_max] and an aspect
// ratio in [ratio_min, ratio_max] (log-uniform), ten tries, then the centre crop that fits.
Box random_resized_box(int64_t height, int64_t width, double scale_min, double scale_max, double ratio_min,
                       double ratio_max, std::mt19937_64& rng);

// The shorter side resized to `shorter`, then the centre size x size.
Image center_crop(const Image& image, int64_t size, int64_t shorter);
// Evaluation: the shorter side resized to size / 0.875 (256 for 224), then the centre size x size.
Image resize_center_crop(const Image& image, int64_t size);
// Packing: the shorter side resized to `side`, then the centre side x side.
Image center_square(const Image& image, int64_t side);

// Mirrors the image left to right, in place.
void flip_horizontal(Image& image);

}  // namespace bll

// Image decoding (libjpeg-turbo, libpng), encoding for tests and tools, and resampling.
#include "bll/data/images.h"

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <type_traits>

#include "bll/error.h"

namespace bll {
namespace {

// libjpeg reports a fatal error through error_exit, which must not return: jump back to the
// caller's setjmp, which throws. Warnings (a corrupt but decodable stream) are ignored, but for
// a file cut short, whose missing rows libjpeg would fill with grey: that one fails too.
struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

void jpeg_fail(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  longjmp(e->jump, 1);
}

void jpeg_warning(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(c);
}

uint8_t luma(int r, int g, int b) { return uint8_t((r * 299 + g * 587 + b * 114 + 500) / 1000); }

// Interleaved pixels of `n` components (1 grey, 3 RGB, 4 CMYK as Adobe writes it: inverted)
// as `channels` channels.
void convert(const std::vector<uint8_t>& raw, int n, Image& out) {
  const size_t pixels = size_t(out.height * out.width);
  out.pixels.resize(pixels * size_t(out.channels));
  for (size_t p = 0; p < pixels; ++p) {
    const uint8_t* in = raw.data() + p * size_t(n);
    int r, g, b;
    if (n == 1) {
      r = g = b = in[0];
    } else if (n == 3) {
      r = in[0], g = in[1], b = in[2];
    } else {
      const int k = in[3];
      r = in[0] * k / 255, g = in[1] * k / 255, b = in[2] * k / 255;
    }
    uint8_t* o = out.pixels.data() + p * size_t(out.channels);
    if (out.channels == 1) {
      o[0] = n == 1 ? in[0] : luma(r, g, b);
    } else {
      o[0] = uint8_t(r), o[1] = uint8_t(g), o[2] = uint8_t(b);
    }
  }
}

Image decode_jpeg(const std::vector<uint8_t>& bytes, int64_t channels, const std::string& path) {
  // Everything with a destructor lives outside the setjmp region's scope: a longjmp skips none.
  jpeg_decompress_struct d;
  JpegError err;
  std::vector<uint8_t> raw;
  Image out;
  d.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  err.mgr.emit_message = jpeg_warning;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&d);
    throw DataError(path + ": not a readable JPEG (" + err.message + ")");
  }
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&d, TRUE);
  const bool cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
  // libjpeg-turbo turns grey into RGB and colour into grey itself; only CMYK is converted here.
  d.out_color_space = cmyk ? JCS_CMYK : (channels == 1 ? JCS_GRAYSCALE : JCS_RGB);
  jpeg_start_decompress(&d);
  const int n = d.output_components;
  out.height = d.output_height, out.width = d.output_width, out.channels = channels;
  std::vector<uint8_t>& into = n == channels ? out.pixels : raw;
  into.resize(size_t(d.output_width) * d.output_height * size_t(n));
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = into.data() + size_t(d.output_scanline) * d.output_width * size_t(n);
    jpeg_read_scanlines(&d, &row, 1);
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  if (n != channels) convert(raw, n, out);
  return out;
}

Image decode_png(const std::vector<uint8_t>& bytes, int64_t channels, const std::string& path) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&im, bytes.data(), bytes.size()))
    throw DataError(path + ": not a readable PNG (" + im.message + ")");
  im.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;  // alpha is composited onto black
  Image out;
  out.height = im.height, out.width = im.width, out.channels = channels;
  out.pixels.resize(PNG_IMAGE_SIZE(im));
  if (!png_image_finish_read(&im, nullptr, out.pixels.data(), 0, nullptr)) {
    const std::string why = im.message;
    png_image_free(&im);
    throw DataError(path + ": not a readable PNG (" + why + ")");
  }
  return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open image file");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// The weights of one axis of a resize: output pixel o reads input pixels first[o] ..
// first[o] + count[o] - 1 with weights w[o * taps ...]. A triangle filter whose support grows
// with the scale when shrinking (antialiasing), normalised to sum 1; the input is the range
// [offset, offset + length) of the axis.
struct Taps {
  std::vector<int64_t> first, count;
  std::vector<float> w;  // computed in double, stored as the passes use them
  int64_t taps = 0;
};

Taps taps(int64_t offset, int64_t length, int64_t out) {
  const double scale = double(length) / double(out), filter_scale = std::max(scale, 1.0), support = filter_scale;
  Taps t;
  t.taps = int64_t(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out));
  t.count.resize(size_t(out));
  t.w.assign(size_t(out * t.taps), 0.0f);
  std::vector<double> w(size_t(t.taps));
  for (int64_t o = 0; o < out; ++o) {
    const double center = double(offset) + (double(o) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(offset, int64_t(center - support + 0.5));
    const int64_t hi = std::min<int64_t>(offset + length, int64_t(center + support + 0.5));
    double total = 0;
    std::fill(w.begin(), w.end(), 0.0);
    for (int64_t x = lo; x < hi && x - lo < t.taps; ++x) {
      const double d = std::abs((double(x) + 0.5 - center) / filter_scale);
      w[size_t(x - lo)] = std::max(0.0, 1.0 - d);
      total += w[size_t(x - lo)];
    }
    t.first[size_t(o)] = lo;
    t.count[size_t(o)] = std::min(hi - lo, t.taps);
    for (int64_t k = 0; k < t.taps; ++k) t.w[size_t(o * t.taps + k)] = float(total > 0 ? w[size_t(k)] / total : w[size_t(k)]);
  }
  return t;
}

uint64_t draw(ImageRng& rng) { return rng(); }
double uniform(ImageRng& rng, double lo, double hi) {  // the same on every library
  return lo + (hi - lo) * double(draw(rng) >> 11) * 0x1.0p-53;
}
int64_t below(ImageRng& rng, int64_t n) { return int64_t(draw(rng) % uint64_t(n)); }

}  // namespace

Image decode_image_bytes(const std::vector<uint8_t>& bytes, int64_t channels, const std::string& path) {
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return decode_jpeg(bytes, channels, path);
  if (bytes.size() >= 8 && bytes[0] == 0x89 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G')
    return decode_png(bytes, channels, path);
  throw DataError(path + ": neither a JPEG nor a PNG file");
}

Image decode_image(const std::string& path, int64_t channels) { return decode_image_bytes(read_file(path), channels, path); }

void write_jpeg(const std::string& path, const Image& image, int quality) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw DataError(path + ": cannot create file");
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = JDIMENSION(image.width), c.image_height = JDIMENSION(image.height);
  c.input_components = int(image.channels);
  c.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.row(c.next_scanline));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  if (std::fclose(f) != 0) throw DataError(path + ": cannot write file");
}

void write_png(const std::string& path, const Image& image) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  im.width = png_uint_32(image.width), im.height = png_uint_32(image.height);
  im.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&im, path.c_str(), 0, image.pixels.data(), 0, nullptr))
    throw DataError(path + ": cannot write PNG (" + im.message + ")");
}

namespace {

// Scratch rows of one thread's resizes, kept between images: no allocation (and no page
// faults) per image once a thread has seen the largest box.
std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[2];
  return buffers[which];
}

// The two passes of a resize with the channel count known at compile time: across into a float
// buffer of the box's rows, then down; `emit(o, acc)` takes output row o as width * C sums,
// each + 0.5 (so that truncation rounds). Weights are non-negative and sum to 1, so a sum lies
// in [0, 255] up to rounding.
template <int C, class Emit>
void resize_passes(const Image& image, const Box& box, const Taps& across, const Taps& down, int64_t width,
                   int64_t height, Emit emit) {
  std::vector<float>& rows = scratch(0);
  rows.resize(size_t(box.height * width * C));
  const std::vector<float>&wa = across.w, &wd = down.w;
  for (int64_t y = 0; y < box.height; ++y) {
    const uint8_t* in = image.row(box.top + y);
    float* dst = rows.data() + y * width * C;
    for (int64_t o = 0; o < width; ++o) {
      const float* w = wa.data() + o * across.taps;
      const uint8_t* px = in + across.first[size_t(o)] * C;
      float acc[C] = {};
      for (int64_t k = 0, n = across.count[size_t(o)]; k < n; ++k)
        for (int ch = 0; ch < C; ++ch) acc[ch] += w[k] * float(px[k * C + ch]);
      for (int ch = 0; ch < C; ++ch) dst[o * C + ch] = acc[ch];
    }
  }
  const int64_t line = width * C;
  std::vector<float>& acc = scratch(1);
  acc.resize(size_t(line));
  for (int64_t o = 0; o < height; ++o) {  // row by row, so that the inner loops vectorize
    const float* w = wd.data() + o * down.taps;
    const float* src = rows.data() + (down.first[size_t(o)] - box.top) * line;
    std::fill(acc.begin(), acc.end(), 0.5f);
    for (int64_t k = 0, n = down.count[size_t(o)]; k < n; ++k) {
      const float wk = w[k];
      const float* in = src + k * line;
      for (int64_t i = 0; i < line; ++i) acc[size_t(i)] += wk * in[i];
    }
    emit(o, acc.data());
  }
}

inline uint8_t to_byte(float v) { return uint8_t(std::min(255.0f, v)); }

template <class Run>
void by_channels(int64_t channels, Run run) {
  if (channels == 3) run(std::integral_constant<int, 3>{});
  else if (channels == 1) run(std::integral_constant<int, 1>{});
  else throw DataError("resize: " + std::to_string(channels) + " channels (1 or 3)");
}

}  // namespace

Image resize(const Image& image, const Box& box, int64_t height, int64_t width) {
  const Taps across = taps(box.left, box.width, width), down = taps(box.top, box.height, height);
  Image out;
  out.height = height, out.width = width, out.channels = image.channels;
  out.pixels.resize(size_t(height * width * image.channels));
  by_channels(image.channels, [&](auto c) {
    resize_passes<decltype(c)::value>(image, box, across, down, width, height, [&](int64_t o, const float* acc) {
      uint8_t* dst = out.row(o);
      for (int64_t i = 0; i < width * c; ++i) dst[i] = to_byte(acc[i]);
    });
  });
  return out;
}

void resize_planar(const Image& image, const Box& box, int64_t height, int64_t width, const Planar& out) {
  const Taps across = taps(box.left, box.width, width), down = taps(box.top, box.height, height);
  const int64_t plane = height * width;
  by_channels(image.channels, [&](auto c) {
    constexpr int C = decltype(c)::value;
    resize_passes<C>(image, box, across, down, width, height, [&](int64_t o, const float* acc) {
      for (int ch = 0; ch < C; ++ch) {
        const float scale = out.scale[ch], shift = out.shift[ch];
        float* dst = out.data + ch * plane + o * width;
        if (out.flip)
          for (int64_t x = 0; x < width; ++x) dst[width - 1 - x] = float(to_byte(acc[x * C + ch])) * scale + shift;
        else
          for (int64_t x = 0; x < width; ++x) dst[x] = float(to_byte(acc[x * C + ch])) * scale + shift;
      }
    });
  });
}

void write_planar(const Image& image, const Planar& out) {
  const int64_t plane = image.height * image.width, c = image.channels;
  for (int64_t ch = 0; ch < c; ++ch) {
    const float scale = out.scale[ch], shift = out.shift[ch];
    float* dst = out.data + ch * plane;
    for (int64_t y = 0; y < image.height; ++y) {
      const uint8_t* px = image.row(y) + ch;
      float* row = dst + y * image.width;
      for (int64_t x = 0; x < image.width; ++x)
        row[out.flip ? image.width - 1 - x : x] = float(px[x * c]) * scale + shift;
    }
  }
}

Box random_resized_box(int64_t height, int64_t width, double scale_min, double scale_max, double ratio_min,
                       double ratio_max, ImageRng& rng) {
  const double area = double(height * width), log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * uniform(rng, scale_min, scale_max);
    const double aspect = std::exp(uniform(rng, log_lo, log_hi));
    const int64_t w = int64_t(std::nearbyint(std::sqrt(target * aspect)));
    const int64_t h = int64_t(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && h > 0 && w <= width && h <= height)
      return {below(rng, height - h + 1), below(rng, width - w + 1), h, w};
  }
  const double in_ratio = double(width) / double(height);  // the centre crop of the nearest ratio
  int64_t w = width, h = height;
  if (in_ratio < ratio_min) h = int64_t(std::nearbyint(double(w) / ratio_min));
  else if (in_ratio > ratio_max) w = int64_t(std::nearbyint(double(h) * ratio_max));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

Image resize_center_crop(const Image& image, int64_t size) { return center_crop(image, size, int64_t(double(size) / 0.875)); }

Image center_square(const Image& image, int64_t side) { return center_crop(image, side, side); }

Image center_crop(const Image& image, int64_t size, int64_t shorter) {
  int64_t h = shorter, w = shorter;
  if (image.height < image.width) w = shorter * image.width / image.height;
  else h = shorter * image.height / image.width;
  const Image resized = resize(image, {0, 0, image.height, image.width}, h, w);
  const int64_t top = int64_t(std::nearbyint(double(h - size) / 2.0)), left = int64_t(std::nearbyint(double(w - size) / 2.0));
  Image out;
  out.height = size, out.width = size, out.channels = image.channels;
  out.pixels.resize(size_t(size * size * image.channels));
  for (int64_t y = 0; y < size; ++y)
    std::copy_n(resized.row(top + y) + left * image.channels, size * image.channels, out.row(y));
  return out;
}

void flip_horizontal(Image& image) {
  const int64_t c = image.channels;
  for (int64_t y = 0; y < image.height; ++y) {
    uint8_t* row = image.row(y);
    for (int64_t a = 0, b = image.width - 1; a < b; ++a, --b)
      for (int64_t ch = 0; ch < c; ++ch) std::swap(row[a * c + ch], row[b * c + ch]);
  }
}

}  // namespace bll

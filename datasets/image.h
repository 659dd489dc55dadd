// datasets/image.h: a grey image as a vector of pixels, seeded noise and the two error measures of image
// denoising. Eigen and ddn only (library ddn_data); files are read and written by datasets/image_io.h (OpenCV).
//
// An Image holds rows·cols intensities in [0, 1], row-major (pixel (i, j) is pixels[i·cols + j]). The bi-level
// denoising problem (bilevel/tv_denoise.h) learns on such images; a program with its pixels in memory fills one
// itself.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>

namespace ddn::datasets {

// A grey image with values in [0, 1], row-major.
struct Image {
  std::string name;
  int rows = 0, cols = 0;
  Eigen::VectorXd pixels;
};

// image + σ·N(0, 1) per pixel, from a seeded Mersenne twister (mt19937_64, Box–Muller): the same seed
// gives the same noise on every platform.
Image AddNoise(const Image& image, double sigma, uint64_t seed);
// Mean squared error (ddn/losses.h's, on the pixels) and peak signal-to-noise ratio (peak 1) between two images of
// the same size (InvalidInput otherwise).
double MeanSquaredError(const Image& a, const Image& b);
double Psnr(const Image& a, const Image& b);

}  // namespace ddn::datasets

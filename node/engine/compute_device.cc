#include "node/engine/compute_device.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

namespace strata {

void SetComputeThreads(int threads) { at::set_num_threads(threads); }

double MeasureMatmulGflops(int64_t n) {
  torch::NoGradGuard no_grad;
  auto a = torch::rand({n, n}), b = torch::rand({n, n});  // [n, n] each
  double best = 0;
  for (int i = 0; i < 4; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto c = torch::mm(a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) best = std::max(best, 2.0 * n * n * n / s / 1e9);  // the first warms up
  }
  return best;
}

std::string DefaultDevice() { return torch::cuda::is_available() ? "cuda:0" : "cpu"; }

}  // namespace strata

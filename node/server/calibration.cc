#include "node/server/calibration.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>

#include "base/bandwidth_probe.h"
#include "node/engine/compute_device.h"

namespace strata {

Calibrator::Calibrator(int threads, bool enabled) {
  if (!enabled) return;
  thread_ = std::thread([this, threads]() {
    const double gflops = MeasureMatmulGflops();
    std::srand(static_cast<unsigned>(getpid()));  // the probe's buffer offsets
    const double gbps = MemoryReadBandwidth(64, threads, 6, 80);
    calibration_.compute_gflops = gflops;
    calibration_.bandwidth_gbps = gbps;
    spdlog::info("calibrated: {:.1f} GFLOP/s f32 matmul, {:.1f} GB/s memory read ({} threads)", gflops, gbps, threads);
  });
}

Calibrator::~Calibrator() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace strata

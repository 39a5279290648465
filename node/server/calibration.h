#pragma once
// Calibration: a node's measured speed — f32 matmul GFLOP/s and memory read
// bandwidth with its compute threads — what the coordinator's planner splits
// layers by. It runs on a thread of its own beside the server (~0.2 s idle,
// seconds on a loaded machine), so that a node answers hello at once; until
// it is done the node reports 0 for both, and a plan splits by memory.
#include <atomic>
#include <thread>

namespace strata {

// Written once by the calibration thread, read by the event loop.
struct NodeCalibration {
  std::atomic<double> compute_gflops{0}, bandwidth_gbps{0};
};

// Owns the calibration thread; joins it on destruction. Not thread-safe
// itself; calibration() may be read from any thread.
class Calibrator {
 public:
  // enabled false: no measurement, both figures stay 0 (--no-calibration).
  Calibrator(int threads, bool enabled);
  ~Calibrator();
  Calibrator(const Calibrator&) = delete;
  Calibrator& operator=(const Calibrator&) = delete;
  const NodeCalibration& calibration() const { return calibration_; }

 private:
  NodeCalibration calibration_;
  std::thread thread_;  // after calibration_, which it writes
};

}  // namespace strata

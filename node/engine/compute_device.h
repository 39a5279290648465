#pragma once
// The machine's compute as LibTorch sees it: the device a node runs on by
// default, the intra-op threads of a thread, and the f32 matmul speed the
// node's calibration (node/server/calibration) reports to the planner.
// Torch-free header.
#include <cstdint>
#include <string>

namespace strata {

// Sets the intra-op thread count of the calling thread (OpenMP is per thread).
void SetComputeThreads(int threads);
// The best of a few f32 [n, n] x [n, n] matmuls on the calling thread's
// intra-op threads, in GFLOP/s: the node's compute speed, for the planner.
double MeasureMatmulGflops(int64_t n = 512);
// "cpu", or "cuda:N" when a CUDA device is present; used for the default device.
std::string DefaultDevice();

}  // namespace strata

#pragma once
// MemoryReadBandwidth: how fast `threads` threads stream a buffer far larger
// than the caches — the limit of decode, which reads every weight once a
// token. Each thread sums its slice with sixteen independent AVX2
// accumulators: with eight, add latency throttles a core's loads and the
// figure reads about 12% low (52 vs 59 GB/s here). The best of `passes`, in
// GB/s. Used by the node's calibration at start and by strata-membw.
//
// Thread-safe (it starts and joins its own threads).
#include <cstddef>

namespace strata {

// `spread_ms`: each pass after the first waits a random 0..spread_ms.
double MemoryReadBandwidth(size_t mib, int threads, int passes, int spread_ms = 0);

}  // namespace strata

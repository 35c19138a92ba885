// Seeded random numbers. Boost.Random's engines and distributions are defined by their
// algorithms (unlike std:: distributions, whose results differ between standard libraries), so
// the same seed gives byte-identical workloads on every platform.
#pragma once

#include <cstdint>

#include <boost/random/mersenne_twister.hpp>

namespace fdc {

using Rng = boost::random::mt19937_64;

// Derives an independent seed for a named stream (arrivals, lengths, ...) from the run's seed,
// so adding a random stream to one part never shifts the numbers of another.
constexpr uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

enum class RngStream : uint64_t { kArrivals = 1, kLengths = 2, kRouting = 3, kPolicy = 4 };

inline Rng make_rng(uint64_t seed, RngStream stream) { return Rng(derive_seed(seed, static_cast<uint64_t>(stream))); }

}  // namespace fdc

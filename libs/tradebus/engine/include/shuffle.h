/* Reproducible, parallel permutations for tradebus.engine.paths.

   Path k of seed s draws from its own stream: xoshiro256** (Blackman and Vigna) whose state is
   four SplitMix64 outputs started at s XOR SplitMix64(k). Any path can be made alone, on any
   thread, and is the same everywhere. Bounded integers use Lemire's multiply-and-reject
   (unbiased); the permutation is a Fisher-Yates shuffle from the last element down. */
#ifndef TRADEBUS_ENGINE_SHUFFLE_H
#define TRADEBUS_ENGINE_SHUFFLE_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } tb_rng;

static inline uint64_t tb_splitmix64(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void tb_rng_seed(tb_rng* rng, uint64_t seed, uint64_t stream) {
    uint64_t k = stream, sm;
    sm = seed ^ tb_splitmix64(&k);
    rng->s[0] = tb_splitmix64(&sm);
    rng->s[1] = tb_splitmix64(&sm);
    rng->s[2] = tb_splitmix64(&sm);
    rng->s[3] = tb_splitmix64(&sm);
}

static inline uint64_t tb_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t tb_rng_next(tb_rng* rng) {
    uint64_t* s = rng->s;
    uint64_t result = tb_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tb_rotl(s[3], 45);
    return result;
}

/* Uniform integer in [0, range), range >= 1 (Lemire 2019). */
static inline uint64_t tb_rng_below(tb_rng* rng, uint64_t range) {
#if defined(__SIZEOF_INT128__)
    unsigned __int128 m = (unsigned __int128)tb_rng_next(rng) * range;
    uint64_t low = (uint64_t)m;
    if (low < range) {
        uint64_t floor = (0 - range) % range;
        while (low < floor) {
            m = (unsigned __int128)tb_rng_next(rng) * range;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
#else
    uint64_t x, limit = UINT64_MAX - UINT64_MAX % range;   /* reject the incomplete tail */
    do { x = tb_rng_next(rng); } while (x >= limit);
    return x % range;
#endif
}

/* order[0..n-1] = a uniformly random permutation of 0..n-1 from path ``stream`` of ``seed``. */
static inline void tb_permutation(uint32_t* order, int64_t n, uint64_t seed, uint64_t stream) {
    tb_rng rng;
    int64_t i;
    tb_rng_seed(&rng, seed, stream);
    for (i = 0; i < n; i++) order[i] = (uint32_t)i;
    for (i = n - 1; i > 0; i--) {
        uint64_t j = tb_rng_below(&rng, (uint64_t)i + 1);
        uint32_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
}
#endif

/* C kernels of tradebus.engine (declared for Cython in bars.pxd, ledger.pxd, indicators.pxd and paths.pyx).

   Hot loops written with SSE2 intrinsics where compilers otherwise emit data-dependent
   branches for a max/min against zero, with plain C for other machines. Everything is
   static inline: each extension module that includes this header gets its own copy. */
#ifndef TRADEBUS_ENGINE_KERNELS_H
#define TRADEBUS_ENGINE_KERNELS_H
#include <math.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__SSE2__)
static inline double tb_max(double a, double b) { return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(a), _mm_set_sd(b))); }
static inline double tb_pos(double a) { return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(a), _mm_setzero_pd())); }
static inline double tb_neg(double a) { return _mm_cvtsd_f64(_mm_min_sd(_mm_set_sd(a), _mm_setzero_pd())); }
#else
static inline double tb_max(double a, double b) { return a > b ? a : b; }
static inline double tb_pos(double a) { return a > 0.0 ? a : 0.0; }
static inline double tb_neg(double a) { return a < 0.0 ? a : 0.0; }
#endif

/* floor(x / d) for 0 <= x < 2**63 as a multiply by magic = floor(2**(63 + l) / d) + 1,
   l = ceil(log2 d), shift = 63 + l (Granlund-Montgomery); an idiv costs several times more. */
static inline int64_t tb_divide(uint64_t x, uint64_t magic, int shift) {
#if defined(__SIZEOF_INT128__)
    return (int64_t)(((unsigned __int128)x * magic) >> shift);
#else
    return -1;
#endif
}
static inline int tb_has_int128(void) {
#if defined(__SIZEOF_INT128__)
    return 1;
#else
    return 0;
#endif
}

/* Extremes of closes a..b and the squared close-to-close moves split by sign (the move into
   bar a counts, so a >= 1): out = {max, min, sum of up moves^2, sum of down moves^2}. */
static inline void tb_extremes(const double* c, int64_t a, int64_t b, double* out) {
    int64_t t = a;
#if defined(__SSE2__)
    __m128d zero = _mm_setzero_pd();
    __m128d mx0 = _mm_set1_pd(-INFINITY), mx1 = mx0, mn0 = _mm_set1_pd(INFINITY), mn1 = mn0;
    __m128d up0 = zero, up1 = zero, dn0 = zero, dn1 = zero;
    for (; t + 3 <= b; t += 4) {
        __m128d x0 = _mm_loadu_pd(c + t), x1 = _mm_loadu_pd(c + t + 2);
        __m128d d0 = _mm_sub_pd(x0, _mm_loadu_pd(c + t - 1));
        __m128d d1 = _mm_sub_pd(x1, _mm_loadu_pd(c + t + 1));
        __m128d u0 = _mm_max_pd(d0, zero), u1 = _mm_max_pd(d1, zero);
        __m128d w0 = _mm_min_pd(d0, zero), w1 = _mm_min_pd(d1, zero);
        up0 = _mm_add_pd(up0, _mm_mul_pd(u0, u0));
        up1 = _mm_add_pd(up1, _mm_mul_pd(u1, u1));
        dn0 = _mm_add_pd(dn0, _mm_mul_pd(w0, w0));
        dn1 = _mm_add_pd(dn1, _mm_mul_pd(w1, w1));
        mx0 = _mm_max_pd(mx0, x0);
        mx1 = _mm_max_pd(mx1, x1);
        mn0 = _mm_min_pd(mn0, x0);
        mn1 = _mm_min_pd(mn1, x1);
    }
    for (; t <= b; t++) {
        __m128d x = _mm_load_sd(c + t);
        __m128d d = _mm_sub_sd(x, _mm_load_sd(c + t - 1));
        __m128d u = _mm_max_sd(d, zero), w = _mm_min_sd(d, zero);
        up0 = _mm_add_sd(up0, _mm_mul_sd(u, u));
        dn0 = _mm_add_sd(dn0, _mm_mul_sd(w, w));
        mx0 = _mm_max_sd(mx0, x);
        mn0 = _mm_min_sd(mn0, x);
    }
    mx0 = _mm_max_pd(mx0, mx1);
    mn0 = _mm_min_pd(mn0, mn1);
    up0 = _mm_add_pd(up0, up1);
    dn0 = _mm_add_pd(dn0, dn1);
    out[0] = _mm_cvtsd_f64(_mm_max_sd(mx0, _mm_unpackhi_pd(mx0, mx0)));
    out[1] = _mm_cvtsd_f64(_mm_min_sd(mn0, _mm_unpackhi_pd(mn0, mn0)));
    out[2] = _mm_cvtsd_f64(_mm_add_sd(up0, _mm_unpackhi_pd(up0, up0)));
    out[3] = _mm_cvtsd_f64(_mm_add_sd(dn0, _mm_unpackhi_pd(dn0, dn0)));
#else
    double mx = -INFINITY, mn = INFINITY, up2 = 0.0, down2 = 0.0, x, d, u, w;
    for (; t <= b; t++) {
        x = c[t];
        d = x - c[t - 1];
        u = d > 0.0 ? d : 0.0;
        w = d < 0.0 ? d : 0.0;
        up2 += u * u;
        down2 += w * w;
        mx = x > mx ? x : mx;
        mn = x < mn ? x : mn;
    }
    out[0] = mx; out[1] = mn; out[2] = up2; out[3] = down2;
#endif
}

/* Largest fall and rise of the close inside two blocks of len bars starting at a0 and a1,
   one per SSE2 lane (the running maximum is a chain, so lanes are what can be shared):
   out = {drop0, drop1, rise0, rise1}. */
static inline void tb_moves_pair(const double* c, int64_t a0, int64_t a1, int64_t len, double* out) {
#if defined(__SSE2__)
    __m128d x = _mm_set_pd(c[a1], c[a0]), mx = x, mn = x;
    __m128d drop = _mm_setzero_pd(), rise = _mm_setzero_pd();
    int64_t t;
    for (t = 1; t < len; t++) {
        x = _mm_set_pd(c[a1 + t], c[a0 + t]);
        mx = _mm_max_pd(mx, x);
        mn = _mm_min_pd(mn, x);
        drop = _mm_max_pd(drop, _mm_sub_pd(mx, x));
        rise = _mm_max_pd(rise, _mm_sub_pd(x, mn));
    }
    _mm_storeu_pd(out, drop);
    _mm_storeu_pd(out + 2, rise);
#else
    int lane;
    for (lane = 0; lane < 2; lane++) {
        const double* p = c + (lane ? a1 : a0);
        double mx = p[0], mn = p[0], drop = 0.0, rise = 0.0, x;
        int64_t t;
        for (t = 1; t < len; t++) {
            x = p[t];
            mx = x > mx ? x : mx;
            mn = x < mn ? x : mn;
            drop = mx - x > drop ? mx - x : drop;
            rise = x - mn > rise ? x - mn : rise;
        }
        out[lane] = drop;
        out[2 + lane] = rise;
    }
#endif
}

/* Highest high and lowest low of bars a..b: out = {max high, min low}. */
static inline void tb_high_low(const double* h, const double* l, int64_t a, int64_t b, double* out) {
    int64_t t = a;
#if defined(__SSE2__)
    __m128d hm = _mm_set1_pd(-INFINITY), lm = _mm_set1_pd(INFINITY);
    for (; t + 1 <= b; t += 2) {
        hm = _mm_max_pd(hm, _mm_loadu_pd(h + t));
        lm = _mm_min_pd(lm, _mm_loadu_pd(l + t));
    }
    for (; t <= b; t++) {
        hm = _mm_max_sd(hm, _mm_load_sd(h + t));
        lm = _mm_min_sd(lm, _mm_load_sd(l + t));
    }
    out[0] = _mm_cvtsd_f64(_mm_max_sd(hm, _mm_unpackhi_pd(hm, hm)));
    out[1] = _mm_cvtsd_f64(_mm_min_sd(lm, _mm_unpackhi_pd(lm, lm)));
#else
    double hm = -INFINITY, lm = INFINITY;
    for (; t <= b; t++) {
        hm = h[t] > hm ? h[t] : hm;
        lm = l[t] < lm ? l[t] : lm;
    }
    out[0] = hm; out[1] = lm;
#endif
}

/* Copies bars a..e-1 of o, h, l, c, v into the out arrays; 1 when all are well formed:
   0 < low <= open, close <= high < inf and 0 <= volume < inf (a NaN fails a comparison).
   Which row failed is left to the caller's slower row-by-row check. */
static inline int tb_copy_bars(const double* o, const double* h, const double* l,
                               const double* c, const double* v, double* oo, double* hh,
                               double* ll, double* cc, double* vv, int64_t a, int64_t e) {
    int64_t t = a;
    int good = 1;
#if defined(__SSE2__)
    __m128d zero = _mm_setzero_pd(), inf = _mm_set1_pd(INFINITY);
    __m128d ok = _mm_castsi128_pd(_mm_set1_epi32(-1));
    for (; t + 1 < e; t += 2) {
        __m128d O = _mm_loadu_pd(o + t), H = _mm_loadu_pd(h + t), L = _mm_loadu_pd(l + t);
        __m128d C = _mm_loadu_pd(c + t), V = _mm_loadu_pd(v + t);
        __m128d k1 = _mm_and_pd(_mm_cmpgt_pd(L, zero), _mm_cmplt_pd(H, inf));
        __m128d k2 = _mm_and_pd(_mm_cmple_pd(L, O), _mm_cmple_pd(O, H));
        __m128d k3 = _mm_and_pd(_mm_cmple_pd(L, C), _mm_cmple_pd(C, H));
        __m128d k4 = _mm_and_pd(_mm_cmpge_pd(V, zero), _mm_cmplt_pd(V, inf));
        ok = _mm_and_pd(ok, _mm_and_pd(_mm_and_pd(k1, k2), _mm_and_pd(k3, k4)));
        _mm_storeu_pd(oo + t, O);
        _mm_storeu_pd(hh + t, H);
        _mm_storeu_pd(ll + t, L);
        _mm_storeu_pd(cc + t, C);
        _mm_storeu_pd(vv + t, V);
    }
    good = _mm_movemask_pd(ok) == 3;
#endif
    for (; t < e; t++) {
        good &= l[t] > 0.0 && h[t] < INFINITY && l[t] <= o[t] && o[t] <= h[t] && l[t] <= c[t]
                && c[t] <= h[t] && v[t] >= 0.0 && v[t] < INFINITY;
        oo[t] = o[t]; hh[t] = h[t]; ll[t] = l[t]; cc[t] = c[t]; vv[t] = v[t];
    }
    return good;
}

/* Timestamps scaled to ns into out, with the smallest and largest gap; 1 when all inputs
   lie strictly within +-lim before scaling (so no difference overflows) and increase. */
static inline int tb_timestamps_any(const int64_t* in, int64_t n, int64_t scale, int64_t lim,
                                    int64_t* out, int64_t* min_gap, int64_t* max_gap) {
    int64_t i, x, gap, lo = INT64_MAX, hi = 0, least = in[0], most = in[0];
    /* Unsigned arithmetic: an out-of-range value wraps instead of overflowing (and is
       then refused below). */
    out[0] = (int64_t)((uint64_t)in[0] * (uint64_t)scale);
    for (i = 1; i < n; i++) {
        x = in[i];
        out[i] = (int64_t)((uint64_t)x * (uint64_t)scale);
        gap = (int64_t)((uint64_t)x - (uint64_t)in[i - 1]);
        lo = gap < lo ? gap : lo;
        hi = gap > hi ? gap : hi;
        least = x < least ? x : least;
        most = x > most ? x : most;
    }
    if (least <= -lim || most >= lim || (n > 1 && lo <= 0))
        return 0;
    *min_gap = lo * scale;
    *max_gap = hi * scale;
    return 1;
}

/* tb_timestamps_any with a fast path for evenly spaced bars (the common case): one
   branch-free pass that only checks every gap equals the first; then the gaps cannot have
   wrapped when the first and last timestamps are in range and their distance is exactly
   (n - 1) gaps, so every timestamp lies between them. Otherwise the general pass. */
static inline int tb_timestamps(const int64_t* in, int64_t n, int64_t scale, int64_t lim,
                                int64_t* out, int64_t* min_gap, int64_t* max_gap) {
    if (n >= 2) {
        uint64_t g0 = (uint64_t)in[1] - (uint64_t)in[0], acc = 0;
        int64_t i, first = in[0], last = in[n - 1], span;
        out[0] = (int64_t)((uint64_t)in[0] * (uint64_t)scale);
        if (scale == 1) {               /* ns already: a copy (no 64-bit vector multiply) */
            for (i = 1; i < n; i++) {
                out[i] = in[i];
                acc |= ((uint64_t)in[i] - (uint64_t)in[i - 1]) ^ g0;
            }
        } else {
            for (i = 1; i < n; i++) {
                out[i] = (int64_t)((uint64_t)in[i] * (uint64_t)scale);
                acc |= ((uint64_t)in[i] - (uint64_t)in[i - 1]) ^ g0;
            }
        }
        if (acc == 0 && (int64_t)g0 > 0 && first > -lim && first < lim && last > -lim
                && last < lim) {
            span = last - first;            /* exact: both within +-lim <= 2**62 */
            if (span > 0 && span % (n - 1) == 0 && (uint64_t)(span / (n - 1)) == g0) {
                *min_gap = (int64_t)g0 * scale;
                *max_gap = (int64_t)g0 * scale;
                return 1;
            }
        }
    }
    return tb_timestamps_any(in, n, scale, lim, out, min_gap, max_gap);
}

/* o[t] = a[t] > b[t] (a[t] >= b[t] when or_equal) as 0/1 bytes, t < n; false where either is
   NaN, as the C comparison. With SSE2, 8 comparisons are packed into bytes at a time. */
static inline void tb_greater(const double* a, const double* b, uint8_t* o, int64_t n, int or_equal) {
    int64_t t = 0;
#if defined(__SSE2__)
    const __m128i one = _mm_set1_epi8(1);
    __m128 lo, hi;
    __m128d m[8];
    int k;
    for (; t + 16 <= n; t += 16) {
        for (k = 0; k < 8; k++) {
            __m128d x = _mm_loadu_pd(a + t + 2 * k), y = _mm_loadu_pd(b + t + 2 * k);
            m[k] = or_equal ? _mm_cmpge_pd(x, y) : _mm_cmpgt_pd(x, y);
        }
        /* one 32-bit half of each 64-bit mask, then signed packs down to bytes (-1 or 0) */
        lo = _mm_shuffle_ps(_mm_castpd_ps(m[0]), _mm_castpd_ps(m[1]), _MM_SHUFFLE(2, 0, 2, 0));
        hi = _mm_shuffle_ps(_mm_castpd_ps(m[2]), _mm_castpd_ps(m[3]), _MM_SHUFFLE(2, 0, 2, 0));
        __m128i w0 = _mm_packs_epi32(_mm_castps_si128(lo), _mm_castps_si128(hi));
        lo = _mm_shuffle_ps(_mm_castpd_ps(m[4]), _mm_castpd_ps(m[5]), _MM_SHUFFLE(2, 0, 2, 0));
        hi = _mm_shuffle_ps(_mm_castpd_ps(m[6]), _mm_castpd_ps(m[7]), _MM_SHUFFLE(2, 0, 2, 0));
        __m128i w1 = _mm_packs_epi32(_mm_castps_si128(lo), _mm_castps_si128(hi));
        _mm_storeu_si128((__m128i*)(o + t), _mm_and_si128(_mm_packs_epi16(w0, w1), one));
    }
#endif
    for (; t < n; t++) o[t] = or_equal ? a[t] >= b[t] : a[t] > b[t];
}

/* Two full SMA windows (periods ps and pr) over x[a..b-1] into o and p: per bar, each window's
   Neumaier sum (total[k], comp[k]) takes x[i] - x[i - period] and the mean is
   (total + comp) / period, exactly as indicators.pxd's add_compensated_nb; with SSE2 the two
   windows are the two lanes of one vector (the same operations per lane: the same values). */
static inline void tb_sma_pair_full(const double* x, double* o, double* p, int64_t a, int64_t b,
                                    int ps, int pr, double* total, double* comp) {
    int64_t i;
#if defined(__SSE2__)
    __m128d tot = _mm_loadu_pd(total), cmp = _mm_loadu_pd(comp);
    const __m128d period = _mm_set_pd((double)pr, (double)ps);
    const __m128d abs_mask = _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffLL));
    for (i = a; i < b; i++) {
        __m128d d = _mm_sub_pd(_mm_set1_pd(x[i]), _mm_set_pd(x[i - pr], x[i - ps]));
        __m128d t = _mm_add_pd(tot, d);
        __m128d big = _mm_add_pd(_mm_sub_pd(tot, t), d), small = _mm_add_pd(_mm_sub_pd(d, t), tot);
        __m128d keep_big = _mm_cmpge_pd(_mm_and_pd(tot, abs_mask), _mm_and_pd(d, abs_mask));
        cmp = _mm_add_pd(cmp, _mm_or_pd(_mm_and_pd(keep_big, big), _mm_andnot_pd(keep_big, small)));
        tot = t;
        t = _mm_div_pd(_mm_add_pd(tot, cmp), period);
        _mm_storel_pd(&o[i], t);
        _mm_storeh_pd(&p[i], t);
    }
    _mm_storeu_pd(total, tot);
    _mm_storeu_pd(comp, cmp);
#else
    for (i = a; i < b; i++) {
        int k;
        for (k = 0; k < 2; k++) {
            double d = x[i] - x[i - (k ? pr : ps)], s = total[k], t = s + d;
            comp[k] += fabs(s) >= fabs(d) ? (s - t) + d : (d - t) + s;
            total[k] = t;
        }
        o[i] = (total[0] + comp[0]) / ps;
        p[i] = (total[1] + comp[1]) / pr;
    }
#endif
}

#if defined(__GNUC__)
#define tb_prefetch(p) __builtin_prefetch(p)
#else
#define tb_prefetch(p) ((void)0)
#endif

#endif /* TRADEBUS_ENGINE_KERNELS_H */

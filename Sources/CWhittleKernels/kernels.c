#include "CWhittleKernels.h"

#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define WHITTLE_X86 1
#include <immintrin.h>
#endif

static inline float clampf(float v, float low, float high) {
    v = v < low ? low : v;
    return v > high ? high : v;
}

// MARK: portable versions

static void depthwise_rows_generic(const float *in, const long *offsets, long taps, const float *weights,
                                   float bias, float low, float high, long rows, long columns, long pitch,
                                   float *out) {
    for (long oy = 0; oy < rows; oy++) {
        const float *row = in + oy * pitch;
        float *target = out + oy * columns;
        for (long ox = 0; ox < columns; ox++) target[ox] = bias;
        for (long t = 0; t < taps; t++) {
            const float *source = row + offsets[t];
            const float w = weights[t];
            for (long ox = 0; ox < columns; ox++) target[ox] += w * source[ox];
        }
        for (long ox = 0; ox < columns; ox++) target[ox] = clampf(target[ox], low, high);
    }
}

static void bias_clamp_generic(float *values, long count, float bias, float low, float high) {
    for (long i = 0; i < count; i++) values[i] = clampf(values[i] + bias, low, high);
}

static const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer

static void fake_quantize_generic(const float *source, float *destination, long count, float scale, float low, float high) {
    for (long i = 0; i < count; i++) {
        float v = source[i] / scale;
        v = v > low ? v : low;
        v = v < high ? v : high;
        destination[i] = ((v + round_magic) - round_magic) * scale;
    }
}

static void copy_bias_clamp_generic(const float *source, float *destination, long count, float bias, float low, float high) {
    for (long i = 0; i < count; i++) destination[i] = clampf(source[i] + bias, low, high);
}

// MARK: AdaRound elementwise update
//
// e^x, log(x), sigmoid: the same polynomials as the Swift reference (`adaRoundExp`,
// `adaRoundLog` in AdaRoundOptimizer.swift), so the fused update and the reference loop agree
// to float rounding. e^x: x = n ln2 + r (Cody-Waite split of ln2), e^r by its degree-6 Taylor
// polynomial (relative error about 1e-7 for |r| <= ln2/2), 2^n written into the exponent bits;
// inputs clamped to [-87, 88]. log(x) for positive normal x: exponent bits plus
// log(m) = 2 atanh((m - 1) / (m + 1)) on m in [sqrt(1/2), sqrt(2)), series to t^9 (error
// below 1e-7). The AVX2 versions differ only by fused multiply-adds (a few ulp).

static inline float bits_to_float(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static inline uint32_t float_to_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}


static inline float adaround_exp(float x) {
    const float clamped = clampf(x, -87.0f, 88.0f);
    const float shifted = clamped * 1.44269504f + round_magic;
    const float n = shifted - round_magic;
    const float r = (clamped - n * 0.693359375f) + n * 2.1219444e-4f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1;
    p = p * r + 1;
    const int32_t exponent = (int32_t)float_to_bits(shifted) - (int32_t)float_to_bits(round_magic);
    return p * bits_to_float((uint32_t)(exponent + 127) << 23);
}

static inline float adaround_log(float x) {
    const uint32_t bits = float_to_bits(x);
    int32_t exponent = (int32_t)((bits >> 23) & 0xFF) - 127;
    float mantissa = bits_to_float((bits & 0x007FFFFFu) | 0x3F800000u);
    if (mantissa > 1.4142135f) {
        mantissa *= 0.5f;
        exponent += 1;
    }
    const float t = (mantissa - 1) / (mantissa + 1);
    const float t2 = t * t;
    float series = 1.0f / 9;
    series = series * t2 + 1.0f / 7;
    series = series * t2 + 1.0f / 5;
    series = series * t2 + 1.0f / 3;
    series = series * t2 + 1;
    return 2 * t * series + (float)exponent * 0.69314718f;
}

/// One weight of the fused AdaRound update (see `whittle_adaround_update`).
static inline void adaround_update_one(const whittle_adaround_buffers *b, const whittle_adaround_step *c, long i) {
    const float spread = c->zeta - c->gamma;
    // Chain rule from dL/dW~ to dL/dV at the current V.
    float sigma = b->sigmoid[i];
    float r = sigma * spread + c->gamma;
    float h = clampf(r, 0, 1);
    const float derivative = (r < 0 || r > 1) ? 0 : sigma * (1 - sigma) * spread;
    float u = b->floor_w[i] + h;
    const float low = b->low[i], high = b->high[i], scale = b->scale[i];
    const float chain = (u < low || u > high) ? 0 : scale * derivative;
    float g = b->gradient[i] * chain;
    b->gradient[i] = 0;
    if (c->regularised) {
        const float a = h * 2 - 1;
        const float magnitude = a < 0 ? -a : a;
        const float logarithm = magnitude < 1e-30f ? -100.0f : adaround_log(magnitude);
        const float power = adaround_exp(logarithm * (c->beta - 1));
        const float factor = -2 * c->beta * c->regularization;
        g += factor * power * (a < 0 ? -1.0f : 1.0f) * derivative;
    }
    // Adam (bias correction folded into step_size and inverse_root2).
    const float m = b->first_moment[i] * c->beta1 + g * (1 - c->beta1);
    const float s = b->second_moment[i] * c->beta2 + g * g * (1 - c->beta2);
    b->first_moment[i] = m;
    b->second_moment[i] = s;
    const float v = b->v[i] - c->step_size * m / (sqrtf(s) * c->inverse_root2 + c->epsilon);
    b->v[i] = v;
    // Rectified sigmoid and soft weight of the new V.
    sigma = 1 / (1 + adaround_exp(-v));
    r = sigma * spread + c->gamma;
    h = clampf(r, 0, 1);
    u = clampf(b->floor_w[i] + h, low, high);
    b->sigmoid[i] = sigma;
    b->soft[i] = scale * u;
}

static void adaround_update_generic(const whittle_adaround_buffers *b, const whittle_adaround_step *c, long start, long end) {
    for (long i = start; i < end; i++) adaround_update_one(b, c, i);
}

// MARK: Histogram counting

/// Bin index of one value, as the vector path computes it (separate multiply and subtract:
/// a fused multiply-add would move values on bin edges).
static inline uint32_t histogram_index(float x, float low, float inverse, float last) {
#pragma clang fp contract(off)
    float g = (x - low) * inverse;
    g = g - 0.5f;
    g = g > 0 ? g : 0;
    g = g < last ? g : last;
    return float_to_bits(g + round_magic) - float_to_bits(round_magic);
}

static void histogram_count_generic(const float *values, long count, float low, float inverse, float last,
                                    uint32_t *h0, uint32_t *h1, uint32_t *h2, uint32_t *h3) {
    uint32_t *const lanes[4] = {h0, h1, h2, h3};
    for (long i = 0; i < count; i++) lanes[i & 3][histogram_index(values[i], low, inverse, last)] += 1;
}

#ifdef WHITTLE_X86
#define AVX2 __attribute__((target("avx2,fma")))

/// Stores 8 results of which the first `left` are valid. A full store is used whenever the 8
/// floats end before `limit` (the end of the call's output rows): the extra lanes then land on
/// the next output row, which is written after this one. Only a call's very last row needs a
/// partial store (masked stores are slow on some x86 cores, so it goes through a buffer).
AVX2 static inline void store_row_part(float *target, __m256 a, long left, const float *limit) {
    if (left >= 8 || target + 8 <= limit) {
        _mm256_storeu_ps(target, a);
        return;
    }
    float buffer[8];
    _mm256_storeu_ps(buffer, a);
    for (long i = 0; i < left; i++) target[i] = buffer[i];
}

/// 3x3 (nine taps) with the weights held in registers.
AVX2 static void depthwise_rows9_avx2(const float *in, const long *o, const float *weights,
                                     __m256 vbias, __m256 vlow, __m256 vhigh, long rows, long columns, long pitch,
                                     float *out) {
    const __m256 w0 = _mm256_broadcast_ss(weights), w1 = _mm256_broadcast_ss(weights + 1), w2 = _mm256_broadcast_ss(weights + 2);
    const __m256 w3 = _mm256_broadcast_ss(weights + 3), w4 = _mm256_broadcast_ss(weights + 4), w5 = _mm256_broadcast_ss(weights + 5);
    const __m256 w6 = _mm256_broadcast_ss(weights + 6), w7 = _mm256_broadcast_ss(weights + 7), w8 = _mm256_broadcast_ss(weights + 8);
    const long o0 = o[0], o1 = o[1], o2 = o[2], o3 = o[3], o4 = o[4], o5 = o[5], o6 = o[6], o7 = o[7], o8 = o[8];
    const float *limit = out + rows * columns;
    for (long oy = 0; oy < rows; oy++) {
        const float *r = in + oy * pitch;
        float *target = out + oy * columns;
        for (long ox = 0; ox < columns; ox += 8) {
            const float *s = r + ox;
            __m256 a = _mm256_fmadd_ps(w0, _mm256_loadu_ps(s + o0), vbias);
            __m256 b = _mm256_mul_ps(w1, _mm256_loadu_ps(s + o1));
            __m256 c = _mm256_mul_ps(w2, _mm256_loadu_ps(s + o2));
            a = _mm256_fmadd_ps(w3, _mm256_loadu_ps(s + o3), a);
            b = _mm256_fmadd_ps(w4, _mm256_loadu_ps(s + o4), b);
            c = _mm256_fmadd_ps(w5, _mm256_loadu_ps(s + o5), c);
            a = _mm256_fmadd_ps(w6, _mm256_loadu_ps(s + o6), a);
            b = _mm256_fmadd_ps(w7, _mm256_loadu_ps(s + o7), b);
            c = _mm256_fmadd_ps(w8, _mm256_loadu_ps(s + o8), c);
            a = _mm256_add_ps(_mm256_add_ps(a, b), c);
            a = _mm256_min_ps(vhigh, _mm256_max_ps(vlow, a));
            store_row_part(target + ox, a, columns - ox, limit);
        }
    }
}

/// Any number of taps, a tile of `R` output rows x `V` vectors of 8 columns at a time: the
/// tile keeps R·V independent accumulators, so the FMA chains (one per tap, each FMA waiting
/// on the previous one of its chain) overlap instead of stalling, and each broadcast weight
/// serves R·V FMAs. Tiles run with up to 8 accumulators (8 rows of one vector, or 4 rows of
/// two); the rows left at the bottom go through a shorter tile of the same width, never one
/// row at a time (a single chain of 25 FMAs for a 5x5 kernel would take 25 FMA latencies).
#define DEPTHWISE_TILE_BODY(R, V)                                                                  \
    do {                                                                                           \
        __m256 acc[R][V];                                                                          \
        for (int r = 0; r < R; r++)                                                                \
            for (int v = 0; v < V; v++) acc[r][v] = vbias;                                         \
        for (long t = 0; t < taps; t++) {                                                          \
            const __m256 w = _mm256_broadcast_ss(weights + t);                                     \
            const float *s = in + offsets[t] + oy * pitch + ox;                                    \
            for (int r = 0; r < R; r++)                                                            \
                for (int v = 0; v < V; v++)                                                        \
                    acc[r][v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(s + r * pitch + 8 * v), acc[r][v]); \
        }                                                                                          \
        for (int r = 0; r < R; r++) {                                                              \
            float *target = out + (oy + r) * columns + ox;                                         \
            for (int v = 0; v < V; v++) {                                                          \
                __m256 a = _mm256_min_ps(vhigh, _mm256_max_ps(vlow, acc[r][v]));                   \
                store_row_part(target + 8 * v, a, columns - ox - 8 * v, tile_limit);              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define DEPTHWISE_TILE_FUNCTION(R, V)                                                              \
    AVX2 static void depthwise_tile_##R##x##V(const float *in, const long *offsets, long taps,      \
                                            const float *weights, __m256 vbias, __m256 vlow,        \
                                            __m256 vhigh, long oy, long ox, long columns, long pitch, \
                                            float *out, const float *tile_limit) {                 \
        DEPTHWISE_TILE_BODY(R, V);                                                                 \
    }

DEPTHWISE_TILE_FUNCTION(1, 1)
DEPTHWISE_TILE_FUNCTION(2, 1)
DEPTHWISE_TILE_FUNCTION(3, 1)
DEPTHWISE_TILE_FUNCTION(4, 1)
DEPTHWISE_TILE_FUNCTION(5, 1)
DEPTHWISE_TILE_FUNCTION(6, 1)
DEPTHWISE_TILE_FUNCTION(7, 1)
DEPTHWISE_TILE_FUNCTION(8, 1)
DEPTHWISE_TILE_FUNCTION(1, 2)
DEPTHWISE_TILE_FUNCTION(2, 2)
DEPTHWISE_TILE_FUNCTION(3, 2)
DEPTHWISE_TILE_FUNCTION(4, 2)

typedef void (*depthwise_tile_fn)(const float *, const long *, long, const float *, __m256, __m256, __m256, long, long,
                                  long, long, float *, const float *);

AVX2 static void depthwise_rows_tiled_avx2(const float *in, const long *offsets, long taps, const float *weights,
                                           __m256 vbias, __m256 vlow, __m256 vhigh, long rows, long columns,
                                           long pitch, float *out) {
    static const depthwise_tile_fn narrow[9] = {0, depthwise_tile_1x1, depthwise_tile_2x1, depthwise_tile_3x1,
                                                depthwise_tile_4x1, depthwise_tile_5x1, depthwise_tile_6x1,
                                                depthwise_tile_7x1, depthwise_tile_8x1};
    static const depthwise_tile_fn wide[5] = {0, depthwise_tile_1x2, depthwise_tile_2x2, depthwise_tile_3x2,
                                              depthwise_tile_4x2};
    // Tiles store row by row, so a row's extra lanes may only spill onto the next row when a
    // tile spans whole rows (one column step); otherwise that row's head is already written.
    const float *limit = out + rows * columns;
    const float *tile_limit = columns <= 16 ? limit : out;
    // Rows of a band: 8 when one vector covers the row, else 4 (two vectors per row).
    const long band = columns <= 8 ? 8 : 4;
    for (long oy = 0; oy < rows;) {
        const long height = rows - oy < band ? rows - oy : band;
        long ox = 0;
        for (; columns - ox > 8; ox += 16) {
            const long tall = height < 4 ? height : 4;
            for (long r = 0; r < height; r += tall) {
                const long h = height - r < tall ? height - r : tall;
                wide[h](in, offsets, taps, weights, vbias, vlow, vhigh, oy + r, ox, columns, pitch, out, tile_limit);
            }
        }
        if (ox < columns) narrow[height](in, offsets, taps, weights, vbias, vlow, vhigh, oy, ox, columns, pitch, out, tile_limit);
        oy += height;
    }
}

AVX2 static void depthwise_rows_avx2(const float *in, const long *offsets, long taps, const float *weights,
                                     float bias, float low, float high, long rows, long columns, long pitch,
                                     float *out) {
    const __m256 vbias = _mm256_set1_ps(bias), vlow = _mm256_set1_ps(low), vhigh = _mm256_set1_ps(high);
    if (taps == 9) {
        depthwise_rows9_avx2(in, offsets, weights, vbias, vlow, vhigh, rows, columns, pitch, out);
        return;
    }
    depthwise_rows_tiled_avx2(in, offsets, taps, weights, vbias, vlow, vhigh, rows, columns, pitch, out);
}

AVX2 static void copy_bias_clamp_avx2(const float *source, float *destination, long count, float bias, float low, float high) {
    const __m256 vbias = _mm256_set1_ps(bias), vlow = _mm256_set1_ps(low), vhigh = _mm256_set1_ps(high);
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256 a = _mm256_add_ps(_mm256_loadu_ps(source + i), vbias);
        __m256 b = _mm256_add_ps(_mm256_loadu_ps(source + i + 8), vbias);
        _mm256_storeu_ps(destination + i, _mm256_min_ps(vhigh, _mm256_max_ps(vlow, a)));
        _mm256_storeu_ps(destination + i + 8, _mm256_min_ps(vhigh, _mm256_max_ps(vlow, b)));
    }
    for (; i + 8 <= count; i += 8) {
        __m256 a = _mm256_add_ps(_mm256_loadu_ps(source + i), vbias);
        _mm256_storeu_ps(destination + i, _mm256_min_ps(vhigh, _mm256_max_ps(vlow, a)));
    }
    for (; i < count; i++) destination[i] = clampf(source[i] + bias, low, high);
}

/// `_mm256_max_ps(v, low)` is `v > low ? v : low` lane by lane (NaN in `v` gives `low`) and
/// `_mm256_min_ps(v, high)` is `v < high ? v : high`: the same arithmetic as the generic loop.
AVX2 static void fake_quantize_avx2(const float *source, float *destination, long count, float scale, float low, float high) {
    const __m256 vscale = _mm256_set1_ps(scale), vlow = _mm256_set1_ps(low), vhigh = _mm256_set1_ps(high);
    const __m256 magic = _mm256_set1_ps(round_magic);
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256 a = _mm256_div_ps(_mm256_loadu_ps(source + i), vscale);
        __m256 b = _mm256_div_ps(_mm256_loadu_ps(source + i + 8), vscale);
        a = _mm256_min_ps(_mm256_max_ps(a, vlow), vhigh);
        b = _mm256_min_ps(_mm256_max_ps(b, vlow), vhigh);
        a = _mm256_sub_ps(_mm256_add_ps(a, magic), magic);
        b = _mm256_sub_ps(_mm256_add_ps(b, magic), magic);
        _mm256_storeu_ps(destination + i, _mm256_mul_ps(a, vscale));
        _mm256_storeu_ps(destination + i + 8, _mm256_mul_ps(b, vscale));
    }
    for (; i + 8 <= count; i += 8) {
        __m256 a = _mm256_div_ps(_mm256_loadu_ps(source + i), vscale);
        a = _mm256_min_ps(_mm256_max_ps(a, vlow), vhigh);
        a = _mm256_sub_ps(_mm256_add_ps(a, magic), magic);
        _mm256_storeu_ps(destination + i, _mm256_mul_ps(a, vscale));
    }
    if (i < count) fake_quantize_generic(source + i, destination + i, count - i, scale, low, high);
}

AVX2 static void fill_avx2(float *values, long count, float value) {
    const __m256 v = _mm256_set1_ps(value);
    long i = 0;
    for (; i + 32 <= count; i += 32) {
        _mm256_storeu_ps(values + i, v);
        _mm256_storeu_ps(values + i + 8, v);
        _mm256_storeu_ps(values + i + 16, v);
        _mm256_storeu_ps(values + i + 24, v);
    }
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(values + i, v);
    for (; i < count; i++) values[i] = value;
}

AVX2 static void bias_clamp_avx2(float *values, long count, float bias, float low, float high) {
    copy_bias_clamp_avx2(values, values, count, bias, low, high);
}

AVX2 static inline __m256 exp_avx2(__m256 x) {
    const __m256 magic = _mm256_set1_ps(round_magic);
    const __m256 clamped = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 shifted = _mm256_fmadd_ps(clamped, _mm256_set1_ps(1.44269504f), magic);
    const __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), clamped);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.1219444e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i exponent = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(magic));
    const __m256i power = _mm256_slli_epi32(_mm256_add_epi32(exponent, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(power));
}

AVX2 static inline __m256 log_avx2(__m256 x) {
    const __m256i bits = _mm256_castps_si256(x);
    __m256i exponent = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xFF)),
                                        _mm256_set1_epi32(127));
    __m256 mantissa = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF)),
                                                          _mm256_set1_epi32(0x3F800000)));
    const __m256 large = _mm256_cmp_ps(mantissa, _mm256_set1_ps(1.4142135f), _CMP_GT_OQ);
    mantissa = _mm256_blendv_ps(mantissa, _mm256_mul_ps(mantissa, _mm256_set1_ps(0.5f)), large);
    exponent = _mm256_sub_epi32(exponent, _mm256_castps_si256(large));  // the mask is -1 where large
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 t = _mm256_div_ps(_mm256_sub_ps(mantissa, one), _mm256_add_ps(mantissa, one));
    const __m256 t2 = _mm256_mul_ps(t, t);
    __m256 series = _mm256_set1_ps(1.0f / 9);
    series = _mm256_fmadd_ps(series, t2, _mm256_set1_ps(1.0f / 7));
    series = _mm256_fmadd_ps(series, t2, _mm256_set1_ps(1.0f / 5));
    series = _mm256_fmadd_ps(series, t2, _mm256_set1_ps(1.0f / 3));
    series = _mm256_fmadd_ps(series, t2, one);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(exponent), _mm256_set1_ps(0.69314718f),
                           _mm256_mul_ps(_mm256_add_ps(t, t), series));
}

/// Broadcast constants of one AdaRound step.
typedef struct adaround_constants_avx2 {
    __m256 spread, gamma, exponent, factor, beta1, beta2, rest1, rest2, step_size, inverse_root2, epsilon;
} adaround_constants_avx2;

/// The rectified sigmoid of the current V, its derivative and the reconstruction gradient
/// through the soft weight (zero where floor + h leaves the grid), for weights `i ..< i + 8`;
/// the gradient read is set to zero.
AVX2 __attribute__((always_inline)) static inline void adaround_chain_avx2(
    const whittle_adaround_buffers *b, const adaround_constants_avx2 *k, long i, __m256 *h, __m256 *derivative, __m256 *g) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 sigma = _mm256_loadu_ps(b->sigmoid + i);
    const __m256 r = _mm256_fmadd_ps(sigma, k->spread, k->gamma);
    *h = _mm256_min_ps(_mm256_max_ps(r, zero), one);
    const __m256 outside = _mm256_or_ps(_mm256_cmp_ps(r, zero, _CMP_LT_OQ), _mm256_cmp_ps(r, one, _CMP_GT_OQ));
    *derivative = _mm256_andnot_ps(outside, _mm256_mul_ps(_mm256_mul_ps(sigma, _mm256_sub_ps(one, sigma)), k->spread));
    const __m256 u = _mm256_add_ps(_mm256_loadu_ps(b->floor_w + i), *h);
    const __m256 off_grid = _mm256_or_ps(_mm256_cmp_ps(u, _mm256_loadu_ps(b->low + i), _CMP_LT_OQ),
                                         _mm256_cmp_ps(u, _mm256_loadu_ps(b->high + i), _CMP_GT_OQ));
    const __m256 chain = _mm256_andnot_ps(off_grid, _mm256_mul_ps(_mm256_loadu_ps(b->scale + i), *derivative));
    *g = _mm256_mul_ps(_mm256_loadu_ps(b->gradient + i), chain);
    _mm256_storeu_ps(b->gradient + i, zero);
}

/// The regulariser's gradient `lambda * (-2 beta |2h - 1|^(beta - 1) sign(2h - 1)) * h'(V)`.
AVX2 __attribute__((always_inline)) static inline __m256 adaround_regulariser_avx2(
    const adaround_constants_avx2 *k, __m256 h, __m256 derivative) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), sign_bit = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_fmsub_ps(h, _mm256_set1_ps(2.0f), one);
    const __m256 magnitude = _mm256_andnot_ps(sign_bit, a);
    const __m256 small = _mm256_cmp_ps(magnitude, _mm256_set1_ps(1e-30f), _CMP_LT_OQ);
    const __m256 logarithm = _mm256_blendv_ps(log_avx2(_mm256_blendv_ps(magnitude, one, small)), _mm256_set1_ps(-100.0f), small);
    const __m256 power = exp_avx2(_mm256_mul_ps(logarithm, k->exponent));
    const __m256 negative = _mm256_and_ps(_mm256_cmp_ps(a, zero, _CMP_LT_OQ), sign_bit);
    return _mm256_xor_ps(_mm256_mul_ps(_mm256_mul_ps(k->factor, power), derivative), negative);
}

/// Adam on `V` with gradient `g`, then the new `sigmoid(V)` and soft weight, stored.
AVX2 __attribute__((always_inline)) static inline void adaround_adam_avx2(
    const whittle_adaround_buffers *b, const adaround_constants_avx2 *k, long i, __m256 g) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), sign_bit = _mm256_set1_ps(-0.0f);
    const __m256 m = _mm256_fmadd_ps(_mm256_loadu_ps(b->first_moment + i), k->beta1, _mm256_mul_ps(g, k->rest1));
    const __m256 s = _mm256_fmadd_ps(_mm256_loadu_ps(b->second_moment + i), k->beta2, _mm256_mul_ps(_mm256_mul_ps(g, g), k->rest2));
    _mm256_storeu_ps(b->first_moment + i, m);
    _mm256_storeu_ps(b->second_moment + i, s);
    const __m256 denominator = _mm256_fmadd_ps(_mm256_sqrt_ps(s), k->inverse_root2, k->epsilon);
    const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(b->v + i), _mm256_div_ps(_mm256_mul_ps(k->step_size, m), denominator));
    _mm256_storeu_ps(b->v + i, v);
    const __m256 sigma = _mm256_div_ps(one, _mm256_add_ps(one, exp_avx2(_mm256_xor_ps(v, sign_bit))));
    const __m256 h = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(sigma, k->spread, k->gamma), zero), one);
    const __m256 u = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(_mm256_loadu_ps(b->floor_w + i), h), _mm256_loadu_ps(b->low + i)),
                                   _mm256_loadu_ps(b->high + i));
    _mm256_storeu_ps(b->sigmoid + i, sigma);
    _mm256_storeu_ps(b->soft + i, _mm256_mul_ps(_mm256_loadu_ps(b->scale + i), u));
}

/// 32 weights per step as four independent 8-wide chains (one chain is a long dependency
/// path, exp and divisions included, so interleaving four keeps the core busy), then 8 at a
/// time, then the scalar version for a tail.
AVX2 static void adaround_update_avx2(const whittle_adaround_buffers *b, const whittle_adaround_step *c, long start, long end) {
    const adaround_constants_avx2 k = {
        .spread = _mm256_set1_ps(c->zeta - c->gamma), .gamma = _mm256_set1_ps(c->gamma),
        .exponent = _mm256_set1_ps(c->beta - 1), .factor = _mm256_set1_ps(-2 * c->beta * c->regularization),
        .beta1 = _mm256_set1_ps(c->beta1), .beta2 = _mm256_set1_ps(c->beta2),
        .rest1 = _mm256_set1_ps(1 - c->beta1), .rest2 = _mm256_set1_ps(1 - c->beta2),
        .step_size = _mm256_set1_ps(c->step_size), .inverse_root2 = _mm256_set1_ps(c->inverse_root2),
        .epsilon = _mm256_set1_ps(c->epsilon),
    };
    const __m256 zero = _mm256_setzero_ps();
    const int regularised = c->regularised;
    long i = start;
    for (; i + 32 <= end; i += 32) {
        __m256 h[4], derivative[4], g[4];
        int moving = 0;
        for (int j = 0; j < 4; j++) {
            adaround_chain_avx2(b, &k, i + 8 * j, &h[j], &derivative[j], &g[j]);
            moving |= _mm256_movemask_ps(_mm256_cmp_ps(derivative[j], zero, _CMP_NEQ_UQ));
        }
        // The regulariser's gradient carries the factor h'(V), zero for every weight whose h
        // has settled at 0 or 1 (most of them late in the optimisation).
        if (regularised && moving) {
            for (int j = 0; j < 4; j++) g[j] = _mm256_add_ps(g[j], adaround_regulariser_avx2(&k, h[j], derivative[j]));
        }
        for (int j = 0; j < 4; j++) adaround_adam_avx2(b, &k, i + 8 * j, g[j]);
    }
    for (; i + 8 <= end; i += 8) {
        __m256 h, derivative, g;
        adaround_chain_avx2(b, &k, i, &h, &derivative, &g);
        if (regularised) g = _mm256_add_ps(g, adaround_regulariser_avx2(&k, h, derivative));
        adaround_adam_avx2(b, &k, i, g);
    }
    for (; i < end; i++) adaround_update_one(b, c, i);
}

/// Eight values per step: vector bin indices, then eight scalar increments spread over the
/// four count lanes (so runs of equal values do not serialise on one counter).
AVX2 static void histogram_count_avx2(const float *values, long count, float low, float inverse, float last,
                                      uint32_t *h0, uint32_t *h1, uint32_t *h2, uint32_t *h3) {
#pragma clang fp contract(off)
    const __m256 vlow = _mm256_set1_ps(low), vinverse = _mm256_set1_ps(inverse), half = _mm256_set1_ps(0.5f);
    const __m256 zero = _mm256_setzero_ps(), vlast = _mm256_set1_ps(last), magic = _mm256_set1_ps(round_magic);
    __attribute__((aligned(32))) uint32_t index[8];
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = _mm256_sub_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(values + i), vlow), vinverse), half);
        g = _mm256_and_ps(_mm256_cmp_ps(g, zero, _CMP_GT_OQ), g);  // g <= 0 and NaN: 0
        g = _mm256_min_ps(g, vlast);
        _mm256_store_si256((__m256i *)index, _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(g, magic)),
                                                              _mm256_castps_si256(magic)));
        h0[index[0]] += 1;
        h1[index[1]] += 1;
        h2[index[2]] += 1;
        h3[index[3]] += 1;
        h0[index[4]] += 1;
        h1[index[5]] += 1;
        h2[index[6]] += 1;
        h3[index[7]] += 1;
    }
    histogram_count_generic(values + i, count - i, low, inverse, last, h0, h1, h2, h3);
}

static int use_avx2;

__attribute__((constructor)) static void whittle_kernels_detect(void) {
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static const int use_avx2 = 0;
#endif

int whittle_kernels_vectorised(void) { return use_avx2; }

void whittle_depthwise_rows(const float *in, const long *offsets, long taps, const float *weights,
                            float bias, float low, float high, long rows, long columns, long pitch,
                            float *out) {
#ifdef WHITTLE_X86
    if (use_avx2) {
        depthwise_rows_avx2(in, offsets, taps, weights, bias, low, high, rows, columns, pitch, out);
        return;
    }
#endif
    depthwise_rows_generic(in, offsets, taps, weights, bias, low, high, rows, columns, pitch, out);
}

void whittle_bias_clamp(float *values, long count, float bias, float low, float high) {
#ifdef WHITTLE_X86
    if (use_avx2) {
        bias_clamp_avx2(values, count, bias, low, high);
        return;
    }
#endif
    bias_clamp_generic(values, count, bias, low, high);
}

void whittle_fill(float *values, long count, float value) {
#ifdef WHITTLE_X86
    if (use_avx2) {
        fill_avx2(values, count, value);
        return;
    }
#endif
    for (long i = 0; i < count; i++) values[i] = value;
}

void whittle_copy_bias_clamp(const float *source, float *destination, long count, float bias, float low, float high) {
#ifdef WHITTLE_X86
    if (use_avx2) {
        copy_bias_clamp_avx2(source, destination, count, bias, low, high);
        return;
    }
#endif
    copy_bias_clamp_generic(source, destination, count, bias, low, high);
}

// no_builtin: the rows are short, so library memcpy/memset calls would cost more than the copies.
__attribute__((no_builtin("memcpy", "memset"))) static inline void im2col_tap(const float *restrict source, long inH, long inW, long outH, long outW, long strideH,
                              long strideW, long y0, long x0, long lo, long hi, float *restrict out) {
    for (long oy = 0; oy < outH; oy++) {
        float *o = out + oy * outW;
        const long iy = oy * strideH + y0;
        if (iy < 0 || iy >= inH) {
            for (long ox = 0; ox < outW; ox++) o[ox] = 0;
            continue;
        }
        const float *s = source + iy * inW + x0;
        for (long ox = 0; ox < lo; ox++) o[ox] = 0;
        if (strideW == 1) {
#if defined(__SSE2__)
            // Rows are short: 4 floats per step, the last step overlapping the previous one
            // (rewriting the same values) instead of a scalar tail.
            const long count = hi - lo;
            if (count >= 4) {
                for (long ox = lo; ox + 4 <= hi; ox += 4) _mm_storeu_ps(o + ox, _mm_loadu_ps(s + ox));
                _mm_storeu_ps(o + hi - 4, _mm_loadu_ps(s + hi - 4));
            } else {
                for (long ox = lo; ox < hi; ox++) o[ox] = s[ox];
            }
#else
            for (long ox = lo; ox < hi; ox++) o[ox] = s[ox];
#endif
        } else {
            for (long ox = lo; ox < hi; ox++) o[ox] = s[ox * strideW];
        }
        for (long ox = hi > lo ? hi : lo; ox < outW; ox++) o[ox] = 0;
    }
}

void whittle_im2col_tap(const float *source, long inH, long inW, long outH, long outW, long strideH, long strideW,
                        long y0, long x0, long lo, long hi, float *out) {
    im2col_tap(source, inH, inW, outH, outW, strideH, strideW, y0, x0, lo, hi, out);
}

void whittle_im2col_tap_images(const float *source, long sourceStride, long images, long inH, long inW, long outH,
                               long outW, long strideH, long strideW, long y0, long x0, long lo, long hi,
                               float *out, long outStride) {
    if (strideH == 1 && strideW == 1 && y0 == 0 && x0 == 0 && lo == 0 && hi == outW && inW == outW && outH <= inH) {
        // Unpadded, unit-stride tap (every tap of a 1x1 convolution): each image's rows are
        // one contiguous run, copied whole instead of row by row.
        for (long image = 0; image < images; image++) {
            memcpy(out + image * outStride, source + image * sourceStride, (size_t)(outH * outW) * sizeof(float));
        }
        return;
    }
    for (long image = 0; image < images; image++) {
        im2col_tap(source + image * sourceStride, inH, inW, outH, outW, strideH, strideW, y0, x0, lo, hi,
                           out + image * outStride);
    }
}

#ifdef WHITTLE_X86
/// Flush-to-zero and denormals-are-zero on (MXCSR bits 15 and 6); returns the previous state.
static unsigned int flush_denormals(void) {
    const unsigned int previous = _mm_getcsr();
    _mm_setcsr(previous | 0x8040);
    return previous;
}
#endif

void whittle_adaround_update(const whittle_adaround_buffers *buffers, const whittle_adaround_step *step, long start, long end) {
#ifdef WHITTLE_X86
    const unsigned int csr = flush_denormals();
    if (use_avx2) adaround_update_avx2(buffers, step, start, end);
    else adaround_update_generic(buffers, step, start, end);
    _mm_setcsr(csr);
#else
    adaround_update_generic(buffers, step, start, end);
#endif
}

void whittle_adaround_update_portable(const whittle_adaround_buffers *buffers, const whittle_adaround_step *step, long start, long end) {
#ifdef WHITTLE_X86
    const unsigned int csr = flush_denormals();
    adaround_update_generic(buffers, step, start, end);
    _mm_setcsr(csr);
#else
    adaround_update_generic(buffers, step, start, end);
#endif
}

void whittle_gather_rows(const float *source, const long *rows, long count, long width, float *destination) {
    const size_t bytes = (size_t)width * sizeof(float);
    for (long i = 0; i < count; i++) memcpy(destination + i * width, source + rows[i] * width, bytes);
}

void whittle_prefetch_rows(const float *source, const long *rows, long count, long width) {
    const long bytes = width * (long)sizeof(float);
    for (long i = 0; i < count; i++) {
        const char *row = (const char *)(source + rows[i] * width);
        for (long offset = 0; offset < bytes; offset += 64) __builtin_prefetch(row + offset, 0, 2);
        // The last line, when the row ends in a line the loop did not touch.
        if (((uintptr_t)(row + bytes - 1) >> 6) != ((uintptr_t)(row + (bytes - 1) / 64 * 64) >> 6)) {
            __builtin_prefetch(row + bytes - 1, 0, 2);
        }
    }
}

void whittle_histogram_count(const float *values, long count, float low, float inverse, float last,
                             uint32_t *h0, uint32_t *h1, uint32_t *h2, uint32_t *h3) {
#ifdef WHITTLE_X86
    if (use_avx2) {
        histogram_count_avx2(values, count, low, inverse, last, h0, h1, h2, h3);
        return;
    }
#endif
    histogram_count_generic(values, count, low, inverse, last, h0, h1, h2, h3);
}

void whittle_histogram_count_portable(const float *values, long count, float low, float inverse, float last,
                                      uint32_t *h0, uint32_t *h1, uint32_t *h2, uint32_t *h3) {
    histogram_count_generic(values, count, low, inverse, last, h0, h1, h2, h3);
}

void whittle_fake_quantize(const float *source, float *destination, long count, float scale, float low, float high) {
#ifdef WHITTLE_X86
    if (use_avx2) {
        fake_quantize_avx2(source, destination, count, scale, low, high);
        return;
    }
#endif
    fake_quantize_generic(source, destination, count, scale, low, high);
}

void whittle_fake_quantize_portable(const float *source, float *destination, long count, float scale, float low, float high) {
    fake_quantize_generic(source, destination, count, scale, low, high);
}

#include "CWhittleKernels.h"

#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

static void copy_bias_clamp_generic(const float *source, float *destination, long count, float bias, float low, float high) {
    for (long i = 0; i < count; i++) destination[i] = clampf(source[i] + bias, low, high);
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

/// One row of up to `columns` outputs for any number of taps: 16 columns per step with the
/// tap weights broadcast once per step, then 8, then a masked tail.
AVX2 static void depthwise_row_avx2(const float *row, const long *offsets, long taps, const float *weights,
                                    __m256 vbias, __m256 vlow, __m256 vhigh, long columns, float *target,
                                    const float *limit) {
    long ox = 0;
    for (; ox + 16 <= columns; ox += 16) {
        __m256 a = vbias, b = vbias;
        for (long t = 0; t < taps; t++) {
            const float *s = row + offsets[t] + ox;
            __m256 w = _mm256_broadcast_ss(weights + t);
            a = _mm256_fmadd_ps(w, _mm256_loadu_ps(s), a);
            b = _mm256_fmadd_ps(w, _mm256_loadu_ps(s + 8), b);
        }
        _mm256_storeu_ps(target + ox, _mm256_min_ps(vhigh, _mm256_max_ps(vlow, a)));
        _mm256_storeu_ps(target + ox + 8, _mm256_min_ps(vhigh, _mm256_max_ps(vlow, b)));
    }
    for (; ox < columns; ox += 8) {
        __m256 a = vbias;
        for (long t = 0; t < taps; t++) {
            a = _mm256_fmadd_ps(_mm256_broadcast_ss(weights + t), _mm256_loadu_ps(row + offsets[t] + ox), a);
        }
        a = _mm256_min_ps(vhigh, _mm256_max_ps(vlow, a));
        store_row_part(target + ox, a, columns - ox, limit);
    }
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

/// Any number of taps, four output rows at a time: a tile of 4 rows x `V` vectors of 8
/// columns keeps 4V independent accumulators, so the FMA chains (one per tap) overlap instead
/// of waiting on each other, and each broadcast weight serves 4V FMAs. Rows left over go
/// through `depthwise_row_avx2`.
#define DEPTHWISE_TILE(V)                                                                          \
    do {                                                                                           \
        __m256 acc[4][V];                                                                          \
        for (int r = 0; r < 4; r++)                                                                \
            for (int v = 0; v < V; v++) acc[r][v] = vbias;                                         \
        for (long t = 0; t < taps; t++) {                                                          \
            const __m256 w = _mm256_broadcast_ss(weights + t);                                     \
            const float *s = in + offsets[t] + oy * pitch + ox;                                    \
            for (int r = 0; r < 4; r++)                                                            \
                for (int v = 0; v < V; v++)                                                        \
                    acc[r][v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(s + r * pitch + 8 * v), acc[r][v]); \
        }                                                                                          \
        for (int r = 0; r < 4; r++) {                                                              \
            float *target = out + (oy + r) * columns + ox;                                         \
            for (int v = 0; v < V; v++) {                                                          \
                __m256 a = _mm256_min_ps(vhigh, _mm256_max_ps(vlow, acc[r][v]));                   \
                store_row_part(target + 8 * v, a, columns - ox - 8 * v, tile_limit);              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

AVX2 static void depthwise_rows_tiled_avx2(const float *in, const long *offsets, long taps, const float *weights,
                                           __m256 vbias, __m256 vlow, __m256 vhigh, long rows, long columns,
                                           long pitch, float *out) {
    const float *limit = out + rows * columns;
    // Tiles store row by row, so a row's extra lanes may only spill onto the next row when a
    // tile spans whole rows (one column step); otherwise that row's head is already written.
    const float *tile_limit = columns <= 16 ? limit : out;
    long oy = 0;
    for (; oy + 4 <= rows; oy += 4) {
        long ox = 0;
        for (; columns - ox > 8; ox += 16) DEPTHWISE_TILE(2);
        if (ox < columns) DEPTHWISE_TILE(1);
    }
    for (; oy < rows; oy++) {
        depthwise_row_avx2(in + oy * pitch, offsets, taps, weights, vbias, vlow, vhigh, columns, out + oy * columns,
                           limit);
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

AVX2 static void bias_clamp_avx2(float *values, long count, float bias, float low, float high) {
    copy_bias_clamp_avx2(values, values, count, bias, low, high);
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
    for (long image = 0; image < images; image++) {
        im2col_tap(source + image * sourceStride, inH, inW, outH, outW, strideH, strideW, y0, x0, lo, hi,
                           out + image * outStride);
    }
}

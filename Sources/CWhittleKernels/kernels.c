#include "CWhittleKernels.h"

#include <math.h>

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

/// Lane masks for a tail of `n` (0...8) floats.
static const int tail_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

AVX2 static inline __m256i tail_mask(long n) {
    return _mm256_loadu_si256((const __m256i *)(tail_masks + 8 - n));
}

/// One row of up to `columns` outputs for any number of taps: 16 columns per step with the
/// tap weights broadcast once per step, then 8, then a masked tail.
AVX2 static void depthwise_row_avx2(const float *row, const long *offsets, long taps, const float *weights,
                                    __m256 vbias, __m256 vlow, __m256 vhigh, long columns, float *target) {
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
        long left = columns - ox;
        if (left >= 8) _mm256_storeu_ps(target + ox, a);
        else _mm256_maskstore_ps(target + ox, tail_mask(left), a);
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
            long left = columns - ox;
            if (left >= 8) _mm256_storeu_ps(target + ox, a);
            else _mm256_maskstore_ps(target + ox, tail_mask(left), a);
        }
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
    for (long oy = 0; oy < rows; oy++) {
        depthwise_row_avx2(in + oy * pitch, offsets, taps, weights, vbias, vlow, vhigh, columns, out + oy * columns);
    }
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

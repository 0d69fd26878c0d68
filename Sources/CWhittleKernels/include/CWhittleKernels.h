#ifndef CWHITTLE_KERNELS_H
#define CWHITTLE_KERNELS_H

/// Vectorised inner loops of Whittle's direct (non-GEMM) kernels. Each function has an
/// AVX2+FMA version and a portable one; the AVX2 version is chosen once at load time when the
/// CPU supports it (the Swift code is built for baseline x86-64, i.e. SSE2 without FMA).

/// Depthwise rows: for every output row `oy < rows` and column `ox < columns`,
/// `out[oy * columns + ox] = clamp(bias + sum_t weights[t] * in[offsets[t] + oy * pitch + ox], low, high)`.
/// `in` must stay readable 16 floats past the last element a tap reads (the phase buffers
/// carry that slack).
void whittle_depthwise_rows(const float *in, const long *offsets, long taps, const float *weights,
                            float bias, float low, float high, long rows, long columns, long pitch,
                            float *out);

/// `values[i] = clamp(values[i] + bias, low, high)` for `i < count`.
void whittle_bias_clamp(float *values, long count, float bias, float low, float high);

/// `destination[i] = clamp(source[i] + bias, low, high)` for `i < count`.
void whittle_copy_bias_clamp(const float *source, float *destination, long count, float bias, float low, float high);

/// im2col of one input plane for one kernel tap: for `oy < outH`, `ox < outW`,
/// `out[oy * outW + ox] = source[(oy * strideH + y0) * inW + ox * strideW + x0]`, or 0 where that
/// row lies outside `[0, inH)` or `ox` outside `[lo, hi)` (the outputs whose column is inside
/// the plane, computed by the caller).
void whittle_im2col_tap(const float *source, long inH, long inW, long outH, long outW, long strideH, long strideW,
                        long y0, long x0, long lo, long hi, float *out);

/// `whittle_im2col_tap` for `images` planes `sourceStride` floats apart, written
/// `outStride` floats apart (several images side by side in one column matrix).
void whittle_im2col_tap_images(const float *source, long sourceStride, long images, long inH, long inW, long outH,
                               long outW, long strideH, long strideW, long y0, long x0, long lo, long hi,
                               float *out, long outStride);

/// 1 when the AVX2+FMA versions are in use.
int whittle_kernels_vectorised(void);

#endif

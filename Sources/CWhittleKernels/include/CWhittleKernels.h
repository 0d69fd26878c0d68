#ifndef CWHITTLE_KERNELS_H
#define CWHITTLE_KERNELS_H

#include <stdint.h>

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
/// `values[i] = value` for i < count (a GEMM's output prefilled with its bias), 32 bytes per
/// store where the CPU has AVX2.
void whittle_fill(float *values, long count, float value);

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

/// The per-weight buffers of one AdaRound layer problem (all the same length).
typedef struct whittle_adaround_buffers {
    /// Rounding variables `V`, Adam's moments, `sigmoid(V)` and the soft weights `W~`: updated.
    float *v;
    float *first_moment;
    float *second_moment;
    float *sigmoid;
    float *soft;
    /// `dL/dW~` of the reconstruction loss (from the weight-gradient GEMM): read, then set to
    /// zero, so the next weight-gradient GEMM can accumulate into it (beta 1) and BLAS skips
    /// its separate pass zeroing the output.
    float *gradient;
    /// `floor(W / s)`, the grid step `s` and the grid's ends in steps (`offset`, `offset + steps`).
    const float *floor_w;
    const float *scale;
    const float *low;
    const float *high;
} whittle_adaround_buffers;

/// The constants of one AdaRound iteration.
typedef struct whittle_adaround_step {
    /// Stretch of the rectified sigmoid `h(V) = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1)`.
    float zeta;
    float gamma;
    /// Non-zero when the rounding regulariser `lambda sum (1 - |2h - 1|^beta)` is on.
    int regularised;
    float beta;
    float regularization;
    /// Adam: `beta1`, `beta2`, `epsilon`, and the bias corrections folded into
    /// `step_size = lr / (1 - beta1^t)` and `inverse_root2 = 1 / sqrt(1 - beta2^t)`.
    float beta1;
    float beta2;
    float epsilon;
    float step_size;
    float inverse_root2;
} whittle_adaround_step;

/// One fused AdaRound step for weights `start <= i < end` (Nagel et al. 2020; torch's Adam):
///
///     g  = dL/dW~ * s * 1[low <= floor + h <= high] * h'(V)
///          + lambda * (-2 beta |2h - 1|^(beta - 1) sign(2h - 1)) * h'(V)     (when regularised)
///     m  = beta1 m + (1 - beta1) g,   v2 = beta2 v2 + (1 - beta2) g^2
///     V -= step_size * m / (sqrt(v2) * inverse_root2 + epsilon)
///
/// with `h` and `h'` taken from the stored `sigmoid` (the current `V`), then stores the new
/// `sigmoid(V)` and soft weights `s * clamp(floor + h(V), low, high)`. `e^x` and `log` are
/// polynomial approximations (relative error about 1e-7, the same as the Swift reference).
/// Denormal values are flushed to zero while it runs (on x86): Adam's moments of weights whose
/// `h` has settled decay through the denormal range, where every operation would cost a
/// microcode assist, and values below 1.2e-38 cannot move `V`.
void whittle_adaround_update(const whittle_adaround_buffers *buffers, const whittle_adaround_step *step, long start, long end);

/// The portable version of `whittle_adaround_update` (tests compare the two).
void whittle_adaround_update_portable(const whittle_adaround_buffers *buffers, const whittle_adaround_step *step, long start, long end);

/// Copies rows `rows[i]` (each `width` floats) of `source` to row `i` of `destination`, `i < count`.
void whittle_gather_rows(const float *source, const long *rows, long count, long width, float *destination);

/// Asks the CPU to bring the rows `whittle_gather_rows` would read into cache (no effect on results).
void whittle_prefetch_rows(const float *source, const long *rows, long count, long width);

/// One histogram pass (GrowingHistogram): for each of `count` values, the count of bin
/// `round_half_even(clamp((x - low) * inverse - 1/2, 0, last))` (multiply and subtract rounded
/// separately; NaN goes to bin 0) is incremented, in lane `h0`, `h1`, `h2` or `h3` by the
/// value's index modulo 4 (a run of equal values then does not serialise on one counter).
void whittle_histogram_count(const float *values, long count, float low, float inverse, float last,
                             uint32_t *h0, uint32_t *h1, uint32_t *h2, uint32_t *h3);

/// The portable version of `whittle_histogram_count` (tests compare the two).
void whittle_histogram_count_portable(const float *values, long count, float low, float inverse, float last,
                                      uint32_t *h0, uint32_t *h1, uint32_t *h2, uint32_t *h3);

/// Fake quantization on a per-tensor grid (FakeQuantize in Whittle's simulation):
/// `destination[i] = round_half_even(clamp(source[i] / scale, low, high)) * scale` with true
/// division, the clamp written `v > low ? v : low` then `v < high ? v : high` (NaN goes to
/// `low`), and rounding by adding and subtracting 1.5 * 2^23 (exact for |v| <= 2^22).
/// `source` may equal `destination`.
void whittle_fake_quantize(const float *source, float *destination, long count, float scale, float low, float high);

/// The portable version of `whittle_fake_quantize` (tests compare the two).
void whittle_fake_quantize_portable(const float *source, float *destination, long count, float scale, float low, float high);

/// 1 when the AVX2+FMA versions are in use.
int whittle_kernels_vectorised(void);

#endif

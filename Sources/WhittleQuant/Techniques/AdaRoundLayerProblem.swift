import COpenBLAS
import WhittleEngine

/// One linear layer in GEMM form, as AdaRound and Sequential MSE see it:
///
///     y[r, o] = sum_k W[o, k] * patch_g(o)[r, k] + bias[o]
///
/// for cached rows `r` (one output position of one image each) and output channels `o`.
/// A Conv with `G` groups has `G` patch matrices (im2col of the group's input channels; the
/// patch index `k = (c * kH + kh) * kW + kw` matches the weight layout `[O, C/G, kH, kW]`);
/// output channel `o` belongs to group `o / (O / G)`. Gemm and MatMul have one group and a
/// patch is one input row.
///
/// `targets` are the layer outputs AdaRound reconstructs (AIMET: the float layer's output on
/// float-model inputs, before the following activation); `activation` is applied to both
/// sides of the reconstruction loss when the layer is followed by a ReLU or Clip, as AIMET does.
public struct AdaRoundLayerProblem: Sendable {
    public var groups: Int
    public var outputChannels: Int
    /// Patch length per group (`C/G * kH * kW` for Conv, the input width for Gemm/MatMul).
    public var patchSize: Int
    public var rowCount: Int
    /// `[outputChannels x patchSize]`, row `o` = output channel `o`.
    public var weights: [Float]
    /// `[outputChannels]` (zeros when the layer has no bias).
    public var bias: [Float]
    /// `[groups][rowCount][patchSize]`.
    public var patches: [Float]
    /// `[rowCount][outputChannels]` target outputs (before any activation).
    public var targets: [Float]
    /// The image each row was taken from, non-decreasing (minibatches draw whole images).
    public var imageOfRow: [Int]
    /// Activation applied to prediction and target inside the reconstruction loss.
    public var activation: FusedActivation

    public init(groups: Int = 1, outputChannels: Int, patchSize: Int, rowCount: Int, weights: [Float], bias: [Float]? = nil,
                patches: [Float], targets: [Float], imageOfRow: [Int]? = nil,
                activation: FusedActivation = .none) throws {
        func fail(_ message: String) -> WhittleError { WhittleError(.invalidArgument, "AdaRound layer problem", message) }
        guard groups >= 1, outputChannels >= 1, patchSize >= 1, rowCount >= 1, outputChannels % groups == 0 else {
            throw fail("needs groups >= 1 dividing outputChannels >= 1, patchSize >= 1 and rowCount >= 1 (got \(groups), \(outputChannels), \(patchSize), \(rowCount))")
        }
        guard weights.count == outputChannels * patchSize else {
            throw fail("weights hold \(weights.count) values, expected \(outputChannels) x \(patchSize)")
        }
        guard patches.count == groups * rowCount * patchSize else {
            throw fail("patches hold \(patches.count) values, expected \(groups) x \(rowCount) x \(patchSize)")
        }
        guard targets.count == rowCount * outputChannels else {
            throw fail("targets hold \(targets.count) values, expected \(rowCount) x \(outputChannels)")
        }
        let bias = bias ?? [Float](repeating: 0, count: outputChannels)
        guard bias.count == outputChannels else { throw fail("bias holds \(bias.count) values, expected \(outputChannels)") }
        let images = imageOfRow ?? Array(0..<rowCount)
        guard images.count == rowCount, zip(images, images.dropFirst()).allSatisfy({ $0 <= $1 }), (images.first ?? 0) >= 0 else {
            throw fail("imageOfRow must hold \(rowCount) non-negative, non-decreasing image indices")
        }
        self.groups = groups
        self.outputChannels = outputChannels
        self.patchSize = patchSize
        self.rowCount = rowCount
        self.weights = weights
        self.bias = bias
        self.patches = patches
        self.targets = targets
        self.imageOfRow = images
        self.activation = activation
    }

    /// Output channels per group.
    public var channelsPerGroup: Int { outputChannels / groups }

    /// `[start, end)` row ranges of each image, in image order.
    var imageRowRanges: [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        for row in 1...rowCount where row == rowCount || imageOfRow[row] != imageOfRow[row - 1] {
            ranges.append(start..<row)
            start = row
        }
        return ranges
    }

    /// Reconstruction loss of `weights` (`[O x K]`) over all rows: the mean over rows of the
    /// squared norm over channels of `f(W P + b) - f(Y)` (AIMET's `compute_recon_loss`: sum over
    /// the channel dimension, mean over batch and spatial positions).
    public func reconstructionLoss(weights candidate: [Float]) -> Double {
        guard candidate.count == weights.count else { return .nan }
        let chunk = 1024
        let outputs = outputChannels
        var buffer = [Float](repeating: 0, count: min(chunk, rowCount) * outputs)
        var total = 0.0
        candidate.withUnsafeBufferPointer { w in
            patches.withUnsafeBufferPointer { p in
                targets.withUnsafeBufferPointer { y in
                    buffer.withUnsafeMutableBufferPointer { out in
                        guard let w = w.baseAddress, let p = p.baseAddress, let y = y.baseAddress, let out = out.baseAddress else { return }
                        var start = 0
                        while start < rowCount {
                            let count = min(chunk, rowCount - start)
                            AdaRoundAlgebra.forward(groups: groups, channelsPerGroup: channelsPerGroup, patchSize: patchSize,
                                                    rows: count, patches: p + start * patchSize, groupStride: rowCount * patchSize,
                                                    weights: w, output: out)
                            for r in 0..<count {
                                for o in 0..<outputs {
                                    let difference = activation.apply(out[r * outputs + o] + bias[o]) - activation.apply(y[(start + r) * outputs + o])
                                    total += Double(difference * difference)
                                }
                            }
                            start += count
                        }
                    }
                }
            }
        }
        return total / Double(rowCount)
    }
}

/// The dense algebra shared by AdaRound and Sequential MSE: grouped forward and weight-gradient
/// products through OpenBLAS, with a direct loop for depthwise-like groups (one output channel
/// and a short patch per group, where a BLAS call per group would cost more than the work).
enum AdaRoundAlgebra {
    /// Whether grouped products use the direct loop. The loop runs on one thread unless a call
    /// holds more than about 2^17 multiply-adds per thread (a minibatch never does; thread
    /// hand-offs would cost more than the work).
    static func usesDirectLoop(groups: Int, channelsPerGroup: Int, patchSize: Int) -> Bool {
        groups > 1 && channelsPerGroup * patchSize <= 64
    }

    /// `output[r, o] = sum_k patches_g(o)[r, k] * weights[o, k]` for `rows` rows; `output` is
    /// `[rows x O]`, group `g`'s patches start at `patches + g * groupStride` (row stride `patchSize`).
    static func forward(groups: Int, channelsPerGroup: Int, patchSize: Int, rows: Int,
                        patches: UnsafePointer<Float>, groupStride: Int,
                        weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let outputs = groups * channelsPerGroup
        if usesDirectLoop(groups: groups, channelsPerGroup: channelsPerGroup, patchSize: patchSize) {
            parallelFor(groups, grain: max(1, (1 << 17) / max(1, rows * patchSize * channelsPerGroup))) { g in
                let p = patches + g * groupStride
                for j in 0..<channelsPerGroup {
                    let o = g * channelsPerGroup + j
                    let w = weights + o * patchSize
                    for r in 0..<rows {
                        let row = p + r * patchSize
                        var sum: Float = 0
                        for k in 0..<patchSize { sum += row[k] * w[k] }
                        output[r * outputs + o] = sum
                    }
                }
            }
            return
        }
        for g in 0..<groups {
            cblas_sgemm_rowMajor(transA: false, transB: true, m: rows, n: channelsPerGroup, k: patchSize,
                                 a: patches + g * groupStride, lda: patchSize,
                                 b: weights + g * channelsPerGroup * patchSize, ldb: patchSize,
                                 c: output + g * channelsPerGroup, ldc: outputs)
        }
    }

    /// `gradient[o, k] = sum_r diff[r, o] * patches_g(o)[r, k]` (the weight gradient of a loss
    /// whose output gradient is `diff`, `[rows x O]`).
    ///
    /// - Parameter gradientIsZero: the caller guarantees `gradient` holds zeros, so the BLAS
    ///   products accumulate into it (beta 1) and skip OpenBLAS's separate zeroing pass.
    static func weightGradient(groups: Int, channelsPerGroup: Int, patchSize: Int, rows: Int,
                               patches: UnsafePointer<Float>, groupStride: Int,
                               diff: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, gradientIsZero: Bool = false) {
        let outputs = groups * channelsPerGroup
        if usesDirectLoop(groups: groups, channelsPerGroup: channelsPerGroup, patchSize: patchSize) {
            parallelFor(groups, grain: max(1, (1 << 17) / max(1, rows * patchSize * channelsPerGroup))) { g in
                let p = patches + g * groupStride
                for j in 0..<channelsPerGroup {
                    let o = g * channelsPerGroup + j
                    let out = gradient + o * patchSize
                    for k in 0..<patchSize { out[k] = 0 }
                    for r in 0..<rows {
                        let d = diff[r * outputs + o]
                        let row = p + r * patchSize
                        for k in 0..<patchSize { out[k] += d * row[k] }
                    }
                }
            }
            return
        }
        for g in 0..<groups {
            cblas_sgemm_rowMajor(transA: true, transB: false, m: channelsPerGroup, n: patchSize, k: rows,
                                 a: diff + g * channelsPerGroup, lda: outputs,
                                 b: patches + g * groupStride, ldb: patchSize,
                                 c: gradient + g * channelsPerGroup * patchSize, ldc: patchSize, accumulate: gradientIsZero)
        }
    }
}

/// `C = op(A) * op(B)` (row-major, beta 0) through OpenBLAS; with `accumulate`,
/// `C += op(A) * op(B)` (beta 1).
@inline(__always)
func cblas_sgemm_rowMajor(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = 0 } } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), 1, a, Int32(max(1, lda)), b, Int32(max(1, ldb)), accumulate ? 1 : 0,
                c, Int32(max(1, ldc)))
}

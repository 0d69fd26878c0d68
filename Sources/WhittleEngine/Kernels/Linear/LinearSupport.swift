import COpenBLAS
import CWhittleKernels

/// Immutable storage a compiled linear kernel owns (pre-packed weights, index tables).
///
/// Written once in `makeKernel`, only read afterwards, so sharing it across threads is safe.
final class LinearTable<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ values: [Element]) {
        count = values.count
        base = UnsafeMutablePointer<Element>.allocate(capacity: max(1, values.count))
        values.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { base.initialize(from: address, count: values.count) }
        }
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    @inline(__always) subscript(index: Int) -> Element { base[index] }
}

/// Row-major single-precision GEMM through OpenBLAS: `C = alpha * op(A) * op(B) + beta * C`,
/// with `op(A)` of shape m x k and `op(B)` of shape k x n.
@inline(__always)
func linearGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(max(1, lda)), b, Int32(max(1, ldb)),
                beta, c, Int32(max(1, ldc)))
}

extension FusedActivation {
    /// The activation as a clamp `[low, high]` (infinite bounds where it does not clip).
    var bounds: (low: Float, high: Float) {
        switch self {
        case .none: return (-.infinity, .infinity)
        case .relu: return (0, .infinity)
        case .clip(let low, let high): return (low, high)
        }
    }
}

extension Optional where Wrapped == FusedQuantizer {
    /// Fake-quantizes `count` floats in place when there is a fused quantizer.
    @inline(__always)
    func apply(_ values: UnsafeMutablePointer<Float>, count: Int) {
        if case .some(let q) = self { whittle_fake_quantize(values, values, count, q.scale, q.low, q.high) }
    }
}

/// Adds `bias` to `count` floats and applies `activation` (one vectorised clamp pass,
/// `whittle_bias_clamp`).
@inline(__always)
func linearBiasActivation(_ values: UnsafeMutablePointer<Float>, count: Int, bias: Float,
                          activation: FusedActivation) {
    if activation == .none && bias == 0 { return }
    let (low, high) = activation.bounds
    whittle_bias_clamp(values, count, bias, low, high)
}

/// Copies `count` floats from `source` to `destination`, adding `bias` and applying `activation`.
@inline(__always)
func linearCopyBiasActivation(from source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>,
                              count: Int, bias: Float, activation: FusedActivation) {
    let (low, high) = activation.bounds
    whittle_copy_bias_clamp(source, destination, count, bias, low, high)
}

/// Applies `activation` to `count` floats split into rows over the engine's threads.
func linearApplyActivation(_ values: UnsafeMutablePointer<Float>, count: Int, activation: FusedActivation) {
    if activation == .none || count == 0 { return }
    let chunk = 16_384
    let chunks = (count + chunk - 1) / chunk
    parallelFor(chunks) { index in
        let start = index * chunk
        linearBiasActivation(values + start, count: min(chunk, count - start), bias: 0, activation: activation)
    }
}

/// Floor division for possibly negative numerators (positive divisor).
@inline(__always)
func linearFloorDiv(_ a: Int, _ b: Int) -> Int {
    a >= 0 ? a / b : -((-a + b - 1) / b)
}

/// Ceiling division for possibly negative numerators (positive divisor).
@inline(__always)
func linearCeilDiv(_ a: Int, _ b: Int) -> Int {
    -linearFloorDiv(-a, b)
}

/// ONNX `auto_pad` values (Conv, ConvTranspose, MaxPool, AveragePool).
enum LinearAutoPad: String {
    case notSet = "NOTSET"
    case sameUpper = "SAME_UPPER"
    case sameLower = "SAME_LOWER"
    case valid = "VALID"

    static func parse(_ context: NodeContext) throws -> LinearAutoPad {
        let text = try context.string("auto_pad", default: "NOTSET")
        guard let value = LinearAutoPad(rawValue: text) else {
            throw context.error("unknown auto_pad '\(text)' (expected NOTSET, SAME_UPPER, SAME_LOWER or VALID)")
        }
        return value
    }
}

/// Geometry of a sliding window over the spatial dimensions of an NC... tensor.
struct LinearWindow: Sendable, Equatable {
    var input: [Int]
    var kernel: [Int]
    var strides: [Int]
    var dilations: [Int]
    var padBegin: [Int]
    var padEnd: [Int]
    var output: [Int]

    /// Resolves strides, dilations, pads and `auto_pad` for a Conv or pooling node and
    /// computes the output size per spatial axis (ONNX Conv / MaxPool / AveragePool):
    /// - explicit pads: `out = floor((in + pb + pe - ((k - 1) * d + 1)) / s) + 1`, or with
    ///   `ceil_mode` the ceiling, dropping a last window that would start in the end padding;
    /// - `VALID`: no padding, `out = ceil((in - ((k - 1) * d + 1) + 1) / s)`;
    /// - `SAME_UPPER` / `SAME_LOWER`: `out = ceil(in / s)`, total padding
    ///   `max(0, (out - 1) * s + (k - 1) * d + 1 - in)`, the odd element at the end (UPPER)
    ///   or at the beginning (LOWER).
    static func resolve(_ context: NodeContext, input: [Int], kernel: [Int], ceilMode: Bool,
                        allowDilations: Bool = true) throws -> LinearWindow {
        let rank = input.count
        let strides = try context.ints("strides", default: Array(repeating: 1, count: rank))
        let dilations = try context.ints("dilations", default: Array(repeating: 1, count: rank))
        let autoPad = try LinearAutoPad.parse(context)
        let pads = try context.ints("pads", default: Array(repeating: 0, count: 2 * rank))
        guard strides.count == rank, strides.allSatisfy({ $0 > 0 }) else {
            throw context.error("strides \(strides) must hold \(rank) positive values")
        }
        guard dilations.count == rank, dilations.allSatisfy({ $0 > 0 }) else {
            throw context.error("dilations \(dilations) must hold \(rank) positive values")
        }
        if !allowDilations && dilations.contains(where: { $0 != 1 }) {
            throw context.error("dilations \(dilations) are not supported by \(context.node.opType)")
        }
        guard kernel.count == rank, kernel.allSatisfy({ $0 > 0 }) else {
            throw context.error("kernel shape \(kernel) must hold \(rank) positive values")
        }
        if autoPad == .notSet {
            guard pads.count == 2 * rank, pads.allSatisfy({ $0 >= 0 }) else {
                throw context.error("pads \(pads) must hold \(2 * rank) non-negative values")
            }
        }
        var window = LinearWindow(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                  padBegin: [], padEnd: [], output: [])
        for axis in 0..<rank {
            let size = input[axis], stride = strides[axis]
            let extent = (kernel[axis] - 1) * dilations[axis] + 1
            var begin = 0, end = 0, out = 0
            switch autoPad {
            case .notSet:
                begin = pads[axis]
                end = pads[rank + axis]
                let span = size + begin + end - extent
                guard span >= 0 else {
                    throw context.error("window extent \(extent) exceeds padded input size \(size + begin + end) on spatial axis \(axis)")
                }
                if ceilMode {
                    out = linearCeilDiv(span, stride) + 1
                    if (out - 1) * stride >= size + begin { out -= 1 }
                } else {
                    out = span / stride + 1
                }
            case .valid:
                guard size >= extent else {
                    throw context.error("window extent \(extent) exceeds input size \(size) on spatial axis \(axis)")
                }
                out = (size - extent) / stride + 1
            case .sameUpper, .sameLower:
                out = linearCeilDiv(size, stride)
                let total = max(0, (out - 1) * stride + extent - size)
                if autoPad == .sameUpper {
                    begin = total / 2
                    end = total - begin
                } else {
                    end = total / 2
                    begin = total - end
                }
            }
            window.padBegin.append(begin)
            window.padEnd.append(end)
            window.output.append(out)
        }
        return window
    }

    /// The same window as a 2-D one (a 1-D window becomes height 1).
    var planar: LinearPlanarWindow {
        if input.count == 1 {
            return LinearPlanarWindow(inH: 1, inW: input[0], kH: 1, kW: kernel[0], strideH: 1, strideW: strides[0],
                                      dilationH: 1, dilationW: dilations[0], padTop: 0, padLeft: padBegin[0],
                                      padBottom: 0, padRight: padEnd[0], outH: 1, outW: output[0])
        }
        return LinearPlanarWindow(inH: input[0], inW: input[1], kH: kernel[0], kW: kernel[1],
                                  strideH: strides[0], strideW: strides[1],
                                  dilationH: dilations[0], dilationW: dilations[1],
                                  padTop: padBegin[0], padLeft: padBegin[1],
                                  padBottom: padEnd[0], padRight: padEnd[1],
                                  outH: output[0], outW: output[1])
    }
}

/// A 2-D sliding window with every parameter resolved (what kernels loop over).
struct LinearPlanarWindow: Sendable, Equatable {
    var inH, inW, kH, kW, strideH, strideW, dilationH, dilationW: Int
    var padTop, padLeft, padBottom, padRight, outH, outW: Int

    var inPlane: Int { inH * inW }
    var outPlane: Int { outH * outW }

    /// For tap `t` along one axis, the output positions `[lo, hi)` whose input index
    /// `o * stride - pad + t * dilation` lies in `[0, size)`.
    static func validOutputs(tap: Int, size: Int, out: Int, stride: Int, pad: Int, dilation: Int) -> (Int, Int) {
        let offset = tap * dilation - pad
        let lo = max(0, linearCeilDiv(-offset, stride))
        let hi = min(out, linearFloorDiv(size - 1 - offset, stride) + 1)
        return (lo, max(lo, hi))
    }

    /// Flattened `[lo, hi)` pairs of `validOutputs` for every horizontal tap.
    func columnRanges() -> [Int] {
        (0..<kW).flatMap { tap -> [Int] in
            let (lo, hi) = Self.validOutputs(tap: tap, size: inW, out: outW, stride: strideW, pad: padLeft, dilation: dilationW)
            return [lo, hi]
        }
    }
}

/// Checks the rank of an N x C x spatial input: 1-D and 2-D spatial only.
func linearSpatialRank(_ context: NodeContext, _ info: TensorInfo, what: String) throws -> Int {
    if info.rank == 5 {
        throw context.error("3-D \(what) (5-D input \(info)) is not supported; only 1-D and 2-D", kind: .unsupportedOperator)
    }
    guard info.rank == 3 || info.rank == 4 else {
        throw context.error("\(what) input must be 3-D or 4-D (N x C x spatial), found \(info)")
    }
    return info.rank - 2
}

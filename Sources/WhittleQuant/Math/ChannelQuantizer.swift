/// How a tensor splits into channels along one axis: element `(o, c, i)` sits at
/// `(o * channelCount + c) * innerSize + i`, where `o` runs over the dimensions before the
/// axis and `i` over those after it.
///
/// Conv weights `[O, I, kh, kw]` use axis 0 (outer 1, inner I*kh*kw); Gemm weights `[K, N]`
/// with `transB = 0` use axis 1 (outer K, inner 1); ConvTranspose `[I, O, kh, kw]` axis 1.
public struct ChannelLayout: Sendable, Equatable {
    public let shape: [Int]
    /// The channel axis, normalised to `0..<rank`.
    public let axis: Int
    public let outerCount: Int
    public let channelCount: Int
    public let innerSize: Int

    /// A layout for `shape` split along `axis` (negative axes count from the end).
    public init(shape: [Int], axis: Int) throws(QuantizationError) {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw .invalidShape(shape) }
        let rank = shape.count
        let normalised = axis < 0 ? axis + rank : axis
        guard normalised >= 0, normalised < rank else { throw .invalidAxis(axis: axis, rank: rank) }
        self.shape = shape
        self.axis = normalised
        outerCount = shape[..<normalised].reduce(1, *)
        channelCount = shape[normalised]
        innerSize = shape[(normalised + 1)...].reduce(1, *)
    }

    public var elementCount: Int { outerCount * channelCount * innerSize }
}

/// Per-channel quantize-dequantize, quantize and dequantize for one tensor layout.
///
/// Built once (it copies the channel grids into flat arrays); the apply functions do not
/// allocate. Rounding as `QuantizationGrid`: half to even, clamped in the integer domain.
public struct PerChannelQuantizer: Sendable {
    public let layout: ChannelLayout
    public let encodings: [QuantizationEncoding]
    private let scales: [Float]
    private let lowCodes: [Float]
    private let highCodes: [Float]
    private let offsets: [Int32]

    public init(encodings: [QuantizationEncoding], layout: ChannelLayout) throws(QuantizationError) {
        guard encodings.count == layout.channelCount else {
            throw .channelCountMismatch(expected: layout.channelCount, actual: encodings.count)
        }
        self.layout = layout
        self.encodings = encodings
        let grids = encodings.map(QuantizationGrid.init)
        scales = grids.map(\.scale)
        lowCodes = grids.map(\.lowCode)
        highCodes = grids.map(\.highCode)
        offsets = grids.map(\.offset)
    }

    public init(encodings: [QuantizationEncoding], shape: [Int], axis: Int) throws(QuantizationError) {
        try self.init(encodings: encodings, layout: ChannelLayout(shape: shape, axis: axis))
    }

    private func checkCount(_ count: Int) throws(QuantizationError) {
        guard count == layout.elementCount else { throw .sizeMismatch(expected: layout.elementCount, actual: count) }
    }

    /// Quantize-dequantize in place.
    public func quantizeDequantize(_ values: UnsafeMutableBufferPointer<Float>) throws(QuantizationError) {
        try checkCount(values.count)
        guard let base = values.baseAddress else { return }
        qdq(UnsafePointer(base), base)
    }

    /// Quantize-dequantize `input` into `output`.
    public func quantizeDequantize(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>
    ) throws(QuantizationError) {
        try checkCount(input.count)
        try checkCount(output.count)
        guard let source = input.baseAddress, let target = output.baseAddress else { return }
        qdq(source, target)
    }

    /// Codes in `0...steps` of each channel's grid.
    public func quantize(
        _ input: UnsafeBufferPointer<Float>, into codes: UnsafeMutableBufferPointer<Int32>
    ) throws(QuantizationError) {
        try checkCount(input.count)
        try checkCount(codes.count)
        guard let source = input.baseAddress, let target = codes.baseAddress else { return }
        let inner = layout.innerSize, channels = layout.channelCount
        for o in 0..<layout.outerCount {
            for c in 0..<channels {
                let grid = grid(c)
                let start = (o * channels + c) * inner
                grid.quantize(source + start, target + start, inner)
            }
        }
    }

    /// Values of codes under each channel's grid.
    public func dequantize(
        _ codes: UnsafeBufferPointer<Int32>, into output: UnsafeMutableBufferPointer<Float>
    ) throws(QuantizationError) {
        try checkCount(codes.count)
        try checkCount(output.count)
        guard let source = codes.baseAddress, let target = output.baseAddress else { return }
        let inner = layout.innerSize, channels = layout.channelCount
        for o in 0..<layout.outerCount {
            for c in 0..<channels {
                let grid = grid(c)
                let start = (o * channels + c) * inner
                grid.dequantize(source + start, target + start, inner)
            }
        }
    }

    @inline(__always)
    private func grid(_ channel: Int) -> QuantizationGrid {
        QuantizationGrid(unchecked: scales[channel], lowCode: lowCodes[channel], highCode: highCodes[channel], offset: offsets[channel])
    }

    private func qdq(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>) {
        let inner = layout.innerSize, channels = layout.channelCount, outer = layout.outerCount
        if inner == 1 {
            // Channels are the contiguous dimension (Gemm [K, N] along N): vectorise across channels.
            scales.withUnsafeBufferPointer { s in
                lowCodes.withUnsafeBufferPointer { lo in
                    highCodes.withUnsafeBufferPointer { hi in
                        guard let s = s.baseAddress, let lo = lo.baseAddress, let hi = hi.baseAddress else { return }
                        let rowsPerChunk = Swift.max(1, (1 << 15) / Swift.max(1, channels))
                        chunkedLoop(outer, chunk: rowsPerChunk) { firstRow, rowCount in
                            for row in firstRow..<(firstRow + rowCount) {
                                let input = source + row * channels, output = target + row * channels
                                for c in 0..<channels {
                                    var v = input[c] / s[c]
                                    v = v > lo[c] ? v : lo[c]
                                    v = v < hi[c] ? v : hi[c]
                                    output[c] = QuantizationGrid.roundHalfEven(v) * s[c]
                                }
                            }
                        }
                    }
                }
            }
            return
        }
        for o in 0..<outer {
            for c in 0..<channels {
                let grid = grid(c)
                let start = (o * channels + c) * inner
                chunkedLoop(inner) { offset, count in
                    grid.quantizeDequantize(source + start + offset, target + start + offset, count)
                }
            }
        }
    }
}

extension QuantizationGrid {
    @inline(__always)
    init(unchecked scale: Float, lowCode: Float, highCode: Float, offset: Int32) {
        self.scale = scale
        self.lowCode = lowCode
        self.highCode = highCode
        self.offset = offset
    }
}

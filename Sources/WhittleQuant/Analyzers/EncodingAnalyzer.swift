/// A streaming range observer: it sees a tensor's values batch by batch during calibration
/// and then proposes an integer grid.
///
/// `observe` throws `QuantizationError.containsNaN` / `.containsInfinity` for non-finite
/// data and then leaves the analyzer unchanged; the caller adds the tensor's name
/// (`error.whittleError(subject:)`). Empty batches are ignored.
public protocol EncodingAnalyzer: Sendable {
    /// Adds a batch of values.
    mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError)
    /// The grid for everything observed so far (`.noData` before any value).
    func encoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> QuantizationEncoding
    /// Number of values observed.
    var observedCount: Int { get }
}

extension EncodingAnalyzer {
    /// Adds a batch of values held in an array.
    public mutating func observe(_ values: [Float]) throws(QuantizationError) {
        try withBuffer(of: values) { buffer throws(QuantizationError) in try observe(buffer) }
    }
}

/// Calls `body` with the array's buffer, forwarding its typed error
/// (`withUnsafeBufferPointer` cannot rethrow a typed throw, so it travels out as a value).
func withBuffer(of values: [Float], _ body: (UnsafeBufferPointer<Float>) throws(QuantizationError) -> Void) throws(QuantizationError) {
    let failure: QuantizationError? = values.withUnsafeBufferPointer { buffer in
        do throws(QuantizationError) {
            try body(buffer)
            return nil
        } catch {
            return error
        }
    }
    if let failure { throw failure }
}

/// One analyzer per channel of a tensor (per-channel weight encodings).
///
/// `observe` takes whole tensors (or batches whose element count is a multiple of
/// `channelCount * innerSize`, the leading dimensions being stacked). A batch is checked for
/// NaN/Inf first, so a failed `observe` changes no channel. When the channel's elements are
/// not contiguous (axis > 0) they are gathered into a scratch buffer kept between calls.
public struct PerChannelEncodingAnalyzer<Base: EncodingAnalyzer>: Sendable {
    public let layout: ChannelLayout
    public private(set) var channels: [Base]
    private var scratch: [Float] = []

    /// - Parameters:
    ///   - prototype: an empty analyzer, copied for every channel.
    ///   - shape, axis: the tensor layout (negative axis counts from the end).
    public init(_ prototype: Base, shape: [Int], axis: Int) throws(QuantizationError) {
        layout = try ChannelLayout(shape: shape, axis: axis)
        channels = Array(repeating: prototype, count: layout.channelCount)
    }

    public mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        let sliceCount = layout.channelCount * layout.innerSize
        guard sliceCount > 0, values.count % sliceCount == 0 else {
            throw .sizeMismatch(expected: layout.elementCount, actual: values.count)
        }
        guard let base = values.baseAddress, !values.isEmpty else { return }
        try RangeScan(values).checkFinite()
        let outer = values.count / sliceCount
        let inner = layout.innerSize
        if outer == 1 {
            for c in channels.indices {
                try channels[c].observe(UnsafeBufferPointer(start: base + c * inner, count: inner))
            }
            return
        }
        let perChannel = outer * inner
        if scratch.count < perChannel { scratch = Array(repeating: 0, count: perChannel) }
        for c in channels.indices {
            let failure: QuantizationError? = scratch.withUnsafeMutableBufferPointer { gathered in
                guard let target = gathered.baseAddress else { return nil }
                for o in 0..<outer {
                    (target + o * inner).update(from: base + (o * layout.channelCount + c) * inner, count: inner)
                }
                do throws(QuantizationError) {
                    try channels[c].observe(UnsafeBufferPointer(start: target, count: perChannel))
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
        }
    }

    /// Adds a batch held in an array.
    public mutating func observe(_ values: [Float]) throws(QuantizationError) {
        try withBuffer(of: values) { buffer throws(QuantizationError) in try observe(buffer) }
    }

    /// One grid per channel.
    public func encodings(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> [QuantizationEncoding] {
        var result: [QuantizationEncoding] = []
        result.reserveCapacity(channels.count)
        for channel in channels { result.append(try channel.encoding(bitWidth: bitWidth, symmetry: symmetry)) }
        return result
    }

    /// `.perChannel(axis:, encodings)` for this layout.
    public func tensorEncoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> TensorEncoding {
        .perChannel(axis: layout.axis, try encodings(bitWidth: bitWidth, symmetry: symmetry))
    }
}

/// Plain min-max ("tf" / `post_training_tf`): the grid covers every observed value.
///
/// One vectorised pass per batch (`RangeScan`); the encoding is `QuantizationEncoding.compute`
/// of the running minimum and maximum.
public struct MinMaxEncodingAnalyzer: EncodingAnalyzer {
    public private(set) var minimum: Float = .infinity
    public private(set) var maximum: Float = -.infinity
    public private(set) var observedCount = 0

    public init() {}

    public mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        guard !values.isEmpty else { return }
        let scan = RangeScan(values)
        try scan.checkFinite()
        minimum = Swift.min(minimum, scan.min)
        maximum = Swift.max(maximum, scan.max)
        observedCount += values.count
    }

    public func encoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> QuantizationEncoding {
        guard observedCount > 0 else { throw .noData }
        return try QuantizationEncoding.compute(min: minimum, max: maximum, bitWidth: bitWidth, symmetry: symmetry)
    }
}

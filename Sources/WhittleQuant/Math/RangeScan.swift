/// The minimum and maximum of a buffer in one vectorised pass, with NaN detection.
///
/// Infinities show up as an infinite minimum or maximum; NaN is tracked separately (it never
/// wins a comparison).
public struct RangeScan: Sendable, Equatable {
    public var min: Float
    public var max: Float
    public var containsNaN: Bool

    /// True when the data has no NaN and no infinity.
    public var isFinite: Bool { !containsNaN && min.isFinite && max.isFinite }

    /// Throws `.containsNaN` / `.containsInfinity` unless the scanned data is finite.
    public func checkFinite() throws(QuantizationError) {
        if containsNaN { throw .containsNaN }
        if !min.isFinite || !max.isFinite { throw .containsInfinity }
    }

    /// Scans `values` (empty: min +Inf, max -Inf).
    public init(_ values: UnsafeBufferPointer<Float>) {
        var low = SIMD16<Float>(repeating: .infinity)
        var high = SIMD16<Float>(repeating: -.infinity)
        var nan = SIMDMask<SIMD16<Int32>>(repeating: false)
        let count = values.count
        var i = 0
        if let base = values.baseAddress {
            let raw = UnsafeRawPointer(base)
            while i + 16 <= count {
                let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                low.replace(with: v, where: v .< low)
                high.replace(with: v, where: v .> high)
                nan = nan .| (v .!= v)
                i += 16
            }
        }
        var lowest = low.min()
        var highest = high.max()
        var sawNaN = any(nan)
        while i < count {
            let x = values[i]
            if x < lowest { lowest = x }
            if x > highest { highest = x }
            if x != x { sawNaN = true }
            i += 1
        }
        min = lowest
        max = highest
        containsNaN = sawNaN
    }
}

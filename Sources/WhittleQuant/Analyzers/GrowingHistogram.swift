import CWhittleKernels
import WhittleEngine

/// A fixed-bin-count histogram whose range grows with the data, so no value is ever dropped
/// (AIMET 1 fixes the range from the first batch and drops later outliers; see aimet.md §5.3).
///
/// Range: `[lowerBound, lowerBound + binCount * binWidth]`, set exactly to the first batch's
/// [min, max]. When a later batch falls outside it, the bin width doubles (k times, k minimal)
/// and the range extends towards the new values; because the new edges are old edges, every
/// old bin falls entirely inside one new bin and the re-binning is exact. The data therefore
/// always occupies more than half of the bins. Only a growth by more than 2^24 (a first batch
/// with a tiny or zero range) re-bins old counts by their bin midpoints instead; those old
/// bins are then far narrower than one new bin.
///
/// Cost per batch: a min/max scan (`RangeScan`, which also rejects NaN and infinities), the
/// range growth if the batch falls outside it, then one pass computing each bin index with a
/// multiply (no division) and an increment. Four interleaved count arrays break the
/// store-to-load dependency when many values hit one bin (ReLU zeros). No allocation per call
/// except when the range grows. (Scanning first costs about a seventh of a binning pass; a
/// batch binned before the growth would need two more passes, one undoing it, and about a
/// third of the values after the first batch of EfficientNet-Lite0's activations are in
/// batches that grow the range.)
public struct GrowingHistogram: Sendable {
    /// Default bin count, as AIMET 2 (libpymo used 512): fine enough for the 99.99th
    /// percentile and for the SQNR search at 8 bits; 4 x 2048 UInt32 hot counts = 32 KiB fit L1.
    public static let defaultBinCount = 2048
    static let lanes = 4

    public let binCount: Int
    /// Left edge of bin 0.
    public private(set) var lowerBound: Double = 0
    /// Width of one bin; 0 while all values seen are equal (everything sits in bin 0).
    public private(set) var binWidth: Double = 0
    /// Exact smallest and largest value observed.
    public private(set) var minimum: Float = .infinity
    public private(set) var maximum: Float = -.infinity
    /// Number of values observed.
    public private(set) var count = 0

    /// `lanes` interleaved arrays of `binCount` counts, for the hot loop.
    private var hot: [UInt32] = []
    /// Counts moved out of `hot` (before it could overflow, or after a re-bin); empty or `binCount` long.
    private var spill: [UInt64] = []
    /// Values added to `hot` since it was last emptied.
    private var hotCount = 0

    /// - Parameter binCount: 8...65536.
    public init(binCount: Int = GrowingHistogram.defaultBinCount) throws(QuantizationError) {
        guard (8...65_536).contains(binCount) else {
            throw .invalidParameter("histogram bin count \(binCount) is outside 8...65536")
        }
        self.binCount = binCount
    }

    /// Right edge of the last bin.
    public var upperBound: Double { lowerBound + Double(binCount) * binWidth }

    /// Count per bin.
    public var counts: [Double] {
        var result = [Double](repeating: 0, count: binCount)
        for b in 0..<binCount {
            var total: UInt64 = spill.isEmpty ? 0 : spill[b]
            if !hot.isEmpty {
                for lane in 0..<Self.lanes { total += UInt64(hot[lane * binCount + b]) }
            }
            result[b] = Double(total)
        }
        return result
    }

    /// Adds a batch. Throws for NaN/Inf and then leaves the histogram unchanged.
    public mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        // Keep each call's increments far below UInt32 overflow of one lane.
        let piece = 1 << 30
        if values.count > piece {
            try RangeScan(values).checkFinite()
            var start = 0
            while start < values.count {
                try observeSmall(UnsafeBufferPointer(start: base + start, count: Swift.min(piece, values.count - start)))
                start += piece
            }
            return
        }
        try observeSmall(values)
    }

    private mutating func observeSmall(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        let n = values.count
        if count == 0 {
            let scan = RangeScan(values)
            try scan.checkFinite()
            lowerBound = Double(scan.min)
            binWidth = Self.width(from: Double(scan.min), to: Double(scan.max), bins: binCount)
            hot = [UInt32](repeating: 0, count: Self.lanes * binCount)
            binPass(values)
            minimum = scan.min
            maximum = scan.max
        } else {
            if hotCount + n >= Int(UInt32.max) { spillHot() }
            let scan = RangeScan(values)
            try scan.checkFinite()
            if Double(scan.min) < lowerBound || Double(scan.max) > upperBound { grow(toCover: scan.min, scan.max) }
            binPass(values)
            minimum = Swift.min(minimum, scan.min)
            maximum = Swift.max(maximum, scan.max)
        }
        hotCount += n
        count += n
    }

    /// Bin width covering [low, high] with `bins` bins (0 for a single point).
    private static func width(from low: Double, to high: Double, bins: Int) -> Double {
        guard high > low else { return 0 }
        var width = (high - low) / Double(bins)
        while low + Double(bins) * width < high { width = width.nextUp }
        return width
    }

    /// One pass counting each value in its bin; values outside the range land in the edge bins
    /// (NaN in bin 0), so callers grow the range first.
    ///
    /// Eight values at a time (`whittle_histogram_count`, CWhittleKernels): a vector bin index
    /// `round((x - lowerBound) * inverseWidth - 1/2)`, clamped to the bins, converted to an
    /// integer with the 1.5 * 2^23 "magic number" (no checked float-to-int conversion); then
    /// eight scalar increments spread over the four count lanes. Batches of 64K values or more
    /// are split over two threads, each owning two lanes. A value exactly on an inner bin edge
    /// may land in either neighbouring bin (ties to even), which no analyzer can tell.
    private mutating func binPass(_ values: UnsafeBufferPointer<Float>) {
        let low = Float(lowerBound)
        let inverse = binWidth > 0 ? Swift.min(Float(1 / binWidth), .greatestFiniteMagnitude) : 0
        let last = Float(binCount - 1)
        let bins = binCount
        hot.withUnsafeMutableBufferPointer { counts in
            guard let h0 = counts.baseAddress, let source = values.baseAddress else { return }
            let n = values.count
            // Two threads (or more) each own two of the four count lanes; small batches run inline.
            let threads = Swift.min(EngineThreads.count, 2)
            if threads < 2 || n < 1 << 16 {
                whittle_histogram_count(source, n, low, inverse, last, h0, h0 + bins, h0 + 2 * bins, h0 + 3 * bins)
                return
            }
            parallelFor(2) { part in
                let start = part * (n / 2)
                let count = part == 0 ? n / 2 : n - n / 2
                let a = h0 + (2 * part) * bins, b = h0 + (2 * part + 1) * bins
                whittle_histogram_count(source + start, count, low, inverse, last, a, b, a, b)
            }
        }
    }

    /// Merged counts as integers.
    private func mergedCounts() -> [UInt64] {
        var merged = spill.isEmpty ? [UInt64](repeating: 0, count: binCount) : spill
        if !hot.isEmpty {
            for lane in 0..<Self.lanes {
                for b in 0..<binCount { merged[b] += UInt64(hot[lane * binCount + b]) }
            }
        }
        return merged
    }

    /// Moves the hot counts into `spill`.
    private mutating func spillHot() {
        spill = mergedCounts()
        for i in hot.indices { hot[i] = 0 }
        hotCount = 0
    }

    /// Widens the range to contain [newMin, newMax] and re-bins the existing counts.
    private mutating func grow(toCover newMin: Float, _ newMax: Float) {
        let needLow = Swift.min(lowerBound, Double(newMin))
        let needHigh = Swift.max(upperBound, Double(newMax))
        let merged = mergedCounts()
        var rebinned = [UInt64](repeating: 0, count: binCount)
        var done = false
        let shiftBins = binWidth > 0 ? ((lowerBound - needLow) / binWidth).rounded(.up) : .infinity
        // A shift beyond 2^24 bins means a growth beyond 2^24: use the midpoint re-binning below.
        if shiftBins <= Double(1 << 24) {
            var shift = Int(shiftBins)
            if lowerBound - Double(shift) * binWidth > needLow { shift += 1 }
            let newLow = lowerBound - Double(shift) * binWidth
            for k in 1...24 {
                let newWidth = binWidth * Double(1 << k)
                guard newLow + Double(binCount) * newWidth >= needHigh else { continue }
                for b in 0..<binCount where merged[b] != 0 {
                    rebinned[Swift.min(binCount - 1, (b + shift) >> k)] += merged[b]
                }
                lowerBound = newLow
                binWidth = newWidth
                done = true
                break
            }
        }
        if !done {
            let newWidth = Self.width(from: needLow, to: needHigh, bins: binCount)
            for b in 0..<binCount where merged[b] != 0 {
                let middle = lowerBound + (Double(b) + 0.5) * binWidth
                let position = newWidth > 0 ? ((middle - needLow) / newWidth).rounded(.down) : 0
                rebinned[Int(Swift.min(Swift.max(position, 0), Double(binCount - 1)))] += merged[b]
            }
            lowerBound = needLow
            binWidth = newWidth
        }
        spill = rebinned
        for i in hot.indices { hot[i] = 0 }
        hotCount = 0
    }

    /// The value below which a fraction `q` (0...1) of the observed values lie, interpolating
    /// linearly inside a bin and clamped to the observed [minimum, maximum].
    public func quantile(_ q: Double) -> Double {
        guard count > 0 else { return .nan }
        if q <= 0 { return Double(minimum) }
        if q >= 1 { return Double(maximum) }
        let binCounts = counts
        let target = q * Double(count)
        var cumulative = 0.0
        for b in 0..<binCount {
            let c = binCounts[b]
            if c > 0 && cumulative + c >= target {
                let fraction = (target - cumulative) / c
                let value = lowerBound + (Double(b) + fraction) * binWidth
                return Swift.min(Swift.max(value, Double(minimum)), Double(maximum))
            }
            cumulative += c
        }
        return Double(maximum)
    }
}

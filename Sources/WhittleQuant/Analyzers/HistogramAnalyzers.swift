/// Expected squared quantization error of a histogram under a candidate grid.
///
/// Values are taken as uniformly spread inside each bin (the first and last occupied bins
/// are trimmed to the exact observed min and max). For the part of a bin inside the grid the
/// error integral of the rounding sawtooth is exact; for the parts outside it the clipping
/// error `(x - gridEnd)^2` is integrated and weighted by `gamma` (AIMET's SQNR search uses
/// 3; MSE uses 1). AIMET evaluates only bin midpoints, which misjudges grids finer than a
/// bin (16 bits over 2048 bins); the integral does not.
struct HistogramCost {
    private var lows: [Double] = []
    private var highs: [Double] = []
    private var weights: [Double] = []
    /// Whether some occupied bin has no width (all values equal): only `referenceCost` handles those.
    private var hasPointBins = false
    /// `lows`, `highs`, `weights` and `b - a`, padded to a multiple of 4 with inert bins
    /// (weight 0 on [0, 1]), for the vector path.
    private var paddedLows: [Double] = []
    private var paddedHighs: [Double] = []
    private var paddedWeights: [Double] = []
    private var paddedWidths: [Double] = []
    /// Runs of at most `blockLength` adjacent occupied bins (a run also ends where empty bins
    /// leave a gap): span, total count and the smallest density (count / width) of their bins.
    /// `lowerBound` uses them.
    private var blockStarts: [Double] = []
    private var blockEnds: [Double] = []
    private var blockCounts: [Double] = []
    private var blockDensities: [Double] = []
    static let blockLength = 16

    init(_ histogram: GrowingHistogram) {
        let counts = histogram.counts
        let minimum = Double(histogram.minimum), maximum = Double(histogram.maximum)
        for b in 0..<histogram.binCount where counts[b] > 0 {
            let low = histogram.lowerBound + Double(b) * histogram.binWidth
            lows.append(Swift.min(Swift.max(low, minimum), maximum))
            highs.append(Swift.max(Swift.min(low + histogram.binWidth, maximum), minimum))
            weights.append(counts[b])
            if highs[highs.count - 1] <= lows[lows.count - 1] { hasPointBins = true }
        }
        guard !hasPointBins else { return }
        var j = 0
        while j < lows.count {
            var end = j + 1
            var density = weights[j] / (highs[j] - lows[j]), count = weights[j]
            while end < lows.count, end - j < Self.blockLength, lows[end] == highs[end - 1] {
                density = Swift.min(density, weights[end] / (highs[end] - lows[end]))
                count += weights[end]
                end += 1
            }
            blockStarts.append(lows[j])
            blockEnds.append(highs[end - 1])
            blockCounts.append(count)
            blockDensities.append(density)
            j = end
        }
        let padded = (lows.count + 3) / 4 * 4
        paddedLows = lows + [Double](repeating: 0, count: padded - lows.count)
        paddedHighs = highs + [Double](repeating: 1, count: padded - highs.count)
        paddedWeights = weights + [Double](repeating: 0, count: padded - weights.count)
        paddedWidths = zip(paddedHighs, paddedLows).map { $0 - $1 }
    }

    /// `∫ (s - round(s))² ds` from -1/2 to `t`, split as whole periods `k` (each worth 1/12)
    /// and the partial period `((r - 1/2)^3 + 1/8) / 3`.
    @inline(__always)
    private static func sawtoothIntegral(_ t: Double) -> (periods: Double, partial: Double) {
        let shifted = t + 0.5
        let k = shifted.rounded(.down)
        let r = shifted - k - 0.5
        return (k, (r * r * r + 0.125) / 3)
    }

    @inline(__always)
    private static func cube(_ x: Double) -> Double { x * x * x }

    /// Σ over bins of count x mean squared error (clipped parts x gamma).
    ///
    /// Four bins at a time and without branches: the part below the grid is integrated over
    /// `[min(a, low), min(b, low)]`, the part above over `[max(a, high), max(b, high)]` and
    /// the inside over `[a, b]` clamped to the grid — empty intervals give exactly 0, so every
    /// bin's value, and the sum taken in bin order, equal `referenceCost`'s bit for bit.
    func cost(_ encoding: QuantizationEncoding, gamma: Double) -> Double {
        let step = Double(encoding.scale)
        let gridLow = step * Double(encoding.offset)
        let gridHigh = step * Double(encoding.offset + encoding.steps)
        // The vector floor (1.5 * 2^52 trick) is exact while |t| < 2^51.
        guard !hasPointBins, step > 0, Swift.max(abs(gridLow), abs(gridHigh)) / step < 0x1p50 else {
            return referenceCost(encoding, gamma: gamma)
        }
        typealias D4 = SIMD4<Double>
        let step3 = step * step * step
        let low = D4(repeating: gridLow), high = D4(repeating: gridHigh)
        let stepVector = D4(repeating: step), gammaVector = D4(repeating: gamma)
        let magic = D4(repeating: 6_755_399_441_055_744), half = D4(repeating: 0.5)
        @inline(__always) func floorVector(_ x: D4) -> D4 {
            let nearest = (x + magic) - magic
            return nearest.replacing(with: nearest - 1, where: nearest .> x)
        }
        @inline(__always) func sawtooth(_ t: D4) -> (periods: D4, partial: D4) {
            let shifted = t + half
            let k = floorVector(shifted)
            let r = shifted - k - half
            return (k, (r * r * r + 0.125) / 3)
        }
        var total = 0.0
        paddedLows.withUnsafeBufferPointer { lowBuffer in
            paddedHighs.withUnsafeBufferPointer { highBuffer in
                paddedWeights.withUnsafeBufferPointer { weightBuffer in
                    paddedWidths.withUnsafeBufferPointer { widthBuffer in
                        guard let lows = lowBuffer.baseAddress, let highs = highBuffer.baseAddress,
                              let weights = weightBuffer.baseAddress, let widths = widthBuffer.baseAddress else { return }
                        let raw = (UnsafeRawPointer(lows), UnsafeRawPointer(highs), UnsafeRawPointer(weights), UnsafeRawPointer(widths))
                        for j in stride(from: 0, to: lowBuffer.count, by: 4) {
                            let a = raw.0.loadUnaligned(fromByteOffset: j * 8, as: D4.self)
                            let b = raw.1.loadUnaligned(fromByteOffset: j * 8, as: D4.self)
                            let p = raw.2.loadUnaligned(fromByteOffset: j * 8, as: D4.self)
                            let width = raw.3.loadUnaligned(fromByteOffset: j * 8, as: D4.self)
                            let belowStart = a.replacing(with: low, where: a .> low) - low
                            let belowEnd = b.replacing(with: low, where: b .> low) - low
                            let below = gammaVector * (belowEnd * belowEnd * belowEnd - belowStart * belowStart * belowStart) / 3
                            let aboveStart = a.replacing(with: high, where: a .< high) - high
                            let aboveEnd = b.replacing(with: high, where: b .< high) - high
                            let above = gammaVector * (aboveEnd * aboveEnd * aboveEnd - aboveStart * aboveStart * aboveStart) / 3
                            let insideLow = a.replacing(with: low, where: a .< low).replacing(with: high, where: a .> high)
                            let insideHigh = b.replacing(with: low, where: b .< low).replacing(with: high, where: b .> high)
                            let upper = sawtooth(insideHigh / stepVector)
                            let lower = sawtooth(insideLow / stepVector)
                            let inside = step3 * ((upper.periods - lower.periods) / 12 + upper.partial - lower.partial)
                            let integral = ((D4(repeating: 0) + below) + above) + inside
                            let error = p * integral / width
                            total += error[0]
                            total += error[1]
                            total += error[2]
                            total += error[3]
                        }
                    }
                }
            }
        }
        return total
    }

    /// The bin-by-bin cost with branches (any histogram, including zero-width bins).
    func referenceCost(_ encoding: QuantizationEncoding, gamma: Double) -> Double {
        let step = Double(encoding.scale)
        let gridLow = step * Double(encoding.offset)
        let gridHigh = step * Double(encoding.offset + encoding.steps)
        let step3 = step * step * step
        var total = 0.0
        for j in lows.indices {
            let a = lows[j], b = highs[j], p = weights[j]
            if b <= a {
                let error: Double
                if a < gridLow { error = gamma * (a - gridLow) * (a - gridLow) }
                else if a > gridHigh { error = gamma * (a - gridHigh) * (a - gridHigh) }
                else { let d = a - step * (a / step).rounded(.toNearestOrEven); error = d * d }
                total += p * error
                continue
            }
            var integral = 0.0
            if a < gridLow {
                let end = Swift.min(b, gridLow)
                integral += gamma * (Self.cube(end - gridLow) - Self.cube(a - gridLow)) / 3
            }
            if b > gridHigh {
                let start = Swift.max(a, gridHigh)
                integral += gamma * (Self.cube(b - gridHigh) - Self.cube(start - gridHigh)) / 3
            }
            let insideLow = Swift.max(a, gridLow), insideHigh = Swift.min(b, gridHigh)
            if insideHigh > insideLow {
                let upper = Self.sawtoothIntegral(insideHigh / step)
                let lower = Self.sawtoothIntegral(insideLow / step)
                integral += step3 * ((upper.periods - lower.periods) / 12 + upper.partial - lower.partial)
            }
            total += p * integral / (b - a)
        }
        return total
    }

    /// A lower bound of the exact cost under `encoding` (0 when there is none to give), in
    /// O(blocks): a block entirely outside the grid costs at least `gamma * count * distance^2`
    /// (each of its values is at least `distance` beyond the grid's end), and the part of a
    /// block inside the grid at least its smallest bin density times the integral of the
    /// rounding error `(x - nearest grid point)^2` over that part (the exact sawtooth integral).
    func lowerBound(_ encoding: QuantizationEncoding, gamma: Double) -> Double {
        let step = Double(encoding.scale)
        let gridLow = step * Double(encoding.offset)
        let gridHigh = step * Double(encoding.offset + encoding.steps)
        guard !hasPointBins, step > 0, step.isFinite else { return 0 }
        var clipping = 0.0, rounding = 0.0
        for q in blockStarts.indices {
            let a = blockStarts[q], b = blockEnds[q]
            if b <= gridLow {
                clipping += blockCounts[q] * (gridLow - b) * (gridLow - b)
            } else if a >= gridHigh {
                clipping += blockCounts[q] * (a - gridHigh) * (a - gridHigh)
            } else {
                let insideLow = Swift.max(a, gridLow), insideHigh = Swift.min(b, gridHigh)
                let upper = Self.sawtoothIntegral(insideHigh / step), lower = Self.sawtoothIntegral(insideLow / step)
                rounding += blockDensities[q] * ((upper.periods - lower.periods) / 12 + upper.partial - lower.partial)
            }
        }
        return gamma * clipping + step * step * step * Swift.max(0, rounding)
    }

    /// Relative margin by which a lower bound must exceed the best cost before a candidate is
    /// skipped: far above the float rounding of either (about 1e-12 relative).
    static let pruningMargin = 1e-3

    /// The index of the candidate with the least `cost`, the earliest one among equal costs:
    /// the same choice as costing every candidate in order and keeping strict improvements.
    /// Candidates are costed in the order of their `lowerBound`, and once a bound exceeds the
    /// best cost found (by `pruningMargin`), the rest cannot win and are not costed.
    /// `costed` counts the candidates whose cost was computed.
    func cheapest(_ candidates: [QuantizationEncoding], gamma: Double) -> (index: Int, costed: Int)? {
        guard !candidates.isEmpty else { return nil }
        let bounds = candidates.map { lowerBound($0, gamma: gamma) }
        let order = candidates.indices.sorted { bounds[$0] < bounds[$1] || (bounds[$0] == bounds[$1] && $0 < $1) }
        var bestIndex = 0
        var bestCost = cost(candidates[0], gamma: gamma)
        var previous = 0, costed = 1
        for index in order where index != 0 {
            if bounds[index] > bestCost * (1 + Self.pruningMargin) { break }
            // Equal grids have equal bounds (so they sort next to each other) and equal costs;
            // the later one cannot win.
            if candidates[index] == candidates[previous] { continue }
            previous = index
            costed += 1
            let value = cost(candidates[index], gamma: gamma)
            if value < bestCost || (value == bestCost && index < bestIndex) {
                bestIndex = index
                bestCost = value
            }
        }
        return (bestIndex, costed)
    }
}

/// SQNR search ("tf-enhanced", `post_training_tf_enhanced`; aimet.md §5.3) over a growing histogram.
///
/// Candidates (N = grid steps, observed range forced to contain 0):
/// - asymmetric: deltas `δmax * k / 16`, k = 1...17 (δmax = (max - min) / N) times offsets
///   `-N + i * N / 20`, i = 0...20; each pair is clipped to the observed range, skipped if it
///   is wider than the observed range at both ends or empty, and turned into a grid by
///   `QuantizationEncoding.compute`; plus the plain min-max grid.
/// - symmetric: `absmax * k / 100`, k = 1...101 (unsigned: `max * k / 100`).
/// The candidate with the least `gamma * clipping error + rounding error` (`HistogramCost`,
/// gamma 3) wins; ties keep the earlier candidate, the min-max grid first. Candidates are
/// costed in the order of a cheap lower bound of their cost (`HistogramCost.lowerBound`,
/// O(bins / 16)), and the search stops once the bound exceeds the best cost found: the same
/// choice as costing all of them, typically after a few dozen of the ~360.
public struct SqnrEncodingAnalyzer: EncodingAnalyzer {
    public private(set) var histogram: GrowingHistogram
    public let gamma: Double
    public let asymmetricDeltaCandidates: Int
    public let offsetCandidates: Int
    public let symmetricDeltaCandidates: Int

    public init(
        binCount: Int = GrowingHistogram.defaultBinCount, gamma: Double = 3,
        asymmetricDeltaCandidates: Int = 17, offsetCandidates: Int = 21, symmetricDeltaCandidates: Int = 101
    ) throws(QuantizationError) {
        guard gamma.isFinite, gamma > 0 else { throw .invalidParameter("SQNR gamma \(gamma) must be finite and positive") }
        guard asymmetricDeltaCandidates >= 2, offsetCandidates >= 2, symmetricDeltaCandidates >= 2 else {
            throw .invalidParameter("SQNR candidate counts must be at least 2")
        }
        histogram = try GrowingHistogram(binCount: binCount)
        self.gamma = gamma
        self.asymmetricDeltaCandidates = asymmetricDeltaCandidates
        self.offsetCandidates = offsetCandidates
        self.symmetricDeltaCandidates = symmetricDeltaCandidates
    }

    public var observedCount: Int { histogram.count }

    public mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        try histogram.observe(values)
    }

    public func encoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> QuantizationEncoding {
        let candidates = try searchCandidates(bitWidth: bitWidth, symmetry: symmetry)
        guard candidates.count > 1 else { return candidates[0] }
        // The first candidate of least cost, without costing those that provably cannot win.
        return candidates[HistogramCost(histogram).cheapest(candidates, gamma: gamma)?.index ?? 0]
    }

    /// Every candidate grid in search order, the min-max grid first (alone when the observed
    /// range is a single point).
    func searchCandidates(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> [QuantizationEncoding] {
        guard histogram.count > 0 else { throw .noData }
        let minMax = try QuantizationEncoding.compute(
            min: histogram.minimum, max: histogram.maximum, bitWidth: bitWidth, symmetry: symmetry)
        let observedMin = Swift.min(Double(histogram.minimum), 0)
        let observedMax = Swift.max(Double(histogram.maximum), 0)
        guard observedMax > observedMin else { return [minMax] }
        var candidates = [minMax]
        func consider(_ low: Double, _ high: Double) throws(QuantizationError) {
            candidates.append(try QuantizationEncoding.compute(
                min: Float(low), max: Float(high), bitWidth: bitWidth, symmetry: symmetry))
        }
        if symmetry.isSymmetric {
            let unsigned = minMax.symmetry == .unsignedSymmetric
            let absMax = Swift.max(-observedMin, observedMax)
            let denominator = Double(symmetricDeltaCandidates - 1)
            for k in 1...symmetricDeltaCandidates {
                let fraction = Double(k) / denominator
                if unsigned { try consider(0, observedMax * fraction) }
                else { try consider(-absMax * fraction, absMax * fraction) }
            }
        } else {
            let steps = Double(minMax.steps)
            let maxDelta = (observedMax - observedMin) / steps
            let deltaDenominator = Double(asymmetricDeltaCandidates - 1)
            let offsetDenominator = Double(offsetCandidates - 1)
            for k in 1...asymmetricDeltaCandidates {
                let delta = maxDelta * Double(k) / deltaDenominator
                for i in 0..<offsetCandidates {
                    let offset = -steps + Double(i) * steps / offsetDenominator
                    let gridLow = delta * offset, gridHigh = delta * (offset + steps)
                    if gridLow < observedMin && gridHigh > observedMax { continue }
                    let low = Swift.max(observedMin, gridLow), high = Swift.min(observedMax, gridHigh)
                    guard high > low else { continue }
                    try consider(low, high)
                }
            }
        }
        return candidates
    }

    /// Every candidate costed in search order, keeping strict improvements: what `encoding`
    /// must choose (tests compare the two).
    func exhaustiveEncoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> QuantizationEncoding {
        let candidates = try searchCandidates(bitWidth: bitWidth, symmetry: symmetry)
        guard candidates.count > 1 else { return candidates[0] }
        let cost = HistogramCost(histogram)
        var best = candidates[0]
        var bestCost = cost.cost(best, gamma: gamma)
        for candidate in candidates.dropFirst() {
            let value = cost.cost(candidate, gamma: gamma)
            if value < bestCost {
                best = candidate
                bestCost = value
            }
        }
        return best
    }
}

/// Percentile calibration (`post_training_percentile`): the grid spans the `(100 - p)`-th to
/// the `p`-th percentile of the observed values (from the growing histogram, interpolated
/// inside a bin; p = 100 gives the exact min and max), forced to contain 0.
public struct PercentileEncodingAnalyzer: EncodingAnalyzer {
    public private(set) var histogram: GrowingHistogram
    /// In [50, 100] (AIMET 2's range).
    public let percentile: Double

    public init(percentile: Double = 99.99, binCount: Int = GrowingHistogram.defaultBinCount) throws(QuantizationError) {
        guard percentile.isFinite, percentile >= 50, percentile <= 100 else { throw .invalidPercentile(percentile) }
        self.percentile = percentile
        histogram = try GrowingHistogram(binCount: binCount)
    }

    public var observedCount: Int { histogram.count }

    public mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        try histogram.observe(values)
    }

    public func encoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> QuantizationEncoding {
        guard histogram.count > 0 else { throw .noData }
        let fraction = percentile / 100
        let high = histogram.quantile(fraction)
        let low = histogram.quantile(1 - fraction)
        return try QuantizationEncoding.compute(min: Float(low), max: Float(high), bitWidth: bitWidth, symmetry: symmetry)
    }
}

/// MSE calibration: the clipping range that minimises the expected squared quantization error
/// (rounding plus clipping, equally weighted) on the growing histogram (`HistogramCost`, gamma 1).
///
/// Search (O(bins x ~220 candidates)): symmetric grids try `absmax * k / 100`, k = 1...100, then
/// 20 finer fractions around the best. Asymmetric grids first scale both ends together
/// (`[min, max] * k / 100`), then sweep the lower end and then the upper end alone
/// (50 fractions each) with the other end fixed.
public struct MseEncodingAnalyzer: EncodingAnalyzer {
    public private(set) var histogram: GrowingHistogram

    public init(binCount: Int = GrowingHistogram.defaultBinCount) throws(QuantizationError) {
        histogram = try GrowingHistogram(binCount: binCount)
    }

    public var observedCount: Int { histogram.count }

    public mutating func observe(_ values: UnsafeBufferPointer<Float>) throws(QuantizationError) {
        try histogram.observe(values)
    }

    public func encoding(bitWidth: Int, symmetry: QuantizationSymmetry) throws(QuantizationError) -> QuantizationEncoding {
        guard histogram.count > 0 else { throw .noData }
        let minMax = try QuantizationEncoding.compute(
            min: histogram.minimum, max: histogram.maximum, bitWidth: bitWidth, symmetry: symmetry)
        let observedMin = Swift.min(Double(histogram.minimum), 0)
        let observedMax = Swift.max(Double(histogram.maximum), 0)
        guard observedMax > observedMin else { return minMax }
        let cost = HistogramCost(histogram)
        var best = minMax
        var bestCost = cost.cost(minMax, gamma: 1)
        func consider(_ low: Double, _ high: Double) throws(QuantizationError) -> Bool {
            let candidate = try QuantizationEncoding.compute(
                min: Float(low), max: Float(high), bitWidth: bitWidth, symmetry: symmetry)
            let value = cost.cost(candidate, gamma: 1)
            guard value < bestCost else { return false }
            best = candidate
            bestCost = value
            return true
        }
        if symmetry.isSymmetric {
            let unsigned = minMax.symmetry == .unsignedSymmetric
            let absMax = Swift.max(-observedMin, observedMax)
            var bestFraction = 1.0
            func tryFraction(_ fraction: Double) throws(QuantizationError) {
                let improved = unsigned
                    ? try consider(0, observedMax * fraction)
                    : try consider(-absMax * fraction, absMax * fraction)
                if improved { bestFraction = fraction }
            }
            for k in 1...100 { try tryFraction(Double(k) / 100) }
            let center = bestFraction
            for k in -10...10 where k != 0 {
                let fraction = center + Double(k) / 1000
                if fraction > 0 && fraction <= 1 { try tryFraction(fraction) }
            }
            return best
        }
        var lowFraction = 1.0, highFraction = 1.0
        for k in 1...100 {
            let fraction = Double(k) / 100
            if try consider(observedMin * fraction, observedMax * fraction) {
                lowFraction = fraction
                highFraction = fraction
            }
        }
        let fixedHigh = highFraction
        for k in 1...50 {
            let fraction = Double(k) / 50
            if try consider(observedMin * fraction, observedMax * fixedHigh) { lowFraction = fraction }
        }
        let fixedLow = lowFraction
        for k in 1...50 {
            let fraction = Double(k) / 50
            if try consider(observedMin * fixedLow, observedMax * fraction) { highFraction = fraction }
        }
        return best
    }
}

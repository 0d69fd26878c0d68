import Foundation
import Testing
@testable import WhittleQuant

@Suite("Analyzer encodings")
struct AnalyzerEncodingTests {
    /// 100k N(0, 1) values plus 20 outliers at +/-40..50.
    static func gaussianWithOutliers(seed: UInt64 = 1) -> [Float] {
        var random = TestRandom(seed: seed)
        var values = (0..<100_000).map { _ in random.gaussian() }
        for i in 0..<20 { values[i * 4999] = (i % 2 == 0 ? 1 : -1) * random.uniform(40, 50) }
        return values
    }

    /// Mean squared error of quantize-dequantize over the data.
    static func mse(_ values: [Float], _ e: QuantizationEncoding) -> Double {
        var total = 0.0
        for x in values { let d = Double(x - referenceQDQ(x, e)); total += d * d }
        return total / Double(values.count)
    }

    @Test func minMaxTracksExtremesOverBatches() throws {
        var analyzer = MinMaxEncodingAnalyzer()
        #expect(throws: QuantizationError.noData) { try analyzer.encoding(bitWidth: 8, symmetry: .asymmetric) }
        try analyzer.observe([-1, 0.5, 2])
        try analyzer.observe([])
        try analyzer.observe((0..<37).map { Float($0) * 0.1 - 2.1179 })
        try analyzer.observe([2.64])
        #expect(analyzer.minimum == -2.1179 && analyzer.maximum == 2.64)
        #expect(analyzer.observedCount == 41)
        let e = try analyzer.encoding(bitWidth: 8, symmetry: .asymmetric)
        #expect(e.offset == -114 && e.scale == Float(4.7579 / 255.0))
    }

    @Test func minMaxVectorPathMatchesScalar() {
        var random = TestRandom(seed: 5)
        for count in [1, 15, 16, 17, 33, 1000] {
            let values = (0..<count).map { _ in random.uniform(-10, 10) }
            let scan = values.withUnsafeBufferPointer { RangeScan($0) }
            #expect(scan.min == values.min()! && scan.max == values.max()! && !scan.containsNaN)
        }
    }

    @Test func nonFiniteDataIsRejectedAndStateKept() throws {
        var minMax = MinMaxEncodingAnalyzer()
        var sqnr = try SqnrEncodingAnalyzer()
        try minMax.observe([-1, 1])
        try sqnr.observe([-1, 1])
        var withNaN = [Float](repeating: 0.5, count: 40)
        withNaN[33] = .nan
        var withInf = [Float](repeating: 0.5, count: 40)
        withInf[7] = -.infinity
        #expect(throws: QuantizationError.containsNaN) { try minMax.observe(withNaN) }
        #expect(throws: QuantizationError.containsInfinity) { try minMax.observe(withInf) }
        #expect(throws: QuantizationError.containsNaN) { try sqnr.observe(withNaN) }
        #expect(throws: QuantizationError.containsInfinity) { try sqnr.observe(withInf) }
        #expect(minMax.observedCount == 2 && sqnr.observedCount == 2)
        #expect(sqnr.histogram.counts.reduce(0, +) == 2)
        // A first batch with NaN leaves the histogram empty.
        var fresh = try PercentileEncodingAnalyzer()
        #expect(throws: QuantizationError.containsNaN) { try fresh.observe([.nan]) }
        #expect(fresh.observedCount == 0)
    }

    @Test func fourBitSqnrAndMseClipOutliersMinMaxDoesNot() throws {
        let data = Self.gaussianWithOutliers()
        var minMax = MinMaxEncodingAnalyzer()
        var sqnr = try SqnrEncodingAnalyzer()
        var mse = try MseEncodingAnalyzer()
        var percentile = try PercentileEncodingAnalyzer(percentile: 99.9)
        try minMax.observe(data)
        try sqnr.observe(data)
        try mse.observe(data)
        try percentile.observe(data)
        for symmetry in [QuantizationSymmetry.asymmetric, .signedSymmetric] {
            let m = try minMax.encoding(bitWidth: 4, symmetry: symmetry)
            let s = try sqnr.encoding(bitWidth: 4, symmetry: symmetry)
            let e = try mse.encoding(bitWidth: 4, symmetry: symmetry)
            let p = try percentile.encoding(bitWidth: 4, symmetry: symmetry)
            #expect(m.max > 39)
            // SQNR weighs clipping 3x (gamma), so it clips less than MSE.
            #expect(s.max < 0.75 * m.max && s.max >= e.max, "SQNR max \(s.max)")
            #expect(e.max < 8 && e.max > 1.5, "MSE max \(e.max)")
            #expect(p.max < 4 && p.max > 2.5, "percentile max \(p.max)")
            // 20 clipped outliers cost ~20 x 42^2 / 100k = 0.35 per value; min-max rounding ~1.
            #expect(Self.mse(data, e) < Self.mse(data, m) / 2)
            #expect(Self.mse(data, s) < Self.mse(data, m))
        }
    }

    @Test func eightBitClipsRareOutliersAndMseIsNearOptimal() throws {
        // 200k N(0, 1) plus two outliers at +/-12: at 8 bits clipping to ~8 beats min-max in
        // squared error (200k x (24/255)^2/12 = 148 vs 200k x (16/255)^2/12 + 2 x 4^2 = 98).
        var random = TestRandom(seed: 21)
        var data = (0..<200_000).map { _ in random.gaussian() }
        data[100] = 12
        data[50_000] = -12
        var minMax = MinMaxEncodingAnalyzer()
        var sqnr = try SqnrEncodingAnalyzer()
        var mse = try MseEncodingAnalyzer()
        try minMax.observe(data)
        try sqnr.observe(data)
        try mse.observe(data)
        let m = try minMax.encoding(bitWidth: 8, symmetry: .signedSymmetric)
        let s = try sqnr.encoding(bitWidth: 8, symmetry: .signedSymmetric)
        let e = try mse.encoding(bitWidth: 8, symmetry: .signedSymmetric)
        #expect(m.max > 11.9)
        #expect(s.max < 0.95 * m.max, "SQNR max \(s.max)")
        #expect(e.max < 0.8 * m.max && e.max > 0.5 * m.max, "MSE max \(e.max)")
        let mseError = Self.mse(data, e)
        #expect(mseError < Self.mse(data, m))
        // No symmetric clipping fraction does noticeably better on the raw data.
        var bestSweep = Double.infinity
        for k in stride(from: 30, through: 100, by: 2) {
            let candidate = try QuantizationEncoding.compute(
                min: -12 * Float(k) / 100, max: 12 * Float(k) / 100, bitWidth: 8, symmetry: .signedSymmetric)
            bestSweep = min(bestSweep, Self.mse(data, candidate))
        }
        #expect(mseError <= bestSweep * 1.03, "MSE \(mseError) vs sweep \(bestSweep)")
        // Asymmetric MSE is at least as good as min-max.
        let asymmetric = try mse.encoding(bitWidth: 8, symmetry: .asymmetric)
        #expect(Self.mse(data, asymmetric) < Self.mse(data, try minMax.encoding(bitWidth: 8, symmetry: .asymmetric)))
    }

    @Test func uniformDataIsNotClipped() throws {
        var random = TestRandom(seed: 2)
        let data = (0..<50_000).map { _ in random.uniform(-1, 1) }
        var sqnr = try SqnrEncodingAnalyzer()
        var mse = try MseEncodingAnalyzer()
        try sqnr.observe(data)
        try mse.observe(data)
        for e in [try sqnr.encoding(bitWidth: 8, symmetry: .asymmetric), try mse.encoding(bitWidth: 8, symmetry: .asymmetric),
                  try sqnr.encoding(bitWidth: 8, symmetry: .signedSymmetric)] {
            #expect(e.max > 0.95 && e.min < -0.95, "\(e)")
        }
    }

    @Test func lowBitWidthsClipMoreThanHighOnes() throws {
        let data = Self.gaussianWithOutliers(seed: 4)
        var sqnr = try SqnrEncodingAnalyzer()
        try sqnr.observe(data)
        let four = try sqnr.encoding(bitWidth: 4, symmetry: .signedSymmetric)
        let eight = try sqnr.encoding(bitWidth: 8, symmetry: .signedSymmetric)
        let sixteen = try sqnr.encoding(bitWidth: 16, symmetry: .signedSymmetric)
        #expect(four.max < eight.max)
        #expect(eight.max <= sixteen.max)
        #expect(sixteen.steps == 65535 && sixteen.offset == -32768)
    }

    @Test func growingHistogramKeepsEveryValueAndMatchesOneShot() throws {
        var random = TestRandom(seed: 7)
        let batches: [[Float]] = [
            (0..<20_000).map { _ in random.gaussian() * 0.1 },
            (0..<20_000).map { _ in random.gaussian() },
            (0..<20_000).map { _ in random.gaussian() * 0.5 + 1 },
            (0..<20_000).map { _ in random.gaussian() } + [-30, 25],
        ]
        var streamed = try SqnrEncodingAnalyzer()
        var streamedMse = try MseEncodingAnalyzer()
        var streamedPercentile = try PercentileEncodingAnalyzer(percentile: 99)
        for batch in batches {
            try streamed.observe(batch)
            try streamedMse.observe(batch)
            try streamedPercentile.observe(batch)
        }
        let all = batches.flatMap { $0 }
        var oneShot = try SqnrEncodingAnalyzer()
        var oneShotMse = try MseEncodingAnalyzer()
        var oneShotPercentile = try PercentileEncodingAnalyzer(percentile: 99)
        try oneShot.observe(all)
        try oneShotMse.observe(all)
        try oneShotPercentile.observe(all)

        #expect(streamed.histogram.counts.reduce(0, +) == Double(all.count))
        #expect(streamed.histogram.minimum == -30 && streamed.histogram.maximum == 25)
        #expect(streamed.histogram.lowerBound <= -30 && streamed.histogram.upperBound >= 25)
        // The streamed bins are at most twice as wide as the one-shot ones.
        #expect(streamed.histogram.binWidth <= 2 * oneShot.histogram.binWidth * 1.0001)
        for symmetry in [QuantizationSymmetry.asymmetric, .signedSymmetric] {
            for (a, b) in [(streamed.encoding, oneShot.encoding), (streamedMse.encoding, oneShotMse.encoding),
                           (streamedPercentile.encoding, oneShotPercentile.encoding)] {
                let x = try a(8, symmetry), y = try b(8, symmetry)
                #expect(abs(x.max - y.max) <= 0.05 * y.max, "\(x) vs \(y)")
                #expect(abs(x.min - y.min) <= 0.05 * abs(y.min), "\(x) vs \(y)")
                #expect(abs(Self.mse(all, x) - Self.mse(all, y)) <= 0.1 * Self.mse(all, y))
            }
        }
    }

    @Test func histogramGrowsFromAPointMassAndFromTinyRanges() throws {
        var histogram = try GrowingHistogram(binCount: 64)
        try withBuffer([Float](repeating: 0, count: 100)) { try histogram.observe($0) }
        #expect(histogram.binWidth == 0)
        try withBuffer([0, 0]) { try histogram.observe($0) }
        try withBuffer([-1, 3]) { try histogram.observe($0) }
        #expect(histogram.count == 104)
        #expect(histogram.counts.reduce(0, +) == 104)
        #expect(histogram.lowerBound <= -1 && histogram.upperBound >= 3)
        // The zeros stay in the bin that holds 0.
        let zeroBin = Int((0 - histogram.lowerBound) / histogram.binWidth)
        #expect(histogram.counts[zeroBin] >= 102)

        var tiny = try GrowingHistogram(binCount: 64)
        try withBuffer([0, 1e-30]) { try tiny.observe($0) }
        try withBuffer([-5, 5]) { try tiny.observe($0) }
        #expect(tiny.counts.reduce(0, +) == 4)
        #expect(tiny.lowerBound <= -5 && tiny.upperBound >= 5)
    }

    @Test func largeBatchesUndoAndGrowCorrectly() throws {
        // Batches of 100k take the two-thread path; a wider batch and a NaN batch are undone.
        var random = TestRandom(seed: 31)
        let first = (0..<100_000).map { _ in random.uniform(-1, 1) }
        var second = (0..<100_001).map { _ in random.uniform(-4, 4) }
        var histogram = try GrowingHistogram(binCount: 256)
        try withBuffer(first) { try histogram.observe($0) }
        second[77_777] = .nan
        #expect(throws: QuantizationError.containsNaN) { try withBuffer(second) { try histogram.observe($0) } }
        #expect(histogram.counts.reduce(0, +) == 100_000)
        second[77_777] = 0
        try withBuffer(second) { try histogram.observe($0) }
        #expect(histogram.counts.reduce(0, +) == 200_001)
        #expect(histogram.count == 200_001)
        // Mixture of U(-1, 1) and U(-4, 4): CDF(x) = 1/2 + 0.3125 x on [0, 1], so the 75% quantile is 0.8.
        #expect(abs(histogram.quantile(0.5)) < 0.05)
        #expect(abs(histogram.quantile(0.75) - 0.8) < 0.05)
    }

    @Test func exactRebinningOnDoubling() throws {
        // Values on bin centres: after growth, each old bin's count lands in one new bin.
        var histogram = try GrowingHistogram(binCount: 8)
        try withBuffer([0, 8]) { try histogram.observe($0) }  // width 1, bins [0,1)...[7,8]
        try withBuffer([0.5, 1.5, 2.5, 3.5]) { try histogram.observe($0) }
        try withBuffer([15.9]) { try histogram.observe($0) }  // needs [0, 16]: width 2
        #expect(histogram.binWidth == 2 && histogram.lowerBound == 0)
        // The top-edge value 8 was in the last old bin [7, 8], which now lies in [6, 8).
        #expect(histogram.counts == [3, 2, 0, 1, 0, 0, 0, 1])
        try withBuffer([-3]) { try histogram.observe($0) }  // shift 2 old bins left, width 4
        #expect(histogram.lowerBound == -4 && histogram.binWidth == 4)
        #expect(histogram.counts == [1, 5, 1, 0, 1, 0, 0, 0])
        #expect(histogram.counts.reduce(0, +) == 8)
    }

    @Test func percentileBoundsAndValidation() throws {
        #expect(throws: QuantizationError.invalidPercentile(49)) { try PercentileEncodingAnalyzer(percentile: 49) }
        #expect(throws: QuantizationError.invalidPercentile(100.5)) { try PercentileEncodingAnalyzer(percentile: 100.5) }
        #expect(throws: QuantizationError.self) { try PercentileEncodingAnalyzer(percentile: .nan) }
        var random = TestRandom(seed: 11)
        let data = (0..<100_000).map { _ in random.uniform(0, 1) }
        var p99 = try PercentileEncodingAnalyzer(percentile: 99)
        try p99.observe(data)
        let e = try p99.encoding(bitWidth: 8, symmetry: .unsignedSymmetric)
        #expect(e.symmetry == .unsignedSymmetric)
        #expect(abs(e.max - 0.99) < 0.005)
        var p100 = try PercentileEncodingAnalyzer(percentile: 100)
        try p100.observe(data)
        let full = try p100.encoding(bitWidth: 8, symmetry: .asymmetric)
        #expect(full == (try QuantizationEncoding.compute(min: 0, max: data.max()!, bitWidth: 8, symmetry: .asymmetric)))
        // 50 collapses to the median on both sides; zero is still forced in.
        var p50 = try PercentileEncodingAnalyzer(percentile: 50)
        try p50.observe(data)
        let median = try p50.encoding(bitWidth: 8, symmetry: .asymmetric)
        #expect(median.offset == 0 && abs(median.max - 0.5) < 0.01)
    }

    @Test func deadChannelAnalyzersGiveEpsilonScale() throws {
        let zeros = [Float](repeating: 0, count: 64)
        var analyzers: [any EncodingAnalyzer] = [MinMaxEncodingAnalyzer(), try SqnrEncodingAnalyzer(),
                                                 try PercentileEncodingAnalyzer(), try MseEncodingAnalyzer()]
        for i in analyzers.indices {
            try analyzers[i].observe(zeros)
            let e = try analyzers[i].encoding(bitWidth: 8, symmetry: .signedSymmetric)
            #expect(e.scale == 1.1920928955078125e-07 && e.offset == -128)
        }
    }

    /// The SQNR search's defaults and candidate grids, written out from the reference
    /// (aimet.md §5.3): gamma 3; asymmetric deltas δmax·k/16 (k = 1...17) × offsets
    /// −N + i·N/20 (i = 0...20), each clipped to the observed range (skipped when its grid
    /// extends past both ends or collapses), after the plain min-max grid; symmetric
    /// ±absmax·k/100 for k = 1...101.
    @Test func sqnrDefaultsAndCandidateGridsFollowTheReference() throws {
        var analyzer = try SqnrEncodingAnalyzer()
        #expect(analyzer.gamma == 3)
        #expect(analyzer.asymmetricDeltaCandidates == 17 && analyzer.offsetCandidates == 21 && analyzer.symmetricDeltaCandidates == 101)
        try analyzer.observe([-1, 0.25, 3])
        try analyzer.observe([-0.5, 2])
        let observedMin = -1.0, observedMax = 3.0
        for bits in [4, 8] {
            let n = Double((1 << bits) - 1)
            var expected = [try QuantizationEncoding.compute(min: -1, max: 3, bitWidth: bits, symmetry: .asymmetric)]
            for k in 1...17 {
                let delta = (observedMax - observedMin) / n * Double(k) / 16
                for i in 0...20 {
                    let offset = -n + Double(i) * n / 20
                    let low = delta * offset, high = delta * (offset + n)
                    if low < observedMin && high > observedMax { continue }
                    let clippedLow = max(observedMin, low), clippedHigh = min(observedMax, high)
                    guard clippedHigh > clippedLow else { continue }
                    expected.append(try QuantizationEncoding.compute(min: Float(clippedLow), max: Float(clippedHigh),
                                                                     bitWidth: bits, symmetry: .asymmetric))
                }
            }
            #expect(try analyzer.searchCandidates(bitWidth: bits, symmetry: .asymmetric) == expected)
            #expect(expected.count > 17 * 10 && expected.count <= 1 + 17 * 21)

            var symmetric = [try QuantizationEncoding.compute(min: -1, max: 3, bitWidth: bits, symmetry: .signedSymmetric)]
            for k in 1...101 {
                symmetric.append(try QuantizationEncoding.compute(min: Float(-3.0 * Double(k) / 100), max: Float(3.0 * Double(k) / 100),
                                                                  bitWidth: bits, symmetry: .signedSymmetric))
            }
            #expect(try analyzer.searchCandidates(bitWidth: bits, symmetry: .signedSymmetric) == symmetric)
        }
    }

    @Test func analyzerParameterValidation() {
        #expect(throws: QuantizationError.self) { try GrowingHistogram(binCount: 4) }
        #expect(throws: QuantizationError.self) { try SqnrEncodingAnalyzer(gamma: 0) }
        #expect(throws: QuantizationError.self) { try SqnrEncodingAnalyzer(offsetCandidates: 1) }
        #expect(throws: QuantizationError.bitWidthOutOfRange(2)) {
            var a = try SqnrEncodingAnalyzer()
            try a.observe([1, 2])
            _ = try a.encoding(bitWidth: 2, symmetry: .asymmetric)
        }
    }

    // MARK: Per-channel

    @Test func perChannelMinMaxAlongGemmAxis() throws {
        // Gemm weight [K = 3, N = 2] with transB = 0: channels along axis 1 (columns).
        var analyzer = try PerChannelEncodingAnalyzer(MinMaxEncodingAnalyzer(), shape: [3, 2], axis: 1)
        try analyzer.observe([-1, 10, 2, 20, 0.5, -30])
        #expect(analyzer.channels[0].minimum == -1 && analyzer.channels[0].maximum == 2)
        #expect(analyzer.channels[1].minimum == -30 && analyzer.channels[1].maximum == 20)
        let encoding = try analyzer.tensorEncoding(bitWidth: 8, symmetry: .signedSymmetric)
        guard case .perChannel(let axis, let grids) = encoding else {
            Issue.record("expected per-channel")
            return
        }
        #expect(axis == 1)
        #expect(grids[0].scale == Float(2.0 / 127.0) && grids[1].scale == Float(30.0 / 127.0))
        #expect(throws: QuantizationError.sizeMismatch(expected: 6, actual: 5)) { try analyzer.observe([1, 2, 3, 4, 5]) }
        // A NaN anywhere changes no channel.
        #expect(throws: QuantizationError.containsNaN) { try analyzer.observe([100, 100, 100, 100, 100, .nan]) }
        #expect(analyzer.channels[0].maximum == 2 && analyzer.channels[0].observedCount == 3)
    }

    @Test func perChannelConvWeightsWithSqnr() throws {
        var random = TestRandom(seed: 8)
        let shape = [4, 3, 3, 3]
        let weights = (0..<108).map { i in random.gaussian() * Float(i / 27 + 1) }
        var analyzer = try PerChannelEncodingAnalyzer(try SqnrEncodingAnalyzer(binCount: 512), shape: shape, axis: 0)
        try analyzer.observe(weights)
        let grids = try analyzer.encodings(bitWidth: 8, symmetry: .signedSymmetric)
        #expect(grids.count == 4)
        for c in 0..<4 {
            let slice = Array(weights[(c * 27)..<(c * 27 + 27)])
            let absMax = slice.map(abs).max()!
            #expect(grids[c].max <= absMax * 1.01 && grids[c].max >= absMax * 0.3)
        }
    }

    // MARK: Metrics

    @Test func sqnrAndTop1Helpers() {
        let value = sqnr(reference: [1, 2, 3], test: [1, 2, 3.1])
        #expect(abs(value - 10 * log10(14.0 / 0.01)) < 1e-3)
        #expect(sqnr(reference: [1, 2], test: [1, 2]) == .infinity)
        #expect(sqnr(reference: [1, 2], test: [1]).isNaN)
        #expect(top1Agreement(reference: [0, 1, 0, 5, 1, 0], test: [0, 2, 1, 3, 0, 9], classCount: 3) == 0.5)
        #expect(top1Agreement(reference: [0, 1], test: [0, 1], classCount: 3).isNaN)
    }
}


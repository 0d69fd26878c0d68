import CWhittleKernels
import Testing
@testable import WhittleEngine

/// The vectorised inner loops of CWhittleKernels against scalar references written here:
/// every row width around the 8- and 16-float vector steps (masked tails), 3x3 (register
/// path), 5x5 and odd tap counts (generic path), clamps, and NaN passing through an
/// unclamped output as it does in the scalar formula.
@Suite struct VectorKernelTests {
    private struct Random {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float((state >> 40) & 0xFFFF) / 32768 - 1
        }
    }

    /// Scalar `clamp(bias + sum_t w[t] * in[offsets[t] + oy * pitch + ox], low, high)`.
    private func referenceRows(_ input: [Float], offsets: [Int], weights: [Float], bias: Float, low: Float, high: Float,
                               rows: Int, columns: Int, pitch: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        for oy in 0..<rows {
            for ox in 0..<columns {
                var sum = bias
                for t in offsets.indices { sum += weights[t] * input[offsets[t] + oy * pitch + ox] }
                out[oy * columns + ox] = min(max(sum, low), high)
            }
        }
        return out
    }

    @Test(arguments: [(3, 3), (5, 5), (1, 1), (2, 3), (7, 1)])
    func depthwiseRowsMatchReference(kernel: (Int, Int)) {
        var random = Random(state: UInt64(kernel.0 * 10 + kernel.1))
        // Every tile height (1-8 rows of one vector, 1-4 rows of two) and band remainder.
        let shapes = [1, 2, 3, 4, 5, 7, 8, 9, 14].flatMap { rows in [1, 2, 7, 8, 9, 15, 16, 17, 23, 31, 33, 56].map { (rows, $0) } }
        for (rows, columns) in shapes {
            let pitch = columns + kernel.1 - 1
            let offsets = (0..<(kernel.0 * kernel.1)).map { ($0 / kernel.1) * pitch + $0 % kernel.1 }
            let count = (rows + kernel.0 - 1) * pitch + 16
            let input = (0..<count).map { _ in random.next() }
            let weights = offsets.map { _ in random.next() }
            for (low, high) in [(-Float.infinity, Float.infinity), (0, 0.5), (-0.2, 6)] {
                let expected = referenceRows(input, offsets: offsets, weights: weights, bias: 0.25, low: low, high: high,
                                             rows: rows, columns: columns, pitch: pitch)
                // One float of sentinel after the output: masked tails must not write past it.
                var output = [Float](repeating: -99, count: rows * columns + 1)
                whittle_depthwise_rows(input, offsets, offsets.count, weights, 0.25, low, high, rows, columns, pitch, &output)
                #expect(output[rows * columns] == -99, "wrote past the output at width \(columns)")
                let worst = zip(output, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-5, "kernel \(kernel) \(rows) rows width \(columns) clamp [\(low), \(high)]: error \(worst)")
            }
        }
    }

    @Test func depthwiseRowsPropagateNaNWithoutClamp() {
        let input = [Float](repeating: 1, count: 64)
        var withNaN = input
        withNaN[3] = .nan
        var output = [Float](repeating: 0, count: 8)
        whittle_depthwise_rows(withNaN, [0], 1, [1], 0, -.infinity, .infinity, 1, 8, 8, &output)
        #expect(output[3].isNaN)
        #expect(output[2] == 1 && output[4] == 1)
    }

    @Test func biasClampMatchesScalar() {
        var random = Random(state: 7)
        for count in [0, 1, 7, 8, 15, 16, 17, 40, 1001] {
            let values = (0..<count).map { _ in random.next() * 8 }
            for activation in [FusedActivation.none, .relu, .clip(min: 0, max: 6), .clip(min: -1, max: 0.5)] {
                let expected = values.map { activation.apply($0 + 0.75) }
                var inPlace = values
                inPlace.withUnsafeMutableBufferPointer { buffer in
                    if let base = buffer.baseAddress { linearBiasActivation(base, count: count, bias: 0.75, activation: activation) }
                }
                #expect(inPlace == expected, "in place, \(count) values, \(activation)")
                var copied = [Float](repeating: .nan, count: count + 1)
                values.withUnsafeBufferPointer { source in
                    copied.withUnsafeMutableBufferPointer { target in
                        if let s = source.baseAddress, let t = target.baseAddress {
                            linearCopyBiasActivation(from: s, to: t, count: count, bias: 0.75, activation: activation)
                        }
                    }
                }
                #expect(Array(copied.prefix(count)) == expected, "copy, \(count) values, \(activation)")
                #expect(copied[count].isNaN, "copy wrote past \(count) values")
            }
        }
    }

    /// `round_half_even(clamp(x / scale, low, high)) * scale`, clamp written as FakeQuantize documents it.
    private func referenceFakeQuantize(_ x: Float, scale: Float, low: Float, high: Float) -> Float {
        var v = x / scale
        v = v > low ? v : low
        v = v < high ? v : high
        return v.rounded(.toNearestOrEven) * scale
    }

    @Test func fakeQuantizeMatchesScalarBitForBit() {
        var random = Random(state: 77)
        let scale: Float = 0.05, low: Float = -128, high: Float = 127
        // Every length around the 8- and 16-float steps, values on ties (k + 1/2 steps), past
        // both grid ends, NaN (to the grid minimum), infinities and signed zeros.
        for count in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100] {
            var values = (0..<count).map { _ in random.next() * 9 }
            for i in stride(from: 0, to: count, by: 3) { values[i] = (Float(Int(random.next() * 300)) + 0.5) * scale }
            let specials: [Float] = [.nan, .infinity, -.infinity, -0.0, 0, 1e30, -1e30, 2.5 * scale, -2.5 * scale, 3.5 * scale]
            for (i, special) in specials.enumerated() where i < count { values[count - 1 - i] = special }
            var fast = [Float](repeating: 1, count: count), portable = fast, inPlace = values
            whittle_fake_quantize(values, &fast, count, scale, low, high)
            whittle_fake_quantize_portable(values, &portable, count, scale, low, high)
            inPlace.withUnsafeMutableBufferPointer { buffer in
                if let base = buffer.baseAddress { whittle_fake_quantize(base, base, count, scale, low, high) }
            }
            for i in 0..<count {
                let expected = referenceFakeQuantize(values[i], scale: scale, low: low, high: high)
                #expect(fast[i] == expected, "count \(count) index \(i): \(values[i]) -> \(fast[i]), expected \(expected)")
                #expect(portable[i] == expected)
                #expect(inPlace[i] == expected)
            }
        }
        // Ties go to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2.
        let ties: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5]
        var rounded = [Float](repeating: 0, count: ties.count)
        whittle_fake_quantize(ties, &rounded, ties.count, 1, -128, 127)
        #expect(rounded == [0, 2, 2, 0, -2])
        var nan: [Float] = [.nan]
        whittle_fake_quantize(nan, &nan, 1, 0.5, -4, 3)
        #expect(nan == [-2])
    }

    @Test func activationBounds() {
        #expect(FusedActivation.none.bounds.low == -.infinity && FusedActivation.none.bounds.high == .infinity)
        #expect(FusedActivation.relu.bounds.low == 0 && FusedActivation.relu.bounds.high == .infinity)
        let clip = FusedActivation.clip(min: 0, max: 6).bounds
        #expect(clip.low == 0 && clip.high == 6)
    }
}

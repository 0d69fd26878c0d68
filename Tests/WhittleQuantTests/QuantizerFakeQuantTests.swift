import Testing
@testable import WhittleQuant

@Suite("Quantizer fake quantization")
struct QuantizerFakeQuantTests {
    let unitSigned = QuantizationEncoding(bitWidth: 8, scale: 1, offset: -128, symmetry: .signedSymmetric)

    func qdq(_ values: [Float], _ e: QuantizationEncoding) -> [Float] {
        var out = values
        out.withUnsafeMutableBufferPointer { FakeQuantization.quantizeDequantize($0, encoding: e) }
        return out
    }

    func codes(_ values: [Float], _ e: QuantizationEncoding) throws -> [Int32] {
        var out = [Int32](repeating: -1, count: values.count)
        try values.withUnsafeBufferPointer { input in
            try out.withUnsafeMutableBufferPointer { try FakeQuantization.quantize(input, into: $0, encoding: e) }
        }
        return out
    }

    @Test func tiesRoundHalfToEven() {
        // Exactly halfway between grid points: to the even integer (ONNX QuantizeLinear rule).
        #expect(qdq([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5], unitSigned) == [0, 2, 2, 4, 0, -2, -2, -4])
        let quarter = QuantizationEncoding(bitWidth: 8, scale: 0.25, offset: -128, symmetry: .signedSymmetric)
        #expect(qdq([0.125, 0.375, -0.125, -0.375, 0.1, 0.4], quarter) == [0, 0.5, 0, -0.5, 0, 0.5])
    }

    @Test func valuesAtAndOutsideTheRangeSaturate() {
        let input: [Float] = [127, 127.4, 127.6, 200, -128, -128.4, -1000, .infinity, -.infinity, .greatestFiniteMagnitude]
        #expect(qdq(input, unitSigned) == [127, 127, 127, 127, -128, -128, -128, 127, -128, 127])
    }

    @Test func nanMapsToGridMinimumAndNegativeZeroToZero() throws {
        let out = qdq([.nan, -0.0], unitSigned)
        #expect(out[0] == -128)
        #expect(out[1] == 0)
        #expect(try codes([.nan, -0.0, 0], unitSigned) == [0, 128, 128])
        let unsigned = QuantizationEncoding(bitWidth: 8, scale: 0.5, offset: 0, symmetry: .unsignedSymmetric)
        #expect(try codes([-0.0, -3, 1.25, 1.75], unsigned) == [0, 0, 2, 4])
    }

    @Test func asymmetricCodesAndRoundTrip() throws {
        let e = try QuantizationEncoding.compute(min: -2.1179, max: 2.64, bitWidth: 8, symmetry: .asymmetric)
        let input: [Float] = [-5, -2.1179, -1, 0, 0.009, 1, 2.64, 3]
        let q = try codes(input, e)
        #expect(q.first == 0)
        #expect(q[3] == 114)  // zero sits on code -offset
        #expect(q.last == 255)
        var back = [Float](repeating: 0, count: q.count)
        try q.withUnsafeBufferPointer { codes in
            try back.withUnsafeMutableBufferPointer { try FakeQuantization.dequantize(codes, into: $0, encoding: e) }
        }
        #expect(back == qdq(input, e))
        #expect(back[3] == 0)
    }

    @Test(arguments: [4, 8, 16])
    func matchesReferenceOnRandomData(bits: Int) throws {
        var random = TestRandom(seed: UInt64(bits))
        let input = (0..<5000).map { _ in random.uniform(-3, 3) }
        for symmetry in QuantizationSymmetry.allCases {
            let e = try QuantizationEncoding.compute(min: -2, max: 2.5, bitWidth: bits, symmetry: symmetry)
            let out = qdq(input, e)
            for i in input.indices { #expect(out[i] == referenceQDQ(input[i], e)) }
            // Out of place equals in place; codes round-trip.
            var other = [Float](repeating: 0, count: input.count)
            try input.withUnsafeBufferPointer { source in
                try other.withUnsafeMutableBufferPointer {
                    try FakeQuantization.quantizeDequantize(source, into: $0, encoding: e)
                }
            }
            #expect(other == out)
            let q = try codes(input, e)
            #expect(q.allSatisfy { $0 >= 0 && Int($0) <= e.steps })
            #expect(q.contains(0) && q.contains(Int32(e.steps)))
        }
    }

    @Test func sixteenBitGridIsFine() throws {
        let e = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 16, symmetry: .asymmetric)
        let out = qdq([0.3, -1, 1, 0], e)
        #expect(abs(out[0] - 0.3) <= e.scale / 2)
        #expect(out[3] == 0)
        #expect(try codes([-1, 0, 1], e) == [0, 32768, 65535])
    }

    @Test func deadChannelAndZeroRangeTensor() throws {
        let dead = try QuantizationEncoding.compute(min: 0, max: 0, bitWidth: 8, symmetry: .asymmetric)
        #expect(qdq([0, 0, -0.0], dead) == [0, 0, 0])
        #expect(qdq([1e-6], dead)[0] == 8 * dead.scale)
        let point = try QuantizationEncoding.compute(min: 0.7, max: 0.7, bitWidth: 8, symmetry: .asymmetric)
        #expect(abs(qdq([0.7], point)[0] - 0.7) < 1e-6)
    }

    @Test func largeBuffersRunInChunks() {
        var random = TestRandom(seed: 9)
        let input = (0..<200_003).map { _ in random.uniform(-1, 1) }
        let e = QuantizationEncoding(bitWidth: 8, scale: 1.0 / 127, offset: -128, symmetry: .signedSymmetric)
        let out = qdq(input, e)
        #expect(out.indices.allSatisfy { out[$0] == referenceQDQ(input[$0], e) })
    }

    @Test func sizeMismatchThrows() {
        let input: [Float] = [1, 2, 3]
        var output = [Float](repeating: 0, count: 2)
        #expect(throws: QuantizationError.sizeMismatch(expected: 3, actual: 2)) {
            try input.withUnsafeBufferPointer { source in
                try output.withUnsafeMutableBufferPointer {
                    try FakeQuantization.quantizeDequantize(source, into: $0, encoding: unitSigned)
                }
            }
        }
    }

    // MARK: Per-channel

    func perChannelReference(_ input: [Float], shape: [Int], axis: Int, _ encodings: [QuantizationEncoding]) -> [Float] {
        let outer = shape[..<axis].reduce(1, *), channels = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        var out = input
        for o in 0..<outer { for c in 0..<channels { for i in 0..<inner {
            let index = (o * channels + c) * inner + i
            out[index] = referenceQDQ(input[index], encodings[c])
        } } }
        return out
    }

    @Test(arguments: [([4, 3, 2, 2], 0), ([5, 6], 1), ([5, 6], -1), ([2, 3, 4], 1), ([300, 7], 1)])
    func perChannelMatchesReference(shape: [Int], axis: Int) throws {
        var random = TestRandom(seed: 3)
        let count = shape.reduce(1, *)
        let input = (0..<count).map { _ in random.uniform(-2, 2) }
        let normalised = axis < 0 ? axis + shape.count : axis
        let encodings = try (0..<shape[normalised]).map { c in
            try QuantizationEncoding.compute(
                min: -Float(c + 1) * 0.3, max: Float(c + 1) * 0.2, bitWidth: 4 + c % 5,
                symmetry: QuantizationSymmetry.allCases[c % 4])
        }
        let quantizer = try PerChannelQuantizer(encodings: encodings, shape: shape, axis: axis)
        var inPlace = input
        try inPlace.withUnsafeMutableBufferPointer { try quantizer.quantizeDequantize($0) }
        #expect(inPlace == perChannelReference(input, shape: shape, axis: normalised, encodings))

        var codes = [Int32](repeating: 0, count: count)
        var back = [Float](repeating: 0, count: count)
        try input.withUnsafeBufferPointer { source in
            try codes.withUnsafeMutableBufferPointer { try quantizer.quantize(source, into: $0) }
        }
        try codes.withUnsafeBufferPointer { source in
            try back.withUnsafeMutableBufferPointer { try quantizer.dequantize(source, into: $0) }
        }
        #expect(back == inPlace)

        let tensor = try TensorQuantizer(encoding: .perChannel(axis: axis, encodings), shape: shape)
        var viaTensor = [Float](repeating: 0, count: count)
        try input.withUnsafeBufferPointer { source in
            try viaTensor.withUnsafeMutableBufferPointer { try tensor.quantizeDequantize(source, into: $0) }
        }
        #expect(viaTensor == inPlace)
    }

    @Test func perChannelLayoutErrors() throws {
        let e = unitSigned
        #expect(throws: QuantizationError.channelCountMismatch(expected: 3, actual: 2)) {
            try PerChannelQuantizer(encodings: [e, e], shape: [3, 4], axis: 0)
        }
        #expect(throws: QuantizationError.invalidAxis(axis: 2, rank: 2)) {
            try PerChannelQuantizer(encodings: [e, e], shape: [3, 4], axis: 2)
        }
        #expect(throws: QuantizationError.invalidAxis(axis: -3, rank: 2)) {
            try ChannelLayout(shape: [3, 4], axis: -3)
        }
        let quantizer = try PerChannelQuantizer(encodings: [e, e], shape: [2, 3], axis: 0)
        var wrong = [Float](repeating: 0, count: 5)
        #expect(throws: QuantizationError.sizeMismatch(expected: 6, actual: 5)) {
            try wrong.withUnsafeMutableBufferPointer { try quantizer.quantizeDequantize($0) }
        }
        #expect(throws: QuantizationError.unsupportedFloatWidth(8)) {
            try TensorQuantizer(encoding: .float(bitWidth: 8), shape: [2])
        }
    }

    // MARK: Float16

    @Test func float16RoundingMatchesSwiftFloat16() {
        var special: [Float] = [
            0, -0.0, 1, -1, 65504, 65519.99, 65520, -65520, 70000, .infinity, -.infinity,
            Float(bitPattern: 0x3880_0000), Float(bitPattern: 0x387F_FFFF), 0x1p-24, 0x1p-25, 0x1.8p-24,
            0x1p-26, 0x1.8p-25, 1.0009765625 + 0.00048828125, 1.0 + 0.00048828125, .leastNonzeroMagnitude,
            .greatestFiniteMagnitude, 3.14159265, -2.718281828,
        ]
        var random = TestRandom(seed: 16)
        for _ in 0..<200_000 { special.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))) }
        for _ in 0..<50_000 { special.append(random.uniform(-70000, 70000)) }
        for _ in 0..<50_000 { special.append(random.uniform(-1e-4, 1e-4)) }
        var rounded = special
        rounded.withUnsafeMutableBufferPointer { Float16Rounding.round($0) }
        var mismatches = 0
        for i in special.indices {
            let expected = Float(Float16(special[i]))
            if expected.isNaN ? !rounded[i].isNaN : expected.bitPattern != rounded[i].bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(Float16Rounding.round(0x1p-25) == 0)  // tie to even (zero)
        #expect(Float16Rounding.round(0x1.8p-24) == 0x1p-23)  // tie to even (2 x 2^-24)
        #expect(Float16Rounding.round(65520) == .infinity)
    }

    @Test func tensorQuantizerFloatModes() throws {
        let input: [Float] = [1.0001, 3.14159265, 1e-8]
        let half = try TensorQuantizer(encoding: .float(bitWidth: 16), shape: [3])
        var values = input
        try values.withUnsafeMutableBufferPointer { try half.quantizeDequantize($0) }
        #expect(values == input.map { Float(Float16($0)) })
        let full = try TensorQuantizer(encoding: .float(bitWidth: 32), shape: [3])
        values = input
        try values.withUnsafeMutableBufferPointer { try full.quantizeDequantize($0) }
        #expect(values == input)
        let tensor = try TensorQuantizer(encoding: .perTensor(unitSigned), shape: [3])
        values = [2.5, -300, 0.4]
        try values.withUnsafeMutableBufferPointer { try tensor.quantizeDequantize($0) }
        #expect(values == [2, -128, 0])
    }
}

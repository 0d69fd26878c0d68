import Testing
@testable import WhittleQuant

@Suite("Quantizer encoding computation")
struct QuantizerEncodingTests {
    @Test func aimetLegacyExampleAsymmetric8Bit() throws {
        // aimet.md §3.1 (0.6.1 export): observed [-2.1179, 2.64] -> scale 4.7579/255, offset -114.
        let e = try QuantizationEncoding.compute(min: -2.1179, max: 2.64, bitWidth: 8, symmetry: .asymmetric)
        #expect(e.scale == Float(4.7579 / 255.0))
        #expect(abs(e.scale - 0.018658) < 1e-6)
        #expect(e.offset == -114)
        #expect(e.steps == 255)
        #expect(abs(e.min - -2.1271) < 1e-4)
        #expect(abs(e.max - 2.6308) < 1e-4)
        // Shifted, not stretched: the grid keeps the observed width.
        #expect(abs((e.max - e.min) - 4.7579) < 1e-5)
    }

    @Test func signedSymmetric8BitUsesAbsMaxOver127() throws {
        let e = try QuantizationEncoding.compute(min: -1, max: 0.5, bitWidth: 8, symmetry: .signedSymmetric)
        #expect(e.scale == Float(1.0 / 127.0))
        #expect(e.offset == -128)
        #expect(e.symmetry == .signedSymmetric)
        #expect(abs(e.min - -128.0 / 127.0) < 1e-6)
        #expect(abs(e.max - 1) < 1e-6)
        // Positive side dominating gives the same absmax rule.
        let p = try QuantizationEncoding.compute(min: -0.1, max: 2.54, bitWidth: 8, symmetry: .signedSymmetric)
        #expect(p.scale == Float(2.54 / 127.0))
    }

    @Test func strictSymmetricHasMirroredGrid() throws {
        let e = try QuantizationEncoding.compute(min: -1, max: 0.25, bitWidth: 8, symmetry: .strictSymmetric)
        #expect(e.scale == Float(1.0 / 127.0))
        #expect(e.offset == -127)
        #expect(e.steps == 254)
        #expect(e.min == -e.max)
    }

    @Test func unsignedSymmetricOnlyForNonNegativeData() throws {
        let e = try QuantizationEncoding.compute(min: 0.2, max: 5.1, bitWidth: 8, symmetry: .unsignedSymmetric)
        #expect(e.symmetry == .unsignedSymmetric)
        #expect(e.offset == 0)
        #expect(e.scale == Float(5.1 / 255.0))
        // A negative minimum falls back to signed symmetric.
        let f = try QuantizationEncoding.compute(min: -1, max: 3, bitWidth: 8, symmetry: .unsignedSymmetric)
        #expect(f.symmetry == .signedSymmetric)
        #expect(f.offset == -128)
        #expect(f.scale == Float(3.0 / 127.0))
    }

    @Test func fourBitGrids() throws {
        let a = try QuantizationEncoding.compute(min: -1, max: 2, bitWidth: 4, symmetry: .asymmetric)
        #expect(a.steps == 15)
        #expect(a.scale == Float(3.0 / 15.0))
        #expect(a.offset == -5)
        #expect(abs(a.min - -1) < 1e-6 && abs(a.max - 2) < 1e-6)
        let s = try QuantizationEncoding.compute(min: -3, max: 1, bitWidth: 4, symmetry: .signedSymmetric)
        #expect(s.scale == Float(3.0 / 7.0))
        #expect(s.offset == -8)
        let t = try QuantizationEncoding.compute(min: -3, max: 1, bitWidth: 4, symmetry: .strictSymmetric)
        #expect(t.steps == 14 && t.offset == -7 && t.scale == Float(3.0 / 7.0))
        let u = try QuantizationEncoding.compute(min: 0, max: 3, bitWidth: 4, symmetry: .unsignedSymmetric)
        #expect(u.scale == 0.2 && u.offset == 0)
    }

    @Test func sixteenBitGrids() throws {
        let a = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 16, symmetry: .asymmetric)
        #expect(a.steps == 65535)
        #expect(a.scale == Float(2.0 / 65535.0))
        // -min/scale = 32767.500008 with the float32 scale -> 32768.
        #expect(a.offset == -32768)
        let s = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 16, symmetry: .signedSymmetric)
        #expect(s.scale == Float(1.0 / 32767.0))
        #expect(s.offset == -32768)
        let t = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 16, symmetry: .strictSymmetric)
        #expect(t.offset == -32767 && t.steps == 65534)
    }

    @Test func rangeIsForcedToContainZero() throws {
        let positive = try QuantizationEncoding.compute(min: 2, max: 4, bitWidth: 8, symmetry: .asymmetric)
        #expect(positive.offset == 0)
        #expect(positive.scale == Float(4.0 / 255.0))
        let negative = try QuantizationEncoding.compute(min: -3, max: -1, bitWidth: 8, symmetry: .asymmetric)
        #expect(negative.offset == -255)
        #expect(negative.scale == Float(3.0 / 255.0))
        #expect(negative.max == 0)
        let point = try QuantizationEncoding.compute(min: 2, max: 2, bitWidth: 8, symmetry: .asymmetric)
        #expect(point.scale == Float(2.0 / 255.0) && point.offset == 0)
    }

    @Test(arguments: QuantizationSymmetry.allCases)
    func deadChannelGetsEpsilonScale(symmetry: QuantizationSymmetry) throws {
        let e = try QuantizationEncoding.compute(min: 0, max: 0, bitWidth: 8, symmetry: symmetry)
        #expect(e.scale == 1.1920928955078125e-07)
        #expect(e.scale == QuantizationEncoding.minimumScale)
        switch e.symmetry {
        case .asymmetric, .unsignedSymmetric: #expect(e.offset == 0)
        case .signedSymmetric: #expect(e.offset == -128)
        case .strictSymmetric: #expect(e.offset == -127)
        }
        // A tiny but non-zero range is floored too.
        let tiny = try QuantizationEncoding.compute(min: -1e-9, max: 1e-9, bitWidth: 8, symmetry: symmetry)
        #expect(tiny.scale == QuantizationEncoding.minimumScale)
    }

    @Test func libpymoMinimumRangeIsOptional() throws {
        let e = try QuantizationEncoding.compute(min: 0, max: 0, bitWidth: 8, symmetry: .asymmetric, minimumRange: 0.01)
        #expect(e.scale == Float(0.01 / 255.0))
        #expect(e.offset == 0)
        // Without it a small range keeps its resolution.
        let small = try QuantizationEncoding.compute(min: -0.001, max: 0.001, bitWidth: 8, symmetry: .signedSymmetric)
        #expect(small.scale == Float(0.001 / 127.0))
    }

    @Test func invalidInputsThrowTypedErrors() {
        #expect(throws: QuantizationError.bitWidthOutOfRange(3)) {
            try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 3, symmetry: .asymmetric)
        }
        #expect(throws: QuantizationError.bitWidthOutOfRange(17)) {
            try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 17, symmetry: .asymmetric)
        }
        #expect(throws: QuantizationError.self) {
            try QuantizationEncoding.compute(min: .nan, max: 1, bitWidth: 8, symmetry: .asymmetric)
        }
        #expect(throws: QuantizationError.nonFiniteRange(min: -1, max: .infinity)) {
            try QuantizationEncoding.compute(min: -1, max: .infinity, bitWidth: 8, symmetry: .asymmetric)
        }
        #expect(throws: QuantizationError.invertedRange(min: 1, max: -1)) {
            try QuantizationEncoding.compute(min: 1, max: -1, bitWidth: 8, symmetry: .asymmetric)
        }
        #expect(QuantizationError.containsNaN.description == "tensor contains NaN")
        #expect(QuantizationError.containsInfinity.whittleError(subject: "conv1.weight").description
            == "conv1.weight: tensor contains Inf")
    }

    @Test func encodingFromScaleAndOffset() throws {
        let a = try QuantizationEncoding.validated(scale: 0.5, offset: -10, bitWidth: 8, symmetry: .asymmetric)
        #expect(a.min == -5 && a.max == 122.5)
        let s = try QuantizationEncoding.validated(scale: 0.5, offset: -8, bitWidth: 4, symmetry: .signedSymmetric)
        #expect(s.steps == 15 && s.max == 3.5)
        #expect(throws: QuantizationError.invalidOffset(offset: -127, symmetry: .signedSymmetric, bitWidth: 8)) {
            try QuantizationEncoding.validated(scale: 1, offset: -127, bitWidth: 8, symmetry: .signedSymmetric)
        }
        #expect(throws: QuantizationError.invalidOffset(offset: 1, symmetry: .asymmetric, bitWidth: 8)) {
            try QuantizationEncoding.validated(scale: 1, offset: 1, bitWidth: 8, symmetry: .asymmetric)
        }
        #expect(throws: QuantizationError.invalidOffset(offset: -256, symmetry: .asymmetric, bitWidth: 8)) {
            try QuantizationEncoding.validated(scale: 1, offset: -256, bitWidth: 8, symmetry: .asymmetric)
        }
        #expect(throws: QuantizationError.invalidScale(0)) {
            try QuantizationEncoding.validated(scale: 0, offset: 0, bitWidth: 8, symmetry: .unsignedSymmetric)
        }
        #expect(throws: QuantizationError.self) {
            try QuantizationEncoding.validated(scale: .nan, offset: 0, bitWidth: 8, symmetry: .unsignedSymmetric)
        }
        #expect(throws: QuantizationError.bitWidthOutOfRange(32)) {
            try QuantizationEncoding.validated(scale: 1, offset: 0, bitWidth: 32, symmetry: .asymmetric)
        }
    }
}

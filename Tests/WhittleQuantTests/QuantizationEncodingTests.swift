import Testing
@testable import WhittleQuant

@Suite("Quantization encoding")
struct QuantizationEncodingTests {
    @Test func signedSymmetricGridBounds() {
        let encoding = QuantizationEncoding(bitWidth: 8, scale: 0.5, offset: -128, symmetry: .signedSymmetric)
        #expect(encoding.min == -64)
        #expect(encoding.max == 63.5)
    }

    @Test func strictSymmetricHasOneStepLess() {
        let encoding = QuantizationEncoding(bitWidth: 8, scale: 1, offset: -127, symmetry: .strictSymmetric)
        #expect(encoding.steps == 254)
        #expect(encoding.max == 127)
    }
}

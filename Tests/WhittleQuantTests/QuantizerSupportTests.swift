import Foundation
import WhittleEngine
import WhittleQuant

/// Deterministic generator for tests (SplitMix64).
struct TestRandom {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { generator.nextUnit() }

    mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * Float(unit()) }

    /// Standard normal (Box-Muller).
    mutating func gaussian() -> Float {
        let u = max(unit(), 1e-300), v = unit()
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

/// Reference quantize-dequantize, written plainly: ONNX QuantizeLinear semantics.
func referenceQDQ(_ x: Float, _ e: QuantizationEncoding) -> Float {
    if x.isNaN { return Float(e.offset) * e.scale }
    let q = (x / e.scale).rounded(.toNearestOrEven)
    let clamped = min(max(q, Float(e.offset)), Float(e.offset + e.steps))
    return clamped * e.scale
}

func withBuffer<R>(_ values: [Float], _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
    try values.withUnsafeBufferPointer(body)
}

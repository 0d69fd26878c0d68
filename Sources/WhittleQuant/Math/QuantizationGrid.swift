import WhittleEngine

/// A per-tensor integer grid prepared for the fake-quant loops.
///
/// Rounding rule: **round half to even, clamp in the integer domain**:
///
///     q    = clamp(roundHalfEven(x / scale) - offset, 0, steps)     (the code)
///     x̂    = scale * (q + offset)                                   (quantize-dequantize)
///
/// This is exactly ONNX `QuantizeLinear` / `DequantizeLinear` (`y = saturate(round(x / scale) +
/// zero_point)`, zero_point = -offset, ties to even; the division is a true division as in
/// ONNX Runtime) and AIMET 2's `torch.round`, so a simulated model and the exported QDQ model
/// agree bit for bit. AIMET 1's libpymo clamps in float first and rounds half away from zero;
/// the two rules differ only for values exactly halfway between two grid points (e.g. with
/// scale 1, 2.5 goes to 2 here and to 3 in libpymo; -2.5 goes to -2 here, -3 in libpymo).
///
/// Special values: +/-Inf saturate to the grid ends; NaN maps to code 0 (the grid minimum) so
/// integer codes never trap; -0.0 quantizes to the zero code and dequantizes to +0.0.
///
/// Rounding uses the float32 "magic number" 1.5 * 2^23: after clamping, |x / scale| <= 65536,
/// so `(v + 12582912) - 12582912` rounds to the nearest integer with ties to even (the default
/// IEEE mode) in two additions that vectorise on any x86-64 or ARM target, unlike a call to
/// `roundevenf`.
public struct QuantizationGrid: Sendable, Equatable {
    public let scale: Float
    /// `offset` as a Float: the smallest grid point divided by scale.
    public let lowCode: Float
    /// `offset + steps` as a Float: the largest grid point divided by scale.
    public let highCode: Float
    public let offset: Int32

    public init(_ encoding: QuantizationEncoding) {
        scale = encoding.scale
        lowCode = Float(encoding.offset)
        highCode = Float(encoding.offset + encoding.steps)
        offset = Int32(encoding.offset)
    }

    /// Rounds `v` (|v| <= 2^22) to the nearest integer, ties to even.
    @inlinable @inline(__always)
    static func roundHalfEven(_ v: Float) -> Float {
        (v + 12_582_912) - 12_582_912
    }

    /// `x / scale` clamped to [lowCode, highCode] (NaN -> lowCode) and rounded: the signed
    /// grid index, as a Float.
    @inlinable @inline(__always)
    func gridIndex(_ x: Float) -> Float {
        var v = x / scale
        v = v > lowCode ? v : lowCode
        v = v < highCode ? v : highCode
        return Self.roundHalfEven(v)
    }

    /// Quantize-dequantize one value.
    @inlinable @inline(__always)
    public func quantizeDequantize(_ x: Float) -> Float {
        gridIndex(x) * scale
    }

    /// The code of one value, in 0...steps (add `offset` for the signed integer).
    @inlinable @inline(__always)
    public func code(_ x: Float) -> Int32 {
        Int32(gridIndex(x)) &- offset
    }

    /// The value of one code: `scale * (code + offset)` (codes are not clamped).
    @inlinable @inline(__always)
    public func value(ofCode code: Int32) -> Float {
        Float(code &+ offset) * scale
    }

    @inlinable
    func quantizeDequantize(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { output[i] = quantizeDequantize(input[i]) }
    }

    @inlinable
    func quantize(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Int32>, _ count: Int) {
        for i in 0..<count { output[i] = code(input[i]) }
    }

    @inlinable
    func dequantize(_ input: UnsafePointer<Int32>, _ output: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { output[i] = value(ofCode: input[i]) }
    }
}

/// Runs `body(start, count)` over `0..<count` in chunks of `chunk` items, split over the
/// engine's threads when there are more than two chunks.
@inlinable
func chunkedLoop(_ count: Int, chunk: Int = 1 << 15, _ body: (Int, Int) -> Void) {
    if count <= 2 * chunk {
        body(0, count)
        return
    }
    let chunks = (count + chunk - 1) / chunk
    parallelFor(chunks) { index in
        let start = index * chunk
        body(start, Swift.min(chunk, count - start))
    }
}

/// Per-tensor quantize-dequantize, quantize and dequantize over float buffers.
///
/// See `QuantizationGrid` for the rounding rule. No function allocates; large buffers are
/// processed in parallel chunks.
public enum FakeQuantization {
    /// Quantize-dequantize in place.
    public static func quantizeDequantize(_ values: UnsafeMutableBufferPointer<Float>, encoding: QuantizationEncoding) {
        guard let base = values.baseAddress else { return }
        let grid = QuantizationGrid(encoding)
        chunkedLoop(values.count) { start, count in
            grid.quantizeDequantize(UnsafePointer(base + start), base + start, count)
        }
    }

    /// Quantize-dequantize `input` into `output` (same element count).
    public static func quantizeDequantize(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, encoding: QuantizationEncoding
    ) throws(QuantizationError) {
        guard input.count == output.count else { throw .sizeMismatch(expected: input.count, actual: output.count) }
        guard let source = input.baseAddress, let target = output.baseAddress else { return }
        let grid = QuantizationGrid(encoding)
        chunkedLoop(input.count) { start, count in
            grid.quantizeDequantize(source + start, target + start, count)
        }
    }

    /// Integer codes in `0...steps` (AIMET's unsigned convention; `code + offset` is the signed
    /// integer, e.g. the int8 value of a signed symmetric 8-bit grid).
    public static func quantize(
        _ input: UnsafeBufferPointer<Float>, into codes: UnsafeMutableBufferPointer<Int32>, encoding: QuantizationEncoding
    ) throws(QuantizationError) {
        guard input.count == codes.count else { throw .sizeMismatch(expected: input.count, actual: codes.count) }
        guard let source = input.baseAddress, let target = codes.baseAddress else { return }
        let grid = QuantizationGrid(encoding)
        chunkedLoop(input.count) { start, count in
            grid.quantize(source + start, target + start, count)
        }
    }

    /// Values `scale * (code + offset)` of integer codes.
    public static func dequantize(
        _ codes: UnsafeBufferPointer<Int32>, into output: UnsafeMutableBufferPointer<Float>, encoding: QuantizationEncoding
    ) throws(QuantizationError) {
        guard codes.count == output.count else { throw .sizeMismatch(expected: codes.count, actual: output.count) }
        guard let source = codes.baseAddress, let target = output.baseAddress else { return }
        let grid = QuantizationGrid(encoding)
        chunkedLoop(codes.count) { start, count in
            grid.dequantize(source + start, target + start, count)
        }
    }
}

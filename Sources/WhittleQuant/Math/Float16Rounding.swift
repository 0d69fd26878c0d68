import WhittleEngine

/// Float16 pass-through: round each float32 to the nearest IEEE binary16 value (ties to even,
/// overflow to +/-Inf, gradual underflow to float16 subnormals) and keep it as float32.
///
/// Done with integer bit operations rather than `Float16(x)` so that the loop vectorises on
/// x86-64 targets without F16C (where `Float16(x)` is a library call per element). The tests
/// check it against Swift's `Float16` conversion.
public enum Float16Rounding {
    /// `Float(Float16(x))`, computed on the float32 bit pattern (see `roundToFloat16`).
    @inlinable @inline(__always)
    public static func round(_ x: Float) -> Float { roundToFloat16(x) }

    /// Rounds every value to float16 precision in place.
    public static func round(_ values: UnsafeMutableBufferPointer<Float>) {
        guard let base = values.baseAddress else { return }
        chunkedLoop(values.count) { start, count in
            let pointer = base + start
            for i in 0..<count { pointer[i] = round(pointer[i]) }
        }
    }

    /// Rounds `input` to float16 precision into `output`.
    public static func round(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>
    ) throws(QuantizationError) {
        guard input.count == output.count else { throw .sizeMismatch(expected: input.count, actual: output.count) }
        guard let source = input.baseAddress, let target = output.baseAddress else { return }
        chunkedLoop(input.count) { start, count in
            for i in start..<(start + count) { target[i] = round(source[i]) }
        }
    }
}

/// Fake quantization of a whole tensor from its `TensorEncoding`: per-tensor or per-channel
/// integer grids, float16 rounding, or float32 identity. Built once per tensor; applying it
/// does not allocate.
public struct TensorQuantizer: Sendable {
    public enum Mode: Sendable {
        case perTensor(QuantizationEncoding)
        case perChannel(PerChannelQuantizer)
        case float16
        case identity
    }

    public let mode: Mode
    public let elementCount: Int

    /// - Throws: for a per-channel encoding that does not fit `shape`, or a float width other than 16 or 32.
    public init(encoding: TensorEncoding, shape: [Int]) throws(QuantizationError) {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw .invalidShape(shape) }
        elementCount = shape.reduce(1, *)
        switch encoding {
        case .perTensor(let grid):
            mode = .perTensor(grid)
        case .perChannel(let axis, let grids):
            mode = .perChannel(try PerChannelQuantizer(encodings: grids, shape: shape, axis: axis))
        case .float(let bits):
            switch bits {
            case 16: mode = .float16
            case 32: mode = .identity
            default: throw .unsupportedFloatWidth(bits)
            }
        }
    }

    /// Quantize-dequantize in place.
    public func quantizeDequantize(_ values: UnsafeMutableBufferPointer<Float>) throws(QuantizationError) {
        guard values.count == elementCount else { throw .sizeMismatch(expected: elementCount, actual: values.count) }
        switch mode {
        case .perTensor(let grid): FakeQuantization.quantizeDequantize(values, encoding: grid)
        case .perChannel(let quantizer): try quantizer.quantizeDequantize(values)
        case .float16: Float16Rounding.round(values)
        case .identity: break
        }
    }

    /// Quantize-dequantize `input` into `output`.
    public func quantizeDequantize(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>
    ) throws(QuantizationError) {
        guard input.count == elementCount else { throw .sizeMismatch(expected: elementCount, actual: input.count) }
        switch mode {
        case .perTensor(let grid): try FakeQuantization.quantizeDequantize(input, into: output, encoding: grid)
        case .perChannel(let quantizer): try quantizer.quantizeDequantize(input, into: output)
        case .float16: try Float16Rounding.round(input, into: output)
        case .identity:
            guard output.count == input.count else { throw .sizeMismatch(expected: input.count, actual: output.count) }
            guard let source = input.baseAddress, let target = output.baseAddress else { return }
            target.update(from: source, count: input.count)
        }
    }
}

import CWhittleKernels

/// Quantization simulation operators (domain `com.whittle`). The quantization pass inserts
/// them; the QDQ exporter turns them into ONNX QuantizeLinear/DequantizeLinear pairs.
///
/// `FakeQuantize(X, scale, low, high)` with attribute `axis`:
///
///     v = clamp(X / scale[c], low[c], high[c])      (low/high: the grid ends divided by scale)
///     Y = roundHalfEven(v) * scale[c]
///
/// where `c` is the index along `axis` when `scale` has more than one element (per-channel),
/// else 0. `low = offset` and `high = offset + steps` of an AIMET encoding, so this equals
/// ONNX `DequantizeLinear(QuantizeLinear(X))` for a grid that fills its integer type (round
/// half to even, true division), and the same followed by a clamp for narrower grids.
/// NaN inputs map to the grid minimum.
///
/// `FakeQuantizeFloat16(X)` rounds to the nearest float16 value (ties to even) and back: the
/// 16-bit float pass-through of AIMET's `float` quantizers.
extension OperatorRegistry {
    public static let fakeQuantizeOpType = "FakeQuantize"
    public static let fakeQuantizeFloat16OpType = "FakeQuantizeFloat16"
    public static let whittleDomain = "com.whittle"

    static let quantizationOperators: [OperatorSpec] = [
        OperatorSpec(opType: fakeQuantizeOpType, inferShapes: { context in
            let input = try context.input(0)
            _ = try FakeQuantizeGeometry(context: context, shape: input.shape)
            return [input]
        }, makeKernel: { context, outputs in
            let geometry = try FakeQuantizeGeometry(context: context, shape: outputs[0].shape)
            return FakeQuantizeKernel(geometry: geometry)
        }),
        OperatorSpec(opType: fakeQuantizeFloat16OpType, inferShapes: { context in
            [try context.input(0)]
        }, makeKernel: { _, outputs in
            Float16RoundKernel(count: outputs[0].count)
        }),
    ]
}

/// How a FakeQuantize input splits into `outer x channels x inner` for its parameters.
struct FakeQuantizeGeometry: Sendable {
    let outer: Int
    let channels: Int
    let inner: Int

    init(context: NodeContext, shape: [Int]) throws {
        let scale = try context.input(1)
        for index in 2...3 {
            let bound = try context.input(index)
            guard bound.count == scale.count else {
                throw context.error("scale has \(scale.count) values but input #\(index) has \(bound.count)")
            }
        }
        guard scale.count >= 1 else { throw context.error("scale is empty") }
        if scale.count == 1 {
            outer = 1
            channels = 1
            inner = shape.reduce(1, *)
            return
        }
        let rank = shape.count
        let rawAxis = try context.int("axis", default: 1)
        let axis = rawAxis < 0 ? rawAxis + rank : rawAxis
        guard axis >= 0, axis < rank else { throw context.error("axis \(rawAxis) is out of range for rank \(rank)") }
        guard shape[axis] == scale.count else {
            throw context.error("per-channel scale has \(scale.count) values but axis \(axis) has \(shape[axis]) channels")
        }
        outer = shape[..<axis].reduce(1, *)
        channels = shape[axis]
        inner = shape[(axis + 1)...].reduce(1, *)
    }
}

struct FakeQuantizeKernel: Kernel {
    let geometry: FakeQuantizeGeometry

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        let source = inputs[0], scales = inputs[1], lows = inputs[2], highs = inputs[3]
        let target = outputs[0]
        let channels = geometry.channels, inner = geometry.inner
        let blocks = geometry.outer * channels
        // Split big blocks into chunks so a per-tensor quantizer still uses every core.
        let chunk = 1 << 14
        let chunksPerBlock = max(1, (inner + chunk - 1) / chunk)
        parallelFor(blocks * chunksPerBlock, grain: 4) { index in
            let block = index / chunksPerBlock
            let start = (index % chunksPerBlock) * chunk
            let end = min(inner, start + chunk)
            let channel = block % channels
            let scale = scales[channel], low = lows[channel], high = highs[channel]
            let offset = block * inner + start
            whittle_fake_quantize(source + offset, target + offset, end - start, scale, low, high)
        }
    }
}

struct Float16RoundKernel: Kernel {
    let count: Int

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        let source = inputs[0], target = outputs[0]
        for i in 0..<count { target[i] = roundToFloat16(source[i]) }
    }
}

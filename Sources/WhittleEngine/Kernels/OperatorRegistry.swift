/// Every operator Whittle can compile, by ONNX op type (default domain).
///
/// Each kernel family contributes its own list in its own file:
/// `linearOperators` (Conv, ConvTranspose, Gemm, MatMul, BatchNormalization, pooling),
/// `elementwiseOperators` (activations, broadcasting arithmetic, Softmax, ReduceMean, Cast ...),
/// `layoutOperators` (Reshape, Transpose, Concat, Slice, Pad, Resize, Shape, Gather ...).
public enum OperatorRegistry {
    public static let specs: [String: OperatorSpec] = {
        var table: [String: OperatorSpec] = [:]
        for spec in linearOperators + elementwiseOperators + layoutOperators + quantizationOperators {
            precondition(table[spec.opType] == nil, "operator \(spec.opType) registered twice")
            table[spec.opType] = spec
        }
        return table
    }()

    public static func spec(for opType: String) -> OperatorSpec? { specs[opType] }

    /// The spec for an op in a given domain: ONNX ops in the default domain (`""` or
    /// `ai.onnx`), Whittle's own simulation ops in `com.whittle` only.
    public static func spec(for opType: String, domain: String) -> OperatorSpec? {
        let whittleOp = opType == fakeQuantizeOpType || opType == fakeQuantizeFloat16OpType
        switch domain {
        case "", "ai.onnx": return whittleOp ? nil : specs[opType]
        case whittleDomain: return whittleOp ? specs[opType] : nil
        default: return nil
        }
    }

    public static var supportedOpTypes: [String] { specs.keys.sorted() }
}

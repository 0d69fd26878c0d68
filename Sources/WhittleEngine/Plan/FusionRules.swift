/// Which activations may be folded into which producing kernels.
enum FusionRules {
    /// Producers whose kernels can apply an activation in their output loop.
    static func canFuseActivation(into opType: String) -> Bool {
        ["Conv", "Gemm", "MatMul"].contains(opType)
    }

    /// Producers whose kernels can also apply a per-tensor fake quantizer after the activation.
    static func canFuseQuantizer(into opType: String) -> Bool {
        opType == "Conv"
    }

    /// The activation a node computes, when it is one that can be fused.
    static func activation(of context: NodeContext) -> FusedActivation? {
        OperatorRegistry.fusedActivation(for: context)
    }

    /// A kernel computing `quantizer(activation(op(inputs)))`, or nil when the family cannot
    /// fuse (a quantizer only where `canFuseQuantizer`).
    static func makeKernel(context: NodeContext, outputs: [TensorInfo], activation: FusedActivation,
                           quantizer: FusedQuantizer? = nil) throws -> (any Kernel)? {
        if quantizer != nil && !canFuseQuantizer(into: context.node.opType) { return nil }
        switch context.node.opType {
        case "Conv": return try OperatorRegistry.makeConvKernel(context: context, outputs: outputs, activation: activation,
                                                                quantizer: quantizer)
        case "Gemm": return try OperatorRegistry.makeGemmKernel(context: context, outputs: outputs, activation: activation)
        case "MatMul": return try OperatorRegistry.makeMatMulKernel(context: context, outputs: outputs, activation: activation)
        default: return nil
        }
    }
}

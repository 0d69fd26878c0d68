/// Which activations may be folded into which producing kernels.
enum FusionRules {
    /// Producers whose kernels can apply an activation in their output loop.
    static func canFuseActivation(into opType: String) -> Bool {
        ["Conv", "Gemm", "MatMul"].contains(opType)
    }

    /// The activation a node computes, when it is one that can be fused.
    static func activation(of context: NodeContext) -> FusedActivation? {
        OperatorRegistry.fusedActivation(for: context)
    }

    /// A kernel computing `activation(op(inputs))`, or nil when the family cannot fuse.
    static func makeKernel(context: NodeContext, outputs: [TensorInfo], activation: FusedActivation) throws -> (any Kernel)? {
        switch context.node.opType {
        case "Conv": return try OperatorRegistry.makeConvKernel(context: context, outputs: outputs, activation: activation)
        case "Gemm": return try OperatorRegistry.makeGemmKernel(context: context, outputs: outputs, activation: activation)
        case "MatMul": return try OperatorRegistry.makeMatMulKernel(context: context, outputs: outputs, activation: activation)
        default: return nil
        }
    }
}

/// Which activations may be folded into which producing kernels.
enum FusionRules {
    /// Producers whose kernels can apply an activation in their output loop.
    static func canFuseActivation(into opType: String) -> Bool {
        ["Conv", "Gemm", "MatMul"].contains(opType)
    }

    /// The activation a node computes, when it is one that can be fused.
    static func activation(of context: NodeContext) -> FusedActivation? {
        switch context.node.opType {
        case "Relu": return .relu
        case "Clip":
            if context.opsetVersion < 11 {
                let low = (try? context.float("min", default: -.greatestFiniteMagnitude)) ?? -.greatestFiniteMagnitude
                let high = (try? context.float("max", default: .greatestFiniteMagnitude)) ?? .greatestFiniteMagnitude
                return .clip(min: low, max: high)
            }
            let low: Float = context.hasInput(1) ? (context.constant(1)?.floats.first ?? .nan) : -.greatestFiniteMagnitude
            let high: Float = context.hasInput(2) ? (context.constant(2)?.floats.first ?? .nan) : .greatestFiniteMagnitude
            if low.isNaN || high.isNaN { return nil }
            return .clip(min: low, max: high)
        default: return nil
        }
    }

    /// A kernel computing `activation(op(inputs))`, or nil when the family cannot fuse.
    static func makeKernel(context: NodeContext, outputs: [TensorInfo], activation: FusedActivation) throws -> (any Kernel)? {
        nil
    }
}

extension OperatorRegistry {
    /// Conv, ConvTranspose, Gemm, MatMul, BatchNormalization, MaxPool, AveragePool and
    /// GlobalAveragePool.
    static let linearOperators: [OperatorSpec] = [
        OperatorSpec(opType: "Conv", inferShapes: LinearConv.inferShapes,
                     makeKernel: { context, outputs in
                         try makeConvKernel(context: context, outputs: outputs, activation: .none)
                     }),
        OperatorSpec(opType: "ConvTranspose", inferShapes: LinearConvTranspose.inferShapes,
                     makeKernel: { context, _ in try LinearConvTranspose.makeKernel(context) }),
        OperatorSpec(opType: "Gemm", inferShapes: LinearGemm.inferShapes,
                     makeKernel: { context, outputs in
                         try makeGemmKernel(context: context, outputs: outputs, activation: .none)
                     }),
        OperatorSpec(opType: "MatMul", inferShapes: LinearMatMul.inferShapes,
                     makeKernel: { context, outputs in
                         try makeMatMulKernel(context: context, outputs: outputs, activation: .none)
                     }),
        OperatorSpec(opType: "BatchNormalization", inferShapes: LinearBatchNorm.inferShapes,
                     makeKernel: { context, _ in try LinearBatchNorm.makeKernel(context) }),
        OperatorSpec(opType: "MaxPool", isDataMovement: true,
                     inferShapes: { try LinearPool.inferShapes($0, mode: .max) },
                     makeKernel: { context, _ in try LinearPool.makeKernel(context, mode: .max) }),
        OperatorSpec(opType: "AveragePool",
                     inferShapes: { try LinearPool.inferShapes($0, mode: .average) },
                     makeKernel: { context, _ in try LinearPool.makeKernel(context, mode: .average) }),
        OperatorSpec(opType: "GlobalAveragePool", inferShapes: LinearGlobalAveragePool.inferShapes,
                     makeKernel: { context, _ in try LinearGlobalAveragePool.makeKernel(context) }),
    ]

    /// Builds a Conv kernel with `activation` (then `quantizer`, if any) applied in its output
    /// loop after the bias. Depthwise convolutions (group == C_in) run a direct kernel; 1x1
    /// stride-1 unpadded ones a GEMM straight on the NCHW image; everything else im2col + GEMM.
    public static func makeConvKernel(context: NodeContext, outputs: [TensorInfo], activation: FusedActivation,
                                      quantizer: FusedQuantizer? = nil) throws -> any Kernel {
        try LinearConv.makeKernel(context, activation: activation, quantizer: quantizer)
    }

    /// Builds a Gemm kernel with `activation` applied to the result (after `beta * C`).
    public static func makeGemmKernel(context: NodeContext, outputs: [TensorInfo],
                                      activation: FusedActivation) throws -> any Kernel {
        try LinearGemm.makeKernel(context, activation: activation)
    }

    /// Builds a MatMul kernel with `activation` applied to the result.
    public static func makeMatMulKernel(context: NodeContext, outputs: [TensorInfo],
                                        activation: FusedActivation) throws -> any Kernel {
        try LinearMatMul.makeKernel(context, activation: activation)
    }
}

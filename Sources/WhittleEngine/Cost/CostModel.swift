/// Cost of one runtime layer at the analysed batch size.
public struct LayerCost: Sendable, Equatable, Codable {
    public var name: String
    public var opType: String
    public var outputShape: [Int]
    /// Learned parameters this layer reads (float constants; shared tensors counted once).
    public var parameters: Int
    /// Multiply-accumulates (Conv, ConvTranspose, Gemm, MatMul; 0 for other ops, as AIMET counts).
    public var macs: Int
    /// Bytes of the layer's float32 outputs.
    public var activationBytes: Int
}

/// Per-layer and total cost of a model.
public struct ModelCost: Sendable, Equatable, Codable {
    public var batchSize: Int
    public var layers: [LayerCost]
    public var totalParameters: Int { layers.reduce(0) { $0 + $1.parameters } }
    public var totalMACs: Int { layers.reduce(0) { $0 + $1.macs } }
    public var totalActivationBytes: Int { layers.reduce(0) { $0 + $1.activationBytes } }
}

public enum CostModel {
    /// Costs of every runtime node of an analysed graph.
    public static func analyze(_ analysis: GraphAnalysis) -> ModelCost {
        var counted = Set<String>()
        var layers: [LayerCost] = []
        for runtime in analysis.runtimeNodes {
            let node = runtime.node
            var parameters = 0
            for name in node.inputs where !name.isEmpty && !counted.contains(name) {
                if let tensor = analysis.graph.initializers[name], tensor.isFloatingPoint, tensor.count > 1 || isWeightOperator(node.opType) {
                    parameters += tensor.count
                    counted.insert(name)
                }
            }
            let outputShape = runtime.outputInfos.first?.shape ?? []
            layers.append(LayerCost(
                name: node.name, opType: node.opType, outputShape: outputShape, parameters: parameters,
                macs: macs(of: runtime), activationBytes: runtime.outputInfos.reduce(0) { $0 + 4 * $1.count }))
        }
        let batch = analysis.inputInfos.values.first?.shape.first ?? 1
        return ModelCost(batchSize: batch, layers: layers)
    }

    static func isWeightOperator(_ opType: String) -> Bool {
        ["Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "PRelu"].contains(opType)
    }

    /// Multiply-accumulates of one node from its input and output shapes.
    static func macs(of runtime: GraphAnalysis.RuntimeNode) -> Int {
        let context = runtime.context
        guard let output = runtime.outputInfos.first else { return 0 }
        switch context.node.opType {
        case "Conv":
            // Every output element is a dot product over (C_in / group) x kernel elements.
            guard let weight = context.inputs[1], weight.rank >= 3 else { return 0 }
            let perOutput = weight.shape.dropFirst().reduce(1, *)
            return output.count * perOutput
        case "ConvTranspose":
            // Every input element is scattered to (C_out / group) x kernel outputs.
            guard let input = context.inputs[0], let weight = context.inputs[1], weight.rank >= 3 else { return 0 }
            return input.count * weight.shape.dropFirst().reduce(1, *)
        case "Gemm":
            guard let a = context.inputs[0], a.rank == 2 else { return 0 }
            let transA = (try? context.int("transA", default: 0)) ?? 0
            let k = transA == 0 ? a.shape[1] : a.shape[0]
            return output.count * k
        case "MatMul":
            guard let a = context.inputs[0], let k = a.shape.last else { return 0 }
            return output.count * k
        default:
            return 0
        }
    }
}

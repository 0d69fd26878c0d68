import WhittleEngine

/// Which node inputs are parameters (AIMET "param types") and along which axis their
/// per-channel encodings run. Per-channel axes follow the output-channel dimension of each
/// ONNX operator's weight layout (see aimet.md §1.3): Conv W is (M, C/g, kH, kW) → axis 0;
/// ConvTranspose W is (C, M/g, kH, kW) → axis 1; Gemm B is (K, N), or (N, K) when transB=1
/// → axis 1 / 0; MatMul B is (..., K, N) → the last axis.
public enum ParameterSlots {
    /// The AIMET param type (`weight`, `bias`, `running_mean`, `running_var`) of input
    /// `inputIndex` of an `opType` node, or nil when that input is not a parameter slot.
    public static func parameterType(opType: String, inputIndex: Int) -> String? {
        switch (opType, inputIndex) {
        case ("Conv", 1), ("ConvTranspose", 1), ("Gemm", 1), ("MatMul", 1): return "weight"
        case ("Conv", 2), ("ConvTranspose", 2), ("Gemm", 2): return "bias"
        case ("BatchNormalization", 1): return "weight"
        case ("BatchNormalization", 2): return "bias"
        case ("BatchNormalization", 3): return "running_mean"
        case ("BatchNormalization", 4): return "running_var"
        case ("InstanceNormalization", 1), ("LayerNormalization", 1), ("GroupNormalization", 1): return "weight"
        case ("InstanceNormalization", 2), ("LayerNormalization", 2), ("GroupNormalization", 2): return "bias"
        case ("PRelu", 1): return "weight"
        default: return nil
        }
    }

    /// The per-channel axis of the tensor at input `inputIndex` of `node`, whose rank is
    /// `rank` when known. Weights follow the operator's output-channel dimension; every
    /// other parameter uses axis 0.
    public static func channelAxis(of node: Node, inputIndex: Int, rank: Int?) -> Int {
        guard inputIndex == 1 else { return 0 }
        switch node.opType {
        case "Conv": return 0
        case "ConvTranspose": return 1
        case "Gemm":
            if case .int(let transB)? = node.attributes["transB"], transB != 0 { return 0 }
            return 1
        case "MatMul":
            if let rank { return Swift.max(rank - 1, 0) }
            return 1
        default: return 0
        }
    }

    /// The per-channel axis of every tensor consumed by a node of `graph` (the first
    /// consumer decides), for reading encodings formats that do not store it.
    public static func channelAxes(in graph: Graph) -> [String: Int] {
        var axes: [String: Int] = [:]
        for node in graph.nodes {
            for (index, input) in node.inputs.enumerated() where !input.isEmpty && axes[input] == nil {
                axes[input] = channelAxis(of: node, inputIndex: index, rank: graph.initializers[input]?.shape.count)
            }
        }
        return axes
    }
}

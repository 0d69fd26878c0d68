/// Folds elementwise Mul, Div, Add and Sub by a constant that follow a Conv into the Conv's
/// weights and bias (what Qualcomm's converters do when they squash an elementwise op into a
/// convolution). Exporters write an inference BatchNorm or a learnable affine layer this way,
/// e.g. PaddleOCR's PP-LCNetV3 as `Conv → Mul(s) → Add(b)`.
///
/// With per-output-channel constants `v_o` (a scalar, or a tensor broadcasting along the
/// channel axis 1 only, such as `[1, C, 1, 1]` or `[C, 1, 1]`), for `y_o = W_o * x + b_o`:
///
///     y · v:  W'_o = v_o W_o,  b'_o = v_o b_o        y / v:  W'_o = W_o / v_o,  b'_o = b_o / v_o
///     y + v:  b'_o = b_o + v_o                        y − v:  b'_o = b_o − v_o
///
/// The fold is exact (up to float rounding). The Conv then writes the folded op's output
/// tensor, so the names encodings refer to survive; chains (`Conv → Mul → Add`) fold one op at
/// a time. A Conv output is folded only when the op is its only reader and it is not a model
/// output or preserved; `v − y` and `v / y` are left alone, as are constants of any other
/// shape (a `[C]` vector broadcasts along the last axis in ONNX, not along the channels).
public enum ScaleShiftFolding {
    public struct Fold: Sendable, Equatable {
        public var conv: String
        /// The folded Mul, Div, Add or Sub node.
        public var node: String
    }

    public static func fold(_ graph: Graph, preserving preserved: Set<String> = []) -> (graph: Graph, folds: [Fold]) {
        var result = graph
        var folds: [Fold] = []
        var removed = Set<Int>()
        let outputs = Set(graph.outputs.map(\.name))
        let consumers = graph.consumers()
        for convIndex in graph.nodes.indices where graph.nodes[convIndex].opType == "Conv" && graph.nodes[convIndex].domain.isEmpty {
            while let next = foldableConsumer(of: convIndex, in: result, consumers: consumers, removed: removed,
                                              outputs: outputs, preserved: preserved) {
                let conv = result.nodes[convIndex]
                guard let weightName = conv.input(1), let weight = result.initializers[weightName] else { break }
                let channels = weight.shape[0]
                var weights = weight.floats
                var bias = conv.input(2).flatMap { result.initializers[$0]?.floats } ?? [Float](repeating: 0, count: channels)
                let perChannel = next.values.count == 1 ? [Float](repeating: next.values[0], count: channels) : next.values
                let inner = weights.count / channels
                switch next.node.opType {
                case "Mul", "Div":
                    let factors = next.node.opType == "Mul" ? perChannel : perChannel.map { 1 / $0 }
                    for o in 0..<channels {
                        for i in 0..<inner { weights[o * inner + i] *= factors[o] }
                        bias[o] *= factors[o]
                    }
                case "Add":
                    for o in 0..<channels { bias[o] += perChannel[o] }
                default: // Sub
                    for o in 0..<channels { bias[o] -= perChannel[o] }
                }
                var rewritten = conv
                if next.node.opType == "Mul" || next.node.opType == "Div" {
                    let name = (consumers[weightName]?.count ?? 0) <= 1
                        ? weightName : BatchNormFolding.freshName(weightName + ".folded", in: result)
                    result.initializers[name] = Tensor(shape: weight.shape, floats: weights)
                    rewritten.inputs[1] = name
                }
                let biasName = conv.input(2).flatMap { (consumers[$0]?.count ?? 0) <= 1 ? $0 : nil }
                    ?? BatchNormFolding.freshName("\(conv.name).bias", in: result)
                result.initializers[biasName] = Tensor(shape: [channels], floats: bias)
                while rewritten.inputs.count < 3 { rewritten.inputs.append("") }
                rewritten.inputs[2] = biasName
                rewritten.outputs = [next.node.outputs[0]]
                result.nodes[convIndex] = rewritten
                removed.insert(next.index)
                folds.append(Fold(conv: conv.name, node: next.node.name))
            }
        }
        guard !folds.isEmpty else { return (graph, []) }
        return (result.removingNodes(at: removed), folds)
    }

    private struct Candidate {
        var index: Int
        var node: Node
        /// One value, or one per output channel.
        var values: [Float]
    }

    /// The Mul/Div/Add/Sub that reads the Conv's output alone with a per-channel constant, if any.
    private static func foldableConsumer(of convIndex: Int, in graph: Graph, consumers: [String: [Int]], removed: Set<Int>,
                                         outputs: Set<String>, preserved: Set<String>) -> Candidate? {
        let conv = graph.nodes[convIndex]
        guard conv.outputs.count == 1, let output = conv.outputs.first, !outputs.contains(output), !preserved.contains(output),
              let weightName = conv.input(1), let weight = graph.initializers[weightName], weight.isFloatingPoint, weight.rank >= 3,
              conv.input(2).map({ graph.initializers[$0]?.isFloatingPoint == true }) ?? true,
              let readers = consumers[output]?.filter({ !removed.contains($0) }), readers.count == 1
        else { return nil }
        // Consumers of the original output name; a folded op's output is read by its own consumers.
        let index = readers[0]
        let node = graph.nodes[index]
        guard ["Mul", "Div", "Add", "Sub"].contains(node.opType), node.domain.isEmpty, node.inputs.count == 2, node.outputs.count == 1
        else { return nil }
        let position = node.inputs[0] == output ? 0 : 1
        guard node.inputs[position] == output, node.inputs[1 - position] != output else { return nil }
        if position == 1 && (node.opType == "Sub" || node.opType == "Div") { return nil }
        guard let constant = graph.initializers[node.inputs[1 - position]], constant.isFloatingPoint,
              let values = channelValues(constant, channels: weight.shape[0], outputRank: weight.rank)
        else { return nil }
        if node.opType == "Div", values.contains(where: { $0 == 0 || !$0.isFinite }) { return nil }
        guard values.allSatisfy(\.isFinite) else { return nil }
        return Candidate(index: index, node: node, values: values)
    }

    /// The constant's values when it broadcasts over a Conv output `[N, C, spatial...]` along the
    /// channel axis only (or is a single value); nil otherwise.
    static func channelValues(_ constant: Tensor, channels: Int, outputRank: Int) -> [Float]? {
        if constant.count == 1 { return constant.rank <= outputRank ? constant.floats : nil }
        guard constant.rank <= outputRank else { return nil }
        // Right-aligned with the output: the channel axis is output axis 1.
        let channelAxis = 1 - (outputRank - constant.rank)
        for (axis, size) in constant.shape.enumerated() where size != 1 {
            guard axis == channelAxis, size == channels else { return nil }
        }
        return constant.floats
    }
}

import WhittleEngine

/// Channel pruning's winnowing (aimet.md 2.5 step 2): removing input channels of a Conv
/// removes the same channels of the tensor it reads, and so, walking upstream, of every
/// channel-wise node up to the Conv that produces them.
///
/// `ChannelGroup` finds the nodes; this type lists the edits and applies them.
enum Winnowing {
    enum Action: Sendable {
        /// Remove output channels of a groups-1 Conv (weight rows and bias): the walk ends here.
        case producer(node: String)
        /// Depthwise Conv (group = channels, one filter each): keep the same channels, set group.
        case depthwise(node: String)
        /// BatchNormalization: select scale, bias, mean and variance.
        case batchNorm(node: String)
        /// Channel-wise op with nothing to change.
        case passThrough(node: String)
        /// Binary op or PRelu whose constant input `slot` holds one value per channel.
        case perChannelConstant(node: String, slot: Int)
    }

    static let unaryOps: Set<String> = [
        "Relu", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Clip", "Identity", "Dropout",
        "Elu", "Selu", "Softplus", "Neg", "Abs", "Sqrt", "Exp", "Erf",
    ]
    static let poolingOps: Set<String> = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"]
    static let binaryOps: Set<String> = ["Add", "Sub", "Mul", "Div"]

    /// The axis of a constant broadcast against NCHW that holds one value per channel, when
    /// every other axis is 1 (shapes [C,1,1], [1,C,1,1]).
    static func perChannelAxis(_ shape: [Int], channels: Int) -> Int? {
        guard shape.count >= 3, shape.count <= 4 else { return nil }
        let axis = shape.count - 3
        guard shape[axis] == channels, shape.enumerated().allSatisfy({ $0.offset == axis || $0.element == 1 }) else { return nil }
        return axis
    }

    /// Applies `actions` so that only channels `keep` (ascending) of the walked tensors remain.
    static func apply(_ actions: [Action], keep: [Int], editor: inout GraphEditor, constants: [String: Tensor]) throws {
        func index(of name: String) throws -> Int {
            guard let index = editor.graph.nodes.firstIndex(where: { $0.name == name }) else {
                throw WhittleError(.invalidModel, name, "node vanished while winnowing")
            }
            return index
        }
        func select(_ nodeIndex: Int, _ slot: Int, axis: Int) throws {
            let node = editor.graph.nodes[nodeIndex]
            guard let name = node.input(slot), let tensor = editor.graph.initializers[name] ?? constants[name] else {
                throw WhittleError(.invalidModel, node.name, "input #\(slot) is not a constant")
            }
            editor.setConstant(node: nodeIndex, input: slot, gather(tensor, axis: axis, keep: keep))
        }
        for action in actions {
            switch action {
            case .producer(let name):
                let i = try index(of: name)
                try select(i, 1, axis: 0)
                if editor.graph.nodes[i].input(2) != nil { try select(i, 2, axis: 0) }
            case .depthwise(let name):
                let i = try index(of: name)
                try select(i, 1, axis: 0)
                if editor.graph.nodes[i].input(2) != nil { try select(i, 2, axis: 0) }
                editor.graph.nodes[i].attributes["group"] = .int(keep.count)
            case .batchNorm(let name):
                let i = try index(of: name)
                for slot in 1...4 { try select(i, slot, axis: 0) }
            case .passThrough:
                break
            case .perChannelConstant(let name, let slot):
                let i = try index(of: name)
                guard let constantName = editor.graph.nodes[i].input(slot),
                      let constant = editor.graph.initializers[constantName] ?? constants[constantName],
                      let axis = perChannelAxis(constant.shape, channels: constant.count) else {
                    throw WhittleError(.invalidModel, name, "per-channel constant changed while winnowing")
                }
                try select(i, slot, axis: axis)
            }
        }
    }

    /// AIMET's input-channel selection: score_c = Σ W[o, c, :, :]² and keep the `count`
    /// highest-scoring channels (ties to the lower index), returned ascending.
    static func selectChannels(weight: Tensor, count: Int) -> [Int] {
        selectChannels(weights: [weight], count: count)
    }

    /// Channel selection for several Convs reading the same channels (a residual stream):
    /// score_c sums Σ W[o, c, :, :]² over every reader.
    static func selectChannels(weights: [Tensor], count: Int) -> [Int] {
        Array(channelOrder(weights: weights).prefix(count)).sorted()
    }

    /// Every input channel, highest score first (ties to the lower index): the channels kept
    /// at any count are a prefix of this order, so the kept sets of several ratios are nested.
    static func channelOrder(weights: [Tensor]) -> [Int] {
        let inChannels = weights.first?.shape[1] ?? 0
        var scores = [Double](repeating: 0, count: inChannels)
        for weight in weights where weight.shape.count >= 2 && weight.shape[1] == inChannels {
            let shape = weight.shape
            let outChannels = shape[0]
            let inner = shape.dropFirst(2).reduce(1, *)
            let values = weight.floats
            for o in 0..<outChannels {
                for c in 0..<inChannels {
                    let base = (o * inChannels + c) * inner
                    for t in 0..<inner { scores[c] += Double(values[base + t]) * Double(values[base + t]) }
                }
            }
        }
        return (0..<inChannels).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    }
}

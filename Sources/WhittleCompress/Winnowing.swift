import WhittleEngine

/// Channel pruning's winnowing (aimet.md 2.5 step 2): removing input channels of a Conv
/// removes the same channels of the tensor it reads, and so, walking upstream, of every
/// channel-wise node up to the Conv that produces them.
///
/// The walk passes BatchNormalization, element-wise activations, pooling, depthwise convs
/// (which lose the same channels) and arithmetic with a scalar or per-channel constant, and
/// stops at a groups-1 Conv whose output channels (weight rows, bias) are removed. Every
/// tensor on the way must have exactly one reader: a tensor that also feeds a residual
/// Add/Mul, a Concat or a second layer would need the same channels removed on the other
/// branch too, so such layers are ineligible rather than producing a broken graph.
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

    /// The actions that remove channels of `tensor` (read by node `reader`), or why that is
    /// impossible.
    static func plan(_ analysis: GraphAnalysis, tensor start: String, reader: Int) -> Result<[Action], IneligibleLayer> {
        let graph = analysis.graph
        let producers = graph.producers()
        let consumers = graph.consumers()
        let outputs = Set(graph.outputs.map(\.name))
        var actions: [Action] = []
        var tensor = start
        var readerIndex = reader
        guard let channels = analysis.infos[start]?.shape.dropFirst().first else {
            return .failure(IneligibleLayer("input '\(start)' has no known shape"))
        }
        while true {
            if outputs.contains(tensor) { return .failure(IneligibleLayer("tensor '\(tensor)' upstream is a model output")) }
            let readers = consumers[tensor] ?? []
            if readers.count != 1 || readers.first != readerIndex {
                let others = readers.filter { $0 != readerIndex }.map { graph.nodes[$0] }
                let described = others.map { "\($0.name) (\($0.opType))" }.joined(separator: ", ")
                let kind = others.contains { ["Add", "Mul", "Sum", "Sub"].contains($0.opType) } ? "a residual branch "
                    : others.contains { $0.opType == "Concat" } ? "a Concat " : ""
                return .failure(IneligibleLayer(
                    "tensor '\(tensor)' upstream also feeds \(kind)\(described.isEmpty ? "twice" : described); removing its channels there too is not supported"))
            }
            guard let producerIndex = producers[tensor] else {
                return .failure(IneligibleLayer(
                    graph.initializers[tensor] != nil ? "its input '\(tensor)' is a constant" : "its input channels come from the model input '\(tensor)'"))
            }
            let node = graph.nodes[producerIndex]
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                return .failure(IneligibleLayer("upstream node \(node.name) is in domain \(node.domain)"))
            }
            guard analysis.infos[tensor]?.rank == 4, analysis.infos[tensor]?.shape[1] == channels else {
                return .failure(IneligibleLayer("tensor '\(tensor)' upstream is not an NCHW tensor of \(channels) channels"))
            }
            let liveOutputs = node.outputs.filter { !$0.isEmpty }
            guard liveOutputs == [tensor] else {
                return .failure(IneligibleLayer("upstream node \(node.name) (\(node.opType)) has several outputs"))
            }
            switch node.opType {
            case "Conv":
                switch ConvLayer.read(analysis, nodeIndex: producerIndex) {
                case .failure(let reason):
                    return .failure(IneligibleLayer("producing Conv \(node.name): \(reason.reason)"))
                case .success(let conv):
                    if conv.groups == 1 {
                        actions.append(.producer(node: node.name))
                        return .success(actions)
                    }
                    guard conv.groups == conv.inChannels, conv.groups == conv.outChannels, conv.weight.shape[1] == 1,
                          let input = node.input(0) else {
                        return .failure(IneligibleLayer("upstream grouped Conv \(node.name) (group \(conv.groups)) is not depthwise with multiplier 1"))
                    }
                    actions.append(.depthwise(node: node.name))
                    tensor = input
                }
            case "BatchNormalization":
                guard (1...4).allSatisfy({ node.input($0).map { graph.initializers[$0]?.count == channels } ?? false }),
                      let input = node.input(0) else {
                    return .failure(IneligibleLayer("upstream BatchNormalization \(node.name) has non-constant parameters"))
                }
                actions.append(.batchNorm(node: node.name))
                tensor = input
            case let op where unaryOps.contains(op) || poolingOps.contains(op):
                guard let input = node.input(0) else { return .failure(IneligibleLayer("upstream \(node.name) has no input")) }
                // Clip's bounds (inputs 1, 2) are scalars and stay as they are.
                actions.append(.passThrough(node: node.name))
                tensor = input
            case let op where binaryOps.contains(op) || op == "PRelu":
                let constantSlots = (0..<node.inputs.count).filter { node.input($0).map { analysis.constants[$0] != nil } ?? false }
                let runtimeSlots = (0..<node.inputs.count).filter { node.input($0).map { analysis.constants[$0] == nil } ?? false }
                guard runtimeSlots.count == 1, constantSlots.count == 1, let slot = constantSlots.first,
                      let runtimeSlot = runtimeSlots.first, let input = node.input(runtimeSlot),
                      op == "PRelu" ? runtimeSlot == 0 : true,
                      let constantName = node.input(slot), let constant = analysis.constants[constantName] else {
                    return .failure(IneligibleLayer("upstream \(op) \(node.name) combines two computed tensors (a residual or gating branch)"))
                }
                if constant.count == 1 {
                    actions.append(.passThrough(node: node.name))
                } else if perChannelAxis(constant.shape, channels: channels) != nil {
                    actions.append(.perChannelConstant(node: node.name, slot: slot))
                } else {
                    return .failure(IneligibleLayer("upstream \(op) \(node.name) has a constant of shape \(constant.shape) that is not per-channel"))
                }
                tensor = input
            default:
                return .failure(IneligibleLayer("upstream node \(node.name) (\(node.opType)) is not channel-wise; winnowing stops there"))
            }
            readerIndex = producerIndex
        }
    }

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
        let shape = weight.shape
        let outChannels = shape[0], inChannels = shape[1]
        let inner = shape.dropFirst(2).reduce(1, *)
        let values = weight.floats
        var scores = [Double](repeating: 0, count: inChannels)
        for o in 0..<outChannels {
            for c in 0..<inChannels {
                let base = (o * inChannels + c) * inner
                for t in 0..<inner { scores[c] += Double(values[base + t]) * Double(values[base + t]) }
            }
        }
        let order = (0..<inChannels).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        return Array(order.prefix(count)).sorted()
    }
}

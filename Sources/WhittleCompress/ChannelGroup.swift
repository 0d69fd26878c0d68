import WhittleEngine

/// The tensors whose channels must be removed together when a Conv's input channels are
/// pruned, found by walking channel-wise nodes in both directions.
///
/// From the pruned Conv's input, the walk follows every node that maps channel c to channel
/// c: BatchNormalization, element-wise activations, pooling, depthwise convs, arithmetic
/// with a scalar or per-channel constant, and element-wise Add/Sub/Mul/Max/Min of two
/// computed tensors of the same shape (a residual join). Upstream it stops at groups-1 Convs
/// (whose output channels are removed: the producers); downstream at groups-1 Convs (whose
/// input channels are removed: the readers). Across a residual Add the channels of both
/// branches and of the sum are the same channels, so a residual stream is pruned
/// consistently: every Conv writing into it loses the same output channels and every Conv
/// reading it the same input channels, and the graph stays valid.
///
/// The walk fails (the layer is ineligible) when the channels reach a model input or
/// output, a Concat, a reshape or any other node that is not channel-wise, a broadcast
/// (e.g. a squeeze-and-excitation gate), or a Conv that would both read and write them.
struct ChannelGroup: Sendable {
    /// Edits of producers and channel-wise nodes (see `Winnowing.apply`).
    var actions: [Winnowing.Action]
    /// Groups-1 Convs whose input channels are removed, in execution order.
    var readers: [Int]
    /// Whether the group joins branches (a residual Add or similar).
    var joinsBranches: Bool

    static let joinOps: Set<String> = ["Add", "Sub", "Mul", "Max", "Min", "Sum"]

    /// The group of the channels of `start` (an input of a groups-1 Conv).
    static func find(_ analysis: GraphAnalysis, tensor start: String) -> Result<ChannelGroup, IneligibleLayer> {
        let graph = analysis.graph
        let producers = graph.producers()
        let consumers = graph.consumers()
        let outputs = Set(graph.outputs.map(\.name))
        guard let channels = analysis.infos[start]?.shape.dropFirst().first else {
            return .failure(IneligibleLayer("input '\(start)' has no known shape"))
        }
        var members: Set<String> = [start]
        var queue = [start]
        var visited = Set<Int>()
        var producerNodes = Set<Int>(), readerNodes = Set<Int>()
        var actions: [(Int, Winnowing.Action)] = []
        var joins = false
        func isConstant(_ name: String) -> Bool { analysis.constants[name] != nil || graph.initializers[name] != nil }
        func join(_ name: String) {
            if members.insert(name).inserted { queue.append(name) }
        }
        func failure(_ reason: String) -> Result<ChannelGroup, IneligibleLayer> {
            .failure(IneligibleLayer(joins ? reason + " (channels shared through a residual branch)" : reason))
        }

        /// Adds node `index` reached through `tensor` (`asOutput`: the node writes it).
        func visit(_ index: Int, through tensor: String, asOutput: Bool) -> IneligibleLayer? {
            let node = graph.nodes[index]
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                return IneligibleLayer("node \(node.name) is in domain \(node.domain)")
            }
            let liveOutputs = node.outputs.filter { !$0.isEmpty }
            guard liveOutputs.count == 1, let output = liveOutputs.first else {
                return IneligibleLayer("node \(node.name) (\(node.opType)) has several outputs")
            }
            if node.opType == "Conv" {
                let conv: ConvLayer
                switch ConvLayer.read(analysis, nodeIndex: index) {
                case .failure(let reason): return IneligibleLayer("Conv \(node.name): \(reason.reason)")
                case .success(let value): conv = value
                }
                if conv.groups == 1 {
                    if asOutput {
                        guard producerNodes.insert(index).inserted else { return nil }
                        actions.append((index, .producer(node: node.name)))
                    } else {
                        guard node.input(0) == tensor else {
                            return IneligibleLayer("tensor '\(tensor)' is a parameter of Conv \(node.name)")
                        }
                        readerNodes.insert(index)
                    }
                    if producerNodes.contains(index), readerNodes.contains(index) {
                        return IneligibleLayer("Conv \(node.name) would lose both input and output channels")
                    }
                    return nil
                }
                guard visited.insert(index).inserted else { return nil }
                guard conv.groups == conv.inChannels, conv.groups == conv.outChannels, conv.weight.shape[1] == 1,
                      let input = node.input(0) else {
                    return IneligibleLayer("grouped Conv \(node.name) (group \(conv.groups)) is not depthwise with multiplier 1")
                }
                actions.append((index, .depthwise(node: node.name)))
                join(input)
                join(output)
                return nil
            }
            guard visited.insert(index).inserted else { return nil }
            switch node.opType {
            case "BatchNormalization":
                guard (1...4).allSatisfy({ node.input($0).map { graph.initializers[$0]?.count == channels } ?? false }),
                      let input = node.input(0), input == tensor || output == tensor else {
                    return IneligibleLayer("BatchNormalization \(node.name) has non-constant parameters")
                }
                actions.append((index, .batchNorm(node: node.name)))
                join(input)
            case let op where Winnowing.unaryOps.contains(op) || Winnowing.poolingOps.contains(op):
                guard let input = node.input(0) else { return IneligibleLayer("\(node.name) has no input") }
                if !asOutput, input != tensor { return IneligibleLayer("tensor '\(tensor)' is a parameter of \(op) \(node.name)") }
                actions.append((index, .passThrough(node: node.name)))
                join(input)
            case let op where Winnowing.binaryOps.contains(op) || ChannelGroup.joinOps.contains(op) || op == "PRelu":
                let slots = (0..<node.inputs.count).filter { node.input($0) != nil }
                let constantSlots = slots.filter { node.input($0).map(isConstant) ?? false }
                let runtimeSlots = slots.filter { !constantSlots.contains($0) }
                if runtimeSlots.count == 1, constantSlots.count == 1, let slot = constantSlots.first,
                   let runtimeSlot = runtimeSlots.first, let input = node.input(runtimeSlot),
                   op == "PRelu" ? runtimeSlot == 0 : true,
                   let constantName = node.input(slot), let constant = analysis.constants[constantName] ?? graph.initializers[constantName] {
                    if constant.count == 1 {
                        actions.append((index, .passThrough(node: node.name)))
                    } else if Winnowing.perChannelAxis(constant.shape, channels: channels) != nil {
                        actions.append((index, .perChannelConstant(node: node.name, slot: slot)))
                    } else {
                        return IneligibleLayer("\(op) \(node.name) has a constant of shape \(constant.shape) that is not per-channel")
                    }
                    join(input)
                } else if ChannelGroup.joinOps.contains(op), constantSlots.isEmpty, runtimeSlots.count >= 2,
                          let shape = analysis.infos[output]?.shape,
                          runtimeSlots.allSatisfy({ node.input($0).flatMap { analysis.infos[$0]?.shape } == shape }) {
                    joins = true
                    actions.append((index, .passThrough(node: node.name)))
                    for slot in runtimeSlots { if let input = node.input(slot) { join(input) } }
                } else {
                    return IneligibleLayer("\(op) \(node.name) combines computed tensors of different shapes (a gating branch)")
                }
            case "Concat":
                return IneligibleLayer("tensor '\(tensor)' feeds a Concat (\(node.name))")
            default:
                return IneligibleLayer("node \(node.name) (\(node.opType)) is not channel-wise; winnowing stops there")
            }
            join(output)
            return nil
        }

        while let tensor = queue.popLast() {
            if outputs.contains(tensor) { return failure("tensor '\(tensor)' is a model output") }
            guard let info = analysis.infos[tensor], info.rank == 4, info.shape[1] == channels else {
                return failure("tensor '\(tensor)' is not an NCHW tensor of \(channels) channels")
            }
            guard let producer = producers[tensor] else {
                return failure(graph.initializers[tensor] != nil ? "its input '\(tensor)' is a constant"
                               : "its input channels come from the model input '\(tensor)'")
            }
            if let problem = visit(producer, through: tensor, asOutput: true) { return failure(problem.reason) }
            for reader in consumers[tensor] ?? [] {
                if let problem = visit(reader, through: tensor, asOutput: false) { return failure(problem.reason) }
            }
        }
        return .success(ChannelGroup(actions: actions.sorted { $0.0 < $1.0 }.map(\.1), readers: readerNodes.sorted(),
                                     joinsBranches: joins))
    }
}

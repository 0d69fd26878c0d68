import WhittleEngine

/// A float graph annotated with quantizers and their encodings: the one value that quantization
/// simulation, evaluation and every export format (AIMET encodings JSON, QDQ ONNX) are built
/// from.
///
/// `graph` is the float model as it will be exported (BatchNorm folded, equalized, weights
/// rounded by AdaRound ...); its tensor names are the names encodings refer to.
/// `encodings` holds one entry per tensor that has an enabled quantizer of its own
/// (`placement.quantizers`); tensors that share another tensor's encoding are not listed.
public struct QuantizedModel: Sendable {
    public var graph: Graph
    public var placement: QuantizerPlacement
    public var encodings: [String: TensorEncoding]

    public init(graph: Graph, placement: QuantizerPlacement, encodings: [String: TensorEncoding] = [:]) {
        self.graph = graph
        self.placement = placement
        self.encodings = encodings
    }

    /// Which quantizers the simulation applies.
    public struct Selection: Sendable, Equatable {
        public var params: Bool
        public var activations: Bool
        /// Tensors left in float even though they have an encoding (sensitivity sweeps).
        public var excluded: Set<String>

        public init(params: Bool = true, activations: Bool = true, excluded: Set<String> = []) {
            self.params = params
            self.activations = activations
            self.excluded = excluded
        }

        public static let all = Selection()
        public static let paramsOnly = Selection(activations: false)
        public static let activationsOnly = Selection(params: false)
    }

    /// Tensors with an enabled quantizer and an encoding, in a stable order.
    public func activeQuantizers(_ selection: Selection = .all) -> [(tensor: String, settings: QuantizerSettings, encoding: TensorEncoding)] {
        placement.quantizers.keys.sorted().compactMap { tensor in
            guard let settings = placement.quantizers[tensor], settings.enabled,
                  let encoding = encodings[tensor], !selection.excluded.contains(tensor) else { return nil }
            switch settings.role {
            case .param where !selection.params: return nil
            case .activation where !selection.activations: return nil
            default: return (tensor, settings, encoding)
            }
        }
    }

    /// The graph with fake-quantize nodes inserted: every quantized param goes through a
    /// `FakeQuantize` node (folded into a constant at compile time, so it costs nothing per
    /// run); every quantized activation is produced under the name `NAME#float` and quantized
    /// into `NAME`, so every consumer, graph output and shared encoding keeps its name.
    /// Quantized graph inputs are quantized into `NAME#q`, which their consumers then read.
    public func simulationGraph(_ selection: Selection = .all) throws -> Graph {
        var result = graph
        var prologue: [Node] = []
        var afterProducer: [Int: [Node]] = [:]
        var renamedInputs: [String: String] = [:]
        let producers = graph.producers()
        let graphInputs = Set(graph.runtimeInputs.map(\.name))

        for (tensor, settings, encoding) in activeQuantizers(selection) {
            switch settings.role {
            case .param:
                guard graph.initializers[tensor] != nil else { continue }
                let quantized = "\(tensor)#qdq"
                prologue.append(try fakeQuantizeNode(input: tensor, output: quantized, encoding: encoding, into: &result))
                renamedInputs[tensor] = quantized
            case .activation:
                if graphInputs.contains(tensor) {
                    let quantized = "\(tensor)#q"
                    prologue.append(try fakeQuantizeNode(input: tensor, output: quantized, encoding: encoding, into: &result))
                    renamedInputs[tensor] = quantized
                } else if let producer = producers[tensor] {
                    let floatName = "\(tensor)#float"
                    for index in result.nodes[producer].outputs.indices where result.nodes[producer].outputs[index] == tensor {
                        result.nodes[producer].outputs[index] = floatName
                    }
                    afterProducer[producer, default: []].append(
                        try fakeQuantizeNode(input: floatName, output: tensor, encoding: encoding, into: &result))
                }
            }
        }
        var nodes = prologue
        nodes.reserveCapacity(result.nodes.count + afterProducer.count + prologue.count)
        for (position, var node) in result.nodes.enumerated() {
            for index in node.inputs.indices {
                if let renamed = renamedInputs[node.inputs[index]] { node.inputs[index] = renamed }
            }
            nodes.append(node)
            nodes.append(contentsOf: afterProducer[position] ?? [])
        }
        result.nodes = nodes
        return result
    }

    /// A FakeQuantize (or float16) node from `input` to `output`, adding its parameter
    /// initializers to `graph`.
    private func fakeQuantizeNode(input: String, output: String, encoding: TensorEncoding, into graph: inout Graph) throws -> Node {
        let name = "\(output)#fakequant"
        switch encoding {
        case .float(let bits):
            guard bits == 16 || bits == 32 else {
                throw WhittleError(.invalidArgument, input, "float encodings must be 16 or 32 bits, got \(bits)")
            }
            if bits == 32 {
                return Node(name: name, opType: "Identity", inputs: [input], outputs: [output])
            }
            return Node(name: name, opType: OperatorRegistry.fakeQuantizeFloat16OpType, domain: OperatorRegistry.whittleDomain,
                        inputs: [input], outputs: [output])
        case .perTensor(let grid):
            addGridInitializers([grid], prefix: output, into: &graph)
            return Node(name: name, opType: OperatorRegistry.fakeQuantizeOpType, domain: OperatorRegistry.whittleDomain,
                        inputs: [input, "\(output)#scale", "\(output)#low", "\(output)#high"], outputs: [output])
        case .perChannel(let axis, let grids):
            addGridInitializers(grids, prefix: output, into: &graph)
            return Node(name: name, opType: OperatorRegistry.fakeQuantizeOpType, domain: OperatorRegistry.whittleDomain,
                        inputs: [input, "\(output)#scale", "\(output)#low", "\(output)#high"], outputs: [output],
                        attributes: ["axis": .int(axis)])
        }
    }

    private func addGridInitializers(_ grids: [QuantizationEncoding], prefix: String, into graph: inout Graph) {
        let count = grids.count
        graph.initializers["\(prefix)#scale"] = Tensor(shape: [count], floats: grids.map(\.scale))
        graph.initializers["\(prefix)#low"] = Tensor(shape: [count], floats: grids.map { Float($0.offset) })
        graph.initializers["\(prefix)#high"] = Tensor(shape: [count], floats: grids.map { Float($0.offset + $0.steps) })
    }
}

/// Shape inference and constant folding for a graph at fixed input shapes: the first phase
/// of compiling a plan, and all the cost model needs.
public struct GraphAnalysis: Sendable {
    /// One node that will run at run time (not folded away).
    public struct RuntimeNode: Sendable {
        public var index: Int
        public var context: NodeContext
        public var outputInfos: [TensorInfo]
        public var node: Node { context.node }
    }

    public let graph: Graph
    /// Shapes of the runtime inputs, after symbolic dimensions were resolved.
    public let inputInfos: [String: TensorInfo]
    /// Shape and type of every tensor: inputs, constants and node outputs.
    public let infos: [String: TensorInfo]
    /// Values known at compile time: initializers and folded node outputs.
    public let constants: [String: Tensor]
    /// Nodes left to run, in execution order.
    public let runtimeNodes: [RuntimeNode]
    /// Names of the nodes that were folded into constants.
    public let foldedNodes: [String]

    /// Analyses `graph` with every symbolic batch dimension (dimension 0) set to
    /// `batchSize`, and any other symbolic dimension taken from `dimensions` (by symbol name).
    public init(graph: Graph, batchSize: Int, dimensions: [String: Int] = [:]) throws {
        guard batchSize >= 1 else {
            throw WhittleError(.invalidArgument, "batch size", "must be at least 1, got \(batchSize)")
        }
        var resolved: [String: TensorInfo] = [:]
        for input in graph.runtimeInputs {
            var shape: [Int] = []
            for (axis, dimension) in input.dimensions.enumerated() {
                switch dimension {
                case .fixed(let n):
                    shape.append(axis == 0 && n <= 0 ? batchSize : n)
                case .symbolic(let symbol):
                    if let given = dimensions[symbol] { shape.append(given) }
                    else if axis == 0 { shape.append(batchSize) }
                    else {
                        throw WhittleError(.invalidArgument, "input '\(input.name)'",
                                           "dimension \(axis) is symbolic ('\(symbol)'); give its size")
                    }
                }
            }
            resolved[input.name] = TensorInfo(shape: shape, elementType: input.elementType)
        }
        try self.init(graph: graph, inputInfos: resolved)
    }

    /// Analyses `graph` for exactly these runtime input shapes.
    public init(graph: Graph, inputInfos: [String: TensorInfo]) throws {
        self.graph = graph
        self.inputInfos = inputInfos
        var infos: [String: TensorInfo] = [:]
        var constants = graph.initializers
        for (name, tensor) in graph.initializers {
            infos[name] = TensorInfo(shape: tensor.shape, elementType: tensor.elementType)
        }
        for input in graph.runtimeInputs {
            guard let info = inputInfos[input.name] else {
                throw WhittleError(.invalidArgument, "input '\(input.name)'", "no shape given for this model input")
            }
            if info.elementType != .float32 {
                throw WhittleError(.unsupportedOperator, "input '\(input.name)'",
                                   "only float32 model inputs are supported, found \(info.elementType.rawValue)")
            }
            infos[input.name] = info
        }
        var runtimeNodes: [RuntimeNode] = []
        var folded: [String] = []
        for (index, node) in graph.nodes.enumerated() {
            let label = "node '\(node.name)' (\(node.opType))"
            guard let spec = OperatorRegistry.spec(for: node.opType, domain: node.domain) else {
                throw WhittleError(.unsupportedOperator, label, "operator \(node.domain.isEmpty ? "" : node.domain + ".")\(node.opType) is not supported")
            }
            var inputs: [TensorInfo?] = []
            var values: [Tensor?] = []
            for name in node.inputs {
                if name.isEmpty { inputs.append(nil); values.append(nil); continue }
                guard let info = infos[name] else {
                    throw WhittleError(.invalidModel, label, "input '\(name)' is not produced by any earlier node")
                }
                inputs.append(info)
                values.append(constants[name])
            }
            let context = NodeContext(node: node, inputs: inputs, constants: values, opsetVersion: graph.opsetVersion)
            let presentInputs = zip(inputs, values).filter { $0.0 != nil }
            // Operators without a run-time kernel (Shape, Constant) fold from input shapes alone.
            let foldsFromShapes = spec.makeKernel == nil && spec.fold != nil
            let foldable = foldsFromShapes || (presentInputs.allSatisfy { $0.1 != nil } && (spec.fold != nil || !presentInputs.isEmpty))
            if foldable {
                let outputs: [Tensor]
                do {
                    if foldsFromShapes, let fold = spec.fold { outputs = try fold(context) }
                    else { outputs = try OperatorRegistry.evaluate(node: node, inputs: values, opsetVersion: graph.opsetVersion) }
                }
                catch let error as WhittleError { throw error }
                catch { throw WhittleError(.invalidModel, label, "constant folding failed: \(error)") }
                guard outputs.count >= node.outputs.filter({ !$0.isEmpty }).count else {
                    throw WhittleError(.invalidModel, label, "produced \(outputs.count) outputs, expected \(node.outputs.count)")
                }
                for (name, tensor) in zip(node.outputs, outputs) where !name.isEmpty {
                    constants[name] = tensor
                    infos[name] = TensorInfo(shape: tensor.shape, elementType: tensor.elementType)
                }
                folded.append(node.name)
                continue
            }
            let outputInfos = try spec.inferShapes(context)
            guard outputInfos.count >= node.outputs.filter({ !$0.isEmpty }).count else {
                throw WhittleError(.invalidModel, label, "shape inference gave \(outputInfos.count) outputs, node declares \(node.outputs.count)")
            }
            for (name, info) in zip(node.outputs, outputInfos) where !name.isEmpty {
                if info.elementType != .float32 {
                    throw WhittleError(.unsupportedOperator, label,
                                       "output '\(name)' is \(info.elementType.rawValue) computed at run time; only float32 tensors can depend on model inputs")
                }
                if info.shape.contains(where: { $0 < 0 }) {
                    throw WhittleError(.shapeMismatch, label, "output '\(name)' has invalid shape \(info.shape)")
                }
                infos[name] = info
            }
            runtimeNodes.append(RuntimeNode(index: index, context: context, outputInfos: outputInfos))
        }
        for output in graph.outputs where infos[output.name] == nil {
            throw WhittleError(.invalidModel, "output '\(output.name)'", "no node produces this model output")
        }
        self.infos = infos
        self.constants = constants
        self.runtimeNodes = runtimeNodes
        self.foldedNodes = folded
    }
}

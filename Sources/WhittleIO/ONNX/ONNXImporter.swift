import Foundation
import SwiftProtobuf

/// Reads ONNX models (`ModelProto` files) into Whittle graphs.
///
/// What the importer guarantees about the returned graph:
/// - the default-domain opset is in `supportedOpsets` and every node is in the default domain;
/// - `Constant` nodes have become initializers, and constant sub-graphs are folded
///   (`ConstantFolding`);
/// - `inputs` lists only runtime inputs (declared inputs that are also initializers are
///   dropped from it, their initializer is the value);
/// - nodes are in topological order, every node input is produced by an earlier node, a
///   graph input or an initializer, and every tensor has exactly one producer;
/// - unnamed nodes get unique names `<OpType>_<index>` so errors and reports can name them;
/// - every operator is known to `OperatorRegistry` (`checkSupported`).
///
/// Errors are `WhittleError`s whose subject is the file (or the `name` given for data)
/// and whose message names the node, tensor or opset at fault.
public enum ONNXImporter {
    /// Default-domain (ai.onnx) opsets Whittle implements.
    public static let supportedOpsets: ClosedRange<Int> = 11...18

    /// Loads an `.onnx` file.
    public static func load(contentsOf url: URL) throws -> Graph {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw WhittleError(.io, url.path, "cannot read the file: \(error.localizedDescription)")
        }
        return try load(data: data, name: url.path)
    }

    /// Loads a serialized `ModelProto`. `name` (usually the file path) names the model in errors.
    public static func load(data: Data, name: String) throws -> Graph {
        let graph = try importGraph(data: data, name: name)
        do {
            try checkSupported(graph)
        } catch let error as WhittleError {
            throw error.within(name)
        }
        return graph
    }

    /// Checks that every node's operator is in `OperatorRegistry.specs`.
    ///
    /// The error names the first node with an unsupported operator, e.g.
    /// `node 'x' uses unsupported operator FooBar`, and lists the other unsupported
    /// operator types, if any.
    public static func checkSupported(_ graph: Graph) throws {
        var unsupported: [Node] = []
        var seen: Set<String> = []
        for node in graph.nodes where OperatorRegistry.spec(for: node.opType) == nil || !isDefaultDomain(node.domain) {
            if seen.insert(node.opType).inserted { unsupported.append(node) }
        }
        guard let first = unsupported.first else { return }
        var message = "node '\(first.name)' uses unsupported operator \(first.opType)"
        if !isDefaultDomain(first.domain) { message += " from domain '\(first.domain)'" }
        if unsupported.count > 1 {
            message += " (also unsupported: \(unsupported.dropFirst().map(\.opType).joined(separator: ", ")))"
        }
        throw WhittleError(.unsupportedOperator, "", message)
    }

    // MARK: - Import steps

    /// Everything `load` does except the operator-support check.
    static func importGraph(data: Data, name: String) throws -> Graph {
        let model = try decodeModel(data: data, name: name)
        let opset = try defaultOpset(of: model, name: name)
        var graph = try convert(model.graph, opset: opset, name: name)
        graph.metadata = Dictionary(model.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
        try convertConstantNodes(&graph, name: name)
        try sortAndValidate(&graph, name: name)
        do {
            graph = try ConstantFolding.fold(graph).graph
        } catch let error as WhittleError {
            throw error.within(name)
        }
        return graph
    }

    private static func notONNX(_ name: String, _ reason: String) -> WhittleError {
        WhittleError(.invalidModel, name, "not an ONNX model: \(reason)")
    }

    private static func decodeModel(data: Data, name: String) throws -> Onnx_ModelProto {
        guard !data.isEmpty else { throw notONNX(name, "the file is empty") }
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw notONNX(name, "the protobuf data cannot be decoded (\(error)); the file may be truncated or of another format")
        }
        // Arbitrary bytes sometimes decode as a protobuf message; a model always has a graph
        // and an IR version.
        guard model.hasGraph, model.hasIrVersion else {
            throw notONNX(name, model.hasGraph ? "no IR version" : "no graph")
        }
        return model
    }

    private static func isDefaultDomain(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    private static func defaultOpset(of model: Onnx_ModelProto, name: String) throws -> Int {
        guard let entry = model.opsetImport.last(where: { isDefaultDomain($0.domain) }) else {
            throw WhittleError(.invalidModel, name, "the model imports no default-domain (ai.onnx) opset")
        }
        guard let version = Int(exactly: entry.version), supportedOpsets.contains(version) else {
            throw WhittleError(.invalidModel, name,
                               "opset \(entry.version) is not supported (Whittle supports ai.onnx opsets "
                               + "\(supportedOpsets.lowerBound) to \(supportedOpsets.upperBound); convert the model with "
                               + "onnx.version_converter.convert_version)")
        }
        return version
    }

    private static func convert(_ proto: Onnx_GraphProto, opset: Int, name: String) throws -> Graph {
        var graph = Graph(name: proto.name.isEmpty ? "graph" : proto.name, opsetVersion: opset)

        for tensor in proto.initializer {
            guard !tensor.name.isEmpty else {
                throw WhittleError(.invalidModel, name, "an initializer has no name")
            }
            guard graph.initializers[tensor.name] == nil else {
                throw WhittleError(.invalidModel, name, "initializer '\(tensor.name)' is defined twice")
            }
            graph.initializers[tensor.name] = try decodeTensor(tensor, label: "initializer '\(tensor.name)'", name: name)
        }

        // Declared inputs that have an initializer are constants, not runtime inputs.
        graph.inputs = try proto.input
            .filter { graph.initializers[$0.name] == nil }
            .map { try valueInfo($0, role: "input", name: name) }
        graph.outputs = try proto.output.map { try valueInfo($0, role: "output", name: name) }

        var usedNames = Set(proto.node.map(\.name).filter { !$0.isEmpty })
        for (index, nodeProto) in proto.node.enumerated() {
            var nodeName = nodeProto.name
            if nodeName.isEmpty {
                nodeName = "\(nodeProto.opType)_\(index)"
                var suffix = 1
                while usedNames.contains(nodeName) {
                    nodeName = "\(nodeProto.opType)_\(index)_\(suffix)"
                    suffix += 1
                }
                usedNames.insert(nodeName)
            }
            guard isDefaultDomain(nodeProto.domain) else {
                throw WhittleError(.unsupportedOperator, name,
                                   "node '\(nodeName)' uses operator \(nodeProto.opType) from domain '\(nodeProto.domain)'; "
                                   + "Whittle only supports the default ONNX domain")
            }
            guard !nodeProto.opType.isEmpty else {
                throw WhittleError(.invalidModel, name, "node '\(nodeName)' has no operator type")
            }
            var attributes: [String: Attribute] = [:]
            for attribute in nodeProto.attribute {
                let label = "attribute '\(attribute.name)' of node '\(nodeName)'"
                guard attributes[attribute.name] == nil else {
                    throw WhittleError(.invalidModel, name, "\(label) is given twice")
                }
                attributes[attribute.name] = try convert(attribute, label: label, name: name)
            }
            graph.nodes.append(Node(name: nodeName, opType: nodeProto.opType, domain: "",
                                    inputs: nodeProto.input, outputs: nodeProto.output, attributes: attributes))
        }
        return graph
    }

    private static func decodeTensor(_ proto: Onnx_TensorProto, label: String, name: String) throws -> Tensor {
        do {
            return try ONNXTensorCoding.decode(proto, label: label)
        } catch let error as WhittleError {
            throw error.within(name)
        }
    }

    private static func valueInfo(_ proto: Onnx_ValueInfoProto, role: String, name: String) throws -> ValueInfo {
        guard !proto.name.isEmpty else { throw WhittleError(.invalidModel, name, "a graph \(role) has no name") }
        guard proto.hasType else {
            // Outputs of some exporters carry no type; the compiler infers it.
            return ValueInfo(name: proto.name, elementType: .float32, dimensions: [])
        }
        guard case .tensorType(let tensorType)? = proto.type.value else {
            throw WhittleError(.invalidModel, name, "graph \(role) '\(proto.name)' is not a tensor (sequences and maps are not supported)")
        }
        let elementType: ElementType
        if !tensorType.hasElemType || tensorType.elemType == 0 {
            elementType = .float32
        } else if let known = ONNXDataType.elementType(tensorType.elemType) {
            elementType = known
        } else {
            throw WhittleError(.invalidModel, name,
                               "graph \(role) '\(proto.name)' has element type \(ONNXDataType.name(tensorType.elemType)), which is not supported")
        }
        let dimensions = tensorType.shape.dim.map { dim -> WhittleEngine.Dimension in
            switch dim.value {
            case .dimValue(let size)?:
                // Exporters such as Paddle write -1 for a dimension of unknown size.
                guard size >= 0, let fixed = Int(exactly: size) else { return .symbolic("") }
                return .fixed(fixed)
            case .dimParam(let symbol)?: return .symbolic(symbol)
            case nil: return .symbolic("")
            }
        }
        return ValueInfo(name: proto.name, elementType: elementType, dimensions: dimensions)
    }

    private static func convert(_ proto: Onnx_AttributeProto, label: String, name: String) throws -> Attribute {
        var type = proto.type
        if type == .undefined {
            // IR version 1 files carry no type; infer it from the field in use.
            if proto.hasF { type = .float }
            else if proto.hasI { type = .int }
            else if proto.hasS { type = .string }
            else if proto.hasT { type = .tensor }
            else if proto.hasG { type = .graph }
            else if !proto.floats.isEmpty { type = .floats }
            else if !proto.ints.isEmpty { type = .ints }
            else if !proto.strings.isEmpty { type = .strings }
            else if !proto.tensors.isEmpty { type = .tensors }
        }
        switch type {
        case .float: return .float(proto.f)
        case .int:
            guard let value = Int(exactly: proto.i) else { throw WhittleError(.invalidModel, name, "\(label) is out of range") }
            return .int(value)
        case .string: return .string(String(decoding: proto.s, as: UTF8.self))
        case .tensor: return .tensor(try decodeTensor(proto.t, label: label, name: name))
        case .floats: return .floats(proto.floats)
        case .ints: return .ints(proto.ints.map { Int($0) })
        case .strings: return .strings(proto.strings.map { String(decoding: $0, as: UTF8.self) })
        case .graph, .graphs:
            throw WhittleError(.unsupportedOperator, name, "\(label) is a sub-graph (control flow), which Whittle does not support")
        case .tensors, .sparseTensor, .sparseTensors, .typeProto, .typeProtos:
            throw WhittleError(.unsupportedOperator, name, "\(label) has type \(String(describing: type).uppercased()), which Whittle does not support")
        case .undefined:
            throw WhittleError(.invalidModel, name, "\(label) has no value")
        }
    }

    /// Replaces `Constant` nodes by initializers of their output (every `value*` form of
    /// opsets 11 to 18 except sparse tensors and strings).
    private static func convertConstantNodes(_ graph: inout Graph, name: String) throws {
        var kept: [Node] = []
        kept.reserveCapacity(graph.nodes.count)
        for node in graph.nodes {
            guard node.opType == "Constant" else {
                kept.append(node)
                continue
            }
            guard node.outputs.count == 1, let output = node.outputs.first, !output.isEmpty else {
                throw WhittleError(.invalidModel, name, "Constant node '\(node.name)' must have exactly one output")
            }
            guard node.attributes.count == 1, let (key, value) = node.attributes.first else {
                throw WhittleError(.invalidModel, name, "Constant node '\(node.name)' must have exactly one value attribute")
            }
            let tensor: Tensor
            switch (key, value) {
            case ("value", .tensor(let t)): tensor = t
            case ("value_float", .float(let f)): tensor = Tensor(shape: [], floats: [f])
            case ("value_floats", .floats(let fs)): tensor = Tensor(shape: [fs.count], floats: fs)
            case ("value_int", .int(let i)): tensor = Tensor(shape: [], ints: [Int64(i)])
            case ("value_ints", .ints(let values)): tensor = Tensor(shape: [values.count], ints: values.map { Int64($0) })
            case ("value_string", _), ("value_strings", _):
                throw WhittleError(.unsupportedOperator, name, "Constant node '\(node.name)' holds strings, which Whittle does not support")
            default:
                throw WhittleError(.invalidModel, name, "Constant node '\(node.name)' has unsupported value attribute '\(key)' (\(value))")
            }
            guard graph.initializers[output] == nil else {
                throw WhittleError(.invalidModel, name, "tensor '\(output)' is produced by Constant node '\(node.name)' and is also an initializer")
            }
            graph.initializers[output] = tensor
        }
        graph.nodes = kept
    }

    /// Checks single producers and dangling inputs, and orders the nodes topologically
    /// (depth-first, keeping the file's order whenever it is already valid).
    private static func sortAndValidate(_ graph: inout Graph, name: String) throws {
        let nodes = graph.nodes
        var available = Set(graph.initializers.keys)
        for input in graph.inputs {
            guard available.insert(input.name).inserted else {
                throw WhittleError(.invalidModel, name, "graph input '\(input.name)' is declared twice")
            }
        }
        var producer: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty {
                if available.contains(output) {
                    throw WhittleError(.invalidModel, name, "node '\(node.name)' writes '\(output)', which is a graph input or initializer")
                }
                if let other = producer[output] {
                    throw WhittleError(.invalidModel, name,
                                       "tensor '\(output)' is produced by both node '\(nodes[other].name)' and node '\(node.name)'")
                }
                producer[output] = index
            }
        }
        for node in nodes {
            for input in node.inputs where !input.isEmpty && !available.contains(input) && producer[input] == nil {
                throw WhittleError(.invalidModel, name,
                                   "node '\(node.name)' reads tensor '\(input)', which no node, graph input or initializer produces")
            }
        }
        for output in graph.outputs where !available.contains(output.name) && producer[output.name] == nil {
            throw WhittleError(.invalidModel, name, "graph output '\(output.name)' is not produced by any node, input or initializer")
        }

        // Iterative depth-first post-order; state 1 = on the stack, 2 = emitted.
        var state = [UInt8](repeating: 0, count: nodes.count)
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        for root in nodes.indices where state[root] == 0 {
            var stack: [(node: Int, nextInput: Int)] = [(root, 0)]
            state[root] = 1
            while let top = stack.last {
                let node = nodes[top.node]
                if top.nextInput == node.inputs.count {
                    stack.removeLast()
                    state[top.node] = 2
                    order.append(top.node)
                    continue
                }
                stack[stack.count - 1].nextInput += 1
                let input = node.inputs[top.nextInput]
                guard !input.isEmpty, !available.contains(input), let dependency = producer[input] else { continue }
                switch state[dependency] {
                case 0:
                    state[dependency] = 1
                    stack.append((dependency, 0))
                case 1:
                    throw WhittleError(.invalidModel, name,
                                       "node '\(node.name)' reads tensor '\(input)', which depends on the node's own output (cycle)")
                default:
                    break
                }
            }
        }
        graph.nodes = order.map { nodes[$0] }
    }
}

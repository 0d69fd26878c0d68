/// One dimension of a graph input or output: a fixed size or a named symbol (e.g. batch `N`).
public enum Dimension: Sendable, Equatable, Hashable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)

    public var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .symbolic(let s): return s.isEmpty ? "?" : s
        }
    }

    public var fixedValue: Int? { if case .fixed(let n) = self { return n } else { return nil } }
}

/// A graph input or output as declared in the model.
public struct ValueInfo: Sendable, Equatable {
    public var name: String
    public var elementType: ElementType
    public var dimensions: [Dimension]

    public init(name: String, elementType: ElementType = .float32, dimensions: [Dimension]) {
        self.name = name
        self.elementType = elementType
        self.dimensions = dimensions
    }
}

/// A node attribute, as in ONNX.
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(Tensor)
}

/// One operation of the graph. Tensor names are the ONNX names and stay stable through
/// every pass (encodings, profiles and the TUI refer to them). An empty input name marks
/// an omitted optional input.
public struct Node: Sendable, Equatable {
    public var name: String
    public var opType: String
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: Attribute]

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: Attribute] = [:]) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    /// The `index`-th input name, or nil when absent or omitted ("").
    public func input(_ index: Int) -> String? {
        index < inputs.count && !inputs[index].isEmpty ? inputs[index] : nil
    }
}

/// A neural network as a value: nodes in topological order, initializers (weights and other
/// constants), declared inputs and outputs.
public struct Graph: Sendable, Equatable {
    public var name: String
    public var nodes: [Node]
    public var initializers: [String: Tensor]
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Default-domain opset the model was written for.
    public var opsetVersion: Int
    /// Model metadata (ONNX `metadata_props`), e.g. label names.
    public var metadata: [String: String]

    public init(name: String = "graph", nodes: [Node] = [], initializers: [String: Tensor] = [:],
                inputs: [ValueInfo] = [], outputs: [ValueInfo] = [], opsetVersion: Int = 13,
                metadata: [String: String] = [:]) {
        self.name = name
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
        self.opsetVersion = opsetVersion
        self.metadata = metadata
    }

    /// Inputs that are fed at run time (declared inputs that are not initializers).
    public var runtimeInputs: [ValueInfo] { inputs.filter { initializers[$0.name] == nil } }

    /// Index of the node producing each tensor.
    public func producers() -> [String: Int] {
        var map: [String: Int] = [:]
        for (index, node) in nodes.enumerated() { for output in node.outputs where !output.isEmpty { map[output] = index } }
        return map
    }

    /// Indices of the nodes consuming each tensor.
    public func consumers() -> [String: [Int]] {
        var map: [String: [Int]] = [:]
        for (index, node) in nodes.enumerated() {
            for input in node.inputs where !input.isEmpty { map[input, default: []].append(index) }
        }
        return map
    }

    /// The part of the graph needed to compute `tensor`, with `tensor` as its only output
    /// (the nodes it depends on, in order, and the initializers they read).
    public func prefix(computing tensor: String) -> Graph {
        var needed: Set<String> = [tensor]
        var kept: [Node] = []
        for node in nodes.reversed() where node.outputs.contains(where: { needed.contains($0) }) {
            kept.append(node)
            for input in node.inputs where !input.isEmpty { needed.insert(input) }
        }
        var result = self
        result.nodes = kept.reversed()
        result.outputs = [ValueInfo(name: tensor, dimensions: [])]
        return result.droppingUnusedInitializers()
    }

    /// The graph without the nodes at `positions`, and without the initializers nothing
    /// reads any more.
    public func removingNodes(at positions: Set<Int>) -> Graph {
        var result = self
        result.nodes = nodes.enumerated().filter { !positions.contains($0.offset) }.map(\.element)
        return result.droppingUnusedInitializers()
    }

    /// The graph without initializers that no node reads and that are neither graph inputs
    /// nor outputs.
    public func droppingUnusedInitializers() -> Graph {
        var used = Set(outputs.map(\.name)).union(inputs.map(\.name))
        for node in nodes { used.formUnion(node.inputs) }
        var result = self
        result.initializers = initializers.filter { used.contains($0.key) }
        return result
    }
}

import WhittleEngine

/// A 2-D Conv (NCHW, weight [C_out, C_in / group, kH, kW]) with every window parameter
/// resolved to explicit values at the analysed input shape.
struct ConvLayer: Sendable {
    var nodeIndex: Int
    var node: Node
    var weight: Tensor
    var bias: Tensor?
    var inputShape: [Int]
    var outputShape: [Int]
    var groups: Int
    var kernel: (h: Int, w: Int)
    var strides: (h: Int, w: Int)
    var dilations: (h: Int, w: Int)
    /// Explicit pads: top, left, bottom, right (ONNX `pads` order for 2-D).
    var pads: (top: Int, left: Int, bottom: Int, right: Int)

    var outChannels: Int { weight.shape[0] }
    var inChannels: Int { inputShape[1] }

    /// Reads the Conv at `index`, or returns why it cannot be treated as a plain 2-D Conv.
    static func read(_ analysis: GraphAnalysis, nodeIndex index: Int) -> Result<ConvLayer, IneligibleLayer> {
        let graph = analysis.graph
        let node = graph.nodes[index]
        guard node.opType == "Conv" else { return .failure(IneligibleLayer("is a \(node.opType), not a Conv")) }
        guard let weightName = node.input(1), let weight = graph.initializers[weightName], weight.isFloatingPoint else {
            return .failure(IneligibleLayer("its weight is not a constant initializer"))
        }
        guard weight.rank == 4, let input = node.input(0), let inputInfo = analysis.infos[input], inputInfo.rank == 4,
              let output = node.outputs.first, let outputInfo = analysis.infos[output] else {
            return .failure(IneligibleLayer("only 2-D convolutions (4-D weight and input) are compressed"))
        }
        var bias: Tensor?
        if let biasName = node.input(2) {
            guard let value = graph.initializers[biasName], value.count == weight.shape[0] else {
                return .failure(IneligibleLayer("its bias is not a constant initializer of \(weight.shape[0]) values"))
            }
            bias = value
        }
        func ints(_ name: String, _ fallback: [Int]) -> [Int]? {
            switch node.attributes[name] {
            case nil: return fallback
            case .ints(let values)?: return values
            case .int(let value)?: return [value]
            default: return nil
            }
        }
        var groups = 1
        switch node.attributes["group"] {
        case nil: groups = 1
        case .int(let value)?: groups = value
        default: return .failure(IneligibleLayer("attribute 'group' is not an int"))
        }
        guard let strides = ints("strides", [1, 1]), strides.count == 2,
              let dilations = ints("dilations", [1, 1]), dilations.count == 2,
              let padList = ints("pads", [0, 0, 0, 0]), padList.count == 4 else {
            return .failure(IneligibleLayer("strides, dilations or pads are not 2-D"))
        }
        let kh = weight.shape[2], kw = weight.shape[3]
        var pads = (top: padList[0], left: padList[1], bottom: padList[2], right: padList[3])
        var autoPad = "NOTSET"
        if case .string(let text)? = node.attributes["auto_pad"] { autoPad = text }
        switch autoPad {
        case "NOTSET": break
        case "VALID": pads = (0, 0, 0, 0)
        case "SAME_UPPER", "SAME_LOWER":
            // ONNX: out = ceil(in / s); total = max(0, (out - 1) s + (k - 1) d + 1 - in), odd element at the end (UPPER) or start (LOWER).
            func split(_ size: Int, _ k: Int, _ s: Int, _ d: Int) -> (Int, Int) {
                let out = (size + s - 1) / s
                let total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
                return autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
            }
            let (top, bottom) = split(inputInfo.shape[2], kh, strides[0], dilations[0])
            let (left, right) = split(inputInfo.shape[3], kw, strides[1], dilations[1])
            pads = (top, left, bottom, right)
        default: return .failure(IneligibleLayer("unknown auto_pad '\(autoPad)'"))
        }
        return .success(ConvLayer(
            nodeIndex: index, node: node, weight: weight, bias: bias, inputShape: inputInfo.shape,
            outputShape: outputInfo.shape, groups: groups, kernel: (kh, kw), strides: (strides[0], strides[1]),
            dilations: (dilations[0], dilations[1]), pads: pads))
    }

    /// Attributes of a Conv with this layer's kind of window but the given parameters.
    static func attributes(kernel: (Int, Int), strides: (Int, Int), dilations: (Int, Int),
                           pads: (Int, Int, Int, Int), groups: Int = 1) -> [String: Attribute] {
        [
            "kernel_shape": .ints([kernel.0, kernel.1]),
            "strides": .ints([strides.0, strides.1]),
            "dilations": .ints([dilations.0, dilations.1]),
            "pads": .ints([pads.0, pads.1, pads.2, pads.3]),
            "group": .int(groups),
        ]
    }
}

/// A Gemm `Y = alpha * A * B' + beta * C` with A the run-time input [N, K] (transA = 0) and
/// B a constant, read as B' [K, N_out].
struct GemmLayer: Sendable {
    var nodeIndex: Int
    var node: Node
    /// B' row-major [K, N_out] (already transposed when transB = 1), alpha folded in.
    var weight: [Float]
    var inFeatures: Int
    var outFeatures: Int
    var beta: Float

    static func read(_ analysis: GraphAnalysis, nodeIndex index: Int) -> Result<GemmLayer, IneligibleLayer> {
        let graph = analysis.graph
        let node = graph.nodes[index]
        guard node.opType == "Gemm" else { return .failure(IneligibleLayer("is a \(node.opType), not a Gemm")) }
        func int(_ name: String) -> Int { if case .int(let v)? = node.attributes[name] { return v } else { return 0 } }
        func float(_ name: String) -> Float {
            switch node.attributes[name] {
            case .float(let v)?: return v
            case .int(let v)?: return Float(v)
            default: return 1
            }
        }
        guard int("transA") == 0 else { return .failure(IneligibleLayer("transA = 1 is not compressed")) }
        guard let bName = node.input(1), let b = graph.initializers[bName], b.isFloatingPoint, b.rank == 2 else {
            return .failure(IneligibleLayer("its weight B is not a 2-D constant initializer"))
        }
        guard let a = node.input(0), let aInfo = analysis.infos[a], aInfo.rank == 2, analysis.constants[a] == nil else {
            return .failure(IneligibleLayer("input A is not a 2-D run-time tensor"))
        }
        let transB = int("transB") != 0
        let k = transB ? b.shape[1] : b.shape[0]
        let n = transB ? b.shape[0] : b.shape[1]
        if let cName = node.input(2) {
            guard let c = graph.initializers[cName], c.count == n || c.count == 1 else {
                return .failure(IneligibleLayer("its bias C is not a constant of \(n) values or a scalar"))
            }
        }
        let alpha = float("alpha")
        let values = b.floats
        var weight = [Float](repeating: 0, count: k * n)
        for row in 0..<k {
            for column in 0..<n {
                weight[row * n + column] = alpha * (transB ? values[column * k + row] : values[row * n + column])
            }
        }
        return .success(GemmLayer(nodeIndex: index, node: node, weight: weight, inFeatures: k, outFeatures: n,
                                  beta: node.input(2) == nil ? 0 : float("beta")))
    }
}

/// Why a layer cannot be compressed with a technique.
struct IneligibleLayer: Error, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Edits a graph while keeping node and tensor names unique and never changing a constant
/// that another node still reads.
struct GraphEditor {
    var graph: Graph
    private var used: Set<String>
    /// Initializers that may have lost their last reader.
    private var orphans: Set<String> = []

    init(_ graph: Graph) {
        self.graph = graph
        var used = Set(graph.initializers.keys)
        for node in graph.nodes {
            used.insert(node.name)
            for name in node.inputs + node.outputs where !name.isEmpty { used.insert(name) }
        }
        for value in graph.inputs + graph.outputs { used.insert(value.name) }
        self.used = used
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is not taken yet.
    mutating func freshName(_ base: String) -> String {
        var name = base
        var suffix = 1
        while used.contains(name) {
            name = "\(base)_\(suffix)"
            suffix += 1
        }
        used.insert(name)
        return name
    }

    /// Adds an initializer under a fresh name derived from `base` and returns the name.
    mutating func addInitializer(_ base: String, _ tensor: Tensor) -> String {
        let name = freshName(base)
        graph.initializers[name] = tensor
        return name
    }

    /// Gives input `slot` of node `index` the value `tensor`: in place when that node is the
    /// initializer's only reader, otherwise under a new name.
    mutating func setConstant(node index: Int, input slot: Int, _ tensor: Tensor) {
        let current = graph.nodes[index].inputs[slot]
        let readers = graph.nodes.reduce(0) { $0 + $1.inputs.filter { $0 == current }.count }
        let isBoundary = graph.outputs.contains { $0.name == current } || graph.inputs.contains { $0.name == current }
        if graph.initializers[current] != nil, readers == 1, !isBoundary {
            graph.initializers[current] = tensor
            return
        }
        let name = addInitializer(current.isEmpty ? graph.nodes[index].name + ".param" : current + ".pruned", tensor)
        graph.nodes[index].inputs[slot] = name
        orphans.insert(current)
    }

    /// Replaces node `index` by `nodes` (keeping topological order there).
    mutating func replaceNode(_ index: Int, with nodes: [Node]) {
        for input in graph.nodes[index].inputs where !input.isEmpty { orphans.insert(input) }
        graph.nodes.replaceSubrange(index...index, with: nodes)
    }

    /// Removes initializers this editor left without any reader.
    mutating func finish() -> Graph {
        var read = Set<String>()
        for node in graph.nodes { read.formUnion(node.inputs) }
        for output in graph.outputs { read.insert(output.name) }
        for name in orphans where !read.contains(name) && !graph.inputs.contains(where: { $0.name == name }) {
            graph.initializers[name] = nil
        }
        orphans = []
        return graph
    }
}

/// Selects entries `keep` along `axis` of a float tensor.
func gather(_ tensor: Tensor, axis: Int, keep: [Int]) -> Tensor {
    let shape = tensor.shape
    let outer = shape[..<axis].reduce(1, *)
    let inner = shape[(axis + 1)...].reduce(1, *)
    let size = shape[axis]
    let values = tensor.floats
    var result = [Float]()
    result.reserveCapacity(outer * keep.count * inner)
    for block in 0..<outer {
        for index in keep {
            let base = (block * size + index) * inner
            result.append(contentsOf: values[base..<(base + inner)])
        }
    }
    var newShape = shape
    newShape[axis] = keep.count
    return Tensor(shape: newShape, floats: result, elementType: tensor.elementType)
}

import WhittleEngine

/// A Conv or Gemm node with constant float weights, seen as a linear map between channels:
/// the shared vocabulary of the post-training passes (BN folding, cross-layer equalization,
/// bias correction).
///
/// Channel conventions (ONNX):
/// - Conv weight `[O, I/groups, k...]`: output channel `o` is row `o`; input channel `c`
///   belongs to group `c / (I/groups)` and is column `c % (I/groups)` of that group's rows.
/// - Gemm (transA = 0) weight `B` is `[K, N]` (transB = 0) or `[N, K]` (transB = 1); output
///   channel = column of the result (N), input channel = K. `alpha` scales `A·B`, `beta`
///   scales the bias `C`, which must hold N values (`[N]` or `[1, N]`) to be edited.
struct LinearLayer {
    enum Kind: Equatable {
        case conv(groups: Int)
        case gemm(transB: Bool)
    }

    var nodeIndex: Int
    var node: Node
    var kind: Kind
    var weightName: String
    var weightShape: [Int]
    var weights: [Float]
    var bias: [Float]?
    /// Multiplier ONNX applies to the stored bias (Gemm `beta`; 1 for Conv).
    var biasMultiplier: Float

    /// The layer at `index` of `graph`, or nil when it is not a Conv/Gemm with constant float
    /// weights (and, for Gemm, transA = 0 and a bias of N elements if present).
    init?(graph: Graph, index: Int) {
        let node = graph.nodes[index]
        guard node.domain.isEmpty || node.domain == "ai.onnx", node.outputs.count == 1,
              let weightName = node.input(1), let weight = graph.initializers[weightName], weight.isFloatingPoint
        else { return nil }
        switch node.opType {
        case "Conv":
            guard weight.rank >= 3 else { return nil }
            let groups = node.attributes["group"].flatMap { if case .int(let g) = $0 { return g } else { return nil } } ?? 1
            guard groups >= 1, weight.shape[0] % groups == 0 else { return nil }
            kind = .conv(groups: groups)
            biasMultiplier = 1
        case "Gemm":
            guard weight.rank == 2 else { return nil }
            if case .int(let transA)? = node.attributes["transA"], transA != 0 { return nil }
            var transB = false
            if case .int(let t)? = node.attributes["transB"] { transB = t != 0 }
            kind = .gemm(transB: transB)
            if case .float(let beta)? = node.attributes["beta"] { biasMultiplier = beta } else { biasMultiplier = 1 }
        default:
            return nil
        }
        self.nodeIndex = index
        self.node = node
        self.weightName = weightName
        self.weightShape = weight.shape
        self.weights = weight.floats
        if let biasName = node.input(2) {
            guard let tensor = graph.initializers[biasName], tensor.isFloatingPoint else { return nil }
            let outputs: Int
            switch kind {
            case .conv: outputs = weight.shape[0]
            case .gemm(let transB): outputs = transB ? weight.shape[0] : weight.shape[1]
            }
            guard tensor.count == outputs, tensor.shape.last == outputs else { return nil }
            bias = tensor.floats
        } else {
            bias = nil
        }
    }

    var outputName: String { node.outputs[0] }
    var inputName: String? { node.input(0) }

    var outputChannels: Int {
        switch kind {
        case .conv: return weightShape[0]
        case .gemm(let transB): return transB ? weightShape[0] : weightShape[1]
        }
    }

    var groups: Int { if case .conv(let g) = kind { return g } else { return 1 } }

    /// Input channels per group (Conv weight dimension 1; Gemm K).
    var inputsPerGroup: Int {
        switch kind {
        case .conv: return weightShape[1]
        case .gemm(let transB): return transB ? weightShape[1] : weightShape[0]
        }
    }

    var inputChannels: Int { inputsPerGroup * groups }

    /// Product of the kernel's spatial dimensions (1 for Gemm).
    var kernelSize: Int {
        if case .conv = kind { return weightShape.dropFirst(2).reduce(1, *) }
        return 1
    }

    /// Depthwise: one input and one output channel per group.
    var isDepthwise: Bool { groups > 1 && inputsPerGroup == 1 && outputChannels == groups }

    /// A Conv whose `pads` (or `auto_pad`) adds border values.
    var hasPadding: Bool {
        guard case .conv = kind else { return false }
        if case .string(let mode)? = node.attributes["auto_pad"], mode == "SAME_UPPER" || mode == "SAME_LOWER" { return true }
        if case .ints(let pads)? = node.attributes["pads"] { return pads.contains { $0 != 0 } }
        return false
    }

    /// Flat indices of weight element `(o, j, k)`: output channel `o`, column `j` within the
    /// group (`0..<inputsPerGroup`), kernel position `k`.
    @inline(__always)
    func weightIndex(output o: Int, column j: Int, tap k: Int) -> Int {
        switch kind {
        case .conv: return (o * inputsPerGroup + j) * kernelSize + k
        case .gemm(let transB): return transB ? o * inputsPerGroup + j : j * outputChannels + o
        }
    }

    /// The input channel a weight column of output channel `o` reads.
    @inline(__always)
    func inputChannel(output o: Int, column j: Int) -> Int {
        (o / (outputChannels / groups)) * inputsPerGroup + j
    }

    /// Calls `body(o, c, index)` for every weight element with its output and input channel.
    func forEachWeight(_ body: (Int, Int, Int) -> Void) {
        for o in 0..<outputChannels {
            for j in 0..<inputsPerGroup {
                let c = inputChannel(output: o, column: j)
                for k in 0..<kernelSize { body(o, c, weightIndex(output: o, column: j, tap: k)) }
            }
        }
    }

    /// max |W| per output channel.
    func outputRanges() -> [Float] {
        var ranges = [Float](repeating: 0, count: outputChannels)
        forEachWeight { o, _, index in ranges[o] = max(ranges[o], abs(weights[index])) }
        return ranges
    }

    /// max |W| per input channel.
    func inputRanges() -> [Float] {
        var ranges = [Float](repeating: 0, count: inputChannels)
        forEachWeight { _, c, index in ranges[c] = max(ranges[c], abs(weights[index])) }
        return ranges
    }

    /// W[o, ...] *= factors[o] and b[o] *= factors[o].
    mutating func scaleOutputs(by factors: [Float]) {
        var values = weights
        forEachWeight { o, _, index in values[index] *= factors[o] }
        weights = values
        if var b = bias {
            for o in b.indices { b[o] *= factors[o] }
            bias = b
        }
    }

    /// W[:, c, ...] *= factors[c].
    mutating func scaleInputs(by factors: [Float]) {
        var values = weights
        forEachWeight { _, c, index in values[index] *= factors[c] }
        weights = values
    }

    /// `Σ_k W[o, c, k]` as a dense `[outputChannels][inputChannels]` map (zero outside each
    /// output channel's group) of `weights`, or of `other` when given (same layout).
    func summedOverKernel(_ other: [Float]? = nil) -> [[Float]] {
        let source = other ?? weights
        var sums = [[Float]](repeating: [Float](repeating: 0, count: inputChannels), count: outputChannels)
        forEachWeight { o, c, index in sums[o][c] += source[index] }
        return sums
    }

    /// Adds `delta[o]` to the effective bias (stored bias × multiplier), creating a bias if
    /// the layer has none. Returns false when a Gemm's `beta` is 0 (the bias is ignored).
    mutating func addToEffectiveBias(_ delta: [Float]) -> Bool {
        guard biasMultiplier != 0 else { return false }
        var b = bias ?? [Float](repeating: 0, count: outputChannels)
        for o in b.indices { b[o] += delta[o] / biasMultiplier }
        bias = b
        return true
    }

    /// The effective bias (zeros when absent).
    var effectiveBias: [Float] {
        guard let bias else { return [Float](repeating: 0, count: outputChannels) }
        return bias.map { $0 * biasMultiplier }
    }

    /// Writes the weights and bias back into `graph`, keeping the tensor names. A weight or
    /// bias tensor read by another node is written under a fresh name for this node only.
    func store(into graph: inout Graph, consumers: [String: [Int]]) {
        var node = graph.nodes[nodeIndex]
        let weightOut = (consumers[weightName]?.count ?? 0) <= 1 ? weightName : freshTensorName(weightName + ".eq", in: graph)
        graph.initializers[weightOut] = Tensor(shape: weightShape, floats: weights)
        if node.inputs.count < 2 { node.inputs.append(weightOut) } else { node.inputs[1] = weightOut }
        graph.nodes[nodeIndex] = node
        storeBias(into: &graph, consumers: consumers)
    }

    /// Writes only the bias back into `graph` (weights untouched), keeping the tensor name
    /// unless another node reads it too; a layer without a bias gets `NODE.bias`.
    func storeBias(into graph: inout Graph, consumers: [String: [Int]]) {
        var node = graph.nodes[nodeIndex]
        if let bias {
            let existing = node.input(2)
            let biasOut: String
            if let existing, (consumers[existing]?.count ?? 0) <= 1 {
                biasOut = existing
            } else {
                biasOut = freshTensorName((existing ?? node.name) + (existing == nil ? ".bias" : ".eq"), in: graph)
            }
            let shape = existing.flatMap { graph.initializers[$0]?.shape } ?? [outputChannels]
            graph.initializers[biasOut] = Tensor(shape: shape, floats: bias)
            while node.inputs.count < 3 { node.inputs.append("") }
            node.inputs[2] = biasOut
        }
        graph.nodes[nodeIndex] = node
    }
}

/// `base`, or `base` with a number appended, such that no tensor of `graph` has the name.
func freshTensorName(_ base: String, in graph: Graph) -> String {
    var taken = Set(graph.initializers.keys).union(graph.inputs.map(\.name)).union(graph.outputs.map(\.name))
    for node in graph.nodes { taken.formUnion(node.outputs); taken.formUnion(node.inputs) }
    var candidate = base
    var counter = 1
    while taken.contains(candidate) { counter += 1; candidate = "\(base)\(counter)" }
    return candidate
}

/// A constant float tensor: an initializer or the `value` of a Constant node.
func constantTensor(_ name: String?, in graph: Graph, producers: [String: Int]) -> Tensor? {
    guard let name else { return nil }
    if let tensor = graph.initializers[name] { return tensor }
    guard let index = producers[name], graph.nodes[index].opType == "Constant",
          case .tensor(let tensor)? = graph.nodes[index].attributes["value"] else { return nil }
    return tensor
}

/// Bounds of a Clip node (attributes before opset 11, constant inputs from 11 on), or nil
/// when a bound is not a constant scalar.
func clipBounds(_ node: Node, in graph: Graph, producers: [String: Int]) -> (low: Float, high: Float)? {
    if graph.opsetVersion < 11 {
        var low = -Float.infinity, high = Float.infinity
        if case .float(let v)? = node.attributes["min"] { low = v }
        if case .float(let v)? = node.attributes["max"] { high = v }
        return (low, high)
    }
    func bound(_ index: Int, _ absent: Float) -> Float? {
        guard let name = node.input(index) else { return absent }
        guard let tensor = constantTensor(name, in: graph, producers: producers), tensor.count == 1 else { return nil }
        return tensor.floats[0]
    }
    guard let low = bound(1, -Float.infinity), let high = bound(2, Float.infinity) else { return nil }
    return (low, high)
}

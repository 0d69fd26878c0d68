import WhittleEngine

/// The part of a compressed graph that differs from the original, as a graph of its own
/// whose inputs are the original tensors live at the cut.
///
/// Compressing one layer leaves every node before it untouched, so their outputs equal the
/// float model's. Scoring only has to run the changed nodes and everything downstream of
/// them, fed with float activations computed once.
struct SuffixGraph {
    /// Changed nodes and their downstream nodes needed for the scored output. Inputs are
    /// the cut tensors with a symbolic batch dimension.
    var graph: Graph
    /// Original tensors the suffix reads (batch along dimension 0).
    var cutTensors: [String]
}

enum GraphCut {
    /// What scoring a compressed graph needs to run.
    enum Result {
        /// The scored output does not depend on anything that changed.
        case unchanged
        /// Only this suffix needs to run.
        case suffix(SuffixGraph)
        /// The change cannot be cut cleanly (e.g. a cut tensor without a leading batch
        /// dimension): run the whole compressed graph.
        case whole
    }

    /// The changed part of `compressed` relative to `original` that `output` depends on. `analysis` is the original graph analysed at batch 1 (shapes of
    /// the cut tensors, and which tensors are compile-time constants); `batchMajor` holds
    /// the runtime tensors whose dimension 0 is the batch.
    static func suffix(of compressed: Graph, against original: Graph, output: String,
                       analysis: GraphAnalysis, batchMajor: Set<String>) -> Result {
        var originalNodes: [String: Node] = [:]
        for node in original.nodes { originalNodes[node.name] = node }
        // Tensors whose values equal the original model's.
        var unchanged = Set(original.runtimeInputs.map(\.name))
        var producer: [String: Node] = [:]
        for node in compressed.nodes {
            for name in node.outputs where !name.isEmpty { producer[name] = node }
            let same = originalNodes[node.name] == node && node.inputs.allSatisfy { name in
                if name.isEmpty { return true }
                if let weight = compressed.initializers[name] { return original.initializers[name] == weight }
                return unchanged.contains(name)
            }
            if same { for name in node.outputs where !name.isEmpty { unchanged.insert(name) } }
        }
        if unchanged.contains(output) { return .unchanged }

        // Nodes needed for `output`, walking back until an unchanged runtime tensor.
        var needed = Set<String>()
        var cut = Set<String>()
        var stack = [output]
        var visited = Set<String>()
        while let name = stack.popLast() {
            guard visited.insert(name).inserted else { continue }
            if compressed.initializers[name] != nil { continue }
            // An unchanged, batch-major runtime tensor becomes a suffix input; an unchanged
            // constant (e.g. a shape computed from a Shape node) keeps its producer in the
            // suffix so that it is recomputed for the suffix's own batch size.
            if unchanged.contains(name), analysis.constants[name] == nil {
                guard batchMajor.contains(name) else { return .whole }
                cut.insert(name)
                continue
            }
            guard let node = producer[name] else { return .whole }
            needed.insert(node.name)
            for input in node.inputs where !input.isEmpty { stack.append(input) }
        }
        let nodes = compressed.nodes.filter { needed.contains($0.name) }
        var initializers: [String: Tensor] = [:]
        for node in nodes {
            for name in node.inputs where !name.isEmpty {
                if let tensor = compressed.initializers[name] { initializers[name] = tensor }
            }
        }
        let cutTensors = cut.sorted()
        var inputs: [ValueInfo] = []
        for name in cutTensors {
            guard let info = analysis.infos[name], info.rank >= 1 else { return .whole }
            inputs.append(ValueInfo(name: name, dimensions: [.symbolic("N")] + info.shape.dropFirst().map { .fixed($0) }))
        }
        let outputInfo = compressed.outputs.first { $0.name == output } ?? ValueInfo(name: output, dimensions: [])
        let graph = Graph(name: compressed.name + "-suffix", nodes: nodes, initializers: initializers, inputs: inputs,
                          outputs: [outputInfo], opsetVersion: compressed.opsetVersion, metadata: [:])
        return .suffix(SuffixGraph(graph: graph, cutTensors: cutTensors))
    }

    /// Runtime tensors of `graph` whose dimension 0 scales with the batch (compared between
    /// analyses at batch 1 and batch 2).
    static func batchMajorTensors(one: GraphAnalysis, two: GraphAnalysis) -> Set<String> {
        var result = Set<String>()
        for (name, info) in one.infos where one.constants[name] == nil {
            guard let other = two.infos[name], info.rank >= 1, other.rank == info.rank,
                  info.shape[0] == 1, other.shape[0] == 2,
                  info.shape.dropFirst() == other.shape.dropFirst() else { continue }
            result.insert(name)
        }
        return result
    }
}

/// Float activations of the original model over the evaluation set, computed on demand by
/// running only the nodes needed from the closest tensors already known (model inputs or
/// earlier results), and kept under a memory budget (least recently used first out).
final class ActivationStore {
    let graph: Graph
    let analysis: GraphAnalysis
    let batchSize: Int
    let budgetFloats: Int
    private var known: [String: Tensor]
    private let inputNames: Set<String>
    private var lastUse: [String: Int] = [:]
    private var clock = 0
    /// Nodes run so far computing activations, and the seconds it took (for statistics).
    private(set) var nodesRun = 0
    private(set) var computeSeconds = 0.0

    init(graph: Graph, analysis: GraphAnalysis, inputs: [String: Tensor], batchSize: Int, budgetFloats: Int) {
        self.graph = graph
        self.analysis = analysis
        self.batchSize = batchSize
        self.budgetFloats = budgetFloats
        self.known = inputs
        self.inputNames = Set(inputs.keys)
    }

    /// The float values of `names` (runtime tensors with the batch along dimension 0).
    func tensors(_ names: [String]) throws -> [String: Tensor] {
        clock += 1
        let missing = names.filter { known[$0] == nil }
        if !missing.isEmpty { try compute(missing) }
        var result: [String: Tensor] = [:]
        for name in names {
            guard let tensor = known[name] else {
                throw WhittleError(.invalidModel, "tensor '\(name)'", "no float activation could be computed for it")
            }
            result[name] = tensor
            lastUse[name] = clock
        }
        evict(keeping: Set(names))
        return result
    }

    private func compute(_ names: [String]) throws {
        let timer = ContinuousClock()
        let start = timer.now
        defer { computeSeconds += seconds(timer.now - start) }
        var producer: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() { for name in node.outputs where !name.isEmpty { producer[name] = index } }
        var needed = Set<Int>()
        var sources = Set<String>()
        var stack = names
        var visited = Set<String>()
        while let name = stack.popLast() {
            guard visited.insert(name).inserted else { continue }
            if graph.initializers[name] != nil { continue }
            if known[name] != nil, analysis.constants[name] == nil { sources.insert(name); continue }
            guard let index = producer[name] else {
                throw WhittleError(.invalidModel, "tensor '\(name)'", "is not produced by any node")
            }
            needed.insert(index)
            for input in graph.nodes[index].inputs where !input.isEmpty { stack.append(input) }
        }
        let nodes = needed.sorted().map { graph.nodes[$0] }
        nodesRun += nodes.count
        var initializers: [String: Tensor] = [:]
        for node in nodes { for name in node.inputs where !name.isEmpty { if let t = graph.initializers[name] { initializers[name] = t } } }
        var inputs: [ValueInfo] = []
        for name in sources.sorted() {
            if let declared = graph.inputs.first(where: { $0.name == name }) { inputs.append(declared); continue }
            guard let info = analysis.infos[name] else { continue }
            inputs.append(ValueInfo(name: name, dimensions: [.symbolic("N")] + info.shape.dropFirst().map { .fixed($0) }))
        }
        let outputs = names.map { ValueInfo(name: $0, dimensions: []) }
        let prefix = Graph(name: graph.name + "-prefix", nodes: nodes, initializers: initializers, inputs: inputs,
                           outputs: outputs, opsetVersion: graph.opsetVersion)
        let runner = try BatchRunner(graph: prefix, batchSize: batchSize,
                                     options: CompileOptions(preservedTensors: Set(names)))
        let sourceValues = known.filter { sources.contains($0.key) }
        let samples = try runner.validate(inputs: sourceValues)
        // Each batch's outputs go straight to their place in one array per tensor (the batches
        // cover every sample, so the arrays are not zeroed first).
        var values: [String: [Float]] = [:]
        var shapes: [String: [Int]] = [:]
        try runner.forEachBatch(inputs: sourceValues) { batch, plan in
            for name in names {
                guard let buffer = plan.outputBuffer(name), let info = plan.info(name), info.rank >= 1,
                      info.shape[0] == batch.count else {
                    throw WhittleError(.invalidModel, "tensor '\(name)'", "has no batch dimension to collect")
                }
                let perSample = info.count / max(1, batch.count)
                if values[name] == nil {
                    // Contents unspecified until the batches overwrite them.
                    values[name] = [Float](unsafeUninitializedCapacity: perSample * samples) { _, count in count = perSample * samples }
                    shapes[name] = [samples] + info.shape.dropFirst()
                }
                values[name]?.withUnsafeMutableBufferPointer { target in
                    guard let destination = target.baseAddress, let source = buffer.baseAddress else { return }
                    (destination + batch.lowerBound * perSample).update(from: source, count: info.count)
                }
            }
        }
        for name in names {
            guard let floats = values[name], let shape = shapes[name] else {
                throw WhittleError(.invalidModel, "tensor '\(name)'", "was not computed")
            }
            known[name] = Tensor(shape: shape, floats: floats)
            lastUse[name] = clock
        }
    }

    private func evict(keeping: Set<String>) {
        var total = known.filter { !inputNames.contains($0.key) }.values.reduce(0) { $0 + $1.count }
        guard total > budgetFloats else { return }
        let candidates = known.keys.filter { !inputNames.contains($0) && !keeping.contains($0) }
            .sorted { (lastUse[$0] ?? 0) < (lastUse[$1] ?? 0) }
        for name in candidates where total > budgetFloats {
            total -= known[name]?.count ?? 0
            known[name] = nil
            lastUse[name] = nil
        }
    }
}

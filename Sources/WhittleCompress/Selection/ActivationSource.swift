import WhittleEngine

/// Float activations of a reference graph over fixed inputs, shared by the reconstruction
/// and whitening passes of many compressions of that graph.
///
/// Reconstruction needs a layer's input as the compressed model computes it and its output
/// as the original computes it, over the whole reconstruction set. Computing them by running
/// the graph from the model inputs costs a whole prefix per pass; with a source, a pass runs
/// only the nodes that differ from the reference (`GraphCut.suffix`), fed with the
/// reference's activations at the cut, and a tensor the compression left unchanged is read
/// directly. Build it over exactly the inputs passed as `CompressionOptions.reconstructionInputs`.
///
/// Not thread-safe: use from one thread (the compression of one model at a time).
public final class ActivationSource: @unchecked Sendable {
    let graph: Graph
    let sampleCount: Int
    let analysis: GraphAnalysis
    let batchMajor: Set<String>
    let store: ActivationStore
    let batchSize: Int

    /// Prepares the source for `graph` over `inputs` (activations are computed on demand and
    /// kept under `budgetBytes`, least recently used out first).
    public init(graph: Graph, inputs: [String: Tensor], batchSize: Int, budgetBytes: Int = 1 << 29) throws {
        self.graph = graph
        self.batchSize = batchSize
        sampleCount = try BatchRunner(graph: graph, batchSize: batchSize).validate(inputs: inputs)
        analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        let two = try GraphAnalysis(graph: graph, batchSize: 2)
        batchMajor = GraphCut.batchMajorTensors(one: analysis, two: two)
        store = ActivationStore(graph: graph, analysis: analysis, inputs: inputs, batchSize: batchSize,
                                budgetFloats: max(1, budgetBytes / 4))
    }

    /// The reference graph's values of `tensor` over the source's inputs (batch along
    /// dimension 0), or nil when it is not a batch-major run-time tensor.
    func values(of tensor: String) throws -> Tensor? {
        guard batchMajor.contains(tensor) else { return nil }
        return try store.tensors([tensor])[tensor]
    }

    /// Where `tensor` of `candidate` comes from over the source's inputs.
    enum Prefix {
        /// Nothing it depends on changed: the reference's own values.
        case stored(Tensor)
        /// The changed part of `candidate` up to `tensor`, with the reference activations it reads.
        case run(graph: Graph, inputs: [String: Tensor])
    }

    /// How to get `tensor` of `candidate`; nil when the change cannot be cut cleanly (the
    /// caller then runs the whole prefix).
    func prefix(for tensor: String, of candidate: Graph) throws -> Prefix? {
        switch GraphCut.suffix(of: candidate.prefix(computing: tensor), against: graph, output: tensor,
                               analysis: analysis, batchMajor: batchMajor) {
        case .whole:
            return nil
        case .suffix(let suffix):
            return .run(graph: suffix.graph, inputs: try store.tensors(suffix.cutTensors))
        case .unchanged:
            guard batchMajor.contains(tensor), let values = try store.tensors([tensor])[tensor] else { return nil }
            return .stored(values)
        }
    }

    /// What to run to get `tensor` of `candidate` over the source's inputs: `prefix(for:of:)`,
    /// with unchanged values read through an Identity over the reference's own tensor.
    func plan(for tensor: String, of candidate: Graph) throws -> (graph: Graph, inputs: [String: Tensor])? {
        switch try prefix(for: tensor, of: candidate) {
        case nil:
            return nil
        case .run(let graph, let inputs)?:
            return (graph, inputs)
        case .stored(let values)?:
            guard let info = analysis.infos[tensor] else { return nil }
            let input = tensor + ".reference"
            let identity = Node(name: tensor + ".read", opType: "Identity", inputs: [input], outputs: [tensor])
            let graph = Graph(name: "reference-read", nodes: [identity], initializers: [:],
                              inputs: [ValueInfo(name: input, dimensions: [.symbolic("N")] + info.shape.dropFirst().map { .fixed($0) })],
                              outputs: [ValueInfo(name: tensor, dimensions: [])], opsetVersion: candidate.opsetVersion)
            return (graph, [input: values])
        }
    }
}

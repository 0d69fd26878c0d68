import Foundation
import WhittleEngine

/// The changed part of a graph (see `GraphCut`) with some of its initializers turned into
/// run-time inputs, compiled once and run for many values of those initializers.
///
/// A score table compresses one layer to N-1 ratios. `LayerSweep` gives every ratio the same
/// graph (the template), differing only in the values of a few weights (the patched
/// initializers), so the suffix is analysed, compiled and given its arena once per layer and
/// batch size; each ratio then copies its weights and the cut activations into the plan's
/// input buffers and runs it.
///
/// Not thread-safe: one instance per thread.
final class PatchedSuffix {
    /// Names of the patched initializers the suffix reads (the weights a run must supply).
    let patchNames: [String]
    let cutTensors: [String]
    let output: String
    let sampleCount: Int
    let batchSize: Int
    /// Multiply-accumulates of the suffix per sample.
    let macsPerSample: Double
    /// Seconds spent compiling plans (analysis, kernels, arena), copying inputs and running.
    private(set) var compileSeconds = 0.0
    private(set) var copySeconds = 0.0
    private(set) var runSeconds = 0.0
    private(set) var scoreSeconds = 0.0

    private let graph: Graph
    private let activations: [String: Tensor]
    private let shapes: [String: [Int]]
    private var plans: [Int: Plan] = [:]
    /// Which weight set each plan holds (plans are per batch size).
    private var loaded: [Int: Int] = [:]
    /// Which batch's cut activations each plan's input buffers hold (the plan never writes
    /// its inputs), so running several weight sets on one batch copies them once.
    private var loadedBatch: [Int: Int] = [:]
    private var generation = 0

    /// The suffix of `template` (against `base`) that `output` depends on, with `patched`
    /// initializers as inputs, fed with `base`'s activations from `store`. Nil when the
    /// change cannot be cut cleanly (the caller then runs whole graphs) or does not reach
    /// `output`. Throws when the suffix does not compile.
    init?(template: Graph, base: Graph, patched: Set<String>, output: String, analysis: GraphAnalysis,
          batchMajor: Set<String>, store: ActivationStore, batchSize: Int) throws {
        guard case .suffix(let suffix) = GraphCut.suffix(of: template, against: base, output: output,
                                                          analysis: analysis, batchMajor: batchMajor) else { return nil }
        var graph = suffix.graph
        var names: [String] = []
        var shapes: [String: [Int]] = [:]
        for name in patched.sorted() {
            guard let tensor = graph.initializers[name] else { continue }
            guard tensor.isFloatingPoint else { return nil }
            graph.initializers[name] = nil
            graph.inputs.append(ValueInfo(name: name, dimensions: tensor.shape.map { .fixed($0) }))
            names.append(name)
            shapes[name] = tensor.shape
        }
        for name in suffix.cutTensors {
            guard let info = analysis.infos[name] else { return nil }
            shapes[name] = Array(info.shape.dropFirst())
        }
        let activations = try store.tensors(suffix.cutTensors)
        var count: Int?
        for name in suffix.cutTensors {
            guard let tensor = activations[name], tensor.rank >= 1 else { return nil }
            if let count, count != tensor.shape[0] { return nil }
            count = tensor.shape[0]
        }
        guard let count, count > 0 else { return nil }
        self.graph = try CompileOptions().prepare(graph)
        self.patchNames = names
        self.cutTensors = suffix.cutTensors
        self.output = output
        self.sampleCount = count
        self.batchSize = batchSize
        self.activations = activations
        self.shapes = shapes
        let single = try Self.analyze(self.graph, batch: 1, cut: suffix.cutTensors, patched: names, shapes: shapes)
        macsPerSample = Double(CostModel.analyze(single).totalMACs)
    }

    private static func analyze(_ graph: Graph, batch: Int, cut: [String], patched: [String],
                                shapes: [String: [Int]]) throws -> GraphAnalysis {
        var infos: [String: TensorInfo] = [:]
        for name in cut { infos[name] = TensorInfo(shape: [batch] + (shapes[name] ?? [])) }
        for name in patched { infos[name] = TensorInfo(shape: shapes[name] ?? []) }
        return try GraphAnalysis(graph: graph, inputInfos: infos)
    }

    private func plan(forBatch size: Int) throws -> Plan {
        if let plan = plans[size] { return plan }
        let clock = ContinuousClock()
        let start = clock.now
        let plan = try Plan(analysis: Self.analyze(graph, batch: size, cut: cutTensors, patched: patchNames, shapes: shapes))
        compileSeconds += seconds(clock.now - start)
        plans[size] = plan
        return plan
    }

    /// Runs `body`, adding its time to `scoreSeconds`.
    func timeScoring(_ body: () -> Void) {
        let clock = ContinuousClock()
        let start = clock.now
        body()
        scoreSeconds += seconds(clock.now - start)
    }

    /// Compiles the plans every run needs (so that their cost is not counted as running).
    func prepare() throws {
        var start = 0
        while start < sampleCount {
            let end = min(start + batchSize, sampleCount)
            _ = try plan(forBatch: end - start)
            start = end
        }
    }

    /// The sample ranges of the batches a run goes through.
    var batches: [Range<Int>] {
        stride(from: 0, to: sampleCount, by: batchSize).map { $0..<min($0 + batchSize, sampleCount) }
    }

    /// Runs every batch with `weights` (a value for every name of `patchNames`) and hands the
    /// plan, its outputs computed, to `body` with the sample range.
    func run(weights: [String: [Float]], shouldStop: () -> Bool = { false },
             _ body: (Range<Int>, Plan) throws -> Void) throws {
        generation += 1
        let key = -generation
        for batch in batches {
            if shouldStop() { throw WhittleError(.cancelled, "", "cancelled") }
            try run(weights: weights, key: key, batch: batch, body)
        }
    }

    /// Runs one batch (`samples`, one of `batches`) with `weights`, copied into the plan only
    /// when it last ran another weight set than `key` (a number naming this set).
    func run(weights: [String: [Float]], key: Int, batch samples: Range<Int>,
             _ body: (Range<Int>, Plan) throws -> Void) throws {
        let plan = try self.plan(forBatch: samples.count)
        let clock = ContinuousClock()
        let copyStart = clock.now
        if loaded[samples.count] != key {
            for name in patchNames {
                let count = (shapes[name] ?? []).reduce(1, *)
                guard let values = weights[name], values.count == count else {
                    throw WhittleError(.invalidModel, "tensor '\(name)'", "no weights of \(count) values supplied")
                }
                guard let buffer = plan.inputBuffer(name) else { continue }
                _ = UnsafeMutableBufferPointer(rebasing: buffer[0..<values.count]).update(fromContentsOf: values)
            }
            loaded[samples.count] = key
        }
        if loadedBatch[samples.count] != samples.lowerBound {
            for name in cutTensors {
                guard let buffer = plan.inputBuffer(name), let destination = buffer.baseAddress,
                      let tensor = activations[name] else { continue }
                let row = tensor.count / max(1, tensor.shape[0])
                tensor.floats.withUnsafeBufferPointer { values in
                    guard let base = values.baseAddress else { return }
                    destination.update(from: base + samples.lowerBound * row, count: samples.count * row)
                }
            }
            loadedBatch[samples.count] = samples.lowerBound
        }
        let runStart = clock.now
        copySeconds += seconds(runStart - copyStart)
        plan.execute()
        runSeconds += seconds(clock.now - runStart)
        try body(samples, plan)
    }
}

import Foundation
import WhittleEngine

/// Scores compressed variants of one float model on a fixed evaluation set.
///
/// The float model runs once up front (reference outputs and classes). Each candidate is
/// then scored by running only what changed: nodes identical to the float model's (same
/// node, same weights, unchanged inputs) are skipped and their outputs taken from float
/// activations computed on demand and kept in memory, so compressing a late layer costs a
/// late-layer-sized evaluation. Batches run through `BatchRunner` (one compiled plan per
/// batch size, kernels on every engine thread).
///
/// Not thread-safe: use one evaluator from one thread.
public final class ScoreEvaluator {
    /// The graph candidates are compared with (the float model, or an earlier stage's
    /// result after `rebase(onto:)`); scores are always against the float model's outputs.
    public private(set) var graph: Graph
    public let inputs: [String: Tensor]
    public let labels: [Int]?
    public let batchSize: Int
    /// The scored output (the model's first output).
    public let outputName: String
    public let sampleCount: Int
    /// Scores of the float model itself (agreement 1, SQNR at the ceiling).
    public private(set) var baseline: ScoreValues
    /// Whether only changed suffixes are run (set false to always run whole graphs).
    public var suffixEvaluation = true
    /// Variants of a layer sweep scored at the same time (`evaluate(_: LayerSweep)`), each with
    /// its own plans on a single engine thread: `EngineThreads` is set to 1 while they run and
    /// restored after, so set this above 1 only when nothing else uses the engine meanwhile
    /// (the command line does; the workbench's jobs do not). Whole-sample-set passes stay
    /// multi-threaded. On 2 cores a batch-32 EfficientNet-Lite0 run spends 40-90% more CPU
    /// time with 2 engine threads than with 1 (spin-waiting between GEMMs and loops), which
    /// concurrent single-threaded runs avoid.
    public var parallelVariants = 1

    /// Evaluations run so far, their total seconds, and the MACs they ran relative to as
    /// many whole-model runs.
    public private(set) var evaluations = 0
    /// Evaluations of a sweep that took the score of an identical earlier variant instead of
    /// running (counted in `evaluations` too).
    public private(set) var sharedEvaluations = 0
    public private(set) var evaluationSeconds = 0.0
    public private(set) var macsRun = 0.0
    public private(set) var macsWhole = 0.0
    /// Seconds of sweep evaluations by phase: compiling suffix plans, copying weights and
    /// cut activations into them, running them, and scoring their outputs.
    public private(set) var phaseSeconds: [String: Double] = [:]

    private let reference: [Float]
    private let referenceClasses: [Int]?
    private let width: Int
    private let dimensions: [String: Int]
    private let activationBudgetFloats: Int
    private var analysis: GraphAnalysis
    private var batchMajor: Set<String>
    private var store: ActivationStore
    private var modelMACs: Int

    /// Runs the float model over `inputs` (the batch along dimension 0 of every runtime
    /// input) and keeps its first output as the reference.
    public init(graph: Graph, inputs: [String: Tensor], labels: [Int]?, batchSize: Int = 32,
                activationBudgetBytes: Int = 1 << 30) throws {
        guard let output = graph.outputs.first?.name else {
            throw WhittleError(.invalidModel, "model", "has no outputs")
        }
        self.graph = graph
        self.inputs = inputs
        self.labels = labels
        self.batchSize = batchSize
        self.outputName = output
        let runner = try BatchRunner(graph: graph, batchSize: batchSize)
        let count = try runner.validate(inputs: inputs)
        guard count >= 1 else { throw WhittleError(.invalidData, "evaluation set", "has no samples") }
        if let labels, labels.count != count {
            throw WhittleError(.invalidData, "labels", "\(labels.count) labels for \(count) samples")
        }
        sampleCount = count
        let outputs = try runner.outputs(inputs: inputs)
        guard let values = outputs[output] else { throw WhittleError(.invalidModel, "output '\(output)'", "was not produced") }
        let referenceValues = values.floats
        let rowWidth = values.count / count
        reference = referenceValues
        width = rowWidth
        let classification = values.rank >= 2 && values.shape.dropFirst(2).allSatisfy { $0 == 1 } && values.shape[1] >= 2
        let classes = classification
            ? referenceValues.withUnsafeBufferPointer { argmaxRows($0, rows: count, width: rowWidth) } : nil
        referenceClasses = classes
        var dimensions: [String: Int] = [:]
        for input in graph.runtimeInputs {
            guard let tensor = inputs[input.name] else { continue }
            for (axis, dimension) in input.dimensions.enumerated() where axis > 0 {
                if case .symbolic(let symbol) = dimension, axis < tensor.rank { dimensions[symbol] = tensor.shape[axis] }
            }
        }
        self.dimensions = dimensions
        activationBudgetFloats = max(1, activationBudgetBytes / 4)
        (analysis, batchMajor, store, modelMACs) = try Self.prepare(graph, dimensions: dimensions, inputs: inputs,
                                                                     batchSize: batchSize, budget: activationBudgetFloats)
        var accumulator = ScoreAccumulator()
        referenceValues.withUnsafeBufferPointer { buffer in
            accumulator.add(output: buffer, first: 0, rows: count, width: rowWidth, reference: referenceValues,
                            referenceClasses: classes, labels: labels)
        }
        baseline = accumulator.values(classification: classes != nil, labelled: labels != nil)
    }

    private static func prepare(_ graph: Graph, dimensions: [String: Int], inputs: [String: Tensor], batchSize: Int,
                                budget: Int) throws -> (GraphAnalysis, Set<String>, ActivationStore, Int) {
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1, dimensions: dimensions)
        let two = try GraphAnalysis(graph: graph, batchSize: 2, dimensions: dimensions)
        let store = ActivationStore(graph: graph, analysis: analysis, inputs: inputs, batchSize: batchSize, budgetFloats: budget)
        return (analysis, GraphCut.batchMajorTensors(one: analysis, two: two), store, CostModel.analyze(analysis).totalMACs)
    }

    /// Makes `base` (e.g. the result of a first compression stage) the graph candidates are
    /// compared with: its activations replace the float model's, its score becomes the
    /// baseline. The reference outputs stay the float model's.
    public func rebase(onto base: Graph) throws {
        (analysis, batchMajor, store, modelMACs) = try Self.prepare(base, dimensions: dimensions, inputs: inputs,
                                                                     batchSize: batchSize, budget: activationBudgetFloats)
        graph = base
        baseline = try run(base, inputs: inputs, shouldStop: { false })
    }

    /// Per-layer and total cost of a graph with this evaluator's input sizes, at batch 1.
    public func cost(of candidate: Graph) throws -> ModelCost {
        CostModel.analyze(try GraphAnalysis(graph: candidate, batchSize: 1, dimensions: dimensions))
    }

    /// Scores a whole graph (no suffix shortcut), e.g. the final compressed model.
    public func evaluateWhole(_ candidate: Graph) throws -> ScoreValues {
        try run(candidate, inputs: inputs, shouldStop: { false })
    }

    /// Scores a compressed variant of the float model (same inputs and scored output).
    public func evaluate(_ candidate: Graph, shouldStop: () -> Bool = { false }) throws -> ScoreValues {
        let clock = ContinuousClock()
        let start = clock.now
        defer {
            let elapsed = clock.now - start
            evaluations += 1
            evaluationSeconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            macsWhole += Double(modelMACs)
        }
        let cut: GraphCut.Result = suffixEvaluation
            ? GraphCut.suffix(of: candidate, against: graph, output: outputName, analysis: analysis, batchMajor: batchMajor)
            : .whole
        switch cut {
        case .unchanged:
            return baseline
        case .suffix(let suffix):
            let activations = try store.tensors(suffix.cutTensors)
            return try run(suffix.graph, inputs: activations, shouldStop: shouldStop)
        case .whole:
            return try run(candidate, inputs: inputs, shouldStop: shouldStop)
        }
    }

    /// Scores every variant of a layer sweep (in order). With a template, the changed suffix
    /// is compiled once and each variant only supplies its weights (see `PatchedSuffix`); a
    /// variant without weights is the unchanged model (the baseline); without a template each
    /// variant's graph is evaluated on its own. `progress` is called after each variant (after
    /// all of them when they are scored concurrently).
    ///
    /// With `parallelVariants` n > 1 the variants' batches run n at a time, each worker with its
    /// own plans on one engine thread (see `parallelVariants`); a variant's batch sums are
    /// merged in batch order.
    public func evaluate(_ sweep: LayerSweep, shouldStop: () -> Bool = { false },
                         progress: (Int) -> Void = { _ in }) throws -> [ScoreValues] {
        let clock = ContinuousClock()
        // A variant whose weights equal an earlier one's (two ratios rounding to the same rank,
        // e.g. a 3-channel stem) is the same model: it is run once and the score shared.
        var changed: [Int] = []
        var sameAs: [Int: Int] = [:]
        for index in sweep.variants.indices {
            guard let weights = sweep.variants[index].weights else { continue }
            if let earlier = changed.first(where: { sweep.variants[$0].weights == weights }) {
                sameAs[index] = earlier
            } else {
                changed.append(index)
            }
        }
        var suffixes: [PatchedSuffix] = []
        var setupSeconds = 0.0
        if suffixEvaluation, let template = sweep.template, !changed.isEmpty {
            let start = clock.now
            let computedBefore = store.computeSeconds
            defer { phaseSeconds["reference activations", default: 0] += store.computeSeconds - computedBefore }
            let workers = max(1, min(parallelVariants, changed.count))
            do {
                for _ in 0..<workers {
                    guard let suffix = try PatchedSuffix(template: template, base: graph, patched: Set(sweep.patched),
                                                         output: outputName, analysis: analysis, batchMajor: batchMajor,
                                                         store: store, batchSize: batchSize) else { break }
                    try suffix.prepare()
                    suffixes.append(suffix)
                }
            } catch let error as WhittleError where error.kind != .cancelled {
                // The suffix does not compile with its weights as inputs (e.g. a kernel that needs
                // constant weights): score each variant's own graph, which reports any real fault.
                suffixes = []
            }
            setupSeconds = seconds(clock.now - start)
            phaseSeconds["suffix setup and compile (with reference activations)", default: 0] += setupSeconds
        }
        let scoring = Scoring(outputName: outputName, width: width, reference: reference, referenceClasses: referenceClasses,
                              labels: labels)
        var results = [ScoreValues?](repeating: nil, count: sweep.variants.count)
        let runStart = clock.now
        if let first = suffixes.first {
            // Work items: (variant, batch); a variant's batches may run on different workers,
            // their sums are merged in batch order. Concurrent workers take the items batch by
            // batch, so each copies a batch's cut activations into its plan once for all variants.
            let batches = first.batches
            let items = suffixes.count > 1
                ? batches.indices.flatMap { batch in changed.map { ($0, batch) } }
                : changed.flatMap { variant in batches.indices.map { (variant, $0) } }
            let partial: [Int: ScoreAccumulator]
            if suffixes.count > 1 {
                partial = try VariantWorkers.run(Array(items.indices), workers: suffixes.count) { worker, item in
                    if shouldStop() { throw WhittleError(.cancelled, "", "cancelled") }
                    let (variant, batch) = items[item]
                    guard let weights = sweep.variants[variant].weights else { return ScoreAccumulator() }
                    return try scoring.score(suffixes[worker], weights: weights, key: variant, batch: batches[batch])
                }
            } else {
                var sums: [Int: ScoreAccumulator] = [:]
                for (item, (variant, batch)) in items.enumerated() {
                    if shouldStop() { throw WhittleError(.cancelled, "", "cancelled") }
                    guard let weights = sweep.variants[variant].weights else { continue }
                    sums[item] = try scoring.score(first, weights: weights, key: variant, batch: batches[batch])
                    if batch == batches.count - 1 { progress(variant) }
                }
                partial = sums
            }
            if shouldStop() { throw WhittleError(.cancelled, "", "cancelled") }
            var merged: [Int: ScoreAccumulator] = [:]
            for (item, (variant, _)) in items.enumerated() {
                guard let sums = partial[item] else { continue }
                merged[variant, default: ScoreAccumulator()].merge(sums)
            }
            for (variant, sums) in merged {
                results[variant] = sums.values(classification: referenceClasses != nil, labelled: labels != nil)
            }
        }
        let runSeconds = seconds(clock.now - runStart)
        var scores: [ScoreValues] = []
        for (index, variant) in sweep.variants.enumerated() {
            // Without a template, variants carry no weights: each is its own compressed graph.
            if variant.weights == nil && (sweep.template != nil || variant.graph == graph) {
                scores.append(baseline)
            } else if let earlier = sameAs[index] {
                scores.append(scores[earlier])
                sharedEvaluations += 1
            } else if let value = results[index] {
                scores.append(value)
                macsRun += suffixes.first?.macsPerSample ?? 0
            } else {
                if shouldStop() { throw WhittleError(.cancelled, "", "cancelled") }
                scores.append(try evaluate(variant.graph, shouldStop: shouldStop))
                continue
            }
            // The shared setup and the (possibly concurrent) runs, split evenly over the variants.
            evaluations += 1
            evaluationSeconds += (setupSeconds + runSeconds) / Double(sweep.variants.count)
            macsWhole += Double(modelMACs)
        }
        if suffixes.count > 1 { progress(sweep.variants.count - 1) }
        if !suffixes.isEmpty {
            phaseSeconds["suffix runs, wall", default: 0] += runSeconds
            phaseSeconds["input copy, thread-s", default: 0] += suffixes.reduce(0) { $0 + $1.copySeconds }
            phaseSeconds["suffix execute, thread-s", default: 0] += suffixes.reduce(0) { $0 + $1.runSeconds }
            phaseSeconds["scoring, thread-s", default: 0] += suffixes.reduce(0) { $0 + $1.scoreSeconds }
        }
        return scores
    }

    /// What scoring one output batch needs, shareable with worker threads.
    private struct Scoring: Sendable {
        let outputName: String
        let width: Int
        let reference: [Float]
        let referenceClasses: [Int]?
        let labels: [Int]?

        /// The sums of one batch run with `weights` (the weight set numbered `key`).
        func score(_ suffix: PatchedSuffix, weights: [String: [Float]], key: Int, batch: Range<Int>) throws -> ScoreAccumulator {
            var accumulator = ScoreAccumulator()
            try suffix.run(weights: weights, key: key, batch: batch) { batch, plan in
                guard let info = plan.info(outputName), let buffer = plan.outputBuffer(outputName),
                      info.count == batch.count * width else {
                    throw WhittleError(.shapeMismatch, "output '\(outputName)'",
                                       "the compressed model's output no longer has \(width) values per sample")
                }
                suffix.timeScoring {
                    accumulator.add(output: UnsafeBufferPointer(rebasing: buffer[0..<info.count]), first: batch.lowerBound,
                                    rows: batch.count, width: width, reference: reference,
                                    referenceClasses: referenceClasses, labels: labels)
                }
            }
            return accumulator
        }
    }

    private func run(_ model: Graph, inputs: [String: Tensor], shouldStop: () -> Bool) throws -> ScoreValues {
        let runner = try BatchRunner(graph: model, batchSize: batchSize)
        var accumulator = ScoreAccumulator()
        var counted = false
        try runner.forEachBatch(inputs: inputs, shouldStop: shouldStop) { batch, plan in
            if !counted {
                macsRun += Double(CostModel.analyze(plan.analysis).totalMACs) / Double(max(1, batch.count))
                counted = true
            }
            guard let info = plan.info(outputName), let buffer = plan.outputBuffer(outputName),
                  info.count == batch.count * width else {
                throw WhittleError(.shapeMismatch, "output '\(outputName)'",
                                   "the compressed model's output no longer has \(width) values per sample")
            }
            accumulator.add(output: UnsafeBufferPointer(rebasing: buffer[0..<info.count]), first: batch.lowerBound,
                            rows: batch.count, width: width, reference: reference,
                            referenceClasses: referenceClasses, labels: labels)
        }
        return accumulator.values(classification: referenceClasses != nil, labelled: labels != nil)
    }
}

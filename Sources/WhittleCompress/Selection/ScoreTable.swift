import Foundation
import WhittleEngine

/// One measured point of a layer's sensitivity curve: the model with only this layer
/// compressed to `ratio`.
public struct ScoreEntry: Sendable, Codable, Equatable {
    /// Requested fraction of the layer's MACs kept.
    public var ratio: Double
    public var scores: ScoreValues
    /// Whole-model MACs and parameters (batch 1) with only this layer compressed, measured
    /// on the compressed graph.
    public var macs: Int
    public var parameters: Int
    /// Rank (SVD) or input channels (pruning) kept, and the original count.
    public var kept: Int
    public var original: Int

    public init(ratio: Double, scores: ScoreValues, macs: Int, parameters: Int, kept: Int, original: Int) {
        self.ratio = ratio
        self.scores = scores
        self.macs = macs
        self.parameters = parameters
        self.kept = kept
        self.original = original
    }
}

/// A layer's row of the score table, entries in ascending ratio.
public struct LayerScores: Sendable, Codable, Equatable {
    public var layer: String
    public var technique: CompressionTechnique
    /// The layer's own MACs and parameters before compression (batch 1).
    public var macs: Int
    public var parameters: Int
    public var entries: [ScoreEntry]

    public init(layer: String, technique: CompressionTechnique, macs: Int, parameters: Int, entries: [ScoreEntry]) {
        self.layer = layer
        self.technique = technique
        self.macs = macs
        self.parameters = parameters
        self.entries = entries
    }
}

/// How a score table was obtained.
public struct ScoreTableStatistics: Sendable, Codable, Equatable {
    /// Evaluations run in this build, and entries taken from the cache instead.
    public var evaluations = 0
    /// Of `evaluations`, those that took the score of an identical variant of the same layer
    /// (two ratios giving the same rank) instead of running. Nil in tables written before.
    public var sharedEvaluations: Int?
    public var cacheHits = 0
    /// Wall-clock seconds of the whole build, of the evaluations alone, and of compressing.
    public var seconds = 0.0
    public var evaluationSeconds = 0.0
    public var compressionSeconds = 0.0
    /// MACs the evaluations ran relative to as many whole-model runs (suffix evaluation).
    public var macShareRun = 1.0
    /// Seconds by phase: compressing (whitening and SVD, channel order, reconstruction runs,
    /// Gram matrices, solves, graph edits), measuring the compressed graphs' cost, and
    /// evaluating (suffix setup and compile, input copy, suffix run, scoring). Nil in tables
    /// written before it was recorded.
    public var phaseSeconds: [String: Double]?

    public init() {}
}

/// The eval-score table {layer: {ratio: score}} of AIMET's greedy selection, with the
/// measured cost of every entry.
public struct ScoreTable: Sendable, Codable, Equatable {
    public var technique: CompressionTechnique
    public var candidates: [Double]
    /// Scores of the uncompressed model (ratio 1.0).
    public var baseline: ScoreValues
    /// Whole-model MACs and parameters before compression (batch 1).
    public var modelMACs: Int
    public var modelParameters: Int
    public var layers: [LayerScores]
    /// Layers the technique cannot compress, with the reason.
    public var ineligible: [LayerEligibility]
    public var statistics: ScoreTableStatistics

    public init(technique: CompressionTechnique, candidates: [Double], baseline: ScoreValues, modelMACs: Int,
                modelParameters: Int, layers: [LayerScores], ineligible: [LayerEligibility] = [],
                statistics: ScoreTableStatistics = ScoreTableStatistics()) {
        self.technique = technique
        self.candidates = candidates
        self.baseline = baseline
        self.modelMACs = modelMACs
        self.modelParameters = modelParameters
        self.layers = layers
        self.ineligible = ineligible
        self.statistics = statistics
    }

    /// Candidate ratios i/N for i = 1 ... N-1 (AIMET: 1.0, no compression, is not a candidate).
    public static func candidates(_ count: Int) throws -> [Double] {
        guard count >= 2 else {
            throw WhittleError(.invalidArgument, "--candidates", "must be at least 2, got \(count)")
        }
        return (1..<count).map { Double($0) / Double(count) }
    }
}

/// The two entry points of the compression library the selection drives; tests substitute
/// their own.
public struct CompressionBackend: Sendable {
    public var eligibility: @Sendable (Graph, CompressionTechnique) throws -> [LayerEligibility]
    public var compress: @Sendable (Graph, [LayerChoice], CompressionOptions, JobContext) throws -> CompressionOutcome
    /// One layer at several ratios (a score-table row) in one go; nil scores every ratio with
    /// its own `compress`.
    public var sweep: (@Sendable (Graph, String, CompressionTechnique, [Double], CompressionOptions, JobContext) throws -> LayerSweep)?

    public init(eligibility: @escaping @Sendable (Graph, CompressionTechnique) throws -> [LayerEligibility],
                compress: @escaping @Sendable (Graph, [LayerChoice], CompressionOptions, JobContext) throws -> CompressionOutcome,
                sweep: (@Sendable (Graph, String, CompressionTechnique, [Double], CompressionOptions, JobContext) throws -> LayerSweep)? = nil) {
        self.eligibility = eligibility
        self.compress = compress
        self.sweep = sweep
    }

    /// `Compressor.eligibility`, `Compressor.compress` and `Compressor.sweep`.
    public static var standard: CompressionBackend {
        CompressionBackend(eligibility: { try Compressor.eligibility(of: $0, technique: $1) },
                           compress: { try Compressor.compress($0, choices: $1, options: $2, job: $3) },
                           sweep: { try Compressor.sweep($0, layer: $1, technique: $2, ratios: $3, options: $4, job: $5) })
    }
}

/// Builds a score table one layer at a time: each candidate compresses only that layer,
/// measures the compressed graph's cost and scores it with a `ScoreEvaluator`. Entries come
/// from, and go to, an optional disk cache.
public struct ScoreTableBuilder: Sendable {
    public var technique: CompressionTechnique
    /// N: candidates are i/N for i = 1 ... N-1.
    public var candidateCount: Int
    /// Layers left out of the table.
    public var ignore: Set<String>
    public var options: CompressionOptions
    public var backend: CompressionBackend
    public var cache: ScoreCache?
    /// Layers left to another technique of the scheme, with the reason (listed as ineligible).
    public var exclude: [String: String]

    public init(technique: CompressionTechnique, candidateCount: Int = 10, ignore: Set<String> = [],
                options: CompressionOptions = CompressionOptions(), backend: CompressionBackend = .standard,
                cache: ScoreCache? = nil, exclude: [String: String] = [:]) {
        self.exclude = exclude
        self.technique = technique
        self.candidateCount = candidateCount
        self.ignore = ignore
        self.options = options
        self.backend = backend
        self.cache = cache
    }

    /// Builds the table for `graph` (the evaluator's current base graph). Reports progress
    /// as "layer k of n" with one count per table entry, and stops between evaluations when
    /// cancelled (entries measured so far are already in the cache).
    public func build(evaluator: ScoreEvaluator, job: JobContext = .silent,
                      warn: (String) -> Void = { _ in }) throws -> ScoreTable {
        let clock = ContinuousClock()
        let start = clock.now
        let graph = evaluator.graph
        let candidates = try ScoreTable.candidates(candidateCount)
        var options = self.options
        if options.activations == nil, let data = options.reconstructionInputs {
            options.activations = try ActivationSource(graph: graph, inputs: data, batchSize: options.batchSize)
        }
        let eligibility = try backend.eligibility(graph, technique).map { entry in
            guard entry.eligible, let reason = exclude[entry.layer] else { return entry }
            var excluded = entry
            excluded.eligible = false
            excluded.reason = reason
            return excluded
        }
        let selected = eligibility.filter { $0.eligible && !ignore.contains($0.layer) }
        let cost = try evaluator.cost(of: graph)

        // Cache keys (hashing the weights and both data sets: skipped when there is no cache).
        let modelKey = cache == nil ? "" : Fingerprint.of(graph)
        let setKey = cache == nil ? "" : Fingerprint.of(inputs: evaluator.inputs, labels: evaluator.labels)
        let reconstructionKey = cache == nil ? "" : options.reconstructionInputs.map { Fingerprint.of(inputs: $0, labels: nil) } ?? "none"
        var stored = cache.map { $0.load(model: modelKey, evaluationSet: setKey, warn: warn) } ?? [:]

        var statistics = ScoreTableStatistics()
        let evaluationsBefore = evaluator.evaluations
        let sharedBefore = evaluator.sharedEvaluations
        let secondsBefore = evaluator.evaluationSeconds
        let runBefore = evaluator.macsRun, wholeBefore = evaluator.macsWhole
        let total = selected.count * candidates.count
        var rows: [LayerScores] = []
        let phasesBefore = evaluator.phaseSeconds
        var phases: [String: Double] = [:]
        // Ratios of each layer still to measure (the rest come from the cache).
        var cachedEntries: [[ScoreEntry]] = []
        var pendingRatios: [[Double]] = []
        for layer in selected {
            var entries: [ScoreEntry] = []
            var pending: [Double] = []
            for ratio in candidates.reversed() {
                let key = ScoreCache.key(technique: technique, layer: layer.layer, ratio: ratio,
                                         rankMultiplicity: options.rankMultiplicity, reconstruction: reconstructionKey)
                if let entry = stored[key] {
                    entries.append(entry)
                    statistics.cacheHits += 1
                } else {
                    pending.append(ratio)
                }
            }
            cachedEntries.append(entries)
            pendingRatios.append(pending)
        }
        // With concurrent variant scoring (nothing else uses the engine, see
        // `ScoreEvaluator.parallelVariants`), the next layer's sweep is compressed on its own
        // thread while this layer's variants are scored, so the cores do not wait for
        // compression (whitening, SVD, reconstruction) between layers. While both run, every
        // thread runs its loops and BLAS single-threaded: the engine's thread count is 1 from
        // the start of the background sweep to the end of the scoring, and back to what it was
        // while the sweep runs alone (the first layer's, or one the scoring has to wait for).
        let pipelined = evaluator.parallelVariants > 1 && backend.sweep != nil
        let threadsBefore = EngineThreads.count
        defer { EngineThreads.set(threadsBefore) }
        let sweepLayer: @Sendable (Int) throws -> LayerSweep = { [backend, technique, options, selected, pendingRatios] index in
            guard let sweep = backend.sweep else { throw WhittleError(.invalidArgument, "score table", "no sweep backend") }
            do {
                return try sweep(graph, selected[index].layer, technique, pendingRatios[index], options, job)
            } catch let error as WhittleError {
                throw error.within("scoring \(selected[index].layer)")
            }
        }
        func sweepAhead(_ index: Int) -> BackgroundValue<(LayerSweep, Double)> {
            BackgroundValue(name: "whittle sweep \(selected[index].layer)") {
                let start = ContinuousClock.now
                let result = try sweepLayer(index)
                return (result, seconds(ContinuousClock.now - start))
            }
        }
        var upcoming: (index: Int, value: BackgroundValue<(LayerSweep, Double)>)?
        // An error (or cancellation) leaves no sweep running behind the caller.
        defer { _ = try? upcoming?.value.wait() }
        for (layerIndex, layer) in selected.enumerated() {
            var entries = cachedEntries[layerIndex]
            let pending = pendingRatios[layerIndex]
            let first = layerIndex * candidates.count + (candidates.count - pending.count)
            func report(_ done: Int, _ ratio: Double) {
                job.report(phase: "scoring \(technique.rawValue)", completed: first + done, total: total,
                           detail: "layer \(layerIndex + 1) of \(selected.count): \(layer.layer) at \(String(format: "%.2f", ratio))")
            }
            if backend.sweep != nil, !pending.isEmpty {
                try job.checkCancellation("score table")
                report(0, pending[0])
                let compressStart = clock.now
                let result: LayerSweep
                if let ahead = upcoming, ahead.index == layerIndex {
                    upcoming = nil
                    let (value, compressing) = try ahead.value.wait()
                    result = value
                    phases["compression (overlapped), wall", default: 0] += compressing
                    phases["compression wait", default: 0] += seconds(clock.now - compressStart)
                } else {
                    result = try sweepLayer(layerIndex)
                }
                for (phase, value) in result.seconds { phases[phase, default: 0] += value }
                let costStart = clock.now
                var costs: [ModelCost] = []
                for variant in result.variants {
                    do { costs.append(try evaluator.cost(of: variant.graph)) }
                    catch let error as WhittleError {
                        throw WhittleError(.invalidModel, "layer '\(layer.layer)'",
                                           "compression at ratio \(variant.ratio) produced an invalid graph: \(error.description)")
                    }
                }
                phases["cost of compressed graphs", default: 0] += seconds(clock.now - costStart)
                statistics.compressionSeconds += seconds(clock.now - compressStart)
                if pipelined, let next = selected.indices.dropFirst(layerIndex + 1).first(where: { !pendingRatios[$0].isEmpty }) {
                    EngineThreads.set(1)
                    upcoming = (next, sweepAhead(next))
                }
                let scores = try evaluator.evaluate(result, shouldStop: { job.isCancelled }) { index in
                    if index + 1 < result.variants.count { report(index + 1, result.variants[index + 1].ratio) }
                }
                // The sweep, if still running, has the cores to itself until the next scoring.
                if pipelined { EngineThreads.set(threadsBefore) }
                for (index, variant) in result.variants.enumerated() {
                    let entry = ScoreEntry(ratio: variant.ratio, scores: scores[index], macs: costs[index].totalMACs,
                                           parameters: costs[index].totalParameters, kept: variant.kept, original: variant.original)
                    entries.append(entry)
                    stored[ScoreCache.key(technique: technique, layer: layer.layer, ratio: variant.ratio,
                                          rankMultiplicity: options.rankMultiplicity, reconstruction: reconstructionKey)] = entry
                }
            } else {
                for (index, ratio) in pending.enumerated() {
                    try job.checkCancellation("score table")
                    report(index, ratio)
                    let compressStart = clock.now
                    let outcome: CompressionOutcome
                    do {
                        outcome = try backend.compress(graph, [LayerChoice(layer: layer.layer, technique: technique, ratio: ratio)],
                                                       options, .silent)
                    } catch let error as WhittleError {
                        throw error.within("scoring \(layer.layer) at ratio \(ratio)")
                    }
                    let compressed = try evaluator.cost(of: outcome.graph)
                    statistics.compressionSeconds += seconds(clock.now - compressStart)
                    let scores = try evaluator.evaluate(outcome.graph, shouldStop: { job.isCancelled })
                    let detail = outcome.layers.first { $0.layer == layer.layer }
                    let entry = ScoreEntry(ratio: ratio, scores: scores, macs: compressed.totalMACs,
                                           parameters: compressed.totalParameters,
                                           kept: detail?.kept ?? 0, original: detail?.original ?? 0)
                    entries.append(entry)
                    stored[ScoreCache.key(technique: technique, layer: layer.layer, ratio: ratio,
                                          rankMultiplicity: options.rankMultiplicity, reconstruction: reconstructionKey)] = entry
                }
            }
            entries.sort { $0.ratio < $1.ratio }
            rows.append(LayerScores(layer: layer.layer, technique: technique, macs: layer.macs,
                                    parameters: layer.parameters, entries: entries))
            if !pending.isEmpty, let cache {
                cache.save(stored, model: modelKey, evaluationSet: setKey, warn: warn)
            }
        }
        for (phase, value) in evaluator.phaseSeconds {
            let delta = value - (phasesBefore[phase] ?? 0)
            if delta > 0 { phases["evaluate: " + phase, default: 0] += delta }
        }
        statistics.phaseSeconds = phases.isEmpty ? nil : phases
        job.report(phase: "scoring \(technique.rawValue)", completed: total, total: total, detail: nil)
        statistics.evaluations = evaluator.evaluations - evaluationsBefore
        statistics.sharedEvaluations = evaluator.sharedEvaluations - sharedBefore
        statistics.evaluationSeconds = evaluator.evaluationSeconds - secondsBefore
        let whole = evaluator.macsWhole - wholeBefore
        statistics.macShareRun = whole > 0 ? (evaluator.macsRun - runBefore) / whole : 1
        statistics.seconds = seconds(clock.now - start)
        return ScoreTable(technique: technique, candidates: candidates, baseline: evaluator.baseline,
                          modelMACs: cost.totalMACs, modelParameters: cost.totalParameters, layers: rows,
                          ineligible: eligibility.filter { !$0.eligible }, statistics: statistics)
    }
}

/// A value computed on a thread of its own, collected later with `wait()`.
final class BackgroundValue<Value: Sendable>: @unchecked Sendable {
    typealias Body = @Sendable () throws -> Value
    private let finished = DispatchSemaphore(value: 0)
    // Written once by the thread before it signals `finished`, read only after a wait.
    private var outcome: Result<Value, any Error>?

    init(name: String, stackSize: Int = 16 << 20, _ body: @escaping Body) {
        let thread = Thread { [self] in
            outcome = Result { try body() }
            finished.signal()
        }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    /// Blocks until the value is computed; rethrows the body's error. May be called again.
    func wait() throws -> Value {
        finished.wait()
        finished.signal()
        guard let outcome else { throw WhittleError(.invalidArgument, "background computation", "finished without a result") }
        return try outcome.get()
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

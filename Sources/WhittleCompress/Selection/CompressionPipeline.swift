import Foundation
import WhittleEngine

/// What to compress and how far.
public struct CompressionRequest: Sendable {
    public enum Goal: Sendable {
        /// Reach this compressed/original cost ratio with greedy selection.
        case target(Double)
        /// Compress exactly these layers to these ratios (single-technique schemes).
        case manual([String: Double])
    }

    /// Techniques applied one after the other, e.g. [spatialSVD, channelPruning].
    public var scheme: [CompressionTechnique]
    public var goal: Goal
    public var cost: CostMetric = .macs
    public var metric: CompressionScore = .agreement
    public var candidateCount = 10
    public var ignore: Set<String> = []
    public var monotonicFit = false
    /// Also try the noise-allocation selection and keep whichever scores best on the
    /// combined model.
    public var refine = true
    public var options = CompressionOptions()

    public init(scheme: [CompressionTechnique], goal: Goal) {
        self.scheme = scheme
        self.goal = goal
    }
}

/// One selection tried on the combined model of a stage.
public struct SelectionTrial: Sendable, Codable, Equatable {
    public var selection: GreedySelection
    /// Cost ratio of the compressed graph (relative to the stage's input graph), measured.
    public var measuredRatio: Double
    public var scores: ScoreValues
}

/// One technique's pass.
public struct StageReport: Sendable, Codable, Equatable {
    public var technique: CompressionTechnique
    /// Cost ratio this stage aimed at, relative to its input graph (nil: manual ratios).
    public var target: Double?
    public var choices: [LayerChoice]
    public var outcomes: [LayerOutcome]
    public var trials: [SelectionTrial]
    /// The method of the kept trial ("manual" for manual ratios).
    public var method: String
    public var scoreTable: ScoreTable?
}

/// Before/after summary of a compression run.
public struct CompressionReport: Sendable, Codable, Equatable {
    public var metric: CompressionScore
    public var cost: CostMetric
    public var baseline: ScoreValues
    public var compressed: ScoreValues
    public var baselineMACs: Int
    public var compressedMACs: Int
    public var baselineParameters: Int
    public var compressedParameters: Int
    public var stages: [StageReport]
    public var seconds: Double

    public var macRatio: Double { baselineMACs > 0 ? Double(compressedMACs) / Double(baselineMACs) : 1 }
    public var parameterRatio: Double {
        baselineParameters > 0 ? Double(compressedParameters) / Double(baselineParameters) : 1
    }
}

/// Runs a `CompressionRequest`: per technique, build the score table, select ratios, compress
/// and verify; stages chain (spatial SVD first, then channel pruning on its result).
public enum CompressionPipeline {
    /// Checks layer names and ratios against the graph before any work is done.
    public static func validate(_ request: CompressionRequest, graph: Graph, backend: CompressionBackend = .standard) throws {
        guard !request.scheme.isEmpty else {
            throw WhittleError(.invalidArgument, "--scheme", "names no technique")
        }
        let names = Set(graph.nodes.map(\.name))
        for name in request.ignore.sorted() where !names.contains(name) {
            throw WhittleError(.invalidArgument, "--ignore \(name)", "no layer of this name in the model")
        }
        guard case .manual(let ratios) = request.goal else {
            if case .target(let target) = request.goal, !(target > 0 && target <= 1) {
                throw WhittleError(.invalidArgument, "--target-\(request.cost == .macs ? "macs" : "parameters")",
                                   "must be in (0, 1], got \(target)")
            }
            return
        }
        guard request.scheme.count == 1, let technique = request.scheme.first else {
            throw WhittleError(.invalidArgument, "--ratios", "manual ratios need a single technique in --scheme")
        }
        let eligibility = try backend.eligibility(graph, technique)
        for (layer, ratio) in ratios.sorted(by: { $0.key < $1.key }) {
            guard names.contains(layer) else {
                let known = eligibility.filter(\.eligible).prefix(8).map(\.layer).joined(separator: ", ")
                throw WhittleError(.invalidArgument, "--ratios \(layer)", "no layer of this name in the model (eligible layers include: \(known))")
            }
            guard ratio > 0, ratio <= 1 else {
                throw WhittleError(.invalidArgument, "--ratios \(layer)", "ratio must be in (0, 1], got \(ratio)")
            }
            guard let entry = eligibility.first(where: { $0.layer == layer }) else {
                throw WhittleError(.invalidArgument, "--ratios \(layer)", "is not a Conv/Gemm layer \(technique.rawValue) can compress")
            }
            guard entry.eligible else {
                throw WhittleError(.invalidArgument, "--ratios \(layer)",
                                   "\(entry.opType) layer is not eligible for \(technique.rawValue): \(entry.reason ?? "not supported")")
            }
            if request.ignore.contains(layer) {
                throw WhittleError(.invalidArgument, "--ratios \(layer)", "is also listed in --ignore")
            }
        }
    }

    /// Compresses `evaluator.graph` as requested. The evaluator is rebased onto each stage's
    /// result; scores are against its float reference throughout.
    public static func run(_ request: CompressionRequest, evaluator: ScoreEvaluator, backend: CompressionBackend = .standard,
                           cache: ScoreCache? = nil, job: JobContext = .silent,
                           warn: (String) -> Void = { _ in }) throws -> (graph: Graph, report: CompressionReport) {
        let clock = ContinuousClock()
        let start = clock.now
        let original = evaluator.graph
        try validate(request, graph: original, backend: backend)
        let baselineCost = try evaluator.cost(of: original)
        let baseline = evaluator.baseline
        let baseCost = request.cost == .macs ? baselineCost.totalMACs : baselineCost.totalParameters
        var graph = original
        var stages: [StageReport] = []

        switch request.goal {
        case .manual(let ratios):
            let technique = request.scheme[0]
            let choices = ratios.sorted { $0.key < $1.key }.map { LayerChoice(layer: $0.key, technique: technique, ratio: $0.value) }
            job.report(phase: "compressing", completed: 0, total: 1, detail: "\(choices.count) layers")
            var options = request.options
            if let data = options.reconstructionInputs, options.activations == nil {
                options.activations = try ActivationSource(graph: graph, inputs: data, batchSize: options.batchSize)
            }
            let outcome = try backend.compress(graph, choices, options, job)
            graph = outcome.graph
            stages.append(StageReport(technique: technique, target: nil, choices: choices, outcomes: outcome.layers,
                                      trials: [], method: "manual", scoreTable: nil))
        case .target(let target):
            let excluded = excludedLayers(request.scheme, graph: original)
            for (stageIndex, technique) in request.scheme.enumerated() {
                if stageIndex > 0 { try evaluator.rebase(onto: graph) }
                let current = try evaluator.cost(of: graph)
                let currentCost = request.cost == .macs ? current.totalMACs : current.totalParameters
                // Split the cost still to be saved over the remaining stages in proportion to
                // the cost each technique can reach (its eligible layers) on the current graph.
                let overall = target * Double(baseCost) / Double(max(1, currentCost))
                var reachable: [Double] = []
                for later in request.scheme[stageIndex...] {
                    let eligible = try backend.eligibility(graph, later).filter {
                        $0.eligible && !request.ignore.contains($0.layer) && excluded[later]?[$0.layer] == nil
                    }
                    reachable.append(Double(eligible.reduce(0) { $0 + (request.cost == .macs ? $1.macs : $1.parameters) }))
                }
                let share = reachable.reduce(0, +) > 0 ? reachable[0] / reachable.reduce(0, +) : 0
                let isLast = stageIndex == request.scheme.count - 1
                let stageTarget = isLast ? min(1, overall) : min(1, 1 - (1 - overall) * share)
                // Reconstruction runs only what each compression changed, on this stage's activations.
                var stageRequest = request
                if let data = request.options.reconstructionInputs {
                    stageRequest.options.activations = try ActivationSource(graph: graph, inputs: data,
                                                                             batchSize: request.options.batchSize)
                }
                let builder = ScoreTableBuilder(technique: technique, candidateCount: request.candidateCount,
                                                ignore: request.ignore, options: stageRequest.options, backend: backend,
                                                cache: cache, exclude: excluded[technique] ?? [:])
                let table = try builder.build(evaluator: evaluator, job: job, warn: warn)
                // An earlier stage only takes compressions that are mild on their own (output
                // SQNR at least `earlyStageSQNRFloor`); the last stage takes what is left. Without
                // this an earlier stage whose few layers cannot reach its share (e.g. a 3-channel
                // stem and a 10-way classifier under spatial SVD) crushes them to the smallest ratio.
                var selectionTable = table
                var stageAim = stageTarget
                if !isLast {
                    selectionTable.layers = table.layers.compactMap { row in
                        var row = row
                        row.entries = row.entries.filter { $0.scores.sqnr >= earlyStageSQNRFloor }
                        return row.entries.isEmpty ? nil : row
                    }
                    stageAim = max(stageTarget, GreedySelector.smallestReachable(selectionTable, cost: request.cost))
                }
                // Within the overall tolerance of the original model's cost.
                let tolerance = GreedySelector.ratioTolerance * 0.999 * Double(baseCost) / Double(max(1, currentCost))
                var stage = try selectAndCompress(table: selectionTable, target: stageAim, tolerance: tolerance,
                                                  meetFromBelow: isLast, request: stageRequest,
                                                  evaluator: evaluator, backend: backend, job: job)
                stage.scoreTable = table
                graph = stage.graph
                stages.append(stage.report)
            }
        }
        job.report(phase: "evaluating", completed: 0, total: 1, detail: "compressed model")
        let finalCost = try evaluator.cost(of: graph)
        if case .target(let target) = request.goal {
            let reached = Double(request.cost == .macs ? finalCost.totalMACs : finalCost.totalParameters) / Double(max(1, baseCost))
            if reached > target + GreedySelector.ratioTolerance {
                throw WhittleError(.invalidArgument, "target \(request.cost.rawValue) ratio \(target)", String(
                    format: "unreachable with %@: the most compressed selection keeps %.3f of the model's %@ (every eligible layer at its smallest candidate ratio; ineligible and ignored layers stay whole)",
                    request.scheme.map(\.rawValue).joined(separator: ","), reached, request.cost.rawValue))
            }
        }
        let scores = try evaluator.evaluateWhole(graph)
        let report = CompressionReport(
            metric: request.metric, cost: request.cost, baseline: baseline, compressed: scores,
            baselineMACs: baselineCost.totalMACs, compressedMACs: finalCost.totalMACs,
            baselineParameters: baselineCost.totalParameters, compressedParameters: finalCost.totalParameters,
            stages: stages, seconds: seconds(clock.now - start))
        return (graph, report)
    }

    /// Output SQNR (dB) a layer's compression must keep on its own to be used by a stage that
    /// is not the last of the scheme.
    public static let earlyStageSQNRFloor = 20.0

    struct StageResult {
        var graph: Graph
        var report: StageReport
        var scoreTable: ScoreTable? {
            get { report.scoreTable }
            set { report.scoreTable = newValue }
        }
    }

    /// Layers a technique leaves to another one of the same scheme: with channel pruning in
    /// the scheme, spatial and weight SVD take only k x k convolutions (and Gemms) and the
    /// 1 x 1 convolutions are pruned instead (an SVD of a 1 x 1 conv is a low-rank bottleneck
    /// that channel pruning then cannot winnow through).
    public static func excludedLayers(_ scheme: [CompressionTechnique], graph: Graph) -> [CompressionTechnique: [String: String]] {
        guard scheme.contains(.channelPruning) else { return [:] }
        var pointwise: [String: String] = [:]
        for node in graph.nodes where node.opType == "Conv" {
            guard let name = node.input(1), let weight = graph.initializers[name], weight.rank == 4,
                  weight.shape[2] == 1, weight.shape[3] == 1 else { continue }
            pointwise[node.name] = "1x1 convolution: left to channel pruning in this scheme"
        }
        var result: [CompressionTechnique: [String: String]] = [:]
        for technique in scheme where technique != .channelPruning { result[technique] = pointwise }
        return result
    }

    /// Tries AIMET's threshold selection (and, with `refine`, noise allocation), lands each
    /// selection's measured cost within `tolerance` of the target (`TargetLanding`: ratios of
    /// single layers moved off the candidate grid), compresses the model with it (layer by
    /// layer in execution order, each refitted on the already compressed prefix), scores the
    /// combined models and keeps the best.
    static func selectAndCompress(table: ScoreTable, target: Double, tolerance: Double = GreedySelector.ratioTolerance,
                                  meetFromBelow: Bool = true, request: CompressionRequest, evaluator: ScoreEvaluator,
                                  backend: CompressionBackend, job: JobContext) throws -> StageResult {
        let graph = evaluator.graph
        let base = request.cost == .macs ? table.modelMACs : table.modelParameters
        if target >= 1 - tolerance || table.layers.isEmpty {
            return StageResult(graph: graph, report: StageReport(
                technique: table.technique, target: target, choices: [], outcomes: [], trials: [], method: "none", scoreTable: nil))
        }
        typealias Selector = (Double) throws -> GreedySelection
        var selectors: [Selector] = [{ try GreedySelector.select(table, metric: request.metric, target: $0, cost: request.cost,
                                                                  monotonicFit: request.monotonicFit) }]
        if request.refine {
            selectors.append({ try GreedySelector.allocateNoise(table, target: $0, cost: request.cost,
                                                                monotonicFit: request.monotonicFit) })
        }
        var costOptions = request.options
        costOptions.reconstructionInputs = nil
        func choices(_ ratios: [String: Double]) -> [LayerChoice] {
            ratios.sorted { $0.key < $1.key }.map { LayerChoice(layer: $0.key, technique: table.technique, ratio: $0.value) }
        }
        func ratio(of candidate: Graph) throws -> Double {
            let cost = try evaluator.cost(of: candidate)
            return Double(request.cost == .macs ? cost.totalMACs : cost.totalParameters) / Double(max(1, base))
        }
        // Cost probes compress without data (costs do not depend on the refitted weights);
        // while one layer is searched, the others are compressed once and reused.
        var reused: (key: String, graph: Graph)?
        func measure(_ ratios: [String: Double], _ layer: String?) throws -> Double {
            guard let layer else { return try ratio(of: backend.compress(graph, choices(ratios), costOptions, .silent).graph) }
            var others = ratios
            let mine = others.removeValue(forKey: layer)
            let key = layer + "|" + others.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let prefix: Graph
            if let reused, reused.key == key { prefix = reused.graph } else {
                prefix = try backend.compress(graph, choices(others), costOptions, .silent).graph
                reused = (key, prefix)
            }
            guard let mine else { return try ratio(of: prefix) }
            return try ratio(of: backend.compress(prefix, [LayerChoice(layer: layer, technique: table.technique, ratio: mine)],
                                                  costOptions, .silent).graph)
        }
        let metric = table.layers.first?.entries.first?.scores.value(request.metric) != nil ? request.metric : .sqnr
        let rows = table.layers.filter { !$0.entries.isEmpty }.map { row in
            (layer: row.layer, candidates: row.entries.map(\.ratio),
             scores: row.entries.map { $0.scores.value(metric) ?? $0.scores.sqnr })
        }
        var best: (graph: Graph, trial: SelectionTrial, choices: [LayerChoice], outcomes: [LayerOutcome])?
        var trials: [SelectionTrial] = []
        for (index, selector) in selectors.enumerated() {
            try job.checkCancellation("selection")
            job.report(phase: "combining", completed: index, total: selectors.count, detail: "selection \(index + 1) of \(selectors.count)")
            var selection = try selector(max(GreedySelector.smallestReachable(table, cost: request.cost), target))
            let landing = try TargetLanding.land(ratios: selection.ratios, target: target, tolerance: tolerance, layers: rows,
                                                 smallestRatio: table.candidates.first ?? 0.1, meetFromBelow: meetFromBelow,
                                                 measure: measure)
            selection.ratios = landing.ratios
            let chosen = choices(landing.ratios)
            let outcome = try backend.compress(graph, chosen, request.options, .silent)
            let measured = try ratio(of: outcome.graph)
            let scores = try evaluator.evaluate(outcome.graph, shouldStop: { job.isCancelled })
            let trial = SelectionTrial(selection: selection, measuredRatio: measured, scores: scores)
            trials.append(trial)
            let score = scores.value(request.metric) ?? scores.sqnr
            // Meeting the target (at or below it) comes first, landing within the tolerance
            // next (coarse layers may only reach it from below), then the score.
            let meets = meetFromBelow ? measured <= target + tolerance : abs(measured - target) <= tolerance
            let lands = abs(measured - target) <= tolerance
            if let current = best {
                let currentRatio = current.trial.measuredRatio
                let currentMeets = meetFromBelow ? currentRatio <= target + tolerance : abs(currentRatio - target) <= tolerance
                let currentLands = abs(currentRatio - target) <= tolerance
                let currentScore = current.trial.scores.value(request.metric) ?? current.trial.scores.sqnr
                let better = meets != currentMeets ? meets
                    : (!meets ? abs(measured - target) < abs(currentRatio - target)
                        : (lands != currentLands ? lands : score > currentScore))
                if !better { continue }
            }
            best = (outcome.graph, trial, chosen, outcome.layers)
        }
        guard let best else {
            throw WhittleError(.invalidArgument, "target", "no selection could be made")
        }
        return StageResult(graph: best.graph, report: StageReport(
            technique: table.technique, target: target, choices: best.choices, outcomes: best.outcomes, trials: trials,
            method: best.trial.selection.method, scoreTable: nil))
    }
}

/// Parsing of the command-line forms of schemes and manual ratios.
public enum CompressionArguments {
    /// "spatial-svd,channel-pruning" -> [.spatialSVD, .channelPruning].
    public static func scheme(_ text: String) throws -> [CompressionTechnique] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty else { throw WhittleError(.invalidArgument, "--scheme", "names no technique") }
        var result: [CompressionTechnique] = []
        for name in names {
            guard let technique = CompressionTechnique(rawValue: name) else {
                let known = CompressionTechnique.allCases.map(\.rawValue).joined(separator: ", ")
                throw WhittleError(.invalidArgument, "--scheme", "unknown technique '\(name)' (known: \(known))")
            }
            guard !result.contains(technique) else {
                throw WhittleError(.invalidArgument, "--scheme", "'\(name)' is listed twice")
            }
            result.append(technique)
        }
        return result
    }

    /// "conv1=0.5,conv2=0.7" -> ["conv1": 0.5, "conv2": 0.7]; every ratio in (0, 1].
    public static func ratios(_ text: String) throws -> [String: Double] {
        var result: [String: Double] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else {
                throw WhittleError(.invalidArgument, "--ratios", "expected LAYER=RATIO, got '\(item)'")
            }
            guard let ratio = Double(parts[1]), ratio.isFinite else {
                throw WhittleError(.invalidArgument, "--ratios \(parts[0])", "'\(parts[1])' is not a number")
            }
            guard ratio > 0, ratio <= 1 else {
                throw WhittleError(.invalidArgument, "--ratios \(parts[0])", "ratio must be in (0, 1], got \(parts[1])")
            }
            guard result[parts[0]] == nil else {
                throw WhittleError(.invalidArgument, "--ratios \(parts[0])", "given twice")
            }
            result[parts[0]] = ratio
        }
        guard !result.isEmpty else { throw WhittleError(.invalidArgument, "--ratios", "names no layer") }
        return result
    }
}

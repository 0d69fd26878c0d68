import WhittleEngine

/// Settings of the AutoQuant-style search (`AutoQuantization.search`).
public struct AutoQuantOptions: Sendable, Equatable {
    /// Largest acceptable drop of the score below the float model's, as a fraction (0.01 = 1 point).
    public var allowedDrop: Double
    /// Activation schemes tried first, in this order (AIMET's AutoQuant tries tf, tf-enhanced
    /// and two percentiles).
    public var schemes: [CalibrationScheme]
    /// Try AdaRound as the last stage.
    public var tryAdaRound: Bool
    /// AdaRound iterations per layer (nil: AIMET's default).
    public var adaRoundIterations: Int?

    public init(allowedDrop: Double = 0.01, schemes: [CalibrationScheme] = [.minMax, .sqnr, .percentile(99.9), .percentile(99.99)],
                tryAdaRound: Bool = true, adaRoundIterations: Int? = nil) {
        self.allowedDrop = allowedDrop
        self.schemes = schemes
        self.tryAdaRound = tryAdaRound
        self.adaRoundIterations = adaRoundIterations
    }

    func validate() throws {
        guard allowedDrop.isFinite, allowedDrop >= 0, allowedDrop <= 1 else {
            throw WhittleError(.invalidArgument, "allowed drop", "must be a fraction in [0, 1], got \(allowedDrop)")
        }
        guard !schemes.isEmpty else { throw WhittleError(.invalidArgument, "AutoQuant", "needs at least one calibration scheme") }
        if let adaRoundIterations, adaRoundIterations < 1 {
            throw WhittleError(.invalidArgument, "AdaRound iterations", "must be at least 1, got \(adaRoundIterations)")
        }
    }
}

/// One recipe the search evaluated.
public struct AutoQuantCandidate: Sendable, Equatable, Codable {
    /// Stage and what it changed, e.g. "scheme sqnr", "+ CLE".
    public var name: String
    public var recipe: QuantizationRecipe
    /// Top-1 accuracy (with labels) or top-1 agreement with the float model, in [0, 1].
    public var score: Double
    /// Float score minus `score`.
    public var drop: Double
    /// Seconds spent quantizing and evaluating this candidate.
    public var seconds: Double
    /// Within the allowed drop.
    public var meetsTarget: Bool
}

/// What the search found: the chosen candidate's model and every candidate tried.
public struct AutoQuantResult: Sendable {
    /// "accuracy" (labels given) or "agreement" (top-1 agreement with the float model).
    public var metric: String
    public var floatScore: Double
    public var allowedDrop: Double
    public var candidates: [AutoQuantCandidate]
    /// Index into `candidates` of the chosen one.
    public var chosenIndex: Int
    public var model: QuantizedModel
    public var report: QuantizationReport
    public var comparison: OutputComparison
    public var seconds: Double

    public var chosen: AutoQuantCandidate { candidates[chosenIndex] }
    /// The chosen candidate is within the allowed drop.
    public var metTarget: Bool { chosen.meetsTarget }
}

/// An AutoQuant-style search (AIMET `AutoQuant.optimize`, shared reference aimet.md §1.12):
/// techniques are tried in order of cost, each evaluated on the evaluation set, and the search
/// stops at the first stage whose best candidate is within the allowed drop of the float
/// score; otherwise the best candidate seen is returned.
///
/// Stages (BatchNorm folding is part of every candidate, as in `PostTrainingQuantization`):
/// 1. calibration scheme: every scheme of `options.schemes` (weights min-max), techniques off;
///    the best scheme is kept for the later stages;
/// 2. cross-layer equalization (kept if it scores higher);
/// 3. empirical bias correction on top of the best so far (kept if it scores higher), then
///    instead of it activation-aware bias correction (`BiasCorrection.simulated`) on the graph
///    with constant scale/shift ops folded into the convolutions (the pair that brought the
///    PP-OCRv4 recognizer to float exact match at W8A8);
/// 4. AdaRound on top of the best without bias correction (AIMET's guidance: do not combine
///    the two).
///
/// The score is top-1 accuracy when labels are given, else top-1 agreement with the float
/// model (whose score is then 1). Ties keep the earlier, cheaper candidate.
public enum AutoQuantization {
    public static func search(graph: Graph, base: QuantizationRecipe, calibration: [String: Tensor],
                              evaluation: [String: Tensor], labels: [Int]?, options: AutoQuantOptions = AutoQuantOptions(),
                              job: JobContext = .silent) throws -> AutoQuantResult {
        try options.validate()
        try base.validate()
        let clock = ContinuousClock()
        let start = clock.now
        var plain = base
        plain.crossLayerEqualization = false
        plain.biasCorrection = false
        plain.activationBiasCorrection = false
        plain.foldScaleShift = false
        plain.adaRound = false
        plain.sequentialMSE = false
        plain.adaRoundIterations = options.adaRoundIterations

        job.report(phase: "AutoQuant: float model", completed: 0, total: 1)
        let reference = try OutputComparison.firstOutput(graph, inputs: evaluation, batchSize: base.batchSize, job: job, phase: "float pass")
        let referenceComparison = OutputComparison.compare(reference: reference, test: reference, labels: labels)
        let metric = referenceComparison.floatAccuracy != nil ? "accuracy" : "agreement"
        let floatScore = referenceComparison.floatAccuracy ?? 1

        struct Evaluated {
            var candidate: AutoQuantCandidate
            var model: QuantizedModel
            var report: QuantizationReport
            var comparison: OutputComparison
        }
        var tried: [Evaluated] = []
        let planned = options.schemes.count + 3 + (options.tryAdaRound ? 1 : 0)
        func evaluate(_ name: String, _ recipe: QuantizationRecipe) throws -> Evaluated {
            try job.checkCancellation("AutoQuant")
            job.report(phase: "AutoQuant", completed: tried.count, total: planned, detail: name)
            let candidateStart = clock.now
            let (model, report) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: calibration, job: job)
            let output = try OutputComparison.firstOutput(try model.simulationGraph(), inputs: evaluation, batchSize: recipe.batchSize,
                                                          job: job, phase: "simulated pass")
            if job.isCancelled { throw WhittleError(.cancelled, "AutoQuant", "cancelled") }
            guard output.shape == reference.shape else {
                throw WhittleError(.invalidModel, "AutoQuant", "the simulated model's output shape \(output.shape) differs from the float model's \(reference.shape)")
            }
            let comparison = OutputComparison.compare(reference: reference, test: output, labels: labels)
            let score = comparison.quantizedAccuracy ?? comparison.agreement
            let drop = floatScore - score
            let evaluated = Evaluated(
                candidate: AutoQuantCandidate(name: name, recipe: recipe, score: score, drop: drop,
                                              seconds: AdaRound.seconds(clock.now - candidateStart),
                                              meetsTarget: drop <= options.allowedDrop + 1e-12),
                model: model, report: report, comparison: comparison)
            tried.append(evaluated)
            return evaluated
        }
        func best(_ list: [Evaluated]) -> Evaluated? {
            list.reduce(nil) { current, next in
                guard let current else { return next }
                return next.candidate.score > current.candidate.score ? next : current
            }
        }
        func finish(_ chosen: Evaluated) -> AutoQuantResult {
            let index = tried.firstIndex { $0.candidate == chosen.candidate } ?? 0
            job.report(phase: "AutoQuant", completed: planned, total: planned, detail: chosen.candidate.name)
            return AutoQuantResult(metric: metric, floatScore: floatScore, allowedDrop: options.allowedDrop,
                                   candidates: tried.map(\.candidate), chosenIndex: index, model: chosen.model,
                                   report: chosen.report, comparison: chosen.comparison, seconds: AdaRound.seconds(clock.now - start))
        }

        // 1. Calibration schemes.
        var stage: [Evaluated] = []
        for scheme in options.schemes {
            var recipe = plain
            recipe.scheme = scheme
            stage.append(try evaluate("scheme \(scheme)", recipe))
        }
        guard var current = best(stage) else { throw WhittleError(.invalidArgument, "AutoQuant", "no candidate was evaluated") }
        if current.candidate.meetsTarget { return finish(current) }

        // 2. Cross-layer equalization.
        var recipe = current.candidate.recipe
        recipe.crossLayerEqualization = true
        let equalized = try evaluate("+ CLE", recipe)
        if equalized.candidate.score > current.candidate.score { current = equalized }
        if current.candidate.meetsTarget { return finish(current) }

        // 3. Bias correction.
        let beforeCorrection = current
        recipe = current.candidate.recipe
        recipe.biasCorrection = true
        let corrected = try evaluate("+ bias correction", recipe)
        if corrected.candidate.score > current.candidate.score { current = corrected }
        if current.candidate.meetsTarget { return finish(current) }
        recipe = beforeCorrection.candidate.recipe
        recipe.activationBiasCorrection = true
        recipe.foldScaleShift = true
        let simulatedCorrection = try evaluate("+ fold scale/shift, activation bias correction", recipe)
        if simulatedCorrection.candidate.score > current.candidate.score { current = simulatedCorrection }
        if current.candidate.meetsTarget { return finish(current) }

        // 4. AdaRound (without bias correction).
        if options.tryAdaRound {
            recipe = beforeCorrection.candidate.recipe
            recipe.adaRound = true
            let rounded = try evaluate("+ AdaRound", recipe)
            if rounded.candidate.score > current.candidate.score { current = rounded }
        }
        return finish(current)
    }
}

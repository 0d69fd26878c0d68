import Foundation
import WhittleCompress
import WhittleIO
import WhittleQuant
import WhittleSession
import WhittleTUI

/// The workbench services with every library wired in: greedy auto-select (WhittleCompress),
/// quantization simulation and per-layer SQNR (WhittleQuant), and the encodings, QDQ ONNX,
/// compressed ONNX and HTML report exports. Each closure runs on a job thread and reports
/// progress and checks cancellation through its `JobContext`.
public enum WorkbenchWiring {
    /// Samples the greedy search scores every candidate on (the CLI's `--eval-samples` default).
    public static let defaultSearchSamples = 64
    /// Samples the per-layer SQNR pass runs.
    public static let sqnrSamples = 64
    /// Calibration samples the report histograms.
    public static let reportSamples = 64

    public static func services(graph: Graph, model: ModelSummary, evaluation: Dataset?, calibration: Dataset?,
                         searchSamples: Int = defaultSearchSamples, cache: ScoreCache? = nil) -> WorkbenchServices {
        var services = WorkbenchServices.live(graph: graph, model: model, evaluation: evaluation, calibration: calibration)
        let floatEvaluate = services.evaluate
        let reference = evaluation ?? calibration

        if let reference {
            let subset = reference.subset(first: min(max(1, searchSamples), reference.sampleCount))
            services.autoSelect = { target, settings, context, scores in
                try autoSelect(graph: graph, target: target, settings: settings, data: subset, cache: cache, context: context,
                               scores: scores)
            }
            services.evaluate = { settings, context in
                if settings.compression.ratios.isEmpty, let floatEvaluate { return try floatEvaluate(settings, context) }
                let compressed = try compress(graph, settings: settings, data: subset, context: context)
                let comparison = try OutputComparison.measure(float: graph, quantized: compressed, inputs: reference.inputs,
                                                              labels: reference.labels, job: context)
                let cost = try CostModel.analyze(GraphAnalysis(graph: compressed, batchSize: 1))
                return SessionMetrics(accuracy: comparison.quantizedAccuracy, agreement: comparison.agreement,
                                      sqnr: comparison.sqnrDB, macs: cost.totalMACs, parameters: cost.totalParameters,
                                      sizeBytes: cost.totalParameters * 4)
            }
        }
        if let calibration = calibration ?? evaluation, let reference {
            services.quantize = { settings, context in
                try quantizeMetrics(graph: graph, model: model, settings: settings, calibration: calibration,
                                    evaluation: reference, context: context)
            }
            services.exporters[.encodings] = { path, session, context in
                let (quantized, recipe) = try quantize(graph: graph, model: model, settings: session.settings,
                                                       calibration: calibration, evaluation: reference, context: context)
                let version = session.exports.encodingsVersion
                context.report(phase: "writing", completed: 0, total: 1, detail: path)
                try quantized.encodingsFile(scheme: recipe.scheme).write(to: URL(fileURLWithPath: path), version: version)
                context.report(phase: "writing", completed: 1, total: 1, detail: path)
            }
            services.exporters[.qdq] = { path, session, context in
                let (quantized, _) = try quantize(graph: graph, model: model, settings: session.settings,
                                                  calibration: calibration, evaluation: reference, context: context)
                context.report(phase: "writing", completed: 0, total: 1, detail: path)
                try ONNXExporter.write(try QDQExport.graph(quantized), to: URL(fileURLWithPath: path))
                context.report(phase: "writing", completed: 1, total: 1, detail: path)
            }
        }
        let compressionData = (evaluation ?? calibration).map { $0.subset(first: min(max(1, searchSamples), $0.sampleCount)) }
        services.exporters[.onnx] = { path, session, context in
            let output = try compress(graph, settings: session.settings, data: compressionData, context: context)
            context.report(phase: "writing", completed: 0, total: 1, detail: path)
            try ONNXExporter.write(output, to: URL(fileURLWithPath: path))
            context.report(phase: "writing", completed: 1, total: 1, detail: path)
        }
        services.exporters[.report] = { path, session, context in
            let input = try ReportData.collect(session: session, graph: graph, data: calibration ?? evaluation,
                                               samples: reportSamples, title: nil, context: context)
            try context.checkCancellation("report")
            context.report(phase: "writing", completed: 0, total: 1, detail: path)
            try ReportWriter.write(input, to: URL(fileURLWithPath: path))
            context.report(phase: "writing", completed: 1, total: 1, detail: path)
        }
        return services
    }

    // MARK: Compression

    /// Rank or channels each built-in technique keeps of each layer it can compress, for the
    /// detail panel (layers a technique cannot compress are absent).
    public static func structures(of graph: Graph) -> [WhittleSession.CompressionTechnique: [String: LayerStructure]] {
        var result: [WhittleSession.CompressionTechnique: [String: LayerStructure]] = [:]
        for method in WhittleCompress.CompressionTechnique.allCases {
            guard let scales = try? Compressor.keptScales(of: graph, technique: method) else { continue }
            result[WhittleSession.CompressionTechnique(rawValue: method.rawValue)] = scales.mapValues {
                LayerStructure(channels: $0.channels, full: $0.full, perRatio: $0.perRatio)
            }
        }
        return result
    }

    /// Why each technique cannot compress a layer (the compression library's reasons, e.g. a
    /// depthwise Conv for SVD), for the layers it lists as ineligible.
    public static func ineligibility(of graph: Graph) -> [WhittleSession.CompressionTechnique: [String: String]] {
        var result: [WhittleSession.CompressionTechnique: [String: String]] = [:]
        for method in WhittleCompress.CompressionTechnique.allCases {
            guard let table = try? Compressor.eligibility(of: graph, technique: method) else { continue }
            var reasons: [String: String] = [:]
            for entry in table where !entry.eligible { reasons[entry.layer] = entry.reason ?? "not supported" }
            result[WhittleSession.CompressionTechnique(rawValue: method.rawValue)] = reasons
        }
        return result
    }

    /// The compression library's technique for a session technique name.
    public static func technique(_ technique: WhittleSession.CompressionTechnique) throws -> WhittleCompress.CompressionTechnique {
        guard let converted = WhittleCompress.CompressionTechnique(rawValue: technique.rawValue) else {
            throw WhittleError(.invalidArgument, "technique '\(technique.rawValue)'",
                               "unknown to the compression library (known: \(WhittleCompress.CompressionTechnique.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return converted
    }

    /// `graph` with the settings' per-layer ratios applied (the graph itself when none are below 1).
    public static func compress(_ graph: Graph, settings: SessionSettings, data: Dataset?, context: JobContext) throws -> Graph {
        let ratios = settings.compression.ratios.filter { $0.value < 1 }
        guard !ratios.isEmpty else { return graph }
        var choices: [LayerChoice] = []
        for (layer, ratio) in ratios.sorted(by: { $0.key < $1.key }) {
            choices.append(LayerChoice(layer: layer, technique: try technique(settings.compression.technique(for: layer)), ratio: ratio))
        }
        let pruning = choices.contains { $0.technique == .channelPruning }
        let options = CompressionOptions(reconstructionInputs: pruning ? data?.inputs : nil)
        return try Compressor.compress(graph, choices: choices, options: options, job: context).graph
    }

    /// Greedy per-layer ratio selection (AIMET's threshold search plus noise allocation, the
    /// better combined model kept) for the settings' default technique.
    ///
    /// The score table is measured one layer at a time first (`ScoreTableBuilder` with every
    /// other layer ignored gives exactly that layer's row of the full table), and each row goes
    /// to `scores` as soon as it is measured, with progress "layer k of n". The rows land in
    /// the score cache (a temporary one when there is none), so the pipeline's own table
    /// build that follows reads them back instead of measuring them again.
    public static func autoSelect(graph: Graph, target: Double, settings: SessionSettings, data: Dataset, cache: ScoreCache?,
                           context: JobContext, scores: WorkbenchServices.ScoreSink = { _ in }) throws -> WhittleTUI.CompressionOutcome {
        guard target > 0, target <= 1 else {
            throw WhittleError(.invalidArgument, "auto-select target", "must be in (0, 1], got \(target)")
        }
        let request = try compressionRequest(target: target, settings: settings, data: data)
        guard let method = request.scheme.first else { throw WhittleError(.invalidArgument, "auto-select", "no technique") }
        context.report(phase: "reference pass", completed: 0, total: 1, detail: "\(data.sampleCount) samples")
        let evaluator = try ScoreEvaluator(graph: graph, inputs: data.inputs, labels: data.labels)
        try context.checkCancellation("auto-select")

        let scratch = cache == nil ? FileManager.default.temporaryDirectory.appendingPathComponent("whittle-scores-\(UUID().uuidString)") : nil
        defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
        let tableCache = cache ?? scratch.map { ScoreCache(directory: $0) }
        let metric = request.metric
        let baseline = evaluator.baseline.value(metric)
        let eligible = try Compressor.eligibility(of: graph, technique: method).filter(\.eligible).map(\.layer)
        let layers = eligible.filter { !request.ignore.contains($0) }
        let perLayer = max(1, request.candidateCount - 1)
        let phase = "scoring \(method.rawValue)"
        for (index, layer) in layers.enumerated() {
            try context.checkCancellation("auto-select")
            let prefix = "layer \(index + 1) of \(layers.count): \(layer)"
            let layerContext = JobContext(cancellation: context.cancellation) { event in
                // The builder's detail ends with " at RATIO" while it measures a candidate.
                let ratio = event.detail.flatMap { text in text.range(of: " at ", options: .backwards).map { String(text[$0.lowerBound...]) } }
                context.report(phase: phase, completed: index * perLayer + min(perLayer, event.completed),
                               total: layers.count * perLayer, detail: prefix + (ratio ?? ""))
            }
            let builder = ScoreTableBuilder(technique: method, candidateCount: request.candidateCount,
                                            ignore: Set(eligible).subtracting([layer]), options: request.options, cache: tableCache)
            let table = try builder.build(evaluator: evaluator, job: layerContext)
            for row in table.layers {
                scores(scoreUpdate(row, metric: metric, baseline: baseline, layersDone: index + 1, layersTotal: layers.count))
            }
        }
        let (_, report) = try CompressionPipeline.run(request, evaluator: evaluator, cache: tableCache, job: context)
        return outcome(report, metric: metric)
    }

    /// The compression library's request for a workbench auto-select: the settings' default
    /// technique, MAC target, candidate count and ignored layers; accuracy when the data has
    /// labels, else agreement with the float model.
    public static func compressionRequest(target: Double, settings: SessionSettings, data: Dataset) throws -> CompressionRequest {
        let method = try technique(settings.compression.defaultTechnique)
        var request = CompressionRequest(scheme: [method], goal: .target(target))
        request.cost = .macs
        request.candidateCount = max(2, min(100, settings.compression.candidates.count + 1))
        request.ignore = Set(settings.compression.ignoredLayers)
        request.metric = data.labels != nil ? .accuracy : .agreement
        request.options = CompressionOptions(reconstructionInputs: method == .channelPruning ? data.inputs : nil)
        return request
    }

    /// One measured score-table row as a workbench score update.
    public static func scoreUpdate(_ row: LayerScores, metric: CompressionScore, baseline: Double?, layersDone: Int, layersTotal: Int) -> ScoreUpdate {
        ScoreUpdate(metric: metric.rawValue, baseline: baseline, technique: WhittleSession.CompressionTechnique(rawValue: row.technique.rawValue),
                    layer: row.layer, points: row.entries.map { ScorePoint(ratio: $0.ratio, score: $0.scores.value(metric) ?? $0.scores.sqnr) },
                    layersDone: layersDone, layersTotal: layersTotal)
    }

    /// The workbench outcome of a compression report: chosen ratios, exact totals and every
    /// stage's score table.
    public static func outcome(_ report: CompressionReport, metric: CompressionScore) -> WhittleTUI.CompressionOutcome {
        var ratios: [String: Double] = [:]
        for stage in report.stages {
            for choice in stage.choices { ratios[choice.layer] = choice.ratio }
        }
        var tables = ScoreTables(metric: metric.rawValue, baseline: report.baseline.value(metric))
        for stage in report.stages {
            guard let table = stage.scoreTable else { continue }
            for layer in table.layers {
                for entry in layer.entries {
                    tables.record(technique: WhittleSession.CompressionTechnique(rawValue: table.technique.rawValue), layer: layer.layer,
                                  ratio: entry.ratio, score: entry.scores.value(metric) ?? entry.scores.sqnr)
                }
            }
        }
        let metrics = SessionMetrics(accuracy: report.compressed.accuracy, agreement: report.compressed.agreement,
                                     sqnr: report.compressed.sqnr, macs: report.compressedMACs,
                                     parameters: report.compressedParameters, sizeBytes: report.compressedParameters * 4)
        return WhittleTUI.CompressionOutcome(ratios: ratios, metrics: metrics, scores: tables.isEmpty ? nil : tables)
    }

    // MARK: Quantization

    /// The pipeline recipe for the settings: the session's recipe with its per-layer bit
    /// widths added as tensor overrides (a weight override targets the layer's weight tensor,
    /// an activation override its output tensor). With `compressed`, the graph the recipe will
    /// run on after the settings' ratios were applied, a weight override follows the layer into
    /// it: to both factors of an SVD split (`NAME_svd_a`, `NAME_svd_b`, new weight tensors) or
    /// to a pruned weight stored under a new name.
    public static func recipe(_ settings: SessionSettings, model: ModelSummary, compressed: Graph? = nil) throws -> QuantizationRecipe {
        var recipe = settings.recipe
        for (layer, override) in settings.bitWidthOverrides.sorted(by: { $0.key < $1.key }) {
            guard let summary = model.layers.first(where: { $0.name == layer }) else { continue }
            if let bits = override.weightBits {
                for weight in weightTensors(of: summary, in: compressed) { recipe.bitOverrides[weight] = bits }
            }
            if let bits = override.activationBits, let output = summary.outputs.first { recipe.bitOverrides[output] = bits }
        }
        try recipe.validate()
        return recipe
    }

    /// The weight tensors a workbench layer has in `graph` (its own weight without a graph).
    static func weightTensors(of layer: LayerSummary, in graph: Graph?) -> [String] {
        guard let graph, let original = layer.weightName else { return layer.weightName.map { [$0] } ?? [] }
        let nodes = graph.nodes.filter { $0.name == layer.name || $0.name.hasPrefix(layer.name + "_svd_") }
        let weights = nodes.compactMap { node in node.input(1).flatMap { graph.initializers[$0] != nil ? $0 : nil } }
        return weights.isEmpty ? [original] : weights
    }

    /// Runs post-training quantization of the (compressed) model with the settings' recipe.
    /// With `auto` on, the AutoQuant search (calibration schemes, CLE, bias correction,
    /// AdaRound; `AutoQuantization.search`) runs against `evaluation` (the calibration data
    /// when there is none) starting from the recipe, and its chosen recipe is returned.
    public static func quantize(graph: Graph, model: ModelSummary, settings: SessionSettings, calibration: Dataset,
                                evaluation: Dataset? = nil, context: JobContext) throws -> (QuantizedModel, QuantizationRecipe) {
        _ = try recipe(settings, model: model)  // bad bit widths fail before any compression work
        let source = try compress(graph, settings: settings, data: calibration, context: context)
        let recipe = try recipe(settings, model: model, compressed: source)
        if settings.autoQuant {
            let scored = evaluation ?? calibration
            let result = try AutoQuantization.search(graph: source, base: recipe, calibration: calibration.inputs,
                                                     evaluation: scored.inputs, labels: scored.labels, job: context)
            return (result.model, result.chosen.recipe)
        }
        let (quantized, _) = try PostTrainingQuantization.run(graph: source, recipe: recipe, calibration: calibration.inputs, job: context)
        return (quantized, recipe)
    }

    /// One summary of a layer's encodings (a split layer has one per factor): per-tensor when
    /// there is a single per-tensor grid, else per-channel with the range of all scales.
    static func summary(of encodings: [TensorEncoding]) -> EncodingSummary? {
        var grids: [QuantizationEncoding] = []
        var perChannel = false
        for encoding in encodings {
            switch encoding {
            case .perTensor(let grid): grids.append(grid)
            case .perChannel(_, let channelGrids):
                grids += channelGrids
                perChannel = true
            case .float(let bitWidth):
                return EncodingSummary(bitWidth: bitWidth, symmetric: false, scale: 0, isFloat: true)
            }
        }
        guard let first = grids.first else { return nil }
        let scales = grids.map { Double($0.scale) }
        if !perChannel && grids.count == 1 {
            return EncodingSummary(bitWidth: first.bitWidth, symmetric: first.isSymmetric, scale: scales[0], offset: first.offset)
        }
        return EncodingSummary(bitWidth: first.bitWidth, symmetric: grids.allSatisfy(\.isSymmetric), channels: grids.count,
                               scale: scales.min() ?? 0, maximumScale: scales.max() ?? 0)
    }

    /// Quantized accuracy, agreement and output SQNR against the float model, and the SQNR of
    /// every quantized activation attributed to the workbench layer that produces it (or, for
    /// activations fused after a layer, to that layer).
    public static func quantizeMetrics(graph: Graph, model: ModelSummary, settings: SessionSettings, calibration: Dataset,
                                evaluation: Dataset, context: JobContext) throws -> SessionMetrics {
        let (quantized, recipe) = try quantize(graph: graph, model: model, settings: settings, calibration: calibration,
                                               evaluation: evaluation, context: context)
        let comparison = try OutputComparison.measure(float: graph, quantized: try quantized.simulationGraph(),
                                                      inputs: evaluation.inputs, labels: evaluation.labels,
                                                      batchSize: recipe.batchSize, job: context)
        let probe = evaluation.subset(first: min(sqnrSamples, evaluation.sampleCount))
        let perTensor = try QuantizationAnalysis.perTensorSQNR(quantized, inputs: probe.inputs, job: context)
        var byProducer: [String: Double] = [:]
        var byTensor: [String: Double] = [:]
        for entry in perTensor where entry.sqnrDB.isFinite {
            byProducer[entry.producer] = entry.sqnrDB
            byTensor[entry.tensor] = entry.sqnrDB
        }
        // A layer whose own output is not quantized (a Conv followed by a fused Relu) takes
        // the SQNR of the first quantized tensor downstream of it through single consumers.
        // The walk follows the workbench's (original) graph: folded BatchNorms and split
        // layers keep their output names in the quantized graph.
        var consumers: [String: [Node]] = [:]
        for node in graph.nodes {
            for input in node.inputs where !input.isEmpty { consumers[input, default: []].append(node) }
        }
        // The walk for the output encoding stops at the next layer with weights: its output
        // grid is that layer's, not this one's.
        let weighted = Set(model.layers.filter { $0.weightName != nil }.map(\.name))
        func activationEncoding(after layer: LayerSummary) -> TensorEncoding? {
            var tensor = layer.outputs.first
            var hops = 0
            while let current = tensor, hops < 4 {
                if quantized.placement.quantizers[current]?.enabled == true, let encoding = quantized.encodings[current] { return encoding }
                guard let next = consumers[current], next.count == 1, !weighted.contains(next[0].name) else { break }
                tensor = next[0].outputs.first
                hops += 1
            }
            return nil
        }
        var layers: [String: LayerMetrics] = [:]
        for layer in model.layers {
            var sqnr = byProducer[layer.name]
            var tensor = layer.outputs.first
            var hops = 0
            while sqnr == nil, let current = tensor, hops < 4 {
                if let value = byTensor[current] { sqnr = value; break }
                guard let next = consumers[current], next.count == 1 else { break }
                tensor = next[0].outputs.first
                hops += 1
            }
            let weights = weightTensors(of: layer, in: quantized.graph).compactMap { name -> TensorEncoding? in
                quantized.placement.quantizers[name]?.enabled == true ? quantized.encodings[name] : nil
            }
            let entry = LayerMetrics(sqnr: sqnr, weightEncoding: summary(of: weights),
                                     activationEncoding: activationEncoding(after: layer).flatMap { summary(of: [$0]) })
            if entry != LayerMetrics() { layers[layer.name] = entry }
        }
        let cost = try CostModel.analyze(GraphAnalysis(graph: quantized.graph, batchSize: 1))
        let weightBits = Double(recipe.weightBits)
        return SessionMetrics(accuracy: comparison.quantizedAccuracy, agreement: comparison.agreement, sqnr: comparison.sqnrDB,
                              macs: cost.totalMACs, parameters: cost.totalParameters,
                              sizeBytes: Int((Double(cost.totalParameters) * weightBits / 8).rounded(.up)), layers: layers)
    }
}

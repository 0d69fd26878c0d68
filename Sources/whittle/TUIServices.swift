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
enum WorkbenchWiring {
    /// Samples the greedy search scores every candidate on (the CLI's `--eval-samples` default).
    static let defaultSearchSamples = 64
    /// Samples the per-layer SQNR pass runs.
    static let sqnrSamples = 64
    /// Calibration samples the report histograms.
    static let reportSamples = 64

    static func services(graph: Graph, model: ModelSummary, evaluation: Dataset?, calibration: Dataset?,
                         searchSamples: Int = defaultSearchSamples, cache: ScoreCache? = nil) -> WorkbenchServices {
        var services = WorkbenchServices.live(graph: graph, model: model, evaluation: evaluation, calibration: calibration)
        let floatEvaluate = services.evaluate
        let reference = evaluation ?? calibration

        if let reference {
            let subset = reference.subset(first: min(max(1, searchSamples), reference.sampleCount))
            services.autoSelect = { target, settings, context in
                try autoSelect(graph: graph, target: target, settings: settings, data: subset, cache: cache, context: context)
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
                                                       calibration: calibration, context: context)
                let version = try encodingsVersion(session)
                context.report(phase: "writing", completed: 0, total: 1, detail: path)
                try quantized.encodingsFile(scheme: recipe.scheme).write(to: URL(fileURLWithPath: path), version: version)
                context.report(phase: "writing", completed: 1, total: 1, detail: path)
            }
            services.exporters[.qdq] = { path, session, context in
                let (quantized, _) = try quantize(graph: graph, model: model, settings: session.settings,
                                                  calibration: calibration, context: context)
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

    /// The compression library's technique for a session technique name.
    static func technique(_ technique: WhittleSession.CompressionTechnique) throws -> WhittleCompress.CompressionTechnique {
        guard let converted = WhittleCompress.CompressionTechnique(rawValue: technique.rawValue) else {
            throw WhittleError(.invalidArgument, "technique '\(technique.rawValue)'",
                               "unknown to the compression library (known: \(WhittleCompress.CompressionTechnique.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return converted
    }

    /// `graph` with the settings' per-layer ratios applied (the graph itself when none are below 1).
    static func compress(_ graph: Graph, settings: SessionSettings, data: Dataset?, context: JobContext) throws -> Graph {
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
    static func autoSelect(graph: Graph, target: Double, settings: SessionSettings, data: Dataset, cache: ScoreCache?,
                           context: JobContext) throws -> WhittleTUI.CompressionOutcome {
        guard target > 0, target <= 1 else {
            throw WhittleError(.invalidArgument, "auto-select target", "must be in (0, 1], got \(target)")
        }
        let method = try technique(settings.compression.defaultTechnique)
        var request = CompressionRequest(scheme: [method], goal: .target(target))
        request.cost = .macs
        request.candidateCount = max(2, min(100, settings.compression.candidates.count + 1))
        request.ignore = Set(settings.compression.ignoredLayers)
        request.metric = data.labels != nil ? .accuracy : .agreement
        request.options = CompressionOptions(reconstructionInputs: method == .channelPruning ? data.inputs : nil)
        context.report(phase: "reference pass", completed: 0, total: 1, detail: "\(data.sampleCount) samples")
        let evaluator = try ScoreEvaluator(graph: graph, inputs: data.inputs, labels: data.labels)
        try context.checkCancellation("auto-select")
        let (_, report) = try CompressionPipeline.run(request, evaluator: evaluator, cache: cache, job: context)
        var ratios: [String: Double] = [:]
        for stage in report.stages {
            for choice in stage.choices { ratios[choice.layer] = choice.ratio }
        }
        let metric = request.metric
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

    /// The pipeline recipe for a session's persisted recipe and per-layer bit widths. A weight
    /// override targets the layer's weight tensor, an activation override its output tensor.
    static func recipe(_ settings: SessionSettings, model: ModelSummary) throws -> WhittleQuant.QuantizationRecipe {
        let session = settings.recipe
        guard !session.automatic else {
            throw WhittleError(.invalidArgument, "recipe auto", "the automatic technique search is not available in the workbench; turn 'auto' off")
        }
        let scheme: CalibrationScheme
        switch session.scheme {
        case .minMax: scheme = .minMax
        case .sqnr: scheme = .sqnr
        case .mse: scheme = .mse
        case .percentile(let p): scheme = .percentile(p)
        }
        var overrides: [String: Int] = [:]
        for (layer, override) in settings.bitWidthOverrides {
            guard let summary = model.layers.first(where: { $0.name == layer }) else { continue }
            if let bits = override.weightBits, let weight = summary.weightName { overrides[weight] = bits }
            if let bits = override.activationBits, let output = summary.outputs.first { overrides[output] = bits }
        }
        let recipe = WhittleQuant.QuantizationRecipe(
            config: session.configPreset, scheme: scheme, weightBits: session.weightBits, activationBits: session.activationBits,
            perChannel: session.perChannel ? true : nil, crossLayerEqualization: session.crossLayerEqualization,
            biasCorrection: session.biasCorrection, adaRound: session.adaRound, sequentialMSE: session.sequentialMSE,
            bitOverrides: overrides)
        try recipe.validate()
        return recipe
    }

    /// Runs post-training quantization of the (compressed) model with the settings' recipe.
    static func quantize(graph: Graph, model: ModelSummary, settings: SessionSettings, calibration: Dataset,
                         context: JobContext) throws -> (QuantizedModel, WhittleQuant.QuantizationRecipe) {
        let recipe = try recipe(settings, model: model)
        let source = try compress(graph, settings: settings, data: calibration, context: context)
        let (quantized, _) = try PostTrainingQuantization.run(graph: source, recipe: recipe, calibration: calibration.inputs, job: context)
        return (quantized, recipe)
    }

    /// Quantized accuracy, agreement and output SQNR against the float model, and the SQNR of
    /// every quantized activation attributed to the workbench layer that produces it (or, for
    /// activations fused after a layer, to that layer).
    static func quantizeMetrics(graph: Graph, model: ModelSummary, settings: SessionSettings, calibration: Dataset,
                                evaluation: Dataset, context: JobContext) throws -> SessionMetrics {
        let (quantized, recipe) = try quantize(graph: graph, model: model, settings: settings, calibration: calibration, context: context)
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
            if let sqnr { layers[layer.name] = LayerMetrics(sqnr: sqnr) }
        }
        let cost = try CostModel.analyze(GraphAnalysis(graph: quantized.graph, batchSize: 1))
        let weightBits = Double(recipe.weightBits)
        return SessionMetrics(accuracy: comparison.quantizedAccuracy, agreement: comparison.agreement, sqnr: comparison.sqnrDB,
                              macs: cost.totalMACs, parameters: cost.totalParameters,
                              sizeBytes: Int((Double(cost.totalParameters) * weightBits / 8).rounded(.up)), layers: layers)
    }

    /// The encodings format version: the profile's `ui.extra["encodings-version"]`
    /// (0.6.1, 1.0.0 or 2.0.0), AIMET 1.0.0 by default.
    static func encodingsVersion(_ session: Session) throws -> EncodingsVersion {
        let text = session.ui.extra["encodings-version"] ?? EncodingsVersion.v1_0_0.rawValue
        guard let version = EncodingsVersion(rawValue: text) else {
            throw WhittleError(.invalidArgument, "encodings version '\(text)'",
                               "unknown; use \(EncodingsVersion.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return version
    }
}

import ArgumentParser
import Foundation
import WhittleCompress
import WhittleEngine
import WhittleIO

/// Options shared by `compress` and `sensitivity`: data, scheme, candidates, metric, cache.
struct SelectionOptions: ParsableArguments {
    @Option(name: .long, help: "Evaluation data .npz: inputs under the model's input names (or `x`), optional labels `y`.")
    var data: String

    @Option(name: .long, help: "Techniques in order: spatial-svd, weight-svd, channel-pruning (e.g. spatial-svd,channel-pruning).")
    var scheme = "spatial-svd"

    @Option(name: .long, parsing: .singleValue, help: "A layer (node name) to leave uncompressed; repeat or separate with commas.")
    var ignore: [String] = []

    @Option(name: .long, help: "N: candidate ratios are 1/N ... (N-1)/N.")
    var candidates = 10

    @Option(name: .long, help: "Score: accuracy (needs labels), agreement (top-1 with the float model) or sqnr.")
    var metric: String?

    @Option(name: .long, help: "Evaluate on the first N samples of the data.")
    var evalSamples = 64

    @Option(name: .long, help: "Round ranks and kept channels up to a multiple of this.")
    var rankMultiplicity = 1

    @Option(name: .long, help: "Score cache directory (default: $XDG_CACHE_HOME/whittle/scores or ~/.cache/whittle/scores).")
    var cacheDir: String?

    @Flag(name: .long, help: "Neither read nor write the score cache.")
    var noCache = false

    @Option(name: .long, help: "Samples per evaluation and reconstruction batch.")
    var batch = 16

    @Option(name: .long, help: "Data .npz for least-squares reconstruction and SVD whitening (default: the evaluation data).")
    var calibrationData: String?

    @Option(name: .long, help: "Use the first N samples of the calibration data for reconstruction.")
    var calibrationSamples = 128

    func techniques() throws -> [CompressionTechnique] { try CompressionArguments.scheme(scheme) }

    var ignored: Set<String> {
        Set(ignore.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty })
    }

    func scoreMetric(labelled: Bool) throws -> CompressionScore {
        guard let metric else { return labelled ? .accuracy : .agreement }
        guard let parsed = CompressionScore(rawValue: metric) else {
            throw WhittleError(.invalidArgument, "--metric", "unknown metric '\(metric)' (known: accuracy, agreement, sqnr)")
        }
        if parsed == .accuracy, !labelled {
            throw WhittleError(.invalidArgument, "--metric accuracy", "needs integer labels `y` in \(data)")
        }
        return parsed
    }

    func validateNumbers() throws {
        guard candidates >= 2, candidates <= 100 else {
            throw WhittleError(.invalidArgument, "--candidates", "must be between 2 and 100, got \(candidates)")
        }
        guard evalSamples >= 1 else { throw WhittleError(.invalidArgument, "--eval-samples", "must be at least 1, got \(evalSamples)") }
        guard rankMultiplicity >= 1 else {
            throw WhittleError(.invalidArgument, "--rank-multiplicity", "must be at least 1, got \(rankMultiplicity)")
        }
        guard calibrationSamples >= 1 else {
            throw WhittleError(.invalidArgument, "--calibration-samples", "must be at least 1, got \(calibrationSamples)")
        }
        guard batch >= 1 else { throw WhittleError(.invalidArgument, "--batch", "must be at least 1, got \(batch)") }
    }

    var cache: ScoreCache? {
        if noCache { return nil }
        return ScoreCache(directory: cacheDir.map { URL(fileURLWithPath: $0) } ?? ScoreCache.defaultDirectory())
    }

    /// Loads the evaluation subset and runs the float reference pass.
    func evaluator(for graph: Graph) throws -> (ScoreEvaluator, Dataset) {
        var dataset = try loadDataset(data, for: graph)
        dataset = dataset.subset(first: min(evalSamples, dataset.sampleCount))
        let evaluator = try ScoreEvaluator(graph: graph, inputs: dataset.inputs, labels: dataset.labels, batchSize: batch)
        // Nothing else runs the engine in this process: score a row's ratios one per thread.
        evaluator.parallelVariants = EngineThreads.count
        return (evaluator, dataset)
    }

    /// Every technique gets the evaluation inputs: channel pruning refits the pruned conv,
    /// SVD truncates in the input-whitened space and refits the second factor. Without data,
    /// plain SVD ignores the input statistics and can wreck layers whose inputs have dead or
    /// offset channels (issue 4: EfficientNet-Lite0's `block0.project/Conv`).
    /// With `--calibration-data`, reconstruction fits on those samples and the scores are
    /// measured on held-out data; otherwise both use the evaluation subset.
    func compressionOptions(_ techniques: [CompressionTechnique], dataset: Dataset, graph: Graph) throws -> CompressionOptions {
        var inputs = dataset.inputs
        if let calibrationData {
            let calibration = try loadDataset(calibrationData, for: graph)
            inputs = calibration.subset(first: min(calibrationSamples, calibration.sampleCount)).inputs
        }
        var options = CompressionOptions(rankMultiplicity: rankMultiplicity, reconstructionInputs: inputs, batchSize: batch)
        options.parallelVariants = EngineThreads.count
        return options
    }
}

struct Sensitivity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score every compressible layer at every candidate ratio (the greedy selection's eval-score table).")

    @Argument(help: "The ONNX model file.")
    var model: String

    @OptionGroup var selection: SelectionOptions

    @Option(name: .long, help: "Also write the table(s) as JSON to this file.")
    var out: String?

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try reportingErrors {
            try engine.apply()
            try selection.validateNumbers()
            let techniques = try selection.techniques()
            let graph = try loadModel(model)
            let names = Set(graph.nodes.map(\.name))
            for name in selection.ignored.sorted() where !names.contains(name) {
                throw WhittleError(.invalidArgument, "--ignore \(name)", "no layer of this name in the model")
            }
            let (evaluator, dataset) = try selection.evaluator(for: graph)
            let metric = try selection.scoreMetric(labelled: dataset.labels != nil)
            let bar = ProgressBar()
            var tables: [ScoreTable] = []
            let options = try selection.compressionOptions(techniques, dataset: dataset, graph: graph)
            let excluded = CompressionPipeline.excludedLayers(techniques, graph: graph)
            for technique in techniques {
                let builder = ScoreTableBuilder(technique: technique, candidateCount: selection.candidates,
                                                ignore: selection.ignored, options: options, cache: selection.cache,
                                                exclude: excluded[technique] ?? [:])
                let table = try builder.build(evaluator: evaluator, job: bar.context(), warn: { bar.finish(); printError($0) })
                tables.append(table)
            }
            bar.finish()
            if let out {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write(try encoder.encode(tables), to: URL(fileURLWithPath: out))
            }
            if engine.json { try printJSON(tables); return }
            for table in tables { printTable(table, metric: metric) }
        }
    }
}

/// Prints a score table: one row per layer, one column per candidate ratio.
func printTable(_ table: ScoreTable, metric: CompressionScore) {
    let header = table.candidates.map { String(format: "%7.2f", $0) }.joined()
    let nameWidth = min(40, max(12, table.layers.map(\.layer.count).max() ?? 12))
    func pad(_ text: String) -> String { text.count >= nameWidth ? String(text.prefix(nameWidth)) : text + String(repeating: " ", count: nameWidth - text.count) }
    print("\(table.technique.rawValue): \(table.layers.count) layers x \(table.candidates.count) ratios, \(metric.rawValue) (baseline \(table.baseline.value(metric).map(metric.format) ?? "n/a"))")
    print(pad("layer") + "  MACs  " + header)
    for row in table.layers {
        let share = table.modelMACs > 0 ? Double(row.macs) / Double(table.modelMACs) * 100 : 0
        let cells = row.entries.map { entry -> String in
            guard let value = entry.scores.value(metric) else { return "    n/a" }
            return metric == .sqnr ? String(format: "%7.1f", value) : String(format: "%7.3f", value)
        }.joined()
        print(pad(row.layer) + String(format: " %5.1f%%", share) + cells)
    }
    for layer in table.ineligible { print("  skipped \(layer.layer) (\(layer.opType)): \(layer.reason ?? "not eligible")") }
    let stats = table.statistics
    let shared = (stats.sharedEvaluations ?? 0) > 0 ? String(format: " (%d shared with an identical variant)", stats.sharedEvaluations ?? 0) : ""
    print(String(format: "%d evaluations%@ (%.1f s, %.3f s each, %.0f%% of whole-model MACs run), %d from cache, %.1f s compressing, %.1f s total",
                 stats.evaluations, shared, stats.evaluationSeconds,
                 stats.evaluations > 0 ? stats.evaluationSeconds / Double(stats.evaluations) : 0,
                 stats.macShareRun * 100, stats.cacheHits, stats.compressionSeconds, stats.seconds))
    if let phases = stats.phaseSeconds, !phases.isEmpty {
        let parts = phases.sorted { $0.value > $1.value }.map { String(format: "%@ %.1f s", $0.key, $0.value) }
        print("  time by phase: " + parts.joined(separator: ", "))
    }
}

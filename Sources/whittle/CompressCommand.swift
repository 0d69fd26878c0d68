import ArgumentParser
import Foundation
import WhittleCompress
import WhittleIO

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cut a model's MACs with spatial SVD, weight SVD or channel pruning, choosing per-layer ratios greedily.",
        discussion: """
            With --target-macs, every eligible layer is scored alone at each candidate ratio (cached on disk), AIMET's \
            greedy threshold search and a noise-allocation selection pick per-layer ratios, and the one whose combined \
            model scores best is kept. With --ratios, exactly those layers are compressed.
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @OptionGroup var selection: SelectionOptions

    @Option(name: .long, help: "Fraction of the model's MACs to keep, in (0, 1].")
    var targetMacs: Double?

    @Option(name: .long, help: "Fraction of the model's parameters to keep, in (0, 1] (instead of --target-macs).")
    var targetParameters: Double?

    @Option(name: .long, help: "Manual per-layer ratios: LAYER=RATIO,LAYER=RATIO (fraction of each layer's MACs kept).")
    var ratios: String?

    @Flag(name: .long, help: "Smooth each layer's scores with a monotonic (isotonic) fit before selecting.")
    var monotonicFit = false

    @Flag(name: .long, help: "Use only AIMET's threshold selection (skip the noise-allocation alternative).")
    var aimetOnly = false

    @Option(name: .long, help: "Output directory: MODEL.onnx and MODEL.compression.json are written there.")
    var out: String

    @OptionGroup var engine: EngineOptions

    struct Summary: Codable {
        var model: String
        var scheme: [CompressionTechnique]
        var report: CompressionReport
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            try selection.validateNumbers()
            let techniques = try selection.techniques()
            let goal: CompressionRequest.Goal
            let cost: CostMetric
            switch (targetMacs, targetParameters, ratios) {
            case (let target?, nil, nil): goal = .target(target); cost = .macs
            case (nil, let target?, nil): goal = .target(target); cost = .parameters
            case (nil, nil, let text?): goal = .manual(try CompressionArguments.ratios(text)); cost = .macs
            case (nil, nil, nil):
                throw WhittleError(.invalidArgument, "compress", "give --target-macs (or --target-parameters) or --ratios")
            default:
                throw WhittleError(.invalidArgument, "compress", "give only one of --target-macs, --target-parameters and --ratios")
            }
            if case .target(let target) = goal, !(target > 0 && target <= 1) {
                throw WhittleError(.invalidArgument, cost == .macs ? "--target-macs" : "--target-parameters",
                                   "must be in (0, 1], got \(target)")
            }
            let outDirectory = URL(fileURLWithPath: out)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw WhittleError(.io, out, "exists and is not a directory")
            }
            let graph = try loadModel(model)
            var request = CompressionRequest(scheme: techniques, goal: goal)
            request.cost = cost
            request.candidateCount = selection.candidates
            request.ignore = selection.ignored
            request.monotonicFit = monotonicFit
            request.refine = !aimetOnly
            try CompressionPipeline.validate(request, graph: graph)
            let (evaluator, dataset) = try selection.evaluator(for: graph)
            request.metric = try selection.scoreMetric(labelled: dataset.labels != nil)
            request.options = try selection.compressionOptions(techniques, dataset: dataset, graph: graph)
            let bar = ProgressBar()
            let result = try CompressionPipeline.run(request, evaluator: evaluator, cache: selection.cache, job: bar.context(),
                                                     warn: { bar.finish(); printError($0) })
            bar.finish()

            try FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true)
            let stem = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
            let onnx = outDirectory.appendingPathComponent(stem + ".onnx")
            let json = outDirectory.appendingPathComponent(stem + ".compression.json")
            try ONNXExporter.write(result.graph, to: onnx)
            let summary = Summary(model: model, scheme: techniques, report: result.report)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try encoder.encode(summary), to: json)
            if engine.json { try printJSON(summary); return }
            var target: Double?
            if case .target(let value) = goal { target = value }
            printSummary(result.report, metric: request.metric, target: target, cost: cost, files: [onnx.path, json.path])
        }
    }

    func printSummary(_ report: CompressionReport, metric: CompressionScore, target: Double?, cost: CostMetric,
                      files: [String]) {
        for stage in report.stages {
            let target = stage.target.map { String(format: " (stage target %.3f)", $0) } ?? ""
            print("\(stage.technique.rawValue): \(stage.choices.count) layers compressed, \(stage.method)\(target)")
            for trial in stage.trials {
                let score = trial.scores.value(metric).map(metric.format) ?? "n/a"
                print(String(format: "  %@: predicted %.3f, measured %.3f, %@ %@", trial.selection.method,
                             trial.selection.predictedRatio, trial.measuredRatio, metric.rawValue, score))
            }
            for outcome in stage.outcomes {
                print(String(format: "  %@  ratio %.2f  kept %d/%d  MACs %@ -> %@", outcome.layer, outcome.requestedRatio,
                             outcome.kept, outcome.original, formatCount(outcome.macsBefore), formatCount(outcome.macsAfter)))
            }
        }
        func line(_ name: String, _ before: String, _ after: String, _ note: String = "") {
            print(name.padding(toLength: 12, withPad: " ", startingAt: 0) + before.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + after.padding(toLength: 14, withPad: " ", startingAt: 0) + note)
        }
        line("", "baseline", "compressed")
        line("MACs", formatCount(report.baselineMACs), formatCount(report.compressedMACs), String(format: "x%.3f", report.macRatio))
        line("parameters", formatCount(report.baselineParameters), formatCount(report.compressedParameters),
             String(format: "x%.3f", report.parameterRatio))
        for score in CompressionScore.allCases {
            guard let before = report.baseline.value(score), let after = report.compressed.value(score) else { continue }
            line(score.rawValue, score.format(before), score.format(after))
        }
        if let target {
            let achieved = cost == .macs ? report.macRatio : report.parameterRatio
            print(String(format: "target %@ ratio %.4f, achieved %.4f (off by %.4f)", cost.rawValue, target, achieved, achieved - target))
        }
        let tables = report.stages.compactMap(\.scoreTable)
        if !tables.isEmpty {
            let evaluations = tables.reduce(0) { $0 + $1.statistics.evaluations }
            let seconds = tables.reduce(0.0) { $0 + $1.statistics.seconds }
            let evaluationSeconds = tables.reduce(0.0) { $0 + $1.statistics.evaluationSeconds }
            let hits = tables.reduce(0) { $0 + $1.statistics.cacheHits }
            let each = evaluations > 0 ? evaluationSeconds / Double(evaluations) : 0
            print("score tables: \(String(format: "%.1f", seconds)) s, \(evaluations) evaluations (\(String(format: "%.3f", each)) s each), \(hits) from cache")
        }
        print(String(format: "%.1f s; wrote %@", report.seconds, files.joined(separator: ", ")))
    }
}

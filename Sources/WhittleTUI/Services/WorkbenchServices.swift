import Foundation
import WhittleEngine
import WhittleIO
import WhittleSession

/// The computations the workbench can start, as injected closures, so the workbench needs no
/// algorithm module and tests can use fakes. A nil closure means "not available in this
/// build": the key that would start it says so instead. Every closure runs on a job thread
/// and should report progress and check cancellation through its `JobContext`.
public struct WorkbenchServices: Sendable {
    /// Receives the scores of each layer as an auto-select measures them (on the job thread).
    public typealias ScoreSink = @Sendable (ScoreUpdate) -> Void
    public typealias AutoSelect = @Sendable (_ target: Double, _ settings: SessionSettings, _ context: JobContext,
                                             _ scores: ScoreSink) throws -> CompressionOutcome
    public typealias Evaluate = @Sendable (_ settings: SessionSettings, _ context: JobContext) throws -> SessionMetrics
    public typealias Export = @Sendable (_ path: String, _ session: Session, _ context: JobContext) throws -> Void
    public typealias ActivationStatistics = @Sendable (_ context: JobContext) throws -> [String: Histogram]

    /// Greedy per-layer ratio selection for a target MAC ratio.
    public var autoSelect: AutoSelect?
    /// Quantization simulation with the settings' recipe; per-layer SQNR in `layers`.
    public var quantize: Evaluate?
    /// Evaluation of the model under the settings.
    public var evaluate: Evaluate?
    /// Writers per export kind.
    public var exporters: [ExportKind: Export]
    /// Per-layer output histograms over the calibration data.
    public var activationStatistics: ActivationStatistics?

    public init(autoSelect: AutoSelect? = nil, quantize: Evaluate? = nil, evaluate: Evaluate? = nil,
                exporters: [ExportKind: Export] = [:], activationStatistics: ActivationStatistics? = nil) {
        self.autoSelect = autoSelect
        self.quantize = quantize
        self.evaluate = evaluate
        self.exporters = exporters
        self.activationStatistics = activationStatistics
    }

    /// Job kinds these services can run (copied into `WorkbenchState.capabilities`).
    public var capabilities: Set<JobKind> {
        var kinds = Set(exporters.keys.map(JobKind.export))
        if autoSelect != nil { kinds.insert(.autoSelect) }
        if quantize != nil { kinds.insert(.quantize) }
        if evaluate != nil { kinds.insert(.evaluate) }
        if activationStatistics != nil { kinds.insert(.activationStatistics) }
        return kinds
    }

    /// Runs one request (on the calling thread); an auto-select streams its scores to `scores`.
    public func run(_ request: JobRequest, context: JobContext, scores: ScoreSink = { _ in }) throws -> JobResult {
        func missing(_ what: String) -> WhittleError { WhittleError(.invalidArgument, what, "not available in this build") }
        switch request {
        case .autoSelect(let target, let settings):
            guard let autoSelect else { throw missing("auto-select") }
            return .compression(try autoSelect(target, settings, context, scores))
        case .quantize(let settings):
            guard let quantize else { throw missing("quantize") }
            return .quantization(try quantize(settings, context))
        case .evaluate(let settings):
            guard let evaluate else { throw missing("evaluate") }
            return .evaluation(try evaluate(settings, context))
        case .export(let kind, let path, let session):
            guard let exporter = exporters[kind] else { throw missing("export \(kind.rawValue)") }
            // A missing folder fails at once with its name, before any quantization runs.
            let folder = (path as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) || !isDirectory.boolValue {
                throw WhittleError(.io, folder, "no such folder to export into (f in panel 7 sets the export folder)")
            }
            try exporter(path, session, context)
            return .exported(kind, path: path)
        case .activationStatistics:
            guard let activationStatistics else { throw missing("activation statistics") }
            return .activationStatistics(try activationStatistics(context))
        }
    }
}

extension WorkbenchServices {
    /// The services that exist today, wired to the engine: float evaluation through the
    /// batch runner (top-1 with labels), activation histograms from calibration data, and
    /// ONNX export of the float model. Compression and quantization services are added by
    /// the caller as their libraries land (they are `nil` here).
    public static func live(graph: Graph, model: ModelSummary, evaluation: Dataset?, calibration: Dataset?,
                            batchSize: Int = 64) -> WorkbenchServices {
        var services = WorkbenchServices()
        if let evaluation {
            services.evaluate = { settings, context in
                guard settings.compression.ratios.isEmpty else {
                    throw WhittleError(.invalidArgument, "evaluate", "compressed settings need the compression library; reset ratios (0) to evaluate the float model")
                }
                return try evaluateFloat(graph: graph, model: model, data: evaluation, batchSize: batchSize, context: context)
            }
        }
        if let calibration {
            services.activationStatistics = { context in
                try activationHistograms(graph: graph, model: model, data: calibration, samples: 128, batchSize: batchSize, context: context)
            }
        }
        services.exporters[.onnx] = { path, session, context in
            guard session.compression.ratios.isEmpty else {
                throw WhittleError(.invalidArgument, "export onnx", "compressed settings need the compression library; the float model can be exported with all ratios at 1")
            }
            context.report(phase: "writing", completed: 0, total: 1, detail: path)
            try ONNXExporter.write(graph, to: URL(fileURLWithPath: path))
            context.report(phase: "writing", completed: 1, total: 1, detail: path)
        }
        return services
    }

    /// Float top-1 of `graph` on `data`, batch by batch with progress and cancellation.
    static func evaluateFloat(graph: Graph, model: ModelSummary, data: Dataset, batchSize: Int, context: JobContext) throws -> SessionMetrics {
        let runner = try BatchRunner(graph: graph, batchSize: batchSize)
        let total = try runner.validate(inputs: data.inputs)
        guard let output = graph.outputs.first?.name else { throw WhittleError(.invalidModel, "model", "has no outputs") }
        var correct = 0, counted = 0
        var classification = true
        try runner.forEachBatch(inputs: data.inputs, shouldStop: { context.isCancelled }) { batch, plan in
            if classification, let info = plan.info(output), info.rank == 2, let buffer = plan.outputBuffer(output), let labels = data.labels {
                let predictions = argmaxRows(buffer, rows: batch.count, width: info.shape[1])
                for (offset, prediction) in predictions.enumerated() where prediction == labels[batch.lowerBound + offset] { correct += 1 }
                counted += batch.count
            } else {
                classification = false
            }
            context.report(phase: "evaluating", completed: batch.upperBound, total: total)
        }
        try context.checkCancellation("evaluate")
        return SessionMetrics(accuracy: classification && counted > 0 ? Double(correct) / Double(counted) : nil,
                              macs: model.totalMACs, parameters: model.totalParameters, sizeBytes: model.totalParameters * 4)
    }

    /// Histograms of every layer's first output over the first `samples` samples: one pass
    /// for the ranges, one for the counts.
    static func activationHistograms(graph: Graph, model: ModelSummary, data: Dataset, samples: Int, batchSize: Int,
                                     context: JobContext, bins: Int = 48) throws -> [String: Histogram] {
        let outputs = model.layers.compactMap { layer in layer.outputs.first.map { (layer.name, $0) } }
        let runner = try BatchRunner(graph: graph, batchSize: batchSize,
                                     options: CompileOptions(preservedTensors: Set(outputs.map(\.1))))
        let total = min(samples, try runner.validate(inputs: data.inputs))
        var ranges: [String: (low: Float, high: Float)] = [:]
        try runner.forEachBatch(inputs: data.inputs, range: 0..<total, shouldStop: { context.isCancelled }) { batch, plan in
            for (_, tensor) in outputs {
                guard let buffer = plan.outputBuffer(tensor) else { continue }
                var range = ranges[tensor] ?? (Float.infinity, -Float.infinity)
                for v in buffer where v.isFinite {
                    range.low = min(range.low, v)
                    range.high = max(range.high, v)
                }
                ranges[tensor] = range
            }
            context.report(phase: "ranges", completed: batch.upperBound, total: total)
        }
        var counts: [String: [Int]] = [:]
        try runner.forEachBatch(inputs: data.inputs, range: 0..<total, shouldStop: { context.isCancelled }) { batch, plan in
            for (_, tensor) in outputs {
                guard let buffer = plan.outputBuffer(tensor), let range = ranges[tensor], range.low.isFinite else { continue }
                var bucket = counts[tensor] ?? [Int](repeating: 0, count: bins)
                let scale = Float(bins) / max(range.high - range.low, 1e-12)
                for v in buffer where v.isFinite { bucket[min(bins - 1, max(0, Int((v - range.low) * scale)))] += 1 }
                counts[tensor] = bucket
            }
            context.report(phase: "histograms", completed: batch.upperBound, total: total)
        }
        var result: [String: Histogram] = [:]
        for (layer, tensor) in outputs {
            guard let range = ranges[tensor], let bucket = counts[tensor] else { continue }
            result[layer] = Histogram(low: Double(range.low), high: Double(range.high), counts: bucket)
        }
        return result
    }
}

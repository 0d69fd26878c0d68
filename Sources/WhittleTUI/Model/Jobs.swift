import Foundation
import WhittleEngine
import WhittleSession

/// What can be exported from the workbench.
public enum ExportKind: String, Sendable, CaseIterable, Equatable {
    /// The (compressed) float model as ONNX.
    case onnx
    /// AIMET-style encodings JSON of the quantized model.
    case encodings
    /// ONNX with QuantizeLinear/DequantizeLinear pairs.
    case qdq
    /// A self-contained HTML report.
    case report

    /// How the Export panel names it.
    public var title: String {
        switch self {
        case .onnx: return "ONNX model"
        case .encodings: return "encodings"
        case .qdq: return "QDQ ONNX"
        case .report: return "HTML report"
        }
    }

    /// The file name for a model: `NAME-whittled.onnx`, `NAME-encodings.json`,
    /// `NAME-qdq.onnx` or `NAME-report.html`.
    public func fileName(model: String) -> String {
        let base = ((model as NSString).lastPathComponent as NSString).deletingPathExtension
        switch self {
        case .onnx: return base + "-whittled.onnx"
        case .encodings: return base + "-encodings.json"
        case .qdq: return base + "-qdq.onnx"
        case .report: return base + "-report.html"
        }
    }

    /// Where the export goes: `fileName` in `directory`, or next to the model when nil.
    public func defaultPath(model: String, directory: String? = nil) -> String {
        let folder = directory ?? (model as NSString).deletingLastPathComponent
        return folder.isEmpty ? fileName(model: model) : (folder as NSString).appendingPathComponent(fileName(model: model))
    }
}

/// Long computations the workbench asks for; the runtime runs each through an injected
/// `WorkbenchServices` closure on a job thread.
public enum JobRequest: Sendable, Equatable {
    /// Greedy per-layer ratio selection for a target MAC ratio.
    case autoSelect(target: Double, settings: SessionSettings)
    /// Quantization simulation with the recipe (and compression) of `settings`.
    case quantize(settings: SessionSettings)
    /// Evaluation of the model under `settings` (float when nothing is compressed or quantized).
    case evaluate(settings: SessionSettings)
    /// Writing an export file.
    case export(ExportKind, path: String, session: Session)
    /// Activation ranges from the calibration data (histograms per layer output).
    case activationStatistics

    public var kind: JobKind {
        switch self {
        case .autoSelect: return .autoSelect
        case .quantize: return .quantize
        case .evaluate: return .evaluate
        case .export(let kind, _, _): return .export(kind)
        case .activationStatistics: return .activationStatistics
        }
    }

    /// The job's name in the jobs panel.
    public var title: String {
        switch self {
        case .autoSelect(let target, _): return "auto-select ratios (target \(Text.number(target, digits: 2)) MACs)"
        case .quantize(let settings): return "quantize W\(settings.recipe.weightBits)A\(settings.recipe.activationBits) \(settings.recipe.scheme.profileText)"
        case .evaluate: return "evaluate"
        case .export(let kind, let path, _): return "export \(kind.rawValue) → \((path as NSString).lastPathComponent)"
        case .activationStatistics: return "activation statistics"
        }
    }
}

/// The kinds of job, for capability checks (a kind without a service cannot be started).
public enum JobKind: Sendable, Hashable {
    case autoSelect, quantize, evaluate, activationStatistics
    case export(ExportKind)
}

/// Result of an auto-select job.
public struct CompressionOutcome: Sendable, Equatable {
    /// Chosen ratio per layer (absent = 1).
    public var ratios: [String: Double]
    /// Exact MACs/params (and score, when measured) of the compressed model.
    public var metrics: SessionMetrics
    /// Sensitivity scores measured along the way.
    public var scores: ScoreTables?

    public init(ratios: [String: Double], metrics: SessionMetrics, scores: ScoreTables? = nil) {
        self.ratios = ratios
        self.metrics = metrics
        self.scores = scores
    }
}

/// Sensitivity scores a running auto-select has measured for one layer, streamed to the
/// workbench before the job's result (so the score column and the sensitivity bars fill in
/// while the search runs).
public struct ScoreUpdate: Sendable, Equatable {
    /// `accuracy`, `agreement` or `sqnr`.
    public var metric: String
    /// The uncompressed model's score under `metric`.
    public var baseline: Double?
    public var technique: CompressionTechnique
    public var layer: String
    /// The layer's scores, one per candidate ratio.
    public var points: [ScorePoint]
    /// Layers scored so far (this one included) and layers to score in all.
    public var layersDone: Int
    public var layersTotal: Int

    public init(metric: String, baseline: Double?, technique: CompressionTechnique, layer: String, points: [ScorePoint],
                layersDone: Int, layersTotal: Int) {
        self.metric = metric
        self.baseline = baseline
        self.technique = technique
        self.layer = layer
        self.points = points
        self.layersDone = layersDone
        self.layersTotal = layersTotal
    }
}

/// What a finished job hands back.
public enum JobResult: Sendable, Equatable {
    case compression(CompressionOutcome)
    /// Metrics of the quantized model (per-layer SQNR in `layers`).
    case quantization(SessionMetrics)
    case evaluation(SessionMetrics)
    case exported(ExportKind, path: String)
    /// Histograms of layer outputs keyed by layer name.
    case activationStatistics([String: Histogram])
}

/// Where a job of the jobs panel is in its life.
public enum JobPhase: String, Sendable, Equatable {
    case running, finished, failed, cancelled
}

/// One row of the jobs panel.
public struct JobEntry: Sendable, Equatable, Identifiable {
    public var id: Int
    public var title: String
    public var kind: JobKind
    public var phase: JobPhase
    public var progress: ProgressEvent?
    public var secondsRemaining: Double?
    public var cancelRequested: Bool
    /// Layers an auto-select has streamed scores for, and layers it scores in all.
    public var layersScored: Int?
    public var layersToScore: Int?
    /// Error text of a failed job, or the summary of a finished one.
    public var message: String?

    public init(id: Int, title: String, kind: JobKind) {
        self.id = id
        self.title = title
        self.kind = kind
        phase = .running
        cancelRequested = false
    }
}

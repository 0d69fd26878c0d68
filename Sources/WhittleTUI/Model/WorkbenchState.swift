import Foundation
import WhittleEngine
import WhittleSession

/// The workbench panels; the digit keys jump to them.
public enum Panel: Int, Sendable, CaseIterable, Hashable, Comparable {
    case layers = 1, detail, compression, quantization, compare, jobs, export

    public var title: String {
        switch self {
        case .layers: return "Layers"
        case .detail: return "Detail"
        case .compression: return "Compression"
        case .quantization: return "Quantization"
        case .compare: return "Compare"
        case .jobs: return "Jobs"
        case .export: return "Export"
        }
    }

    public static func < (a: Panel, b: Panel) -> Bool { a.rawValue < b.rawValue }

    /// Panels whose rows are layers (the `/` filter applies to them).
    public var listsLayers: Bool {
        switch self {
        case .layers, .detail, .compression, .quantization: return true
        case .compare, .jobs, .export: return false
        }
    }
}

/// What a one-line text entry is for.
public enum EntryPurpose: Sendable, Equatable {
    /// Ratio of the selected layer (compression panel).
    case ratio(layer: String)
    /// Bit widths `W/A` of a layer (quantization panel).
    case bits(layer: String)
    /// A recipe value typed in (config preset or a percentile).
    case recipe(QuantizationField)
    /// Name of a new snapshot.
    case snapshotName
    /// The folder exports are written to.
    case exportFolder
}

/// A modal layer over the panels; Esc closes it.
public enum Overlay: Sendable, Equatable {
    case help(scroll: Int)
    case palette(text: String, selection: Int)
    /// Typing the layer filter (the filter applies live).
    case filter
    case entry(EntryPurpose, text: String)
    case confirmQuit
}

/// A one-line message in the status bar.
public struct StatusMessage: Sendable, Equatable {
    public enum Level: Sendable, Equatable { case info, warning, error }
    public var text: String
    public var level: Level
    public init(_ text: String, _ level: Level = .info) {
        self.text = text
        self.level = level
    }
}

/// The recipe rows of the quantization panel.
public enum QuantizationField: Int, Sendable, CaseIterable, Equatable {
    case config, scheme, weightBits, activationBits, perChannel, cle, biasCorrection, adaRound, sequentialMSE, automatic

    public var label: String {
        switch self {
        case .config: return "config preset"
        case .scheme: return "range scheme"
        case .weightBits: return "weight bits"
        case .activationBits: return "activation bits"
        case .perChannel: return "per-channel weights"
        case .cle: return "cross-layer equalization"
        case .biasCorrection: return "bias correction"
        case .adaRound: return "AdaRound"
        case .sequentialMSE: return "sequential MSE"
        case .automatic: return "auto (AutoQuant search)"
        }
    }
}

/// Display choices fixed at start-up.
public struct DisplayOptions: Sendable, Equatable {
    public var unicode: Bool
    public var mouse: Bool
    public init(unicode: Bool = true, mouse: Bool = true) {
        self.unicode = unicode
        self.mouse = mouse
    }
}

/// Everything the workbench shows and edits: the session (the part a profile saves), the
/// loaded model, UI state and running jobs. A value: `update` returns a new one.
public struct WorkbenchState: Sendable, Equatable {
    public var session: Session
    public var model: ModelSummary
    /// Per-layer output histograms from calibration data (empty until measured).
    public var activationHistograms: [String: Histogram]
    /// Latest exact compression totals (from an auto-select result); nil = approximate.
    /// Held in the session, so a profile restores it.
    public var exactCompression: SessionMetrics? {
        get { session.compressionResult }
        set { session.compressionResult = newValue }
    }
    /// Latest quantization result (per-layer SQNR and encodings), held in the session.
    public var quantizationResult: SessionMetrics? {
        get { session.quantizationResult }
        set { session.quantizationResult = newValue }
    }
    /// Latest evaluation of the current settings.
    public var evaluation: SessionMetrics?
    /// Baseline (float) evaluation.
    public var baseline: SessionMetrics?

    public var focus: Panel
    /// The panel shown on the left when the screen is wide (never `detail`).
    public var primary: Panel
    /// Selected layer (index into `model.layers`).
    public var selectedLayer: Int
    /// First visible row per panel.
    public var scroll: [Panel: Int]
    public var filter: String
    public var overlay: Overlay?
    /// Selected row of the quantization panel: recipe fields, then layers.
    public var quantizationRow: Int
    public var snapshotSelection: Int
    /// Snapshot marked to compare with the selected one.
    public var snapshotMark: Int?
    public var jobSelection: Int
    /// Selected row of the export panel (index into `ExportKind.allCases`).
    public var exportSelection: Int
    /// The last export of each kind in this run (running, written or failed).
    public var exportRecords: [ExportKind: ExportRecord]
    /// Detail chart: compression sensitivity (false) or quantization SQNR (true).
    public var detailShowsQuantization: Bool

    public var jobs: [JobEntry]
    public var nextJobID: Int
    public var status: StatusMessage?
    public var size: Size
    public var themeName: String
    public var themeNames: [String]
    public var options: DisplayOptions
    /// Job kinds the injected services can run.
    public var capabilities: Set<JobKind>
    /// Rank or channels kept per technique and layer, from the compression library (empty
    /// without it: the detail panel then shows MACs kept only).
    public var structures: [CompressionTechnique: [String: LayerStructure]]
    /// Why a technique cannot compress a layer (depthwise Conv, shared input channels, ...),
    /// per technique and layer, from the compression library (empty without it).
    public var ineligible: [CompressionTechnique: [String: String]]
    /// Quantsim config presets the recipe editor cycles through.
    public var configPresets: [String]
    /// Where `:save` writes the profile by default.
    public var profilePath: String?
    /// Spinner frame, advanced by ticks while a job runs.
    public var tickCount: Int
    /// The layer whose slider the mouse is dragging.
    public var dragging: String?
    /// Wall-clock time, set by the runtime before each action (snapshot dates); fixed in tests.
    public var now: Date
    /// The session as last written to the profile or its autosave (nil: never written, or
    /// the last write failed). The session is dirty while it differs.
    public var savedSession: Session?

    public init(session: Session, model: ModelSummary, size: Size = Size(width: 80, height: 24), themeName: String = "dark",
                themeNames: [String] = ["dark", "mono"], options: DisplayOptions = DisplayOptions(),
                capabilities: Set<JobKind> = [], configPresets: [String] = ["default"], profilePath: String? = nil) {
        self.session = session
        self.model = model
        activationHistograms = [:]
        focus = .layers
        primary = .layers
        selectedLayer = 0
        scroll = [:]
        filter = ""
        quantizationRow = 0
        snapshotSelection = 0
        jobSelection = 0
        exportSelection = 0
        exportRecords = [:]
        detailShowsQuantization = false
        jobs = []
        nextJobID = 1
        self.size = size
        self.themeName = themeName
        self.themeNames = themeNames
        self.options = options
        self.capabilities = capabilities
        structures = [:]
        ineligible = [:]
        self.configPresets = configPresets.isEmpty ? ["default"] : configPresets
        self.profilePath = profilePath
        tickCount = 0
        now = Date(timeIntervalSince1970: 0)
        savedSession = profilePath == nil ? nil : session
        if let name = session.ui.selectedLayer, let index = model.index(of: name) { selectedLayer = index }
        if let focused = session.ui.focusedPanel, let panel = Panel.allCases.first(where: { $0.title.lowercased() == focused.lowercased() }) {
            focus = panel
            if panel != .detail { primary = panel }
        }
        if let filter = session.ui.extra["filter"] { self.filter = filter }
    }

    // MARK: Derived values

    public var selected: LayerSummary? { model.layers.indices.contains(selectedLayer) ? model.layers[selectedLayer] : nil }

    /// Layers matching the filter (name or op, case-insensitive), as indices.
    public var visibleLayers: [Int] {
        let needle = filter.lowercased()
        guard !needle.isEmpty else { return Array(model.layers.indices) }
        return model.layers.indices.filter {
            model.layers[$0].name.lowercased().contains(needle) || model.layers[$0].opType.lowercased().contains(needle)
        }
    }

    /// Compressible layers matching the filter.
    public var visibleCompressible: [Int] { visibleLayers.filter { model.layers[$0].compressible } }

    /// Rows a panel lists (layer indices) for list navigation.
    public func rows(of panel: Panel) -> [Int] {
        switch panel {
        case .layers, .detail: return visibleLayers
        case .compression, .quantization: return visibleCompressible
        case .compare: return Array(session.snapshots.indices)
        case .jobs: return Array(jobs.indices)
        case .export: return Array(ExportKind.allCases.indices)
        }
    }

    /// Why the layer's technique cannot compress it (nil: it can, or nothing is known).
    public func compressionBlocker(for layer: String) -> String? {
        ineligible[session.compression.technique(for: layer)]?[layer]
    }

    public var runningJobs: [JobEntry] { jobs.filter { $0.phase == .running } }

    /// MACs and parameters with the current per-layer ratios, from the cost model: a ratio
    /// keeps that share of a layer's MACs and (to first order, as for SVD and channel
    /// pruning) of its parameters.
    public var approximateTotals: (macs: Int, parameters: Int) {
        var macs = 0.0, parameters = 0.0
        for layer in model.layers {
            let ratio = layer.compressible ? session.compression.ratio(for: layer.name) : 1
            macs += Double(layer.macs) * ratio
            parameters += Double(layer.parameters) * ratio
        }
        return (Int(macs.rounded()), Int(parameters.rounded()))
    }

    /// Model size in bytes with the recipe's (or overridden) weight bit widths and the ratios.
    public var approximateSizeBytes: Int {
        var bits = 0.0
        for layer in model.layers {
            let ratio = layer.compressible ? session.compression.ratio(for: layer.name) : 1
            let width = layer.weightName != nil ? session.bitWidths(for: layer.name).weight : 32
            bits += Double(layer.parameters) * ratio * Double(width)
        }
        return Int((bits / 8).rounded())
    }

    /// Whether the session changed since it was last written (profile or autosave).
    public var isDirty: Bool { session != savedSession }

    /// The session with the UI choices folded in (what a profile saves).
    public var sessionForSaving: Session {
        var copy = session
        copy.ui.selectedLayer = selected?.name
        copy.ui.focusedPanel = focus.title.lowercased()
        copy.ui.theme = themeName
        if filter.isEmpty { copy.ui.extra["filter"] = nil } else { copy.ui.extra["filter"] = filter }
        return copy
    }
}

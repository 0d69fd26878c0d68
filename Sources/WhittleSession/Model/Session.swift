import Foundation
import WhittleQuant

/// Everything a workbench session needs to resume exactly: which model and data, the
/// quantization recipe, every compression slider, named snapshots, cached sensitivity scores
/// and a few UI choices. This is the value a session profile saves (as versioned JSON, see
/// `SessionProfile`).
///
/// Paths are held as given (absolute, or relative to the working directory). `SessionProfile`
/// stores them relative to the profile file where it can and resolves them again on load.
public struct Session: Codable, Sendable, Equatable {
    /// The profile format version this build writes. `SessionProfile` refuses files with a
    /// larger version and migrates smaller ones forward.
    /// Version 2 added `exports` (encodings version and output folder), see
    /// `ExportSettings.migrateFromVersion1`. Version 3 added the last quantization result and
    /// the exact compression totals (`quantizationResult`, `compressionResult`), see
    /// `Session.migrateFromVersion2`.
    public static let formatVersion = 3

    /// Version 2 profiles hold no job results: the two new members stay absent (nil), and a
    /// v2 file that already has such keys (hand-edited) must hold objects.
    public static let migrateFromVersion2: ProfileFormat.Migration = { object in
        for key in [CodingKeys.quantizationResult.rawValue, CodingKeys.compressionResult.rawValue] {
            guard let value = object[key] else { continue }
            guard value is [String: Any] || value is NSNull else {
                throw WhittleError(.invalidData, key, "must be an object of metrics")
            }
        }
    }

    /// The ONNX model file.
    public var modelPath: String
    /// Calibration data (.npz) for quantization ranges and compression reconstruction.
    public var calibrationDataPath: String?
    /// Evaluation data (.npz, with labels `y` for accuracy) for scores and snapshots.
    public var evaluationDataPath: String?
    /// How to quantize: WhittleQuant's recipe, as the pipeline runs it (per-layer bit widths
    /// are in `bitWidthOverrides`).
    public var recipe: QuantizationRecipe
    /// Let an AutoQuant-style search pick the techniques (persisted as the recipe's `auto`).
    public var autoQuant: Bool
    /// Per-layer bit widths that differ from the recipe, keyed by layer (node) name.
    public var bitWidthOverrides: [String: BitWidthOverride]
    /// Compression choices: technique and ratio per layer, target, ignored layers, candidates.
    public var compression: CompressionSettings
    /// Named what-if states, oldest first.
    public var snapshots: [Snapshot]
    /// Cached sensitivity scores (per technique, layer and ratio).
    public var scores: ScoreTables
    /// Measured metrics of the current (unsnapshotted) settings, when known.
    public var currentMetrics: SessionMetrics?
    /// Export choices: encodings format version and output folder.
    public var exports: ExportSettings
    /// UI choices the workbench restores (selection, focus, theme).
    public var ui: SessionUIState
    /// The last quantization result (output and per-layer SQNR, encodings), when one was run.
    public var quantizationResult: SessionMetrics?
    /// Exact MACs and parameters of the last auto-select result, while its ratios are the
    /// current ones (nil: the totals are the cost-model approximation).
    public var compressionResult: SessionMetrics?

    public init(modelPath: String, calibrationDataPath: String? = nil, evaluationDataPath: String? = nil,
                recipe: QuantizationRecipe = Session.defaultRecipe, autoQuant: Bool = false,
                bitWidthOverrides: [String: BitWidthOverride] = [:],
                compression: CompressionSettings = CompressionSettings(),
                snapshots: [Snapshot] = [], scores: ScoreTables = ScoreTables(),
                currentMetrics: SessionMetrics? = nil, exports: ExportSettings = ExportSettings(), ui: SessionUIState = SessionUIState(),
                quantizationResult: SessionMetrics? = nil, compressionResult: SessionMetrics? = nil) {
        self.quantizationResult = quantizationResult
        self.compressionResult = compressionResult
        self.modelPath = modelPath
        self.calibrationDataPath = calibrationDataPath
        self.evaluationDataPath = evaluationDataPath
        self.recipe = recipe
        self.autoQuant = autoQuant
        self.bitWidthOverrides = bitWidthOverrides
        self.compression = compression
        self.snapshots = snapshots
        self.scores = scores
        self.currentMetrics = currentMetrics
        self.exports = exports
        self.ui = ui
    }

    /// The settings a snapshot captures, taken from the current session.
    public var settings: SessionSettings {
        get { SessionSettings(recipe: recipe, autoQuant: autoQuant, bitWidthOverrides: bitWidthOverrides, compression: compression) }
        set {
            recipe = newValue.recipe
            autoQuant = newValue.autoQuant
            bitWidthOverrides = newValue.bitWidthOverrides
            compression = newValue.compression
        }
    }

    /// Records the current settings (and `metrics`, or the current metrics) as a snapshot named
    /// `name`, replacing an existing snapshot of that name. Returns the snapshot.
    @discardableResult
    public mutating func takeSnapshot(named name: String, metrics: SessionMetrics? = nil, at date: Date = Date()) -> Snapshot {
        let snapshot = Snapshot(name: name, created: date, settings: settings,
                                metrics: metrics ?? currentMetrics ?? SessionMetrics())
        if let index = snapshots.firstIndex(where: { $0.name == name }) {
            snapshots[index] = snapshot
        } else {
            snapshots.append(snapshot)
        }
        return snapshot
    }

    /// Makes the snapshot named `name` the current settings (and its metrics the current
    /// metrics). Returns false when there is no such snapshot.
    @discardableResult
    public mutating func restoreSnapshot(named name: String) -> Bool {
        guard let snapshot = snapshot(named: name) else { return false }
        settings = snapshot.settings
        currentMetrics = snapshot.metrics
        return true
    }

    public func snapshot(named name: String) -> Snapshot? {
        snapshots.first { $0.name == name }
    }

    /// The bit widths in force for `layer`: its override where set, else the recipe's.
    public func bitWidths(for layer: String) -> (weight: Int, activation: Int) {
        let override = bitWidthOverrides[layer]
        return (override?.weightBits ?? recipe.weightBits, override?.activationBits ?? recipe.activationBits)
    }

    /// Sets the kept-MAC ratio of `layer`, clamped to (0, 1]; nil or 1 removes the entry, so an
    /// unchanged layer never appears in `compression.ratios`.
    public mutating func setRatio(_ ratio: Double?, for layer: String) {
        guard let ratio, ratio.isFinite, ratio < 1 else {
            compression.ratios[layer] = nil
            return
        }
        compression.ratios[layer] = max(1e-6, ratio)
    }

    /// Sets the technique of `layer`; nil or the default technique removes the entry.
    public mutating func setTechnique(_ technique: CompressionTechnique?, for layer: String) {
        compression.techniques[layer] = technique == compression.defaultTechnique ? nil : technique
    }

    /// Sets `layer`'s bit-width override; values equal to the recipe's (or nil) are dropped, and
    /// an override with nothing left is removed.
    public mutating func setBitWidths(weight: Int?, activation: Int?, for layer: String) {
        let override = BitWidthOverride(weightBits: weight == recipe.weightBits ? nil : weight,
                                        activationBits: activation == recipe.activationBits ? nil : activation)
        bitWidthOverrides[layer] = override.isEmpty ? nil : override
    }

    enum CodingKeys: String, CodingKey {
        case modelPath = "model", calibrationDataPath = "calibrationData", evaluationDataPath = "evaluationData"
        case recipe, bitWidthOverrides, compression, snapshots, scores, currentMetrics, exports, ui
        case quantizationResult, compressionResult
    }

    /// Only `model` is required; every other member takes its default when absent, so a
    /// hand-written profile can be as short as `{"version": 1, "model": "m.onnx"}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        modelPath = try container.decode(String.self, forKey: .modelPath)
        calibrationDataPath = try container.decodeIfPresent(String.self, forKey: .calibrationDataPath)
        evaluationDataPath = try container.decodeIfPresent(String.self, forKey: .evaluationDataPath)
        let persisted = try container.decodeIfPresent(PersistedRecipe.self, forKey: .recipe)
        recipe = persisted?.recipe ?? Session.defaultRecipe
        autoQuant = persisted?.automatic ?? false
        bitWidthOverrides = try container.decodeIfPresent([String: BitWidthOverride].self, forKey: .bitWidthOverrides) ?? [:]
        compression = try container.decodeIfPresent(CompressionSettings.self, forKey: .compression) ?? CompressionSettings()
        snapshots = try container.decodeIfPresent([Snapshot].self, forKey: .snapshots) ?? []
        scores = try container.decodeIfPresent(ScoreTables.self, forKey: .scores) ?? ScoreTables()
        currentMetrics = try container.decodeIfPresent(SessionMetrics.self, forKey: .currentMetrics)
        exports = try container.decodeIfPresent(ExportSettings.self, forKey: .exports) ?? ExportSettings()
        ui = try container.decodeIfPresent(SessionUIState.self, forKey: .ui) ?? SessionUIState()
        quantizationResult = try container.decodeIfPresent(SessionMetrics.self, forKey: .quantizationResult)
        compressionResult = try container.decodeIfPresent(SessionMetrics.self, forKey: .compressionResult)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(modelPath, forKey: .modelPath)
        try container.encodeIfPresent(calibrationDataPath, forKey: .calibrationDataPath)
        try container.encodeIfPresent(evaluationDataPath, forKey: .evaluationDataPath)
        try container.encode(PersistedRecipe(recipe: recipe, automatic: autoQuant), forKey: .recipe)
        try container.encode(bitWidthOverrides, forKey: .bitWidthOverrides)
        try container.encode(compression, forKey: .compression)
        try container.encode(snapshots, forKey: .snapshots)
        try container.encode(scores, forKey: .scores)
        try container.encodeIfPresent(currentMetrics, forKey: .currentMetrics)
        try container.encode(exports, forKey: .exports)
        try container.encode(ui, forKey: .ui)
        try container.encodeIfPresent(quantizationResult, forKey: .quantizationResult)
        try container.encodeIfPresent(compressionResult, forKey: .compressionResult)
    }

    /// The recipe of a new session: SQNR activation ranges, W8A8, the default quantsim config.
    public static var defaultRecipe: QuantizationRecipe { RecipeCoding.sessionDefault }
}

/// The tunable part of a session: what a snapshot captures and restores.
public struct SessionSettings: Codable, Sendable, Equatable {
    public var recipe: QuantizationRecipe
    /// Let an AutoQuant-style search pick the techniques.
    public var autoQuant: Bool
    public var bitWidthOverrides: [String: BitWidthOverride]
    public var compression: CompressionSettings

    public init(recipe: QuantizationRecipe = Session.defaultRecipe, autoQuant: Bool = false,
                bitWidthOverrides: [String: BitWidthOverride] = [:], compression: CompressionSettings = CompressionSettings()) {
        self.recipe = recipe
        self.autoQuant = autoQuant
        self.bitWidthOverrides = bitWidthOverrides
        self.compression = compression
    }

    enum CodingKeys: String, CodingKey { case recipe, bitWidthOverrides, compression }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let persisted = try container.decodeIfPresent(PersistedRecipe.self, forKey: .recipe)
        recipe = persisted?.recipe ?? Session.defaultRecipe
        autoQuant = persisted?.automatic ?? false
        bitWidthOverrides = try container.decodeIfPresent([String: BitWidthOverride].self, forKey: .bitWidthOverrides) ?? [:]
        compression = try container.decodeIfPresent(CompressionSettings.self, forKey: .compression) ?? CompressionSettings()
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(PersistedRecipe(recipe: recipe, automatic: autoQuant), forKey: .recipe)
        try container.encode(bitWidthOverrides, forKey: .bitWidthOverrides)
        try container.encode(compression, forKey: .compression)
    }

    /// Bit widths in force for `layer` under these settings.
    public func bitWidths(for layer: String) -> (weight: Int, activation: Int) {
        let override = bitWidthOverrides[layer]
        return (override?.weightBits ?? recipe.weightBits, override?.activationBits ?? recipe.activationBits)
    }
}

/// UI choices the workbench restores with a profile. `extra` holds anything else a panel wants
/// to keep (filters, scroll positions) as strings.
public struct SessionUIState: Codable, Sendable, Equatable {
    public var selectedLayer: String?
    public var focusedPanel: String?
    public var theme: String?
    public var extra: [String: String]

    public init(selectedLayer: String? = nil, focusedPanel: String? = nil, theme: String? = nil, extra: [String: String] = [:]) {
        self.selectedLayer = selectedLayer
        self.focusedPanel = focusedPanel
        self.theme = theme
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey { case selectedLayer, focusedPanel, theme, extra }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        selectedLayer = try container.decodeIfPresent(String.self, forKey: .selectedLayer)
        focusedPanel = try container.decodeIfPresent(String.self, forKey: .focusedPanel)
        theme = try container.decodeIfPresent(String.self, forKey: .theme)
        extra = try container.decodeIfPresent([String: String].self, forKey: .extra) ?? [:]
    }
}

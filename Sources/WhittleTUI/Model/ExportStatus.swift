import Foundation
import WhittleQuant
import WhittleSession

/// The last export of one kind in this workbench run: where it went and how it ended.
public struct ExportRecord: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case running
        case written
        case failed(String)
        case cancelled
    }

    /// The workbench job that writes (or wrote) it.
    public var job: Int
    public var path: String
    public var outcome: Outcome

    public init(job: Int, path: String, outcome: Outcome) {
        self.job = job
        self.path = path
        self.outcome = outcome
    }
}

/// What an export needs before it can run, and what it will use.
public struct ExportRequirement: Sendable, Equatable {
    /// False when a key for it would only say why not.
    public var ready: Bool
    /// One short line: what it needs or uses ("quantizes W8A8 sqnr on the calibration data").
    public var text: String
    /// More about it for the selected export (empty when there is nothing to add).
    public var detail: String

    public init(ready: Bool, text: String, detail: String = "") {
        self.ready = ready
        self.text = text
        self.detail = detail
    }
}

extension WorkbenchState {
    /// Where an export of `kind` goes without an explicit path: the export folder (or the
    /// model's folder) and the kind's file name.
    public func exportPath(_ kind: ExportKind) -> String {
        kind.defaultPath(model: session.modelPath, directory: session.exports.directory)
    }

    /// The folder exports go to, as shown in the Export panel.
    public var exportDirectory: String {
        let folder = session.exports.directory ?? (session.modelPath as NSString).deletingLastPathComponent
        return folder.isEmpty ? "." : folder
    }

    /// What `kind` needs, given the loaded data and the services of this build.
    public func exportRequirement(_ kind: ExportKind) -> ExportRequirement {
        let recipe = session.recipe
        let recipeText = "W\(recipe.weightBits)A\(recipe.activationBits) \(recipe.scheme.profileText)" + (session.autoQuant ? " + auto search" : "")
        let compressed = session.compression.ratios.filter { $0.value < 1 }.count
        let layers = "\(compressed) layer\(compressed == 1 ? "" : "s")"
        guard capabilities.contains(.export(kind)) else {
            switch kind {
            case .encodings, .qdq:
                if session.calibrationDataPath == nil && session.evaluationDataPath == nil {
                    return ExportRequirement(ready: false, text: "needs calibration data (start with --data FILE.npz)")
                }
                return ExportRequirement(ready: false, text: "needs the quantization library (not in this build)")
            case .onnx, .report:
                return ExportRequirement(ready: false, text: "not available in this build")
            }
        }
        switch kind {
        case .onnx:
            return compressed == 0
                ? ExportRequirement(ready: true, text: "the float model (every ratio is 1)", detail: "panel 3 sets ratios; the export applies them")
                : ExportRequirement(ready: true, text: "the model with \(layers) compressed (panel 3 ratios)")
        case .encodings, .qdq:
            let text = "quantizes \(recipeText) on the calibration data" + (compressed == 0 ? "" : ", \(layers) compressed first")
            let detail: String
            if let result = quantizationResult {
                detail = "last quantize run (panel 4): " + WorkbenchState.describe(result)
            } else {
                detail = "no quantize run yet: 4 then r shows the accuracy this export will have"
            }
            return ExportRequirement(ready: true, text: text, detail: detail)
        case .report:
            let snapshots = session.snapshots.count
            let scored = Set(session.scores.tables.values.flatMap(\.keys)).count
            return ExportRequirement(ready: true, text: "\(snapshots) snapshot\(snapshots == 1 ? "" : "s"), scores of \(scored) layer\(scored == 1 ? "" : "s")"
                + (session.calibrationDataPath != nil ? ", ranges from the calibration data" : ""),
                detail: "one self-contained HTML file with SVG charts; opens in any browser")
        }
    }

    /// Starts an export of `kind` to `path` (or the export folder) as a background job.
    mutating func startExport(_ kind: ExportKind, path: String? = nil, effects: inout [WorkbenchEffect]) {
        if let record = exportRecords[kind], record.outcome == .running,
           jobs.contains(where: { $0.id == record.job && $0.phase == .running }) {
            status = StatusMessage("export \(kind.rawValue) is already running (x in panel 7 cancels it)", .warning)
            return
        }
        let requirement = exportRequirement(kind)
        guard requirement.ready else {
            status = StatusMessage("export \(kind.rawValue): \(requirement.text)", .warning)
            return
        }
        let target = path ?? exportPath(kind)
        let id = nextJobID
        start(.export(kind, path: target, session: sessionForSaving), effects: &effects)
        if nextJobID > id { exportRecords[kind] = ExportRecord(job: id, path: target, outcome: .running) }
    }

    /// Records how an export job ended (called for every finished, failed or cancelled job).
    mutating func settleExport(job id: Int, _ outcome: ExportRecord.Outcome, path: String? = nil) {
        guard let kind = exportRecords.first(where: { $0.value.job == id })?.key else { return }
        exportRecords[kind]?.outcome = outcome
        if let path { exportRecords[kind]?.path = path }
    }

    /// Steps the encodings version through 0.6.1, 1.0.0, 2.0.0 (wrapping).
    mutating func stepEncodingsVersion(by direction: Int) {
        let all = EncodingsVersion.allCases
        let index = all.firstIndex(of: session.exports.encodingsVersion) ?? 0
        session.exports.encodingsVersion = all[((index + direction) % all.count + all.count) % all.count]
        status = StatusMessage("encodings version \(session.exports.encodingsVersion.rawValue)")
    }
}

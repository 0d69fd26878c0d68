import Foundation
import WhittleIO

/// Score-table entries on disk, reused across runs.
///
/// One JSON file per (model hash, evaluation-set hash), named `<model>-<set>.json`, holding
/// entries keyed by technique, layer, ratio, rank multiplicity and reconstruction data. An
/// entry holds every metric (accuracy, agreement, SQNR) measured in one pass, so it serves
/// whichever metric a later run selects with. Files are written atomically; a file that
/// cannot be read or decoded is ignored with a warning (and replaced on the next save).
public struct ScoreCache: Sendable {
    public let directory: URL

    /// Bumped when entries computed by an older build must not be reused (2: whitened SVD).
    public static let formatVersion = 2

    public init(directory: URL) {
        self.directory = directory
    }

    /// `$XDG_CACHE_HOME/whittle/scores`, else `~/.cache/whittle/scores`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("whittle/scores")
        }
        let home = environment["HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
        return home.appendingPathComponent(".cache/whittle/scores")
    }

    struct File: Codable {
        var format: Int
        var model: String
        var evaluationSet: String
        var entries: [String: ScoreEntry]
    }

    /// The entry key within one model/evaluation-set file.
    public static func key(technique: CompressionTechnique, layer: String, ratio: Double, rankMultiplicity: Int,
                           reconstruction: String) -> String {
        "\(technique.rawValue)|\(layer)|\(String(format: "%.6f", ratio))|m\(rankMultiplicity)|r\(reconstruction)"
    }

    public func fileURL(model: String, evaluationSet: String) -> URL {
        directory.appendingPathComponent("\(model)-\(evaluationSet).json")
    }

    /// Entries stored for this model and evaluation set (empty when there are none, or when
    /// the file is unreadable: then `warn` is told why).
    public func load(model: String, evaluationSet: String, warn: (String) -> Void) -> [String: ScoreEntry] {
        let url = fileURL(model: model, evaluationSet: evaluationSet)
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        do {
            let data = try Data(contentsOf: url)
            let file = try JSONDecoder().decode(File.self, from: data)
            guard file.format == Self.formatVersion, file.model == model, file.evaluationSet == evaluationSet else {
                warn("warning: ignoring score cache \(url.path): written for another format, model or data set")
                return [:]
            }
            return file.entries
        } catch {
            warn("warning: ignoring unreadable score cache \(url.path) (\(Self.describe(error)))")
            return [:]
        }
    }

    /// Writes all entries for this model and evaluation set atomically. A failure to write
    /// is reported through `warn` and otherwise ignored (the cache is an optimisation).
    public func save(_ entries: [String: ScoreEntry], model: String, evaluationSet: String, warn: (String) -> Void) {
        let url = fileURL(model: model, evaluationSet: evaluationSet)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(File(format: Self.formatVersion, model: model, evaluationSet: evaluationSet,
                                               entries: entries))
            try AtomicFile.write(data, to: url)
        } catch {
            warn("warning: cannot write score cache \(url.path) (\(Self.describe(error)))")
        }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? WhittleError { return error.message }
        if let error = error as? DecodingError {
            switch error {
            case .dataCorrupted(let context): return context.debugDescription
            case .keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
            case .typeMismatch(_, let context), .valueNotFound(_, let context): return context.debugDescription
            @unknown default: return "cannot decode"
            }
        }
        return error.localizedDescription
    }
}

import Foundation
import WhittleEngine

/// One point of a sensitivity curve: the model's score with one layer compressed to `ratio`.
public struct ScorePoint: Codable, Sendable, Equatable, Hashable {
    public var ratio: Double
    public var score: Double
    public init(ratio: Double, score: Double) {
        self.ratio = ratio
        self.score = score
    }
}

/// Cached sensitivity scores: technique -> layer -> points sorted by ratio, all measured with
/// one metric on one model and data set (the hashes say which, so stale tables can be
/// recognised and dropped).
public struct ScoreTables: Codable, Sendable, Equatable {
    /// `accuracy`, `agreement` or `sqnr`.
    public var metric: String
    /// The uncompressed model's score under the same metric.
    public var baseline: Double?
    /// Identifies the model the scores were measured on (e.g. a content hash).
    public var modelHash: String?
    /// Identifies the evaluation data.
    public var datasetHash: String?
    /// technique name -> layer name -> points, ascending by ratio.
    public var tables: [String: [String: [ScorePoint]]]

    public init(metric: String = "accuracy", baseline: Double? = nil, modelHash: String? = nil, datasetHash: String? = nil,
                tables: [String: [String: [ScorePoint]]] = [:]) {
        self.metric = metric
        self.baseline = baseline
        self.modelHash = modelHash
        self.datasetHash = datasetHash
        self.tables = tables
    }

    public var isEmpty: Bool { tables.values.allSatisfy { $0.values.allSatisfy(\.isEmpty) } }

    /// The cached score, if any (ratios within 1e-9 count as equal).
    public func score(technique: CompressionTechnique, layer: String, ratio: Double) -> Double? {
        tables[technique.rawValue]?[layer]?.first { abs($0.ratio - ratio) < 1e-9 }?.score
    }

    /// The layer's curve for `technique`, ascending by ratio.
    public func curve(technique: CompressionTechnique, layer: String) -> [ScorePoint] {
        tables[technique.rawValue]?[layer] ?? []
    }

    /// Layers with a curve for `technique`, sorted by name.
    public func layers(technique: CompressionTechnique) -> [String] {
        (tables[technique.rawValue] ?? [:]).filter { !$0.value.isEmpty }.keys.sorted()
    }

    /// Techniques with at least one point, sorted.
    public var techniques: [CompressionTechnique] {
        tables.filter { !$0.value.values.allSatisfy(\.isEmpty) }.keys.sorted().map(CompressionTechnique.init(rawValue:))
    }

    /// Records (or replaces) one score, keeping the curve sorted.
    public mutating func record(technique: CompressionTechnique, layer: String, ratio: Double, score: Double) {
        var points = tables[technique.rawValue]?[layer] ?? []
        if let index = points.firstIndex(where: { abs($0.ratio - ratio) < 1e-9 }) {
            points[index].score = score
        } else {
            let index = points.firstIndex { $0.ratio > ratio } ?? points.count
            points.insert(ScorePoint(ratio: ratio, score: score), at: index)
        }
        tables[technique.rawValue, default: [:]][layer] = points
    }

    /// Whether these scores were measured on the given model and data with `metric` (a table
    /// without hashes matches any model and data).
    public func matches(modelHash: String?, datasetHash: String?, metric: String) -> Bool {
        self.metric == metric && (self.modelHash == nil || self.modelHash == modelHash)
            && (self.datasetHash == nil || self.datasetHash == datasetHash)
    }

    enum CodingKeys: String, CodingKey { case metric, baseline, modelHash, datasetHash, tables }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metric = try c.decodeIfPresent(String.self, forKey: .metric) ?? "accuracy"
        baseline = try c.decodeIfPresent(Double.self, forKey: .baseline)
        modelHash = try c.decodeIfPresent(String.self, forKey: .modelHash)
        datasetHash = try c.decodeIfPresent(String.self, forKey: .datasetHash)
        let raw = try c.decodeIfPresent([String: [String: [ScorePoint]]].self, forKey: .tables) ?? [:]
        tables = raw.mapValues { $0.mapValues { $0.sorted { $0.ratio < $1.ratio } } }
    }
}

/// Content fingerprints for cache keys (`ScoreTables.modelHash`, `datasetHash`): 64-bit FNV-1a
/// over the file's bytes, as 16 hex digits. Not cryptographic; it only has to notice that a
/// model or data file changed.
public enum ContentHash {
    public static func fnv1a64(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The fingerprint of a file's contents.
    public static func file(_ url: URL) throws -> String {
        do {
            return fnv1a64(try Data(contentsOf: url, options: .mappedIfSafe))
        } catch {
            throw WhittleError(.io, url.path, "cannot read the file")
        }
    }
}

import Foundation

/// A compression technique, by its profile/CLI name. Open (string-backed) so that compression
/// modules can add techniques without changing this type.
public struct CompressionTechnique: RawRepresentable, Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ name: String) { rawValue = name }

    /// Split a k x k convolution into k x 1 and 1 x k convolutions of lower rank.
    public static let spatialSVD = CompressionTechnique("spatial-svd")
    /// Remove input channels and reconstruct the remaining weights.
    public static let channelPruning = CompressionTechnique("channel-pruning")
    /// Split a layer's weight matrix into two low-rank factors.
    public static let weightSVD = CompressionTechnique("weight-svd")

    public static let builtIn: [CompressionTechnique] = [.spatialSVD, .channelPruning, .weightSVD]

    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The compression part of a session: which technique and ratio each layer gets, the target
/// for automatic selection, layers never touched, and the ratios the search may pick from.
/// A ratio is the kept share of the layer's MACs (1 = unchanged), as in AIMET.
public struct CompressionSettings: Codable, Sendable, Equatable {
    /// Technique for layers without their own choice.
    public var defaultTechnique: CompressionTechnique
    /// Per-layer technique choices.
    public var techniques: [String: CompressionTechnique]
    /// Per-layer ratios (absent = 1, unchanged).
    public var ratios: [String: Double]
    /// Target share of the model's MACs for automatic selection (nil = not set).
    public var targetMACRatio: Double?
    /// Layers the search and the sliders leave alone, sorted.
    public var ignoredLayers: [String]
    /// Ratios the sweep and greedy search consider, ascending.
    public var candidates: [Double]

    public static let defaultCandidates: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

    public init(defaultTechnique: CompressionTechnique = .spatialSVD, techniques: [String: CompressionTechnique] = [:],
                ratios: [String: Double] = [:], targetMACRatio: Double? = nil, ignoredLayers: [String] = [],
                candidates: [Double] = CompressionSettings.defaultCandidates) {
        self.defaultTechnique = defaultTechnique
        self.techniques = techniques
        self.ratios = ratios
        self.targetMACRatio = targetMACRatio
        self.ignoredLayers = ignoredLayers
        self.candidates = candidates
    }

    /// The technique in force for `layer`.
    public func technique(for layer: String) -> CompressionTechnique { techniques[layer] ?? defaultTechnique }

    /// The ratio in force for `layer` (1 when unset or ignored).
    public func ratio(for layer: String) -> Double {
        ignoredLayers.contains(layer) ? 1 : ratios[layer] ?? 1
    }

    enum CodingKeys: String, CodingKey { case defaultTechnique, techniques, ratios, targetMACRatio, ignoredLayers, candidates }

    /// Absent members take their defaults; ratios, the target and candidates must lie in (0, 1].
    public init(from decoder: any Decoder) throws {
        let defaults = CompressionSettings()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultTechnique = try c.decodeIfPresent(CompressionTechnique.self, forKey: .defaultTechnique) ?? defaults.defaultTechnique
        techniques = try c.decodeIfPresent([String: CompressionTechnique].self, forKey: .techniques) ?? [:]
        ratios = try c.decodeIfPresent([String: Double].self, forKey: .ratios) ?? [:]
        targetMACRatio = try c.decodeIfPresent(Double.self, forKey: .targetMACRatio)
        ignoredLayers = try c.decodeIfPresent([String].self, forKey: .ignoredLayers) ?? []
        candidates = try c.decodeIfPresent([Double].self, forKey: .candidates) ?? defaults.candidates
        func check(_ value: Double, _ path: [any CodingKey]) throws {
            guard value > 0, value <= 1 else {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: c.codingPath + path, debugDescription: "ratio must be in (0, 1], got \(value)"))
            }
        }
        for (layer, ratio) in ratios { try check(ratio, [CodingKeys.ratios, SessionCodingKey(layer)]) }
        if let targetMACRatio { try check(targetMACRatio, [CodingKeys.targetMACRatio]) }
        for (index, ratio) in candidates.enumerated() {
            try check(ratio, [CodingKeys.candidates, SessionCodingKey(intValue: index) ?? SessionCodingKey(String(index))])
        }
    }
}

import Foundation

/// How quantization ranges are chosen from calibration statistics.
public enum RangeScheme: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// Observed minimum and maximum.
    case minMax
    /// The range that maximises signal-to-quantization-noise ratio (AIMET "TF-enhanced").
    case sqnr
    /// Clip to the given percentile of the absolute values (e.g. 99.99).
    case percentile(Double)
    /// The range that minimises mean squared quantization error.
    case mse

    /// The text form used in profiles, on the command line and in the TUI:
    /// `minmax`, `sqnr`, `mse`, `percentile:99.99`.
    public var description: String {
        switch self {
        case .minMax: return "minmax"
        case .sqnr: return "sqnr"
        case .mse: return "mse"
        case .percentile(let p): return "percentile:\(RangeScheme.format(p))"
        }
    }

    /// Parses the text form (`percentile` alone means 99.99); nil for anything else or a
    /// percentile outside (0, 100].
    public init?(parsing text: String) {
        let lowered = text.lowercased()
        switch lowered {
        case "minmax", "min-max", "tf": self = .minMax
        case "sqnr", "tf-enhanced", "tf_enhanced": self = .sqnr
        case "mse": self = .mse
        case "percentile": self = .percentile(99.99)
        default:
            let parts = lowered.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0] == "percentile", let p = Double(parts[1]), p > 0, p <= 100 else { return nil }
            self = .percentile(p)
        }
    }

    /// All schemes in the order the TUI cycles through them.
    public static let allDefaults: [RangeScheme] = [.minMax, .sqnr, .percentile(99.99), .mse]

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let scheme = RangeScheme(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown range scheme '\(text)' (expected minmax, sqnr, mse or percentile:P)")
        }
        self = scheme
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

/// The quantization recipe of a session: quantsim config preset, range scheme, bit widths and
/// which post-training techniques to apply.
public struct QuantizationRecipe: Codable, Sendable, Equatable {
    /// A `QuantsimConfigPresets` name (`default`, `default-per-channel`, `htp-v73`, ...) or a
    /// path to a quantsim config JSON file.
    public var configPreset: String
    public var scheme: RangeScheme
    public var weightBits: Int
    public var activationBits: Int
    /// Per-output-channel weight encodings.
    public var perChannel: Bool
    /// Cross-layer equalization before calibration.
    public var crossLayerEqualization: Bool
    /// Empirical bias correction after calibration.
    public var biasCorrection: Bool
    /// Adaptive rounding of weights.
    public var adaRound: Bool
    /// Sequential MSE weight range search.
    public var sequentialMSE: Bool
    /// Let the AutoQuant-style search pick the techniques.
    public var automatic: Bool

    public init(configPreset: String = "default", scheme: RangeScheme = .sqnr, weightBits: Int = 8, activationBits: Int = 8,
                perChannel: Bool = false, crossLayerEqualization: Bool = false, biasCorrection: Bool = false,
                adaRound: Bool = false, sequentialMSE: Bool = false, automatic: Bool = false) {
        self.configPreset = configPreset
        self.scheme = scheme
        self.weightBits = weightBits
        self.activationBits = activationBits
        self.perChannel = perChannel
        self.crossLayerEqualization = crossLayerEqualization
        self.biasCorrection = biasCorrection
        self.adaRound = adaRound
        self.sequentialMSE = sequentialMSE
        self.automatic = automatic
    }

    enum CodingKeys: String, CodingKey {
        case configPreset = "config", scheme, weightBits, activationBits, perChannel
        case crossLayerEqualization = "cle", biasCorrection, adaRound = "adaround", sequentialMSE = "seqMSE", automatic = "auto"
    }

    /// Absent members take their defaults.
    public init(from decoder: any Decoder) throws {
        let defaults = QuantizationRecipe()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        configPreset = try c.decodeIfPresent(String.self, forKey: .configPreset) ?? defaults.configPreset
        scheme = try c.decodeIfPresent(RangeScheme.self, forKey: .scheme) ?? defaults.scheme
        weightBits = try c.decodeIfPresent(Int.self, forKey: .weightBits) ?? defaults.weightBits
        activationBits = try c.decodeIfPresent(Int.self, forKey: .activationBits) ?? defaults.activationBits
        perChannel = try c.decodeIfPresent(Bool.self, forKey: .perChannel) ?? defaults.perChannel
        crossLayerEqualization = try c.decodeIfPresent(Bool.self, forKey: .crossLayerEqualization) ?? defaults.crossLayerEqualization
        biasCorrection = try c.decodeIfPresent(Bool.self, forKey: .biasCorrection) ?? defaults.biasCorrection
        adaRound = try c.decodeIfPresent(Bool.self, forKey: .adaRound) ?? defaults.adaRound
        sequentialMSE = try c.decodeIfPresent(Bool.self, forKey: .sequentialMSE) ?? defaults.sequentialMSE
        automatic = try c.decodeIfPresent(Bool.self, forKey: .automatic) ?? defaults.automatic
        for (key, bits) in [("weightBits", weightBits), ("activationBits", activationBits)] where !(1...32).contains(bits) {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: c.codingPath + [SessionCodingKey(key)], debugDescription: "bit width must be 1 to 32, got \(bits)"))
        }
    }
}

/// Per-layer bit widths that replace the recipe's (nil keeps the recipe's value).
public struct BitWidthOverride: Codable, Sendable, Equatable, Hashable {
    public var weightBits: Int?
    public var activationBits: Int?

    public init(weightBits: Int? = nil, activationBits: Int? = nil) {
        self.weightBits = weightBits
        self.activationBits = activationBits
    }

    public var isEmpty: Bool { weightBits == nil && activationBits == nil }
}

/// A coding key made from a string, for error contexts.
struct SessionCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

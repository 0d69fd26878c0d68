import Foundation
import WhittleQuant

/// A session's quantization recipe is WhittleQuant's `QuantizationRecipe` (the type the
/// pipeline runs), with one workbench-only switch beside it (`Session.autoQuant`). In a
/// profile both live in the `recipe` object, in the format profiles have always used:
///
///     {"config": "htp-v73", "scheme": "percentile:99.9", "weightBits": 4, "activationBits": 8,
///      "perChannel": true, "cle": false, "biasCorrection": false, "adaround": true,
///      "seqMSE": false, "auto": false}
///
/// The scheme is its text form (`minmax`, `sqnr`, `mse`, `percentile:P`); `perChannel` false
/// means "as the config says" (nil). Pipeline settings profiles never held (batch size,
/// AdaRound iterations, tensor bit overrides, disabled tensors, activation bias correction, scale/shift folding)
/// are written only when they differ from their defaults. Absent members take the session defaults.
enum RecipeCoding {
    /// The recipe of a new session: SQNR ranges, W8A8, the default config.
    static let sessionDefault = QuantizationRecipe(scheme: .sqnr)

    enum Keys: String, CodingKey {
        case config, scheme, weightBits, activationBits, perChannel, cle, biasCorrection, adaround, seqMSE, auto
        case batchSize, biasCorrectionSamples, adaroundIterations, bitOverrides, disabled, activationBiasCorrection, foldScaleShift
    }

    static func decode(from decoder: any Decoder) throws -> (recipe: QuantizationRecipe, automatic: Bool) {
        let c = try decoder.container(keyedBy: Keys.self)
        var recipe = sessionDefault
        recipe.config = try c.decodeIfPresent(String.self, forKey: .config) ?? recipe.config
        if let text = try c.decodeIfPresent(String.self, forKey: .scheme) {
            guard let scheme = try? CalibrationScheme(parsing: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .scheme, in: c,
                    debugDescription: "unknown range scheme '\(text)' (expected minmax, sqnr, mse or percentile:P with P in 50...100)")
            }
            recipe.scheme = scheme
        }
        recipe.weightBits = try c.decodeIfPresent(Int.self, forKey: .weightBits) ?? recipe.weightBits
        recipe.activationBits = try c.decodeIfPresent(Int.self, forKey: .activationBits) ?? recipe.activationBits
        recipe.perChannel = try c.decodeIfPresent(Bool.self, forKey: .perChannel) == true ? true : nil
        recipe.crossLayerEqualization = try c.decodeIfPresent(Bool.self, forKey: .cle) ?? false
        recipe.biasCorrection = try c.decodeIfPresent(Bool.self, forKey: .biasCorrection) ?? false
        recipe.activationBiasCorrection = try c.decodeIfPresent(Bool.self, forKey: .activationBiasCorrection) ?? false
        recipe.foldScaleShift = try c.decodeIfPresent(Bool.self, forKey: .foldScaleShift) ?? false
        recipe.adaRound = try c.decodeIfPresent(Bool.self, forKey: .adaround) ?? false
        recipe.sequentialMSE = try c.decodeIfPresent(Bool.self, forKey: .seqMSE) ?? false
        recipe.batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? recipe.batchSize
        recipe.biasCorrectionSamples = try c.decodeIfPresent(Int.self, forKey: .biasCorrectionSamples) ?? recipe.biasCorrectionSamples
        recipe.adaRoundIterations = try c.decodeIfPresent(Int.self, forKey: .adaroundIterations)
        recipe.bitOverrides = try c.decodeIfPresent([String: Int].self, forKey: .bitOverrides) ?? [:]
        recipe.disabled = try c.decodeIfPresent(Set<String>.self, forKey: .disabled) ?? []
        let automatic = try c.decodeIfPresent(Bool.self, forKey: .auto) ?? false
        for (key, bits) in [(Keys.weightBits, recipe.weightBits), (.activationBits, recipe.activationBits)] where !(1...32).contains(bits) {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "bit width must be 1 to 32, got \(bits)")
        }
        guard recipe.batchSize >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .batchSize, in: c, debugDescription: "must be at least 1, got \(recipe.batchSize)")
        }
        return (recipe, automatic)
    }

    static func encode(_ recipe: QuantizationRecipe, automatic: Bool, to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        let defaults = QuantizationRecipe()
        try c.encode(recipe.config, forKey: .config)
        try c.encode(recipe.scheme.profileText, forKey: .scheme)
        try c.encode(recipe.weightBits, forKey: .weightBits)
        try c.encode(recipe.activationBits, forKey: .activationBits)
        try c.encode(recipe.perChannel == true, forKey: .perChannel)
        try c.encode(recipe.crossLayerEqualization, forKey: .cle)
        try c.encode(recipe.biasCorrection, forKey: .biasCorrection)
        try c.encode(recipe.adaRound, forKey: .adaround)
        try c.encode(recipe.sequentialMSE, forKey: .seqMSE)
        try c.encode(automatic, forKey: .auto)
        if recipe.batchSize != defaults.batchSize { try c.encode(recipe.batchSize, forKey: .batchSize) }
        if recipe.biasCorrectionSamples != defaults.biasCorrectionSamples {
            try c.encode(recipe.biasCorrectionSamples, forKey: .biasCorrectionSamples)
        }
        try c.encodeIfPresent(recipe.adaRoundIterations, forKey: .adaroundIterations)
        if !recipe.bitOverrides.isEmpty { try c.encode(recipe.bitOverrides, forKey: .bitOverrides) }
        if !recipe.disabled.isEmpty { try c.encode(recipe.disabled.sorted(), forKey: .disabled) }
        if recipe.activationBiasCorrection { try c.encode(true, forKey: .activationBiasCorrection) }
        if recipe.foldScaleShift { try c.encode(true, forKey: .foldScaleShift) }
    }
}

/// The `recipe` member of a profile, session or snapshot, decoded and encoded with `RecipeCoding`.
struct PersistedRecipe: Codable {
    var recipe: QuantizationRecipe
    var automatic: Bool

    init(recipe: QuantizationRecipe, automatic: Bool) {
        self.recipe = recipe
        self.automatic = automatic
    }

    init(from decoder: any Decoder) throws { (recipe, automatic) = try RecipeCoding.decode(from: decoder) }
    func encode(to encoder: any Encoder) throws { try RecipeCoding.encode(recipe, automatic: automatic, to: encoder) }
}

extension CalibrationScheme {
    /// The schemes the workbench's recipe editor cycles through, in order.
    public static let workbenchChoices: [CalibrationScheme] = [.minMax, .sqnr, .percentile(99.99), .mse]

    /// The text form profiles and the workbench show: `minmax`, `sqnr`, `mse`,
    /// `percentile:99.99` (whole percentiles without a fraction, `percentile:99`).
    public var profileText: String {
        guard case .percentile(let p) = self else { return description }
        return "percentile:" + (p == p.rounded() && abs(p) < 1e15 ? String(Int(p)) : String(p))
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

import Foundation
import WhittleEngine

/// Everything that decides how a model is quantized after training: the quantsim config,
/// bit widths, the calibration scheme and the techniques applied before calibration.
public struct QuantizationRecipe: Sendable, Equatable, Codable {
    /// A preset name (`QuantsimConfig.presetNames`) or a path to a quantsim config JSON file.
    public var config: String
    public var scheme: CalibrationScheme
    public var weightBits: Int
    public var activationBits: Int
    /// Per-channel weights: true/false overrides the config; nil keeps the config's choice.
    public var perChannel: Bool?
    public var crossLayerEqualization: Bool
    public var biasCorrection: Bool
    public var adaRound: Bool
    public var sequentialMSE: Bool
    /// Bit widths per tensor or per layer (node name: its weight and output), mixed precision.
    public var bitOverrides: [String: Int]
    /// Tensors or layers left in float.
    public var disabled: Set<String>
    /// Samples per calibration batch.
    public var batchSize: Int
    /// Calibration samples used by bias correction (one pass per corrected layer).
    public var biasCorrectionSamples: Int = 64
    /// AdaRound iterations per layer (nil: AIMET's default, 10k at 8 bits and above, 15k below).
    public var adaRoundIterations: Int?

    public init(config: String = "default", scheme: CalibrationScheme = .minMax, weightBits: Int = 8, activationBits: Int = 8,
                perChannel: Bool? = nil, crossLayerEqualization: Bool = false, biasCorrection: Bool = false,
                adaRound: Bool = false, sequentialMSE: Bool = false, bitOverrides: [String: Int] = [:],
                disabled: Set<String> = [], batchSize: Int = 32) {
        self.config = config
        self.scheme = scheme
        self.weightBits = weightBits
        self.activationBits = activationBits
        self.perChannel = perChannel
        self.crossLayerEqualization = crossLayerEqualization
        self.biasCorrection = biasCorrection
        self.adaRound = adaRound
        self.sequentialMSE = sequentialMSE
        self.bitOverrides = bitOverrides
        self.disabled = disabled
        self.batchSize = batchSize
    }

    /// The techniques `whittle quantize` applies when none is asked for: the best general recipe
    /// measured on the sample and real models (see the README's quantization table).
    ///
    /// Per-channel weights always; AdaRound when weights have fewer than 8 bits. Empirical bias
    /// correction and CLE are left off: on EfficientNet-Lite0 bias correction lowered top-1
    /// agreement (0.953 -> 0.875) and CLE's ReLU6 -> ReLU replacement cost more (0.781), and
    /// on the digits models neither changed W8A8 accuracy.
    public mutating func applyDefaultTechniques() {
        if perChannel == nil { perChannel = true }
        adaRound = weightBits < 8
    }

    /// Checks bit widths and batch size; errors name the setting.
    public func validate() throws {
        for (name, bits) in [("weight bits", weightBits), ("activation bits", activationBits)] {
            guard (4...16).contains(bits) else {
                throw WhittleError(.invalidArgument, name, "must be in 4...16, got \(bits)")
            }
        }
        for (target, bits) in bitOverrides.sorted(by: { $0.key < $1.key }) where !(4...16).contains(bits) {
            throw WhittleError(.invalidArgument, "bit override '\(target)'", "must be in 4...16, got \(bits)")
        }
        guard batchSize >= 1 else { throw WhittleError(.invalidArgument, "batch size", "must be at least 1, got \(batchSize)") }
    }

    /// The quantsim config the recipe names, with the per-channel choice applied.
    public func loadConfig() throws -> QuantsimConfig {
        var loaded: QuantsimConfig
        if QuantsimConfig.presetNames.contains(config) {
            loaded = try QuantsimConfig.preset(named: config)
        } else if FileManager.default.fileExists(atPath: config) {
            loaded = try QuantsimConfig.load(from: URL(fileURLWithPath: config))
        } else {
            throw WhittleError(.invalidArgument, "config '\(config)'",
                               "neither a preset (\(QuantsimConfig.presetNames.joined(separator: ", "))) nor an existing file")
        }
        if let perChannel {
            loaded.defaults.perChannelQuantization = perChannel
            for op in loaded.opTypes.keys { loaded.opTypes[op]?.perChannelQuantization = nil }
        }
        return loaded
    }
}

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
    /// Fold constant Mul/Div/Add/Sub that follow a Conv into it before quantizing
    /// (`ScaleShiftFolding`, what Qualcomm's converters do), so such a chain has one quantizer.
    public var foldScaleShift: Bool = false
    public var biasCorrection: Bool
    /// Data-free bias correction from BatchNorm statistics (`BiasCorrection.analytical`): every
    /// Conv/Gemm whose input tensor is a (folded) BatchNorm output, optionally through a
    /// Relu/Clip, gets `b -= sum_c eps[o, c] E[x_c]`; other layers are left as they are.
    public var analyticalBiasCorrection: Bool = false
    /// Bias correction after calibration against the full simulation (weights and
    /// activations quantized), `BiasCorrection.simulated`.
    public var activationBiasCorrection: Bool = false
    public var adaRound: Bool
    public var sequentialMSE: Bool
    /// Bit widths per tensor or per layer (node name: its weight and output), mixed precision.
    public var bitOverrides: [String: Int]
    /// Tensors or layers left in float.
    public var disabled: Set<String>
    /// Tensors or layers passed through as float16 (AIMET's float quantizer at 16 bits).
    public var float16: Set<String> = []
    /// Samples per calibration batch.
    public var batchSize: Int
    /// Calibration samples used by either bias correction (one pass per corrected layer).
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

    /// AdaRound iterations per layer that the default recipe uses for weights of 8 bits or
    /// more (AIMET's default is 10 000): at 8 bits the rounding error is small and 1000
    /// iterations already take EfficientNet-Lite0 from 19.3 dB to 26.0 dB output SQNR.
    public static let defaultAdaRoundIterations8Bit = 1000

    /// The techniques `whittle quantize` applies when none is asked for: the best general recipe
    /// measured on the sample and real models (see the README's quantization table).
    ///
    /// Per-channel weights and AdaRound at every weight bit width (1000 iterations per layer at
    /// 8 bits and above, AIMET's 15 000 below, unless iterations are given). At 8 bits the
    /// output error of EfficientNet-Lite0 came mostly from weight rounding spread over many
    /// layers (weights only: 20.3 dB; the worst single layer, the first depthwise conv whose
    /// filters are near-zero-sum edge detectors, 25.8 dB alone); AdaRound's data-aware
    /// rounding raises W8A8 from 19.3 to 26.0 dB (0.969 top-1 agreement). Empirical bias
    /// correction recovers less (23.2 dB) and CLE is left off: its ReLU6 -> ReLU replacement
    /// changes EfficientNet-Lite0 itself (0.406 agreement with the original in float). The
    /// activation scheme stays min-max: SQNR and MSE ranges raised activation-only SQNR by
    /// 1 dB on EfficientNet-Lite0 at about 1.4x the calibration cost. One measured exception:
    /// the PP-OCRv4 recognizer is better without AdaRound (16-bit residual Adds: 87.5% exact
    /// match with nearest rounding, 84.0% with AdaRound); `--plain` keeps nearest rounding.
    public mutating func applyDefaultTechniques() {
        if perChannel == nil { perChannel = true }
        adaRound = true
        if weightBits >= 8, adaRoundIterations == nil { adaRoundIterations = Self.defaultAdaRoundIterations8Bit }
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
        guard biasCorrectionSamples >= 1 else {
            throw WhittleError(.invalidArgument, "bias-correction samples", "must be at least 1, got \(biasCorrectionSamples)")
        }
        if let both = float16.intersection(disabled).sorted().first {
            throw WhittleError(.invalidArgument, "'\(both)'", "is asked to stay float and to be float16; choose one")
        }
        if let both = float16.intersection(bitOverrides.keys).sorted().first {
            throw WhittleError(.invalidArgument, "'\(both)'", "has a bit width and is asked to be float16; choose one")
        }
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

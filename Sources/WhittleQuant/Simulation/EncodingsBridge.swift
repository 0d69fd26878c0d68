import Foundation
import WhittleEngine

extension QuantizedModel {
    /// The AIMET encodings of this model: one entry per enabled quantizer of its own, keyed by
    /// the tensor names of `graph` (the exported float model).
    public func encodingsFile(scheme: CalibrationScheme? = nil) -> EncodingsFile {
        var activations: [String: TensorEncoding] = [:]
        var params: [String: TensorEncoding] = [:]
        var activationBits: Int?
        var paramBits: Int?
        var symmetric: Bool?
        var perChannel = false
        for (tensor, settings, encoding) in activeQuantizers() {
            switch settings.role {
            case .activation:
                activations[tensor] = encoding
                activationBits = max(activationBits ?? 0, settings.bitWidth)
            case .param:
                params[tensor] = encoding
                if settings.paramType == "weight" || settings.paramType == nil {
                    paramBits = max(paramBits ?? 0, settings.bitWidth)
                    symmetric = settings.symmetry.isSymmetric
                    if case .perChannel = encoding { perChannel = true }
                }
            }
        }
        let args = QuantizerArgs(activationBitwidth: activationBits, paramBitwidth: paramBits, dtype: "int",
                                 isSymmetric: symmetric, perChannelQuantization: perChannel, quantScheme: scheme?.aimetName)
        return EncodingsFile(activations: activations, params: params, quantizerArgs: args)
    }

    /// `graph` quantized exactly as an encodings file says ("frozen"): every tensor the file
    /// names gets that encoding; every other tensor stays float. Names the file cannot map
    /// onto `graph` are an error naming the file and the key.
    public static func frozen(graph: Graph, encodings file: EncodingsFile, source: String,
                              config: QuantsimConfig? = nil) throws -> QuantizedModel {
        try file.validate(against: graph, source: source)
        var placement = try QuantizerPlacement.resolve(graph: graph, config: config ?? QuantsimConfig.preset(named: "default"),
                                                       defaultActivationBits: 8, defaultParamBits: 8)
        for (tensor, _) in placement.quantizers { try placement.disable(tensor: tensor) }
        var encodings: [String: TensorEncoding] = [:]
        for (group, entries, role) in [("activation_encodings", file.activations, QuantizerSettings.Role.activation),
                                       ("param_encodings", file.params, .param)] {
            for (tensor, encoding) in entries {
                let settings: QuantizerSettings
                switch encoding {
                case .perTensor(let grid):
                    settings = QuantizerSettings(role: role, bitWidth: grid.bitWidth, symmetry: grid.symmetry)
                case .perChannel(let axis, let grids):
                    guard let grid = grids.first else {
                        throw WhittleError(.invalidData, source, "\(group).\(tensor): per-channel encoding list is empty")
                    }
                    settings = QuantizerSettings(role: role, bitWidth: grid.bitWidth, symmetry: grid.symmetry, perChannelAxis: axis)
                case .float(let bits):
                    settings = QuantizerSettings(role: role, bitWidth: bits, symmetry: .asymmetric)
                }
                do {
                    try placement.assign(tensor: tensor, settings: settings)
                } catch let error as WhittleError {
                    throw WhittleError(.invalidData, source, "\(group).\(tensor): \(error.message)")
                }
                encodings[tensor] = encoding
            }
        }
        return QuantizedModel(graph: graph, placement: placement, encodings: encodings)
    }
}

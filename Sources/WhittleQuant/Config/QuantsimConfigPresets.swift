import Foundation
import WhittleEngine

/// Built-in QuantSim configurations, written from the documented content of AIMET's shipped
/// files (aimet.md §4.2, §4.3) in AIMET's own schema, and parsed by the same reader as user
/// files.
///
/// - `default`: outputs quantized, activations asymmetric, params symmetric per-tensor,
///   bias unquantized, a few cast-like ops unquantized, Conv/Add/Gemm + Relu supergroups.
/// - `default-per-channel`: the same with per-channel weights (Gemm, MatMul,
///   LayerNormalization per-tensor).
/// - `htp-v68`, `htp-v69`: Hexagon V68/V69, per-channel (Gemm, MatMul and the
///   normalizations per-tensor), data-movement ops unquantized, BN mean/var unquantized.
/// - `htp-v73`, `htp-v75`: as V69 plus GroupNormalization with quantized bias,
///   LayerNormalization asymmetric weight, Sigmoid/Softmax fixed to [0, 1], and the larger
///   supergroup list.
extension QuantsimConfig {
    /// Names accepted by `preset(named:)`.
    public static let presetNames = ["default", "default-per-channel", "htp-v68", "htp-v69", "htp-v73", "htp-v75"]

    /// A built-in configuration by name.
    public static func preset(named name: String) throws -> QuantsimConfig {
        guard let text = presetJSON(named: name) else {
            throw WhittleError(.invalidArgument, name, "unknown quantsim config preset (known: \(presetNames.joined(separator: ", ")))")
        }
        return try parse(Data(text.utf8), source: "preset \(name)")
    }

    /// The JSON text of a built-in configuration, in AIMET's schema.
    public static func presetJSON(named name: String) -> String? {
        switch name {
        case "default": return defaultJSON(perChannel: false)
        case "default-per-channel": return defaultJSON(perChannel: true)
        case "htp-v68": return htpJSON(version: 68)
        case "htp-v69": return htpJSON(version: 69)
        case "htp-v73": return htpJSON(version: 73)
        case "htp-v75": return htpJSON(version: 75)
        default: return nil
        }
    }

    private static func opList(_ groups: [[String]]) -> String {
        groups.map { group in "{\"op_list\": [" + group.map { "\"\($0)\"" }.joined(separator: ", ") + "]}" }
            .joined(separator: ",\n    ")
    }

    private static func unquantizedOutputs(_ ops: [String]) -> [String] {
        ops.map { "\"\($0)\": {\"is_output_quantized\": \"False\"}" }
    }

    private static func defaultJSON(perChannel: Bool) -> String {
        var ops = unquantizedOutputs(["Cast", "Dropout", "Expand", "Squeeze", "Pad", "Mean", "Gather"])
        if perChannel {
            ops += ["Gemm", "MatMul", "LayerNormalization"].map { "\"\($0)\": {\"per_channel_quantization\": \"False\"}" }
        }
        let supergroups = [["Conv", "Relu"], ["ConvTranspose", "Relu"], ["Conv", "Clip"], ["Add", "Relu"], ["Gemm", "Relu"]]
        return """
        {
          "defaults": {
            "ops": {"is_output_quantized": "True", "is_symmetric": "False"},
            "params": {"is_quantized": "True", "is_symmetric": "True"},
            "strict_symmetric": "False",
            "unsigned_symmetric": "False",
            "per_channel_quantization": "\(perChannel ? "True" : "False")"
          },
          "params": {"bias": {"is_quantized": "False"}},
          "op_type": {
            \(ops.joined(separator: ",\n    "))
          },
          "supergroups": [
            \(opList(supergroups))
          ],
          "model_input": {"is_input_quantized": "True"},
          "model_output": {}
        }
        """
    }

    /// Ops whose outputs keep their input's values (HTP configs leave them unquantized).
    private static let htpDataMovementOps = [
        "Cast", "ChannelShuffle", "DepthToSpace", "Dropout", "Expand", "Flatten", "Gather", "GatherElements", "GatherND",
        "Identity", "MaxPool", "NonMaxSuppression", "Pad", "Reshape", "Slice", "SpaceToDepth", "Split", "Squeeze",
        "Tile", "TopK", "Transpose", "Unsqueeze", "Upsample",
    ]

    private static func htpJSON(version: Int) -> String {
        let modern = version >= 73
        var ops = unquantizedOutputs(htpDataMovementOps + (modern ? ["MaxRoiPool", "ScatterElements"] : []))
        ops += ["Gemm", "MatMul", "InstanceNormalization"].map { "\"\($0)\": {\"per_channel_quantization\": \"False\"}" }
        ops.append("\"BatchNormalization\": {\"per_channel_quantization\": \"False\", \"params\": {\"running_mean\": {\"is_quantized\": \"False\"}, \"running_var\": {\"is_quantized\": \"False\"}}}")
        if modern {
            ops.append("\"LayerNormalization\": {\"per_channel_quantization\": \"False\", \"params\": {\"weight\": {\"is_symmetric\": \"False\"}}}")
            ops.append("\"GroupNormalization\": {\"per_channel_quantization\": \"False\", \"params\": {\"bias\": {\"is_quantized\": \"True\"}}}")
            ops.append("\"Sigmoid\": {\"encoding_constraints\": {\"min\": 0.0, \"max\": 1.0}}")
            ops.append("\"Softmax\": {\"encoding_constraints\": {\"min\": 0.0, \"max\": 1.0}}")
        } else {
            ops.append("\"LayerNormalization\": {\"per_channel_quantization\": \"False\"}")
        }
        let supergroups: [[String]] = modern
            ? [["Add", "Relu"], ["Conv", "BatchNormalization", "HardSwish"], ["Conv", "BatchNormalization", "PRelu"],
               ["Conv", "BatchNormalization", "Relu"], ["Conv", "Transpose", "Relu"], ["Conv", "Transpose", "PRelu"],
               ["Conv", "Clip"], ["Conv", "HardSwish"], ["Conv", "PRelu"], ["Conv", "Relu"], ["ConvTranspose", "Relu"],
               ["Gemm", "Relu"]]
            : [["Conv", "Relu"], ["Conv", "Clip"], ["Conv", "BatchNormalization", "Relu"], ["Conv", "Transpose", "Relu"],
               ["ConvTranspose", "Relu"], ["Add", "Relu"], ["Gemm", "Relu"]]
        return """
        {
          "defaults": {
            "ops": {"is_output_quantized": "True", "is_symmetric": "False"},
            "params": {"is_quantized": "True", "is_symmetric": "True"},
            "strict_symmetric": "False",
            "unsigned_symmetric": "False",
            "per_channel_quantization": "True",
            "hw_version": "V\(version)"
          },
          "params": {"bias": {"is_quantized": "False"}},
          "op_type": {
            \(ops.joined(separator: ",\n    "))
          },
          "supergroups": [
            \(opList(supergroups))
          ],
          \(modern ? "" : "\"supergroup_pass_list\": [\"LayerNormalization\"],")
          "model_input": {"is_input_quantized": "True"},
          "model_output": {}
        }
        """
    }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("Quantsim config parsing")
struct QuantsimConfigTests {
    typealias Support = QuantFormatsTestSupport

    @Test(arguments: QuantsimConfig.presetNames)
    func presetParsesWithoutWarnings(name: String) throws {
        let config = try QuantsimConfig.preset(named: name)
        #expect(config.warnings.isEmpty)
        #expect(config.defaults.isOutputQuantized == true)
        #expect(config.defaults.isSymmetric == false)
        #expect(config.defaults.params == QuantsimConfig.ParamSettings(isQuantized: true, isSymmetric: true))
        #expect(config.defaults.strictSymmetric == false)
        #expect(config.params["bias"]?.isQuantized == false)
        #expect(config.modelInputQuantized == true)
        #expect(config.modelOutputQuantized == nil)
        #expect(config.supergroups.contains(["Conv", "Relu"]))
        #expect(config.supergroups.contains(["Gemm", "Relu"]))
    }

    @Test func defaultPresets() throws {
        let plain = try QuantsimConfig.preset(named: "default")
        #expect(plain.defaults.perChannelQuantization == false)
        #expect(plain.defaults.hwVersion == nil)
        #expect(plain.supergroups.count == 5)
        for op in ["Cast", "Dropout", "Expand", "Squeeze", "Pad", "Mean", "Gather"] {
            #expect(plain.opTypes[op]?.isOutputQuantized == false)
        }
        let perChannel = try QuantsimConfig.preset(named: "default-per-channel")
        #expect(perChannel.defaults.perChannelQuantization == true)
        for op in ["Gemm", "MatMul", "LayerNormalization"] {
            #expect(perChannel.opTypes[op]?.perChannelQuantization == false)
        }
    }

    @Test func htpPresets() throws {
        let v68 = try QuantsimConfig.preset(named: "htp-v68")
        #expect(v68.hexagonVersion == 68)
        #expect(v68.supergroupPassList == ["LayerNormalization"])
        #expect(v68.supergroups.contains(["Conv", "BatchNormalization", "Relu"]))
        #expect(v68.opTypes["Softmax"] == nil)
        #expect(v68.opTypes["Reshape"]?.isOutputQuantized == false)
        #expect(v68.opTypes["BatchNormalization"]?.params["running_var"]?.isQuantized == false)
        #expect(try QuantsimConfig.preset(named: "htp-v69").defaults.hwVersion == "V69")
        for name in ["htp-v73", "htp-v75"] {
            let config = try QuantsimConfig.preset(named: name)
            #expect(config.hexagonVersion == (name == "htp-v73" ? 73 : 75))
            #expect(config.supergroupPassList.isEmpty)
            #expect(config.supergroups.count == 12)
            #expect(config.opTypes["Softmax"]?.encodingConstraint == QuantsimConfig.EncodingConstraint(min: 0, max: 1))
            #expect(config.opTypes["Sigmoid"]?.encodingConstraint == QuantsimConfig.EncodingConstraint(min: 0, max: 1))
            #expect(config.opTypes["GroupNormalization"]?.params["bias"]?.isQuantized == true)
            #expect(config.opTypes["LayerNormalization"]?.params["weight"]?.isSymmetric == false)
            #expect(config.opTypes["ScatterElements"]?.isOutputQuantized == false)
            #expect(config.opTypes["Gemm"]?.perChannelQuantization == false)
            #expect(config.defaults.unsignedSymmetric == false)
        }
        Support.expectError(["htp-v99", "unknown quantsim config preset", "htp-v73"]) {
            _ = try QuantsimConfig.preset(named: "htp-v99")
        }
    }

    @Test func parsesHandWrittenUserConfig() throws {
        let url = Support.fixture("quantsim_user_config.json")
        let config = try QuantsimConfig.load(from: url)
        #expect(config.defaults.strictSymmetric == true)
        #expect(config.defaults.params.isSymmetric == true)
        #expect(config.defaults.hwVersion == "V73")
        #expect(config.defaults.supportedKernels == [
            QuantsimConfig.SupportedKernel(activation: .init(bitWidth: 16, dtype: .int), param: .init(bitWidth: 8, dtype: .int)),
            QuantsimConfig.SupportedKernel(activation: .init(bitWidth: 16, dtype: .float)),
        ])
        #expect(config.params["weight"]?.isSymmetric == true)
        #expect(config.opTypes["Gemm"]?.perChannelQuantization == false)
        #expect(config.opTypes["Gemm"]?.isInputQuantized == true)
        #expect(config.opTypes["Reshape"]?.isOutputQuantized == false)
        #expect(config.supergroups == [["Conv", "Relu"], ["Conv", "BatchNormalization", "Relu"]])
        #expect(config.modelOutputQuantized == true)
        #expect(config.warnings.count == 2)
        #expect(config.warnings.contains { $0.contains(url.path) && $0.contains("defaults.my_note") && $0.contains("unknown key") })
        #expect(config.warnings.contains { $0.contains("op_type.LayerNormalization.colour") })
    }

    func expectParseError(_ json: String, _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        Support.expectError(["user.json"] + parts, sourceLocation: sourceLocation) {
            _ = try QuantsimConfig.parse(Data(json.utf8), source: "user.json")
        }
    }

    static let minimal = """
    {"defaults": {"ops": {}, "params": {}}, "params": {}, "op_type": {}, "supergroups": [], "model_input": {}, "model_output": {}}
    """

    func replacing(_ old: String, with new: String) -> String {
        Self.minimal.replacingOccurrences(of: old, with: new)
    }

    @Test func minimalConfigHasNilSettings() throws {
        let config = try QuantsimConfig.parse(Data(Self.minimal.utf8), source: "user.json")
        #expect(config == QuantsimConfig())
    }

    @Test func typeErrorsNameFileAndKeyPath() {
        expectParseError(replacing("\"params\": {}, \"op_type\"", with: "\"params\": {\"bias\": {\"is_quantized\": 3}}, \"op_type\""),
                         ["params.bias.is_quantized", "3"])
        expectParseError(replacing("\"ops\": {}", with: "\"ops\": {\"is_symmetric\": \"maybe\"}"),
                         ["defaults.ops.is_symmetric", "\"maybe\""])
        expectParseError(replacing("\"op_type\": {}", with: "\"op_type\": {\"Softmax\": {\"encoding_constraints\": {\"min\": \"0\", \"max\": 1}}}"),
                         ["op_type.Softmax.encoding_constraints.min", "expected a number", "\"0\""])
        expectParseError(replacing("\"op_type\": {}", with: "\"op_type\": {\"Softmax\": {\"encoding_constraints\": {\"min\": 2, \"max\": 1}}}"),
                         ["op_type.Softmax.encoding_constraints", "min < max"])
        expectParseError(replacing("\"supergroups\": []", with: "\"supergroups\": [{\"op_list\": [\"Conv\"]}]"),
                         ["supergroups[0].op_list", "at least 2"])
        expectParseError(replacing("\"supergroups\": []", with: "\"supergroups\": {}"), ["supergroups", "expected an array"])
        expectParseError(replacing("\"params\": {}}", with: "\"params\": {}, \"hw_version\": 73}"), ["defaults.hw_version", "expected a string", "73"])
        expectParseError(replacing("\"params\": {}}", with: "\"params\": {}, \"supported_kernels\": [{\"activation\": {\"bitwidth\": 12, \"dtype\": \"int\"}}]}"),
                         ["defaults.supported_kernels[0].activation.bitwidth", "12"])
        expectParseError(replacing("\"op_type\": {}", with: "\"op_type\": {\"Conv\": []}"), ["op_type.Conv", "expected an object"])
    }

    @Test func missingRequiredKeysAndMalformedJSON() {
        expectParseError(replacing(", \"model_output\": {}", with: ""), ["model_output", "missing"])
        expectParseError(replacing("\"defaults\": {\"ops\": {}, ", with: "\"defaults\": {"), ["defaults.ops", "missing"])
        expectParseError("{\"defaults\": ", ["malformed JSON", "end of file"])
        Support.expectError(["/nonexistent/q.json", "cannot read"]) {
            _ = try QuantsimConfig.load(from: URL(fileURLWithPath: "/nonexistent/q.json"))
        }
    }

    @Test func acceptsJSONBooleansAndDuplicateKeysTakeTheLast() throws {
        let json = replacing("\"op_type\": {}", with: "\"op_type\": {\"Relu\": {\"is_output_quantized\": false}, \"Relu\": {\"is_output_quantized\": true}}")
        let config = try QuantsimConfig.parse(Data(json.utf8), source: "user.json")
        #expect(config.opTypes["Relu"]?.isOutputQuantized == true)
    }
}

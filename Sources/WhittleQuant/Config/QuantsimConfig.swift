import Foundation
import WhittleEngine

/// An AIMET QuantSim configuration (aimet.md §4.1): which tensors get quantizers and how.
/// Booleans are the strings "True"/"False" in AIMET files; JSON booleans are accepted too.
/// Absent settings are nil and fall back to the next-lower level of precedence
/// (defaults < params < op_type < supergroups < model_input/model_output).
public struct QuantsimConfig: Sendable, Equatable {
    /// Quantization settings of one parameter type (`weight`, `bias`, ...).
    public struct ParamSettings: Sendable, Equatable {
        public var isQuantized: Bool?
        public var isSymmetric: Bool?
        public init(isQuantized: Bool? = nil, isSymmetric: Bool? = nil) {
            self.isQuantized = isQuantized
            self.isSymmetric = isSymmetric
        }
    }

    /// A fixed output range, e.g. Softmax [0, 1].
    public struct EncodingConstraint: Sendable, Equatable {
        public var min: Float
        public var max: Float
        public init(min: Float, max: Float) {
            self.min = min
            self.max = max
        }
    }

    /// One kernel a target supports: activation and (optionally) parameter data types.
    public struct SupportedKernel: Sendable, Equatable {
        public enum DataType: String, Sendable, Equatable { case int, float }
        public struct Precision: Sendable, Equatable {
            public var bitWidth: Int
            public var dtype: DataType
            public init(bitWidth: Int, dtype: DataType) {
                self.bitWidth = bitWidth
                self.dtype = dtype
            }
        }
        public var activation: Precision
        public var param: Precision?
        public init(activation: Precision, param: Precision? = nil) {
            self.activation = activation
            self.param = param
        }
    }

    /// The `defaults` block.
    public struct Defaults: Sendable, Equatable {
        public var isOutputQuantized: Bool?
        public var isInputQuantized: Bool?
        /// Activation symmetry (absent: asymmetric).
        public var isSymmetric: Bool?
        public var params = ParamSettings()
        public var strictSymmetric: Bool?
        public var unsignedSymmetric: Bool?
        public var perChannelQuantization: Bool?
        /// Hexagon version, e.g. "V73"; drives exception rules in quantizer placement.
        public var hwVersion: String?
        public var supportedKernels: [SupportedKernel] = []
        public init() {}
    }

    /// One `op_type` entry (ONNX op type name).
    public struct OpSettings: Sendable, Equatable {
        public var isInputQuantized: Bool?
        public var isOutputQuantized: Bool?
        public var isSymmetric: Bool?
        public var perChannelQuantization: Bool?
        public var params: [String: ParamSettings] = [:]
        public var supportedKernels: [SupportedKernel] = []
        public var encodingConstraint: EncodingConstraint?
        public init(isInputQuantized: Bool? = nil, isOutputQuantized: Bool? = nil, isSymmetric: Bool? = nil,
                    perChannelQuantization: Bool? = nil, params: [String: ParamSettings] = [:],
                    supportedKernels: [SupportedKernel] = [], encodingConstraint: EncodingConstraint? = nil) {
            self.isInputQuantized = isInputQuantized
            self.isOutputQuantized = isOutputQuantized
            self.isSymmetric = isSymmetric
            self.perChannelQuantization = perChannelQuantization
            self.params = params
            self.supportedKernels = supportedKernels
            self.encodingConstraint = encodingConstraint
        }
    }

    public var defaults = Defaults()
    /// Per parameter type.
    public var params: [String: ParamSettings] = [:]
    /// Per ONNX op type.
    public var opTypes: [String: OpSettings] = [:]
    /// Op-type chains treated as one fused op (only the last member's output is quantized).
    public var supergroups: [[String]] = []
    /// `model_input.is_input_quantized`.
    public var modelInputQuantized: Bool?
    /// `model_output.is_output_quantized`.
    public var modelOutputQuantized: Bool?
    /// Named pattern passes (HTP configs), kept for reference.
    public var supergroupPassList: [String] = []
    /// Unknown keys met while parsing, one line each (`file: key path: unknown key`).
    public var warnings: [String] = []

    public init() {}

    /// Hexagon architecture number from `hw_version` ("V73" → 73), when set.
    public var hexagonVersion: Int? {
        guard let text = defaults.hwVersion else { return nil }
        let digits = text.drop(while: { !$0.isNumber })
        return Int(digits)
    }

    // MARK: Loading

    /// Reads a QuantSim config JSON file.
    public static func load(from url: URL) throws -> QuantsimConfig {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw WhittleError(.io, url.path, "cannot read quantsim config (\(error.localizedDescription))")
        }
        return try parse(data, source: url.path)
    }

    /// Parses QuantSim config JSON; `source` names the file in errors and warnings.
    public static func parse(_ data: Data, source: String) throws -> QuantsimConfig {
        let root = JSONField(value: try JSONValue.parse(data, source: source), path: "", source: source)
        var parser = ConfigParser()
        let config = try parser.parseRoot(root)
        return config
    }
}

/// Reads the AIMET schema, collecting unknown keys as warnings.
private struct ConfigParser {
    var warnings: [String] = []

    mutating func unknown(_ field: JSONField, allowed: Set<String>) throws {
        for (key, member) in try field.members() where !allowed.contains(key) {
            warnings.append("\(field.source): \(member.path): unknown key (ignored)")
        }
    }

    mutating func parseRoot(_ root: JSONField) throws -> QuantsimConfig {
        guard case .object = root.value else { throw root.typeFailure("a JSON object at the top level") }
        try unknown(root, allowed: ["defaults", "params", "op_type", "supergroups", "model_input", "model_output", "supergroup_pass_list"])
        var config = QuantsimConfig()
        let defaults = try root.required("defaults")
        try unknown(defaults, allowed: ["ops", "params", "strict_symmetric", "unsigned_symmetric", "per_channel_quantization", "hw_version", "supported_kernels"])
        let ops = try defaults.required("ops")
        try unknown(ops, allowed: ["is_output_quantized", "is_input_quantized", "is_symmetric"])
        config.defaults.isOutputQuantized = try ops.optional("is_output_quantized").map { try $0.bool() }
        config.defaults.isInputQuantized = try ops.optional("is_input_quantized").map { try $0.bool() }
        config.defaults.isSymmetric = try ops.optional("is_symmetric").map { try $0.bool() }
        config.defaults.params = try paramSettings(try defaults.required("params"))
        config.defaults.strictSymmetric = try defaults.optional("strict_symmetric").map { try $0.bool() }
        config.defaults.unsignedSymmetric = try defaults.optional("unsigned_symmetric").map { try $0.bool() }
        config.defaults.perChannelQuantization = try defaults.optional("per_channel_quantization").map { try $0.bool() }
        config.defaults.hwVersion = try defaults.optional("hw_version").map { try $0.string() }
        config.defaults.supportedKernels = try defaults.optional("supported_kernels").map { try kernels($0) } ?? []

        for (name, field) in try root.required("params").members() {
            config.params[name] = try paramSettings(field)
        }
        for (opType, field) in try root.required("op_type").members() {
            config.opTypes[opType] = try opSettings(field)
        }
        for group in try root.required("supergroups").elements() {
            try unknown(group, allowed: ["op_list"])
            let list = try group.required("op_list")
            let ops = try list.elements().map { try $0.string() }
            guard ops.count >= 2 else { throw list.failure("a supergroup needs at least 2 op types, got \(ops.count)") }
            config.supergroups.append(ops)
        }
        let modelInput = try root.required("model_input")
        try unknown(modelInput, allowed: ["is_input_quantized"])
        config.modelInputQuantized = try modelInput.optional("is_input_quantized").map { try $0.bool() }
        let modelOutput = try root.required("model_output")
        try unknown(modelOutput, allowed: ["is_output_quantized"])
        config.modelOutputQuantized = try modelOutput.optional("is_output_quantized").map { try $0.bool() }
        if let passes = root.optional("supergroup_pass_list") {
            config.supergroupPassList = try passes.elements().map { try $0.string() }
        }
        config.warnings = warnings
        return config
    }

    mutating func paramSettings(_ field: JSONField) throws -> QuantsimConfig.ParamSettings {
        try unknown(field, allowed: ["is_quantized", "is_symmetric"])
        return QuantsimConfig.ParamSettings(
            isQuantized: try field.optional("is_quantized").map { try $0.bool() },
            isSymmetric: try field.optional("is_symmetric").map { try $0.bool() })
    }

    mutating func opSettings(_ field: JSONField) throws -> QuantsimConfig.OpSettings {
        try unknown(field, allowed: ["is_input_quantized", "is_output_quantized", "is_symmetric", "per_channel_quantization",
                                     "params", "supported_kernels", "encoding_constraints"])
        var settings = QuantsimConfig.OpSettings()
        settings.isInputQuantized = try field.optional("is_input_quantized").map { try $0.bool() }
        settings.isOutputQuantized = try field.optional("is_output_quantized").map { try $0.bool() }
        settings.isSymmetric = try field.optional("is_symmetric").map { try $0.bool() }
        settings.perChannelQuantization = try field.optional("per_channel_quantization").map { try $0.bool() }
        if let params = field.optional("params") {
            for (name, param) in try params.members() {
                settings.params[name] = try paramSettings(param)
            }
        }
        settings.supportedKernels = try field.optional("supported_kernels").map { try kernels($0) } ?? []
        if let constraint = field.optional("encoding_constraints") {
            try unknown(constraint, allowed: ["min", "max"])
            let minField = try constraint.required("min")
            let maxField = try constraint.required("max")
            let low = try minField.float()
            let high = try maxField.float()
            guard low.isFinite, high.isFinite, low < high else {
                throw constraint.failure("needs finite min < max, got min \(low), max \(high)")
            }
            settings.encodingConstraint = QuantsimConfig.EncodingConstraint(min: low, max: high)
        }
        return settings
    }

    mutating func kernels(_ field: JSONField) throws -> [QuantsimConfig.SupportedKernel] {
        try field.elements().map { kernel in
            try unknown(kernel, allowed: ["activation", "param"])
            return QuantsimConfig.SupportedKernel(
                activation: try precision(try kernel.required("activation")),
                param: try kernel.optional("param").map { try precision($0) })
        }
    }

    mutating func precision(_ field: JSONField) throws -> QuantsimConfig.SupportedKernel.Precision {
        try unknown(field, allowed: ["bitwidth", "dtype"])
        let bitField = try field.required("bitwidth")
        let bitWidth = try bitField.int()
        guard [4, 8, 16, 32].contains(bitWidth) else { throw bitField.failure("bitwidth must be 4, 8, 16 or 32, got \(bitWidth)") }
        let dtypeField = try field.required("dtype")
        let text = try dtypeField.string()
        guard let dtype = QuantsimConfig.SupportedKernel.DataType(rawValue: text) else {
            throw dtypeField.failure("dtype must be \"int\" or \"float\", got \"\(text)\"")
        }
        return QuantsimConfig.SupportedKernel.Precision(bitWidth: bitWidth, dtype: dtype)
    }
}

import Foundation
import WhittleEngine
import WhittleIO

/// The AIMET encodings JSON versions Whittle reads and writes (aimet.md §3).
public enum EncodingsVersion: String, Sendable, Equatable, CaseIterable {
    /// Legacy: `activation_encodings` / `param_encodings` are objects of lists, one entry
    /// per channel; `is_symmetric` is the string "True"/"False".
    case v0_6_1 = "0.6.1"
    /// Lists of named entries with `enc_type`, `bw`, `is_sym`, `scale[]`, `offset[]`.
    case v1_0_0 = "1.0.0"
    /// One `encodings` list in ONNX QuantizeLinear terms: `output_dtype`, `y_scale`,
    /// `y_zero_point` (= −offset for unsigned types), `axis`, `block_size`.
    case v2_0_0 = "2.0.0"

    /// The version for a file's `version` string ("2.0.0.beta" is read as 2.0.0).
    public init?(fileVersion: String) {
        if fileVersion == "2.0.0.beta" { self = .v2_0_0; return }
        self.init(rawValue: fileVersion)
    }
}

/// The `quantizer_args` block of an encodings file: how the encodings were produced.
public struct QuantizerArgs: Sendable, Equatable {
    public var activationBitwidth: Int?
    public var paramBitwidth: Int?
    /// "int" or "float".
    public var dtype: String?
    /// Parameter symmetry.
    public var isSymmetric: Bool?
    public var perChannelQuantization: Bool?
    /// AIMET quant scheme name, e.g. "post_training_tf_enhanced".
    public var quantScheme: String?

    public init(activationBitwidth: Int? = nil, paramBitwidth: Int? = nil, dtype: String? = nil,
                isSymmetric: Bool? = nil, perChannelQuantization: Bool? = nil, quantScheme: String? = nil) {
        self.activationBitwidth = activationBitwidth
        self.paramBitwidth = paramBitwidth
        self.dtype = dtype
        self.isSymmetric = isSymmetric
        self.perChannelQuantization = perChannelQuantization
        self.quantScheme = quantScheme
    }
}

/// The contents of an AIMET-compatible encodings file: one encoding per quantized tensor,
/// keyed by ONNX tensor name.
///
/// Symmetry is not stored in every format: 0.6.1 and 1.0.0 store a symmetric flag and the
/// offset (−2^(b−1) signed, −(2^(b−1)−1) strict, 0 unsigned); 2.0.0 stores only the zero
/// point, so a strict-symmetric parameter is written as a signed one (zero point 0) and an
/// activation is read back as asymmetric with the same grid.
public struct EncodingsFile: Sendable, Equatable {
    public var activations: [String: TensorEncoding]
    public var params: [String: TensorEncoding]
    /// Layers AIMET excluded from quantization (names as written by the exporter).
    public var excludedLayers: [String]
    public var quantizerArgs: QuantizerArgs?

    public init(activations: [String: TensorEncoding] = [:], params: [String: TensorEncoding] = [:],
                excludedLayers: [String] = [], quantizerArgs: QuantizerArgs? = nil) {
        self.activations = activations
        self.params = params
        self.excludedLayers = excludedLayers
        self.quantizerArgs = quantizerArgs
    }

    /// What a reader needs to know that some formats do not store.
    public struct ReadContext: Sendable {
        /// The per-channel axis of a tensor (0.6.1 and 1.0.0 do not store it).
        public var channelAxis: @Sendable (String) -> Int
        /// Whether a tensor is a parameter (2.0.0 does not split activations from params).
        /// nil: decide from the entry (a signed `output_dtype` or a non-null axis means a
        /// parameter, since AIMET writes activations unsigned).
        public var isParameter: @Sendable (String) -> Bool?

        public init(channelAxis: @escaping @Sendable (String) -> Int = { _ in 0 },
                    isParameter: @escaping @Sendable (String) -> Bool? = { _ in nil }) {
            self.channelAxis = channelAxis
            self.isParameter = isParameter
        }

        /// No model at hand: axis 0, parameters recognised from the entries.
        public static var standalone: ReadContext { ReadContext() }

        /// Axes from each tensor's consumer operator (`ParameterSlots`), parameters =
        /// initializers of `graph`.
        public static func graph(_ graph: Graph) -> ReadContext {
            let axes = ParameterSlots.channelAxes(in: graph)
            let initializers = Set(graph.initializers.keys)
            return ReadContext(channelAxis: { axes[$0] ?? 0 }, isParameter: { initializers.contains($0) })
        }
    }

    // MARK: Reading

    /// Reads an encodings file of any supported version (taken from its `version` key).
    public static func read(from url: URL, context: ReadContext = .standalone) throws -> EncodingsFile {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw WhittleError(.io, url.path, "cannot read encodings file (\(error.localizedDescription))")
        }
        return try decode(data, source: url.path, context: context).file
    }

    /// Decodes encodings JSON; `source` names the file in errors.
    public static func decode(_ data: Data, source: String, context: ReadContext = .standalone) throws
        -> (file: EncodingsFile, version: EncodingsVersion) {
        let root = JSONField(value: try JSONValue.parse(data, source: source), path: "", source: source)
        guard case .object = root.value else { throw root.typeFailure("a JSON object at the top level") }
        let versionField = try root.required("version")
        let versionText = try versionField.string()
        guard let version = EncodingsVersion(fileVersion: versionText) else {
            throw versionField.failure("unknown encodings version \"\(versionText)\" (supported: \(EncodingsVersion.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var file = EncodingsFile()
        switch version {
        case .v0_6_1:
            file.activations = try readLegacyGroup(try root.required("activation_encodings"), context: context)
            file.params = try readLegacyGroup(try root.required("param_encodings"), context: context)
        case .v1_0_0:
            file.activations = try readListGroup(try root.required("activation_encodings"), context: context)
            file.params = try readListGroup(try root.required("param_encodings"), context: context)
        case .v2_0_0:
            (file.activations, file.params) = try readQDQGroup(try root.required("encodings"), context: context)
        }
        if let excluded = root.optional("excluded_layers"), !excluded.isNull {
            file.excludedLayers = try excluded.elements().map { try $0.string() }
        }
        if let args = root.optional("quantizer_args"), !args.isNull {
            file.quantizerArgs = try readQuantizerArgs(args)
        }
        return (file, version)
    }

    private static func readQuantizerArgs(_ field: JSONField) throws -> QuantizerArgs {
        _ = try field.members()
        var args = QuantizerArgs()
        args.activationBitwidth = try field.optional("activation_bitwidth").map { try $0.int() }
        args.paramBitwidth = try field.optional("param_bitwidth").map { try $0.int() }
        args.dtype = try field.optional("dtype").map { try $0.string() }
        args.isSymmetric = try field.optional("is_symmetric").map { try $0.bool() }
        args.perChannelQuantization = try field.optional("per_channel_quantization").map { try $0.bool() }
        args.quantScheme = try field.optional("quant_scheme").map { try $0.string() }
        return args
    }

    /// Builds and checks one integer grid. `field` is the entry; `keys` name its bit width,
    /// scale and offset fields for errors.
    static func makeEncoding(bitWidth: Int, isSymmetric: Bool, scale: Float, offset: Int, entry: JSONField,
                             keys: (bitWidth: String, scale: String, offset: String)) throws -> QuantizationEncoding {
        guard (4...16).contains(bitWidth) else {
            throw entry.child(keys.bitWidth, .null).failure("integer bit width must be in 4...16, got \(bitWidth)")
        }
        guard scale.isFinite, scale > 0 else {
            throw entry.child(keys.scale, .null).failure("scale must be finite and > 0, got \(scale)")
        }
        let levels = 1 << bitWidth
        let half = levels / 2
        let offsetKey = entry.child(keys.offset, .null)
        if !isSymmetric {
            guard (-(levels - 1)...0).contains(offset) else {
                throw offsetKey.failure("offset must be in \(-(levels - 1))...0 for \(bitWidth)-bit, got \(offset)")
            }
            return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: offset, symmetry: .asymmetric)
        }
        switch offset {
        case -half: return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: offset, symmetry: .signedSymmetric)
        case -(half - 1): return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: offset, symmetry: .strictSymmetric)
        case 0: return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: offset, symmetry: .unsignedSymmetric)
        default:
            throw offsetKey.failure("symmetric \(bitWidth)-bit offset must be \(-half), \(-(half - 1)) or 0, got \(offset)")
        }
    }

    /// 0.6.1: `{name: [encoding, ...]}`.
    private static func readLegacyGroup(_ group: JSONField, context: ReadContext) throws -> [String: TensorEncoding] {
        var result: [String: TensorEncoding] = [:]
        for (tensorName, tensor) in try group.members() {
            let entries = try tensor.elements()
            guard !entries.isEmpty else { throw tensor.failure("encoding list is empty") }
            var grids: [QuantizationEncoding] = []
            for entry in entries {
                _ = try entry.members()
                let bitWidth = try entry.required("bitwidth").int()
                let dtype = try entry.optional("dtype").map { try $0.string() } ?? "int"
                switch dtype.lowercased() {
                case "float":
                    guard bitWidth == 16 else {
                        throw entry.child("bitwidth", .null).failure("float bit width must be 16, got \(bitWidth)")
                    }
                    guard entries.count == 1 else { throw tensor.failure("a float encoding cannot be per-channel") }
                    result[tensorName] = .float(bitWidth: 16)
                case "int":
                    let isSymmetric = try entry.required("is_symmetric").bool()
                    let scale = try entry.required("scale").float()
                    let offset = try entry.required("offset").int()
                    grids.append(try makeEncoding(bitWidth: bitWidth, isSymmetric: isSymmetric, scale: scale, offset: offset,
                                                  entry: entry, keys: ("bitwidth", "scale", "offset")))
                default:
                    throw entry.child("dtype", .null).failure("dtype must be \"int\" or \"float\", got \"\(dtype)\"")
                }
            }
            if grids.count == 1 {
                result[tensorName] = .perTensor(grids[0])
            } else if grids.count > 1 {
                result[tensorName] = .perChannel(axis: context.channelAxis(tensorName), grids)
            }
        }
        return result
    }

    /// 1.0.0: `[{name, dtype, enc_type, bw, is_sym, scale[], offset[]}, ...]`.
    private static func readListGroup(_ group: JSONField, context: ReadContext) throws -> [String: TensorEncoding] {
        var result: [String: TensorEncoding] = [:]
        for element in try group.elements() {
            _ = try element.members()
            let name = try element.required("name").string()
            let entry = JSONField(value: element.value, path: "\(group.path)[\"\(name)\"]", source: element.source)
            guard result[name] == nil else { throw entry.failure("duplicate encoding for tensor \"\(name)\"") }
            let encType = try entry.required("enc_type").string()
            switch encType {
            case "PER_TENSOR", "PER_CHANNEL": break
            case "PER_BLOCK", "LPBQ", "VECTOR":
                throw entry.child("enc_type", .null).failure("\(encType) encodings are not supported (tensor \"\(name)\")")
            default:
                throw entry.child("enc_type", .null).failure("unknown enc_type \"\(encType)\" (expected PER_TENSOR or PER_CHANNEL)")
            }
            let dtype = try entry.required("dtype").string()
            let bitWidth = try entry.required("bw").int()
            switch dtype.uppercased() {
            case "FLOAT":
                guard bitWidth == 16 else { throw entry.child("bw", .null).failure("float bit width must be 16, got \(bitWidth)") }
                guard encType == "PER_TENSOR" else { throw entry.child("enc_type", .null).failure("a float encoding must be PER_TENSOR, got \(encType)") }
                result[name] = .float(bitWidth: 16)
                continue
            case "INT": break
            default: throw entry.child("dtype", .null).failure("dtype must be \"INT\" or \"FLOAT\", got \"\(dtype)\"")
            }
            let isSymmetric = try entry.required("is_sym").bool()
            let scaleField = try entry.required("scale")
            let offsetField = try entry.required("offset")
            let scales = try scaleField.elements().map { try $0.float() }
            let offsets = try offsetField.elements().map { try $0.int() }
            guard !scales.isEmpty else { throw scaleField.failure("scale list is empty") }
            guard offsets.count == scales.count else {
                throw offsetField.failure("offset list has \(offsets.count) entries but scale has \(scales.count)")
            }
            if encType == "PER_TENSOR", scales.count != 1 {
                throw scaleField.failure("PER_TENSOR needs exactly 1 scale, got \(scales.count)")
            }
            var grids: [QuantizationEncoding] = []
            for (channel, scale) in scales.enumerated() {
                grids.append(try makeEncoding(bitWidth: bitWidth, isSymmetric: isSymmetric, scale: scale, offset: offsets[channel],
                                              entry: entry, keys: ("bw", "scale[\(channel)]", "offset[\(channel)]")))
            }
            result[name] = encType == "PER_TENSOR" ? .perTensor(grids[0]) : .perChannel(axis: context.channelAxis(name), grids)
        }
        return result
    }

    /// 2.0.0: `encodings: [{name, output_dtype, y_scale, y_zero_point, axis, block_size}, ...]`.
    private static func readQDQGroup(_ group: JSONField, context: ReadContext) throws
        -> (activations: [String: TensorEncoding], params: [String: TensorEncoding]) {
        var activations: [String: TensorEncoding] = [:]
        var params: [String: TensorEncoding] = [:]
        for element in try group.elements() {
            _ = try element.members()
            let name = try element.required("name").string()
            let entry = JSONField(value: element.value, path: "\(group.path)[\"\(name)\"]", source: element.source)
            guard activations[name] == nil, params[name] == nil else {
                throw entry.failure("duplicate encoding for tensor \"\(name)\"")
            }
            if entry.optional("per_block_int_scale") != nil || entry.optional("per_channel_float_scale") != nil {
                throw entry.failure("LPBQ encodings are not supported (tensor \"\(name)\")")
            }
            if let block = entry.optional("block_size"), !block.isNull {
                throw block.failure("PER_BLOCK encodings are not supported (tensor \"\(name)\", block_size \(block.value.excerpt))")
            }
            let dtypeField = try entry.required("output_dtype")
            let dtype = try dtypeField.string()
            let axisField = entry.optional("axis")
            let axis = try axisField.flatMap { $0.isNull ? nil : try $0.int() }
            let decoded: TensorEncoding
            let signed: Bool
            if dtype == "float16" || dtype == "float32" {
                guard dtype == "float16" else { throw dtypeField.failure("float bit width must be 16, got \(dtype)") }
                decoded = .float(bitWidth: 16)
                signed = false
            } else {
                let isUnsigned = dtype.hasPrefix("uint")
                guard dtype.hasPrefix("int") || isUnsigned, let bitWidth = Int(dtype.dropFirst(isUnsigned ? 4 : 3)) else {
                    throw dtypeField.failure("output_dtype must be int<N>, uint<N> or float16, got \"\(dtype)\"")
                }
                guard (4...16).contains(bitWidth) else {
                    throw dtypeField.failure("integer bit width must be in 4...16, got \(bitWidth) (\(dtype))")
                }
                signed = !isUnsigned
                let scaleField = try entry.required("y_scale")
                let scales: [Float]
                let perChannel: Bool
                if case .array = scaleField.value {
                    scales = try scaleField.elements().map { try $0.float() }
                    perChannel = true
                    guard !scales.isEmpty else { throw scaleField.failure("y_scale list is empty") }
                    guard axis != nil else { throw scaleField.failure("a y_scale list needs an axis (axis is null)") }
                } else {
                    scales = [try scaleField.float()]
                    perChannel = false
                }
                let zeroField = entry.optional("y_zero_point")
                var zeroPoints = [Int](repeating: 0, count: scales.count)
                if let zeroField, !zeroField.isNull {
                    if case .array = zeroField.value {
                        zeroPoints = try zeroField.elements().map { try $0.int() }
                        guard zeroPoints.count == scales.count else {
                            throw zeroField.failure("y_zero_point has \(zeroPoints.count) entries but y_scale has \(scales.count)")
                        }
                    } else {
                        zeroPoints = [Int](repeating: try zeroField.int(), count: scales.count)
                    }
                }
                let half = 1 << (bitWidth - 1)
                var grids: [QuantizationEncoding] = []
                for (channel, scale) in scales.enumerated() {
                    let zeroPoint = zeroPoints[channel]
                    let keys = (bitWidth: "output_dtype", scale: perChannel ? "y_scale[\(channel)]" : "y_scale",
                                offset: perChannel ? "y_zero_point[\(channel)]" : "y_zero_point")
                    // ONNX: x = (q - zp) * s. Unsigned q = AIMET q, so offset = -zp. Signed
                    // q = AIMET q - 2^(b-1), so offset = -2^(b-1) - zp.
                    if signed && zeroPoint == 0 {
                        grids.append(try makeEncoding(bitWidth: bitWidth, isSymmetric: true, scale: scale, offset: -half, entry: entry, keys: keys))
                    } else {
                        let offset = signed ? -half - zeroPoint : -zeroPoint
                        let levels = 1 << bitWidth
                        guard (-(levels - 1)...0).contains(offset) else {
                            throw entry.child(keys.offset, .null).failure("zero point must be in \(signed ? -half : 0)...\(signed ? half - 1 : levels - 1) for \(dtype), got \(zeroPoint)")
                        }
                        grids.append(try makeEncoding(bitWidth: bitWidth, isSymmetric: false, scale: scale, offset: offset, entry: entry, keys: keys))
                    }
                }
                if perChannel, let axis {
                    decoded = .perChannel(axis: axis, grids)
                } else {
                    decoded = .perTensor(grids[0])
                }
            }
            let isParameter = context.isParameter(name) ?? (signed || axis != nil)
            if isParameter { params[name] = decoded } else { activations[name] = decoded }
        }
        return (activations, params)
    }

    // MARK: Writing

    /// The file's JSON text in `version`, with tensors in name order. Throws when an
    /// encoding cannot be written (invalid values, or — for 1.0.0 — per-channel grids that
    /// mix symmetric and asymmetric channels). `source` names the destination in errors.
    public func encoded(version: EncodingsVersion, source: String = "encodings") throws -> Data {
        try validateValues(source: source)
        var members: [JSONValue.JSONMember] = [JSONValue.JSONMember("version", .string(version.rawValue))]
        switch version {
        case .v0_6_1:
            members.append(JSONValue.JSONMember("activation_encodings", .object(activations.sorted { $0.key < $1.key }.map { JSONValue.JSONMember($0.key, Self.legacyEntries($0.value)) })))
            members.append(JSONValue.JSONMember("param_encodings", .object(params.sorted { $0.key < $1.key }.map { JSONValue.JSONMember($0.key, Self.legacyEntries($0.value)) })))
        case .v1_0_0:
            members.append(JSONValue.JSONMember("activation_encodings", .array(try activations.sorted { $0.key < $1.key }.map { try Self.listEntry($0.key, $0.value, source: source) })))
            members.append(JSONValue.JSONMember("param_encodings", .array(try params.sorted { $0.key < $1.key }.map { try Self.listEntry($0.key, $0.value, source: source) })))
        case .v2_0_0:
            let entries = activations.sorted { $0.key < $1.key }.map { Self.qdqEntry($0.key, $0.value, isParameter: false) }
                + params.sorted { $0.key < $1.key }.map { Self.qdqEntry($0.key, $0.value, isParameter: true) }
            members.append(JSONValue.JSONMember("encodings", .array(entries)))
        }
        if version != .v2_0_0 || !excludedLayers.isEmpty {
            members.append(JSONValue.JSONMember("excluded_layers", .array(excludedLayers.map { .string($0) })))
        }
        if let quantizerArgs {
            var args: [JSONValue.JSONMember] = []
            if let value = quantizerArgs.activationBitwidth { args.append(JSONValue.JSONMember("activation_bitwidth", .int(value))) }
            if let value = quantizerArgs.dtype { args.append(JSONValue.JSONMember("dtype", .string(value))) }
            if let value = quantizerArgs.isSymmetric { args.append(JSONValue.JSONMember("is_symmetric", .bool(value))) }
            if let value = quantizerArgs.paramBitwidth { args.append(JSONValue.JSONMember("param_bitwidth", .int(value))) }
            if let value = quantizerArgs.perChannelQuantization { args.append(JSONValue.JSONMember("per_channel_quantization", .bool(value))) }
            if let value = quantizerArgs.quantScheme { args.append(JSONValue.JSONMember("quant_scheme", .string(value))) }
            members.append(JSONValue.JSONMember("quantizer_args", .object(args)))
        }
        return Data(JSONValue.object(members).prettyText.utf8)
    }

    /// Writes the file atomically in `version`.
    public func write(to url: URL, version: EncodingsVersion) throws {
        let data = try encoded(version: version, source: url.path)
        try AtomicFile.write(data, to: url)
    }

    private static func grids(_ encoding: TensorEncoding) -> [QuantizationEncoding] {
        switch encoding {
        case .perTensor(let grid): return [grid]
        case .perChannel(_, let grids): return grids
        case .float: return []
        }
    }

    private static func legacyEntries(_ encoding: TensorEncoding) -> JSONValue {
        if case .float(let bitWidth) = encoding {
            return .array([.object([JSONValue.JSONMember("bitwidth", .int(bitWidth)), JSONValue.JSONMember("dtype", .string("float"))])])
        }
        return .array(grids(encoding).map { grid in
            .object([
                JSONValue.JSONMember("bitwidth", .int(grid.bitWidth)),
                JSONValue.JSONMember("dtype", .string("int")),
                JSONValue.JSONMember("is_symmetric", .string(grid.isSymmetric ? "True" : "False")),
                JSONValue.JSONMember("max", .float(grid.max)),
                JSONValue.JSONMember("min", .float(grid.min)),
                JSONValue.JSONMember("offset", .int(grid.offset)),
                JSONValue.JSONMember("scale", .float(grid.scale)),
            ])
        })
    }

    private static func listEntry(_ name: String, _ encoding: TensorEncoding, source: String) throws -> JSONValue {
        if case .float(let bitWidth) = encoding {
            return .object([JSONValue.JSONMember("name", .string(name)), JSONValue.JSONMember("dtype", .string("FLOAT")),
                             JSONValue.JSONMember("enc_type", .string("PER_TENSOR")), JSONValue.JSONMember("bw", .int(bitWidth))])
        }
        let all = grids(encoding)
        let isSymmetric = all[0].isSymmetric
        guard all.allSatisfy({ $0.isSymmetric == isSymmetric && $0.bitWidth == all[0].bitWidth }) else {
            throw WhittleError(.invalidData, source, "\"\(name)\": per-channel grids mix symmetric and asymmetric channels or bit widths; 1.0.0 stores one is_sym and bw per tensor")
        }
        let perChannel: Bool
        if case .perChannel = encoding { perChannel = true } else { perChannel = false }
        return .object([
            JSONValue.JSONMember("name", .string(name)),
            JSONValue.JSONMember("dtype", .string("INT")),
            JSONValue.JSONMember("enc_type", .string(perChannel ? "PER_CHANNEL" : "PER_TENSOR")),
            JSONValue.JSONMember("bw", .int(all[0].bitWidth)),
            JSONValue.JSONMember("is_sym", .bool(isSymmetric)),
            JSONValue.JSONMember("scale", .array(all.map { .float($0.scale) })),
            JSONValue.JSONMember("offset", .array(all.map { .int($0.offset) })),
        ])
    }

    /// A 2.0.0 entry. Activations are written unsigned (zero point −offset). Parameters
    /// whose channels are all signed or strict symmetric are written signed with zero point
    /// 0; other parameters unsigned.
    private static func qdqEntry(_ name: String, _ encoding: TensorEncoding, isParameter: Bool) -> JSONValue {
        var axis = JSONValue.null
        var scale = JSONValue.null
        var zeroPoint = JSONValue.null
        var dtype: String
        switch encoding {
        case .float(let bitWidth):
            dtype = "float\(bitWidth)"
        case .perTensor, .perChannel:
            let all = grids(encoding)
            let signed = isParameter && all.allSatisfy { $0.symmetry == .signedSymmetric || $0.symmetry == .strictSymmetric }
            dtype = (signed ? "int" : "uint") + String(all.map(\.bitWidth).max() ?? 8)
            let zeroPoints = all.map { signed ? 0 : -$0.offset }
            if case .perChannel(let channelAxis, _) = encoding {
                axis = .int(channelAxis)
                scale = .array(all.map { .float($0.scale) })
                if zeroPoints.contains(where: { $0 != 0 }) { zeroPoint = .array(zeroPoints.map { .int($0) }) }
            } else {
                scale = .float(all[0].scale)
                if zeroPoints[0] != 0 { zeroPoint = .int(zeroPoints[0]) }
            }
        }
        return .object([
            JSONValue.JSONMember("name", .string(name)),
            JSONValue.JSONMember("output_dtype", .string(dtype)),
            JSONValue.JSONMember("y_scale", scale),
            JSONValue.JSONMember("y_zero_point", zeroPoint),
            JSONValue.JSONMember("axis", axis),
            JSONValue.JSONMember("block_size", .null),
        ])
    }

    // MARK: Validation

    /// Checks every encoding's values (bit widths, scales, offsets, list lengths) as the
    /// readers do, so a written file always reads back.
    public func validateValues(source: String) throws {
        for (group, encodings) in [("activation_encodings", activations), ("param_encodings", params)] {
            for (name, encoding) in encodings.sorted(by: { $0.key < $1.key }) {
                let entry = JSONField(value: .null, path: JSONField.childPath(group, key: name), source: source)
                switch encoding {
                case .float(let bitWidth):
                    guard bitWidth == 16 else { throw entry.child("bitwidth", .null).failure("float bit width must be 16, got \(bitWidth)") }
                case .perTensor(let grid):
                    try Self.check(grid, entry: entry, keys: ("bitwidth", "scale", "offset"))
                case .perChannel(let axis, let grids):
                    guard !grids.isEmpty else { throw entry.failure("per-channel encoding list is empty") }
                    guard axis >= 0 else { throw entry.child("axis", .null).failure("channel axis must be >= 0, got \(axis)") }
                    for (channel, grid) in grids.enumerated() {
                        try Self.check(grid, entry: entry, keys: ("bitwidth[\(channel)]", "scale[\(channel)]", "offset[\(channel)]"))
                    }
                }
            }
        }
    }

    private static func check(_ grid: QuantizationEncoding, entry: JSONField, keys: (bitWidth: String, scale: String, offset: String)) throws {
        let rebuilt = try makeEncoding(bitWidth: grid.bitWidth, isSymmetric: grid.isSymmetric, scale: grid.scale,
                                       offset: grid.offset, entry: entry, keys: keys)
        guard rebuilt.symmetry == grid.symmetry else {
            throw entry.child(keys.offset, .null).failure("offset \(grid.offset) does not match \(grid.symmetry.rawValue) for \(grid.bitWidth)-bit")
        }
        guard grid.steps == rebuilt.steps else {
            throw entry.failure("grid steps \(grid.steps) do not match \(grid.symmetry.rawValue) \(grid.bitWidth)-bit (\(rebuilt.steps))")
        }
    }

    /// Checks that every encoded name is a tensor of `graph` (an initializer, a graph input
    /// or a node output) and that per-channel lists match the channel dimension of known
    /// initializers. `source` names the encodings file in errors.
    public func validate(against graph: Graph, source: String = "encodings") throws {
        var tensors = Set(graph.initializers.keys)
        for input in graph.inputs { tensors.insert(input.name) }
        for node in graph.nodes { for output in node.outputs where !output.isEmpty { tensors.insert(output) } }
        for (group, encodings) in [("activation_encodings", activations), ("param_encodings", params)] {
            for (name, encoding) in encodings.sorted(by: { $0.key < $1.key }) {
                let key = JSONField.childPath(group, key: name)
                guard tensors.contains(name) else {
                    throw WhittleError(.invalidData, source, "\(key): tensor \"\(name)\" is not in graph \"\(graph.name)\" (not an initializer, input or node output)")
                }
                if case .perChannel(let axis, let grids) = encoding, let shape = graph.initializers[name]?.shape {
                    guard axis < shape.count else {
                        throw WhittleError(.invalidData, source, "\(key): channel axis \(axis) is out of range for shape \(shape)")
                    }
                    guard shape[axis] == grids.count else {
                        throw WhittleError(.invalidData, source, "\(key): \(grids.count) per-channel encodings but tensor \"\(name)\" has \(shape[axis]) channels on axis \(axis) (shape \(shape))")
                    }
                }
            }
        }
    }
}

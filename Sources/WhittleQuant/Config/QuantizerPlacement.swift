import WhittleEngine

/// How one tensor is quantized.
public struct QuantizerSettings: Sendable, Equatable {
    public enum Role: String, Sendable, Equatable {
        /// A tensor computed at run time (node output or graph input).
        case activation
        /// A constant (weight, bias, BN statistics, other float initializers).
        case param
    }

    public var role: Role
    public var bitWidth: Int
    public var symmetry: QuantizationSymmetry
    /// With `unsigned_symmetric`: a symmetric quantizer may switch to unsigned symmetric
    /// when its calibrated range is non-negative.
    public var unsignedSymmetricAllowed: Bool
    /// Per-channel axis, or nil for per-tensor.
    public var perChannelAxis: Int?
    /// False: the quantizer exists (e.g. a bias) but does not quantize.
    public var enabled: Bool
    /// Fixed output range from the config (e.g. Softmax [0, 1]).
    public var encodingConstraint: QuantsimConfig.EncodingConstraint?
    /// For params: the AIMET param type (`weight`, `bias`, `running_mean`, `running_var`),
    /// nil for other constants.
    public var paramType: String?
    /// Float16 pass-through (AIMET's `float` quantizer at 16 bits): values are rounded to the
    /// nearest float16 instead of onto an integer grid (`--float16`).
    public var float16: Bool = false

    public init(role: Role, bitWidth: Int, symmetry: QuantizationSymmetry, unsignedSymmetricAllowed: Bool = false,
                perChannelAxis: Int? = nil, enabled: Bool = true,
                encodingConstraint: QuantsimConfig.EncodingConstraint? = nil, paramType: String? = nil) {
        self.role = role
        self.bitWidth = bitWidth
        self.symmetry = symmetry
        self.unsignedSymmetricAllowed = unsignedSymmetricAllowed
        self.perChannelAxis = perChannelAxis
        self.enabled = enabled
        self.encodingConstraint = encodingConstraint
        self.paramType = paramType
    }
}

/// Which tensors of a graph get quantizers under a QuantSim config, and how.
///
/// Rules (aimet.md §1.3, §4): precedence defaults < params < op_type < supergroups <
/// model_input/model_output. Params are recognised by their slot in the consuming op
/// (`ParameterSlots`); every param gets an entry (`enabled` false when the config leaves it
/// unquantized). An activation gets an entry only when it is quantized: supergroup members
/// other than the last have none; outputs of data-movement ops (registry `isDataMovement`,
/// or op types the config marks `is_output_quantized: False`) keep their input's encoding
/// (`sharedEncodings`). Integer tensors and compile-time constants other than params are
/// never quantized. Hexagon exception rules for `hw_version` are applied last and again
/// after each override.
public struct QuantizerPlacement: Sendable, Equatable {
    /// Tensors with their own quantizer.
    public private(set) var quantizers: [String: QuantizerSettings]
    /// Tensors that keep the encoding of another tensor (the data input of a data-movement
    /// op): tensor → that input.
    public private(set) var sharedEncodings: [String: String]
    /// The config's Hexagon version number (73 for "V73"), when set.
    public let hexagonVersion: Int?
    private let graphTensors: Set<String>
    private let matMulInputs: [MatMulInputs]
    private let groupNorms: [GroupNormTensors]
    private let strictSymmetric: Bool

    private struct MatMulInputs: Sendable, Equatable {
        var first: String
        var second: String
    }

    /// A GroupNormalization's output and its parameter inputs (scale, bias).
    private struct GroupNormTensors: Sendable, Equatable {
        var output: String
        var params: [String]
    }

    /// The tensor whose quantizer determines `tensor`'s encoding: itself, or the end of its
    /// chain of shared encodings. nil when neither has a quantizer.
    public func encodingSource(for tensor: String) -> String? {
        var current = tensor
        var visited: Set<String> = []
        while quantizers[current] == nil {
            guard let next = sharedEncodings[current], visited.insert(current).inserted else { return nil }
            current = next
        }
        return current
    }

    /// The settings that quantize `tensor` (its own, or those of the tensor it shares with).
    public func settings(for tensor: String) -> QuantizerSettings? {
        encodingSource(for: tensor).flatMap { quantizers[$0] }
    }

    // MARK: Overrides

    private func ownQuantizer(_ tensor: String) throws -> String {
        guard graphTensors.contains(tensor) else {
            throw WhittleError(.invalidArgument, tensor, "not a tensor of the graph")
        }
        if quantizers[tensor] != nil { return tensor }
        if let source = encodingSource(for: tensor) {
            throw WhittleError(.invalidArgument, tensor, "has no quantizer of its own: it keeps the encoding of \"\(source)\"; override \"\(source)\" instead")
        }
        throw WhittleError(.invalidArgument, tensor, "has no quantizer under this config")
    }

    /// Sets the bit width of `tensor`'s quantizer (mixed precision), then re-applies the
    /// hardware rules.
    public mutating func override(tensor: String, bitWidth: Int) throws {
        let key = try ownQuantizer(tensor)
        guard (4...16).contains(bitWidth) else {
            throw WhittleError(.invalidArgument, tensor, "bit width must be in 4...16, got \(bitWidth)")
        }
        quantizers[key]?.bitWidth = bitWidth
        applyGroupNormRule()
        applyMatMulRule()
    }

    /// Makes `tensor`'s quantizer a float16 pass-through (AIMET's float quantizer, 16 bits).
    public mutating func setFloat16(tensor: String) throws {
        let key = try ownQuantizer(tensor)
        quantizers[key]?.float16 = true
        quantizers[key]?.bitWidth = 16
        quantizers[key]?.perChannelAxis = nil
    }

    /// Gives `tensor` a quantizer of its own with `settings` (e.g. taken from an encodings
    /// file), replacing any shared encoding it had.
    public mutating func assign(tensor: String, settings: QuantizerSettings) throws {
        guard graphTensors.contains(tensor) else {
            throw WhittleError(.invalidArgument, tensor, "not a tensor of the graph")
        }
        guard (4...16).contains(settings.bitWidth) || !settings.enabled else {
            throw WhittleError(.invalidArgument, tensor, "bit width must be in 4...16, got \(settings.bitWidth)")
        }
        quantizers[tensor] = settings
        sharedEncodings[tensor] = nil
    }

    /// Turns `tensor`'s quantizer off (the tensor stays float).
    public mutating func disable(tensor: String) throws {
        let key = try ownQuantizer(tensor)
        quantizers[key]?.enabled = false
    }

    /// Turns `tensor`'s quantizer on.
    public mutating func enable(tensor: String) throws {
        let key = try ownQuantizer(tensor)
        quantizers[key]?.enabled = true
    }

    // MARK: Resolution

    /// Output types of operators that produce integer or boolean tensors.
    private static let integerOps: Set<String> = [
        "Shape", "Size", "NonZero", "ArgMax", "ArgMin", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
        "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "NonMaxSuppression",
    ]

    /// Ops whose inputs after the first are shapes, indices, ranges or scales, never data.
    private static let firstInputOnlyOps: Set<String> = [
        "Resize", "Upsample", "Clip", "Pad", "Slice", "Expand", "Tile", "TopK", "Split", "Squeeze", "Unsqueeze",
        "Reshape", "Gather", "GatherElements", "GatherND", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
        "ReduceProd", "ReduceL2", "CumSum", "ScatterElements", "ScatterND",
    ]

    private static func isDataSlot(opType: String, index: Int) -> Bool {
        if index == 0 { return true }
        if firstInputOnlyOps.contains(opType) { return false }
        if opType != "Concat", OperatorRegistry.spec(for: opType)?.isDataMovement == true { return false }
        return true
    }

    private static func isFloat(_ type: ElementType) -> Bool { type == .float32 || type == .float64 }

    /// Places quantizers on `graph` under `config`. Bit widths must be in 4...16.
    public static func resolve(graph: Graph, config: QuantsimConfig, defaultActivationBits: Int,
                               defaultParamBits: Int) throws -> QuantizerPlacement {
        guard (4...16).contains(defaultActivationBits) else {
            throw WhittleError(.invalidArgument, "activation bit width", "must be in 4...16, got \(defaultActivationBits)")
        }
        guard (4...16).contains(defaultParamBits) else {
            throw WhittleError(.invalidArgument, "param bit width", "must be in 4...16, got \(defaultParamBits)")
        }
        let defaults = config.defaults
        let strict = defaults.strictSymmetric ?? false
        let unsignedAllowed = defaults.unsignedSymmetric ?? false
        func symmetry(_ isSymmetric: Bool) -> QuantizationSymmetry {
            isSymmetric ? (strict ? .strictSymmetric : .signedSymmetric) : .asymmetric
        }

        // Constants (initializers, Constant outputs, anything computed only from them) and
        // constant tensors' shapes / element types.
        var constantTypes: [String: ElementType] = graph.initializers.mapValues(\.elementType)
        var constantRanks: [String: Int] = graph.initializers.mapValues(\.shape.count)
        var constantCounts: [String: Int] = graph.initializers.mapValues { $0.shape.reduce(1, *) }
        var constants = Set(graph.initializers.keys)
        var nonFloat = Set(graph.runtimeInputs.filter { !isFloat($0.elementType) }.map(\.name))
        for node in graph.nodes {
            let present = node.inputs.filter { !$0.isEmpty }
            if node.opType == "Constant" {
                for output in node.outputs where !output.isEmpty {
                    constants.insert(output)
                    if case .tensor(let value)? = node.attributes["value"] {
                        constantTypes[output] = value.elementType
                        constantRanks[output] = value.shape.count
                        constantCounts[output] = value.shape.reduce(1, *)
                    } else if node.attributes["value_int"] != nil || node.attributes["value_ints"] != nil {
                        constantTypes[output] = .int64
                    }
                }
                continue
            }
            if !present.isEmpty, present.allSatisfy(constants.contains) {
                for output in node.outputs where !output.isEmpty { constants.insert(output) }
                continue
            }
            var outputsNonFloat = false
            if integerOps.contains(node.opType) {
                outputsNonFloat = true
            } else if node.opType == "Cast" {
                if case .int(let to)? = node.attributes["to"] { outputsNonFloat = ![1, 10, 11, 16].contains(to) }
            } else if node.opType == "ConstantOfShape" {
                if case .tensor(let value)? = node.attributes["value"] { outputsNonFloat = !isFloat(value.elementType) }
            } else {
                let runtime = present.filter { !constants.contains($0) }
                let floatConstantData = node.inputs.enumerated().contains { index, name in
                    !name.isEmpty && constants.contains(name) && isDataSlot(opType: node.opType, index: index)
                        && constantTypes[name].map(isFloat) == true
                }
                outputsNonFloat = !runtime.isEmpty && runtime.allSatisfy(nonFloat.contains) && !floatConstantData
            }
            if outputsNonFloat {
                for output in node.outputs where !output.isEmpty { nonFloat.insert(output) }
            }
            if node.opType == "TopK", node.outputs.count > 1, !node.outputs[1].isEmpty { nonFloat.insert(node.outputs[1]) }
        }
        func isRuntimeFloat(_ tensor: String) -> Bool {
            !tensor.isEmpty && !constants.contains(tensor) && !nonFloat.contains(tensor)
        }

        // Supergroups: sequential branch-free chains, longest patterns first.
        let consumers = graph.consumers()
        let graphOutputs = Set(graph.outputs.map(\.name))
        var groupPosition: [Int: (isLast: Bool, isFirst: Bool)] = [:]
        let patterns = config.supergroups.enumerated().sorted { ($0.element.count, -$0.offset) > ($1.element.count, -$1.offset) }.map(\.element)
        for pattern in patterns {
            for (start, node) in graph.nodes.enumerated() where node.opType == pattern[0] && groupPosition[start] == nil {
                var chain = [start]
                var current = node
                for opType in pattern.dropFirst() {
                    guard let output = current.outputs.first, !output.isEmpty, !graphOutputs.contains(output),
                          let next = consumers[output], next.count == 1, groupPosition[next[0]] == nil,
                          graph.nodes[next[0]].opType == opType, graph.nodes[next[0]].input(0) == output
                    else { chain = []; break }
                    chain.append(next[0])
                    current = graph.nodes[next[0]]
                }
                guard chain.count == pattern.count else { continue }
                for (position, index) in chain.enumerated() {
                    groupPosition[index] = (position == chain.count - 1, position == 0)
                }
            }
        }

        var quantizers: [String: QuantizerSettings] = [:]
        var shared: [String: String] = [:]
        func activation(for opType: String?) -> QuantizerSettings {
            let op = opType.flatMap { config.opTypes[$0] }
            let isSymmetric = op?.isSymmetric ?? defaults.isSymmetric ?? false
            return QuantizerSettings(role: .activation, bitWidth: defaultActivationBits, symmetry: symmetry(isSymmetric),
                                     unsignedSymmetricAllowed: isSymmetric && unsignedAllowed,
                                     encodingConstraint: op?.encodingConstraint)
        }

        for node in graph.nodes {
            let op = config.opTypes[node.opType]
            // Params, decided by their first consumer.
            for (index, input) in node.inputs.enumerated() where !input.isEmpty && constants.contains(input) && quantizers[input] == nil {
                guard let type = constantTypes[input], isFloat(type) else { continue }
                let paramType = ParameterSlots.parameterType(opType: node.opType, inputIndex: index)
                guard paramType != nil || isDataSlot(opType: node.opType, index: index) else { continue }
                let typeSettings = paramType.flatMap { config.params[$0] }
                let opParam = paramType.flatMap { op?.params[$0] }
                let quantized = opParam?.isQuantized ?? typeSettings?.isQuantized ?? defaults.params.isQuantized ?? true
                let isSymmetric = opParam?.isSymmetric ?? typeSettings?.isSymmetric ?? defaults.params.isSymmetric ?? true
                let perChannel = (op?.perChannelQuantization ?? defaults.perChannelQuantization ?? false)
                    && paramType == "weight" && (constantCounts[input] ?? 0) > 1 && (constantRanks[input] ?? 0) >= 1
                quantizers[input] = QuantizerSettings(
                    role: .param, bitWidth: defaultParamBits, symmetry: symmetry(isSymmetric),
                    unsignedSymmetricAllowed: isSymmetric && unsignedAllowed,
                    perChannelAxis: perChannel ? ParameterSlots.channelAxis(of: node, inputIndex: index, rank: constantRanks[input]) : nil,
                    enabled: quantized, paramType: paramType)
            }
        }

        for (index, node) in graph.nodes.enumerated() {
            let op = config.opTypes[node.opType]
            if let position = groupPosition[index], !position.isLast { continue }
            let explicitOutput = op?.isOutputQuantized
            let keepsInput = explicitOutput == false
                || (explicitOutput == nil && OperatorRegistry.spec(for: node.opType)?.isDataMovement == true)
            let runtimeInputs = node.inputs.enumerated().filter { isRuntimeFloat($0.element) && isDataSlot(opType: node.opType, index: $0.offset) }
            for output in node.outputs where isRuntimeFloat(output) {
                if keepsInput {
                    if runtimeInputs.count == 1 {
                        shared[output] = runtimeInputs[0].element
                        continue
                    }
                    if explicitOutput == false { continue }
                }
                if explicitOutput ?? defaults.isOutputQuantized ?? true {
                    quantizers[output] = activation(for: node.opType)
                }
            }
        }

        // Inputs of ops that quantize their inputs (not inside a supergroup).
        for (index, node) in graph.nodes.enumerated() {
            if let position = groupPosition[index], !position.isFirst { continue }
            let op = config.opTypes[node.opType]
            guard op?.isInputQuantized ?? defaults.isInputQuantized ?? false else { continue }
            for (slot, input) in node.inputs.enumerated() where isRuntimeFloat(input) && isDataSlot(opType: node.opType, index: slot) {
                if quantizers[input] == nil && shared[input] == nil { quantizers[input] = activation(for: node.opType) }
            }
        }

        // Model inputs and outputs (highest precedence).
        if let quantizeInputs = config.modelInputQuantized {
            for input in graph.runtimeInputs where isRuntimeFloat(input.name) {
                if quantizeInputs {
                    if quantizers[input.name] == nil { quantizers[input.name] = activation(for: nil) }
                } else {
                    quantizers[input.name] = nil
                }
            }
        }
        if let quantizeOutputs = config.modelOutputQuantized {
            let producers = graph.producers()
            for output in graph.outputs where isRuntimeFloat(output.name) {
                if quantizeOutputs {
                    if quantizers[output.name] == nil && shared[output.name] == nil {
                        quantizers[output.name] = activation(for: producers[output.name].map { graph.nodes[$0].opType })
                    }
                } else {
                    quantizers[output.name] = nil
                    shared[output.name] = nil
                }
            }
        }

        var tensors = Set(graph.initializers.keys)
        for input in graph.inputs { tensors.insert(input.name) }
        for node in graph.nodes { for output in node.outputs where !output.isEmpty { tensors.insert(output) } }
        let matMuls = graph.nodes.compactMap { node -> MatMulInputs? in
            guard node.opType == "MatMul", let first = node.input(0), let second = node.input(1) else { return nil }
            return MatMulInputs(first: first, second: second)
        }
        let groupNorms = graph.nodes.compactMap { node -> GroupNormTensors? in
            guard node.opType == "GroupNormalization", let output = node.outputs.first, !output.isEmpty else { return nil }
            let params = node.inputs.dropFirst().filter { !$0.isEmpty && quantizers[$0]?.role == .param }
            return params.isEmpty ? nil : GroupNormTensors(output: output, params: params)
        }
        var placement = QuantizerPlacement(quantizers: quantizers, sharedEncodings: shared, hexagonVersion: config.hexagonVersion,
                                           graphTensors: tensors, matMulInputs: matMuls, groupNorms: groupNorms,
                                           strictSymmetric: strict)

        // Hexagon exception rules (aimet.md §4.3).
        placement.applyGroupNormRule(fallback: activation(for: "GroupNormalization"))
        placement.applyMatMulRule()
        return placement
    }

    /// HTP GroupNormalization rule (V73 and later): the parameters take the bit width and
    /// symmetry of the output's quantizer (`fallback` when the output has none).
    private mutating func applyGroupNormRule(fallback: QuantizerSettings? = nil) {
        guard let version = hexagonVersion, version >= 73 else { return }
        for norm in groupNorms {
            guard let output = settings(for: norm.output) ?? fallback else { continue }
            for param in norm.params {
                quantizers[param]?.bitWidth = output.bitWidth
                quantizers[param]?.symmetry = output.symmetry
            }
        }
    }

    /// HTP MatMul rule: on V66/V68/V69 the second input is 8-bit symmetric; on V73 and later
    /// a 16-bit second input is made symmetric and the first input raised to 16 bits
    /// (supported pairs {8×8}, {16×8}, {16×16 symmetric}).
    private mutating func applyMatMulRule() {
        guard let version = hexagonVersion else { return }
        let symmetric: QuantizationSymmetry = strictSymmetric ? .strictSymmetric : .signedSymmetric
        for pair in matMulInputs {
            guard let second = encodingSource(for: pair.second) else { continue }
            if (66...69).contains(version) {
                quantizers[second]?.bitWidth = 8
                quantizers[second]?.symmetry = symmetric
            } else if version >= 73, quantizers[second]?.bitWidth == 16 {
                quantizers[second]?.symmetry = symmetric
                if let first = encodingSource(for: pair.first) { quantizers[first]?.bitWidth = 16 }
            }
        }
    }
}

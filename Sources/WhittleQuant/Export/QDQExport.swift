import WhittleEngine

/// Turns a quantized model into an ONNX graph with QuantizeLinear/DequantizeLinear pairs that
/// onnxruntime (and Qualcomm's converters) run as the simulation does.
///
/// Mapping of one AIMET grid (`value = scale * (code + offset)`, code in 0...steps) to ONNX
/// (`x = (q - zero_point) * scale`):
/// - signed or strict symmetric: signed storage, `q = code + offset`, zero point 0;
/// - asymmetric and unsigned symmetric: unsigned storage, `q = code`, zero point `-offset`.
/// Storage is int8/uint8 (default domain) up to 8 bits and int16/uint16 above (the
/// `com.microsoft` QuantizeLinear/DequantizeLinear, which onnxruntime implements for 16-bit
/// types at any opset). When a grid is narrower than its storage type (bit widths below 8 or
/// 16, strict symmetric) the activation's DequantizeLinear is followed by a Clip to the grid's
/// ends, which is exactly the simulation's clamp. Weights are stored as integer codes with a
/// DequantizeLinear, per channel along the quantizer's axis (opset 13 and later).
/// A float16 pass-through becomes Cast(float16) -> Cast(float).
public enum QDQExport {
    public static let microsoftDomain = "com.microsoft"

    public static func graph(_ model: QuantizedModel) throws -> Graph {
        let simulated = try model.simulationGraph()
        var result = simulated
        // The encoding behind each fake-quantize node, by the node's output name (see
        // `QuantizedModel.simulationGraph` for the naming).
        let graphInputs = Set(model.graph.runtimeInputs.map(\.name))
        var gridsByOutput: [String: (grids: [QuantizationEncoding], axis: Int)] = [:]
        for (tensor, settings, encoding) in model.activeQuantizers() {
            let output = settings.role == .param ? "\(tensor)#qdq" : (graphInputs.contains(tensor) ? "\(tensor)#q" : tensor)
            switch encoding {
            case .perTensor(let grid): gridsByOutput[output] = ([grid], 0)
            case .perChannel(let axis, let grids): gridsByOutput[output] = (grids, axis)
            case .float: break
            }
        }
        var nodes: [Node] = []
        nodes.reserveCapacity(simulated.nodes.count * 2)
        var consumers: [String: Int] = [:]
        for node in simulated.nodes { for input in node.inputs where !input.isEmpty { consumers[input, default: 0] += 1 } }

        for node in simulated.nodes {
            switch node.opType {
            case OperatorRegistry.fakeQuantizeOpType where node.domain == OperatorRegistry.whittleDomain:
                guard let output = node.outputs.first, let grids = gridsByOutput[output] else {
                    throw WhittleError(.invalidModel, node.name, "fake-quantize node without an encoding")
                }
                nodes.append(contentsOf: try quantizeDequantize(node, grids: grids.grids, axis: grids.axis, graph: &result, consumers: consumers))
            case OperatorRegistry.fakeQuantizeFloat16OpType where node.domain == OperatorRegistry.whittleDomain:
                guard let input = node.inputs.first, let output = node.outputs.first else { continue }
                nodes.append(Node(name: "\(output)#to_half", opType: "Cast", inputs: [input], outputs: ["\(output)#half"],
                                  attributes: ["to": .int(10)]))
                nodes.append(Node(name: "\(output)#to_float", opType: "Cast", inputs: ["\(output)#half"], outputs: [output],
                                  attributes: ["to": .int(1)]))
            default:
                nodes.append(node)
            }
        }
        result.nodes = nodes
        return result
    }

    /// The storage of one grid family (every channel of a tensor shares the bit width).
    ///
    /// Signed storage only when every channel is signed or strict symmetric: with
    /// `unsigned_symmetric`, a per-channel weight can mix signed channels with unsigned ones
    /// (offset 0, codes up to 2^b - 1, which do not fit the signed type); such a family is
    /// stored unsigned with per-channel zero points `-offset` (2^(b-1) for the signed channels).
    struct Storage {
        var type: ElementType
        var signed: Bool
        var domain: String
        var range: ClosedRange<Int>

        init(_ grid: QuantizationEncoding) { self.init([grid]) }

        init(_ grids: [QuantizationEncoding]) {
            signed = !grids.isEmpty && grids.allSatisfy { $0.symmetry == .signedSymmetric || $0.symmetry == .strictSymmetric }
            let wide = (grids.map(\.bitWidth).max() ?? 8) > 8
            type = wide ? (signed ? .int16 : .uint16) : (signed ? .int8 : .uint8)
            domain = wide ? QDQExport.microsoftDomain : ""
            switch type {
            case .int16: range = Int(Int16.min)...Int(Int16.max)
            case .uint16: range = 0...Int(UInt16.max)
            case .int8: range = -128...127
            default: range = 0...255
            }
        }

        func zeroPoint(_ grid: QuantizationEncoding) -> Int { signed ? 0 : -grid.offset }
        /// The stored integers a grid spans.
        func span(_ grid: QuantizationEncoding) -> ClosedRange<Int> {
            signed ? grid.offset...(grid.offset + grid.steps) : 0...grid.steps
        }
    }

    private static func quantizeDequantize(_ node: Node, grids channelGrids: [QuantizationEncoding], axis: Int,
                                           graph: inout Graph, consumers: [String: Int]) throws -> [Node] {
        guard let input = node.inputs.first, let output = node.outputs.first else { return [] }
        for name in node.inputs.dropFirst() { graph.initializers[name] = nil }
        guard let first = channelGrids.first else { return [] }
        let storage = Storage(channelGrids)
        let perChannel = channelGrids.count > 1
        // Before opset 13 DequantizeLinear has no axis: per-channel weights are stored as integers,
        // dequantized with scale 1 and multiplied by their per-channel scales (the same float
        // product DequantizeLinear computes).
        let emulateAxis = perChannel && graph.opsetVersion < 13 && storage.domain.isEmpty
        if perChannel && graph.opsetVersion < 13 && graph.initializers[input] == nil && storage.domain.isEmpty {
            throw WhittleError(.invalidArgument, input, "per-channel activation quantization needs opset 13 or later; the model is opset \(graph.opsetVersion)")
        }
        let scaleName = "\(output)#scale", zeroName = "\(output)#zero_point"
        let shape = perChannel ? [channelGrids.count] : []
        graph.initializers[scaleName] = Tensor(shape: shape, floats: channelGrids.map(\.scale))
        graph.initializers[zeroName] = Tensor(shape: shape, ints: channelGrids.map { Int64(storage.zeroPoint($0)) }, elementType: storage.type)
        let attributes: [String: Attribute] = perChannel ? ["axis": .int(axis)] : [:]

        // A constant (weight): store the integers, dequantize at run time.
        if let weights = graph.initializers[input] {
            let codesName = "\(output)#int"
            graph.initializers[codesName] = integerCodes(weights, grids: channelGrids, axis: axis, storage: storage)
            if (consumers[input] ?? 0) <= 1 { graph.initializers[input] = nil }
            if emulateAxis && !storage.signed {
                // Per-channel zero points cannot be emulated with one scalar zero point: keep the
                // quantized weights as float values (exactly what DequantizeLinear would give).
                graph.initializers[codesName] = nil
                graph.initializers[scaleName] = nil
                graph.initializers[zeroName] = nil
                let codes = integerCodes(weights, grids: channelGrids, axis: axis, storage: storage).ints
                let resolved = axis < 0 ? axis + weights.rank : axis
                let inner = weights.shape[(resolved + 1)...].reduce(1, *)
                let values = codes.indices.map { index -> Float in
                    let grid = channelGrids[(index / max(1, inner)) % channelGrids.count]
                    return Float(Int(codes[index]) + grid.offset) * grid.scale
                }
                graph.initializers[output] = Tensor(shape: weights.shape, floats: values)
                return []
            }
            if emulateAxis {
                let resolvedAxis = axis < 0 ? axis + weights.rank : axis
                var scaleShape = [Int](repeating: 1, count: weights.rank)
                scaleShape[resolvedAxis] = channelGrids.count
                graph.initializers[scaleName] = Tensor(shape: scaleShape, floats: channelGrids.map(\.scale))
                graph.initializers["\(output)#unit_scale"] = Tensor(shape: [], floats: [1])
                graph.initializers[zeroName] = Tensor(shape: [], ints: [0], elementType: storage.type)
                return [
                    Node(name: "\(output)#dequantize", opType: "DequantizeLinear",
                         inputs: [codesName, "\(output)#unit_scale", zeroName], outputs: ["\(output)#codes"]),
                    Node(name: "\(output)#scale_channels", opType: "Mul", inputs: ["\(output)#codes", scaleName], outputs: [output]),
                ]
            }
            return [Node(name: "\(output)#dequantize", opType: "DequantizeLinear", domain: storage.domain,
                         inputs: [codesName, scaleName, zeroName], outputs: [output], attributes: attributes)]
        }

        // An activation: quantize, dequantize, and clamp when the grid is narrower than its type.
        let needsClip = !perChannel && storage.span(first) != storage.range
        let dequantized = needsClip ? "\(output)#dequantized" : output
        var result = [
            Node(name: "\(output)#quantize", opType: "QuantizeLinear", domain: storage.domain,
                 inputs: [input, scaleName, zeroName], outputs: ["\(output)#int"], attributes: attributes),
            Node(name: "\(output)#dequantize", opType: "DequantizeLinear", domain: storage.domain,
                 inputs: ["\(output)#int", scaleName, zeroName], outputs: [dequantized], attributes: attributes),
        ]
        if needsClip {
            graph.initializers["\(output)#clip_min"] = Tensor(shape: [], floats: [first.min])
            graph.initializers["\(output)#clip_max"] = Tensor(shape: [], floats: [first.max])
            result.append(Node(name: "\(output)#clip", opType: "Clip",
                               inputs: [dequantized, "\(output)#clip_min", "\(output)#clip_max"], outputs: [output]))
        }
        return result
    }

    /// The stored integers of a weight tensor (codes shifted per `storage`).
    private static func integerCodes(_ weights: Tensor, grids: [QuantizationEncoding], axis: Int, storage: Storage) -> Tensor {
        let values = weights.floats
        let shape = weights.shape
        let channels = grids.count
        let resolvedAxis = axis < 0 ? axis + shape.count : axis
        let inner = channels > 1 && resolvedAxis + 1 <= shape.count ? shape[(resolvedAxis + 1)...].reduce(1, *) : max(1, values.count)
        let prepared = grids.map(QuantizationGrid.init)
        var codes = [Int64](repeating: 0, count: values.count)
        for index in values.indices {
            let channel = channels > 1 ? (index / inner) % channels : 0
            let grid = prepared[channel]
            let code = Int(grid.code(values[index]))
            codes[index] = Int64(storage.signed ? code + grids[channel].offset : code)
        }
        return Tensor(shape: shape, ints: codes, elementType: storage.type)
    }
}

import WhittleEngine

/// A Conv, Gemm or MatMul with constant weights that AdaRound / Sequential MSE can treat as a
/// layer problem, with the geometry needed to cut GEMM rows out of its input and output.
struct AdaRoundLayerSite: Sendable {
    enum Kind: Sendable, Equatable {
        case conv(AdaRoundConvGeometry)
        /// Gemm (`transA = 0`, `alpha = 1`): `weightTransposed` when `transB = 0` (weight `[K, O]`).
        case gemm(weightTransposed: Bool, biasScale: Float)
        /// MatMul by a constant `[K, O]` matrix: rows are all leading positions of the input.
        case matMul
    }

    var nodeIndex: Int
    var nodeName: String
    var kind: Kind
    var inputName: String
    var outputName: String
    var weightName: String
    var weightShape: [Int]
    var biasName: String?
    var groups: Int
    var outputChannels: Int
    var patchSize: Int
    /// The weight axis holding output channels (per-channel encodings must use it).
    var channelAxis: Int
    /// Output positions per sample (Conv: outH * outW; Gemm: 1; MatMul: product of middle dims).
    var positions: Int
    /// The activation that alone consumes the output (Relu or Clip), if any.
    var activation: FusedActivation

    var label: String { "node '\(nodeName)'" }

    /// The weight in GEMM form `[O x K]` (row = output channel).
    func gemmWeights(_ weight: Tensor) -> [Float] {
        switch kind {
        case .conv, .gemm(weightTransposed: false, _):
            return weight.floats
        case .gemm(weightTransposed: true, _), .matMul:
            return Self.transpose(weight.floats, rows: patchSize, columns: outputChannels)
        }
    }

    /// A weight tensor (original layout) from GEMM-form values.
    func weightTensor(fromGemm values: [Float]) -> Tensor {
        switch kind {
        case .conv, .gemm(weightTransposed: false, _):
            return Tensor(shape: weightShape, floats: values)
        case .gemm(weightTransposed: true, _), .matMul:
            return Tensor(shape: weightShape, floats: Self.transpose(values, rows: outputChannels, columns: patchSize))
        }
    }

    static func transpose(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        var result = [Float](repeating: 0, count: values.count)
        for r in 0..<rows { for c in 0..<columns { result[c * rows + r] = values[r * columns + c] } }
        return result
    }

    /// One grid per output channel from a tensor encoding (a per-tensor grid is repeated).
    func rowEncodings(_ encoding: TensorEncoding) throws -> [QuantizationEncoding]? {
        switch encoding {
        case .float:
            return nil
        case .perTensor(let grid):
            return Array(repeating: grid, count: outputChannels)
        case .perChannel(let axis, let grids):
            let normalised = axis < 0 ? axis + weightShape.count : axis
            guard normalised == channelAxis else {
                throw WhittleError(.invalidArgument, "weight '\(weightName)'",
                                   "per-channel encodings along axis \(axis); \(label) has its output channels on axis \(channelAxis)")
            }
            guard grids.count == outputChannels else {
                throw WhittleError(.invalidArgument, "weight '\(weightName)'",
                                   "\(grids.count) per-channel encodings for \(outputChannels) output channels")
            }
            return grids
        }
    }

    /// Finds the layer sites of `analysis.graph` whose weights have an integer encoding.
    static func find(in analysis: GraphAnalysis, encodings: [String: TensorEncoding]) throws -> [AdaRoundLayerSite] {
        let graph = analysis.graph
        let consumers = graph.consumers()
        let outputs = Set(graph.outputs.map(\.name))
        var weightUses: [String: Int] = [:]
        for node in graph.nodes { for name in node.inputs.dropFirst().prefix(1) where !name.isEmpty { weightUses[name, default: 0] += 1 } }
        var sites: [AdaRoundLayerSite] = []
        for runtime in analysis.runtimeNodes {
            let node = runtime.node
            guard ["Conv", "Gemm", "MatMul"].contains(node.opType), let input = node.input(0), let weightName = node.input(1),
                  let output = node.outputs.first, !output.isEmpty,
                  let encoding = encodings[weightName],
                  let weight = graph.initializers[weightName], weight.isFloatingPoint,
                  analysis.constants[input] == nil, weightUses[weightName] == 1,
                  let inputInfo = analysis.infos[input], let outputInfo = analysis.infos[output] else { continue }
            if case .float = encoding { continue }
            let context = runtime.context
            var activation = FusedActivation.none
            if !outputs.contains(output), let readers = consumers[output], readers.count == 1 {
                let reader = graph.nodes[readers[0]]
                if reader.opType == "Relu" { activation = .relu }
                if reader.opType == "Clip" { activation = try clipBounds(reader, analysis: analysis) }
            }
            var site = AdaRoundLayerSite(nodeIndex: runtime.index, nodeName: node.name, kind: .matMul, inputName: input,
                                         outputName: output, weightName: weightName, weightShape: weight.shape,
                                         biasName: nil, groups: 1, outputChannels: 0, patchSize: 0, channelAxis: 0,
                                         positions: 1, activation: activation)
            switch node.opType {
            case "Conv":
                let geometry = try AdaRoundConvGeometry(context: context, input: inputInfo.shape, weight: weight.shape,
                                                        output: outputInfo.shape)
                site.kind = .conv(geometry)
                site.biasName = node.input(2)
                site.groups = geometry.groups
                site.outputChannels = weight.shape[0]
                site.patchSize = weight.shape.dropFirst().reduce(1, *)
                site.channelAxis = 0
                site.positions = geometry.outH * geometry.outW
            case "Gemm":
                guard try context.int("transA", default: 0) == 0, try context.float("alpha", default: 1) == 1,
                      weight.rank == 2, inputInfo.rank == 2 else { continue }
                let transB = try context.int("transB", default: 0) != 0
                site.kind = .gemm(weightTransposed: !transB, biasScale: try context.float("beta", default: 1))
                site.outputChannels = transB ? weight.shape[0] : weight.shape[1]
                site.patchSize = transB ? weight.shape[1] : weight.shape[0]
                site.channelAxis = transB ? 0 : 1
                if let bias = node.input(2) {
                    guard let value = analysis.constants[bias], value.count == site.outputChannels else { continue }
                    site.biasName = bias
                }
            default:
                guard weight.rank == 2, inputInfo.rank >= 2, inputInfo.shape.last == weight.shape[0] else { continue }
                site.kind = .matMul
                site.outputChannels = weight.shape[1]
                site.patchSize = weight.shape[0]
                site.channelAxis = 1
                site.positions = inputInfo.shape.dropFirst().dropLast().reduce(1, *)
            }
            sites.append(site)
        }
        return sites
    }

    /// Clip's bounds (attributes before opset 11, optional inputs from 11 on).
    static func clipBounds(_ node: Node, analysis: GraphAnalysis) throws -> FusedActivation {
        var low = -Float.infinity, high = Float.infinity
        if analysis.graph.opsetVersion < 11 {
            if case .float(let value)? = node.attributes["min"] { low = value }
            if case .float(let value)? = node.attributes["max"] { high = value }
        } else {
            if let name = node.input(1) {
                guard let value = analysis.constants[name]?.floats.first else { return .none }
                low = value
            }
            if let name = node.input(2) {
                guard let value = analysis.constants[name]?.floats.first else { return .none }
                high = value
            }
        }
        return .clip(min: low, max: high)
    }

    // MARK: Row extraction

    /// Patch rows of the images `batchStart ..< batchStart + batchCount` from the layer input
    /// `x` (the batch's tensor), for the rows listed in `rows` (`(image, position)` pairs,
    /// `rowIndex` = where each goes). Writes `patches[g][rowIndex][k]`.
    func writePatches(x: UnsafePointer<Float>, batchStart: Int, rowImages: ArraySlice<Int>, rowPositions: ArraySlice<Int>,
                      firstRow: Int, totalRows: Int, into patches: UnsafeMutablePointer<Float>) {
        let k = patchSize
        switch kind {
        case .conv(let geometry):
            let channelsPerGroup = geometry.inChannels / geometry.groups
            let plane = geometry.inH * geometry.inW
            for (offset, (image, position)) in zip(rowImages, rowPositions).enumerated() {
                let row = firstRow + offset
                let oh = position / geometry.outW, ow = position % geometry.outW
                let base = x + (image - batchStart) * geometry.inChannels * plane
                for g in 0..<geometry.groups {
                    let target = patches + (g * totalRows + row) * k
                    var index = 0
                    for c in 0..<channelsPerGroup {
                        let channel = base + (g * channelsPerGroup + c) * plane
                        for kh in 0..<geometry.kH {
                            let ih = oh * geometry.strideH - geometry.padTop + kh * geometry.dilationH
                            for kw in 0..<geometry.kW {
                                let iw = ow * geometry.strideW - geometry.padLeft + kw * geometry.dilationW
                                let inside = ih >= 0 && ih < geometry.inH && iw >= 0 && iw < geometry.inW
                                target[index] = inside ? channel[ih * geometry.inW + iw] : 0
                                index += 1
                            }
                        }
                    }
                }
            }
        case .gemm, .matMul:
            for (offset, (image, position)) in zip(rowImages, rowPositions).enumerated() {
                let source = x + ((image - batchStart) * positions + position) * k
                (patches + (firstRow + offset) * k).update(from: source, count: k)
            }
        }
    }

    /// Output rows (all channels) of the listed `(image, position)` pairs from the layer
    /// output `y` of a batch. Writes `targets[rowIndex][o]`.
    func writeTargets(y: UnsafePointer<Float>, batchStart: Int, rowImages: ArraySlice<Int>, rowPositions: ArraySlice<Int>,
                      firstRow: Int, into targets: UnsafeMutablePointer<Float>) {
        let outputs = outputChannels
        for (offset, (image, position)) in zip(rowImages, rowPositions).enumerated() {
            let target = targets + (firstRow + offset) * outputs
            let local = image - batchStart
            switch kind {
            case .conv:
                for o in 0..<outputs { target[o] = y[(local * outputs + o) * positions + position] }
            case .gemm, .matMul:
                target.update(from: y + (local * positions + position) * outputs, count: outputs)
            }
        }
    }
}

/// Conv geometry resolved from ONNX attributes (1-D and 2-D; a 1-D conv has height 1), with
/// the output size checked against shape inference.
///
/// Explicit pads: `out = floor((in + pb + pe - ((k - 1) d + 1)) / s) + 1`; `VALID`: no padding;
/// `SAME_UPPER` / `SAME_LOWER`: `out = ceil(in / s)`, total padding
/// `max(0, (out - 1) s + (k - 1) d + 1 - in)` with the odd element at the end (UPPER) or the
/// beginning (LOWER) — the ONNX Conv spec, as the engine's kernels resolve it.
struct AdaRoundConvGeometry: Sendable, Equatable {
    var inChannels, inH, inW, kH, kW, strideH, strideW, dilationH, dilationW, padTop, padLeft, outH, outW, groups: Int

    init(context: NodeContext, input: [Int], weight: [Int], output: [Int]) throws {
        guard input.count == 4 || input.count == 3, weight.count == input.count, output.count == input.count else {
            throw context.error("AdaRound handles 1-D and 2-D convolutions only (input \(input))", kind: .unsupportedOperator)
        }
        let spatial = input.count - 2
        let groups = try context.int("group", default: 1)
        let strides = try context.ints("strides", default: Array(repeating: 1, count: spatial))
        let dilations = try context.ints("dilations", default: Array(repeating: 1, count: spatial))
        let pads = try context.ints("pads", default: Array(repeating: 0, count: 2 * spatial))
        let autoPad = try context.string("auto_pad", default: "NOTSET")
        guard strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial, groups >= 1 else {
            throw context.error("strides \(strides), dilations \(dilations) and pads \(pads) do not fit a \(spatial)-D convolution")
        }
        var begin: [Int] = [], out: [Int] = []
        for axis in 0..<spatial {
            let size = input[2 + axis], kernel = weight[2 + axis], stride = strides[axis]
            let extent = (kernel - 1) * dilations[axis] + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                let o = (size + stride - 1) / stride
                let total = max(0, (o - 1) * stride + extent - size)
                begin.append(autoPad == "SAME_UPPER" ? total / 2 : total - total / 2)
                out.append(o)
            case "VALID":
                begin.append(0)
                out.append((size - extent) / stride + 1)
            default:
                begin.append(pads[axis])
                out.append((size + pads[axis] + pads[spatial + axis] - extent) / stride + 1)
            }
        }
        guard out == Array(output.dropFirst(2)) else {
            throw context.error("AdaRound's convolution geometry gives output \(out), shape inference \(Array(output.dropFirst(2)))")
        }
        inChannels = input[1]
        self.groups = groups
        if spatial == 1 {
            inH = 1; inW = input[2]; kH = 1; kW = weight[2]; strideH = 1; strideW = strides[0]
            dilationH = 1; dilationW = dilations[0]; padTop = 0; padLeft = begin[0]; outH = 1; outW = out[0]
        } else {
            inH = input[2]; inW = input[3]; kH = weight[2]; kW = weight[3]; strideH = strides[0]; strideW = strides[1]
            dilationH = dilations[0]; dilationW = dilations[1]; padTop = begin[0]; padLeft = begin[1]; outH = out[0]; outW = out[1]
        }
    }
}

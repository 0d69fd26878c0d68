import WhittleEngine

/// Least-squares weight reconstruction (aimet.md 2.5 step 3): refit a Conv's (or Gemm's)
/// weights so that, fed with its input as the COMPRESSED model computes it, it reproduces
/// its output as the ORIGINAL model computes it.
///
/// Sampling: every reconstruction image contributes `max(10, ceil(2 · columns / images))`
/// output positions (AIMET samples 10 per image; more are taken when there are too few
/// images for twice as many equations as unknowns), capped at the layer's H_out·W_out,
/// drawn without replacement with a fixed seed. Each position gives one row: the zero-padded
/// input patch (C_in · kH · kW values, plus a 1 when the layer has a bias) against the
/// original output's C_out values. The system is solved with a small ridge toward the
/// current weights (see `LinearAlgebra.ridgeLeastSquares`), which keeps it well posed when
/// some input channels are dead.
enum Reconstruction {
    static let positionsPerImage = 10
    static let ridge: Float = 1e-4

    /// The graph with node `layer`'s weights (and bias) refitted.
    static func refit(layer: String, compressed: Graph, original: Graph, target: String,
                      inputs: [String: Tensor], batchSize: Int, activations: ActivationSource? = nil,
                      targetChannels: [Int]? = nil, job: JobContext) throws -> Graph {
        let analysis = try GraphAnalysis(graph: compressed, batchSize: 1)
        let unit = try RefitLayer(analysis, layer: layer)
        let outChannels = unit.outChannels, positions = unit.positions, columns = unit.columns

        let inputRun = try prefixRun(compressed, to: unit.source, inputs: inputs, activations: activations)
        let inputRunner = try BatchRunner(graph: inputRun.graph, batchSize: batchSize)
        let images = try inputRunner.validate(inputs: inputRun.inputs)
        guard images > 0 else { throw WhittleError(.invalidData, "reconstruction data", "holds no samples") }
        let picks = samplePositions(layer: layer, positions: positions, images: images, columns: columns)
        let rows = images * (picks.first?.count ?? 0)

        // Inputs from the compressed model.
        var x = [Float](repeating: 0, count: rows * columns)
        var row = 0
        try inputRunner.forEachBatch(inputs: inputRun.inputs, shouldStop: { job.isCancelled }) { batch, plan in
            guard let buffer = plan.outputBuffer(unit.source), let info = plan.info(unit.source) else {
                throw WhittleError(.invalidModel, "tensor '\(unit.source)'", "not readable during reconstruction")
            }
            unit.gatherInputs(buffer, samples: batch, perSample: info.count / max(1, batch.count), picks: picks,
                              channels: nil, into: &x, row: &row)
        }

        // Targets from the original model (only the output channels the layer still writes).
        let channelMap = targetChannels ?? Array(0..<outChannels)
        guard channelMap.count == outChannels, let maxChannel = channelMap.max() else {
            throw WhittleError(.invalidModel, "layer '\(layer)'", "writes \(outChannels) channels, \(channelMap.count) are mapped")
        }
        let exactChannels = targetChannels == nil
        var y = [Float](repeating: 0, count: rows * outChannels)
        row = 0
        let targetRun = try prefixRun(original, to: target, inputs: inputs, activations: activations)
        let targetRunner = try BatchRunner(graph: targetRun.graph, batchSize: batchSize)
        try targetRunner.forEachBatch(inputs: targetRun.inputs, shouldStop: { job.isCancelled }) { batch, plan in
            guard let buffer = plan.outputBuffer(target), let info = plan.info(target) else {
                throw WhittleError(.invalidModel, "tensor '\(target)'", "not readable during reconstruction")
            }
            let perSample = info.count / max(1, batch.count)
            let available = perSample / max(1, positions)
            guard perSample == available * positions, exactChannels ? available == outChannels : maxChannel < available else {
                throw WhittleError(.shapeMismatch, "tensor '\(target)'",
                                   "original output has \(perSample) values per sample, the layer writes \(outChannels * positions)")
            }
            unit.gatherTargets(buffer, samples: batch, perSample: perSample, picks: picks, channelMap: channelMap,
                               into: &y, row: &row)
        }
        try job.checkCancellation("reconstruction")

        let solution = try LinearAlgebra.ridgeLeastSquares(x: x, y: y, rows: rows, cols: columns, outputs: outChannels,
                                                           prior: unit.prior(in: compressed), ridge: ridge)
        return unit.install(solution, in: compressed)
    }

    /// The output positions each image contributes to `layer`'s system (see the type's
    /// documentation): `max(10, ceil(2 · columns / images))` per image, capped at `positions`,
    /// drawn without replacement with a seed derived from the layer's name.
    static func samplePositions(layer: String, positions: Int, images: Int, columns: Int) -> [[Int]] {
        guard positions > 0, images > 0 else { return [] }
        let perImage = min(positions, max(positionsPerImage, (2 * columns + images - 1) / images))
        var random = SplitMix64(seed: layer.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
        var picks: [[Int]] = []
        picks.reserveCapacity(images)
        var pool = Array(0..<positions)
        for _ in 0..<images {
            for slot in 0..<perImage {
                let other = slot + Int(random.next() % UInt64(positions - slot))
                pool.swapAt(slot, other)
            }
            picks.append(Array(pool.prefix(perImage)))
        }
        return picks
    }

    /// The graph to run (and its inputs) for `tensor` of `graph` over `inputs`: the changed
    /// part only when `activations` (built over the same inputs) can supply the rest,
    /// otherwise the whole prefix from the model inputs.
    static func prefixRun(_ graph: Graph, to tensor: String, inputs: [String: Tensor],
                          activations: ActivationSource?) throws -> (graph: Graph, inputs: [String: Tensor]) {
        if let activations, let plan = try activations.plan(for: tensor, of: graph) { return plan }
        return (graph.prefix(computing: tensor), inputs)
    }
}

/// Where a layer's system reads one row: the zero-padded input patch of a Conv output position
/// (C_in · kH · kW values, channel-major), or a Gemm's feature vector.
struct PatchGeometry: Sendable {
    var height = 1, width = 1, outWidth = 1
    var kernel = (h: 1, w: 1), strides = (h: 1, w: 1), dilations = (h: 1, w: 1)
    var padTop = 0, padLeft = 0
    var isConv: Bool
    /// Values one channel contributes to a row.
    var area: Int { kernel.h * kernel.w }

    init(conv: ConvLayer) {
        isConv = true
        height = conv.inputShape[2]
        width = conv.inputShape[3]
        outWidth = conv.outputShape[3]
        kernel = conv.kernel
        strides = conv.strides
        dilations = conv.dilations
        padTop = conv.pads.top
        padLeft = conv.pads.left
    }

    init(features: Int) { isConv = false }

    /// Writes the row of output `position` of the sample starting at `sampleBase` in `buffer`
    /// (NCHW, or [N, features]) to `x[start...]`: every channel of the tensor in order
    /// (`channels` nil, then `count` channels are read), or only `channels` (indices into the
    /// tensor's channels, in the order the columns should have). Padding stays untouched (0).
    func gather(_ buffer: UnsafeBufferPointer<Float>, sampleBase base: Int, position: Int, channels: [Int]?,
                count: Int? = nil, into x: inout [Float], at start: Int) {
        let channelCount = channels?.count ?? count ?? 0
        x.withUnsafeMutableBufferPointer { row in
            guard isConv else {
                for k in 0..<channelCount { row[start + k] = buffer[base + (channels?[k] ?? k)] }
                return
            }
            let oy = position / outWidth, ox = position % outWidth
            var column = start
            for k in 0..<channelCount {
                let c = channels?[k] ?? k
                for i in 0..<kernel.h {
                    let iy = oy * strides.h + i * dilations.h - padTop
                    for j in 0..<kernel.w {
                        let ix = ox * strides.w + j * dilations.w - padLeft
                        if iy >= 0, iy < height, ix >= 0, ix < width { row[column] = buffer[base + (c * height + iy) * width + ix] }
                        column += 1
                    }
                }
            }
        }
    }
}

/// A Conv (groups 1) or Gemm whose weights reconstruction refits, with the layout of its
/// least-squares system: one row per sampled output position, `columns` unknowns per output
/// channel (the input patch, channel-major, then a 1 for the bias).
struct RefitLayer {
    var index: Int
    var node: Node
    var conv: ConvLayer?
    var gemm: GemmLayer?
    /// The tensor the layer reads.
    var source: String
    var hasBias: Bool
    var inChannels: Int
    var outChannels: Int
    /// Output positions per sample (H_out · W_out; 1 for a Gemm).
    var positions: Int
    var geometry: PatchGeometry
    /// Shape of the refitted weight as `install` writes it.
    var weightShape: [Int]
    /// Unknowns per output channel taken from the input patch (C_in · kH · kW).
    var patch: Int { inChannels * geometry.area }
    var columns: Int { patch + (hasBias ? 1 : 0) }

    init(_ analysis: GraphAnalysis, layer: String) throws {
        let graph = analysis.graph
        guard let index = graph.nodes.firstIndex(where: { $0.name == layer }), let source = graph.nodes[index].input(0) else {
            throw WhittleError(.invalidModel, "layer '\(layer)'", "not found for reconstruction")
        }
        let node = graph.nodes[index]
        self.index = index
        self.node = node
        self.source = source
        hasBias = node.input(2) != nil
        switch node.opType {
        case "Conv":
            guard case .success(let value) = ConvLayer.read(analysis, nodeIndex: index), value.groups == 1 else {
                throw WhittleError(.invalidModel, "layer '\(layer)'", "only groups-1 2-D convolutions are reconstructed")
            }
            conv = value
            inChannels = value.inChannels
            outChannels = value.outChannels
            positions = value.outputShape[2] * value.outputShape[3]
            geometry = PatchGeometry(conv: value)
            weightShape = value.weight.shape
        case "Gemm":
            guard case .success(let value) = GemmLayer.read(analysis, nodeIndex: index) else {
                throw WhittleError(.invalidModel, "layer '\(layer)'", "Gemm cannot be reconstructed")
            }
            gemm = value
            inChannels = value.inFeatures
            outChannels = value.outFeatures
            positions = 1
            geometry = PatchGeometry(features: value.inFeatures)
            weightShape = [value.inFeatures, value.outFeatures]
        default:
            throw WhittleError(.invalidModel, "layer '\(layer)'", "\(node.opType) cannot be reconstructed")
        }
    }

    /// The same layer reading only the first `count` channels of its input (an SVD factor at a
    /// lower rank): for `install`, whose solution then has `count · area (+ 1)` rows.
    func narrowed(toInputs count: Int) -> RefitLayer {
        var narrowed = self
        narrowed.inChannels = count
        if conv != nil { narrowed.weightShape[1] = count } else { narrowed.weightShape[0] = count }
        return narrowed
    }

    /// Appends the rows of `samples` (whose values start at `perSample` steps in `buffer`) at
    /// `row`: every channel of the read tensor (`channels` nil) or only `channels` (then
    /// the system has `channels.count` input channels), and the bias column.
    func gatherInputs(_ buffer: UnsafeBufferPointer<Float>, samples: Range<Int>, perSample: Int, picks: [[Int]],
                      channels: [Int]?, into x: inout [Float], row: inout Int) {
        let count = channels?.count ?? inChannels
        let width = count * geometry.area + (hasBias ? 1 : 0)
        for (offset, image) in samples.enumerated() {
            let base = offset * perSample
            for position in picks[image] {
                geometry.gather(buffer, sampleBase: base, position: position, channels: channels, count: count,
                                into: &x, at: row * width)
                if hasBias { x[row * width + width - 1] = 1 }
                row += 1
            }
        }
    }

    /// Appends the target rows of `samples`: output channel o of the layer is channel
    /// `channelMap[o]` of the original output in `buffer`.
    func gatherTargets(_ buffer: UnsafeBufferPointer<Float>, samples: Range<Int>, perSample: Int, picks: [[Int]],
                       channelMap: [Int], into y: inout [Float], row: inout Int) {
        for (offset, image) in samples.enumerated() {
            let base = offset * perSample
            for position in picks[image] {
                for o in 0..<outChannels { y[row * outChannels + o] = buffer[base + channelMap[o] * positions + position] }
                row += 1
            }
        }
    }

    /// The layer's current weights (and bias) in `graph`, laid out like the solution
    /// (columns x outChannels): the prior the ridge pulls toward.
    func prior(in graph: Graph) -> [Float] {
        var prior = [Float](repeating: 0, count: columns * outChannels)
        if let conv {
            let w = conv.weight.floats
            for o in 0..<outChannels { for p in 0..<patch { prior[p * outChannels + o] = w[o * patch + p] } }
            if hasBias, let bias = conv.bias?.floats { for o in 0..<outChannels { prior[patch * outChannels + o] = bias[o] } }
        } else if let gemm {
            for p in 0..<patch * outChannels { prior[p] = gemm.weight[p] }
            if hasBias, let name = node.input(2), let c = graph.initializers[name]?.floats {
                for o in 0..<outChannels { prior[patch * outChannels + o] = gemm.beta * (c.count == 1 ? c[0] : c[o]) }
            }
        }
        return prior
    }

    /// `graph` with the layer's weights (and bias) set from `solution` (columns x outChannels).
    func install(_ solution: [Float], in graph: Graph) -> Graph {
        var editor = GraphEditor(graph)
        if conv != nil {
            var weight = [Float](repeating: 0, count: outChannels * patch)
            for o in 0..<outChannels { for p in 0..<patch { weight[o * patch + p] = solution[p * outChannels + o] } }
            editor.setConstant(node: index, input: 1, Tensor(shape: weightShape, floats: weight))
        } else {
            editor.setConstant(node: index, input: 1, Tensor(shape: weightShape, floats: Array(solution.prefix(patch * outChannels))))
            editor.graph.nodes[index].attributes["transB"] = .int(0)
            editor.graph.nodes[index].attributes["alpha"] = .float(1)
            if hasBias { editor.graph.nodes[index].attributes["beta"] = .float(1) }
        }
        if hasBias {
            let bias = Array(solution[(patch * outChannels)...])
            editor.setConstant(node: index, input: 2, Tensor(shape: [outChannels], floats: bias))
        }
        return editor.finish()
    }
}

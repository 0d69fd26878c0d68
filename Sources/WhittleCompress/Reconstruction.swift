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
        guard let index = compressed.nodes.firstIndex(where: { $0.name == layer }),
              let source = compressed.nodes[index].input(0) else {
            throw WhittleError(.invalidModel, "layer '\(layer)'", "not found for reconstruction")
        }
        let node = compressed.nodes[index]
        // Geometry: a patch of `columns` inputs per output position.
        var conv: ConvLayer?
        var gemm: GemmLayer?
        switch node.opType {
        case "Conv":
            guard case .success(let value) = ConvLayer.read(analysis, nodeIndex: index), value.groups == 1 else {
                throw WhittleError(.invalidModel, "layer '\(layer)'", "only groups-1 2-D convolutions are reconstructed")
            }
            conv = value
        case "Gemm":
            guard case .success(let value) = GemmLayer.read(analysis, nodeIndex: index) else {
                throw WhittleError(.invalidModel, "layer '\(layer)'", "Gemm cannot be reconstructed")
            }
            gemm = value
        default:
            throw WhittleError(.invalidModel, "layer '\(layer)'", "\(node.opType) cannot be reconstructed")
        }
        let hasBias = node.input(2) != nil
        let inChannels = conv?.inChannels ?? gemm?.inFeatures ?? 0
        let outChannels = conv?.outChannels ?? gemm?.outFeatures ?? 0
        let kernelArea = conv.map { $0.kernel.h * $0.kernel.w } ?? 1
        let patch = inChannels * kernelArea
        let columns = patch + (hasBias ? 1 : 0)
        let positions = conv.map { $0.outputShape[2] * $0.outputShape[3] } ?? 1

        let inputRun = try prefixRun(compressed, to: source, inputs: inputs, activations: activations)
        let inputRunner = try BatchRunner(graph: inputRun.graph, batchSize: batchSize)
        let images = try inputRunner.validate(inputs: inputRun.inputs)
        guard images > 0 else { throw WhittleError(.invalidData, "reconstruction data", "holds no samples") }
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
        let rows = images * perImage

        // Inputs from the compressed model.
        var x = [Float](repeating: 0, count: rows * columns)
        var row = 0
        try inputRunner.forEachBatch(inputs: inputRun.inputs, shouldStop: { job.isCancelled }) { batch, plan in
            guard let buffer = plan.outputBuffer(source), let info = plan.info(source) else {
                throw WhittleError(.invalidModel, "tensor '\(source)'", "not readable during reconstruction")
            }
            let perSample = info.count / max(1, batch.count)
            for (offset, image) in batch.enumerated() {
                let base = offset * perSample
                for position in picks[image] {
                    let rowBase = row * columns
                    if let conv {
                        let h = conv.inputShape[2], w = conv.inputShape[3], wOut = conv.outputShape[3]
                        let oy = position / wOut, ox = position % wOut
                        var column = rowBase
                        for c in 0..<inChannels {
                            for i in 0..<conv.kernel.h {
                                let iy = oy * conv.strides.h + i * conv.dilations.h - conv.pads.top
                                for j in 0..<conv.kernel.w {
                                    let ix = ox * conv.strides.w + j * conv.dilations.w - conv.pads.left
                                    if iy >= 0, iy < h, ix >= 0, ix < w { x[column] = buffer[base + (c * h + iy) * w + ix] }
                                    column += 1
                                }
                            }
                        }
                    } else {
                        for c in 0..<inChannels { x[rowBase + c] = buffer[base + c] }
                    }
                    if hasBias { x[rowBase + patch] = 1 }
                    row += 1
                }
            }
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
            for (offset, image) in batch.enumerated() {
                let base = offset * perSample
                for position in picks[image] {
                    for o in 0..<outChannels { y[row * outChannels + o] = buffer[base + channelMap[o] * positions + position] }
                    row += 1
                }
            }
        }
        try job.checkCancellation("reconstruction")

        // Current weights as the prior, laid out like the solution (columns x outChannels).
        var prior = [Float](repeating: 0, count: columns * outChannels)
        if let conv {
            let w = conv.weight.floats
            for o in 0..<outChannels { for p in 0..<patch { prior[p * outChannels + o] = w[o * patch + p] } }
            if hasBias, let bias = conv.bias?.floats { for o in 0..<outChannels { prior[patch * outChannels + o] = bias[o] } }
        } else if let gemm {
            for p in 0..<patch * outChannels { prior[p] = gemm.weight[p] }
            if hasBias, let name = node.input(2), let c = compressed.initializers[name]?.floats {
                for o in 0..<outChannels { prior[patch * outChannels + o] = gemm.beta * (c.count == 1 ? c[0] : c[o]) }
            }
        }
        let solution = try LinearAlgebra.ridgeLeastSquares(x: x, y: y, rows: rows, cols: columns, outputs: outChannels,
                                                           prior: prior, ridge: ridge)
        var editor = GraphEditor(compressed)
        if let conv {
            var weight = [Float](repeating: 0, count: outChannels * patch)
            for o in 0..<outChannels { for p in 0..<patch { weight[o * patch + p] = solution[p * outChannels + o] } }
            editor.setConstant(node: index, input: 1, Tensor(shape: conv.weight.shape, floats: weight))
        } else {
            editor.setConstant(node: index, input: 1, Tensor(shape: [patch, outChannels], floats: Array(solution.prefix(patch * outChannels))))
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

    /// The graph to run (and its inputs) for `tensor` of `graph` over `inputs`: the changed
    /// part only when `activations` (built over the same inputs) can supply the rest,
    /// otherwise the whole prefix from the model inputs.
    static func prefixRun(_ graph: Graph, to tensor: String, inputs: [String: Tensor],
                          activations: ActivationSource?) throws -> (graph: Graph, inputs: [String: Tensor]) {
        if let activations, let plan = try activations.plan(for: tensor, of: graph) { return plan }
        return (truncated(graph, to: tensor), inputs)
    }

    /// The part of `graph` needed to compute `tensor`, with `tensor` as its only output.
    static func truncated(_ graph: Graph, to tensor: String) -> Graph {
        var needed: Set<String> = [tensor]
        var kept: [Node] = []
        for node in graph.nodes.reversed() where node.outputs.contains(where: { needed.contains($0) }) {
            kept.append(node)
            for input in node.inputs where !input.isEmpty { needed.insert(input) }
        }
        var result = graph
        result.nodes = kept.reversed()
        result.outputs = [ValueInfo(name: tensor, dimensions: [])]
        return result
    }
}

import Foundation
import WhittleEngine

/// What AdaRound did to one layer.
public struct AdaRoundLayerReport: Sendable, Equatable {
    public var node: String
    public var weight: String
    public var opType: String
    public var outputChannels: Int
    /// Patch length per group (the GEMM's inner dimension).
    public var patchSize: Int
    public var groups: Int
    /// Cached rows (image, output position) of the layer problem.
    public var rows: Int
    /// "Relu", "Clip" or "" — the activation applied inside the loss.
    public var activation: String
    public var iterations: Int
    /// Reconstruction loss over the cached rows: nearest rounding, then AdaRound's.
    public var lossNearest: Double
    public var lossAdaRound: Double
    /// Share of weights rounded away from nearest.
    public var changedShare: Double
    /// Optimisation time, and the time spent collecting the layer's inputs.
    public var seconds: Double
    public var collectSeconds: Double
}

/// The model with AdaRound's weights and what happened per layer.
public struct AdaRoundResult: Sendable {
    /// BatchNorm-folded graph whose rounded weights are `scale * (q + offset)` (float values
    /// exactly on their grids, so quantizing them again with the same encodings is lossless).
    public var graph: Graph
    public var layers: [AdaRoundLayerReport]
    public var images: Int
    /// Seconds of the float pass collecting every layer's target outputs.
    public var targetSeconds: Double
    public var seconds: Double
}

/// Adaptive rounding (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
/// Quantization"), following AIMET (shared reference aimet.md §1.8): per layer, in model order,
/// with the weight encodings fixed, learn for every weight whether it rounds down or up so the
/// layer's output (after the following Relu/Clip) stays close to the float model's.
///
/// Data: the layer's input comes from the model with the layers before it already rounded
/// (float activations, or whatever `options.activationQuantizer` makes of that graph); the
/// target is the float model's layer output on the same images, before the activation. Both
/// are computed once per layer and kept as GEMM rows (see `AdaRoundLayerProblem`).
///
/// Sampling (where Whittle departs from AIMET, for speed): AIMET's minibatch is every output
/// position of 32 cached images, i.e. each iteration costs two GEMMs of `O x K x (32 H W)`.
/// Whittle keeps `cachedPositionsPerImage` (16) random output positions per image and layer,
/// drawn once, and each iteration uses `batchPositionsPerImage` (2) of them from each of 32
/// random images: the same objective (mean over images and positions of the per-position
/// squared error), estimated from 64 rows instead of up to 32 H W. Gemm layers have one row
/// per image. All three counts are options; `batchPositionsPerImage = cachedPositionsPerImage`
/// and a large cache reproduce AIMET's minibatches.
public enum AdaRound {
    /// Rounds every Conv / Gemm / MatMul weight that has an integer encoding in `weightEncodings`.
    ///
    /// - Parameters:
    ///   - graph: the float model. BatchNormalization is folded first (the result is the folded
    ///     graph); encodings must describe the folded weights, keyed by weight tensor name.
    ///   - weightEncodings: per-tensor or per-channel grids (per-channel along the output-channel
    ///     axis: Conv 0, Gemm `transB = 1` 0, `transB = 0` and MatMul 1). Weights without an
    ///     entry, or with a float encoding, are left unchanged.
    ///   - data: model inputs (dimension 0 = images); at most `options.maxImages` are used.
    public static func apply(graph: Graph, weightEncodings: [String: TensorEncoding], data: [String: Tensor],
                             options: AdaRoundOptions = AdaRoundOptions(), job: JobContext = .silent) throws -> AdaRoundResult {
        try options.validate()
        let clock = ContinuousClock()
        let start = clock.now
        let context = try LayerDataContext(graph: graph, encodings: weightEncodings, data: data,
                                           maxImages: options.maxImages, positionsPerImage: options.cachedPositionsPerImage,
                                           passBatchSize: options.passBatchSize, seed: options.seed)
        let targetStart = clock.now
        let targets = try context.collectOutputs(of: context.graph, sites: context.sites, job: job)
        let targetSeconds = seconds(clock.now - targetStart)

        var current = context.graph
        var reports: [AdaRoundLayerReport] = []
        for (index, site) in context.sites.enumerated() {
            try job.checkCancellation("AdaRound")
            job.report(phase: "AdaRound layers", completed: index, total: context.sites.count, detail: site.nodeName)
            guard let encoding = weightEncodings[site.weightName], let grids = try site.rowEncodings(encoding),
                  let weight = current.initializers[site.weightName] else { continue }
            let collectStart = clock.now
            let inputGraph = try options.activationQuantizer?(current) ?? current
            let patches = try context.collectPatches(of: inputGraph, site: site, job: job)
            let collectSeconds = seconds(clock.now - collectStart)
            var bias = [Float](repeating: 0, count: site.outputChannels)
            if let name = site.biasName, let tensor = current.initializers[name] {
                var scale: Float = 1
                if case .gemm(_, let biasScale) = site.kind { scale = biasScale }
                bias = tensor.floats.map { $0 * scale }
            }
            let problem = try AdaRoundLayerProblem(
                groups: site.groups, outputChannels: site.outputChannels, patchSize: site.patchSize,
                rowCount: context.rowCount(site), weights: site.gemmWeights(weight), bias: bias, patches: patches,
                targets: targets[index], imageOfRow: context.rowImages(site),
                activation: options.activationInLoss ? site.activation : .none)
            let outcome = try optimize(problem, encodings: grids, options: options, job: job, detail: site.nodeName)
            current.initializers[site.weightName] = site.weightTensor(fromGemm: outcome.weights)
            reports.append(AdaRoundLayerReport(
                node: site.nodeName, weight: site.weightName, opType: current.nodes[site.nodeIndex].opType,
                outputChannels: site.outputChannels, patchSize: site.patchSize, groups: site.groups, rows: problem.rowCount,
                activation: activationName(problem.activation), iterations: outcome.iterations,
                lossNearest: outcome.lossNearest, lossAdaRound: outcome.lossAdaRound, changedShare: outcome.changedShare,
                seconds: outcome.seconds, collectSeconds: collectSeconds))
        }
        job.report(phase: "AdaRound layers", completed: context.sites.count, total: context.sites.count)
        return AdaRoundResult(graph: current, layers: reports, images: context.imageCount, targetSeconds: targetSeconds,
                              seconds: seconds(clock.now - start))
    }

    static func activationName(_ activation: FusedActivation) -> String {
        switch activation {
        case .none: return ""
        case .relu: return "Relu"
        case .clip: return "Clip"
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

/// The data side shared by AdaRound and Sequential MSE: the BatchNorm-folded graph, its layer
/// sites, the sampled (image, position) rows of every site, and forward passes that cut those
/// rows out of layer inputs (as im2col patches) and outputs.
struct LayerDataContext {
    let graph: Graph
    let sites: [AdaRoundLayerSite]
    let data: [String: Tensor]
    let imageCount: Int
    let passBatchSize: Int
    /// Per site: sampled output positions, `positionsPerImage[site]` per image, image-major.
    let positions: [[Int]]
    let rowsPerImage: [Int]

    init(graph: Graph, encodings: [String: TensorEncoding], data: [String: Tensor], maxImages: Int,
         positionsPerImage: Int, passBatchSize: Int, seed: UInt64) throws {
        let folded = try BatchNormFolding.fold(graph).graph
        let runner = try BatchRunner(graph: folded, batchSize: passBatchSize, options: CompileOptions(foldBatchNorm: false))
        let total = try runner.validate(inputs: data)
        guard total >= 1 else { throw WhittleError(.invalidData, "calibration data", "holds no samples") }
        let analysis = try runner.plan(forBatch: 1).analysis
        self.graph = folded
        self.sites = try AdaRoundLayerSite.find(in: analysis, encodings: encodings)
        self.data = data
        self.imageCount = min(total, maxImages)
        self.passBatchSize = passBatchSize
        var generator = SplitMix64(seed: seed)
        var positions: [[Int]] = []
        var rowsPerImage: [Int] = []
        for site in sites {
            let take = min(site.positions, positionsPerImage)
            var all = Array(0..<site.positions)
            var chosen: [Int] = []
            chosen.reserveCapacity(take * imageCount)
            for _ in 0..<imageCount {
                for p in 0..<take {
                    let q = p + Int(generator.next() % UInt64(site.positions - p))
                    all.swapAt(p, q)
                }
                chosen.append(contentsOf: all[0..<take].sorted())
            }
            positions.append(chosen)
            rowsPerImage.append(take)
        }
        self.positions = positions
        self.rowsPerImage = rowsPerImage
    }

    func siteIndex(_ site: AdaRoundLayerSite) -> Int { sites.firstIndex { $0.nodeIndex == site.nodeIndex } ?? 0 }
    func rowCount(_ site: AdaRoundLayerSite) -> Int { rowsPerImage[siteIndex(site)] * imageCount }
    func rowImages(_ site: AdaRoundLayerSite) -> [Int] {
        let per = rowsPerImage[siteIndex(site)]
        return (0..<(per * imageCount)).map { $0 / per }
    }

    /// Runs `graph` over the images in batches, preserving `tensors`, and hands each batch's plan over.
    private func forEachBatch(_ graph: Graph, preserving tensors: Set<String>, job: JobContext, phase: String,
                              _ body: (Range<Int>, Plan) throws -> Void) throws {
        let runner = try BatchRunner(graph: graph, batchSize: passBatchSize,
                                     options: CompileOptions(preservedTensors: tensors, foldBatchNorm: false))
        try runner.forEachBatch(inputs: data, range: 0..<imageCount, shouldStop: { job.isCancelled }) { batch, plan in
            job.report(phase: phase, completed: batch.upperBound, total: imageCount)
            try body(batch, plan)
        }
    }

    /// Output rows (before any activation) of every site in one pass: `[site][row][O]`.
    func collectOutputs(of graph: Graph, sites chosen: [AdaRoundLayerSite], job: JobContext) throws -> [[Float]] {
        var outputs = chosen.map { [Float](repeating: 0, count: rowCount($0) * $0.outputChannels) }
        try forEachBatch(graph, preserving: Set(chosen.map(\.outputName)), job: job, phase: "Layer outputs") { batch, plan in
            for (index, site) in chosen.enumerated() {
                guard let buffer = plan.outputBuffer(site.outputName), let y = buffer.baseAddress else {
                    throw WhittleError(.invalidModel, site.label, "output '\(site.outputName)' was not kept by the plan")
                }
                let per = rowsPerImage[siteIndex(site)]
                let rows = (batch.lowerBound * per)..<(batch.upperBound * per)
                let images = rows.map { $0 / per }
                let sitePositions = positions[siteIndex(site)]
                outputs[index].withUnsafeMutableBufferPointer { target in
                    guard let target = target.baseAddress else { return }
                    site.writeTargets(y: y, batchStart: batch.lowerBound, rowImages: images[...],
                                      rowPositions: sitePositions[rows], firstRow: rows.lowerBound, into: target)
                }
            }
        }
        return outputs
    }

    /// Patch rows `[G][row][K]` of one site's input, from a pass of `graph` pruned to that input.
    func collectPatches(of graph: Graph, site: AdaRoundLayerSite, job: JobContext) throws -> [Float] {
        let pruned = Self.prune(graph, to: site.inputName)
        let total = rowCount(site)
        var patches = [Float](repeating: 0, count: site.groups * total * site.patchSize)
        let per = rowsPerImage[siteIndex(site)]
        let sitePositions = positions[siteIndex(site)]
        try forEachBatch(pruned, preserving: [site.inputName], job: job, phase: "Layer inputs") { batch, plan in
            guard let buffer = plan.outputBuffer(site.inputName), let x = buffer.baseAddress else {
                throw WhittleError(.invalidModel, site.label, "input '\(site.inputName)' was not kept by the plan")
            }
            let rows = (batch.lowerBound * per)..<(batch.upperBound * per)
            let images = rows.map { $0 / per }
            patches.withUnsafeMutableBufferPointer { target in
                guard let target = target.baseAddress else { return }
                site.writePatches(x: x, batchStart: batch.lowerBound, rowImages: images[...], rowPositions: sitePositions[rows],
                                  firstRow: rows.lowerBound, totalRows: total, into: target)
            }
        }
        return patches
    }

    /// `graph` with only the nodes `tensor` depends on, and `tensor` as its only output.
    static func prune(_ graph: Graph, to tensor: String) -> Graph {
        var needed: Set<String> = [tensor]
        var keep = [Bool](repeating: false, count: graph.nodes.count)
        for index in graph.nodes.indices.reversed() {
            let node = graph.nodes[index]
            guard node.outputs.contains(where: { needed.contains($0) }) else { continue }
            keep[index] = true
            for input in node.inputs where !input.isEmpty { needed.insert(input) }
        }
        var result = graph
        result.nodes = graph.nodes.indices.filter { keep[$0] }.map { graph.nodes[$0] }
        result.outputs = [ValueInfo(name: tensor, dimensions: [])]
        return result
    }
}

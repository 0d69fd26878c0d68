import Foundation
import WhittleEngine

/// Options of the Sequential MSE weight-encoding search (AIMET's `SeqMseParams`, shared
/// reference aimet.md §1.11).
public struct SeqMseOptions: Sendable {
    /// Which inputs feed the quantized and the float product.
    public enum InputSymmetry: String, Sendable, CaseIterable {
        /// Quantized-model inputs for both (`x^ W^` vs `x^ W`; AIMET's default).
        case symqt
        /// Float-model inputs for both (`x W^` vs `x W`).
        case symfp
        /// Quantized-model inputs for the quantized product, float-model for the float one.
        case asym
    }

    /// Per-channel loss between the two products, summed over rows.
    public enum Loss: String, Sendable, CaseIterable {
        case mse
        case l1
    }

    /// Candidates k = 1...K scale the channel range by k / K (AIMET: 20).
    public var candidates: Int
    public var inputSymmetry: InputSymmetry
    /// AIMET's `sqnr` loss picks the same per-channel minimum as `mse` (the target energy is
    /// fixed per channel), so only `mse` and `l1` are offered.
    public var loss: Loss
    /// Images used (AIMET: `num_batches` batches of the loader).
    public var maxImages: Int
    /// Output positions kept per image and layer (a fixed random subset).
    public var positionsPerImage: Int
    public var passBatchSize: Int
    public var seed: UInt64
    /// Transforms the graph whose activations feed each layer (see `AdaRoundOptions`).
    public var activationQuantizer: (@Sendable (Graph) throws -> Graph)?

    public init(candidates: Int = 20, inputSymmetry: InputSymmetry = .symqt, loss: Loss = .mse, maxImages: Int = 512,
                positionsPerImage: Int = 16, passBatchSize: Int = 32, seed: UInt64 = 0x5EED,
                activationQuantizer: (@Sendable (Graph) throws -> Graph)? = nil) {
        self.candidates = candidates
        self.inputSymmetry = inputSymmetry
        self.loss = loss
        self.maxImages = maxImages
        self.positionsPerImage = positionsPerImage
        self.passBatchSize = passBatchSize
        self.seed = seed
        self.activationQuantizer = activationQuantizer
    }
}

/// The search's choice for one layer.
public struct SeqMseLayerReport: Sendable, Equatable {
    public var node: String
    public var weight: String
    /// Chosen candidate per channel (1...K; K = the full min-max range).
    public var chosenCandidates: [Int]
    /// Summed loss over the layer's channels with the full-range (min-max) encodings and with the chosen ones.
    public var lossMinMax: Double
    public var lossChosen: Double
    public var seconds: Double
}

public struct SeqMseResult: Sendable {
    /// The BatchNorm-folded float graph the encodings refer to (weights unchanged).
    public var graph: Graph
    /// New weight encodings (the searched layers; every other entry as given).
    public var encodings: [String: TensorEncoding]
    public var layers: [SeqMseLayerReport]
    public var seconds: Double
}

/// Sequential MSE: for each Conv / Gemm / MatMul in model order, choose per output channel the
/// weight range among K shrunk candidates (`k/K * [min_c, max_c]`, or `±k/K * max_c|w|` for
/// symmetric grids) that minimises the loss between the layer's quantized and float products
/// on data, then freeze it, so later layers see the already-quantized ones (AIMET aimet.md §1.11).
///
/// Bit width and symmetry come from each weight's given encoding; a per-tensor encoding gets
/// one candidate for the whole tensor (loss summed over channels). Quantization of candidates
/// rounds to nearest (`QuantizationGrid`). The products use the same sampled GEMM rows as
/// AdaRound (`positionsPerImage` output positions per image).
public enum SeqMse {
    public static func apply(graph: Graph, weightEncodings: [String: TensorEncoding], data: [String: Tensor],
                             options: SeqMseOptions = SeqMseOptions(), job: JobContext = .silent) throws -> SeqMseResult {
        guard options.candidates >= 1, options.maxImages >= 1, options.positionsPerImage >= 1, options.passBatchSize >= 1 else {
            throw WhittleError(.invalidArgument, "Sequential MSE options", "candidate, image, position and batch counts must be at least 1")
        }
        let clock = ContinuousClock()
        let start = clock.now
        let context = try LayerDataContext(graph: graph, encodings: weightEncodings, data: data, maxImages: options.maxImages,
                                           positionsPerImage: options.positionsPerImage, passBatchSize: options.passBatchSize,
                                           seed: options.seed)
        let floatTargets = options.inputSymmetry == .asym
            ? try context.collectOutputs(of: context.graph, sites: context.sites, job: job) : []
        var current = context.graph
        var encodings = weightEncodings
        var reports: [SeqMseLayerReport] = []
        for (index, site) in context.sites.enumerated() {
            try job.checkCancellation("Sequential MSE")
            job.report(phase: "Sequential MSE", completed: index, total: context.sites.count, detail: site.nodeName)
            guard let given = weightEncodings[site.weightName], try site.rowEncodings(given) != nil,
                  let weight = context.graph.initializers[site.weightName] else { continue }
            let layerStart = clock.now
            let source = options.inputSymmetry == .symfp ? context.graph : (try options.activationQuantizer?(current) ?? current)
            let patches = try context.collectPatches(of: source, site: site, job: job)
            let rows = context.rowCount(site)
            var bias = [Float](repeating: 0, count: site.outputChannels)
            if options.inputSymmetry == .asym, let name = site.biasName, let tensor = current.initializers[name] {
                var scale: Float = 1
                if case .gemm(_, let biasScale) = site.kind { scale = biasScale }
                bias = tensor.floats.map { $0 * scale }
            }
            let weights = site.gemmWeights(weight)
            let targets: [Float]
            if options.inputSymmetry == .asym {
                targets = floatTargets[index]
            } else {
                targets = try Self.products(patches: patches, weights: weights, site: site, rows: rows)
            }
            let problem = try AdaRoundLayerProblem(groups: site.groups, outputChannels: site.outputChannels, patchSize: site.patchSize,
                                                   rowCount: rows, weights: weights, bias: bias, patches: patches, targets: targets)
            let search = try search(problem, given: given, options: options)
            encodings[site.weightName] = search.encoding
            // Later layers see this layer quantized with its chosen grids.
            current.initializers[site.weightName] = site.weightTensor(fromGemm: search.quantizedWeights)
            reports.append(SeqMseLayerReport(node: site.nodeName, weight: site.weightName, chosenCandidates: search.chosen,
                                             lossMinMax: search.lossFull, lossChosen: search.lossChosen,
                                             seconds: AdaRound.seconds(clock.now - layerStart)))
        }
        job.report(phase: "Sequential MSE", completed: context.sites.count, total: context.sites.count)
        return SeqMseResult(graph: context.graph, encodings: encodings, layers: reports, seconds: AdaRound.seconds(clock.now - start))
    }

    /// `[rows x O]` float products `patches * W^T` (no bias).
    static func products(patches: [Float], weights: [Float], site: AdaRoundLayerSite, rows: Int) throws -> [Float] {
        var output = [Float](repeating: 0, count: rows * site.outputChannels)
        patches.withUnsafeBufferPointer { p in
            weights.withUnsafeBufferPointer { w in
                output.withUnsafeMutableBufferPointer { out in
                    guard let p = p.baseAddress, let w = w.baseAddress, let out = out.baseAddress else { return }
                    AdaRoundAlgebra.forward(groups: site.groups, channelsPerGroup: site.outputChannels / site.groups,
                                            patchSize: site.patchSize, rows: rows, patches: p, groupStride: rows * site.patchSize,
                                            weights: w, output: out)
                }
            }
        }
        return output
    }

    struct Search {
        var encoding: TensorEncoding
        var quantizedWeights: [Float]
        var chosen: [Int]
        var lossFull: Double
        var lossChosen: Double
    }

    /// Candidate encodings of one channel (or of the whole tensor for per-tensor grids).
    static func candidateEncoding(low: Float, high: Float, k: Int, of count: Int, like grid: QuantizationEncoding) throws -> QuantizationEncoding {
        let factor = Float(k) / Float(count)
        if grid.isSymmetric {
            let absMax = max(abs(low), abs(high)) * factor
            let minimum: Float = grid.symmetry == .unsignedSymmetric && low >= 0 ? 0 : -absMax
            return try QuantizationEncoding.compute(min: minimum, max: absMax, bitWidth: grid.bitWidth, symmetry: grid.symmetry)
        }
        return try QuantizationEncoding.compute(min: low * factor, max: high * factor, bitWidth: grid.bitWidth, symmetry: .asymmetric)
    }

    /// Searches the candidates of one layer problem; the losses per channel compare
    /// `patches * W^_k^T + bias` with `targets` over every row.
    static func search(_ problem: AdaRoundLayerProblem, given: TensorEncoding, options: SeqMseOptions) throws -> Search {
        let outputs = problem.outputChannels, k = problem.patchSize, count = options.candidates
        let perTensor: Bool
        let prototypes: [QuantizationEncoding]
        switch given {
        case .perTensor(let grid): perTensor = true; prototypes = Array(repeating: grid, count: outputs)
        case .perChannel(_, let grids): perTensor = false; prototypes = grids
        case .float: throw WhittleError(.invalidArgument, "Sequential MSE", "a float encoding has no grid to search")
        }
        // Ranges per channel (or of the tensor).
        var lows = [Float](repeating: 0, count: outputs), highs = [Float](repeating: 0, count: outputs)
        for o in 0..<outputs {
            let row = problem.weights[(o * k)..<((o + 1) * k)]
            lows[o] = row.min() ?? 0
            highs[o] = row.max() ?? 0
        }
        if perTensor {
            let low = lows.min() ?? 0, high = highs.max() ?? 0
            lows = Array(repeating: low, count: outputs)
            highs = Array(repeating: high, count: outputs)
        }
        // Quantized weights of every candidate, stacked: [count * O x K].
        var candidateGrids: [[QuantizationEncoding]] = []
        var stacked = [Float](repeating: 0, count: count * outputs * k)
        for c in 0..<count {
            var grids: [QuantizationEncoding] = []
            for o in 0..<outputs {
                let grid = try candidateEncoding(low: lows[o], high: highs[o], k: c + 1, of: count, like: prototypes[o])
                grids.append(grid)
                let q = QuantizationGrid(grid)
                for i in 0..<k { stacked[(c * outputs + o) * k + i] = q.quantizeDequantize(problem.weights[o * k + i]) }
            }
            candidateGrids.append(grids)
        }
        // Losses [count][O], accumulated over row chunks.
        var losses = [Double](repeating: 0, count: count * outputs)
        let chunk = max(1, min(problem.rowCount, (1 << 20) / max(1, outputs)))
        var buffer = [Float](repeating: 0, count: chunk * outputs)
        let groupStride = problem.rowCount * k
        problem.patches.withUnsafeBufferPointer { p in
            stacked.withUnsafeBufferPointer { w in
                problem.targets.withUnsafeBufferPointer { y in
                    buffer.withUnsafeMutableBufferPointer { out in
                        guard let p = p.baseAddress, let w = w.baseAddress, let y = y.baseAddress, let out = out.baseAddress else { return }
                        var first = 0
                        while first < problem.rowCount {
                            let rows = min(chunk, problem.rowCount - first)
                            for c in 0..<count {
                                AdaRoundAlgebra.forward(groups: problem.groups, channelsPerGroup: problem.channelsPerGroup, patchSize: k,
                                                        rows: rows, patches: p + first * k, groupStride: groupStride,
                                                        weights: w + c * outputs * k, output: out)
                                for r in 0..<rows {
                                    for o in 0..<outputs {
                                        let difference = Double(out[r * outputs + o] + problem.bias[o] - y[(first + r) * outputs + o])
                                        losses[c * outputs + o] += options.loss == .mse ? difference * difference : Swift.abs(difference)
                                    }
                                }
                            }
                            first += rows
                        }
                    }
                }
            }
        }
        // Argmin per channel (ties: the wider range), or of the channel sum for per-tensor grids.
        var chosen = [Int](repeating: count - 1, count: outputs)
        if perTensor {
            var best = count - 1
            var bestLoss = Double.infinity
            for c in stride(from: count - 1, through: 0, by: -1) {
                let total = (0..<outputs).reduce(0.0) { $0 + losses[c * outputs + $1] }
                if total < bestLoss { bestLoss = total; best = c }
            }
            chosen = Array(repeating: best, count: outputs)
        } else {
            for o in 0..<outputs {
                var best = count - 1
                for c in stride(from: count - 1, through: 0, by: -1) where losses[c * outputs + o] < losses[best * outputs + o] { best = c }
                chosen[o] = best
            }
        }
        var quantized = [Float](repeating: 0, count: outputs * k)
        var grids: [QuantizationEncoding] = []
        for o in 0..<outputs {
            let c = chosen[o]
            grids.append(candidateGrids[c][o])
            for i in 0..<k { quantized[o * k + i] = stacked[(c * outputs + o) * k + i] }
        }
        let encoding: TensorEncoding
        switch given {
        case .perChannel(let axis, _): encoding = .perChannel(axis: axis, grids)
        default: encoding = .perTensor(grids[0])
        }
        let lossFull = (0..<outputs).reduce(0.0) { $0 + losses[(count - 1) * outputs + $1] }
        let lossChosen = (0..<outputs).reduce(0.0) { $0 + losses[chosen[$1] * outputs + $1] }
        return Search(encoding: encoding, quantizedWeights: quantized, chosen: chosen.map { $0 + 1 },
                      lossFull: lossFull, lossChosen: lossChosen)
    }
}

import Foundation
import Synchronization
import WhittleEngine

/// One layer compressed to several ratios at once (a row of a score table), sharing the work
/// that does not depend on the ratio, plus one graph every ratio can be scored with.
///
/// Shared work: channel pruning ranks the input channels once (the kept sets of all ratios
/// are prefixes of one magnitude order, hence nested), SVD whitens and decomposes the weight
/// once (every rank is a truncation of the same SVD), and reconstruction gathers the
/// least-squares system once at the widest ratio: the rows of a narrower ratio are a subset
/// of its columns, so every ratio's ridge solution is one Cholesky solve of a sub-block of
/// the same Gram matrix (`NormalEquations`). A pruned layer's input channels are unchanged by
/// pruning (winnowing removes channels, it does not alter the others), so its system reads
/// the reference activations directly; a co-reader of a residual stream reads a tensor the
/// earlier readers' refits change, so its system is gathered per ratio by running the
/// changed part only.
///
/// The template: the variants differ in shapes (kept channels, rank), which would need a
/// compile per ratio. They are all written as the same graph with different weights instead:
/// - pruning keeps every channel but zeroes the pruned input channels of every reader (their
///   producers still compute them, nothing reads them: `ChannelGroup` only admits groups
///   whose channels reach readers, channel-wise nodes and joins, never a model output);
/// - SVD splits at the largest rank of the sweep and zeroes the rank rows a variant does not
///   use (the first factor has no bias, so those channels are exactly 0).
/// Each variant's template weights compute the same function as its compressed graph, up to
/// the order of float additions (adding exact zeros changes no sum).
public struct LayerSweep: Sendable {
    public struct Variant: Sendable {
        public var ratio: Double
        /// Rank (SVD) or input channels (pruning) kept, and the original count.
        public var kept: Int
        public var original: Int
        /// The model with only this layer compressed (what `Compressor.compress` builds).
        public var graph: Graph
        /// Values of the template's patched initializers for this variant; nil when the layer
        /// is left unchanged (ratio 1, or a ratio that keeps every channel).
        public var weights: [String: [Float]]?
    }

    /// The input graph with the layer in the form every variant shares, its ratio-dependent
    /// weights under the names in `patched`. Nil when the sweep could not build one (then
    /// each variant's graph is scored on its own).
    public var template: Graph?
    public var patched: [String]
    public var variants: [Variant]
    /// Seconds by phase (whitening and SVD, channel order, reconstruction runs, Gram
    /// matrices, solves, graph edits); phases marked "thread-s" add up concurrent threads.
    public var seconds: [String: Double]
}

extension Compressor {
    /// Compresses `layer` alone to each of `ratios` (see `LayerSweep`). Every variant's graph
    /// is what `compress(graph, [LayerChoice(layer, technique, ratio)], options)` returns,
    /// except that reconstruction solves the normal equations (`NormalEquations`) instead of
    /// the stacked QR system: the same ridge problem, solutions equal to float rounding.
    public static func sweep(_ graph: Graph, layer: String, technique: CompressionTechnique, ratios: [Double],
                             options: CompressionOptions, job: JobContext) throws -> LayerSweep {
        guard options.rankMultiplicity >= 1 else {
            throw WhittleError(.invalidArgument, "rank multiplicity", "must be at least 1, got \(options.rankMultiplicity)")
        }
        guard options.batchSize >= 1 else {
            throw WhittleError(.invalidArgument, "batch size", "must be at least 1, got \(options.batchSize)")
        }
        let subject = "layer '\(layer)'"
        for ratio in ratios where !(ratio.isFinite && ratio > 0 && ratio <= 1) {
            throw WhittleError(.invalidArgument, subject, "ratio \(ratio) is outside (0, 1]")
        }
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        let indices = graph.nodes.indices.filter { graph.nodes[$0].name == layer }
        guard indices.count == 1, let index = indices.first else {
            throw WhittleError(.invalidArgument, subject, indices.isEmpty ? "no node of the model has this name" : "several nodes have this name")
        }
        let prepared: Prepared
        switch prepare(analysis, nodeIndex: index, technique: technique) {
        case .failure(let failure):
            throw WhittleError(.invalidArgument, subject, "cannot be compressed with \(technique.rawValue): \(failure.reason)")
        case .success(let value): prepared = value
        }
        var options = options
        if let data = options.reconstructionInputs, options.activations == nil {
            options.activations = try ActivationSource(graph: graph, inputs: data, batchSize: options.batchSize)
        }
        let computedBefore = options.activations?.store.computeSeconds ?? 0
        let sweeper = Sweeper(graph: graph, analysis: analysis, technique: technique, ratios: ratios, options: options, job: job)
        let macs = CostModel.analyze(analysis).layers.first { $0.name == layer }?.macs ?? 0
        let result: LayerSweep?
        switch prepared {
        case .prune(let conv, let actions, let coReaders):
            result = try sweeper.prune(conv, actions: actions, coReaders: coReaders)
        case .convSVD(let conv):
            let (perRank, maxRank) = SVDSplitting.convCost(conv, technique: technique)
            result = try sweeper.split(.conv(conv), macs: macs, perRank: perRank, maxRank: maxRank)
        case .gemmSVD(let gemm):
            let (perRank, maxRank) = SVDSplitting.gemmCost(gemm)
            result = try sweeper.split(.gemm(gemm), macs: macs, perRank: perRank, maxRank: maxRank)
        }
        if var result {
            if let store = options.activations?.store {
                result.seconds["reference activations (calibration set)"] = store.computeSeconds - computedBefore
            }
            return result
        }
        // No shared form (e.g. a tensor the reconstruction needs is not batch-major): one
        // compression per ratio, scored one by one.
        let start = ContinuousClock.now
        var variants: [LayerSweep.Variant] = []
        for ratio in ratios {
            try job.checkCancellation("compression")
            let outcome = try compress(graph, choices: [LayerChoice(layer: layer, technique: technique, ratio: ratio)],
                                       options: options, job: .silent)
            let detail = outcome.layers.first
            variants.append(LayerSweep.Variant(ratio: ratio, kept: detail?.kept ?? 0, original: detail?.original ?? 0,
                                               graph: outcome.graph, weights: nil))
        }
        return LayerSweep(template: nil, patched: [], variants: variants,
                          seconds: ["compress (per ratio)": seconds(ContinuousClock.now - start)])
    }
}

/// The work of one `Compressor.sweep`.
private struct Sweeper {
    enum SplitLayer {
        case conv(ConvLayer)
        case gemm(GemmLayer)
        var node: Node {
            switch self {
            case .conv(let conv): return conv.node
            case .gemm(let gemm): return gemm.node
            }
        }
    }

    let graph: Graph
    let analysis: GraphAnalysis
    let technique: CompressionTechnique
    let ratios: [Double]
    let options: CompressionOptions
    let job: JobContext
    let timer = PhaseTimer()

    init(graph: Graph, analysis: GraphAnalysis, technique: CompressionTechnique, ratios: [Double],
         options: CompressionOptions, job: JobContext) {
        self.graph = graph
        self.analysis = analysis
        self.technique = technique
        self.ratios = ratios
        self.options = options
        self.job = job
    }

    func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        try timer.time(phase, body)
    }

    /// The reference activations reconstruction reads, when reconstruction is on.
    var source: ActivationSource? { options.reconstructionInputs == nil ? nil : options.activations }

    // MARK: Channel pruning

    func prune(_ conv: ConvLayer, actions: [Winnowing.Action], coReaders: [ConvLayer]) throws -> LayerSweep? {
        let readers = [conv] + coReaders
        let original = conv.inChannels
        let order = timed("channel order") { Winnowing.channelOrder(weights: readers.map(\.weight)) }
        let keeps: [[Int]?] = ratios.map { ratio in
            let kept = Compressor.keptChannels(ratio: ratio, channels: original, multiplicity: options.rankMultiplicity)
            return kept < original ? Array(order.prefix(kept)).sorted() : nil
        }
        let refit = source != nil
        // The template: every reader's weight (and refitted bias) under a fresh name.
        var editor = GraphEditor(graph)
        var weightNames: [String] = [], biasNames: [String?] = []
        for reader in readers {
            guard let weightName = reader.node.input(1) else { return nil }
            let fresh = editor.addInitializer(weightName + ".sweep", reader.weight)
            editor.graph.nodes[reader.nodeIndex].inputs[1] = fresh
            weightNames.append(fresh)
            if refit, let biasName = reader.node.input(2), let bias = reader.bias {
                let freshBias = editor.addInitializer(biasName + ".sweep", bias)
                editor.graph.nodes[reader.nodeIndex].inputs[2] = freshBias
                biasNames.append(freshBias)
            } else {
                biasNames.append(nil)
            }
        }
        let template = editor.graph
        let patched = weightNames + biasNames.compactMap { $0 }

        // Per variant and reader: the refitted weights (kept channels) and bias, or nil without reconstruction.
        var solutions: [[(weight: [Float], bias: [Float]?)]] = Array(repeating: [], count: ratios.count)
        var masked: [[String: [Float]]] = Array(repeating: [:], count: ratios.count)
        let changed = keeps.indices.filter { keeps[$0] != nil }
        for (readerIndex, reader) in readers.enumerated() {
            let area = reader.kernel.h * reader.kernel.w
            let out = reader.outChannels
            var solved: [Int: (weight: [Float], bias: [Float]?)] = [:]
            if let source {
                let unit = try RefitLayer(analysis, layer: reader.node.name)
                guard let target = reader.node.outputs.first, let targets = try source.values(of: target) else { return nil }
                let prior = unit.prior(in: graph)
                // Does the reader's input depend on earlier readers' refits (a residual stream
                // that passes through their blocks)?
                let inputCut = GraphCut.suffix(of: template, against: graph, output: unit.source,
                                               analysis: source.analysis, batchMajor: source.batchMajor)
                switch inputCut {
                case .whole:
                    return nil
                case .unchanged:
                    guard let inputs = try source.values(of: unit.source) else { return nil }
                    solved = try sharedSolutions(unit: unit, inputs: inputs, targets: targets, prior: prior, keeps: keeps,
                                                 variants: changed, images: source.sampleCount)
                case .suffix:
                    // One compiled run per worker; the variants' refits are independent.
                    let workers = max(1, min(options.parallelVariants, changed.count))
                    var runs: [PatchedSuffix] = []
                    for _ in 0..<workers {
                        let run: PatchedSuffix?
                        do {
                            run = try timed("reconstruction: reference activations and compile") {
                                let run = try PatchedSuffix(template: template, base: graph, patched: Set(patched), output: unit.source,
                                                            analysis: source.analysis, batchMajor: source.batchMajor,
                                                            store: source.store, batchSize: source.batchSize)
                                try run?.prepare()
                                return run
                            }
                        } catch let error as WhittleError where error.kind != .cancelled {
                            return nil  // no compile with weights as inputs: one compression per ratio instead
                        }
                        guard let run else { return nil }
                        runs.append(run)
                    }
                    let current = masked
                    solved = try VariantWorkers.run(changed, workers: workers) { worker, variant in
                        guard let keep = keeps[variant] else { throw WhittleError(.invalidModel, "sweep", "variant \(variant) keeps every channel") }
                        try job.checkCancellation("reconstruction")
                        return try ownSolution(unit: unit, run: runs[worker], weights: current[variant], targets: targets,
                                               prior: prior, keep: keep, images: source.sampleCount)
                    }
                }
            }
            for variant in changed {
                guard let keep = keeps[variant] else { continue }
                let weight: [Float], bias: [Float]?
                if let solution = solved[variant] {
                    (weight, bias) = solution
                } else {
                    weight = gather(reader.weight, axis: 1, keep: keep).floats
                    bias = nil
                }
                solutions[variant].append((weight, bias))
                // Masked: the kept channels' weights scattered into the full input width.
                var full = [Float](repeating: 0, count: out * original * area)
                for o in 0..<out {
                    for (k, c) in keep.enumerated() {
                        for t in 0..<area { full[(o * original + c) * area + t] = weight[(o * keep.count + k) * area + t] }
                    }
                }
                masked[variant][weightNames[readerIndex]] = full
                if let name = biasNames[readerIndex] { masked[variant][name] = bias ?? reader.bias?.floats ?? [] }
            }
        }

        var variants: [LayerSweep.Variant] = []
        for (variant, ratio) in ratios.enumerated() {
            guard let keep = keeps[variant] else {
                variants.append(LayerSweep.Variant(ratio: ratio, kept: original, original: original, graph: graph, weights: nil))
                continue
            }
            let compressed = try timed("graph edits") { () throws -> Graph in
                var editor = GraphEditor(graph)
                try Winnowing.apply(actions, keep: keep, editor: &editor, constants: analysis.constants)
                for (reader, solution) in zip(readers, solutions[variant]) {
                    var shape = reader.weight.shape
                    shape[1] = keep.count
                    editor.setConstant(node: reader.nodeIndex, input: 1, Tensor(shape: shape, floats: solution.weight))
                    if let bias = solution.bias { editor.setConstant(node: reader.nodeIndex, input: 2, Tensor(shape: [bias.count], floats: bias)) }
                }
                return editor.finish()
            }
            variants.append(LayerSweep.Variant(ratio: ratio, kept: keep.count, original: original, graph: compressed,
                                               weights: masked[variant]))
        }
        return LayerSweep(template: template, patched: patched, variants: variants, seconds: timer.seconds)
    }

    /// Refits of a reader whose input is the reference's for every variant: one system over
    /// all input channels per sampling (the rows per image depend on the kept width), one
    /// sub-block solve per variant. Returns weights [out, kept, kh, kw] and bias per variant.
    func sharedSolutions(unit: RefitLayer, inputs: Tensor, targets: Tensor, prior: [Float], keeps: [[Int]?],
                                  variants: [Int], images: Int) throws -> [Int: (weight: [Float], bias: [Float]?)] {
        let area = unit.geometry.area
        var systems: [Int: (picks: [[Int]], equations: NormalEquations)] = [:]
        var result: [Int: (weight: [Float], bias: [Float]?)] = [:]
        for variant in variants {
            guard let keep = keeps[variant] else { continue }
            let columns = keep.count * area + (unit.hasBias ? 1 : 0)
            let picks = Reconstruction.samplePositions(layer: unit.node.name, positions: unit.positions, images: images,
                                                       columns: columns)
            let perImage = picks.first?.count ?? 0
            if systems[perImage] == nil {
                let equations = try timed("Gram matrices") {
                    try system(unit: unit, inputs: inputs, targets: targets, picks: picks, images: images)
                }
                systems[perImage] = (picks, equations)
            }
            guard let equations = systems[perImage]?.equations else { continue }
            var subset: [Int] = []
            subset.reserveCapacity(columns)
            for c in keep { subset.append(contentsOf: (c * area)..<((c + 1) * area)) }
            if unit.hasBias { subset.append(unit.patch) }
            result[variant] = try timed("solves") {
                let solution = try equations.solve(subset: subset, prior: selectRows(of: prior, subset, width: unit.outChannels),
                                                   ridge: Reconstruction.ridge)
                return layout(solution, outChannels: unit.outChannels, inputs: keep.count, area: area, hasBias: unit.hasBias)
            }
        }
        return result
    }

    /// The normal equations of `unit` over every channel of its input, at positions `picks`.
    func system(unit: RefitLayer, inputs: Tensor, targets: Tensor, picks: [[Int]], images: Int) throws -> NormalEquations {
        let rows = images * (picks.first?.count ?? 0)
        var x = [Float](repeating: 0, count: rows * unit.columns)
        var y = [Float](repeating: 0, count: rows * unit.outChannels)
        let inputStride = inputs.count / max(1, images), targetStride = targets.count / max(1, images)
        guard inputStride * images == inputs.count, targetStride == unit.outChannels * unit.positions else {
            throw WhittleError(.shapeMismatch, "layer '\(unit.node.name)'", "reference activations do not match the layer's shapes")
        }
        var row = 0
        inputs.floats.withUnsafeBufferPointer { buffer in
            unit.gatherInputs(buffer, samples: 0..<images, perSample: inputStride, picks: picks, channels: nil, into: &x, row: &row)
        }
        row = 0
        targets.floats.withUnsafeBufferPointer { buffer in
            unit.gatherTargets(buffer, samples: 0..<images, perSample: targetStride, picks: picks,
                               channelMap: Array(0..<unit.outChannels), into: &y, row: &row)
        }
        return try NormalEquations(x: x, y: y, rows: rows, columns: unit.columns, outputs: unit.outChannels)
    }

    /// Refit of a reader whose input the earlier readers' refits change: its system gathered
    /// from `run` with this variant's weights (kept channels only).
    func ownSolution(unit: RefitLayer, run: PatchedSuffix, weights: [String: [Float]], targets: Tensor,
                              prior: [Float], keep: [Int], images: Int) throws -> (weight: [Float], bias: [Float]?) {
        let area = unit.geometry.area
        let columns = keep.count * area + (unit.hasBias ? 1 : 0)
        let picks = Reconstruction.samplePositions(layer: unit.node.name, positions: unit.positions, images: images, columns: columns)
        let rows = images * (picks.first?.count ?? 0)
        var x = [Float](repeating: 0, count: rows * columns)
        var row = 0
        try timed("reconstruction: co-reader runs, thread-s") {
            try run.run(weights: weights, shouldStop: { job.isCancelled }) { batch, plan in
                guard let buffer = plan.outputBuffer(unit.source), let info = plan.info(unit.source) else {
                    throw WhittleError(.invalidModel, "tensor '\(unit.source)'", "not readable during reconstruction")
                }
                unit.gatherInputs(buffer, samples: batch, perSample: info.count / max(1, batch.count), picks: picks,
                                  channels: keep, into: &x, row: &row)
            }
        }
        var y = [Float](repeating: 0, count: rows * unit.outChannels)
        row = 0
        targets.floats.withUnsafeBufferPointer { buffer in
            unit.gatherTargets(buffer, samples: 0..<images, perSample: targets.count / max(1, images), picks: picks,
                               channelMap: Array(0..<unit.outChannels), into: &y, row: &row)
        }
        var subset: [Int] = []
        for c in keep { subset.append(contentsOf: (c * area)..<((c + 1) * area)) }
        if unit.hasBias { subset.append(unit.patch) }
        let equations = try timed("reconstruction: co-reader Gram matrices and solves, thread-s") {
            try NormalEquations(x: x, y: y, rows: rows, columns: columns, outputs: unit.outChannels)
        }
        return try timed("reconstruction: co-reader Gram matrices and solves, thread-s") {
            let solution = try equations.solve(subset: Array(0..<columns), prior: selectRows(of: prior, subset, width: unit.outChannels),
                                               ridge: Reconstruction.ridge)
            return layout(solution, outChannels: unit.outChannels, inputs: keep.count, area: area, hasBias: unit.hasBias)
        }
    }

    /// Rows `subset` of a row-major matrix `width` wide.
    func selectRows(of matrix: [Float], _ subset: [Int], width: Int) -> [Float] {
        var result: [Float] = []
        result.reserveCapacity(subset.count * width)
        for row in subset { result.append(contentsOf: matrix[(row * width)..<((row + 1) * width)]) }
        return result
    }

    /// A Conv solution (columns x out, channel-major patch then bias) as weight [out, inputs, kh, kw] and bias.
    func layout(_ solution: [Float], outChannels: Int, inputs: Int, area: Int, hasBias: Bool) -> (weight: [Float], bias: [Float]?) {
        let patch = inputs * area
        var weight = [Float](repeating: 0, count: outChannels * patch)
        for o in 0..<outChannels { for p in 0..<patch { weight[o * patch + p] = solution[p * outChannels + o] } }
        return (weight, hasBias ? Array(solution[(patch * outChannels)...]) : nil)
    }

    // MARK: SVD

    func split(_ layer: SplitLayer, macs: Int, perRank: Int, maxRank: Int) throws -> LayerSweep? {
        let ranks: [Int?] = ratios.map { ratio in
            ratio >= 1 ? nil : SVDSplitting.rank(ratio: ratio, originalMACs: macs, perRank: perRank, maxRank: maxRank,
                                                 multiplicity: options.rankMultiplicity)
        }
        guard let widest = ranks.compactMap({ $0 }).max() else {
            return LayerSweep(template: nil, patched: [], variants: ratios.map {
                LayerSweep.Variant(ratio: $0, kept: maxRank, original: maxRank, graph: graph, weights: nil)
            }, seconds: [:])
        }
        let decomposition = try timed("whitening+SVD") { () throws -> SVDWhitening.Decomposition in
            switch layer {
            case .conv(let conv):
                let whitening = try Compressor.estimateWhitening(graph, node: conv.node, options: options, job: job,
                                                                 patch: technique == .weightSVD ? .pixel(conv) : .vertical(conv))
                return try SVDSplitting.decompose(conv, technique: technique, whitening: whitening)
            case .gemm(let gemm):
                let whitening = try Compressor.estimateWhitening(graph, node: gemm.node, options: options, job: job,
                                                                 patch: .features(gemm.inFeatures))
                return try SVDSplitting.decompose(gemm, technique: technique, whitening: whitening)
            }
        }
        func splitGraph(rank: Int) throws -> (graph: Graph, names: [String]) {
            var editor = GraphEditor(graph)
            let names: [String]
            switch layer {
            case .conv(let conv):
                names = try SVDSplitting.splitConv(&editor, layer: conv, technique: technique, rank: rank, decomposition: decomposition)
            case .gemm(let gemm):
                names = try SVDSplitting.splitGemm(&editor, layer: gemm, technique: technique, rank: rank, decomposition: decomposition)
            }
            return (editor.finish(), names)
        }
        let (wide, names) = try timed("graph edits") { try splitGraph(rank: widest) }
        guard names.count == 2 else { return nil }
        let refit = options.reconstructSVD && source != nil

        // Reconstruction of the second factor: its input (the first factor's output) at rank r
        // is the first r channels of the widest one, so one system serves every rank.
        var unit: RefitLayer?
        var systems: [Int: NormalEquations] = [:]
        var picksByRank: [Int: Int] = [:]
        var prior: [Float] = []
        if refit, let source {
            let wideAnalysis = try GraphAnalysis(graph: wide, batchSize: 1)
            let second = try RefitLayer(wideAnalysis, layer: names[1])
            unit = second
            prior = second.prior(in: wide)
            guard let target = layer.node.outputs.first, let targets = try source.values(of: target),
                  let run = try source.plan(for: second.source, of: wide) else { return nil }
            let images = source.sampleCount
            // One sampling per distinct rows-per-image among the ranks.
            var samplings: [Int: [[Int]]] = [:]
            for rank in Set(ranks.compactMap { $0 }) {
                let columns = rank * second.geometry.area + (second.hasBias ? 1 : 0)
                let picks = Reconstruction.samplePositions(layer: names[1], positions: second.positions, images: images,
                                                           columns: columns)
                let perImage = picks.first?.count ?? 0
                picksByRank[rank] = perImage
                samplings[perImage] = picks
            }
            var xs: [Int: [Float]] = [:]
            var rowsDone: [Int: Int] = [:]
            for (perImage, _) in samplings {
                xs[perImage] = [Float](repeating: 0, count: images * perImage * second.columns)
                rowsDone[perImage] = 0
            }
            try timed("reconstruction: SVD first-factor run") {
                let runner = try BatchRunner(graph: run.graph, batchSize: options.batchSize)
                try runner.forEachBatch(inputs: run.inputs, shouldStop: { job.isCancelled }) { batch, plan in
                    guard let buffer = plan.outputBuffer(second.source), let info = plan.info(second.source) else {
                        throw WhittleError(.invalidModel, "tensor '\(second.source)'", "not readable during reconstruction")
                    }
                    for (perImage, picks) in samplings {
                        guard var x = xs[perImage], var row = rowsDone[perImage] else { continue }
                        xs[perImage] = nil
                        second.gatherInputs(buffer, samples: batch, perSample: info.count / max(1, batch.count), picks: picks,
                                            channels: nil, into: &x, row: &row)
                        xs[perImage] = x
                        rowsDone[perImage] = row
                    }
                }
            }
            try timed("Gram matrices") {
                for (perImage, picks) in samplings {
                    guard let x = xs[perImage] else { continue }
                    let rows = images * perImage
                    var y = [Float](repeating: 0, count: rows * second.outChannels)
                    var row = 0
                    let stride = targets.count / max(1, images)
                    guard stride == second.outChannels * second.positions else {
                        throw WhittleError(.shapeMismatch, "layer '\(layer.node.name)'", "reference output does not match the split's shape")
                    }
                    targets.floats.withUnsafeBufferPointer { buffer in
                        second.gatherTargets(buffer, samples: 0..<images, perSample: stride, picks: picks,
                                             channelMap: Array(0..<second.outChannels), into: &y, row: &row)
                    }
                    systems[perImage] = try NormalEquations(x: x, y: y, rows: rows, columns: second.columns,
                                                            outputs: second.outChannels)
                }
            }
        }

        var variants: [LayerSweep.Variant] = []
        var templateGraph: Graph?
        for (variant, ratio) in ratios.enumerated() {
            try job.checkCancellation("compression")
            guard let rank = ranks[variant] else {
                variants.append(LayerSweep.Variant(ratio: ratio, kept: maxRank, original: maxRank, graph: graph, weights: nil))
                continue
            }
            var (compressed, _) = try timed("graph edits") { try splitGraph(rank: rank) }
            if let unit, let perImage = picksByRank[rank], let equations = systems[perImage] {
                let area = unit.geometry.area
                var subset = Array(0..<(rank * area))
                if unit.hasBias { subset.append(unit.patch) }
                let solution = try timed("solves") {
                    try equations.solve(subset: subset, prior: selectRows(of: prior, subset, width: unit.outChannels),
                                        ridge: Reconstruction.ridge)
                }
                compressed = timed("graph edits") { unit.narrowed(toInputs: rank).install(solution, in: compressed) }
            }
            if rank == widest, templateGraph == nil { templateGraph = compressed }
            variants.append(LayerSweep.Variant(ratio: ratio, kept: rank, original: maxRank, graph: compressed, weights: nil))
        }
        guard var template = templateGraph,
              let firstIndex = template.nodes.firstIndex(where: { $0.name == names[0] }),
              let secondIndex = template.nodes.firstIndex(where: { $0.name == names[1] }) else { return nil }

        // The template: the widest variant with its factors (and refitted bias) under fresh names.
        // Rank axis of each factor's weight: Conv [r, m, kh, 1] and [n, r, kh, kw]; Gemm B [k, r] and [r, n].
        let isConv: Bool
        if case .conv = layer { isConv = true } else { isConv = false }
        var slots: [(node: Int, input: Int, rankAxis: Int?)] = [(firstIndex, 1, isConv ? 0 : 1), (secondIndex, 1, isConv ? 1 : 0)]
        if unit?.hasBias == true { slots.append((secondIndex, 2, nil)) }
        var editor = GraphEditor(template)
        var patched: [String] = []
        for slot in slots {
            guard let name = template.nodes[slot.node].input(slot.input), let tensor = template.initializers[name] else { return nil }
            let fresh = editor.addInitializer(name + ".sweep", tensor)
            editor.graph.nodes[slot.node].inputs[slot.input] = fresh
            patched.append(fresh)
        }
        template = editor.graph
        for index in variants.indices where ranks[index] != nil {
            let compressed = variants[index].graph
            guard let first = compressed.nodes.firstIndex(where: { $0.name == names[0] }),
                  let second = compressed.nodes.firstIndex(where: { $0.name == names[1] }) else { return nil }
            var weights: [String: [Float]] = [:]
            for (slot, name) in zip(slots, patched) {
                let node = slot.node == firstIndex ? first : second
                guard let source = compressed.nodes[node].input(slot.input), let tensor = compressed.initializers[source] else { return nil }
                weights[name] = slot.rankAxis.map { padded(tensor, axis: $0, to: widest) } ?? tensor.floats
            }
            variants[index].weights = weights
        }
        return LayerSweep(template: template, patched: patched, variants: variants, seconds: timer.seconds)
    }

    /// `tensor`'s values with axis `axis` zero-padded to `size` entries.
    func padded(_ tensor: Tensor, axis: Int, to size: Int) -> [Float] {
        let shape = tensor.shape
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        let count = shape[axis]
        let values = tensor.floats
        var result = [Float](repeating: 0, count: outer * size * inner)
        for block in 0..<outer {
            for index in 0..<count {
                let from = (block * count + index) * inner, to = (block * size + index) * inner
                for t in 0..<inner { result[to + t] = values[from + t] }
            }
        }
        return result
    }
}

/// Wall-clock seconds accumulated by named phase (thread-safe: phases timed on several
/// threads at once add up their threads' seconds).
final class PhaseTimer: Sendable {
    private let totals = Mutex<[String: Double]>([:])

    var seconds: [String: Double] { totals.withLock { $0 } }

    func time<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        let clock = ContinuousClock()
        let start = clock.now
        defer {
            let elapsed = WhittleCompress.seconds(clock.now - start)
            totals.withLock { $0[phase, default: 0] += elapsed }
        }
        return try body()
    }
}

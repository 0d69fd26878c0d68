import WhittleEngine

/// Entry points of the compression library: which layers each technique can compress, and
/// compressing a chosen set of layers.
public enum Compressor {
    /// Op types listed by `eligibility` (the ones with MACs).
    static let layerOps: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul"]

    /// Every Conv, ConvTranspose, Gemm and MatMul layer of `graph`, in execution order, with
    /// whether `technique` can compress it (and why not), and its MACs and parameters at batch 1.
    ///
    /// Spatial and weight SVD: Conv with group 1 (2-D, constant weights) and Gemm (transA 0,
    /// constant B). Channel pruning: Conv with group 1 whose input channels can be winnowed
    /// (see `ChannelGroup`); when other Convs read the same channels (a residual stream), the
    /// first of them in execution order is eligible and prunes them all.
    public static func eligibility(of graph: Graph, technique: CompressionTechnique) throws -> [LayerEligibility] {
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        let costs = Dictionary(CostModel.analyze(analysis).layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var names: [String: Int] = [:]
        for node in graph.nodes { names[node.name, default: 0] += 1 }
        return analysis.runtimeNodes.compactMap { runtime in
            let node = runtime.node
            guard layerOps.contains(node.opType) else { return nil }
            var reason: String?
            if node.name.isEmpty || names[node.name] != 1 {
                reason = "the node has no unique name"
            } else if case .failure(let failure) = prepare(analysis, nodeIndex: runtime.index, technique: technique) {
                reason = failure.reason
            }
            let cost = costs[node.name]
            return LayerEligibility(layer: node.name, opType: node.opType, technique: technique, eligible: reason == nil,
                                    reason: reason, macs: cost?.macs ?? 0, parameters: cost?.parameters ?? 0)
        }
    }

    /// What a technique keeps of a layer as its ratio moves (batch 1, multiplicity 1): spatial
    /// and weight SVD keep rank ⌊r · MACs / MACs per rank⌋, channel pruning ⌊r · C_in⌋ input
    /// channels, at least 1 and at most `full` (the counts `rank(of:…)` and `keptChannels`
    /// give), so a display can follow a slider without analysing the graph again.
    public struct KeptScale: Sendable, Equatable {
        /// True for channel pruning (input channels kept), false for SVD (rank kept).
        public var channels: Bool
        /// Full rank, or the layer's input channels.
        public var full: Int
        /// Units per unit of ratio, before flooring.
        public var perRatio: Double
    }

    /// `KeptScale` of every layer `technique` can compress, by layer name.
    public static func keptScales(of graph: Graph, technique: CompressionTechnique) throws -> [String: KeptScale] {
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        let costs = Dictionary(CostModel.analyze(analysis).layers.map { ($0.name, $0.macs) }, uniquingKeysWith: { a, _ in a })
        var scales: [String: KeptScale] = [:]
        for runtime in analysis.runtimeNodes where layerOps.contains(runtime.node.opType) && !runtime.node.name.isEmpty {
            let macs = Double(costs[runtime.node.name] ?? 0)
            func svd(_ perRank: Int, _ maxRank: Int) -> KeptScale {
                KeptScale(channels: false, full: maxRank, perRatio: perRank > 0 ? macs / Double(perRank) : Double(maxRank))
            }
            switch prepare(analysis, nodeIndex: runtime.index, technique: technique) {
            case .failure: continue
            case .success(.convSVD(let conv)):
                let (perRank, maxRank) = SVDSplitting.convCost(conv, technique: technique)
                scales[runtime.node.name] = svd(perRank, maxRank)
            case .success(.gemmSVD(let gemm)):
                let (perRank, maxRank) = SVDSplitting.gemmCost(gemm)
                scales[runtime.node.name] = svd(perRank, maxRank)
            case .success(.prune(let conv, _, _)):
                scales[runtime.node.name] = KeptScale(channels: true, full: conv.inChannels, perRatio: Double(conv.inChannels))
            }
        }
        return scales
    }

    /// What a technique needs to know about one eligible layer.
    enum Prepared {
        case convSVD(ConvLayer)
        case gemmSVD(GemmLayer)
        /// The pruned Conv, the edits upstream (and across residual joins), and the other
        /// Convs reading the same channels (pruned with it, in execution order).
        case prune(ConvLayer, [Winnowing.Action], coReaders: [ConvLayer])
    }

    static func prepare(_ analysis: GraphAnalysis, nodeIndex: Int, technique: CompressionTechnique) -> Result<Prepared, IneligibleLayer> {
        let node = analysis.graph.nodes[nodeIndex]
        switch (node.opType, technique) {
        case ("Conv", _):
            let conv: ConvLayer
            switch ConvLayer.read(analysis, nodeIndex: nodeIndex) {
            case .failure(let failure): return .failure(failure)
            case .success(let value): conv = value
            }
            if conv.groups != 1 {
                let kind = conv.groups == conv.inChannels ? "depthwise" : "grouped"
                return .failure(IneligibleLayer("\(kind) convolution (group \(conv.groups)); only group-1 convolutions are compressed"))
            }
            if technique != .channelPruning { return .success(.convSVD(conv)) }
            guard let input = node.input(0) else { return .failure(IneligibleLayer("it has no input")) }
            return ChannelGroup.find(analysis, tensor: input).flatMap { group in
                guard conv.inChannels >= 2 else { return .failure(IneligibleLayer("it has a single input channel")) }
                if let first = group.readers.first, first != nodeIndex {
                    let name = analysis.graph.nodes[first].name
                    return .failure(IneligibleLayer(group.joinsBranches
                        ? "its input channels are pruned together with \(name) (shared through a residual branch); choose \(name)"
                        : "its input channels are pruned together with \(name); choose \(name)"))
                }
                var coReaders: [ConvLayer] = []
                for reader in group.readers where reader != nodeIndex {
                    guard case .success(let other) = ConvLayer.read(analysis, nodeIndex: reader) else {
                        return .failure(IneligibleLayer("Conv \(analysis.graph.nodes[reader].name) reading the same channels cannot be read"))
                    }
                    coReaders.append(other)
                }
                return .success(.prune(conv, group.actions, coReaders: coReaders))
            }
        case ("Gemm", .spatialSVD), ("Gemm", .weightSVD):
            return GemmLayer.read(analysis, nodeIndex: nodeIndex).map { .gemmSVD($0) }
        case ("Gemm", .channelPruning):
            return .failure(IneligibleLayer("channel pruning applies to Conv layers only"))
        default:
            return .failure(IneligibleLayer("\(node.opType) layers are not compressed; only Conv and Gemm are"))
        }
    }

    /// Compresses each chosen layer (in execution order) and returns the new graph with
    /// per-layer outcomes whose costs are measured on the compressed graph at batch 1.
    ///
    /// A ratio of exactly 1 leaves the layer unchanged. With `options.reconstructionInputs`,
    /// pruned convs are refitted by least squares (inputs from the compressed model, targets
    /// from `graph`), and so is the second factor of every SVD split when
    /// `options.reconstructSVD` is set. The graph is re-analysed after every layer, so a
    /// change that breaks it fails here, naming the layer.
    ///
    /// Throws `.invalidArgument` naming the layer for unknown names, duplicates, ratios
    /// outside (0, 1] and layers the technique cannot compress (with the reason).
    public static func compress(_ graph: Graph, choices: [LayerChoice], options: CompressionOptions,
                                job: JobContext) throws -> CompressionOutcome {
        guard options.rankMultiplicity >= 1 else {
            throw WhittleError(.invalidArgument, "rank multiplicity", "must be at least 1, got \(options.rankMultiplicity)")
        }
        guard options.batchSize >= 1 else {
            throw WhittleError(.invalidArgument, "batch size", "must be at least 1, got \(options.batchSize)")
        }
        let baseline = try GraphAnalysis(graph: graph, batchSize: 1)
        let baselineCost = CostModel.analyze(baseline)
        let costs = Dictionary(baselineCost.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var positions: [String: Int] = [:]
        var duplicates = Set<String>()
        for (index, node) in graph.nodes.enumerated() {
            if positions[node.name] != nil { duplicates.insert(node.name) }
            positions[node.name] = index
        }
        var seen = Set<String>()
        for choice in choices {
            let subject = "layer '\(choice.layer)'"
            guard let index = positions[choice.layer], !duplicates.contains(choice.layer) else {
                throw WhittleError(.invalidArgument, subject, duplicates.contains(choice.layer)
                                   ? "several nodes have this name" : "no node of the model has this name")
            }
            guard choice.ratio.isFinite, choice.ratio > 0, choice.ratio <= 1 else {
                throw WhittleError(.invalidArgument, subject, "ratio \(choice.ratio) is outside (0, 1]")
            }
            guard seen.insert(choice.layer).inserted else {
                throw WhittleError(.invalidArgument, subject, "chosen more than once")
            }
            if case .failure(let failure) = prepare(baseline, nodeIndex: index, technique: choice.technique) {
                throw WhittleError(.invalidArgument, subject, "cannot be compressed with \(choice.technique.rawValue): \(failure.reason)")
            }
        }
        let ordered = choices.sorted { (positions[$0.layer] ?? 0) < (positions[$1.layer] ?? 0) }

        var current = graph
        var outcomes: [LayerOutcome] = []
        // Original output channels still written by nodes whose outputs were pruned.
        var keptOutputs: [String: [Int]] = [:]
        for (step, choice) in ordered.enumerated() {
            try job.checkCancellation("compression")
            job.report(phase: "compress", completed: step, total: ordered.count, detail: choice.layer)
            let subject = "layer '\(choice.layer)'"
            let analysis = try GraphAnalysis(graph: current, batchSize: 1)
            guard let index = current.nodes.firstIndex(where: { $0.name == choice.layer }) else {
                throw WhittleError(.invalidModel, subject, "vanished while compressing earlier layers")
            }
            let prepared: Prepared
            switch prepare(analysis, nodeIndex: index, technique: choice.technique) {
            case .failure(let failure):
                throw WhittleError(.invalidArgument, subject, "cannot be compressed with \(choice.technique.rawValue) after earlier layers changed: \(failure.reason)")
            case .success(let value): prepared = value
            }
            let before = costs[choice.layer]
            let macsBefore = before?.macs ?? 0
            var editor = GraphEditor(current)
            var kept = 0, original = 0
            var newNodes = [choice.layer]
            var refitNodes: [(node: String, target: String?)] = []
            switch prepared {
            case .convSVD(let conv):
                let (perRank, maxRank) = SVDSplitting.convCost(conv, technique: choice.technique)
                original = maxRank
                kept = choice.ratio >= 1 ? maxRank : SVDSplitting.rank(
                    ratio: choice.ratio, originalMACs: macsBefore, perRank: perRank, maxRank: maxRank,
                    multiplicity: options.rankMultiplicity)
                if choice.ratio < 1 {
                    let whitening = try estimateWhitening(current, node: conv.node, options: options, job: job,
                                                          patch: choice.technique == .weightSVD ? .pixel(conv) : .vertical(conv))
                    newNodes = try SVDSplitting.splitConv(&editor, layer: conv, technique: choice.technique, rank: kept,
                                                          whitening: whitening)
                    if options.reconstructSVD, let last = newNodes.last { refitNodes = [(last, nil)] }
                }
            case .gemmSVD(let gemm):
                let (perRank, maxRank) = SVDSplitting.gemmCost(gemm)
                original = maxRank
                kept = choice.ratio >= 1 ? maxRank : SVDSplitting.rank(
                    ratio: choice.ratio, originalMACs: macsBefore, perRank: perRank, maxRank: maxRank,
                    multiplicity: options.rankMultiplicity)
                if choice.ratio < 1 {
                    let whitening = try estimateWhitening(current, node: gemm.node, options: options, job: job,
                                                          patch: .features(gemm.inFeatures))
                    newNodes = try SVDSplitting.splitGemm(&editor, layer: gemm, technique: choice.technique, rank: kept,
                                                          whitening: whitening)
                    if options.reconstructSVD, let last = newNodes.last { refitNodes = [(last, nil)] }
                }
            case .prune(let conv, let actions, let coReaders):
                original = conv.inChannels
                newNodes += coReaders.map(\.node.name)
                kept = keptChannels(ratio: choice.ratio, channels: original, multiplicity: options.rankMultiplicity)
                if kept < original {
                    let readers = [conv] + coReaders
                    let keep = Winnowing.selectChannels(weights: readers.map(\.weight), count: kept)
                    try Winnowing.apply(actions, keep: keep, editor: &editor, constants: analysis.constants)
                    for case .producer(let name) in actions {
                        let channels = keptOutputs[name] ?? Array(0..<(keep.max() ?? 0) + 1)
                        keptOutputs[name] = keep.map { $0 < channels.count ? channels[$0] : $0 }
                    }
                    for reader in readers {
                        editor.setConstant(node: reader.nodeIndex, input: 1, gather(reader.weight, axis: 1, keep: keep))
                        let target = positions[reader.node.name].flatMap { graph.nodes[$0].outputs.first }
                        refitNodes.append((reader.node.name, target))
                    }
                }
            }
            current = editor.finish()
            do { _ = try GraphAnalysis(graph: current, batchSize: 1) }
            catch let error as WhittleError {
                throw WhittleError(.invalidModel, subject, "compression produced an invalid graph: \(error.description)")
            }
            if let data = options.reconstructionInputs {
                for (node, target) in refitNodes {
                    guard let target = target ?? graph.nodes[positions[choice.layer] ?? 0].outputs.first else { continue }
                    job.report(phase: "reconstruct", completed: step, total: ordered.count, detail: node)
                    current = try Reconstruction.refit(layer: node, compressed: current, original: graph, target: target,
                                                       inputs: data, batchSize: options.batchSize,
                                                       activations: options.activations,
                                                       targetChannels: keptOutputs[node], job: job)
                }
            }
            outcomes.append(LayerOutcome(
                layer: choice.layer, technique: choice.technique, requestedRatio: choice.ratio, kept: kept, original: original,
                macsBefore: newNodes.count > 1 && choice.technique == .channelPruning
                    ? newNodes.reduce(0) { $0 + (costs[$1]?.macs ?? 0) } : macsBefore,
                macsAfter: 0,
                parametersBefore: newNodes.count > 1 && choice.technique == .channelPruning
                    ? newNodes.reduce(0) { $0 + (costs[$1]?.parameters ?? 0) } : before?.parameters ?? 0,
                parametersAfter: 0,
                newNodes: newNodes))
        }
        job.report(phase: "compress", completed: ordered.count, total: ordered.count, detail: nil)

        let final = CostModel.analyze(try GraphAnalysis(graph: current, batchSize: 1))
        let finalCosts = Dictionary(final.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for index in outcomes.indices {
            outcomes[index].macsAfter = outcomes[index].newNodes.reduce(0) { $0 + (finalCosts[$1]?.macs ?? 0) }
            outcomes[index].parametersAfter = outcomes[index].newNodes.reduce(0) { $0 + (finalCosts[$1]?.parameters ?? 0) }
        }
        return CompressionOutcome(graph: current, layers: outcomes, baselineCost: baselineCost, cost: final)
    }

    /// The input whitening of an SVD split (see `SVDWhitening`), estimated on the reconstruction
    /// data as the partly compressed model computes the layer's input; nil without data or
    /// when `options.reconstructSVD` is off (plain truncated SVD).
    static func estimateWhitening(_ graph: Graph, node: Node, options: CompressionOptions, job: JobContext,
                                  patch: SVDWhitening.Patch) throws -> SVDWhitening? {
        guard options.reconstructSVD, let data = options.reconstructionInputs, let source = node.input(0) else { return nil }
        job.report(phase: "whiten", completed: 0, total: 1, detail: node.name)
        return try SVDWhitening.estimate(graph: graph, source: source, patch: patch, inputs: data,
                                         batchSize: options.batchSize, seed: node.name, activations: options.activations,
                                         job: job)
    }

    /// Channel pruning's kept input channels for a MAC ratio: AIMET's `max(1, int(C_in · r))`,
    /// rounded up to `multiplicity`, never above C_in.
    public static func keptChannels(ratio: Double, channels: Int, multiplicity: Int) -> Int {
        var kept = max(1, Int((Double(channels) * ratio + 1e-9).rounded(.down)))
        let step = max(1, multiplicity)
        kept = (kept + step - 1) / step * step
        return min(kept, channels)
    }

    /// The rank spatial or weight SVD keeps for `ratio` on an eligible layer (what
    /// `compress` would use), with the full rank.
    public static func rank(of layer: String, in graph: Graph, technique: CompressionTechnique, ratio: Double,
                            multiplicity: Int = 1) throws -> (rank: Int, fullRank: Int) {
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        guard let index = graph.nodes.firstIndex(where: { $0.name == layer }) else {
            throw WhittleError(.invalidArgument, "layer '\(layer)'", "no node of the model has this name")
        }
        let macs = CostModel.analyze(analysis).layers.first { $0.name == layer }?.macs ?? 0
        switch prepare(analysis, nodeIndex: index, technique: technique) {
        case .failure(let failure):
            throw WhittleError(.invalidArgument, "layer '\(layer)'", "cannot be compressed with \(technique.rawValue): \(failure.reason)")
        case .success(.convSVD(let conv)):
            let (perRank, maxRank) = SVDSplitting.convCost(conv, technique: technique)
            return (SVDSplitting.rank(ratio: ratio, originalMACs: macs, perRank: perRank, maxRank: maxRank, multiplicity: multiplicity), maxRank)
        case .success(.gemmSVD(let gemm)):
            let (perRank, maxRank) = SVDSplitting.gemmCost(gemm)
            return (SVDSplitting.rank(ratio: ratio, originalMACs: macs, perRank: perRank, maxRank: maxRank, multiplicity: multiplicity), maxRank)
        case .success(.prune(let conv, _, _)):
            return (keptChannels(ratio: ratio, channels: conv.inChannels, multiplicity: multiplicity), conv.inChannels)
        }
    }
}

import WhittleEngine

/// Per-channel normal model of a BatchNormalization's output, `x_c ~ N(beta_c, gamma_c²)`:
/// what cross-layer equalization's high-bias absorption and analytical bias correction
/// assume (Nagel et al. 2019, §4.2 and §5). `gamma` keeps its sign; users take |gamma|.
public struct ChannelDistribution: Sendable, Equatable {
    public var beta: [Float]
    public var gamma: [Float]

    public init(beta: [Float], gamma: [Float]) {
        self.beta = beta
        self.gamma = gamma
    }

    /// The distribution after the tensor is multiplied per channel by `factors`.
    public func scaled(by factors: [Float]) -> ChannelDistribution {
        ChannelDistribution(beta: zip(beta, factors).map { $0 * $1 }, gamma: zip(gamma, factors).map { $0 * $1 })
    }
}

/// Captures BatchNormalization statistics before folding removes them.
public enum BatchNormStatistics {
    /// `(beta, gamma)` of every inference BatchNormalization with constant parameters, keyed
    /// by the BN's output tensor. Conv→BN folding keeps that tensor name (the folded Conv
    /// writes it), so the keys still name the layer outputs after `BatchNormFoldingPass`.
    public static func capture(_ graph: Graph) -> [String: ChannelDistribution] {
        var result: [String: ChannelDistribution] = [:]
        for node in graph.nodes where node.opType == "BatchNormalization" && node.domain.isEmpty {
            guard let output = node.outputs.first, !output.isEmpty,
                  let gamma = node.input(1).flatMap({ graph.initializers[$0] }), gamma.isFloatingPoint,
                  let beta = node.input(2).flatMap({ graph.initializers[$0] }), beta.isFloatingPoint,
                  gamma.count == beta.count else { continue }
            result[output] = ChannelDistribution(beta: beta.floats, gamma: gamma.floats)
        }
        return result
    }
}

/// What `BatchNormFoldingPass` did.
public struct BatchNormFoldReport: Sendable, Equatable {
    /// Conv/Gemm → BN folds (the BN's output tensor is now written by the layer).
    public var backward: [Pair] = []
    /// BN → Conv/Gemm folds (the layer now reads the BN's input).
    public var forward: [Pair] = []
    /// BatchNormalization nodes left in the graph, with the reason.
    public var skipped: [Skip] = []

    /// A folded (layer, BatchNormalization) pair, by node name.
    public struct Pair: Sendable, Equatable {
        public var layer: String
        public var batchNorm: String

        public init(layer: String, batchNorm: String) {
            self.layer = layer
            self.batchNorm = batchNorm
        }
    }

    public struct Skip: Sendable, Equatable {
        public var batchNorm: String
        public var reason: String
    }

    public init() {}
}

/// BatchNorm folding in both directions (shared reference aimet.md §1.5).
///
/// First every Conv/ConvTranspose/Gemm → BN pair is folded by the engine's
/// `BatchNormFolding` (W' = s·W per output channel, b' = s·(b − μ) + β with
/// s = γ/√(σ² + ε)). Then each remaining BN whose output feeds exactly one Conv or Gemm (as
/// its data input) is folded forward into that layer. Writing the BN as `x' = s·x + t` with
/// `t = β − μ·s`, the layer computes `W·x' + b = (W·diag(s))·x + (b + Σ_{c,k} W[o,c,k]·t_c)`:
///
///     W'[o, c, k] = W[o, c, k] · s_c,        b'_o = b_o + Σ_{c,k} W[o, c, k] · t_c
///
/// Validity: the identity holds at every output position only when every tap of the
/// layer reads a real BN output. A Conv with non-zero `pads` (or `auto_pad` SAME_*) pads the
/// BN *output* with zeros in the original model; after folding it pads `x` with zeros, which
/// the scaled weights still map to 0, but the folded bias adds `W·t` for the padded taps too,
/// so border outputs would be off by `Σ_{padded taps} W[o,c,k]·t_c`. Such BNs are therefore
/// not folded (AIMET's `_is_valid_bn_fold` makes the same choice) and are reported as skipped.
/// ConvTranspose is never folded forward. Any
/// `group` is handled (depthwise included: input channel `c` scales only its own group).
public enum BatchNormFoldingPass {
    /// Folds every foldable BatchNormalization; tensors in `preserved` (and model outputs)
    /// are never folded away.
    public static func apply(_ graph: Graph, preserving preserved: Set<String> = []) throws -> (graph: Graph, report: BatchNormFoldReport) {
        var report = BatchNormFoldReport()
        let backward = try BatchNormFolding.fold(graph, preserving: preserved)
        report.backward = backward.folds.map { BatchNormFoldReport.Pair(layer: $0.producer, batchNorm: $0.batchNorm) }
        let forward = foldForward(backward.graph, preserving: preserved)
        report.forward = forward.folds
        report.skipped = forward.skipped
        return (forward.graph, report)
    }

    /// BN → Conv/Gemm folding only (see the type's documentation for the validity rule).
    public static func foldForward(_ graph: Graph, preserving preserved: Set<String> = [])
        -> (graph: Graph, folds: [BatchNormFoldReport.Pair], skipped: [BatchNormFoldReport.Skip]) {
        var result = graph
        var folds: [BatchNormFoldReport.Pair] = []
        var skipped: [BatchNormFoldReport.Skip] = []
        var removed = Set<Int>()
        let outputs = Set(graph.outputs.map(\.name))
        for bnIndex in graph.nodes.indices where graph.nodes[bnIndex].opType == "BatchNormalization" && graph.nodes[bnIndex].domain.isEmpty {
            let bn = result.nodes[bnIndex]
            func skip(_ reason: String) { skipped.append(.init(batchNorm: bn.name, reason: reason)) }
            let consumers = result.consumers()
            guard let x = bn.input(0), let y = bn.outputs.first, !y.isEmpty,
                  bn.outputs.dropFirst().allSatisfy(\.isEmpty) else { skip("has training-mode outputs"); continue }
            guard !outputs.contains(y), !preserved.contains(y) else { skip("its output is a model output or preserved"); continue }
            guard let readers = consumers[y], readers.count == 1, let layerIndex = readers.first,
                  var layer = LinearLayer(graph: result, index: layerIndex), layer.node.input(0) == y,
                  !(layer.node.inputs.dropFirst().contains(y)) else {
                skip("no Conv/Gemm→BN pair, and its output does not feed exactly one Conv/Gemm")
                continue
            }
            guard !layer.hasPadding else {
                skip("feeds the padded Conv '\(layer.node.name)' (folding forward is exact only with zero padding)")
                continue
            }
            guard let parameters = batchNormParameters(bn, in: result), parameters.scale.count == layer.inputChannels else {
                skip("parameters are not constant or do not match '\(layer.node.name)'")
                continue
            }
            // b' = b + Σ W·t, computed from the unscaled weights.
            let sums = layer.summedOverKernel()
            var delta = [Float](repeating: 0, count: layer.outputChannels)
            for o in 0..<layer.outputChannels {
                var total: Float = 0
                for c in 0..<layer.inputChannels { total += sums[o][c] * parameters.shift[c] }
                delta[o] = total * layer.alpha
            }
            guard layer.addToEffectiveBias(delta) else { skip("feeds a Gemm with beta = 0"); continue }
            layer.scaleInputs(by: parameters.scale)
            layer.store(into: &result, consumers: consumers)
            result.nodes[layerIndex].inputs[0] = x
            removed.insert(bnIndex)
            folds.append(BatchNormFoldReport.Pair(layer: layer.node.name, batchNorm: bn.name))
        }
        guard !removed.isEmpty else { return (graph, [], skipped) }
        return (result.removingNodes(at: removed), folds, skipped)
    }

    /// `s = γ/√(σ² + ε)` and `t = β − μ·s` of an inference BatchNormalization.
    static func batchNormParameters(_ bn: Node, in graph: Graph) -> (scale: [Float], shift: [Float])? {
        func values(_ index: Int) -> [Float]? {
            guard let name = bn.input(index), let tensor = graph.initializers[name], tensor.isFloatingPoint else { return nil }
            return tensor.floats
        }
        guard let gamma = values(1), let beta = values(2), let mean = values(3), let variance = values(4),
              beta.count == gamma.count, mean.count == gamma.count, variance.count == gamma.count else { return nil }
        var epsilon: Float = 1e-5
        if let attribute = bn.attributes["epsilon"] {
            guard case .float(let value) = attribute else { return nil }
            epsilon = value
        }
        var scale = [Float](repeating: 0, count: gamma.count)
        var shift = scale
        for c in gamma.indices {
            scale[c] = gamma[c] / (variance[c] + epsilon).squareRoot()
            shift[c] = beta[c] - mean[c] * scale[c]
        }
        return (scale, shift)
    }
}

extension LinearLayer {
    /// Gemm's `alpha` (1 for Conv).
    var alpha: Float {
        if case .gemm = kind, case .float(let value)? = node.attributes["alpha"] { return value }
        return 1
    }
}

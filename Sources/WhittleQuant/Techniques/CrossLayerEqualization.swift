import Foundation
import WhittleEngine

/// Cross-layer equalization with high-bias absorption (Nagel et al. 2019, "Data-Free
/// Quantization Through Weight Equalization and Bias Correction"; shared reference aimet.md
/// §1.6).
///
/// `apply` runs AIMET's `equalize_model` sequence:
/// 1. capture BN statistics (β, γ) and fold every BatchNormalization (`BatchNormFoldingPass`);
/// 2. find cross-layer scaling sets: chains of Conv/Gemm layers whose connecting tensors have
///    exactly one reader and are not model outputs, through scale-equivariant operators only;
/// 3. scale each set so that per-channel weight ranges match;
/// 4. absorb high biases into the next layer.
///
/// **Scale equivariance.** Scaling a layer's output channel c by `1/s_c > 0` must commute with
/// what lies between the two layers: `f(x/s) = f(x)/s`. That holds for ReLU (and Clip with
/// min 0 and no max), MaxPool / GlobalMaxPool, AveragePool / GlobalAveragePool and Flatten
/// (axis 1; a flattened channel c covers input columns `c·inner ..< (c+1)·inner` of the
/// following Gemm). It does not hold for residual Add, Concat, Mul, Sigmoid/Swish, or any
/// clipping with a finite upper bound: a chain stops there.
///
/// **ReLU6.** `min(max(x, 0), 6)` is not scale-equivariant: after scaling, channel c would
/// need the bound `6/s_c`. With `.replaceWithReLU` (the default, what AIMET does) every
/// Clip(0, 6)-like activation *inside a scaling set* is turned into a plain Relu (node and
/// tensor names kept) — this changes the float function wherever the pre-activation exceeds
/// the bound, and the report lists each replaced node; measure the accuracy after the pass.
/// Unlike AIMET, bounded activations outside scaling sets are left alone. With `.keep`, a
/// bounded activation ends the chain, so those layers are not equalized and the function
/// is unchanged.
///
/// **Scaling** (`ScaleFactorCalculator` in AIMET): with `r1_c = max|W1[c, …]|` (output channel
/// c of layer 1) and `r2_c = max|W2[:, c, …]|` (input channel c of layer 2),
/// `s_c = r1_c / √(r1_c·r2_c)` (= √(r1_c/r2_c); 1 when a range is 0); then `W1[c] /= s_c`,
/// `b1[c] /= s_c`, `W2[:, c] *= s_c`, and both ranges become `√(r1_c·r2_c)`. For a
/// conv → depthwise → conv set with ranges r1, r2 (depthwise, per channel), r3:
/// `g = ∛(r1·r2·r3)`, `S12 = r1/g`, `S23 = g/r3`; layer 1 and its bias `/S12`, the depthwise
/// weights `×S12/S23` and its bias `/S23`, layer 3 `×S23`; all three ranges become g. A channel
/// with any zero range keeps scale 1. Sets are processed once, in graph order (AIMET's single
/// pass); a layer in two consecutive sets is scaled by both.
///
/// **High-bias absorption** (`HighBiasFold`): for each consecutive pair of a set whose first
/// output has BN statistics `N(β, γ²)` (scaled along with the layer), absorb
/// `a_c = max(0, β_c − 3|γ_c|)` when an activation lies between them (`a_c = β_c` without one):
/// `b1 −= a`, `b2 += Σ_k W2[o, c, k]·a_c`. With ReLU this is exact for every input where
/// the pre-activation is ≥ `a_c` (≈ 99.9% of values under the normal model). Exactness also
/// needs every tap of layer 2 to read a real value: a padded layer 2 (or a padded
/// AveragePool in between) sees zeros at the border, not `−a`, so border outputs change by
/// `Σ_{padded taps} W2·a`. AIMET absorbs anyway; `absorbIntoPaddedLayers: false` skips such
/// pairs.
public enum CrossLayerEqualization {
    public enum ReLU6Handling: String, Sendable, Equatable, CaseIterable {
        /// Replace bounded ReLUs inside scaling sets with ReLU (AIMET; can change accuracy).
        case replaceWithReLU
        /// Keep them; a bounded activation ends the chain (function unchanged, fewer sets).
        case keep
    }

    public struct Options: Sendable, Equatable {
        public var relu6: ReLU6Handling
        public var highBiasAbsorption: Bool
        /// Absorb into a padded layer 2 as AIMET does (approximate at the borders).
        public var absorbIntoPaddedLayers: Bool
        /// Tensors that must keep their values (never inside a chain) and are never folded.
        public var preservedTensors: Set<String>

        public init(relu6: ReLU6Handling = .replaceWithReLU, highBiasAbsorption: Bool = true,
                    absorbIntoPaddedLayers: Bool = true, preservedTensors: Set<String> = []) {
            self.relu6 = relu6
            self.highBiasAbsorption = highBiasAbsorption
            self.absorbIntoPaddedLayers = absorbIntoPaddedLayers
            self.preservedTensors = preservedTensors
        }
    }

    /// A chain of 2 or 3 layers equalized together.
    public struct ScalingSet: Sendable, Equatable {
        /// Node names, in data-flow order (3 layers: conv → depthwise → conv).
        public var layers: [String]
        /// Scale per channel at each boundary: `scales[i]` divides layer i's output channels
        /// and multiplies layer i+1's input channels (filled in by `apply`).
        public var scales: [[Float]]
        /// Operators between the layers (e.g. ["Relu"], ["Relu", "GlobalAveragePool", "Flatten"]).
        public var between: [[String]]
    }

    public struct Absorption: Sendable, Equatable {
        public var from: String
        public var into: String
        /// Channels with a non-zero absorbed amount.
        public var channels: Int
        /// Σ_c a_c.
        public var total: Float
        /// Layer 2 (or a pool in between) pads, so borders are approximate.
        public var approximateAtBorders: Bool
    }

    public struct Report: Sendable, Equatable {
        public var batchNormFolds = BatchNormFoldReport()
        public var sets: [ScalingSet] = []
        /// Names of bounded-ReLU (Clip) nodes turned into Relu.
        public var replacedActivations: [String] = []
        public var absorptions: [Absorption] = []
        /// BN statistics of layer outputs after folding, scaling and absorption, keyed by tensor
        /// name: the input for `BiasCorrection.analytical`.
        public var statistics: [String: ChannelDistribution] = [:]
    }

    /// Folds BatchNorms, equalizes every scaling set and absorbs high biases.
    public static func apply(_ graph: Graph, options: Options = Options()) throws -> (graph: Graph, report: Report) {
        let statistics = BatchNormStatistics.capture(graph)
        let folded = try BatchNormFoldingPass.apply(graph, preserving: options.preservedTensors)
        var report = Report()
        report.batchNormFolds = folded.report
        // Only statistics of tensors that are still layer outputs are meaningful.
        let producers = folded.graph.producers()
        report.statistics = statistics.filter { name, _ in
            producers[name].map { LinearLayer(graph: folded.graph, index: $0) != nil } ?? false
        }
        let result = try equalize(folded.graph, statistics: report.statistics, options: options)
        report.sets = result.report.sets
        report.replacedActivations = result.report.replacedActivations
        report.absorptions = result.report.absorptions
        report.statistics = result.report.statistics
        return (result.graph, report)
    }

    /// Scaling and high-bias absorption on a graph whose BatchNorms are already folded.
    /// `statistics` holds `N(β, γ²)` per layer output tensor (from `BatchNormStatistics.capture`
    /// before folding); without it no bias is absorbed.
    public static func equalize(_ graph: Graph, statistics: [String: ChannelDistribution] = [:],
                                options: Options = Options()) throws -> (graph: Graph, report: Report) {
        var report = Report()
        report.statistics = statistics
        let found = findScalingSets(graph, options: options)
        guard !found.isEmpty else { return (graph, report) }
        var result = graph
        let consumers = graph.consumers()
        var layers: [Int: LinearLayer] = [:]
        for set in found { for index in set.layerIndices where layers[index] == nil { layers[index] = LinearLayer(graph: graph, index: index) } }

        for set in found {
            for index in set.replacements {
                let node = result.nodes[index]
                result.nodes[index] = Node(name: node.name, opType: "Relu", domain: node.domain, inputs: [node.inputs[0]], outputs: node.outputs)
                report.replacedActivations.append(node.name)
            }
            guard var first = layers[set.layerIndices[0]], var second = layers[set.layerIndices[1]] else { continue }
            var scalingSet = ScalingSet(layers: set.layerIndices.map { graph.nodes[$0].name }, scales: [], between: set.between)
            if set.layerIndices.count == 2 {
                let r1 = first.outputRanges()
                let r2 = collapse(second.inputRanges(), channels: r1.count)
                let scale = zip(r1, r2).map { a, b -> Float in
                    let product = Double(a) * Double(b)
                    return product > 0 ? Float(Double(a) / product.squareRoot()) : 1
                }
                first.scaleOutputs(by: scale.map { 1 / $0 })
                second.scaleInputs(by: expand(scale, to: second.inputChannels))
                rescale(&report.statistics, first.outputName, by: scale.map { 1 / $0 })
                scalingSet.scales = [scale]
            } else if var third = layers[set.layerIndices[2]] {
                let r1 = first.outputRanges()
                let r2 = second.outputRanges()
                let r3 = collapse(third.inputRanges(), channels: r1.count)
                var s12 = [Float](repeating: 1, count: r1.count)
                var s23 = s12
                for c in r1.indices where r1[c] > 0 && r2[c] > 0 && r3[c] > 0 {
                    let g = cbrt(Double(r1[c]) * Double(r2[c]) * Double(r3[c]))
                    s12[c] = Float(Double(r1[c]) / g)
                    s23[c] = Float(g / Double(r3[c]))
                }
                first.scaleOutputs(by: s12.map { 1 / $0 })
                second.scaleInputs(by: s12)
                second.scaleOutputs(by: s23.map { 1 / $0 })
                third.scaleInputs(by: expand(s23, to: third.inputChannels))
                rescale(&report.statistics, first.outputName, by: s12.map { 1 / $0 })
                rescale(&report.statistics, second.outputName, by: s23.map { 1 / $0 })
                layers[set.layerIndices[2]] = third
                scalingSet.scales = [s12, s23]
            }
            layers[set.layerIndices[0]] = first
            layers[set.layerIndices[1]] = second
            report.sets.append(scalingSet)
        }

        if options.highBiasAbsorption {
            for set in found {
                for pair in 0..<(set.layerIndices.count - 1) {
                    guard var first = layers[set.layerIndices[pair]], var second = layers[set.layerIndices[pair + 1]],
                          var distribution = report.statistics[first.outputName],
                          distribution.beta.count == first.outputChannels, distribution.gamma.count == first.outputChannels
                    else { continue }
                    let padded = second.hasPadding || set.paddedPool[pair]
                    if padded && !options.absorbIntoPaddedLayers { continue }
                    let absorbed = (0..<first.outputChannels).map { c -> Float in
                        set.activated[pair] ? max(0, distribution.beta[c] - 3 * abs(distribution.gamma[c])) : distribution.beta[c]
                    }
                    guard absorbed.contains(where: { $0 != 0 }) else { continue }
                    let sums = second.summedOverKernel()
                    let columns = expand(absorbed, to: second.inputChannels)
                    let delta = (0..<second.outputChannels).map { o -> Float in
                        var total: Float = 0
                        for c in 0..<second.inputChannels where columns[c] != 0 { total += sums[o][c] * columns[c] }
                        return total * second.alpha
                    }
                    guard second.biasMultiplier != 0, first.biasMultiplier != 0 else { continue }
                    _ = second.addToEffectiveBias(delta)
                    _ = first.addToEffectiveBias(absorbed.map { -$0 })
                    for c in absorbed.indices { distribution.beta[c] -= absorbed[c] }
                    report.statistics[first.outputName] = distribution
                    layers[set.layerIndices[pair]] = first
                    layers[set.layerIndices[pair + 1]] = second
                    report.absorptions.append(Absorption(
                        from: first.node.name, into: second.node.name, channels: absorbed.filter { $0 != 0 }.count,
                        total: absorbed.reduce(0, +), approximateAtBorders: padded))
                }
            }
        }
        for index in layers.keys.sorted() { layers[index]?.store(into: &result, consumers: consumers) }
        return (result, report)
    }

    /// A scaling set as found in the graph (node indices), before scaling.
    struct FoundSet {
        var layerIndices: [Int]
        var between: [[String]]
        /// Bounded activations to turn into Relu when the set is applied.
        var replacements: [Int]
        /// Per boundary: an activation lies between the layers.
        var activated: [Bool]
        /// Per boundary: a padded AveragePool lies between the layers.
        var paddedPool: [Bool]
    }

    /// The 2- and 3-layer scaling sets of `graph`, in graph order, as node-name lists.
    public static func scalingSets(_ graph: Graph, options: Options = Options()) -> [[String]] {
        findScalingSets(graph, options: options).map { $0.layerIndices.map { graph.nodes[$0].name } }
    }

    static func findScalingSets(_ graph: Graph, options: Options) -> [FoundSet] {
        let producers = graph.producers()
        let consumers = graph.consumers()
        let blocked = Set(graph.outputs.map(\.name)).union(options.preservedTensors)
        var middles = Set<Int>()
        var sets: [FoundSet] = []
        for index in graph.nodes.indices where !middles.contains(index) {
            guard let first = LinearLayer(graph: graph, index: index),
                  let link = follow(from: first, graph: graph, producers: producers, consumers: consumers, blocked: blocked, options: options),
                  let second = LinearLayer(graph: graph, index: link.layer),
                  fits(first, second)
            else { continue }
            if second.isDepthwise, second.outputChannels == first.outputChannels,
               let next = follow(from: second, graph: graph, producers: producers, consumers: consumers, blocked: blocked, options: options),
               let third = LinearLayer(graph: graph, index: next.layer), !third.isDepthwise, fits(second, third) {
                middles.insert(link.layer)
                sets.append(FoundSet(layerIndices: [index, link.layer, next.layer], between: [link.ops, next.ops],
                                     replacements: link.replacements + next.replacements,
                                     activated: [link.activated, next.activated], paddedPool: [link.paddedPool, next.paddedPool]))
            } else {
                sets.append(FoundSet(layerIndices: [index, link.layer], between: [link.ops], replacements: link.replacements,
                                     activated: [link.activated], paddedPool: [link.paddedPool]))
            }
        }
        return sets
    }

    /// Whether `second` reads `first`'s channels one-to-one (or in equal flattened blocks).
    static func fits(_ first: LinearLayer, _ second: LinearLayer) -> Bool {
        let channels = first.outputChannels
        guard channels > 0, second.inputChannels % channels == 0 else { return false }
        if second.inputChannels != channels {
            // Only a Gemm behind Flatten reads blocks of columns per channel.
            guard case .gemm = second.kind else { return false }
        }
        if second.groups > 1 && !second.isDepthwise { return false }
        if first.groups > 1 && !first.isDepthwise { return false }
        return true
    }

    struct Link {
        var layer: Int
        var ops: [String]
        var replacements: [Int]
        var activated: Bool
        var paddedPool: Bool
    }

    /// Walks from `layer`'s output through scale-equivariant single-reader operators to the
    /// next Conv/Gemm, or nil.
    static func follow(from layer: LinearLayer, graph: Graph, producers: [String: Int], consumers: [String: [Int]],
                       blocked: Set<String>, options: Options) -> Link? {
        var tensor = layer.outputName
        var link = Link(layer: -1, ops: [], replacements: [], activated: false, paddedPool: false)
        var flattened = false
        while true {
            guard !blocked.contains(tensor), let readers = consumers[tensor], readers.count == 1, let readerIndex = readers.first else { return nil }
            let node = graph.nodes[readerIndex]
            guard node.input(0) == tensor, !node.inputs.dropFirst().contains(tensor), node.domain.isEmpty || node.domain == "ai.onnx"
            else { return nil }
            if let next = LinearLayer(graph: graph, index: readerIndex) {
                if flattened, case .conv = next.kind { return nil }
                link.layer = readerIndex
                return link
            }
            guard !flattened, node.outputs.count == 1, let output = node.outputs.first, !output.isEmpty else { return nil }
            switch node.opType {
            case "Relu":
                link.activated = true
            case "Clip":
                guard let bounds = clipBounds(node, in: graph, producers: producers), bounds.low == 0 else { return nil }
                if bounds.high.isFinite {
                    guard options.relu6 == .replaceWithReLU, bounds.high > 0 else { return nil }
                    link.replacements.append(readerIndex)
                }
                link.activated = true
            case "MaxPool", "GlobalMaxPool", "GlobalAveragePool":
                break
            case "AveragePool":
                if case .ints(let pads)? = node.attributes["pads"], pads.contains(where: { $0 != 0 }) { link.paddedPool = true }
                if case .string(let mode)? = node.attributes["auto_pad"], mode.hasPrefix("SAME") { link.paddedPool = true }
            case "Flatten":
                if let axis = node.attributes["axis"] {
                    guard case .int(1) = axis else { return nil }
                }
                flattened = true
            default:
                return nil
            }
            link.ops.append(node.opType)
            tensor = output
        }
    }

    /// Per-channel maximum of per-column ranges when a Gemm reads `channels` flattened blocks.
    static func collapse(_ ranges: [Float], channels: Int) -> [Float] {
        guard ranges.count != channels, channels > 0 else { return ranges }
        let inner = ranges.count / channels
        return (0..<channels).map { c in ranges[(c * inner)..<((c + 1) * inner)].max() ?? 0 }
    }

    /// Repeats each channel's factor over its block of `columns` (identity when equal).
    static func expand(_ factors: [Float], to columns: Int) -> [Float] {
        guard factors.count != columns, !factors.isEmpty else { return factors }
        let inner = columns / factors.count
        return (0..<columns).map { factors[$0 / inner] }
    }

    static func rescale(_ statistics: inout [String: ChannelDistribution], _ name: String, by factors: [Float]) {
        guard let distribution = statistics[name], distribution.beta.count == factors.count else { return }
        statistics[name] = distribution.scaled(by: factors)
    }
}

/// The report of `CrossLayerEqualization.apply`.
public typealias CLEReport = CrossLayerEqualization.Report

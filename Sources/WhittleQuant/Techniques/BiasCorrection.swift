import Foundation
import WhittleEngine

/// Quantize-dequantizes one layer's weights: `(layer node, float weights) -> weights on the
/// grid`, same shape. The simulation plugs its own weight quantizers in here so the
/// correction matches what is simulated; `WeightQuantizers.minMax` is a ready-made one.
public typealias WeightQuantizer = (_ layer: Node, _ weights: Tensor) throws -> Tensor

/// Bias correction (Nagel et al. 2019 §4.2; shared reference aimet.md §1.7): quantizing a
/// layer's weights `W → W_q` shifts the expected output of channel o by
/// `E[(W_q − W)·x]_o`; the correction subtracts that shift from the bias, so the layer's
/// per-channel output mean matches the float model. Only biases change; weights stay float
/// (the simulation quantizes them later with the same quantizer).
public enum BiasCorrection {
    public struct Correction: Sendable, Equatable {
        public var layer: String
        /// The per-output-channel amount subtracted from the effective bias.
        public var shift: [Float]
    }

    public struct Report: Sendable, Equatable {
        public var corrected: [Correction] = []
        /// Layers not corrected, with the reason.
        public var skipped: [(layer: String, reason: String)] = []

        public static func == (a: Report, b: Report) -> Bool {
            a.corrected == b.corrected && a.skipped.map(\.layer) == b.skipped.map(\.layer) && a.skipped.map(\.reason) == b.skipped.map(\.reason)
        }
    }

    // MARK: Analytical

    /// Analytical (data-free) correction: for every Conv/Gemm whose input is a BN-modelled
    /// tensor `N(β, γ²)` (from `statistics`, keyed by tensor name), optionally through one
    /// Relu/Clip and then mean-preserving GlobalAveragePool / unpadded AveragePool / Flatten:
    ///
    ///     ε[o, c] = Σ_k (W_q − W)[o, c, k],      b_o ← b_o − Σ_c ε[o, c]·E[x_c]
    ///
    /// with `E[x]` from `expectedValue(beta:gamma:clip:)`. Layers reading a tensor without
    /// statistics (e.g. the model input, a residual Add) are skipped and reported.
    ///
    /// - Parameters:
    ///   - layers: node names to correct (nil: every Conv/Gemm with constant weights).
    public static func analytical(graph: Graph, statistics: [String: ChannelDistribution], layers: Set<String>? = nil,
                                  weightQuantizer: WeightQuantizer) throws -> (graph: Graph, report: Report) {
        var result = graph
        var report = Report()
        let producers = graph.producers()
        let consumers = graph.consumers()
        for index in graph.nodes.indices {
            guard var layer = LinearLayer(graph: graph, index: index), layers?.contains(layer.node.name) ?? true else { continue }
            guard let input = inputExpectation(of: layer, graph: graph, producers: producers, statistics: statistics) else {
                report.skipped.append((layer.node.name, "its input has no BatchNorm statistics"))
                continue
            }
            let quantized = try quantizedWeights(layer, weightQuantizer)
            let error = zip(quantized, layer.weights).map { $0 - $1 }
            let sums = layer.summedOverKernel(error)
            let columns = CrossLayerEqualization.expand(input, to: layer.inputChannels)
            guard columns.count == layer.inputChannels else {
                report.skipped.append((layer.node.name, "statistics have \(input.count) channels, the layer reads \(layer.inputChannels)"))
                continue
            }
            let shift = (0..<layer.outputChannels).map { o -> Float in
                var total: Double = 0
                for c in 0..<layer.inputChannels { total += Double(sums[o][c]) * Double(columns[c]) }
                return Float(total) * layer.alpha
            }
            guard layer.addToEffectiveBias(shift.map { -$0 }) else {
                report.skipped.append((layer.node.name, "Gemm beta is 0"))
                continue
            }
            layer.store(into: &result, consumers: consumers)
            report.corrected.append(Correction(layer: layer.node.name, shift: shift))
        }
        return (result, report)
    }

    /// `E[clip(x, low, high)]` for `x ~ N(beta, gamma²)` (the truncated-normal mean the paper
    /// uses; `low = 0, high = +inf` is ReLU, `-inf, +inf` no activation):
    ///
    ///     E = γ·(φ(α) − φ(β̂)) + β·(Φ(β̂) − Φ(α)) + low·Φ(α) + high·(1 − Φ(β̂)),
    ///     α = (low − β)/γ,  β̂ = (high − β)/γ
    ///
    /// with the infinite-bound terms dropped. For ReLU this is `β·(1 − Φ(−β/γ)) + γ·φ(−β/γ)`.
    /// γ is used as |γ|; γ = 0 gives `clip(β)`.
    public static func expectedValue(beta: Float, gamma: Float, low: Float = -.infinity, high: Float = .infinity) -> Float {
        let mu = Double(beta), sigma = Double(abs(gamma))
        let lo = Double(low), hi = Double(high)
        guard sigma > 0 else { return Float(min(max(mu, lo), hi)) }
        func pdf(_ z: Double) -> Double { exp(-0.5 * z * z) / (2 * Double.pi).squareRoot() }
        func cdf(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }
        let a = lo.isFinite ? (lo - mu) / sigma : -Double.infinity
        let b = hi.isFinite ? (hi - mu) / sigma : Double.infinity
        let pdfA = lo.isFinite ? pdf(a) : 0, pdfB = hi.isFinite ? pdf(b) : 0
        let cdfA = lo.isFinite ? cdf(a) : 0, cdfB = hi.isFinite ? cdf(b) : 1
        var value = sigma * (pdfA - pdfB) + mu * (cdfB - cdfA)
        if lo.isFinite { value += lo * cdfA }
        if hi.isFinite { value += hi * (1 - cdfB) }
        return Float(value)
    }

    /// `E[x]` per input channel of `layer`, or nil when its input is not traceable to a tensor
    /// with statistics.
    static func inputExpectation(of layer: LinearLayer, graph: Graph, producers: [String: Int],
                                 statistics: [String: ChannelDistribution]) -> [Float]? {
        guard var tensor = layer.inputName else { return nil }
        var bounds: (low: Float, high: Float)?
        while true {
            if let distribution = statistics[tensor] {
                let clip = bounds ?? (-.infinity, .infinity)
                return zip(distribution.beta, distribution.gamma).map {
                    expectedValue(beta: $0, gamma: $1, low: clip.low, high: clip.high)
                }
            }
            guard let index = producers[tensor] else { return nil }
            let node = graph.nodes[index]
            guard let input = node.input(0) else { return nil }
            switch node.opType {
            case "Relu" where bounds == nil:
                bounds = (0, .infinity)
            case "Clip" where bounds == nil:
                guard let clip = clipBounds(node, in: graph, producers: graph.producers()) else { return nil }
                bounds = clip
            case "GlobalAveragePool" where bounds == nil, "Flatten" where bounds == nil:
                break
            case "AveragePool" where bounds == nil:
                if case .ints(let pads)? = node.attributes["pads"], pads.contains(where: { $0 != 0 }) { return nil }
                if case .string(let mode)? = node.attributes["auto_pad"], mode.hasPrefix("SAME") { return nil }
            default:
                return nil
            }
            tensor = input
        }
    }

    static func quantizedWeights(_ layer: LinearLayer, _ quantizer: WeightQuantizer) throws -> [Float] {
        let quantized = try quantizer(layer.node, Tensor(shape: layer.weightShape, floats: layer.weights))
        guard quantized.shape == layer.weightShape, quantized.isFloatingPoint else {
            throw WhittleError(.invalidArgument, layer.node.name,
                               "the weight quantizer returned shape \(quantized.shape), expected \(layer.weightShape)")
        }
        return quantized.floats
    }

    // MARK: Empirical

    /// Per-output-channel mean of a layer's output (over batch and spatial positions).
    public typealias OutputMean = (_ graph: Graph, _ layer: Node) throws -> [Float]

    /// Empirical correction with the measurement plugged in: layers are processed in graph
    /// order; for each, `quantizedOutputMean(current, layer)` measures the layer's output mean
    /// in the simulated model built from `current` (the graph with the biases corrected so far;
    /// the simulation decides what it quantizes — AIMET quantizes this layer and every layer
    /// before it), `floatOutputMean(original, layer)` the same in the float model, and
    /// `b ← b − (E[y_q] − E[y_float])`.
    ///
    /// - Parameters:
    ///   - layers: node names to correct (nil: every Conv/Gemm with constant weights).
    public static func empirical(graph: Graph, layers: Set<String>? = nil, context: JobContext = .silent,
                                 floatOutputMean: OutputMean, quantizedOutputMean: OutputMean) throws -> (graph: Graph, report: Report) {
        var result = graph
        var report = Report()
        let targets = graph.nodes.indices.filter { index in
            LinearLayer(graph: graph, index: index).map { layers?.contains($0.node.name) ?? true } ?? false
        }
        for (done, index) in targets.enumerated() {
            try context.checkCancellation("bias correction")
            context.report(phase: "bias correction", completed: done, total: targets.count, detail: graph.nodes[index].name)
            guard var layer = LinearLayer(graph: result, index: index) else { continue }
            guard let shift = try correctBias(of: &layer, floatMean: try floatOutputMean(graph, graph.nodes[index]),
                                              quantizedMean: try quantizedOutputMean(result, result.nodes[index]), report: &report)
            else { continue }
            layer.store(into: &result, consumers: result.consumers())
            report.corrected.append(Correction(layer: layer.node.name, shift: shift))
        }
        context.report(phase: "bias correction", completed: targets.count, total: targets.count)
        return (result, report)
    }

    /// Empirical correction on data with a weight-only simulation: for layer L the simulated
    /// model is the current graph with the weights of L and of every layer before it replaced
    /// by `weightQuantizer`'s output (activations float). Float means come from one pass of
    /// the original graph. Costs one pass over `data` per corrected layer, plus one.
    public static func empirical(graph: Graph, data: [String: Tensor], batchSize: Int = 64, layers: Set<String>? = nil,
                                 context: JobContext = .silent, weightQuantizer: WeightQuantizer) throws -> (graph: Graph, report: Report) {
        let targets = graph.nodes.indices.compactMap { LinearLayer(graph: graph, index: $0) }
        let floatMeans = try channelMeans(graph: graph, tensors: targets.map(\.outputName), data: data, batchSize: batchSize)
        return try empirical(
            graph: graph, layers: layers, context: context,
            floatOutputMean: { _, node in floatMeans[node.outputs[0]] ?? [] },
            quantizedOutputMean: { current, node in
                var simulated = current
                for index in current.nodes.indices {
                    guard let layer = LinearLayer(graph: current, index: index) else { continue }
                    let quantized = try quantizedWeights(layer, weightQuantizer)
                    simulated.initializers[layer.weightName] = Tensor(shape: layer.weightShape, floats: quantized)
                    if current.nodes[index].name == node.name { break }
                }
                return try channelMeans(graph: simulated, tensors: [node.outputs[0]], data: data, batchSize: batchSize)[node.outputs[0]] ?? []
            })
    }

    /// Mean of each of `tensors` per channel (dimension 1; over batch and the remaining
    /// dimensions) when `graph` runs over `data`.
    public static func channelMeans(graph: Graph, tensors: [String], data: [String: Tensor], batchSize: Int = 64) throws -> [String: [Float]] {
        let runner = try BatchRunner(graph: graph, batchSize: batchSize, options: CompileOptions(preservedTensors: Set(tensors)))
        var sums: [String: [Double]] = [:]
        var counts: [String: Int] = [:]
        try runner.forEachBatch(inputs: data) { _, plan in
            for name in tensors {
                guard let info = plan.info(name), let buffer = plan.outputBuffer(name) else {
                    throw WhittleError(.invalidArgument, name, "is not a tensor of the model")
                }
                let channels = info.rank >= 2 ? info.shape[1] : 1
                let inner = info.rank >= 2 ? info.shape[2...].reduce(1, *) : 1
                let outer = info.count / max(1, channels * inner)
                var sum = sums[name] ?? [Double](repeating: 0, count: channels)
                for n in 0..<outer {
                    for c in 0..<channels {
                        let base = (n * channels + c) * inner
                        var total: Double = 0
                        for i in 0..<inner { total += Double(buffer[base + i]) }
                        sum[c] += total
                    }
                }
                sums[name] = sum
                counts[name, default: 0] += outer * inner
            }
        }
        var means: [String: [Float]] = [:]
        for (name, sum) in sums {
            let count = Double(max(1, counts[name] ?? 1))
            means[name] = sum.map { Float($0 / count) }
        }
        return means
    }
}

/// Ready-made weight quantizers built on `QuantizationEncoding` and `FakeQuantization`.
public enum WeightQuantizers {
    /// Min-max encoding of the weights (per tensor, or per output channel: Conv axis 0, Gemm
    /// axis 0 with transB = 1 else 1), then quantize-dequantize.
    public static func minMax(bitWidth: Int = 8, symmetry: QuantizationSymmetry = .signedSymmetric,
                              perChannel: Bool = false) -> WeightQuantizer {
        { node, weights in
            var values = weights.floats
            if perChannel {
                var axis = 0
                if node.opType == "Gemm" {
                    var transB = false
                    if case .int(let t)? = node.attributes["transB"] { transB = t != 0 }
                    axis = transB ? 0 : 1
                } else if node.opType == "ConvTranspose" {
                    axis = 1
                }
                let layout = try ChannelLayout(shape: weights.shape, axis: axis)
                var encodings: [QuantizationEncoding] = []
                for c in 0..<layout.channelCount {
                    var low: Float = 0, high: Float = 0
                    for o in 0..<layout.outerCount {
                        let start = (o * layout.channelCount + c) * layout.innerSize
                        for i in 0..<layout.innerSize { low = min(low, values[start + i]); high = max(high, values[start + i]) }
                    }
                    encodings.append(try QuantizationEncoding.compute(min: low, max: high, bitWidth: bitWidth, symmetry: symmetry))
                }
                let quantizer = try PerChannelQuantizer(encodings: encodings, layout: layout)
                try values.withUnsafeMutableBufferPointer { try quantizer.quantizeDequantize($0) }
            } else {
                let encoding = try QuantizationEncoding.compute(
                    min: values.min() ?? 0, max: values.max() ?? 0, bitWidth: bitWidth, symmetry: symmetry)
                values.withUnsafeMutableBufferPointer { FakeQuantization.quantizeDequantize($0, encoding: encoding) }
            }
            return Tensor(shape: weights.shape, floats: values, elementType: weights.elementType)
        }
    }

    /// `graph` with the weights of every Conv/Gemm (or of `layers`) replaced by `quantizer`'s
    /// output — a weight-only simulation for measurements.
    public static func apply(_ quantizer: WeightQuantizer, to graph: Graph, layers: Set<String>? = nil) throws -> Graph {
        var result = graph
        for index in graph.nodes.indices {
            guard let layer = LinearLayer(graph: graph, index: index), layers?.contains(layer.node.name) ?? true else { continue }
            let quantized = try BiasCorrection.quantizedWeights(layer, quantizer)
            result.initializers[layer.weightName] = Tensor(shape: layer.weightShape, floats: quantized)
        }
        return result
    }
}

// MARK: Activation-aware (full simulation)

extension BiasCorrection {
    /// Moves `layer`'s effective bias by `floatMean - quantizedMean` (per output channel) and
    /// returns the shift removed (quantized minus float mean), or nil when the layer cannot
    /// take a bias (Gemm with beta 0, recorded in `report`).
    static func correctBias(of layer: inout LinearLayer, floatMean: [Float], quantizedMean: [Float],
                            report: inout Report) throws -> [Float]? {
        guard floatMean.count == layer.outputChannels, quantizedMean.count == layer.outputChannels else {
            throw WhittleError(.invalidArgument, layer.node.name,
                               "output means have \(floatMean.count) and \(quantizedMean.count) channels, the layer has \(layer.outputChannels)")
        }
        let shift = zip(quantizedMean, floatMean).map { $0 - $1 }
        guard layer.addToEffectiveBias(shift.map { -$0 }) else {
            report.skipped.append((layer.node.name, "Gemm beta is 0"))
            return nil
        }
        return shift
    }

    /// Empirical bias correction against the full simulation: layers are processed in graph
    /// order; for layer L the quantized model (weights *and* activations quantized with
    /// `model`'s encodings, biases corrected so far) runs over `data`, and
    ///
    ///     b_L ← b_L − (E[y_L,sim] − E[y_L,float])   per output channel,
    ///
    /// with `y_L` the layer's output before its own output quantizer. Besides the weight error
    /// that `empirical` removes, this cancels the systematic part of activation quantization:
    /// e.g. requantizing `x + c` (x already on a grid, c a constant that is not a whole number
    /// of steps) shifts every value by the same fraction of a step, a bias the next layer turns
    /// into a per-channel output offset (the correction of Finkelstein et al. 2019, "Fighting
    /// quantization bias with bias", done empirically). AIMET's empirical correction turns the
    /// output quantizers off (aimet.md §1.7), so it sees the weight error only.
    ///
    /// Activation encodings are kept as calibrated (recalibrating would move the grids the
    /// correction was measured on). A bias with an enabled quantizer gets its encoding
    /// recomputed. Costs one pass over `data` per corrected layer (through the part of the
    /// model the layer depends on), plus one float pass.
    public static func simulated(_ model: QuantizedModel, data: [String: Tensor], batchSize: Int = 32, layers: Set<String>? = nil,
                                 context: JobContext = .silent) throws -> (model: QuantizedModel, report: Report) {
        var current = model
        var report = Report()
        let targets = model.graph.nodes.indices.filter { index in
            LinearLayer(graph: model.graph, index: index).map { layers?.contains($0.node.name) ?? true } ?? false
        }
        let outputs = targets.map { model.graph.nodes[$0].outputs[0] }
        let floatMeans = try channelMeans(graph: model.graph, tensors: outputs, data: data, batchSize: batchSize)
        let quantizedActivations = Set(model.activeQuantizers(.all).filter { $0.settings.role == .activation }.map(\.tensor))
        for (done, index) in targets.enumerated() {
            try context.checkCancellation("activation bias correction")
            context.report(phase: "activation bias correction", completed: done, total: targets.count, detail: model.graph.nodes[index].name)
            guard var layer = LinearLayer(graph: current.graph, index: index) else { continue }
            let output = layer.outputName
            // The simulation renames a quantized output to NAME#float and quantizes it into NAME.
            let measured = quantizedActivations.contains(output) ? "\(output)#float" : output
            let simulation = try current.simulationGraph().prefix(computing: measured)
            let quantMean = try channelMeans(graph: simulation, tensors: [measured], data: data, batchSize: batchSize)[measured] ?? []
            guard let shift = try correctBias(of: &layer, floatMean: floatMeans[output] ?? [], quantizedMean: quantMean,
                                              report: &report)
            else { continue }
            layer.storeBias(into: &current.graph, consumers: current.graph.consumers())
            if let bias = current.graph.nodes[index].input(2), let settings = current.placement.quantizers[bias],
               settings.enabled, let values = current.graph.initializers[bias] {
                current.encodings[bias] = try Calibration.paramEncoding(values, settings: settings, name: bias)
            }
            report.corrected.append(Correction(layer: layer.node.name, shift: shift))
        }
        context.report(phase: "activation bias correction", completed: targets.count, total: targets.count)
        return (current, report)
    }
}

import Foundation

/// Folds inference BatchNormalization into the Conv, ConvTranspose or Gemm that feeds it.
///
/// For BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta applied per output channel o of
/// y = W x + b, with s_o = gamma_o / sqrt(var_o + eps):
///   W'_o = s_o * W_o,   b'_o = s_o * (b_o - mean_o) + beta_o.
/// The producer then writes the BatchNormalization's output tensor, so every tensor name a
/// user or an encodings file can see survives the fold. A BN is folded only when the
/// producer's output has no other reader, is not a model output or preserved, and all
/// weights are constants.
public enum BatchNormFolding {
    public struct Fold: Sendable, Equatable {
        public var producer: String
        public var batchNorm: String
    }

    public static func fold(_ graph: Graph, preserving preserved: Set<String> = []) throws -> (graph: Graph, folds: [Fold]) {
        var result = graph
        var folds: [Fold] = []
        var removed = Set<Int>()
        let producers = graph.producers()
        let consumers = graph.consumers()
        let outputs = Set(graph.outputs.map(\.name))
        for (bnIndex, bn) in graph.nodes.enumerated() where bn.opType == "BatchNormalization" && bn.domain.isEmpty {
            guard let x = bn.input(0), let producerIndex = producers[x], !removed.contains(producerIndex),
                  consumers[x]?.count == 1, !outputs.contains(x), !preserved.contains(x),
                  bn.outputs.count == 1 || bn.outputs.dropFirst().allSatisfy(\.isEmpty) else { continue }
            let producer = result.nodes[producerIndex]
            guard ["Conv", "ConvTranspose", "Gemm"].contains(producer.opType), producer.outputs.count == 1,
                  let weightName = producer.input(1), let weight = result.initializers[weightName], weight.isFloatingPoint,
                  let gamma = constant(bn, 1, result), let beta = constant(bn, 2, result),
                  let mean = constant(bn, 3, result), let variance = constant(bn, 4, result) else { continue }
            let epsilon: Float
            switch bn.attributes["epsilon"] {
            case .float(let value)?: epsilon = value
            case nil: epsilon = 1e-5
            default: continue
            }
            let channels = gamma.count
            guard beta.count == channels, mean.count == channels, variance.count == channels,
                  let axis = outputChannelAxis(of: producer, weight: weight), weight.shape[axis] * groupsFactor(producer, weight) == channels
            else { continue }
            var scale = [Float](repeating: 0, count: channels)
            for channel in 0..<channels { scale[channel] = gamma[channel] / (variance[channel] + epsilon).squareRoot() }

            // W' = s * W along the output-channel axis.
            var values = weight.floats
            let strides = contiguousStrides(weight.shape)
            let axisSize = weight.shape[axis]
            let inner = strides[axis]
            let outer = weight.count / (axisSize * inner)
            let groups = groupsFactor(producer, weight)
            for block in 0..<outer {
                // ConvTranspose weights are [C_in, C_out/groups, k...]: the block index picks the group.
                let group = producer.opType == "ConvTranspose" ? block / max(weight.shape[0] / groups, 1) : 0
                for index in 0..<axisSize {
                    let channel = group * axisSize + index
                    let factor = scale[channel]
                    let base = (block * axisSize + index) * inner
                    for offset in 0..<inner { values[base + offset] *= factor }
                }
            }
            let biasValues: [Float] = {
                if let name = producer.input(2), let bias = result.initializers[name] { return bias.floats }
                return [Float](repeating: 0, count: channels)
            }()
            guard biasValues.count == channels else { continue }
            var newBias = [Float](repeating: 0, count: channels)
            for channel in 0..<channels { newBias[channel] = scale[channel] * (biasValues[channel] - mean[channel]) + beta[channel] }

            // Gemm adds beta * C: store the folded bias divided by a non-unit beta (beta 0 ignores C: leave it).
            var biasScale: Float = 1
            if producer.opType == "Gemm", case .float(let beta)? = producer.attributes["beta"] {
                guard beta != 0 else { continue }
                biasScale = beta
            }
            if biasScale != 1 { newBias = newBias.map { $0 / biasScale } }

            let weightOut = consumers[weightName]?.count == 1 ? weightName : freshName(weightName + ".folded", in: result)
            result.initializers[weightOut] = Tensor(shape: weight.shape, floats: values)
            let biasName = producer.input(2).flatMap { consumers[$0]?.count == 1 ? $0 : nil } ?? freshName("\(producer.name).bias", in: result)
            result.initializers[biasName] = Tensor(shape: [channels], floats: newBias)
            var rewritten = producer
            rewritten.inputs = [producer.inputs[0], weightOut, biasName]
            rewritten.outputs = [bn.outputs[0]]
            result.nodes[producerIndex] = rewritten
            removed.insert(bnIndex)
            folds.append(Fold(producer: producer.name, batchNorm: bn.name))
        }
        guard !folds.isEmpty else { return (graph, []) }
        // Also drops the initializers nothing reads any more (BN statistics, replaced weights).
        return (result.removingNodes(at: removed), folds)
    }

    static func constant(_ node: Node, _ index: Int, _ graph: Graph) -> [Float]? {
        guard let name = node.input(index), let tensor = graph.initializers[name], tensor.isFloatingPoint else { return nil }
        return tensor.floats
    }

    /// Axis of the weight that indexes output channels: 0 for Conv and Gemm with transB = 1,
    /// 1 for ConvTranspose and Gemm with transB = 0.
    static func outputChannelAxis(of node: Node, weight: Tensor) -> Int? {
        switch node.opType {
        case "Conv": return weight.rank >= 3 ? 0 : nil
        case "ConvTranspose": return weight.rank >= 3 ? 1 : nil
        case "Gemm":
            guard weight.rank == 2 else { return nil }
            if case .int(1)? = node.attributes["transA"] { return nil }
            if case .int(1)? = node.attributes["transB"] { return 0 }
            return 1
        default: return nil
        }
    }

    /// ConvTranspose weights hold C_out / groups output channels per group.
    static func groupsFactor(_ node: Node, _ weight: Tensor) -> Int {
        guard node.opType == "ConvTranspose", case .int(let groups)? = node.attributes["group"], groups > 1 else { return 1 }
        return groups
    }

    /// `base`, or `base` with a number appended, such that no tensor of `graph` has the name.
    static func freshName(_ base: String, in graph: Graph) -> String {
        var taken = Set(graph.initializers.keys).union(graph.inputs.map(\.name))
        for node in graph.nodes { taken.formUnion(node.outputs) }
        var candidate = base
        var counter = 1
        while taken.contains(candidate) { counter += 1; candidate = "\(base)\(counter)" }
        return candidate
    }
}

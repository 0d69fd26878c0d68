import Foundation
import Testing
import WhittleEngine
import WhittleIO
@testable import WhittleQuant

/// Small graph builders and runners for the post-training technique tests.
enum TechniqueFixtures {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sampleModels = repository.appendingPathComponent("SampleModels")

    static func model(_ name: String) throws -> Graph {
        try ONNXImporter.load(contentsOf: sampleModels.appendingPathComponent(name))
    }

    static func dataset(_ name: String) throws -> Dataset {
        try Dataset.load(from: sampleModels.appendingPathComponent(name), inputNames: ["x"])
    }

    /// Deterministic uniform values in [low, high).
    static func random(_ count: Int, seed: UInt64, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let unit = Float((state >> 40) & 0xFFFFFF) / Float(1 << 24)
            return low + (high - low) * unit
        }
    }

    static func tensor(_ shape: [Int], seed: UInt64, _ low: Float = -1, _ high: Float = 1) -> Tensor {
        Tensor(shape: shape, floats: random(shape.reduce(1, *), seed: seed, low, high))
    }

    /// Adds a Conv `name` reading `input` with weight `[out, in/groups, k, k]` (and a bias
    /// unless `bias` is false); returns its output name.
    @discardableResult
    static func conv(_ graph: inout Graph, _ name: String, _ input: String, in inputs: Int, out outputs: Int, kernel: Int,
                     groups: Int = 1, pad: Int = 0, bias: Bool = true, seed: UInt64, scales: [Float]? = nil) -> String {
        var weight = tensor([outputs, inputs / groups, kernel, kernel], seed: seed)
        if let scales {
            // Very different per-channel ranges: what CLE is for.
            var values = weight.floats
            let per = values.count / outputs
            for o in 0..<outputs { for i in 0..<per { values[o * per + i] *= scales[o % scales.count] } }
            weight = Tensor(shape: weight.shape, floats: values)
        }
        graph.initializers["\(name).weight"] = weight
        var inputsList = [input, "\(name).weight"]
        if bias {
            graph.initializers["\(name).bias"] = tensor([outputs], seed: seed + 1, -0.5, 0.5)
            inputsList.append("\(name).bias")
        }
        var attributes: [String: Attribute] = ["kernel_shape": .ints([kernel, kernel]), "pads": .ints([pad, pad, pad, pad])]
        if groups != 1 { attributes["group"] = .int(groups) }
        graph.nodes.append(Node(name: name, opType: "Conv", inputs: inputsList, outputs: [name], attributes: attributes))
        return name
    }

    @discardableResult
    static func batchNorm(_ graph: inout Graph, _ name: String, _ input: String, channels: Int, seed: UInt64,
                          beta: ClosedRange<Float> = -0.5...0.5, gamma: ClosedRange<Float> = 0.5...1.5) -> String {
        graph.initializers["\(name).gamma"] = tensor([channels], seed: seed, gamma.lowerBound, gamma.upperBound)
        graph.initializers["\(name).beta"] = tensor([channels], seed: seed + 1, beta.lowerBound, beta.upperBound)
        graph.initializers["\(name).mean"] = tensor([channels], seed: seed + 2, -0.3, 0.3)
        graph.initializers["\(name).var"] = tensor([channels], seed: seed + 3, 0.5, 2)
        graph.nodes.append(Node(name: name, opType: "BatchNormalization",
                                inputs: [input, "\(name).gamma", "\(name).beta", "\(name).mean", "\(name).var"],
                                outputs: [name], attributes: ["epsilon": .float(1e-3)]))
        return name
    }

    @discardableResult
    static func unary(_ graph: inout Graph, _ op: String, _ name: String, _ input: String, attributes: [String: Attribute] = [:]) -> String {
        graph.nodes.append(Node(name: name, opType: op, inputs: [input], outputs: [name], attributes: attributes))
        return name
    }

    /// Clip(input, 0, 6) with constant bound inputs (opset 13).
    @discardableResult
    static func relu6(_ graph: inout Graph, _ name: String, _ input: String) -> String {
        graph.initializers["\(name).min"] = Tensor(shape: [], floats: [0])
        graph.initializers["\(name).max"] = Tensor(shape: [], floats: [6])
        graph.nodes.append(Node(name: name, opType: "Clip", inputs: [input, "\(name).min", "\(name).max"], outputs: [name]))
        return name
    }

    static func graph(input shape: [Int], output: String? = nil) -> Graph {
        Graph(name: "test", inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N")] + shape.map { .fixed($0) })],
              outputs: output.map { [ValueInfo(name: $0, dimensions: [])] } ?? [])
    }

    /// Runs `graph` on `x` (first dimension = batch) and returns its first output, flat.
    static func run(_ graph: Graph, _ x: Tensor, foldBatchNorm: Bool = false) throws -> [Float] {
        let plan = try Plan(graph: graph, batchSize: x.shape[0], options: CompileOptions(foldBatchNorm: foldBatchNorm))
        let outputs = try plan.run(["x": x])
        return try #require(outputs[graph.outputs[0].name]).floats
    }

    /// max |a − b| / max |a|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = a.map(abs).max() ?? 0
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        return scale > 0 ? diff / scale : diff
    }

    static func weights(_ graph: Graph, _ node: String) throws -> Tensor {
        let n = try #require(graph.nodes.first { $0.name == node })
        return try #require(graph.initializers[n.inputs[1]])
    }

    /// Top-1 accuracy of `graph` on a labelled data set.
    static func accuracy(_ graph: Graph, _ data: Dataset) throws -> Double {
        let result = try Evaluator(graph: graph, batchSize: 64).evaluate(inputs: data.inputs, labels: data.labels)
        return try #require(result.top1Accuracy)
    }
}

import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine
import WhittleIO

/// Shared fixtures: sample models, data, random tensors and small hand-made graphs.
enum Fixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func model(_ name: String) throws -> Graph {
        try ONNXImporter.load(contentsOf: root.appendingPathComponent("SampleModels/\(name).onnx"))
    }

    static func data(_ name: String, first count: Int? = nil) throws -> Dataset {
        let dataset = try Dataset.load(from: root.appendingPathComponent("SampleModels/\(name).npz"), inputNames: ["x"])
        return count.map { dataset.subset(first: $0) } ?? dataset
    }

    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var generator = SplitMix64(seed: seed)
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, floats: (0..<count).map { _ in Float(generator.nextUnit() * 2 - 1) * scale })
    }

    static func positive(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, floats: (0..<count).map { _ in Float(0.5 + generator.nextUnit()) })
    }

    /// Runs `graph` on `inputs` (batched) and returns its first output.
    static func run(_ graph: Graph, _ inputs: [String: Tensor], batch: Int = 64) throws -> [Float] {
        let runner = try BatchRunner(graph: graph, batchSize: batch)
        let outputs = try runner.outputs(inputs: inputs)
        return try #require(outputs[graph.outputs[0].name]).floats
    }

    /// max |a - b| / max |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.reduce(0) { max($0, abs($1)) }
        let diff = zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
        return diff / max(scale, 1e-12)
    }

    static func meanSquaredError(_ a: [Float], _ b: [Float]) -> Double {
        zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(max(1, a.count))
    }

    static func accuracy(_ graph: Graph, _ dataset: Dataset) throws -> Double {
        let evaluator = try Evaluator(graph: graph, batchSize: 64)
        return try evaluator.evaluate(inputs: dataset.inputs, labels: dataset.labels).top1Accuracy ?? 0
    }

    /// x [N,3,H,W] -> conv1 (3->8, 3x3, pad 1) -> BN -> Relu -> [depthwise 3x3 -> Relu6] -> conv2 (8->4, 3x3, stride 2) -> y.
    static func convBnReluConv(depthwise: Bool, height: Int = 10, width: Int = 9) -> Graph {
        var nodes = [
            Node(name: "conv1", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c1", "gamma", "beta", "mean", "var"], outputs: ["n1"]),
            Node(name: "relu", opType: "Relu", inputs: ["n1"], outputs: ["r1"]),
        ]
        var initializers: [String: Tensor] = [
            "w1": random([8, 3, 3, 3], seed: 1), "b1": random([8], seed: 2),
            "gamma": positive([8], seed: 3), "beta": random([8], seed: 4), "mean": random([8], seed: 5, scale: 0.1),
            "var": positive([8], seed: 6),
            "w2": random([4, 8, 3, 3], seed: 7), "b2": random([4], seed: 8),
        ]
        var last = "r1"
        if depthwise {
            nodes.append(Node(name: "dw", opType: "Conv", inputs: ["r1", "wd", "bd"], outputs: ["d1"],
                              attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "group": .int(8)]))
            nodes.append(Node(name: "clip", opType: "Clip", inputs: ["d1", "lo", "hi"], outputs: ["d2"]))
            initializers["wd"] = random([8, 1, 3, 3], seed: 9)
            initializers["bd"] = random([8], seed: 10)
            initializers["lo"] = Tensor(shape: [], floats: [0])
            initializers["hi"] = Tensor(shape: [], floats: [6])
            last = "d2"
        }
        nodes.append(Node(name: "conv2", opType: "Conv", inputs: [last, "w2", "b2"], outputs: ["y"],
                          attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1])]))
        return Graph(name: "cbrc", nodes: nodes, initializers: initializers,
                     inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(3), .fixed(height), .fixed(width)])],
                     outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(4), .symbolic("h"), .symbolic("w")])])
    }

    /// One Conv with the given window, or a Gemm, on a random input.
    static func singleConv(inChannels: Int, outChannels: Int, kernel: (Int, Int), strides: [Int], pads: [Int],
                           dilations: [Int], bias: Bool, height: Int = 11, width: Int = 12) -> Graph {
        var initializers: [String: Tensor] = ["w": random([outChannels, inChannels, kernel.0, kernel.1], seed: 21)]
        var inputs = ["x", "w"]
        if bias { initializers["b"] = random([outChannels], seed: 22); inputs.append("b") }
        let node = Node(name: "conv", opType: "Conv", inputs: inputs, outputs: ["y"],
                        attributes: ["kernel_shape": .ints([kernel.0, kernel.1]), "strides": .ints(strides),
                                     "pads": .ints(pads), "dilations": .ints(dilations)])
        return Graph(name: "conv", nodes: [node], initializers: initializers,
                     inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(inChannels), .fixed(height), .fixed(width)])],
                     outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N")])])
    }

    static func gemm(inFeatures: Int, outFeatures: Int, transB: Bool, alpha: Float, beta: Float) -> Graph {
        let b = random(transB ? [outFeatures, inFeatures] : [inFeatures, outFeatures], seed: 31)
        let node = Node(name: "fc", opType: "Gemm", inputs: ["x", "b", "c"], outputs: ["y"],
                        attributes: ["transB": .int(transB ? 1 : 0), "alpha": .float(alpha), "beta": .float(beta)])
        return Graph(name: "fc", nodes: [node], initializers: ["b": b, "c": random([outFeatures], seed: 32)],
                     inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(inFeatures)])],
                     outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(outFeatures)])])
    }
}

import Foundation
import Testing
import WhittleEngine
import WhittleIO
@testable import WhittleQuant

/// Measurements on the sample models (run in release:
/// `WHITTLE_ADAROUND_BENCH=1 swift test -c release --filter AdaRoundBenchmark`; set
/// `WHITTLE_ADAROUND_ITERATIONS` to override the iteration count, `WHITTLE_ADAROUND_MODEL` to a
/// model path plus `WHITTLE_ADAROUND_DATA` / `WHITTLE_ADAROUND_EVAL` for another model).
@Suite("AdaRoundBenchmark", .serialized)
struct AdaRoundBenchmarkTests {
    static let environment = ProcessInfo.processInfo.environment
    static let enabled = environment["WHITTLE_ADAROUND_BENCH"] != nil
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// 4-bit per-channel signed symmetric min-max encodings of every Conv / Gemm / MatMul weight.
    static func weightEncodings(_ graph: Graph, bits: Int) throws -> [String: TensorEncoding] {
        var result: [String: TensorEncoding] = [:]
        for node in graph.nodes where ["Conv", "Gemm", "MatMul"].contains(node.opType) {
            guard let name = node.input(1), let weight = graph.initializers[name], weight.rank >= 2 else { continue }
            var axis = 0
            if node.opType == "MatMul" { axis = 1 }
            if node.opType == "Gemm", case .int(let transB)? = node.attributes["transB"], transB != 0 { axis = 0 } else if node.opType == "Gemm" { axis = 1 }
            var analyzer = try PerChannelEncodingAnalyzer(MinMaxEncodingAnalyzer(), shape: weight.shape, axis: axis)
            try analyzer.observe(weight.floats)
            result[name] = try analyzer.tensorEncoding(bitWidth: bits, symmetry: .signedSymmetric)
        }
        return result
    }

    /// The graph with every encoded weight rounded to nearest.
    static func nearest(_ graph: Graph, _ encodings: [String: TensorEncoding]) throws -> Graph {
        var result = graph
        for (name, encoding) in encodings {
            guard let weight = graph.initializers[name], case .perChannel(let axis, let grids) = encoding else { continue }
            var values = weight.floats
            let quantizer = try PerChannelQuantizer(encodings: grids, shape: weight.shape, axis: axis)
            try values.withUnsafeMutableBufferPointer { try quantizer.quantizeDequantize($0) }
            result.initializers[name] = Tensor(shape: weight.shape, floats: values)
        }
        return result
    }

    static func accuracy(_ graph: Graph, _ data: Dataset) throws -> Double {
        let evaluator = try Evaluator(graph: graph, batchSize: 64)
        return try evaluator.evaluate(inputs: data.inputs, labels: data.labels).top1Accuracy ?? .nan
    }

    static func agreement(_ graph: Graph, _ reference: Graph, _ data: Dataset) throws -> Double {
        let a = try Evaluator(graph: graph, batchSize: 16).evaluate(inputs: data.inputs, labels: nil).predictions ?? []
        let b = try Evaluator(graph: reference, batchSize: 16).evaluate(inputs: data.inputs, labels: nil).predictions ?? []
        return Double(zip(a, b).filter { $0 == $1 }.count) / Double(max(1, a.count))
    }

    @Test("digits models: nearest vs AdaRound vs SeqMSE at W4 per-channel", .enabled(if: enabled),
          arguments: ["digits-cnn", "digits-mobilenet"])
    func digits(model: String) throws {
        guard Self.environment["WHITTLE_ADAROUND_MODEL"] == nil else { return }
        let graph = try BatchNormFolding.fold(ONNXImporter.load(contentsOf: Self.root.appending(path: "SampleModels/\(model).onnx"))).graph
        let inputs = graph.runtimeInputs.map(\.name)
        let calib = try Dataset.load(from: Self.root.appending(path: "SampleModels/digits-calib.npz"), inputNames: inputs)
        let test = try Dataset.load(from: Self.root.appending(path: "SampleModels/digits-test.npz"), inputNames: inputs)
        let encodings = try Self.weightEncodings(graph, bits: 4)
        let iterations = Self.environment["WHITTLE_ADAROUND_ITERATIONS"].flatMap(Int.init)
        var options = AdaRoundOptions(iterations: iterations)
        if let value = Self.environment["WHITTLE_ADAROUND_POSITIONS"].flatMap(Int.init) { options.batchPositionsPerImage = value }
        if let value = Self.environment["WHITTLE_ADAROUND_CACHED"].flatMap(Int.init) { options.cachedPositionsPerImage = value }
        let result = try AdaRound.apply(graph: graph, weightEncodings: encodings, data: calib.inputs, options: options)
        let seqMse = try SeqMse.apply(graph: graph, weightEncodings: encodings, data: calib.inputs)
        let seqMseAdaRound = try AdaRound.apply(graph: graph, weightEncodings: seqMse.encodings, data: calib.inputs, options: options)
        print("\(model): float \(try Self.accuracy(graph, test)), W4 nearest \(try Self.accuracy(Self.nearest(graph, encodings), test)), "
            + "AdaRound \(try Self.accuracy(result.graph, test)) in \(String(format: "%.2f", result.seconds)) s "
            + "(targets \(String(format: "%.2f", result.targetSeconds)) s), "
            + "SeqMSE \(try Self.accuracy(Self.nearest(graph, seqMse.encodings), test)) in \(String(format: "%.2f", seqMse.seconds)) s, "
            + "SeqMSE+AdaRound \(try Self.accuracy(seqMseAdaRound.graph, test))")
        for layer in result.layers {
            print("  \(layer.node) \(layer.outputChannels)x\(layer.patchSize) g\(layer.groups) rows \(layer.rows) \(layer.activation) "
                + "loss \(String(format: "%.5f", layer.lossNearest)) -> \(String(format: "%.5f", layer.lossAdaRound)) "
                + "changed \(String(format: "%.1f", 100 * layer.changedShare))% "
                + "\(String(format: "%.2f", layer.seconds)) s + collect \(String(format: "%.2f", layer.collectSeconds)) s")
        }
    }

    @Test("another model: time per iteration", .enabled(if: enabled && environment["WHITTLE_ADAROUND_MODEL"] != nil))
    func otherModel() throws {
        let path = try #require(Self.environment["WHITTLE_ADAROUND_MODEL"])
        let graph = try BatchNormFolding.fold(ONNXImporter.load(contentsOf: URL(fileURLWithPath: path))).graph
        let inputs = graph.runtimeInputs.map(\.name)
        let calib = try Dataset.load(from: URL(fileURLWithPath: try #require(Self.environment["WHITTLE_ADAROUND_DATA"])), inputNames: inputs)
        let iterations = Self.environment["WHITTLE_ADAROUND_ITERATIONS"].flatMap(Int.init) ?? 200
        let images = Self.environment["WHITTLE_ADAROUND_IMAGES"].flatMap(Int.init) ?? 64
        let bits = Self.environment["WHITTLE_ADAROUND_BITS"].flatMap(Int.init) ?? 4
        let encodings = try Self.weightEncodings(graph, bits: bits)
        let options = AdaRoundOptions(iterations: iterations, maxImages: images, passBatchSize: 16)
        let result = try AdaRound.apply(graph: graph, weightEncodings: encodings, data: calib.inputs, options: options)
        let optimise = result.layers.reduce(0) { $0 + $1.seconds }
        let collect = result.layers.reduce(0) { $0 + $1.collectSeconds }
        print("\(path): \(result.layers.count) layers, \(iterations) iterations, \(images) images: total \(String(format: "%.1f", result.seconds)) s "
            + "(targets \(String(format: "%.1f", result.targetSeconds)) s, inputs \(String(format: "%.1f", collect)) s, "
            + "optimisation \(String(format: "%.1f", optimise)) s = \(String(format: "%.2f", 1000 * optimise / Double(iterations))) ms per iteration over all layers)")
        if let evalPath = Self.environment["WHITTLE_ADAROUND_EVAL"] {
            let eval = try Dataset.load(from: URL(fileURLWithPath: evalPath), inputNames: inputs).subset(first: 200)
            print("  top-1 agreement with float: nearest \(try Self.agreement(Self.nearest(graph, encodings), graph, eval)), "
                + "AdaRound \(try Self.agreement(result.graph, graph, eval))")
        }
    }
}

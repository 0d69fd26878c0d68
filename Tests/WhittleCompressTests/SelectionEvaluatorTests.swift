import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine
import WhittleIO

/// Sample models and data in the repository.
enum SelectionFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func model(_ name: String) throws -> Graph {
        try ONNXImporter.load(contentsOf: root.appendingPathComponent("SampleModels/\(name).onnx"))
    }
    static func data(_ graph: Graph, first: Int) throws -> Dataset {
        try Dataset.load(from: root.appendingPathComponent("SampleModels/digits-test.npz"),
                         inputNames: graph.runtimeInputs.map(\.name)).subset(first: first)
    }

    /// A stand-in compressor: scales the chosen Conv/Gemm weights by the ratio (changes the
    /// outputs, not the cost), so that evaluation and caching can be tested on their own.
    static let scaling = CompressionBackend(
        eligibility: { graph, technique in
            graph.nodes.filter { $0.opType == "Conv" || $0.opType == "Gemm" }.map {
                LayerEligibility(layer: $0.name, opType: $0.opType, technique: technique, eligible: true, reason: nil,
                                 macs: 100, parameters: 10)
            }
        },
        compress: { graph, choices, _, _ in
            var result = graph
            var outcomes: [LayerOutcome] = []
            for choice in choices {
                guard let node = graph.nodes.first(where: { $0.name == choice.layer }), let weightName = node.input(1),
                      let weight = graph.initializers[weightName] else { continue }
                result.initializers[weightName] = Tensor(shape: weight.shape, floats: weight.floats.map { $0 * Float(choice.ratio) })
                outcomes.append(LayerOutcome(layer: choice.layer, technique: choice.technique, requestedRatio: choice.ratio,
                                             kept: 1, original: 1, macsBefore: 100, macsAfter: 100, parametersBefore: 10,
                                             parametersAfter: 10, newNodes: [choice.layer]))
            }
            return CompressionOutcome(graph: result, layers: outcomes)
        })
}

@Suite("Selection: score evaluator")
struct SelectionEvaluatorTests {
    @Test("suffix-only evaluation equals whole-model evaluation", arguments: ["digits-cnn", "digits-mobilenet"])
    func suffixMatchesWhole(model: String) throws {
        let graph = try SelectionFixtures.model(model)
        let data = try SelectionFixtures.data(graph, first: 12)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: data.inputs, labels: data.labels, batchSize: 16)
        #expect(evaluator.baseline.agreement == 1)
        #expect(evaluator.baseline.sqnr == ScoreValues.sqnrCeiling)
        let layers = try SelectionFixtures.scaling.eligibility(graph, .spatialSVD)
        #expect(layers.count >= 3)
        for (index, layer) in layers.enumerated() where index % 3 == 0 || index == layers.count - 1 {
            let compressed = try SelectionFixtures.scaling.compress(graph, [LayerChoice(layer: layer.layer, technique: .spatialSVD, ratio: 0.6)],
                                                                    CompressionOptions(), .silent).graph
            evaluator.suffixEvaluation = true
            let fast = try evaluator.evaluate(compressed)
            evaluator.suffixEvaluation = false
            let whole = try evaluator.evaluate(compressed)
            #expect(fast.agreement == whole.agreement, "\(layer.layer)")
            #expect(fast.accuracy == whole.accuracy, "\(layer.layer)")
            #expect(abs(fast.sqnr - whole.sqnr) < 1e-3, "\(layer.layer): \(fast.sqnr) vs \(whole.sqnr)")
            #expect(fast.sqnr < 100)
        }
        // The suffix of a late layer runs fewer MACs than the whole model.
        #expect(evaluator.macsRun < evaluator.macsWhole)
    }

    @Test("suffix evaluation matches whole evaluation with the real compressor")
    func realCompressor() throws {
        let graph = try SelectionFixtures.model("digits-cnn")
        let data = try SelectionFixtures.data(graph, first: 12)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: data.inputs, labels: data.labels, batchSize: 16)
        for layer in try Compressor.eligibility(of: graph, technique: .spatialSVD) where layer.eligible {
            let compressed = try Compressor.compress(graph, choices: [LayerChoice(layer: layer.layer, technique: .spatialSVD, ratio: 0.5)],
                                                     options: CompressionOptions(), job: .silent).graph
            evaluator.suffixEvaluation = true
            let fast = try evaluator.evaluate(compressed)
            evaluator.suffixEvaluation = false
            let whole = try evaluator.evaluate(compressed)
            #expect(fast.agreement == whole.agreement, "\(layer.layer)")
            #expect(abs(fast.sqnr - whole.sqnr) < 1e-3, "\(layer.layer): \(fast.sqnr) vs \(whole.sqnr)")
        }
    }

    @Test("SQNR formula and clamping")
    func sqnr() {
        #expect(abs(ScoreValues.sqnr(signal: 100, noise: 1) - 20) < 1e-12)
        #expect(ScoreValues.sqnr(signal: 1, noise: 0) == ScoreValues.sqnrCeiling)
        #expect(ScoreValues.sqnr(signal: 1, noise: .infinity) == ScoreValues.sqnrFloor)
        #expect(ScoreValues.sqnr(signal: 0, noise: 1) == ScoreValues.sqnrFloor)
    }
}

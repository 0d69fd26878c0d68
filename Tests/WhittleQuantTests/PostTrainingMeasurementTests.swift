import Foundation
import Testing
import WhittleEngine
import WhittleIO
@testable import WhittleQuant

/// Accuracy of weight-only quantization with and without CLE / bias correction on the sample
/// models (activations float; weights fake-quantized in the initializers).
@Suite("Post-training measurements")
struct PostTrainingMeasurementTests {
    typealias F = TechniqueFixtures

    func log(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Logit SQNR in dB of `output` against `reference`.
    func sqnr(_ reference: [Float], _ output: [Float]) -> Double {
        var signal = 0.0, noise = 0.0
        for (r, o) in zip(reference, output) { signal += Double(r) * Double(r); noise += Double(r - o) * Double(r - o) }
        return noise > 0 ? 10 * log10(signal / noise) : .infinity
    }

    /// digits-mobilenet, per-tensor signed-symmetric min-max weights at 8 and 4 bits, float
    /// activations: accuracy and logit SQNR against float with and without CLE / bias
    /// correction. Slow in debug builds (minutes): runs only with WHITTLE_MEASURE=1.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WHITTLE_MEASURE"] == "1"))
    func digitsMobilenetPerTensorWeightQuantization() throws {
        let graph = try F.model("digits-mobilenet.onnx")
        let test = try F.dataset("digits-test.npz")
        let calibrationSet = try F.dataset("digits-calib.npz")
        let calibration = ["x": Tensor(shape: [128, 1, 16, 16], floats: Array(try #require(calibrationSet.inputs["x"]).floats.prefix(128 * 256)))]
        func logits(_ g: Graph) throws -> [Float] {
            try #require(BatchRunner(graph: g, batchSize: 120).outputs(inputs: test.inputs)["logits"]).floats
        }
        let reference = try logits(graph)
        var lines = ["digits-mobilenet per-tensor symmetric min-max weights, float activations (360 test samples); float top-1 \(try F.accuracy(graph, test))"]
        func measure(_ label: String, _ g: Graph) throws {
            let accuracy = try F.accuracy(g, test)
            let line = "  \(label.padding(toLength: 34, withPad: " ", startingAt: 0)) top-1 \(String(format: "%.4f", accuracy))  SQNR \(String(format: "%.1f", sqnr(reference, try logits(g)))) dB"
            log(line)
            lines.append(line)
        }
        let folded = try BatchNormFoldingPass.apply(graph).graph
        let relu = try CrossLayerEqualization.apply(graph, options: .init(highBiasAbsorption: false))
        let cle = try CrossLayerEqualization.apply(graph)
        let kept = try CrossLayerEqualization.apply(graph, options: .init(relu6: .keep))
        try measure("float, ReLU6->ReLU in \(relu.report.replacedActivations.count) places + CLE", relu.graph)
        lines.append("  CLE: \(cle.report.sets.count) sets, \(cle.report.absorptions.count) absorptions; ReLU6 kept: \(kept.report.sets.count) sets")
        for bits in [8, 4] {
            let quantizer = WeightQuantizers.minMax(bitWidth: bits, symmetry: .signedSymmetric)
            try measure("W\(bits)", WeightQuantizers.apply(quantizer, to: folded))
            try measure("W\(bits) + CLE", WeightQuantizers.apply(quantizer, to: relu.graph))
            try measure("W\(bits) + CLE + HBA", WeightQuantizers.apply(quantizer, to: cle.graph))
            let analytical = try BiasCorrection.analytical(graph: cle.graph, statistics: cle.report.statistics, weightQuantizer: quantizer)
            try measure("W\(bits) + CLE + HBA + analytical BC", WeightQuantizers.apply(quantizer, to: analytical.graph))
            let empirical = try BiasCorrection.empirical(graph: cle.graph, data: calibration, batchSize: 128, weightQuantizer: quantizer)
            try measure("W\(bits) + CLE + HBA + empirical BC", WeightQuantizers.apply(quantizer, to: empirical.graph))
            let plainEmpirical = try BiasCorrection.empirical(graph: folded, data: calibration, batchSize: 128, weightQuantizer: quantizer)
            try measure("W\(bits) + empirical BC", WeightQuantizers.apply(quantizer, to: plainEmpirical.graph))
        }
        print(lines.joined(separator: "\n"))
    }

    /// EfficientNet-Lite0 per-tensor W8 weight-only top-1 agreement with float, before and
    /// after CLE. Slow (minutes): runs only with WHITTLE_MEASURE=1.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WHITTLE_MEASURE"] == "1"))
    func efficientNetLite0PerTensorW8Agreement() throws {
        let models = URL(fileURLWithPath: "/work/main/.cache/models")
        let graph = try ONNXImporter.load(contentsOf: models.appendingPathComponent("efficientnet-lite0.onnx"))
        let inputName = try #require(graph.runtimeInputs.first?.name)
        let data = try Dataset.load(from: models.appendingPathComponent("photos-eval.npz"), inputNames: [inputName])
        let quantizer = WeightQuantizers.minMax(bitWidth: 8, symmetry: .signedSymmetric)
        func predictions(_ g: Graph) throws -> [Int] {
            try #require(Evaluator(graph: g, batchSize: 16).evaluate(inputs: data.inputs, labels: nil).predictions)
        }
        func agreement(_ a: [Int], _ b: [Int]) -> Double { Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count) }
        let reference = try predictions(graph)
        let folded = try BatchNormFoldingPass.apply(graph).graph
        let plain = agreement(reference, try predictions(WeightQuantizers.apply(quantizer, to: folded)))
        let relu = try CrossLayerEqualization.apply(graph, options: .init(highBiasAbsorption: false))
        let reluFloat = agreement(reference, try predictions(relu.graph))
        let cle = try CrossLayerEqualization.apply(graph)
        let cleFloat = agreement(reference, try predictions(cle.graph))
        let cleQuant = agreement(reference, try predictions(WeightQuantizers.apply(quantizer, to: cle.graph)))
        let scaledQuant = agreement(reference, try predictions(WeightQuantizers.apply(quantizer, to: relu.graph)))
        print("""
            EfficientNet-Lite0 W8 per-tensor weight-only, top-1 agreement with float (\(reference.count) crops):
              W8                       \(plain)
              float ReLU6->ReLU + CLE  \(reluFloat)  (sets \(relu.report.sets.count), replaced \(relu.report.replacedActivations.count))
              W8 + CLE                 \(scaledQuant)
              float CLE + HBA          \(cleFloat)  (absorptions \(cle.report.absorptions.count))
              W8 + CLE + HBA           \(cleQuant)
            """)
    }
}

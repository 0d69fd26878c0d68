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

    @Test func digitsMobilenetPerTensorW8() throws {
        let graph = try F.model("digits-mobilenet.onnx")
        let test = try F.dataset("digits-test.npz")
        let calibration = try F.dataset("digits-calib.npz")
        let quantizer = WeightQuantizers.minMax(bitWidth: 8, symmetry: .signedSymmetric)
        let folded = try BatchNormFoldingPass.apply(graph).graph

        let float = try F.accuracy(graph, test)
        let plain = try F.accuracy(WeightQuantizers.apply(quantizer, to: folded), test)
        let relu = try CrossLayerEqualization.apply(graph, options: .init(highBiasAbsorption: false))
        let reluFloat = try F.accuracy(relu.graph, test)
        let cleOnly = try F.accuracy(WeightQuantizers.apply(quantizer, to: relu.graph), test)
        let cle = try CrossLayerEqualization.apply(graph)
        let cleFloat = try F.accuracy(cle.graph, test)
        let cleQuant = try F.accuracy(WeightQuantizers.apply(quantizer, to: cle.graph), test)
        let analytical = try BiasCorrection.analytical(graph: cle.graph, statistics: cle.report.statistics, weightQuantizer: quantizer)
        let cleAnalytical = try F.accuracy(WeightQuantizers.apply(quantizer, to: analytical.graph), test)
        let empirical = try BiasCorrection.empirical(graph: cle.graph, data: calibration.inputs, batchSize: 128, weightQuantizer: quantizer)
        let cleEmpirical = try F.accuracy(WeightQuantizers.apply(quantizer, to: empirical.graph), test)
        let plainEmpirical = try BiasCorrection.empirical(graph: folded, data: calibration.inputs, batchSize: 128, weightQuantizer: quantizer)
        let bcOnly = try F.accuracy(WeightQuantizers.apply(quantizer, to: plainEmpirical.graph), test)
        let kept = try CrossLayerEqualization.apply(graph, options: .init(relu6: .keep))
        let keptQuant = try F.accuracy(WeightQuantizers.apply(quantizer, to: kept.graph), test)

        print("""
            digits-mobilenet W8 per-tensor symmetric min-max, float activations (360 test samples):
              float                         \(float)
              W8                            \(plain)
              W8 + empirical BC             \(bcOnly)
              float, ReLU6->ReLU + CLE      \(reluFloat)   (sets \(relu.report.sets.count), replaced \(relu.report.replacedActivations.count))
              W8 + CLE (no HBA)             \(cleOnly)
              float, CLE + HBA              \(cleFloat)   (absorptions \(cle.report.absorptions.count))
              W8 + CLE + HBA                \(cleQuant)
              W8 + CLE + HBA + analytic BC  \(cleAnalytical)   (corrected \(analytical.report.corrected.count))
              W8 + CLE + HBA + empiric BC   \(cleEmpirical)
              W8 + CLE (ReLU6 kept)         \(keptQuant)   (sets \(kept.report.sets.count))
            """)
        // Equalization must not hurt a per-tensor 8-bit model, and the float function of the
        // ReLU version must stay close to the ReLU6 original on this data.
        #expect(cleOnly >= plain - 0.01)
        #expect(abs(reluFloat - float) < 0.05)
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

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("Bias correction")
struct BiasCorrectionTests {
    typealias F = TechniqueFixtures

    /// Monte-Carlo-free reference: midpoint-rule integral of clip(x) · N(x; beta, gamma²).
    func integrated(beta: Double, gamma: Double, low: Double, high: Double) -> Double {
        let steps = 200_000
        let from = beta - 12 * gamma, to = beta + 12 * gamma
        let h = (to - from) / Double(steps)
        var total = 0.0
        for i in 0..<steps {
            let x = from + (Double(i) + 0.5) * h
            let density = exp(-0.5 * pow((x - beta) / gamma, 2)) / (gamma * (2 * Double.pi).squareRoot())
            total += min(max(x, low), high) * density * h
        }
        return total
    }

    @Test(arguments: [(0.5, 1.0), (-1.0, 0.5), (3.0, -2.0), (0.0, 1.0), (-4.0, 1.0)])
    func expectedValueMatchesNumericalIntegration(beta: Double, gamma: Double) {
        let g = abs(gamma)
        #expect(abs(Double(BiasCorrection.expectedValue(beta: Float(beta), gamma: Float(gamma))) - beta) < 1e-6)
        let relu = BiasCorrection.expectedValue(beta: Float(beta), gamma: Float(gamma), low: 0)
        #expect(abs(Double(relu) - integrated(beta: beta, gamma: g, low: 0, high: .infinity)) < 1e-4)
        // The paper's ReLU form: beta (1 - Phi(-beta/gamma)) + gamma phi(-beta/gamma).
        let z = -beta / g
        let paper = beta * (1 - 0.5 * erfc(-z / 2.0.squareRoot())) + g * exp(-0.5 * z * z) / (2 * Double.pi).squareRoot()
        #expect(abs(Double(relu) - paper) < 1e-5)
        let relu6 = BiasCorrection.expectedValue(beta: Float(beta), gamma: Float(gamma), low: 0, high: 6)
        #expect(abs(Double(relu6) - integrated(beta: beta, gamma: g, low: 0, high: 6)) < 1e-4)
        let clip = BiasCorrection.expectedValue(beta: Float(beta), gamma: Float(gamma), low: -1, high: 0.7)
        #expect(abs(Double(clip) - integrated(beta: beta, gamma: g, low: -1, high: 0.7)) < 1e-4)
    }

    @Test func degenerateGammaIsTheClippedMean() {
        #expect(BiasCorrection.expectedValue(beta: -2, gamma: 0, low: 0) == 0)
        #expect(BiasCorrection.expectedValue(beta: 8, gamma: 0, low: 0, high: 6) == 6)
        #expect(BiasCorrection.expectedValue(beta: 1.5, gamma: 0) == 1.5)
    }

    /// Per-channel samples x_c ~ N(beta_c, gamma_c²) (Box-Muller), shape [n, C, 4, 4].
    func normalInput(n: Int, beta: [Float], gamma: [Float], seed: UInt64) -> Tensor {
        let channels = beta.count
        let u = F.random(n * channels * 16 * 2, seed: seed, 1e-7, 1)
        var values = [Float](repeating: 0, count: n * channels * 16)
        for i in values.indices {
            let c = (i / 16) % channels
            let z = (-2 * log(u[2 * i])).squareRoot() * cos(2 * Float.pi * u[2 * i + 1])
            values[i] = beta[c] + gamma[c] * z
        }
        return Tensor(shape: [n, channels, 4, 4], floats: values)
    }

    /// x -> Relu -> conv (1x1 and 3x3 unpadded variants); statistics for "x" describe the data.
    func layerGraph(kernel: Int, groups: Int = 1) -> Graph {
        var graph = F.graph(input: [6, 4, 4], output: "conv")
        let r = F.unary(&graph, "Relu", "relu", "x")
        F.conv(&graph, "conv", r, in: 6, out: groups == 1 ? 5 : 6, kernel: kernel, groups: groups, seed: 11)
        return graph
    }

    /// max_o |mean over data of (y_q - y_float)| for channel means of the output.
    func meanError(float: Graph, quantized: Graph, data: Tensor) throws -> Float {
        let inputs = ["x": data]
        let a = try #require(BiasCorrection.channelMeans(graph: float, tensors: ["conv"], data: inputs)["conv"])
        let b = try #require(BiasCorrection.channelMeans(graph: quantized, tensors: ["conv"], data: inputs)["conv"])
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    @Test(arguments: [(1, 1), (3, 1), (3, 6)])
    func analyticalCorrectionReducesTheOutputMeanError(kernel: Int, groups: Int) throws {
        let beta: [Float] = [1.0, -0.5, 2.0, 0.2, 0.8, -1.5], gamma: [Float] = [0.5, 1.0, 0.3, 2.0, 0.7, 1.2]
        let graph = layerGraph(kernel: kernel, groups: groups)
        let data = normalInput(n: 400, beta: beta, gamma: gamma, seed: 3)
        let quantizer = WeightQuantizers.minMax(bitWidth: 4)
        let (corrected, report) = try BiasCorrection.analytical(
            graph: graph, statistics: ["x": ChannelDistribution(beta: beta, gamma: gamma)], weightQuantizer: quantizer)
        #expect(report.corrected.map(\.layer) == ["conv"])
        // Only the bias changed.
        #expect(try F.weights(corrected, "conv") == F.weights(graph, "conv"))
        let before = try meanError(float: graph, quantized: WeightQuantizers.apply(quantizer, to: graph), data: data)
        let after = try meanError(float: graph, quantized: WeightQuantizers.apply(quantizer, to: corrected), data: data)
        #expect(after < 0.25 * before, "before \(before), after \(after)")
    }

    @Test func analyticalSkipsLayersWithoutStatistics() throws {
        let graph = layerGraph(kernel: 1)
        let (corrected, report) = try BiasCorrection.analytical(graph: graph, statistics: [:], weightQuantizer: WeightQuantizers.minMax())
        #expect(corrected == graph)
        #expect(report.skipped.map(\.layer) == ["conv"])
    }

    @Test func weightQuantizerShapeMismatchIsAnError() throws {
        let graph = layerGraph(kernel: 1)
        #expect(throws: WhittleError.self) {
            try BiasCorrection.analytical(graph: graph, statistics: ["x": ChannelDistribution(beta: [0, 0, 0, 0, 0, 0], gamma: [1, 1, 1, 1, 1, 1])],
                                          weightQuantizer: { _, _ in Tensor.zeros([1]) })
        }
    }

    @Test func empiricalCorrectionRemovesTheMeanErrorOnItsData() throws {
        let graph = layerGraph(kernel: 3)
        let data = normalInput(n: 100, beta: [1, -1, 0.5, 0, 2, -0.3], gamma: [1, 1, 1, 1, 1, 1], seed: 5)
        let quantizer = WeightQuantizers.minMax(bitWidth: 4)
        let (corrected, report) = try BiasCorrection.empirical(graph: graph, data: ["x": data], batchSize: 32, weightQuantizer: quantizer)
        #expect(report.corrected.count == 1)
        let before = try meanError(float: graph, quantized: WeightQuantizers.apply(quantizer, to: graph), data: data)
        let after = try meanError(float: graph, quantized: WeightQuantizers.apply(quantizer, to: corrected), data: data)
        #expect(before > 1e-3)
        #expect(after < 1e-4 * max(1, before * 100), "before \(before), after \(after)")
    }

    @Test func empiricalClosuresSeeTheCorrectedGraphInOrder() throws {
        var graph = F.graph(input: [2, 4, 4], output: "b")
        let a = F.conv(&graph, "a", "x", in: 2, out: 3, kernel: 1, seed: 1)
        F.conv(&graph, "b", a, in: 3, out: 2, kernel: 1, seed: 2)
        var seen: [String] = []
        let (corrected, report) = try BiasCorrection.empirical(
            graph: graph,
            floatOutputMean: { _, node in [Float](repeating: 0, count: node.name == "a" ? 3 : 2) },
            quantizedOutputMean: { current, node in
                seen.append(node.name)
                if node.name == "b" {
                    // a's correction is already in the graph handed over.
                    #expect(current.initializers["a.bias"] != graph.initializers["a.bias"])
                }
                return [Float](repeating: 0.25, count: node.name == "a" ? 3 : 2)
            })
        #expect(seen == ["a", "b"])
        #expect(report.corrected.map(\.shift) == [[0.25, 0.25, 0.25], [0.25, 0.25]])
        let original = graph.initializers["b.bias"]!.floats, updated = corrected.initializers["b.bias"]!.floats
        #expect(zip(original, updated).allSatisfy { abs($0 - 0.25 - $1) < 1e-6 })
        #expect(throws: WhittleError.self) {
            try BiasCorrection.empirical(graph: graph, floatOutputMean: { _, _ in [0] }, quantizedOutputMean: { _, _ in [0] })
        }
    }
}

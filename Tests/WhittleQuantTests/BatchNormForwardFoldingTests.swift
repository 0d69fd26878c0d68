import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("BatchNorm folding both ways")
struct BatchNormForwardFoldingTests {
    typealias F = TechniqueFixtures

    @Test(arguments: [(1, 3, 1), (4, 1, 1), (4, 3, 4), (6, 3, 2)])
    func bnIntoUnpaddedConvIsExact(inputs: Int, kernel: Int, groups: Int) throws {
        var graph = F.graph(input: [inputs, 6, 6], output: "conv")
        let bn = F.batchNorm(&graph, "bn", "x", channels: inputs, seed: 10)
        F.conv(&graph, "conv", bn, in: inputs, out: 2 * groups, kernel: kernel, groups: groups, bias: groups != 4, seed: 20)
        let (folded, report) = try BatchNormFoldingPass.apply(graph)
        #expect(report.forward == [.init(layer: "conv", batchNorm: "bn")])
        #expect(report.backward.isEmpty && report.skipped.isEmpty)
        #expect(!folded.nodes.contains { $0.opType == "BatchNormalization" })
        #expect(folded.nodes.first?.inputs[0] == "x")
        #expect(folded.nodes.first?.outputs == ["conv"])
        let x = F.tensor([3, inputs, 6, 6], seed: 1, -2, 2)
        #expect(F.relativeError(try F.run(graph, x), try F.run(folded, x)) < 1e-5)
    }

    @Test func bnIntoPaddedConvIsRefusedAndReported() throws {
        var graph = F.graph(input: [3, 5, 5], output: "conv")
        let bn = F.batchNorm(&graph, "bn", "x", channels: 3, seed: 10)
        F.conv(&graph, "conv", bn, in: 3, out: 4, kernel: 3, pad: 1, seed: 20)
        let (folded, report) = try BatchNormFoldingPass.apply(graph)
        #expect(folded == graph)
        #expect(report.forward.isEmpty)
        #expect(report.skipped.count == 1)
        #expect(report.skipped.first?.reason.contains("padded") == true)

        // Folding it anyway would be wrong exactly at the border: a reference fold shows it.
        var forced = graph
        forced.nodes[1].attributes["pads"] = .ints([0, 0, 0, 0])
        let unpadded = try BatchNormFoldingPass.apply(forced).graph
        var wrong = unpadded
        wrong.nodes[0].attributes["pads"] = .ints([1, 1, 1, 1])
        let x = F.tensor([1, 3, 5, 5], seed: 3)
        let expected = try F.run(graph, x), actual = try F.run(wrong, x)
        // Interior (1...3, 1...3) agrees, border does not.
        var interior: Float = 0, border: Float = 0
        for o in 0..<4 { for i in 0..<5 { for j in 0..<5 {
            let index = (o * 5 + i) * 5 + j
            let diff = abs(expected[index] - actual[index])
            if (1...3).contains(i) && (1...3).contains(j) { interior = max(interior, diff) } else { border = max(border, diff) }
        } } }
        #expect(interior < 1e-4)
        #expect(border > 1e-3)
    }

    @Test(arguments: [true, false])
    func bnIntoGemmIsExact(transB: Bool) throws {
        var graph = F.graph(input: [5], output: "fc")
        let bn = F.batchNorm(&graph, "bn", "x", channels: 5, seed: 4)
        graph.initializers["fc.weight"] = F.tensor(transB ? [3, 5] : [5, 3], seed: 5)
        var inputs = [bn, "fc.weight"]
        if transB {
            graph.initializers["fc.bias"] = F.tensor([1, 3], seed: 6)
            inputs.append("fc.bias")
        }
        graph.nodes.append(Node(name: "fc", opType: "Gemm", inputs: inputs, outputs: ["fc"],
                                attributes: ["transB": .int(transB ? 1 : 0), "alpha": .float(0.5), "beta": .float(2)]))
        let (folded, report) = try BatchNormFoldingPass.apply(graph)
        #expect(report.forward.count == 1)
        #expect(folded.nodes.count == 1)
        #expect(folded.initializers[folded.nodes[0].inputs[2]]?.shape == (transB ? [1, 3] : [3]))
        let x = F.tensor([4, 5], seed: 7, -3, 3)
        #expect(F.relativeError(try F.run(graph, x), try F.run(folded, x)) < 1e-5)
    }

    /// x -> bn0 -> conv1 (1x1) -> bn1 -> relu -> conv2 (3x3 pad 1) -> bn2.
    static func bothDirectionsGraph() -> Graph {
        var graph = F.graph(input: [3, 6, 6], output: "bn2")
        let bn0 = F.batchNorm(&graph, "bn0", "x", channels: 3, seed: 1)
        let c1 = F.conv(&graph, "conv1", bn0, in: 3, out: 4, kernel: 1, bias: false, seed: 2)
        let b1 = F.batchNorm(&graph, "bn1", c1, channels: 4, seed: 3)
        let r = F.unary(&graph, "Relu", "relu", b1)
        let c2 = F.conv(&graph, "conv2", r, in: 4, out: 5, kernel: 3, pad: 1, seed: 4)
        F.batchNorm(&graph, "bn2", c2, channels: 5, seed: 5)
        return graph
    }

    @Test func bothDirectionsInOneGraphKeepOutputNames() throws {
        // bn0 folds forward, bn1/bn2 backward.
        let graph = Self.bothDirectionsGraph()
        let (folded, report) = try BatchNormFoldingPass.apply(graph)
        #expect(Set(report.backward.map(\.batchNorm)) == ["bn1", "bn2"])
        #expect(report.forward.map(\.batchNorm) == ["bn0"])
        #expect(folded.nodes.map(\.opType) == ["Conv", "Relu", "Conv"])
        #expect(folded.nodes.map { $0.outputs[0] } == ["bn1", "relu", "bn2"])
        let x = F.tensor([2, 3, 6, 6], seed: 8)
        #expect(F.relativeError(try F.run(graph, x), try F.run(folded, x)) < 1e-5)
    }

    @Test func quantizationPipelineFoldsBothDirections() throws {
        // `whittle quantize` must fold bn0 forward as well as bn1/bn2 backward, and keep the float function.
        let graph = Self.bothDirectionsGraph()
        let x = F.tensor([8, 3, 6, 6], seed: 8)
        let (model, report) = try PostTrainingQuantization.run(graph: graph, recipe: QuantizationRecipe(), calibration: ["x": x])
        #expect(report.foldedBatchNorms == 3)
        #expect(model.graph.nodes.map(\.opType) == ["Conv", "Relu", "Conv"])
        #expect(model.graph.nodes.first?.inputs[0] == "x")
        #expect(F.relativeError(try F.run(graph, x), try F.run(model.graph, x)) < 1e-5)
    }

    @Test func pipelineAnalyticalBiasCorrectionUsesTheStatisticsOfFoldedBatchNorms() throws {
        // x -> conv1 -> bn1 -> relu -> conv2: conv2 reads relu(bn1), so its bias is corrected
        // from bn1's statistics; conv1 reads the model input (no statistics) and is left alone.
        var graph = F.graph(input: [3, 6, 6], output: "conv2")
        let c1 = F.conv(&graph, "conv1", "x", in: 3, out: 4, kernel: 3, pad: 1, seed: 21)
        let b1 = F.batchNorm(&graph, "bn1", c1, channels: 4, seed: 22)
        let r = F.unary(&graph, "Relu", "relu", b1)
        F.conv(&graph, "conv2", r, in: 4, out: 5, kernel: 3, pad: 1, seed: 23)
        let x = F.tensor([8, 3, 6, 6], seed: 24)
        var recipe = QuantizationRecipe(weightBits: 4, perChannel: false)
        let plain = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": x])
        recipe.analyticalBiasCorrection = true
        let (model, report) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": x])
        #expect(report.analyticallyCorrectedBiases == 1)
        let bias = try #require(model.graph.nodes.first { $0.name == "conv2" }?.input(2))
        let before = try #require(plain.model.graph.initializers[bias]).floats
        let after = try #require(model.graph.initializers[bias]).floats
        #expect(before != after)
        // conv1's bias is untouched.
        let firstBias = try #require(model.graph.nodes.first { $0.name == "conv1" }?.input(2))
        #expect(model.graph.initializers[firstBias] == plain.model.graph.initializers[firstBias])
    }

    @Test func bnWithTwoReadersOrAsModelOutputStays() throws {
        var graph = F.graph(input: [2, 4, 4], output: "bn")
        let bn = F.batchNorm(&graph, "bn", "x", channels: 2, seed: 1)
        F.conv(&graph, "conv", bn, in: 2, out: 2, kernel: 1, seed: 2)
        let (folded, report) = try BatchNormFoldingPass.apply(graph)
        #expect(folded == graph)
        #expect(report.skipped.first?.reason.contains("model output") == true)

        var shared = F.graph(input: [2, 4, 4], output: "b")
        let sbn = F.batchNorm(&shared, "bn", "x", channels: 2, seed: 1)
        F.conv(&shared, "a", sbn, in: 2, out: 2, kernel: 1, seed: 2)
        F.conv(&shared, "b", sbn, in: 2, out: 2, kernel: 1, seed: 3)
        #expect(try BatchNormFoldingPass.apply(shared).report.forward.isEmpty)
    }

    @Test func statisticsAreKeyedByTheTensorTheFoldedLayerWrites() throws {
        var graph = F.graph(input: [1, 4, 4], output: "bn")
        let c = F.conv(&graph, "conv", "x", in: 1, out: 3, kernel: 1, seed: 1)
        F.batchNorm(&graph, "bn", c, channels: 3, seed: 2)
        let statistics = BatchNormStatistics.capture(graph)
        #expect(statistics["bn"]?.beta == graph.initializers["bn.beta"]?.floats)
        #expect(statistics["bn"]?.gamma == graph.initializers["bn.gamma"]?.floats)
        let folded = try BatchNormFoldingPass.apply(graph).graph
        #expect(folded.nodes[0].outputs == ["bn"])
    }
}

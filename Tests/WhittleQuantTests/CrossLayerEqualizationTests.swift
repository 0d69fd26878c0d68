import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("Cross-layer equalization")
struct CrossLayerEqualizationTests {
    typealias F = TechniqueFixtures
    static let spread: [Float] = [0.01, 1, 8, 0.2, 3, 0.05]
    static let scalingOnly = CrossLayerEqualization.Options(highBiasAbsorption: false)

    /// max |W| per output channel (axis 0) of a conv weight.
    func outputRanges(_ w: Tensor) -> [Float] {
        let per = w.count / w.shape[0]
        return (0..<w.shape[0]).map { o in w.floats[(o * per)..<((o + 1) * per)].map(abs).max() ?? 0 }
    }

    /// max |W| per input channel (axis 1) of a conv weight.
    func inputRanges(_ w: Tensor) -> [Float] {
        let inner = w.shape[2...].reduce(1, *)
        let values = w.floats
        var ranges = [Float](repeating: 0, count: w.shape[1])
        for o in 0..<w.shape[0] {
            for c in 0..<w.shape[1] {
                for k in 0..<inner { ranges[c] = max(ranges[c], abs(values[(o * w.shape[1] + c) * inner + k])) }
            }
        }
        return ranges
    }

    func expectClose(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-4, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= tolerance * max(abs(x), abs(y), 1e-6), "\(x) vs \(y)", sourceLocation: sourceLocation) }
    }

    @Test func twoLayerSetThroughReluEqualizesRangesAndKeepsTheFunction() throws {
        var graph = F.graph(input: [3, 7, 7], output: "conv2")
        let c1 = F.conv(&graph, "conv1", "x", in: 3, out: 6, kernel: 3, pad: 1, seed: 1, scales: Self.spread)
        let r = F.unary(&graph, "Relu", "relu", c1)
        F.conv(&graph, "conv2", r, in: 6, out: 4, kernel: 3, pad: 1, seed: 2)
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        #expect(report.sets.map(\.layers) == [["conv1", "conv2"]])
        #expect(report.sets.first?.between == [["Relu"]])
        let r1 = outputRanges(try F.weights(equalized, "conv1")), r2 = inputRanges(try F.weights(equalized, "conv2"))
        expectClose(r1, r2)
        // Each equalized range is the geometric mean of the two original ranges.
        let o1 = outputRanges(try F.weights(graph, "conv1")), o2 = inputRanges(try F.weights(graph, "conv2"))
        expectClose(r1, zip(o1, o2).map { ($0 * $1).squareRoot() })
        #expect(equalized.nodes.map(\.outputs) == graph.nodes.map(\.outputs))
        #expect(Set(equalized.initializers.keys) == Set(graph.initializers.keys))
        let x = F.tensor([2, 3, 7, 7], seed: 3)
        #expect(F.relativeError(try F.run(graph, x), try F.run(equalized, x)) < 1e-5)
    }

    @Test func threeLayerDepthwiseSetEqualizesAllThreeRanges() throws {
        var graph = F.graph(input: [2, 6, 6], output: "project")
        let e = F.conv(&graph, "expand", "x", in: 2, out: 6, kernel: 1, seed: 1, scales: Self.spread)
        let r1 = F.unary(&graph, "Relu", "relu1", e)
        let d = F.conv(&graph, "dw", r1, in: 6, out: 6, kernel: 3, groups: 6, pad: 1, seed: 2, scales: Self.spread.reversed())
        let r2 = F.unary(&graph, "Relu", "relu2", d)
        F.conv(&graph, "project", r2, in: 6, out: 3, kernel: 1, seed: 3)
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        #expect(report.sets.map(\.layers) == [["expand", "dw", "project"]])
        #expect(report.sets.first?.scales.count == 2)
        let a = outputRanges(try F.weights(equalized, "expand"))
        let b = outputRanges(try F.weights(equalized, "dw"))
        let c = inputRanges(try F.weights(equalized, "project"))
        expectClose(a, b)
        expectClose(b, c)
        let x = F.tensor([2, 2, 6, 6], seed: 4)
        #expect(F.relativeError(try F.run(graph, x), try F.run(equalized, x)) < 1e-5)
    }

    @Test func convToGemmThroughPoolingAndFlatten() throws {
        // conv -> relu -> maxpool -> conv -> relu -> flatten (4 ch x 2 x 2) -> gemm
        var graph = F.graph(input: [2, 8, 8], output: "fc")
        let c1 = F.conv(&graph, "conv1", "x", in: 2, out: 5, kernel: 3, pad: 1, seed: 1, scales: Self.spread)
        let r1 = F.unary(&graph, "Relu", "relu1", c1)
        let p = F.unary(&graph, "MaxPool", "pool", r1, attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        let c2 = F.conv(&graph, "conv2", p, in: 5, out: 4, kernel: 3, pad: 0, seed: 2, scales: Self.spread)
        let r2 = F.unary(&graph, "Relu", "relu2", c2)
        let f = F.unary(&graph, "Flatten", "flat", r2)
        graph.initializers["fc.weight"] = F.tensor([3, 16], seed: 5)
        graph.initializers["fc.bias"] = F.tensor([3], seed: 6)
        graph.nodes.append(Node(name: "fc", opType: "Gemm", inputs: [f, "fc.weight", "fc.bias"], outputs: ["fc"], attributes: ["transB": .int(1)]))
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        #expect(report.sets.map(\.layers) == [["conv1", "conv2"], ["conv2", "fc"]])
        #expect(report.sets.last?.between == [["Relu", "Flatten"]])
        let x = F.tensor([3, 2, 8, 8], seed: 7)
        #expect(F.relativeError(try F.run(graph, x), try F.run(equalized, x)) < 1e-5)
        // The last pair is equalized exactly: conv2 output ranges = per-channel block maxima of fc.
        let w = try F.weights(equalized, "fc").floats
        var blocks = [Float](repeating: 0, count: 4)
        for o in 0..<3 { for column in 0..<16 { blocks[column / 4] = max(blocks[column / 4], abs(w[o * 16 + column])) } }
        expectClose(outputRanges(try F.weights(equalized, "conv2")), blocks)
    }

    @Test func chainsStopAtResidualAddsBranchesAndNonEquivariantOps() throws {
        var graph = F.graph(input: [4, 5, 5], output: "out")
        let c1 = F.conv(&graph, "conv1", "x", in: 4, out: 4, kernel: 1, seed: 1)
        let r = F.unary(&graph, "Relu", "relu", c1)
        graph.nodes.append(Node(name: "add", opType: "Add", inputs: [r, "x"], outputs: ["add"]))
        let c2 = F.conv(&graph, "conv2", "add", in: 4, out: 4, kernel: 1, seed: 2)
        let s = F.unary(&graph, "Sigmoid", "sig", c2)
        let c3 = F.conv(&graph, "conv3", s, in: 4, out: 4, kernel: 1, seed: 3)
        // conv3 feeds two readers: no set from conv3.
        F.conv(&graph, "conv4", c3, in: 4, out: 4, kernel: 1, seed: 4)
        graph.nodes.append(Node(name: "out", opType: "Add", inputs: [c3, "conv4"], outputs: ["out"]))
        #expect(CrossLayerEqualization.scalingSets(graph).isEmpty)
        let (equalized, report) = try CrossLayerEqualization.apply(graph)
        #expect(report.sets.isEmpty)
        #expect(equalized == graph)
    }

    @Test func preservedAndOutputTensorsEndChains() throws {
        var graph = F.graph(input: [3, 4, 4], output: "conv2")
        let c1 = F.conv(&graph, "conv1", "x", in: 3, out: 3, kernel: 1, seed: 1)
        F.conv(&graph, "conv2", c1, in: 3, out: 3, kernel: 1, seed: 2)
        #expect(CrossLayerEqualization.scalingSets(graph) == [["conv1", "conv2"]])
        #expect(CrossLayerEqualization.scalingSets(graph, options: .init(preservedTensors: ["conv1"])).isEmpty)
        graph.outputs.append(ValueInfo(name: "conv1", dimensions: []))
        #expect(CrossLayerEqualization.scalingSets(graph).isEmpty)
    }

    func relu6Graph() -> Graph {
        var graph = F.graph(input: [2, 6, 6], output: "conv2")
        let c1 = F.conv(&graph, "conv1", "x", in: 2, out: 6, kernel: 3, pad: 1, seed: 1, scales: [4, 0.1, 2, 0.3, 5, 1])
        let r = F.relu6(&graph, "relu6", c1)
        F.conv(&graph, "conv2", r, in: 6, out: 3, kernel: 3, pad: 1, seed: 2)
        // A bounded activation outside every set stays.
        F.relu6(&graph, "tail", "conv2")
        graph.outputs = [ValueInfo(name: "tail", dimensions: [])]
        return graph
    }

    @Test func relu6IsReplacedInsideSetsOnly() throws {
        let graph = relu6Graph()
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        #expect(report.replacedActivations == ["relu6"])
        let node = try #require(equalized.nodes.first { $0.name == "relu6" })
        #expect(node.opType == "Relu" && node.inputs == ["conv1"] && node.outputs == ["relu6"])
        #expect(equalized.nodes.last?.opType == "Clip")
        // The result equals the original with that ReLU6 turned into ReLU, not the original.
        var reference = graph
        reference.nodes[1] = Node(name: "relu6", opType: "Relu", inputs: ["conv1"], outputs: ["relu6"])
        let x = F.tensor([2, 2, 6, 6], seed: 9, -3, 3)
        let replaced = try F.run(reference, x), result = try F.run(equalized, x), original = try F.run(graph, x)
        #expect(F.relativeError(replaced, result) < 1e-5)
        #expect(F.relativeError(original, result) > 1e-3)
    }

    @Test func relu6KeptEndsTheChain() throws {
        let graph = relu6Graph()
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: .init(relu6: .keep))
        #expect(report.sets.isEmpty && report.replacedActivations.isEmpty)
        #expect(equalized == graph)
    }

    /// conv1 -> BN (large beta, small gamma) -> Relu -> conv2 (pads `pad`).
    func highBiasGraph(pad: Int) -> Graph {
        var graph = F.graph(input: [2, 6, 6], output: "conv2")
        let c1 = F.conv(&graph, "conv1", "x", in: 2, out: 4, kernel: 1, bias: false, seed: 1)
        let bn = F.batchNorm(&graph, "bn1", c1, channels: 4, seed: 2, beta: 2...4, gamma: 0.05...0.2)
        // Wide running variance: |BN(y) - beta| stays below 3 |gamma| for these inputs.
        graph.initializers["bn1.var"] = Tensor(shape: [4], floats: [400, 400, 400, 400])
        let r = F.unary(&graph, "Relu", "relu", bn)
        F.conv(&graph, "conv2", r, in: 4, out: 3, kernel: 3, pad: pad, seed: 3)
        return graph
    }

    @Test func highBiasAbsorptionKeepsTheFunctionWhereReluIsActive() throws {
        let graph = highBiasGraph(pad: 0)
        let (equalized, report) = try CrossLayerEqualization.apply(graph)
        #expect(report.batchNormFolds.backward.map(\.batchNorm) == ["bn1"])
        let absorption = try #require(report.absorptions.first)
        #expect(absorption.from == "conv1" && absorption.into == "conv2" && absorption.channels == 4)
        #expect(!absorption.approximateAtBorders)
        // Statistics follow: beta after absorption is 3 |gamma| wherever something was absorbed.
        let statistics = try #require(report.statistics["bn1"])
        for (b, g) in zip(statistics.beta, statistics.gamma) { #expect(abs(b - 3 * abs(g)) < 1e-4) }
        // conv1's bias dropped by exactly a = max(0, beta - 3|gamma|) of the scaled statistics.
        let scaled = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        let before = try #require(scaled.graph.initializers[scaled.graph.nodes[0].inputs[2]]).floats
        let after = try #require(equalized.initializers[equalized.nodes[0].inputs[2]]).floats
        let model = try #require(scaled.report.statistics["bn1"])
        for c in 0..<4 {
            let absorbed = max(0, model.beta[c] - 3 * abs(model.gamma[c]))
            #expect(absorbed > 0.5)
            #expect(abs((before[c] - after[c]) - absorbed) < 1e-4 * max(1, absorbed))
        }
        let x = F.tensor([3, 2, 6, 6], seed: 5)
        #expect(F.relativeError(try F.run(graph, x), try F.run(equalized, x)) < 1e-5)
    }

    @Test func highBiasAbsorptionIntoPaddedLayersIsOptional() throws {
        let graph = highBiasGraph(pad: 1)
        let aimet = try CrossLayerEqualization.apply(graph)
        #expect(aimet.report.absorptions.first?.approximateAtBorders == true)
        let x = F.tensor([3, 2, 6, 6], seed: 5)
        // Borders change by the absorbed amount times the padded taps.
        #expect(F.relativeError(try F.run(graph, x), try F.run(aimet.graph, x)) > 1e-3)
        let exact = try CrossLayerEqualization.apply(graph, options: .init(absorbIntoPaddedLayers: false))
        #expect(exact.report.absorptions.isEmpty)
        #expect(F.relativeError(try F.run(graph, x), try F.run(exact.graph, x)) < 1e-5)
    }

    @Test func digitsCnnFunctionIsUnchanged() throws {
        let graph = try F.model("digits-cnn.onnx")
        let data = try F.dataset("digits-test.npz")
        let x = Tensor(shape: [32, 1, 16, 16], floats: Array(data.inputs["x"]!.floats.prefix(32 * 256)))
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        #expect(report.sets.map(\.layers) == [["conv1", "conv2"], ["conv2", "conv3"], ["conv3", "conv4"], ["conv4", "fc"]])
        #expect(report.batchNormFolds.backward.count == 4)
        #expect(F.relativeError(try F.run(graph, x, foldBatchNorm: true), try F.run(equalized, x)) < 1e-4)
        #expect(equalized.outputs == graph.outputs)
    }

    @Test func digitsMobilenetEqualsTheReluVersionOfItself() throws {
        let graph = try F.model("digits-mobilenet.onnx")
        let data = try F.dataset("digits-test.npz")
        let x = Tensor(shape: [32, 1, 16, 16], floats: Array(data.inputs["x"]!.floats.prefix(32 * 256)))
        let (equalized, report) = try CrossLayerEqualization.apply(graph, options: Self.scalingOnly)
        // Every inverted-residual block with an expand conv is a conv -> depthwise -> conv set;
        // block1 has none and its input also feeds the residual Add, so its set is dw -> project.
        let threeLayer = report.sets.filter { $0.layers.count == 3 }
        #expect(threeLayer.count == 5)
        #expect(threeLayer.allSatisfy { $0.layers[0].hasSuffix("expand.conv") && $0.layers[1].hasSuffix("dw.conv") })
        #expect(report.sets.contains { $0.layers == ["block1.dw.conv", "block1.project.conv"] })
        #expect(report.sets.contains { $0.layers == ["last.conv", "fc"] })
        #expect(!report.replacedActivations.isEmpty)
        var reference = try BatchNormFoldingPass.apply(graph).graph
        for (index, node) in reference.nodes.enumerated() where report.replacedActivations.contains(node.name) {
            reference.nodes[index] = Node(name: node.name, opType: "Relu", inputs: [node.inputs[0]], outputs: node.outputs)
        }
        #expect(F.relativeError(try F.run(reference, x), try F.run(equalized, x)) < 1e-4)
        // With ReLU6 kept, fewer sets and the exact float function.
        let kept = try CrossLayerEqualization.apply(graph, options: .init(relu6: .keep, highBiasAbsorption: false))
        #expect(kept.report.replacedActivations.isEmpty)
        #expect(F.relativeError(try F.run(graph, x, foldBatchNorm: true), try F.run(kept.graph, x)) < 1e-4)
    }
}

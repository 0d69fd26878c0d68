import Testing
@testable import WhittleEngine

/// End-to-end compilation: folding, fusion, memory reuse and batch handling.
@Suite("Compiled plans")
struct PlanTests {
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var state = seed
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(truncatingIfNeeded: state >> 33) % 2001 - 1000) / 1000
        }
        return Tensor(shape: shape, floats: values)
    }

    /// x -> Conv(3x3, pad 1) -> BN -> Relu -> Conv(1x1) -> BN -> Add(residual with first BN output) -> Clip -> GAP -> Flatten -> Gemm
    static func residualGraph() -> Graph {
        var initializers: [String: Tensor] = [
            "w1": random([8, 3, 3, 3], seed: 1), "b1": random([8], seed: 2),
            "w2": random([8, 8, 1, 1], seed: 3),
            "fc.w": random([4, 8], seed: 4), "fc.b": random([4], seed: 5),
            "lo": Tensor(shape: [], floats: [0]), "hi": Tensor(shape: [], floats: [6]),
        ]
        for prefix in ["bn1", "bn2"] {
            initializers["\(prefix).g"] = Tensor(shape: [8], floats: random([8], seed: 6).floats.map { 1 + $0 / 2 })
            initializers["\(prefix).b"] = random([8], seed: 7)
            initializers["\(prefix).m"] = random([8], seed: 8)
            initializers["\(prefix).v"] = Tensor(shape: [8], floats: random([8], seed: 9).floats.map { 0.5 + abs($0) })
        }
        return Graph(
            name: "residual",
            nodes: [
                Node(name: "conv1", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "bn1", opType: "BatchNormalization", inputs: ["c1", "bn1.g", "bn1.b", "bn1.m", "bn1.v"], outputs: ["n1"]),
                Node(name: "relu1", opType: "Relu", inputs: ["n1"], outputs: ["r1"]),
                Node(name: "conv2", opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"]),
                Node(name: "bn2", opType: "BatchNormalization", inputs: ["c2", "bn2.g", "bn2.b", "bn2.m", "bn2.v"], outputs: ["n2"], attributes: ["epsilon": .float(1e-3)]),
                Node(name: "add", opType: "Add", inputs: ["n2", "r1"], outputs: ["sum"]),
                Node(name: "clip", opType: "Clip", inputs: ["sum", "lo", "hi"], outputs: ["act"]),
                Node(name: "gap", opType: "GlobalAveragePool", inputs: ["act"], outputs: ["pooled"]),
                Node(name: "flatten", opType: "Flatten", inputs: ["pooled"], outputs: ["flat"]),
                Node(name: "fc", opType: "Gemm", inputs: ["flat", "fc.w", "fc.b"], outputs: ["logits"], attributes: ["transB": .int(1)]),
            ],
            initializers: initializers,
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(3), .fixed(6), .fixed(6)])],
            outputs: [ValueInfo(name: "logits", dimensions: [.symbolic("N"), .fixed(4)])],
            opsetVersion: 13)
    }

    /// Runs every node one at a time through `OperatorRegistry.evaluate` (no plan, no fusion).
    static func interpret(_ graph: Graph, _ inputs: [String: Tensor]) throws -> [String: Tensor] {
        var values = graph.initializers.merging(inputs) { a, _ in a }
        for node in graph.nodes {
            let outputs = try OperatorRegistry.evaluate(node: node, inputs: node.inputs.map { $0.isEmpty ? nil : values[$0] },
                                                        opsetVersion: graph.opsetVersion)
            for (name, tensor) in zip(node.outputs, outputs) { values[name] = tensor }
        }
        return values
    }

    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.floats, b.floats).map { abs($0 - $1) }.max() ?? 0
    }

    @Test func planMatchesNodeByNodeInterpretation() throws {
        let graph = Self.residualGraph()
        let x = Self.random([2, 3, 6, 6], seed: 11)
        let expected = try #require(try Self.interpret(graph, ["x": x])["logits"])
        for options in [CompileOptions(), CompileOptions(fuseActivations: false, foldBatchNorm: false)] {
            let plan = try Plan(graph: graph, batchSize: 2, options: options)
            let got = try #require(try plan.run(["x": x])["logits"])
            #expect(got.shape == [2, 4])
            #expect(Self.maxDifference(got, expected) < 1e-4)
        }
    }

    @Test func batchNormIsFoldedAndActivationsFused() throws {
        let plan = try Plan(graph: Self.residualGraph(), batchSize: 1)
        let ops = plan.steps.map { ([$0.opType] + $0.fused).joined(separator: "+") }
        #expect(!ops.contains("BatchNormalization"))
        #expect(ops.first == "Conv+Relu")
        // conv2's output feeds the residual Add, so nothing can fuse into it.
        #expect(ops.contains("Conv"))
        let unfolded = try Plan(graph: Self.residualGraph(), batchSize: 1, options: CompileOptions(foldBatchNorm: false))
        #expect(unfolded.steps.filter { $0.opType == "BatchNormalization" }.count == 2)
    }

    @Test func foldingKeepsTensorNamesAndDropsStatistics() throws {
        let (folded, folds) = try BatchNormFolding.fold(Self.residualGraph())
        #expect(folds.map(\.batchNorm) == ["bn1", "bn2"])
        #expect(folded.nodes.first?.outputs == ["n1"])
        #expect(folded.initializers["bn1.m"] == nil)
        #expect(folded.nodes.contains { $0.name == "conv2" && $0.inputs.count == 3 })
    }

    @Test func preservedTensorsBlockFoldingAndFusion() throws {
        let plan = try Plan(graph: Self.residualGraph(), batchSize: 1, options: CompileOptions(preservedTensors: ["c1", "n1"]))
        #expect(plan.steps.contains { $0.opType == "BatchNormalization" && $0.nodeName == "bn1" })
        #expect(plan.outputBuffer("c1") != nil)
        #expect(plan.steps.first { $0.nodeName == "bn1" }?.fused == [])
    }

    @Test func arenaIsSmallerThanTheSumOfActivations() throws {
        let plan = try Plan(graph: Self.residualGraph(), batchSize: 4, options: CompileOptions(fuseActivations: false, foldBatchNorm: false))
        let sum = plan.analysis.runtimeNodes.flatMap(\.outputInfos).reduce(0) { $0 + $1.count }
        #expect(plan.arenaFloats < sum)
    }

    /// x -> Conv(8x8 planes) -> FakeQuantize -> FakeQuantize -> GAP, and the same without the
    /// fake-quantize nodes: written in place, the quantizers need no extra arena memory.
    static func fakeQuantizedChain(quantized: Bool) -> Graph {
        let initializers: [String: Tensor] = [
            "w": random([8, 3, 3, 3], seed: 21), "b": random([8], seed: 22),
            "scale": Tensor(shape: [], floats: [0.05]), "low": Tensor(shape: [], floats: [-128]),
            "high": Tensor(shape: [], floats: [127]), "fine": Tensor(shape: [], floats: [0.02]),
        ]
        var nodes = [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])])]
        var last = "c"
        if quantized {
            nodes.append(Node(name: "q1", opType: OperatorRegistry.fakeQuantizeOpType, domain: OperatorRegistry.whittleDomain,
                              inputs: ["c", "scale", "low", "high"], outputs: ["cq"]))
            nodes.append(Node(name: "q2", opType: OperatorRegistry.fakeQuantizeOpType, domain: OperatorRegistry.whittleDomain,
                              inputs: ["cq", "fine", "low", "high"], outputs: ["cqq"]))
            last = "cqq"
        }
        nodes.append(Node(name: "gap", opType: "GlobalAveragePool", inputs: [last], outputs: ["y"]))
        return Graph(name: "chain", nodes: nodes, initializers: initializers,
                     inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(3), .fixed(8), .fixed(8)])],
                     outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(8), .fixed(1), .fixed(1)])],
                     opsetVersion: 13)
    }

    /// x -> Conv 1x1 -> Clip -> depthwise 3x3 s2 -> Relu -> Conv 3x3 -> Relu -> depthwise 5x5 -> y
    static func depthwiseChainGraph() -> Graph {
        let initializers: [String: Tensor] = [
            "w1": random([12, 4, 1, 1], seed: 31), "b1": random([12], seed: 32),
            "dw1": random([12, 1, 3, 3], seed: 33), "db1": random([12], seed: 34),
            "w2": random([8, 12, 3, 3], seed: 35), "dw2": random([8, 1, 5, 5], seed: 36),
            "lo": Tensor(shape: [], floats: [0]), "hi": Tensor(shape: [], floats: [6]),
        ]
        return Graph(
            name: "chains",
            nodes: [
                Node(name: "expand", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["e"]),
                Node(name: "clip", opType: "Clip", inputs: ["e", "lo", "hi"], outputs: ["ec"]),
                Node(name: "dw1", opType: "Conv", inputs: ["ec", "dw1", "db1"], outputs: ["d1"],
                     attributes: ["group": .int(12), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
                Node(name: "relu1", opType: "Relu", inputs: ["d1"], outputs: ["r1"]),
                Node(name: "conv", opType: "Conv", inputs: ["r1", "w2"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "relu2", opType: "Relu", inputs: ["c"], outputs: ["cr"]),
                Node(name: "dw2", opType: "Conv", inputs: ["cr", "dw2"], outputs: ["y"],
                     attributes: ["group": .int(8), "pads": .ints([2, 2, 2, 2])]),
            ],
            initializers: initializers,
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(4), .fixed(32), .fixed(30)])],
            outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(8), .fixed(16), .fixed(15)])],
            opsetVersion: 13)
    }

    @Test func convDepthwiseChainsRunAsOneStep() throws {
        let graph = Self.depthwiseChainGraph()
        let x = Self.random([4, 4, 32, 30], seed: 37)
        let expected = try #require(try Self.interpret(graph, ["x": x])["y"])
        let plan = try Plan(graph: graph, batchSize: 4)
        #expect(plan.steps.map(\.fused) == [["Clip", "Conv", "Relu"], ["Relu", "Conv"]])
        let got = try #require(try plan.run(["x": x])["y"])
        #expect(Self.maxDifference(got, expected) < 1e-4)
        // Unfused, and with the intermediate observed: separate steps, same result.
        for options in [CompileOptions(fuseDepthwiseChains: false), CompileOptions(observedTensors: ["ec"])] {
            let separate = try Plan(graph: graph, batchSize: 4, options: options)
            #expect(separate.steps.count > 2)
            let again = try #require(try separate.run(["x": x])["y"])
            #expect(Self.maxDifference(again, expected) < 1e-4)
        }
    }

    /// x -> Conv 1x1 -> Clip -> FQ -> depthwise 3x3 s2 -> Relu -> FQ -> Conv 3x3 -> FQ -> Relu
    /// -> depthwise 5x5 -> FQ -> y: a simulated MobileNet block. `perChannel` makes the third
    /// quantizer per-channel (not fusable).
    static func quantizedChainGraph(perChannel: Bool = false) -> Graph {
        var graph = depthwiseChainGraph()
        graph.initializers["s8"] = Tensor(shape: [], floats: [6.0 / 255])
        graph.initializers["s"] = Tensor(shape: [], floats: [0.05])
        graph.initializers["zero"] = Tensor(shape: [], floats: [0])
        graph.initializers["u8"] = Tensor(shape: [], floats: [255])
        graph.initializers["i8lo"] = Tensor(shape: [], floats: [-128])
        graph.initializers["i8hi"] = Tensor(shape: [], floats: [127])
        graph.initializers["sc"] = Tensor(shape: [8], floats: (0..<8).map { 0.03 + 0.01 * Float($0) })
        graph.initializers["lc"] = Tensor(shape: [8], floats: Array(repeating: -128, count: 8))
        graph.initializers["hc"] = Tensor(shape: [8], floats: Array(repeating: 127, count: 8))
        func quantizer(_ name: String, _ input: String, _ output: String, _ scale: String, _ low: String, _ high: String) -> Node {
            Node(name: name, opType: OperatorRegistry.fakeQuantizeOpType, domain: OperatorRegistry.whittleDomain,
                 inputs: [input, scale, low, high], outputs: [output])
        }
        graph.nodes = [
            graph.nodes[0], graph.nodes[1],
            quantizer("q1", "ec", "ecq", "s8", "zero", "u8"),
            Node(name: "dw1", opType: "Conv", inputs: ["ecq", "dw1", "db1"], outputs: ["d1"],
                 attributes: ["group": .int(12), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            graph.nodes[3],
            quantizer("q2", "r1", "r1q", "s", "zero", "u8"),
            Node(name: "conv", opType: "Conv", inputs: ["r1q", "w2"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            perChannel ? quantizer("q3", "c", "cq", "sc", "lc", "hc") : quantizer("q3", "c", "cq", "s", "i8lo", "i8hi"),
            Node(name: "relu2", opType: "Relu", inputs: ["cq"], outputs: ["cr"]),
            Node(name: "dw2", opType: "Conv", inputs: ["cr", "dw2"], outputs: ["d2"],
                 attributes: ["group": .int(8), "pads": .ints([2, 2, 2, 2])]),
            quantizer("q4", "d2", "y", "s", "i8lo", "i8hi"),
        ]
        return graph
    }

    @Test func fakeQuantizersFuseIntoConvKernels() throws {
        let x = Self.random([4, 4, 32, 30], seed: 38)
        let graph = Self.quantizedChainGraph()
        let expected = try #require(try Self.interpret(graph, ["x": x])["y"])
        let unfused = try Plan(graph: graph, batchSize: 4, options: CompileOptions(fuseActivations: false))
        #expect(unfused.steps.allSatisfy { $0.fused.isEmpty })
        let reference = try #require(try unfused.run(["x": x])["y"])
        // Without the chain kernel every Conv keeps its blocking, so fusing the activation and
        // quantizer into its output loop changes no bit.
        let fused = try Plan(graph: graph, batchSize: 4, options: CompileOptions(fuseDepthwiseChains: false))
        #expect(fused.steps.map(\.fused) == [["Clip", "FakeQuantize"], ["Relu", "FakeQuantize"], ["FakeQuantize"], [], ["FakeQuantize"]])
        let fusedOutput = try #require(try fused.run(["x": x])["y"])
        #expect(fusedOutput.floats == reference.floats)
        // The chain kernel runs the expansion GEMM strip by strip (other GEMM shapes): values
        // may move by a last bit before rounding, so a quantized value can land one step away.
        let chained = try Plan(graph: graph, batchSize: 4)
        #expect(chained.steps.map(\.fused) == [["Clip", "FakeQuantize", "Conv", "Relu", "FakeQuantize"], ["FakeQuantize"], [], ["FakeQuantize"]])
        #expect(chained.arenaFloats < unfused.arenaFloats)
        let chainedOutput = try #require(try chained.run(["x": x])["y"])
        for got in [chainedOutput, reference] {
            let steps = zip(got.floats, expected.floats).map { abs($0 - $1) / 0.05 }
            #expect(steps.allSatisfy { $0 <= 1.001 })
            #expect(steps.filter { $0 > 0.5 }.count * 200 <= got.count, "more than 0.5% of the values one step off")
        }
        // A per-channel quantizer stays its own step; an observed quantizer input blocks the fusion.
        let perChannel = try Plan(graph: Self.quantizedChainGraph(perChannel: true), batchSize: 4)
        #expect(perChannel.steps.map(\.fused) == [["Clip", "FakeQuantize", "Conv", "Relu", "FakeQuantize"], [], [], [], ["FakeQuantize"]])
        let observed = try Plan(graph: graph, batchSize: 4, options: CompileOptions(observedTensors: ["c"]))
        #expect(observed.steps.map(\.fused) == [["Clip", "FakeQuantize", "Conv", "Relu", "FakeQuantize"], [], [], [], ["FakeQuantize"]])
    }

    @Test func fakeQuantizationRunsInPlace() throws {
        let x = Self.random([2, 3, 8, 8], seed: 23)
        let quantized = Self.fakeQuantizedChain(quantized: true)
        let plan = try Plan(graph: quantized, batchSize: 2)
        let floatPlan = try Plan(graph: Self.fakeQuantizedChain(quantized: false), batchSize: 2)
        #expect(plan.arenaFloats == floatPlan.arenaFloats)
        let expected = try #require(try Self.interpret(quantized, ["x": x])["y"])
        let got = try #require(try plan.run(["x": x])["y"])
        #expect(Self.maxDifference(got, expected) < 1e-6)
        // An observed input keeps its own buffer (its values stay readable after the run).
        let observed = try Plan(graph: quantized, batchSize: 2, options: CompileOptions(observedTensors: ["c"]))
        #expect(observed.arenaFloats > floatPlan.arenaFloats)
    }

    @Test func batchRunnerHandlesRemainderBatches() throws {
        let graph = Self.residualGraph()
        let x = Self.random([5, 3, 6, 6], seed: 21)
        let runner = try BatchRunner(graph: graph, batchSize: 2)
        let outputs = try runner.outputs(inputs: ["x": x])
        let whole = try Plan(graph: graph, batchSize: 5).run(["x": x])
        let a = try #require(outputs["logits"]), b = try #require(whole["logits"])
        #expect(a.shape == [5, 4])
        #expect(Self.maxDifference(a, b) < 1e-5)
    }

    @Test func unsupportedOperatorIsNamed() {
        var graph = Self.residualGraph()
        graph.nodes[2].opType = "Frobnicate"
        #expect {
            try Plan(graph: graph, batchSize: 1)
        } throws: { error in
            (error as? WhittleError)?.description.contains("relu1") == true
        }
    }

    @Test func wrongInputShapeIsRejected() throws {
        let plan = try Plan(graph: Self.residualGraph(), batchSize: 1)
        #expect(throws: WhittleError.self) { try plan.run(["x": Self.random([1, 3, 5, 5], seed: 1)]) }
    }

    @Test func costModelCountsMacsAndParameters() throws {
        let cost = CostModel.analyze(try GraphAnalysis(graph: Self.residualGraph(), batchSize: 1))
        let conv1 = try #require(cost.layers.first { $0.name == "conv1" })
        #expect(conv1.macs == 8 * 6 * 6 * 3 * 9)
        #expect(conv1.parameters == 8 * 27 + 8)
        let fc = try #require(cost.layers.first { $0.name == "fc" })
        #expect(fc.macs == 4 * 8)
        #expect(cost.totalMACs == 8 * 36 * 27 + 8 * 36 * 8 + 32)
    }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

/// Quantization simulation: the FakeQuantize op, the simulation pass, calibration, frozen
/// encodings and the QDQ export.
@Suite("Quantization simulation")
struct SimulationTests {
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var generator = SplitMix64(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ in (Float(generator.next() % 20001) / 10000 - 1) * scale }
        return Tensor(shape: shape, floats: values)
    }

    /// x -> Conv(3x3) -> BN -> Relu -> Conv(1x1) -> Add(residual) -> GAP -> Flatten -> Gemm.
    static func graph() -> Graph {
        Graph(
            name: "tiny",
            nodes: [
                Node(name: "conv1", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "bn1", opType: "BatchNormalization", inputs: ["c1", "g", "beta", "mean", "var"], outputs: ["n1"]),
                Node(name: "relu1", opType: "Relu", inputs: ["n1"], outputs: ["r1"]),
                Node(name: "conv2", opType: "Conv", inputs: ["r1", "w2", "b2"], outputs: ["c2"]),
                Node(name: "add", opType: "Add", inputs: ["c2", "r1"], outputs: ["sum"]),
                Node(name: "gap", opType: "GlobalAveragePool", inputs: ["sum"], outputs: ["pooled"]),
                Node(name: "flatten", opType: "Flatten", inputs: ["pooled"], outputs: ["flat"]),
                Node(name: "fc", opType: "Gemm", inputs: ["flat", "fcw", "fcb"], outputs: ["logits"], attributes: ["transB": .int(1)]),
            ],
            initializers: [
                "w1": random([6, 2, 3, 3], seed: 1, scale: 0.5), "b1": random([6], seed: 2, scale: 0.1),
                "g": Tensor(shape: [6], floats: random([6], seed: 3).floats.map { 1 + $0 / 4 }),
                "beta": random([6], seed: 4, scale: 0.2), "mean": random([6], seed: 5, scale: 0.1),
                "var": Tensor(shape: [6], floats: random([6], seed: 6).floats.map { 0.5 + abs($0) }),
                "w2": random([6, 6, 1, 1], seed: 7, scale: 0.4), "b2": random([6], seed: 8, scale: 0.1),
                "fcw": random([3, 6], seed: 9), "fcb": random([3], seed: 10, scale: 0.1),
            ],
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(2), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "logits", dimensions: [.symbolic("N"), .fixed(3)])],
            opsetVersion: 13)
    }

    static func run(_ graph: Graph, _ x: Tensor) throws -> Tensor {
        let plan = try Plan(graph: graph, batchSize: x.shape[0], options: CompileOptions(foldBatchNorm: false))
        let outputs = try plan.run(["x": x])
        return try #require(outputs["logits"])
    }

    @Test("FakeQuantize kernel equals FakeQuantization, per tensor and per channel")
    func kernelMatchesLibrary() throws {
        let data = Self.random([2, 3, 4, 5], seed: 11, scale: 3)
        let grids = [
            try QuantizationEncoding.compute(min: -2, max: 2.5, bitWidth: 8, symmetry: .asymmetric),
            try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 4, symmetry: .signedSymmetric),
            try QuantizationEncoding.compute(min: -3, max: 3, bitWidth: 6, symmetry: .strictSymmetric),
        ]
        let node = Node(name: "fq", opType: "FakeQuantize", domain: "com.whittle", inputs: ["x", "s", "l", "h"], outputs: ["y"],
                        attributes: ["axis": .int(1)])
        let params = [Tensor(shape: [3], floats: grids.map(\.scale)), Tensor(shape: [3], floats: grids.map { Float($0.offset) }),
                      Tensor(shape: [3], floats: grids.map { Float($0.offset + $0.steps) })]
        let output = try OperatorRegistry.evaluate(node: node, inputs: [data] + params, opsetVersion: 13)[0]
        var expected = data.floats
        for index in expected.indices {
            let channel = (index / 20) % 3
            expected[index] = QuantizationGrid(grids[channel]).quantizeDequantize(expected[index])
        }
        #expect(output.floats == expected)

        // Per tensor, with ties: 2.5 * scale rounds to even.
        let grid = try QuantizationEncoding.compute(min: 0, max: 255, bitWidth: 8, symmetry: .asymmetric)
        let ties = Tensor(shape: [4], floats: [2.5, 3.5, -1, 300])
        let single = [Tensor(shape: [1], floats: [grid.scale]), Tensor(shape: [1], floats: [Float(grid.offset)]),
                      Tensor(shape: [1], floats: [Float(grid.offset + grid.steps)])]
        let perTensor = Node(name: "fq", opType: "FakeQuantize", domain: "com.whittle", inputs: ["x", "s", "l", "h"], outputs: ["y"])
        let rounded = try OperatorRegistry.evaluate(node: perTensor, inputs: [ties] + single, opsetVersion: 13)[0]
        #expect(rounded.floats == [2, 4, 0, 255])
    }

    @Test("Whittle-only ops are refused in the default domain")
    func domains() {
        var graph = Self.graph()
        graph.nodes.insert(Node(name: "fq", opType: "FakeQuantize", inputs: ["x", "s", "l", "h"], outputs: ["y"]), at: 0)
        #expect(throws: WhittleError.self) { _ = try GraphAnalysis(graph: graph, batchSize: 1) }
    }

    func quantized(_ recipe: QuantizationRecipe = QuantizationRecipe(), samples: Int = 16) throws -> (QuantizedModel, Tensor) {
        let x = Self.random([samples, 2, 5, 5], seed: 99, scale: 2)
        let (model, _) = try PostTrainingQuantization.run(graph: Self.graph(), recipe: recipe, calibration: ["x": x])
        return (model, x)
    }

    @Test("Simulation equals quantizing every tensor by hand")
    func simulationMatchesManual() throws {
        let (model, x) = try quantized()
        #expect(model.graph.nodes.contains { $0.opType == "BatchNormalization" } == false)
        let simulated = try Self.run(try model.simulationGraph(), x)

        // Interpret the folded graph node by node, quantizing each quantized tensor.
        var graph = model.graph
        for (tensor, settings, encoding) in model.activeQuantizers() where settings.role == .param {
            guard case .perTensor(let grid) = encoding, let weights = graph.initializers[tensor] else { continue }
            graph.initializers[tensor] = Tensor(shape: weights.shape, floats: weights.floats.map(QuantizationGrid(grid).quantizeDequantize))
        }
        func quantize(_ name: String, _ tensor: Tensor) -> Tensor {
            guard let settings = model.placement.quantizers[name], settings.enabled, settings.role == .activation,
                  case .perTensor(let grid)? = model.encodings[name] else { return tensor }
            return Tensor(shape: tensor.shape, floats: tensor.floats.map(QuantizationGrid(grid).quantizeDequantize))
        }
        var values = graph.initializers
        values["x"] = quantize("x", x)
        for node in graph.nodes {
            let outputs = try OperatorRegistry.evaluate(node: node, inputs: node.inputs.map { values[$0] }, opsetVersion: 13)
            for (name, tensor) in zip(node.outputs, outputs) { values[name] = quantize(name, tensor) }
        }
        let expected = try #require(values["logits"])
        let maxDifference = zip(simulated.floats, expected.floats).map { abs($0 - $1) }.max() ?? 0
        // Different float summation orders may move a value across a rounding boundary: allow one
        // output step.
        guard case .perTensor(let outputGrid)? = model.encodings["logits"] else { Issue.record("logits not quantized"); return }
        #expect(maxDifference <= outputGrid.scale * 1.001)
        #expect(simulated.floats != (try Self.run(model.graph, x)).floats)
    }

    @Test("Min-max calibration gives the observed range")
    func calibrationRange() throws {
        let (model, x) = try quantized()
        guard case .perTensor(let grid)? = model.encodings["x"] else { Issue.record("input not quantized"); return }
        let values = x.floats
        let expected = try QuantizationEncoding.compute(min: values.min() ?? 0, max: values.max() ?? 0, bitWidth: 8, symmetry: .asymmetric)
        #expect(grid == expected)
    }

    @Test("Calibration data with NaN is an error naming the tensor")
    func nanInData() throws {
        var values = Self.random([4, 2, 5, 5], seed: 1).floats
        values[7] = .nan
        let x = Tensor(shape: [4, 2, 5, 5], floats: values)
        #expect {
            _ = try PostTrainingQuantization.run(graph: Self.graph(), recipe: QuantizationRecipe(), calibration: ["x": x])
        } throws: { error in
            (error as? WhittleError)?.description.contains("'x'") == true && "\(error)".contains("NaN")
        }
    }

    @Test("Calibration streams batches with progress and stops between batches when cancelled")
    func calibrationProgressAndCancellation() throws {
        let x = Self.random([40, 2, 5, 5], seed: 5, scale: 2)
        let graph = try BatchNormFolding.fold(Self.graph()).graph
        let placement = try QuantizerPlacement.resolve(graph: graph, config: try QuantsimConfig.preset(named: "default"),
                                                       defaultActivationBits: 8, defaultParamBits: 8)
        let model = QuantizedModel(graph: graph, placement: placement,
                                   encodings: try Calibration.paramEncodings(graph: graph, placement: placement))
        let progress = CompletedLog()
        let calibrated = try Calibration.calibrateActivations(
            model, scheme: .sqnr, inputs: ["x": x], batchSize: 16,
            job: JobContext { event in if event.phase == "calibrate" { progress.add(event.completed) } })
        #expect(progress.values == [16, 32, 40])
        #expect(calibrated.activeQuantizers().contains { $0.settings.role == .activation })

        let flag = CancellationFlag()
        let seen = CompletedLog()
        #expect {
            _ = try Calibration.calibrateActivations(
                model, scheme: .minMax, inputs: ["x": x], batchSize: 16,
                job: JobContext(cancellation: flag) { event in
                    guard event.phase == "calibrate" else { return }
                    seen.add(event.completed)
                    flag.cancel()
                })
        } throws: { error in (error as? WhittleError)?.kind == .cancelled }
        #expect(seen.values == [16])
    }

    @Test("Encodings written in every version and loaded frozen simulate identically")
    func frozenRoundTrip() throws {
        let (model, x) = try quantized(QuantizationRecipe(weightBits: 4, perChannel: true))
        let expected = try Self.run(try model.simulationGraph(), x)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-sim-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for version in EncodingsVersion.allCases {
            let url = folder.appendingPathComponent("model-\(version.rawValue).encodings")
            try model.encodingsFile(scheme: .minMax).write(to: url, version: version)
            let file = try EncodingsFile.read(from: url, context: .graph(model.graph))
            let frozen = try QuantizedModel.frozen(graph: model.graph, encodings: file, source: url.path)
            #expect(try Self.run(try frozen.simulationGraph(), x).floats == expected.floats, "version \(version.rawValue)")
        }
    }

    @Test("Encodings naming a tensor the model lacks are refused with file and key")
    func frozenUnknownTensor() throws {
        let (model, _) = try quantized()
        var file = model.encodingsFile()
        file.activations["nonexistent"] = file.activations["x"]
        #expect {
            _ = try QuantizedModel.frozen(graph: model.graph, encodings: file, source: "m.encodings")
        } throws: { error in
            let text = "\(error)"
            return text.contains("m.encodings") && text.contains("nonexistent")
        }
    }

    @Test("QDQ export: integer weights, QuantizeLinear/DequantizeLinear pairs, clips for narrow grids")
    func qdqExport() throws {
        let (model, _) = try quantized(QuantizationRecipe(weightBits: 4, activationBits: 6, perChannel: true))
        let graph = try QDQExport.graph(model)
        let dequantize = graph.nodes.filter { $0.opType == "DequantizeLinear" }
        let quantize = graph.nodes.filter { $0.opType == "QuantizeLinear" }
        let activations = model.activeQuantizers().filter { $0.settings.role == .activation }.count
        let params = model.activeQuantizers().filter { $0.settings.role == .param }.count
        #expect(quantize.count == activations)
        #expect(dequantize.count == activations + params)
        #expect(graph.nodes.filter { $0.opType == "Clip" }.count == activations)
        for (tensor, settings, _) in model.activeQuantizers() where settings.role == .param {
            let codes = try #require(graph.initializers["\(tensor)#qdq#int"])
            #expect(codes.elementType == .int8)
            #expect(codes.ints.allSatisfy { (-8...7).contains($0) })
            #expect(graph.initializers[tensor] == nil)
        }
        #expect(!graph.nodes.contains { $0.domain == "com.whittle" })
    }

    @Test("QDQ export: per-channel weights mixing unsigned and signed symmetric channels are stored unsigned, exactly")
    func qdqMixedSymmetryWeights() throws {
        var (model, _) = try quantized(QuantizationRecipe(perChannel: true))
        let weight = try #require(model.graph.initializers["w2"])
        var values = weight.floats
        let inner = values.count / weight.shape[0], last = weight.shape[0] - 1
        // The last output channel non-negative (the first stays signed: storage used to follow it).
        for i in (last * inner)..<values.count { values[i] = abs(values[i]) }
        let w2 = Tensor(shape: weight.shape, floats: values)
        model.graph.initializers["w2"] = w2
        // What `unsigned_symmetric: True` gives per channel: unsigned where min >= 0, else signed.
        var analyzer = try PerChannelEncodingAnalyzer(MinMaxEncodingAnalyzer(), shape: w2.shape, axis: 0)
        try analyzer.observe(values)
        let encoding = try analyzer.tensorEncoding(bitWidth: 8, symmetry: .unsignedSymmetric)
        guard case .perChannel(_, let grids) = encoding else { Issue.record("not per-channel"); return }
        #expect(grids[last].symmetry == .unsignedSymmetric)
        #expect(grids[0].symmetry == .signedSymmetric)
        model.encodings["w2"] = encoding

        let graph = try QDQExport.graph(model)
        let codes = try #require(graph.initializers["w2#qdq#int"])
        let zeroPoints = try #require(graph.initializers["w2#qdq#zero_point"])
        let scales = try #require(graph.initializers["w2#qdq#scale"])
        #expect(codes.elementType == .uint8)
        #expect(zeroPoints.elementType == .uint8)
        #expect(codes.ints.allSatisfy { (0...255).contains($0) })
        // DequantizeLinear along axis 0: (q - zero_point) * scale equals the simulated weights.
        let dequantized = codes.ints.indices.map { i in Float(codes.ints[i] - zeroPoints.ints[i / inner]) * scales.floats[i / inner] }
        var expected = values
        try expected.withUnsafeMutableBufferPointer { try TensorQuantizer(encoding: encoding, shape: w2.shape).quantizeDequantize($0) }
        #expect(dequantized == expected)
    }

    @Test("Per-layer analysis: weights-only / activations-only selections, enable-one / disable-one sweeps, per-tensor SQNR")
    func perLayerAnalysis() throws {
        let (model, x) = try quantized(QuantizationRecipe(weightBits: 4, perChannel: true))
        /// The float graph with the named weights replaced by their quantize-dequantized values.
        func floatWithQuantizedWeights(_ names: Set<String>) throws -> Graph {
            var graph = model.graph
            for (tensor, settings, encoding) in model.activeQuantizers() where settings.role == .param && names.contains(tensor) {
                let weight = try #require(graph.initializers[tensor])
                var values = weight.floats
                try values.withUnsafeMutableBufferPointer { try TensorQuantizer(encoding: encoding, shape: weight.shape).quantizeDequantize($0) }
                graph.initializers[tensor] = Tensor(shape: weight.shape, floats: values)
            }
            return graph
        }
        let all = Set(model.activeQuantizers().map(\.tensor))
        let params = Set(model.activeQuantizers().filter { $0.settings.role == .param }.map(\.tensor))
        let reference = try Self.run(model.graph, x).floats
        let weightsOnly = try Self.run(model.simulationGraph(.paramsOnly), x).floats
        #expect(weightsOnly == (try Self.run(floatWithQuantizedWeights(params), x)).floats)
        let activationsOnly = try Self.run(model.simulationGraph(.activationsOnly), x).floats
        #expect(activationsOnly != reference && activationsOnly != weightsOnly)
        #expect(try Self.run(model.simulationGraph(.init(excluded: all)), x).floats == reference)

        // Enable-one for a weight is the float model with only that weight quantized;
        // disable-one leaves exactly that quantizer out.
        let effects = try QuantizationAnalysis.sweep(model, inputs: ["x": x], labels: nil, batchSize: 8)
        #expect(Set(effects.map(\.tensor)) == all)
        let w2 = try #require(effects.first { $0.tensor == "w2" })
        let onlyW2 = try Self.run(floatWithQuantizedWeights(["w2"]), x).floats
        #expect(abs(w2.enableOneSQNR - sqnr(reference: reference, test: onlyW2)) < 0.01)
        let allButW2 = try Self.run(model.simulationGraph(.init(excluded: ["w2"])), x).floats
        #expect(abs(w2.disableOneSQNR - sqnr(reference: reference, test: allButW2)) < 0.01)
        #expect(w2.enableOneAccuracy == nil)

        // Per-tensor SQNR: every quantized activation computed by a node, in execution order;
        // the last one (the logits) is the output SQNR of the full simulation.
        let perTensor = try QuantizationAnalysis.perTensorSQNR(model, inputs: ["x": x])
        let producers = model.graph.producers()
        let activations = model.activeQuantizers().filter { $0.settings.role == .activation && producers[$0.tensor] != nil }.map(\.tensor)
        #expect(Set(perTensor.map(\.tensor)) == Set(activations))
        #expect(perTensor.map { producers[$0.tensor] ?? -1 } == perTensor.map { producers[$0.tensor] ?? -1 }.sorted())
        let full = try Self.run(model.simulationGraph(), x).floats
        let logits = try #require(perTensor.first { $0.tensor == "logits" })
        #expect(abs(logits.sqnrDB - sqnr(reference: reference, test: full)) < 0.01)
    }

    @Test("Bit overrides and disabled layers reach the placement; bad names are refused")
    func overrides() throws {
        let (model, _) = try quantized(QuantizationRecipe(bitOverrides: ["conv2": 16], disabled: ["fc"]))
        #expect(model.placement.quantizers["w2"]?.bitWidth == 16)
        #expect(model.placement.quantizers["fcw"]?.enabled == false)
        #expect(throws: WhittleError.self) { _ = try quantized(QuantizationRecipe(bitOverrides: ["nope": 8])) }
        #expect(throws: WhittleError.self) { _ = try quantized(QuantizationRecipe(weightBits: 3)) }
    }

    @Test("Scheme names parse; bad ones are refused")
    func schemes() throws {
        #expect(try CalibrationScheme(parsing: "tf-enhanced") == .sqnr)
        #expect(try CalibrationScheme(parsing: "percentile:99.9") == .percentile(99.9))
        #expect(throws: WhittleError.self) { _ = try CalibrationScheme(parsing: "percentile:20") }
        #expect(throws: WhittleError.self) { _ = try CalibrationScheme(parsing: "entropy") }
    }
}

/// Collects the `completed` counts of progress events, from any thread.
final class CompletedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Int] = []
    func add(_ value: Int) { lock.lock(); list.append(value); lock.unlock() }
    var values: [Int] { lock.lock(); defer { lock.unlock() }; return list }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

/// Constant Mul/Div/Add/Sub after a Conv folded into the Conv (`ScaleShiftFolding`), and the
/// activation-aware bias correction (`BiasCorrection.simulated`).
@Suite("Scale/shift folding and activation bias correction")
struct ScaleShiftFoldingTests {
    typealias F = TechniqueFixtures

    /// Adds `op(input, constant)` (or `op(constant, input)` when `constantFirst`).
    @discardableResult
    static func binary(_ graph: inout Graph, _ op: String, _ name: String, _ input: String, _ constant: Tensor,
                       constantFirst: Bool = false) -> String {
        graph.initializers["\(name).c"] = constant
        let inputs = constantFirst ? ["\(name).c", input] : [input, "\(name).c"]
        graph.nodes.append(Node(name: name, opType: op, inputs: inputs, outputs: [name]))
        return name
    }

    static func channelConstant(_ values: [Float], shape: [Int]) -> Tensor { Tensor(shape: shape, floats: values) }

    @Test("a Mul, Add, Sub, Div chain folds into the conv exactly and keeps the last tensor name")
    func chainFoldsExactly() throws {
        var graph = F.graph(input: [3, 6, 6], output: "out")
        let c = F.conv(&graph, "conv", "x", in: 3, out: 4, kernel: 3, pad: 1, seed: 1)
        let m = Self.binary(&graph, "Mul", "scale", c, Tensor(shape: [1], floats: [1.7]))
        let a = Self.binary(&graph, "Add", "shift", m, Self.channelConstant([0.5, -0.25, 1, 0.1], shape: [1, 4, 1, 1]))
        let s = Self.binary(&graph, "Sub", "minus", a, Self.channelConstant([0.3, 0.2, -0.1, 0], shape: [4, 1, 1]))
        let d = Self.binary(&graph, "Div", "div", s, Self.channelConstant([2, -4, 0.5, 8], shape: [1, 4, 1, 1]))
        F.unary(&graph, "Relu", "out", d)
        let (folded, folds) = ScaleShiftFolding.fold(graph)
        #expect(folds.map(\.node) == ["scale", "shift", "minus", "div"])
        #expect(folded.nodes.map(\.opType) == ["Conv", "Relu"])
        #expect(folded.nodes[0].outputs == ["div"])
        let x = F.tensor([2, 3, 6, 6], seed: 9, -2, 2)
        #expect(F.relativeError(try F.run(graph, x), try F.run(folded, x)) < 1e-5)
        // The constants are gone with their nodes.
        #expect(folded.initializers.keys.allSatisfy { !$0.hasSuffix(".c") })
    }

    @Test("a conv without bias gets one; a shared weight is copied, not changed for the other reader")
    func biasCreatedAndSharedWeightCopied() throws {
        var graph = F.graph(input: [2, 4, 4], output: "sum")
        let a = F.conv(&graph, "a", "x", in: 2, out: 2, kernel: 1, bias: false, seed: 3)
        graph.nodes.append(Node(name: "b", opType: "Conv", inputs: ["x", "a.weight"], outputs: ["b"],
                                attributes: ["kernel_shape": .ints([1, 1])]))
        let scaled = Self.binary(&graph, "Mul", "scaled", a, Tensor(shape: [], floats: [3]))
        let shifted = Self.binary(&graph, "Add", "shifted", scaled, Tensor(shape: [1, 1, 1, 1], floats: [0.5]))
        graph.nodes.append(Node(name: "sum", opType: "Add", inputs: [shifted, "b"], outputs: ["sum"]))
        let (folded, folds) = ScaleShiftFolding.fold(graph)
        #expect(folds.count == 2)
        let convA = try #require(folded.nodes.first { $0.name == "a" })
        let convB = try #require(folded.nodes.first { $0.name == "b" })
        #expect(convA.inputs[1] != "a.weight" && convB.inputs[1] == "a.weight")
        #expect(folded.initializers["a.weight"] == graph.initializers["a.weight"])
        #expect(folded.initializers[convA.inputs[2]]?.floats == [0.5, 0.5])
        let x = F.tensor([3, 2, 4, 4], seed: 4)
        #expect(F.relativeError(try F.run(graph, x), try F.run(folded, x)) < 1e-5)
    }

    @Test("ops that are not a per-channel scale or shift of the conv output are left alone",
          arguments: ["lastAxisVector", "twoReaders", "constantMinusConv", "constantOverConv", "graphOutput", "fullTensor", "divByZero"])
    func notFolded(_ situation: String) throws {
        var graph = F.graph(input: [2, 4, 4], output: "y")
        let c = F.conv(&graph, "conv", "x", in: 2, out: 4, kernel: 1, seed: 5)
        switch situation {
        case "lastAxisVector":
            // [4] broadcasts along the width in ONNX, not along the 4 channels.
            Self.binary(&graph, "Add", "y", c, Tensor(shape: [4], floats: [1, 2, 3, 4]))
        case "twoReaders":
            let m = Self.binary(&graph, "Mul", "m", c, Tensor(shape: [1], floats: [2]))
            graph.nodes.append(Node(name: "y", opType: "Add", inputs: [m, c], outputs: ["y"]))
        case "constantMinusConv":
            Self.binary(&graph, "Sub", "y", c, Tensor(shape: [1], floats: [1]), constantFirst: true)
        case "constantOverConv":
            Self.binary(&graph, "Div", "y", c, Tensor(shape: [1], floats: [1]), constantFirst: true)
        case "graphOutput":
            graph.outputs.append(ValueInfo(name: "conv", dimensions: []))
            Self.binary(&graph, "Mul", "y", c, Tensor(shape: [1], floats: [2]))
        case "fullTensor":
            Self.binary(&graph, "Add", "y", c, F.tensor([1, 4, 4, 4], seed: 6))
        default:
            Self.binary(&graph, "Div", "y", c, Self.channelConstant([1, 0, 2, 3], shape: [4, 1, 1]))
        }
        let (folded, folds) = ScaleShiftFolding.fold(graph)
        #expect(folds.isEmpty)
        #expect(folded == graph)
    }

    @Test("with foldScaleShift the quantization pipeline folds them: one quantizer for the whole chain")
    func pipelineQuantizesTheChainOnce() throws {
        var graph = F.graph(input: [3, 6, 6], output: "out")
        let c = F.conv(&graph, "conv", "x", in: 3, out: 4, kernel: 3, pad: 1, seed: 7)
        let m = Self.binary(&graph, "Mul", "scale", c, Tensor(shape: [1], floats: [1.3]))
        let a = Self.binary(&graph, "Add", "shift", m, Tensor(shape: [1], floats: [0.37]))
        F.conv(&graph, "out", a, in: 4, out: 2, kernel: 1, seed: 8)
        let data = F.tensor([8, 3, 6, 6], seed: 10)
        let (unfolded, kept) = try PostTrainingQuantization.run(graph: graph, recipe: QuantizationRecipe(), calibration: ["x": data])
        #expect(kept.foldedScaleShifts == 0)
        #expect(unfolded.placement.quantizers["conv"] != nil && unfolded.placement.quantizers["scale"] != nil)
        var recipe = QuantizationRecipe()
        recipe.foldScaleShift = true
        let (model, report) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": data])
        #expect(report.foldedScaleShifts == 2)
        #expect(model.placement.quantizers["shift"]?.role == .activation)
        #expect(model.placement.quantizers["conv"] == nil && model.placement.quantizers["scale"] == nil)
        #expect(F.relativeError(try F.run(graph, data), try F.run(model.graph, data)) < 1e-5)
    }

    // MARK: Activation-aware bias correction

    /// x -> conv a -> Relu -> Add(c) -> conv b: the Relu output is quantized, and requantizing
    /// it after adding a constant that is not a whole number of steps shifts every value by
    /// the same amount, which conv b turns into a per-channel output offset.
    static func shiftedGraph() -> Graph {
        var graph = F.graph(input: [3, 6, 6], output: "b")
        let a = F.conv(&graph, "a", "x", in: 3, out: 5, kernel: 3, pad: 1, seed: 21)
        let r = F.unary(&graph, "Relu", "r", a)
        let s = Self.binary(&graph, "Add", "s", r, Tensor(shape: [1], floats: [0.4321]))
        F.conv(&graph, "b", s, in: 5, out: 4, kernel: 1, seed: 22)
        return graph
    }

    /// max over channels of |mean(simulated) − mean(float)| of `tensor` (in the simulation: before
    /// its own output quantizer), relative to the largest |float mean|. `reference` is the
    /// float model (the corrected model's own graph has the corrected biases).
    static func meanError(_ model: QuantizedModel, reference: Graph, tensor: String, data: Tensor) throws -> Float {
        let inputs = ["x": data]
        let float = try #require(BiasCorrection.channelMeans(graph: reference, tensors: [tensor], data: inputs)[tensor])
        let measured = model.encodings[tensor] != nil ? "\(tensor)#float" : tensor
        let simulated = try #require(BiasCorrection.channelMeans(graph: model.simulationGraph(), tensors: [measured], data: inputs)[measured])
        let scale = float.map(abs).max() ?? 1
        return (zip(float, simulated).map { abs($0 - $1) }.max() ?? 0) / max(scale, 1e-6)
    }

    @Test("activation bias correction removes the mean shift of the full simulation, keeping encodings and weights")
    func simulatedCorrectionRemovesTheShift() throws {
        let graph = Self.shiftedGraph()
        let calibration = F.tensor([32, 3, 6, 6], seed: 23, -1, 1)
        var recipe = QuantizationRecipe(activationBits: 4, perChannel: true)
        let (plain, _) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": calibration])
        recipe.activationBiasCorrection = true
        let (corrected, report) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": calibration])
        #expect(report.activationCorrectedBiases == 2)
        // Same grids, same weights: only the biases moved.
        #expect(corrected.encodings.keys.sorted() == plain.encodings.keys.sorted())
        for (tensor, encoding) in plain.encodings { #expect(corrected.encodings[tensor] == encoding, "\(tensor)") }
        #expect(try F.weights(corrected.graph, "b") == F.weights(plain.graph, "b"))
        #expect(corrected.graph.initializers["b.bias"] != plain.graph.initializers["b.bias"])

        let before = try Self.meanError(plain, reference: plain.graph, tensor: "b", data: calibration)
        let after = try Self.meanError(corrected, reference: plain.graph, tensor: "b", data: calibration)
        #expect(before > 0.02, "before \(before)")
        #expect(after < 0.01 * before, "before \(before), after \(after)")
        // On data it was not measured on, the correction still helps.
        let other = F.tensor([32, 3, 6, 6], seed: 24, -1, 1)
        let otherBefore = try Self.meanError(plain, reference: plain.graph, tensor: "b", data: other)
        let otherAfter = try Self.meanError(corrected, reference: plain.graph, tensor: "b", data: other)
        #expect(otherAfter < 0.5 * otherBefore, "before \(otherBefore), after \(otherAfter)")
    }

    @Test("the correction measures each layer before its own output quantizer, in graph order")
    func simulatedCorrectionOrderAndShifts() throws {
        let graph = Self.shiftedGraph()
        let calibration = F.tensor([16, 3, 6, 6], seed: 25)
        let (model, _) = try PostTrainingQuantization.run(graph: graph, recipe: QuantizationRecipe(activationBits: 4),
                                                          calibration: ["x": calibration])
        let (corrected, report) = try BiasCorrection.simulated(model, data: ["x": calibration], batchSize: 8)
        #expect(report.corrected.map(\.layer) == ["a", "b"])
        // The reported shift is what was subtracted from the bias.
        for correction in report.corrected {
            let bias = "\(correction.layer).bias"
            let old = try #require(model.graph.initializers[bias]).floats, new = try #require(corrected.graph.initializers[bias]).floats
            #expect(zip(zip(old, new), correction.shift).allSatisfy { abs($0.0 - $0.1 - $1) < 1e-6 })
        }
        // Restricting the layers corrects only those.
        let (_, only) = try BiasCorrection.simulated(model, data: ["x": calibration], batchSize: 8, layers: ["b"])
        #expect(only.corrected.map(\.layer) == ["b"])
        let cancelled = CancellationFlag()
        cancelled.cancel()
        #expect(throws: WhittleError.self) {
            try BiasCorrection.simulated(model, data: ["x": calibration], context: JobContext(cancellation: cancelled))
        }
    }
}

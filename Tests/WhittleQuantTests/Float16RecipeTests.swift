import Testing
import WhittleEngine
@testable import WhittleQuant

/// `quantize --float16 NAME`: a layer or tensor passed through as float16 (AIMET's float
/// quantizer at 16 bits) instead of onto an integer grid.
@Suite("Float16 pass-through from the recipe")
struct Float16RecipeTests {
    typealias F = TechniqueFixtures

    static func graph() -> Graph {
        var graph = F.graph(input: [3, 6, 6], output: "conv2")
        let c1 = F.conv(&graph, "conv1", "x", in: 3, out: 4, kernel: 3, pad: 1, seed: 31)
        let r = F.unary(&graph, "Relu", "relu", c1)
        F.conv(&graph, "conv2", r, in: 4, out: 5, kernel: 3, pad: 1, seed: 32)
        return graph
    }

    @Test func layerWeightsAndTensorsBecomeFloat16() throws {
        let graph = Self.graph()
        let x = F.tensor([8, 3, 6, 6], seed: 33)
        var recipe = QuantizationRecipe(perChannel: true)
        recipe.float16 = ["conv1", "relu"]
        let (model, _) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": x])
        let weight1 = try #require(model.graph.nodes.first { $0.name == "conv1" }?.input(1))
        let weight2 = try #require(model.graph.nodes.first { $0.name == "conv2" }?.input(1))
        #expect(model.encodings[weight1] == .float(bitWidth: 16))
        #expect(model.encodings["relu"] == .float(bitWidth: 16))
        if case .perChannel = model.encodings[weight2] {} else { Issue.record("conv2's weight should keep its per-channel grid") }
        // The simulation rounds them to float16; the QDQ export casts to float16 and back.
        let simulation = try model.simulationGraph()
        #expect(simulation.nodes.filter { $0.opType == OperatorRegistry.fakeQuantizeFloat16OpType }.count == 2)
        let qdq = try QDQExport.graph(model)
        #expect(qdq.nodes.filter { $0.opType == "Cast" }.count == 4)
        // With AdaRound and Sequential MSE the float16 weight is left alone (no grid to learn or search).
        recipe.adaRound = true
        recipe.adaRoundIterations = 20
        recipe.sequentialMSE = true
        let (rounded, _) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: ["x": x])
        #expect(rounded.encodings[weight1] == .float(bitWidth: 16))
        #expect(rounded.graph.initializers[weight1] == model.graph.initializers[weight1])
    }

    @Test func float16AndFloatOrBitsForOneNameAreRefused() {
        var recipe = QuantizationRecipe()
        recipe.float16 = ["conv1"]
        recipe.disabled = ["conv1"]
        #expect(throws: WhittleError.self) { try recipe.validate() }
        recipe.disabled = []
        recipe.bitOverrides = ["conv1": 8]
        #expect(throws: WhittleError.self) { try recipe.validate() }
    }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("Sequential MSE")
struct SeqMseTests {
    /// A one-group problem whose float products are `patches * W^T`.
    private func problem(weights: [Float], outputs: Int, k: Int, rows: Int, patches: [Float]) throws -> AdaRoundLayerProblem {
        var targets = [Float](repeating: 0, count: rows * outputs)
        for r in 0..<rows {
            for o in 0..<outputs {
                var sum: Float = 0
                for i in 0..<k { sum += weights[o * k + i] * patches[r * k + i] }
                targets[r * outputs + o] = sum
            }
        }
        return try AdaRoundLayerProblem(outputChannels: outputs, patchSize: k, rowCount: rows, weights: weights,
                                        patches: patches, targets: targets)
    }

    @Test("keeps the full range when the weights sit on its grid, shrinks when an outlier sees no data")
    func choices() throws {
        let k = 8, rows = 64
        var random = TestRandom(seed: 5)
        // Channel 0: multiples of 0.1 up to 0.7 = 7 steps of the 4-bit symmetric full-range grid (scale 0.7 / 7).
        let channel0: [Float] = [0.7, -0.7, 0.3, 0.1, -0.2, 0.5, 0, -0.6]
        // Channel 1: small weights plus an outlier at an input position that is always zero.
        let channel1: [Float] = [2.0, 0.13, -0.11, 0.07, 0.05, -0.09, 0.12, 0.03]
        var patches = (0..<(rows * k)).map { _ in random.uniform(-1, 1) }
        for r in 0..<rows { patches[r * k] = 0 }
        // Channel 0's weight at position 0 then sees no data either; give it its own copy of the layer.
        let onGrid = try problem(weights: channel0, outputs: 1, k: k, rows: rows, patches: (0..<(rows * k)).map { _ in random.uniform(-1, 1) })
        let outlier = try problem(weights: channel1, outputs: 1, k: k, rows: rows, patches: patches)
        let grid = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 4, symmetry: .signedSymmetric)
        let options = SeqMseOptions()
        let full = try SeqMse.search(onGrid, given: .perChannel(axis: 0, [grid]), options: options)
        #expect(full.chosen == [20])
        #expect(full.lossChosen < 1e-9)
        let shrunk = try SeqMse.search(outlier, given: .perChannel(axis: 0, [grid]), options: options)
        #expect(shrunk.chosen[0] < 20)
        #expect(shrunk.lossChosen < shrunk.lossFull)
        guard case .perChannel(0, let grids) = shrunk.encoding else { Issue.record("expected per-channel"); return }
        // The chosen grid is the k/K-scaled min-max grid.
        let expected = try SeqMse.candidateEncoding(low: -0.11, high: 2.0, k: shrunk.chosen[0], of: 20, like: grid)
        #expect(grids == [expected])
    }

    @Test("candidate grids scale the range by k / K", arguments: [QuantizationSymmetry.asymmetric, .signedSymmetric])
    func candidates(symmetry: QuantizationSymmetry) throws {
        let prototype = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 8, symmetry: symmetry)
        let candidate = try SeqMse.candidateEncoding(low: -0.5, high: 2, k: 5, of: 20, like: prototype)
        let expected = symmetry == .asymmetric
            ? try QuantizationEncoding.compute(min: -0.125, max: 0.5, bitWidth: 8, symmetry: .asymmetric)
            : try QuantizationEncoding.compute(min: -0.5, max: 0.5, bitWidth: 8, symmetry: .signedSymmetric)
        #expect(candidate == expected)
    }

    @Test("per-channel loss never exceeds min-max's; per-tensor grids stay per-tensor")
    func perChannelAndPerTensor() throws {
        var random = TestRandom(seed: 9)
        let outputs = 5, k = 16, rows = 100
        let weights = (0..<(outputs * k)).map { _ in random.gaussian() * 0.3 }
        let patches = (0..<(rows * k)).map { _ in random.gaussian() }
        let layer = try problem(weights: weights, outputs: outputs, k: k, rows: rows, patches: patches)
        let grid = try QuantizationEncoding.compute(min: -1, max: 1, bitWidth: 4, symmetry: .asymmetric)
        let perChannel = try SeqMse.search(layer, given: .perChannel(axis: 0, Array(repeating: grid, count: outputs)), options: SeqMseOptions())
        #expect(perChannel.lossChosen <= perChannel.lossFull)
        #expect(perChannel.chosen.count == outputs)
        let perTensor = try SeqMse.search(layer, given: .perTensor(grid), options: SeqMseOptions(loss: .l1))
        #expect(Set(perTensor.chosen).count == 1)
        guard case .perTensor = perTensor.encoding else { Issue.record("expected per-tensor"); return }
        #expect(perTensor.lossChosen <= perTensor.lossFull)
    }

    @Test("apply searches every layer in order and keeps other encodings", arguments: SeqMseOptions.InputSymmetry.allCases)
    func applyModel(symmetry: SeqMseOptions.InputSymmetry) throws {
        let (graph, data) = smallConvModel(seed: 3)
        let encodings = try perChannelEncodings(graph, axes: ["w1": 0, "w2": 0, "w3": 1])
        let result = try SeqMse.apply(graph: graph, weightEncodings: encodings, data: data,
                                      options: SeqMseOptions(inputSymmetry: symmetry, positionsPerImage: 4, passBatchSize: 16))
        #expect(result.layers.map(\.node) == ["conv1", "dw", "fc"])
        for layer in result.layers {
            #expect(layer.lossChosen <= layer.lossMinMax + 1e-9)
            #expect(layer.chosenCandidates.allSatisfy { (1...20).contains($0) })
        }
        guard case .perChannel(let axis, let grids)? = result.encodings["w3"] else { Issue.record("w3 lost its encoding"); return }
        #expect(axis == 1)
        #expect(grids.count == 3)
        #expect(result.graph.initializers["w1"] == graph.initializers["w1"])
    }
}

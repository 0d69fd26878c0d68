import Testing
@testable import WhittleCompress
import WhittleEngine

/// Regression for issue 4: plain truncated SVD keeps the weight's largest singular directions,
/// which on real activations (dead channels, large offsets, uneven scales) are not the ones
/// that carry the output. The whitened truncation must keep the loud input channel.
@Suite("SVD whitening")
struct SVDWhiteningTests {
    /// x [N, 8, 6, 6] → 1x1 conv (8 → 8, bias), weight diag(1, .9, .8, .7, .6, .5, .4, .05):
    /// channel 7 has the smallest weight but its input is ~100 times louder than the others,
    /// so it carries most of the output.
    static func loudChannelModel() -> (Graph, [String: Tensor]) {
        let gains: [Float] = [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.05]
        var weight = [Float](repeating: 0, count: 64)
        for c in 0..<8 { weight[c * 8 + c] = gains[c] }
        let graph = Graph(
            name: "loud", nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                                       attributes: ["kernel_shape": .ints([1, 1])])],
            initializers: ["w": Tensor(shape: [8, 8, 1, 1], floats: weight), "b": Fixture.random([8], seed: 3)],
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(8), .fixed(6), .fixed(6)])],
            outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N")])])
        var values = Fixture.random([16, 8, 6, 6], seed: 5).floats
        for image in 0..<16 { for p in 0..<36 { values[(image * 8 + 7) * 36 + p] *= 100 } }
        return (graph, ["x": Tensor(shape: [16, 8, 6, 6], floats: values)])
    }

    /// Mean squared output error relative to the output's mean square.
    func relativeMSE(_ graph: Graph, technique: CompressionTechnique, data: [String: Tensor]?) throws -> Double {
        let (original, inputs) = Self.loudChannelModel()
        let outcome = try Compressor.compress(
            graph, choices: [LayerChoice(layer: "conv", technique: technique, ratio: 0.9)],
            options: CompressionOptions(reconstructionInputs: data), job: JobContext())
        #expect(outcome.layers.first?.kept == 3)
        let reference = try Fixture.run(original, inputs)
        let compressed = try Fixture.run(outcome.graph, inputs)
        let power = reference.reduce(0.0) { $0 + Double($1 * $1) } / Double(reference.count)
        return Fixture.meanSquaredError(compressed, reference) / power
    }

    @Test("with data, SVD keeps the input direction that carries the output", arguments: [
        CompressionTechnique.spatialSVD, .weightSVD,
    ])
    func loudChannel(technique: CompressionTechnique) throws {
        let (graph, inputs) = Self.loudChannelModel()
        let plain = try relativeMSE(graph, technique: technique, data: nil)
        let whitened = try relativeMSE(graph, technique: technique, data: inputs)
        // Plain rank 3 drops channel 7 (~90 % of the output power); whitened keeps it and drops
        // three of the quiet channels (~7 %).
        #expect(plain > 0.5)
        #expect(whitened < 0.15)
    }

    @Test("the symmetric eigendecomposition rebuilds the matrix, descending, with the SVD's values")
    func symmetricEigen() throws {
        let n = 7
        var x = Fixture.random([30, n], seed: 21).floats
        for r in 0..<30 { x[r * n + 2] = 0; x[r * n + 5] *= 20 }     // a dead and a loud direction
        var gram = [Float](repeating: 0, count: n * n)
        for r in 0..<30 { for i in 0..<n { for j in 0..<n { gram[i * n + j] += x[r * n + i] * x[r * n + j] / 30 } } }
        let (u, e) = try LinearAlgebra.symmetricEigen(gram, dimension: n)
        #expect(zip(e, e.dropFirst()).allSatisfy { $0 >= $1 })
        let (_, s, _) = try LinearAlgebra.svd(gram, rows: n, cols: n)
        for (value, singular) in zip(e, s) { #expect(abs(value - singular) <= 1e-3 * max(1, s[0])) }
        for i in 0..<n {
            for j in 0..<n {
                let rebuilt = (0..<n).reduce(Float(0)) { $0 + u[i * n + $1] * e[$1] * u[j * n + $1] }
                #expect(abs(rebuilt - gram[i * n + j]) <= 1e-3 * max(1, s[0]))
                let dot = (0..<n).reduce(Float(0)) { $0 + u[$1 * n + i] * u[$1 * n + j] }
                #expect(abs(dot - (i == j ? 1 : 0)) < 1e-4)
            }
        }
        #expect(throws: WhittleError.self) { try LinearAlgebra.symmetricEigen([1, 2, 3], dimension: 2) }
    }

    @Test("whitened factors multiply back to the matrix at full rank")
    func fullRankWhitened() throws {
        let rows = 6, cols = 5
        let matrix = Fixture.random([rows, cols], seed: 11).floats
        var x = Fixture.random([40, rows], seed: 12).floats
        for r in 0..<40 { x[r * rows] *= 30; x[r * rows + 3] = 0 }
        var gram = [Float](repeating: 0, count: rows * rows)
        for r in 0..<40 { for i in 0..<rows { for j in 0..<rows { gram[i * rows + j] += x[r * rows + i] * x[r * rows + j] / 40 } } }
        let (u, e, _) = try LinearAlgebra.svd(gram, rows: rows, cols: rows)
        var forward = [Float](repeating: 0, count: rows * rows), inverse = forward
        for r in 0..<rows {
            let root = (e[r] + 1e-3).squareRoot()
            for c in 0..<rows { forward[r * rows + c] = root * u[c * rows + r]; inverse[c * rows + r] = u[c * rows + r] / root }
        }
        let whitening = SVDWhitening(forward: forward, inverse: inverse, dimension: rows)
        let (left, right) = try SVDWhitening.factors(matrix, rows: rows, cols: cols, rank: cols, whitening: whitening, leftPower: 0.5)
        for i in 0..<rows {
            for j in 0..<cols {
                let product = (0..<cols).reduce(Float(0)) { $0 + left[i * cols + $1] * right[$1 * cols + j] }
                #expect(abs(product - matrix[i * cols + j]) < 1e-3)
            }
        }
    }
}

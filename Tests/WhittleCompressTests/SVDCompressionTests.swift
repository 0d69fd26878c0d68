import Testing
@testable import WhittleCompress
import WhittleEngine

@Suite("SVD compression")
struct SVDCompressionTests {
    /// Splits the single layer of `graph` at full rank.
    func fullRankSplit(_ graph: Graph, technique: CompressionTechnique) throws -> Graph {
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        var editor = GraphEditor(graph)
        switch try Compressor.prepare(analysis, nodeIndex: 0, technique: technique).get() {
        case .convSVD(let conv):
            let full = SVDSplitting.convCost(conv, technique: technique).maxRank
            _ = try SVDSplitting.splitConv(&editor, layer: conv, technique: technique, rank: full)
        case .gemmSVD(let gemm):
            _ = try SVDSplitting.splitGemm(&editor, layer: gemm, technique: technique, rank: SVDSplitting.gemmCost(gemm).maxRank)
        case .prune:
            Issue.record("unexpected pruning plan")
        }
        return editor.finish()
    }

    @Test("full-rank splits reproduce the conv (strides, asymmetric pads, dilations)", arguments: [
        CompressionTechnique.spatialSVD, .weightSVD,
    ])
    func fullRankConv(technique: CompressionTechnique) throws {
        let shapes: [(kernel: (Int, Int), strides: [Int], pads: [Int], dilations: [Int], bias: Bool)] = [
            ((3, 3), [1, 1], [1, 1, 1, 1], [1, 1], true),
            ((3, 5), [2, 1], [1, 0, 2, 2], [1, 2], false),
            ((5, 3), [2, 3], [0, 1, 0, 1], [2, 1], true),
            ((1, 1), [2, 2], [0, 0, 0, 0], [1, 1], true),
        ]
        for shape in shapes {
            let graph = Fixture.singleConv(inChannels: 4, outChannels: 6, kernel: shape.kernel, strides: shape.strides,
                                           pads: shape.pads, dilations: shape.dilations, bias: shape.bias)
            let split = try fullRankSplit(graph, technique: technique)
            #expect(split.nodes.count == 2)
            #expect(split.nodes[1].outputs == ["y"], "second node keeps the output name")
            #expect(split.initializers["w"] == nil, "the replaced weight is dropped")
            let x = ["x": Fixture.random([2, 4, 11, 12], seed: 5)]
            let before = try Fixture.run(graph, x)
            let after = try Fixture.run(split, x)
            #expect(before.count == after.count)
            #expect(Fixture.relativeError(after, before) < 1e-4, "\(technique) \(shape)")
        }
    }

    @Test("full-rank Gemm split reproduces the Gemm (transB, alpha, beta)", arguments: [false, true])
    func fullRankGemm(transB: Bool) throws {
        let graph = Fixture.gemm(inFeatures: 7, outFeatures: 5, transB: transB, alpha: 0.5, beta: 2)
        for technique in [CompressionTechnique.spatialSVD, .weightSVD] {
            let split = try fullRankSplit(graph, technique: technique)
            let x = ["x": Fixture.random([3, 7], seed: 6)]
            #expect(Fixture.relativeError(try Fixture.run(split, x), try Fixture.run(graph, x)) < 1e-4)
        }
    }

    @Test("rank from the MAC ratio, multiplicity rounding, and MACs of the built graph equal the formula")
    func rankAndCost() throws {
        // m = 16, n = 24, 3x3, stride 2 on width, pad 1: H_in 11 W_in 12, H_out 11, W_out 6.
        let graph = Fixture.singleConv(inChannels: 16, outChannels: 24, kernel: (3, 3), strides: [1, 2],
                                       pads: [1, 1, 1, 1], dilations: [1, 1], bias: true)
        let original = 24 * 16 * 9 * 11 * 6
        let spatialPerRank = 16 * 3 * 11 * 12 + 24 * 3 * 11 * 6
        let weightPerRank = 16 * 11 * 12 + 24 * 9 * 11 * 6
        for (technique, perRank, full) in [(CompressionTechnique.spatialSVD, spatialPerRank, 48), (.weightSVD, weightPerRank, 16)] {
            for ratio in [0.1, 0.3, 0.5, 0.75] {
                let expected = min(full, max(1, Int(ratio * Double(original) / Double(perRank))))
                let (rank, fullRank) = try Compressor.rank(of: "conv", in: graph, technique: technique, ratio: ratio)
                #expect(rank == expected, "\(technique) \(ratio)")
                #expect(fullRank == full)
                let outcome = try Compressor.compress(graph, choices: [LayerChoice(layer: "conv", technique: technique, ratio: ratio)],
                                                      options: CompressionOptions(), job: .silent)
                let layer = try #require(outcome.layers.first)
                #expect(layer.kept == expected)
                #expect(layer.macsBefore == original)
                #expect(layer.macsAfter == expected * perRank)
                #expect(Double(layer.macsAfter) <= ratio * Double(original))
                #expect(outcome.cost?.totalMACs == layer.macsAfter)
                #expect(layer.newNodes == ["conv_svd_a", "conv_svd_b"])
                let bias = 24
                let params = technique == .spatialSVD ? expected * (16 * 3 + 24 * 3) + bias : expected * (16 + 24 * 9) + bias
                #expect(layer.parametersAfter == params)
            }
            let rounded = try Compressor.rank(of: "conv", in: graph, technique: technique, ratio: 0.3, multiplicity: 8)
            let plain = try Compressor.rank(of: "conv", in: graph, technique: technique, ratio: 0.3)
            #expect(rounded.rank % 8 == 0 && rounded.rank >= plain.rank && rounded.rank < plain.rank + 8)
            let capped = try Compressor.rank(of: "conv", in: graph, technique: technique, ratio: 0.99, multiplicity: 64)
            #expect(capped.rank == full, "rounding never exceeds the full rank")
        }
        let unchanged = try Compressor.compress(graph, choices: [LayerChoice(layer: "conv", technique: .spatialSVD, ratio: 1)],
                                                options: CompressionOptions(), job: .silent)
        #expect(unchanged.graph == graph, "ratio 1 leaves the layer alone")
    }

    @Test("Gemm rank from the ratio: k (K + N) <= r K N")
    func gemmRank() throws {
        let graph = Fixture.gemm(inFeatures: 40, outFeatures: 30, transB: true, alpha: 1, beta: 1)
        let outcome = try Compressor.compress(graph, choices: [LayerChoice(layer: "fc", technique: .weightSVD, ratio: 0.5)],
                                              options: CompressionOptions(), job: .silent)
        let layer = try #require(outcome.layers.first)
        #expect(layer.kept == 600 / 70)
        #expect(layer.macsAfter == layer.kept * 70)
        #expect(layer.macsBefore == 1200)
    }

    @Test("SVD on the sample models keeps a valid graph, and reconstruction lowers the output error")
    func sampleModels() throws {
        let calibration = try Fixture.data("digits-calib", first: 64)
        let test = try Fixture.data("digits-test", first: 64)
        // Reconstruction runs two forward passes per layer (slow in debug builds): both
        // techniques with it on digits-cnn, spatial SVD on digits-mobilenet.
        for (name, techniques) in [("digits-cnn", [CompressionTechnique.spatialSVD, .weightSVD]), ("digits-mobilenet", [.spatialSVD])] {
            let graph = try Fixture.model(name)
            let reference = try Fixture.run(graph, test.inputs)
            for technique in techniques {
                let layers = try Compressor.eligibility(of: graph, technique: technique).filter(\.eligible)
                #expect(!layers.isEmpty)
                let choices = layers.map { LayerChoice(layer: $0.layer, technique: technique, ratio: 0.5) }
                let plain = try Compressor.compress(graph, choices: choices, options: CompressionOptions(), job: .silent)
                let refit = try Compressor.compress(graph, choices: choices,
                                                    options: CompressionOptions(reconstructionInputs: calibration.inputs), job: .silent)
                #expect(try #require(plain.cost).totalMACs < (try #require(plain.baselineCost)).totalMACs)
                #expect(refit.cost?.totalMACs == plain.cost?.totalMACs)
                let plainError = Fixture.meanSquaredError(try Fixture.run(plain.graph, test.inputs), reference)
                let refitError = Fixture.meanSquaredError(try Fixture.run(refit.graph, test.inputs), reference)
                #expect(refitError < plainError, "\(name) \(technique): \(refitError) vs \(plainError)")
            }
        }
    }
}

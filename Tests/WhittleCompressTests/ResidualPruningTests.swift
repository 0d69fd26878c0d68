import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine

/// Channel pruning across residual joins (`ChannelGroup`).
@Suite("Residual-consistent channel pruning")
struct ResidualPruningTests {
    /// x -> c0 (3->8, 1x1) -> Relu -> p1 (8->6) = s1 ; s1 -> e2 (6->8, 3x3) -> Relu -> p2 (8->6) = s2 ;
    /// a = s1 + s2 ; a -> e3 (6->5, 1x1) -> y. The 6-channel stream {s1, s2, a} is written by
    /// p1 and p2 and read by e2 and e3.
    static func residualGraph() -> Graph {
        func conv(_ name: String, _ input: String, _ output: String, kernel: Int = 1) -> Node {
            Node(name: name, opType: "Conv", inputs: [input, name + ".w", name + ".b"], outputs: [output],
                 attributes: ["kernel_shape": .ints([kernel, kernel]), "pads": .ints(Array(repeating: kernel / 2, count: 4))])
        }
        let nodes = [
            conv("c0", "x", "c0.out"),
            Node(name: "relu0", opType: "Relu", inputs: ["c0.out"], outputs: ["t0"]),
            conv("p1", "t0", "s1"),
            conv("e2", "s1", "e2.out", kernel: 3),
            Node(name: "relu2", opType: "Relu", inputs: ["e2.out"], outputs: ["d2"]),
            conv("p2", "d2", "s2"),
            Node(name: "add", opType: "Add", inputs: ["s1", "s2"], outputs: ["a"]),
            conv("e3", "a", "y"),
        ]
        let shapes: [(String, [Int])] = [("c0", [8, 3, 1, 1]), ("p1", [6, 8, 1, 1]), ("e2", [8, 6, 3, 3]),
                                         ("p2", [6, 8, 1, 1]), ("e3", [5, 6, 1, 1])]
        var initializers: [String: Tensor] = [:]
        for (index, (name, shape)) in shapes.enumerated() {
            initializers[name + ".w"] = Fixture.random(shape, seed: UInt64(100 + index))
            initializers[name + ".b"] = Fixture.random([shape[0]], seed: UInt64(200 + index))
        }
        return Graph(name: "residual", nodes: nodes, initializers: initializers,
                     inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(3), .fixed(7), .fixed(6)])],
                     outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(5), .fixed(7), .fixed(6)])])
    }

    @Test("the first reader of a residual stream is eligible, the other reader names it")
    func eligibility() throws {
        let eligibility = try Compressor.eligibility(of: Self.residualGraph(), technique: .channelPruning)
        let byName = Dictionary(uniqueKeysWithValues: eligibility.map { ($0.layer, $0) })
        #expect(byName["e2"]?.eligible == true)
        #expect(byName["p1"]?.eligible == true)
        #expect(byName["p2"]?.eligible == true)
        #expect(byName["c0"]?.eligible == false)
        let e3 = try #require(byName["e3"])
        #expect(!e3.eligible)
        #expect(e3.reason?.contains("e2") == true && e3.reason?.contains("residual") == true, "\(e3.reason ?? "")")
    }

    @Test("pruning a residual stream gives a valid graph equal to the reference with those channels unused",
          arguments: [0.5, 0.34])
    func consistent(ratio: Double) throws {
        var graph = Self.residualGraph()
        let kept = Compressor.keptChannels(ratio: ratio, channels: 6, multiplicity: 1)
        // Reference: the same channels (chosen from both readers' weights) zeroed in both readers.
        let readers = ["e2", "e3"]
        var scores = [Double](repeating: 0, count: 6)
        for reader in readers {
            let weight = try #require(graph.initializers[reader + ".w"])
            let inner = weight.shape[2] * weight.shape[3]
            for o in 0..<weight.shape[0] { for c in 0..<6 { for t in 0..<inner {
                let v = Double(weight.floats[(o * 6 + c) * inner + t]); scores[c] += v * v
            } } }
        }
        let keep = Set((0..<6).sorted { scores[$0] > scores[$1] }.prefix(kept))
        #expect(Set(Winnowing.selectChannels(weights: readers.map { graph.initializers[$0 + ".w"]! }, count: kept)) == keep)
        for reader in readers {
            let weight = try #require(graph.initializers[reader + ".w"])
            let inner = weight.shape[2] * weight.shape[3]
            var values = weight.floats
            for o in 0..<weight.shape[0] { for c in 0..<6 where !keep.contains(c) { for t in 0..<inner { values[(o * 6 + c) * inner + t] = 0 } } }
            graph.initializers[reader + ".w"] = Tensor(shape: weight.shape, floats: values)
        }
        let outcome = try Compressor.compress(graph, choices: [LayerChoice(layer: "e2", technique: .channelPruning, ratio: ratio)],
                                              options: CompressionOptions(), job: .silent)
        let pruned = outcome.graph
        #expect(pruned.initializers[try #require(pruned.nodes.first { $0.name == "p1" }?.input(1))]?.shape == [kept, 8, 1, 1])
        #expect(pruned.initializers[try #require(pruned.nodes.first { $0.name == "p2" }?.input(1))]?.shape == [kept, 8, 1, 1])
        #expect(pruned.initializers[try #require(pruned.nodes.first { $0.name == "e2" }?.input(1))]?.shape == [8, kept, 3, 3])
        #expect(pruned.initializers[try #require(pruned.nodes.first { $0.name == "e3" }?.input(1))]?.shape == [5, kept, 1, 1])
        #expect(outcome.layers.first?.newNodes == ["e2", "e3"])
        _ = try GraphAnalysis(graph: pruned, batchSize: 2)
        let x = Fixture.random([4, 3, 7, 6], seed: 7)
        let error = Fixture.relativeError(try Fixture.run(pruned, ["x": x]), try Fixture.run(graph, ["x": x]))
        #expect(error < 1e-5)
        #expect(try #require(outcome.cost).totalMACs < (try #require(outcome.baselineCost)).totalMACs)
    }

    @Test("reconstruction refits every reader of the stream and lowers the error; also after the producer lost channels")
    func reconstruction() throws {
        let graph = Self.residualGraph()
        let calibration = ["x": Fixture.random([24, 3, 7, 6], seed: 11)]
        let x = ["x": Fixture.random([8, 3, 7, 6], seed: 12)]
        let reference = try Fixture.run(graph, x)
        // p2 is pruned (input side) after its output rows were removed by the e2 stream.
        let choices = [LayerChoice(layer: "e2", technique: .channelPruning, ratio: 0.5),
                       LayerChoice(layer: "p2", technique: .channelPruning, ratio: 0.5)]
        let plain = try Compressor.compress(graph, choices: choices, options: CompressionOptions(), job: .silent)
        let refit = try Compressor.compress(graph, choices: choices,
                                            options: CompressionOptions(reconstructionInputs: calibration, batchSize: 8), job: .silent)
        let plainError = Fixture.meanSquaredError(try Fixture.run(plain.graph, x), reference)
        let refitError = Fixture.meanSquaredError(try Fixture.run(refit.graph, x), reference)
        #expect(refitError < plainError, "\(refitError) vs \(plainError)")
        // The activation source gives the same refit as running whole prefixes.
        var options = CompressionOptions(reconstructionInputs: calibration, batchSize: 8)
        options.activations = try ActivationSource(graph: graph, inputs: calibration, batchSize: 8)
        let shared = try Compressor.compress(graph, choices: choices, options: options, job: .silent)
        #expect(Fixture.relativeError(try Fixture.run(shared.graph, x), try Fixture.run(refit.graph, x)) < 1e-4)
    }

    @Test("a Conv that would read and write the same channels, a Concat and a model output stay ineligible")
    func ineligible() throws {
        // digits-mobilenet: block1's projection writes into the stream its own input comes from.
        let eligibility = try Compressor.eligibility(of: try Fixture.model("digits-mobilenet"), technique: .channelPruning)
        #expect(eligibility.contains { !$0.eligible && $0.reason?.contains("residual") == true })
        var graph = Self.residualGraph()
        graph.nodes[6] = Node(name: "cat", opType: "Concat", inputs: ["s1", "s2"], outputs: ["a"], attributes: ["axis": .int(1)])
        graph.initializers["e3.w"] = Fixture.random([5, 12, 1, 1], seed: 5)
        let withConcat = try Compressor.eligibility(of: graph, technique: .channelPruning)
        #expect(withConcat.first { $0.layer == "e2" }?.reason?.contains("Concat") == true)
    }
}

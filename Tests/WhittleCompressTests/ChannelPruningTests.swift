import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine

@Suite("Channel pruning")
struct ChannelPruningTests {
    /// Zeroes, in each chosen layer's weight, the input channels channel selection will drop
    /// at `ratio`: pruning them must then leave the model's outputs unchanged, which checks
    /// that winnowing removes exactly the matching channels everywhere upstream.
    func zeroDroppedChannels(_ graph: Graph, layers: [String], ratio: Double) throws -> Graph {
        var result = graph
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        for layer in layers {
            let node = try #require(graph.nodes.first { $0.name == layer })
            // Every Conv reading the same channels (a residual stream) loses the same ones.
            guard case .success(let group) = ChannelGroup.find(analysis, tensor: try #require(node.input(0))) else {
                Issue.record("\(layer) has no channel group")
                continue
            }
            let readers = group.readers.map { graph.nodes[$0] }
            let weightNames = try readers.map { try #require($0.input(1)) }
            let weights = try weightNames.map { try #require(graph.initializers[$0]) }
            let kept = Compressor.keptChannels(ratio: ratio, channels: weights[0].shape[1], multiplicity: 1)
            let keep = Set(Winnowing.selectChannels(weights: weights, count: kept))
            for (weightName, weight) in zip(weightNames, weights) {
                var values = weight.floats
                let inner = weight.shape[2] * weight.shape[3]
                for o in 0..<weight.shape[0] {
                    for c in 0..<weight.shape[1] where !keep.contains(c) {
                        for t in 0..<inner { values[(o * weight.shape[1] + c) * inner + t] = 0 }
                    }
                }
                result.initializers[weightName] = Tensor(shape: weight.shape, floats: values)
            }
        }
        return result
    }

    @Test("winnowing through BN, Relu, depthwise conv and Clip keeps outputs when dropped channels are unused",
          arguments: [false, true])
    func handMade(depthwise: Bool) throws {
        let graph = try zeroDroppedChannels(Fixture.convBnReluConv(depthwise: depthwise), layers: ["conv2"], ratio: 0.5)
        let outcome = try Compressor.compress(graph, choices: [LayerChoice(layer: "conv2", technique: .channelPruning, ratio: 0.5)],
                                              options: CompressionOptions(), job: .silent)
        let pruned = outcome.graph
        #expect(pruned.initializers["w1"]?.shape == [4, 3, 3, 3])
        #expect(pruned.initializers["b1"]?.shape == [4])
        for name in ["gamma", "beta", "mean", "var"] { #expect(pruned.initializers[name]?.shape == [4]) }
        #expect(pruned.initializers["w2"]?.shape == [4, 4, 3, 3])
        if depthwise {
            #expect(pruned.initializers["wd"]?.shape == [4, 1, 3, 3])
            #expect(pruned.nodes.first { $0.name == "dw" }?.attributes["group"] == .int(4))
        }
        let layer = try #require(outcome.layers.first)
        #expect(layer.kept == 4 && layer.original == 8)
        #expect(layer.macsAfter * 2 == layer.macsBefore)
        let x = ["x": Fixture.random([3, 3, 10, 9], seed: 11)]
        #expect(Fixture.relativeError(try Fixture.run(pruned, x), try Fixture.run(graph, x)) < 1e-5)
        // conv1 (3 -> 8 -> 4 outputs) shrank too: the model's MACs fall by more than conv2's saving.
        let saved = try #require(outcome.baselineCost).totalMACs - (try #require(outcome.cost)).totalMACs
        #expect(saved > layer.macsBefore - layer.macsAfter)
    }

    @Test("channel selection keeps the largest L2 input slices; multiplicity rounds kept channels up")
    func selection() {
        var values = [Float](repeating: 0, count: 2 * 5)
        let magnitudes: [Float] = [0.1, 3, 0.2, 2, 1]
        for o in 0..<2 { for c in 0..<5 { values[o * 5 + c] = magnitudes[c] * (o == 0 ? 1 : -1) } }
        let weight = Tensor(shape: [2, 5, 1, 1], floats: values)
        #expect(Winnowing.selectChannels(weight: weight, count: 3) == [1, 3, 4])
        #expect(Compressor.keptChannels(ratio: 0.5, channels: 10, multiplicity: 1) == 5)
        #expect(Compressor.keptChannels(ratio: 0.5, channels: 10, multiplicity: 4) == 8)
        #expect(Compressor.keptChannels(ratio: 0.05, channels: 10, multiplicity: 1) == 1)
        #expect(Compressor.keptChannels(ratio: 0.9, channels: 10, multiplicity: 8) == 10)
    }

    @Test("every eligible layer of the sample models pruned at once gives a valid, equivalent graph", arguments: [
        "digits-cnn", "digits-mobilenet",
    ])
    func sampleModels(name: String) throws {
        let original = try Fixture.model(name)
        let eligibility = try Compressor.eligibility(of: original, technique: .channelPruning)
        let eligible = eligibility.filter(\.eligible).map(\.layer)
        #expect(!eligible.isEmpty)
        #expect(eligibility.contains { !$0.eligible && $0.reason?.contains("model input") == true })
        if name == "digits-mobilenet" {
            #expect(eligibility.contains { !$0.eligible && $0.reason?.contains("depthwise") == true })
            #expect(eligibility.contains { !$0.eligible && $0.reason?.contains("residual") == true })
        }
        let test = try Fixture.data("digits-test", first: 64)
        // Ratio 1: nothing changes.
        let same = try Compressor.compress(original, choices: eligible.map { LayerChoice(layer: $0, technique: .channelPruning, ratio: 1) },
                                           options: CompressionOptions(), job: .silent)
        #expect(same.graph == original)
        // Ratio 0.5 with the dropped channels already zero: same outputs, fewer MACs.
        let graph = try zeroDroppedChannels(original, layers: eligible, ratio: 0.5)
        let outcome = try Compressor.compress(graph, choices: eligible.map { LayerChoice(layer: $0, technique: .channelPruning, ratio: 0.5) },
                                              options: CompressionOptions(), job: .silent)
        #expect(Fixture.relativeError(try Fixture.run(outcome.graph, test.inputs), try Fixture.run(graph, test.inputs)) < 1e-4)
        #expect(try #require(outcome.cost).totalMACs < (try #require(outcome.baselineCost)).totalMACs)
        for layer in outcome.layers { #expect(layer.macsAfter < layer.macsBefore, "\(layer.layer)") }
    }

    @Test("reconstruction lowers the output error of a pruned model")
    func reconstruction() throws {
        let calibration = try Fixture.data("digits-calib", first: 64)
        let test = try Fixture.data("digits-test", first: 64)
        for name in ["digits-mobilenet"] {
            let graph = try Fixture.model(name)
            let reference = try Fixture.run(graph, test.inputs)
            let choices = try Compressor.eligibility(of: graph, technique: .channelPruning).filter(\.eligible)
                .map { LayerChoice(layer: $0.layer, technique: .channelPruning, ratio: 0.5) }
            let plain = try Compressor.compress(graph, choices: choices, options: CompressionOptions(), job: .silent)
            let refit = try Compressor.compress(graph, choices: choices,
                                                options: CompressionOptions(reconstructionInputs: calibration.inputs, batchSize: 50),
                                                job: .silent)
            let plainError = Fixture.meanSquaredError(try Fixture.run(plain.graph, test.inputs), reference)
            let refitError = Fixture.meanSquaredError(try Fixture.run(refit.graph, test.inputs), reference)
            #expect(refitError < plainError, "\(name): \(refitError) vs \(plainError)")
        }
    }

    @Test("clear errors for unknown layers, bad ratios, duplicates and ineligible layers")
    func errors() throws {
        let graph = try Fixture.model("digits-mobilenet")
        let all = try Compressor.eligibility(of: graph, technique: .channelPruning)
        let depthwise = try #require(all.first { $0.reason?.contains("depthwise") == true })
        let eligible = try #require(all.first { $0.eligible })
        func failure(_ choices: [LayerChoice], options: CompressionOptions = CompressionOptions()) -> WhittleError? {
            do { _ = try Compressor.compress(graph, choices: choices, options: options, job: .silent); return nil }
            catch let error as WhittleError { return error }
            catch { return nil }
        }
        let unknown = failure([LayerChoice(layer: "nope", technique: .spatialSVD, ratio: 0.5)])
        #expect(unknown?.subject == "layer 'nope'")
        #expect(unknown?.kind == .invalidArgument)
        for ratio in [0, -0.5, 1.5, Double.nan] {
            let error = failure([LayerChoice(layer: eligible.layer, technique: .channelPruning, ratio: ratio)])
            #expect(error?.message.contains("outside (0, 1]") == true)
        }
        let dw = failure([LayerChoice(layer: depthwise.layer, technique: .spatialSVD, ratio: 0.5)])
        #expect(dw?.subject == "layer '\(depthwise.layer)'")
        #expect(dw?.message.contains("depthwise") == true)
        let twice = failure([LayerChoice(layer: eligible.layer, technique: .channelPruning, ratio: 0.5),
                             LayerChoice(layer: eligible.layer, technique: .spatialSVD, ratio: 0.5)])
        #expect(twice?.message.contains("more than once") == true)
        let first = try #require(all.first { $0.reason?.contains("model input") == true })
        #expect(failure([LayerChoice(layer: first.layer, technique: .channelPruning, ratio: 0.5)])?.message.contains("model input") == true)
        #expect(failure([], options: CompressionOptions(rankMultiplicity: 0))?.subject == "rank multiplicity")
        let cancelled = CancellationFlag()
        cancelled.cancel()
        #expect(throws: WhittleError.self) {
            _ = try Compressor.compress(graph, choices: [LayerChoice(layer: eligible.layer, technique: .channelPruning, ratio: 0.5)],
                                        options: CompressionOptions(), job: JobContext(cancellation: cancelled))
        }
    }
}

import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine
import WhittleIO

/// `Compressor.sweep`, `NormalEquations` and the patched-suffix scoring of score-table rows.
@Suite("Layer sweeps")
struct LayerSweepTests {
    @Test("normal equations give the stacked QR's ridge solution, also on a subset of the columns")
    func normalEquations() throws {
        let rows = 240, columns = 30, outputs = 5
        var x = Fixture.random([rows, columns], seed: 31).floats
        // A dead column and a large-offset column, as after ReLU6.
        for row in 0..<rows {
            x[row * columns + 4] = 0
            x[row * columns + 9] += 20
        }
        let truth = Fixture.random([columns, outputs], seed: 32).floats
        let noise = Fixture.random([rows, outputs], seed: 33, scale: 0.1).floats
        var y = [Float](repeating: 0, count: rows * outputs)
        for row in 0..<rows {
            for o in 0..<outputs {
                var sum = noise[row * outputs + o]
                for c in 0..<columns { sum += x[row * columns + c] * truth[c * outputs + o] }
                y[row * outputs + o] = sum
            }
        }
        let prior = Fixture.random([columns, outputs], seed: 34).floats
        let equations = try NormalEquations(x: x, y: y, rows: rows, columns: columns, outputs: outputs)
        let full = try equations.solve(subset: Array(0..<columns), prior: prior, ridge: Reconstruction.ridge)
        let stacked = try LinearAlgebra.ridgeLeastSquares(x: x, y: y, rows: rows, cols: columns, outputs: outputs,
                                                          prior: prior, ridge: Reconstruction.ridge)
        #expect(Fixture.relativeError(full, stacked) < 1e-4)
        // The solution on a subset of columns equals the stacked QR of that narrower system.
        let subset = [1, 2, 4, 9, 12, 13, 20, 29]
        var narrow = [Float](repeating: 0, count: rows * subset.count)
        for row in 0..<rows { for (k, c) in subset.enumerated() { narrow[row * subset.count + k] = x[row * columns + c] } }
        var narrowPrior: [Float] = []
        for c in subset { narrowPrior += prior[(c * outputs)..<((c + 1) * outputs)] }
        let part = try equations.solve(subset: subset, prior: narrowPrior, ridge: Reconstruction.ridge)
        let partStacked = try LinearAlgebra.ridgeLeastSquares(x: narrow, y: y, rows: rows, cols: subset.count, outputs: outputs,
                                                              prior: narrowPrior, ridge: Reconstruction.ridge)
        #expect(Fixture.relativeError(part, partStacked) < 1e-4)
        #expect(throws: WhittleError.self) { try equations.solve(subset: [columns], prior: [Float](repeating: 0, count: outputs), ridge: 1e-4) }
    }

    /// A sweep against one `Compressor.compress` per ratio: the same kept counts and costs,
    /// outputs equal up to float rounding, and the template scored with each variant's
    /// weights equal to scoring that variant's own graph.
    func check(_ graph: Graph, layer: String, technique: CompressionTechnique, ratios: [Double],
               options: CompressionOptions, evaluation: [String: Tensor], tolerance: Float = 2e-3) throws {
        let sweep = try Compressor.sweep(graph, layer: layer, technique: technique, ratios: ratios, options: options, job: .silent)
        #expect(sweep.template != nil, "\(layer)")
        #expect(sweep.variants.map(\.ratio) == ratios)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 8)
        let scores = try evaluator.evaluate(sweep)
        #expect(evaluator.evaluations == ratios.count)
        for (variant, score) in zip(sweep.variants, scores) {
            let single = try Compressor.compress(graph, choices: [LayerChoice(layer: layer, technique: technique, ratio: variant.ratio)],
                                                 options: options, job: .silent)
            let detail = try #require(single.layers.first)
            #expect(variant.kept == detail.kept, "\(layer) at \(variant.ratio)")
            #expect(variant.original == detail.original)
            let cost = try evaluator.cost(of: variant.graph), singleCost = try evaluator.cost(of: single.graph)
            #expect(cost.totalMACs == singleCost.totalMACs, "\(layer) at \(variant.ratio)")
            #expect(cost.totalParameters == singleCost.totalParameters)
            let error = Fixture.relativeError(try Fixture.run(variant.graph, evaluation), try Fixture.run(single.graph, evaluation))
            #expect(error < tolerance, "\(layer) at \(variant.ratio): \(error)")
            let own = try evaluator.evaluate(variant.graph)
            // Above ~100 dB both are float rounding noise, whose level varies with summation order.
            #expect(abs(own.sqnr - score.sqnr) < 0.05 || min(own.sqnr, score.sqnr) > 100,
                    "\(layer) at \(variant.ratio): \(own.sqnr) vs \(score.sqnr)")
            #expect(abs((own.agreement ?? 0) - (score.agreement ?? 0)) <= 1.0 / Double(evaluator.sampleCount) + 1e-9)
        }
    }

    @Test("pruning a residual stream: the co-reader is refitted on what the refitted first reader computes")
    func residualStream() throws {
        let graph = ResidualPruningTests.residualGraph()
        let calibration = ["x": Fixture.random([24, 3, 7, 6], seed: 41)]
        let evaluation = ["x": Fixture.random([16, 3, 7, 6], seed: 42)]
        let ratios = [0.2, 0.5, 0.7, 0.9]
        try check(graph, layer: "e2", technique: .channelPruning, ratios: ratios,
                  options: CompressionOptions(reconstructionInputs: calibration, batchSize: 8), evaluation: evaluation)
        try check(graph, layer: "e2", technique: .channelPruning, ratios: ratios, options: CompressionOptions(),
                  evaluation: evaluation, tolerance: 1e-5)
        // The co-reader's per-ratio refits on two threads at once give the same graphs.
        var options = CompressionOptions(reconstructionInputs: calibration, batchSize: 8)
        let sequential = try Compressor.sweep(graph, layer: "e2", technique: .channelPruning, ratios: ratios, options: options, job: .silent)
        options.parallelVariants = 2
        let concurrent = try Compressor.sweep(graph, layer: "e2", technique: .channelPruning, ratios: ratios, options: options, job: .silent)
        for (a, b) in zip(sequential.variants, concurrent.variants) {
            #expect(Fixture.relativeError(try Fixture.run(b.graph, evaluation), try Fixture.run(a.graph, evaluation)) < 1e-5)
        }
    }

    @Test("channel pruning and SVD sweeps of the sample models match one compression per ratio",
          arguments: ["digits-cnn", "digits-mobilenet"])
    func sampleModels(_ name: String) throws {
        let graph = try Fixture.model(name)
        let calibration = try Fixture.data("digits-calib", first: 48).inputs
        let evaluation = try Fixture.data("digits-test", first: 16).inputs
        let options = CompressionOptions(reconstructionInputs: calibration, batchSize: 16)
        let ratios = [0.25, 0.5, 0.75]
        for technique in CompressionTechnique.allCases {
            let eligible = try Compressor.eligibility(of: graph, technique: technique).filter(\.eligible)
            #expect(!eligible.isEmpty)
            for layer in eligible.prefix(3) {
                try check(graph, layer: layer.layer, technique: technique, ratios: ratios, options: options, evaluation: evaluation)
            }
        }
        // Plain (unwhitened, not refitted) SVD takes the same path.
        var plain = options
        plain.reconstructSVD = false
        let layer = try #require(try Compressor.eligibility(of: graph, technique: .spatialSVD).first(where: \.eligible))
        try check(graph, layer: layer.layer, technique: .spatialSVD, ratios: ratios, options: plain, evaluation: evaluation)
    }

    @Test("variants scored concurrently (one engine thread each) score as when scored one by one")
    func concurrentVariants() throws {
        let graph = try Fixture.model("digits-mobilenet")
        let calibration = try Fixture.data("digits-calib", first: 32).inputs
        let evaluation = try Fixture.data("digits-test", first: 24).inputs
        let layer = try #require(try Compressor.eligibility(of: graph, technique: .channelPruning).first(where: \.eligible))
        let sweep = try Compressor.sweep(graph, layer: layer.layer, technique: .channelPruning, ratios: [0.2, 0.4, 0.6, 0.8],
                                         options: CompressionOptions(reconstructionInputs: calibration, batchSize: 16), job: .silent)
        let sequential = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16)
        let concurrent = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16)
        concurrent.parallelVariants = 2
        let threads = EngineThreads.count
        let one = try sequential.evaluate(sweep)
        let two = try concurrent.evaluate(sweep)
        #expect(EngineThreads.count == threads)
        #expect(concurrent.evaluations == 4)
        for (a, b) in zip(one, two) {
            #expect(a.agreement == b.agreement)
            #expect(abs(a.sqnr - b.sqnr) < 0.01 || min(a.sqnr, b.sqnr) > 100, "\(a.sqnr) vs \(b.sqnr)")
        }
    }

    @Test("two ratios giving the same rank run once and share the score")
    func identicalVariantsShareOneRun() throws {
        let graph = try Fixture.model("digits-mobilenet")
        let calibration = try Fixture.data("digits-calib", first: 32).inputs
        let evaluation = try Fixture.data("digits-test", first: 16).inputs
        // The largest layer, where 0.3 and 0.6 give different ranks (the 3-channel stem's do not).
        let layer = try #require(try Compressor.eligibility(of: graph, technique: .spatialSVD).filter(\.eligible).max { $0.macs < $1.macs })
        let sweep = try Compressor.sweep(graph, layer: layer.layer, technique: .spatialSVD, ratios: [0.3, 0.6, 0.3],
                                         options: CompressionOptions(reconstructionInputs: calibration, batchSize: 16), job: .silent)
        #expect(sweep.variants[0].weights == sweep.variants[2].weights)
        #expect(sweep.variants[0].kept < sweep.variants[1].kept)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16)
        let scores = try evaluator.evaluate(sweep)
        #expect(scores[2] == scores[0])
        #expect(evaluator.evaluations == 3)
        #expect(evaluator.sharedEvaluations == 1)
        // The shared score is the one its own run gives.
        let alone = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16).evaluate(sweep.variants[2].graph)
        #expect(alone.agreement == scores[2].agreement)
        #expect(abs(alone.sqnr - scores[2].sqnr) < 0.01)
    }

    @Test("a score table built with the next layer compressed in the background equals the one built in turn")
    func pipelinedScoreTable() throws {
        let graph = try Fixture.model("digits-mobilenet")
        let calibration = try Fixture.data("digits-calib", first: 32).inputs
        let evaluation = try Fixture.data("digits-test", first: 24).inputs
        let options = CompressionOptions(reconstructionInputs: calibration, batchSize: 16)
        let builder = ScoreTableBuilder(technique: .spatialSVD, candidateCount: 4, options: options)
        let inTurn = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16)
        let pipelined = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16)
        pipelined.parallelVariants = 2
        let threads = EngineThreads.count
        let one = try builder.build(evaluator: inTurn)
        let two = try builder.build(evaluator: pipelined)
        #expect(EngineThreads.count == threads)
        #expect(one.layers.count >= 3)
        #expect(one.layers.map(\.layer) == two.layers.map(\.layer))
        #expect(two.statistics.phaseSeconds?["compression (overlapped), wall"] != nil)
        for (a, b) in zip(one.layers, two.layers) {
            #expect(a.entries.map(\.ratio) == b.entries.map(\.ratio))
            #expect(a.entries.map(\.kept) == b.entries.map(\.kept))
            for (x, y) in zip(a.entries, b.entries) {
                #expect(x.scores.agreement == y.scores.agreement, "\(a.layer) at \(x.ratio)")
                #expect(abs(x.scores.sqnr - y.scores.sqnr) < 0.01 || min(x.scores.sqnr, y.scores.sqnr) > 100)
            }
        }
    }

    @Test("a sweep without a shared template scores each variant's own graph")
    func sweepWithoutTemplate() throws {
        let graph = try Fixture.model("digits-mobilenet")
        let evaluation = try Fixture.data("digits-test", first: 16).inputs
        let layer = try #require(try Compressor.eligibility(of: graph, technique: .spatialSVD).filter(\.eligible).max { $0.macs < $1.macs })
        let compressed = try Compressor.compress(graph, choices: [LayerChoice(layer: layer.layer, technique: .spatialSVD, ratio: 0.2)],
                                                 options: CompressionOptions(), job: .silent).graph
        let sweep = LayerSweep(template: nil, patched: [], variants: [
            LayerSweep.Variant(ratio: 0.2, kept: 1, original: 2, graph: compressed, weights: nil),
            LayerSweep.Variant(ratio: 1, kept: 2, original: 2, graph: graph, weights: nil),
        ], seconds: [:])
        let evaluator = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16)
        let scores = try evaluator.evaluate(sweep)
        let alone = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 16).evaluate(compressed)
        #expect(scores[0].sqnr < ScoreValues.sqnrCeiling)
        #expect(abs(scores[0].sqnr - alone.sqnr) < 0.01)
        #expect(scores[1] == evaluator.baseline)
    }

    @Test("a ratio that keeps every channel leaves the model unchanged and scores the baseline")
    func unchangedVariant() throws {
        let graph = ResidualPruningTests.residualGraph()
        let evaluation = ["x": Fixture.random([8, 3, 7, 6], seed: 43)]
        let sweep = try Compressor.sweep(graph, layer: "e2", technique: .channelPruning, ratios: [0.5, 1.0],
                                         options: CompressionOptions(), job: .silent)
        #expect(sweep.variants[1].weights == nil)
        #expect(sweep.variants[1].graph == graph)
        #expect(sweep.variants[1].kept == sweep.variants[1].original)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: evaluation, labels: nil, batchSize: 8)
        let scores = try evaluator.evaluate(sweep)
        #expect(scores[1] == evaluator.baseline)
        #expect(scores[0].sqnr < ScoreValues.sqnrCeiling)
        #expect(throws: WhittleError.self) {
            try Compressor.sweep(graph, layer: "e2", technique: .channelPruning, ratios: [0], options: CompressionOptions(), job: .silent)
        }
        #expect(throws: WhittleError.self) {
            try Compressor.sweep(graph, layer: "e3", technique: .channelPruning, ratios: [0.5], options: CompressionOptions(), job: .silent)
        }
    }
}

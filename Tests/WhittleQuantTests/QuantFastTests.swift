import Foundation
import Testing
import WhittleEngine
import WhittleIO
@testable import WhittleQuant

/// A layer problem with Gaussian weights, uniform patches and targets from slightly perturbed weights.
private func fastProblem(outputs: Int, k: Int, images: Int, perImage: Int, groups: Int, activation: FusedActivation,
                         seed: UInt64) throws -> AdaRoundLayerProblem {
    var random = TestRandom(seed: seed)
    let rows = images * perImage
    let weights = (0..<(outputs * k)).map { _ in random.gaussian() * 0.3 }
    let patches = (0..<(groups * rows * k)).map { _ in random.uniform(-1, 1) }
    let perGroup = outputs / groups
    var targets = [Float](repeating: 0, count: rows * outputs)
    for r in 0..<rows {
        for o in 0..<outputs {
            let g = o / perGroup
            var y: Float = 0
            for i in 0..<k { y += (weights[o * k + i] + random.uniform(-0.01, 0.01)) * patches[(g * rows + r) * k + i] }
            targets[r * outputs + o] = y
        }
    }
    return try AdaRoundLayerProblem(groups: groups, outputChannels: outputs, patchSize: k, rowCount: rows, weights: weights,
                                    patches: patches, targets: targets, imageOfRow: (0..<rows).map { $0 / perImage },
                                    activation: activation)
}

private func grids(_ problem: AdaRoundLayerProblem) throws -> [QuantizationEncoding] {
    try (0..<problem.outputChannels).map { o in
        let row = problem.weights[(o * problem.patchSize)..<((o + 1) * problem.patchSize)]
        return try QuantizationEncoding.compute(min: row.min() ?? 0, max: row.max() ?? 0, bitWidth: 4, symmetry: .signedSymmetric)
    }
}

@Suite("QuantFast")
struct QuantFastTests {
    @Test("fused AdaRound iterations give the same V as the three-pass reference",
          arguments: [(64, 288, 1, FusedActivation.relu), (16, 18, 1, .none), (32, 9, 32, .clip(min: 0, max: 6))])
    func fusedMatchesReference(outputs: Int, k: Int, groups: Int, activation: FusedActivation) throws {
        // 64 x 288 = 18432 weights: five chunks of 4096, so the parallel path runs.
        let problem = try fastProblem(outputs: outputs, k: k, images: 40, perImage: 4, groups: groups, activation: activation, seed: 5)
        let options = AdaRoundOptions(regularization: 0.01, warmStart: 0.2, batchImages: 16, batchPositionsPerImage: 2)
        let fast = try AdaRoundOptimizer(problem: problem, encodings: try grids(problem), options: options)
        let reference = try AdaRoundOptimizer(problem: problem, encodings: try grids(problem), options: options)
        try fast.run(iterations: 120, job: .silent, phase: "test", detail: nil)
        reference.runReference(iterations: 120)
        var worst: Float = 0
        for i in 0..<fast.count { worst = max(worst, abs(fast.v[i] - reference.v[i])) }
        // The fused pass rounds in another order (and other tests in the process may change the
        // BLAS thread count between the two runs, which changes GEMM rounding); 120 Adam steps
        // of 1e-3 move V by up to 0.12, so 1e-4 still catches any real divergence.
        #expect(worst <= 1e-4, "largest V difference \(worst)")
        // The iterations moved V (the comparison is not vacuous) and the soft weights follow V.
        let moved = (0..<fast.count).filter { abs(fast.v[$0] - reference.v[$0]) > 0 || abs(fast.firstMoment[$0]) > 0 }.count
        #expect(moved > fast.count / 2)
        let kept = (0..<fast.count).map { fast.soft[$0] }
        fast.computeSoftWeights()
        for i in 0..<fast.count { #expect(abs(kept[i] - fast.soft[i]) <= 1e-6 * max(1, abs(kept[i]))) }
    }

    @Test("vectorised histogram cost equals the bin-by-bin reference bit for bit")
    func histogramCost() throws {
        var random = TestRandom(seed: 17)
        for trial in 0..<6 {
            var histogram = try GrowingHistogram(binCount: trial % 2 == 0 ? 2048 : 61)
            for batch in 0..<3 {
                let spread: Float = batch == 2 && trial > 2 ? 9 : 1
                var values = (0..<997).map { _ in random.gaussian() * spread + (trial == 4 ? 3 : 0) }
                if trial == 5 { values = values.map { max(0, $0) } }
                try values.withUnsafeBufferPointer { try histogram.observe($0) }
            }
            let cost = HistogramCost(histogram)
            for symmetry in [QuantizationSymmetry.asymmetric, .signedSymmetric] {
                for bits in [4, 8, 16] {
                    for fraction in [0.05, 0.3, 0.7, 1.0, 1.4] {
                        let low = Float(min(0, Double(histogram.minimum)) * fraction)
                        let high = Float(max(0, Double(histogram.maximum)) * fraction)
                        let grid = try QuantizationEncoding.compute(min: low, max: high, bitWidth: bits, symmetry: symmetry)
                        for gamma in [1.0, 3.0] {
                            let fast = cost.cost(grid, gamma: gamma), slow = cost.referenceCost(grid, gamma: gamma)
                            #expect(fast.bitPattern == slow.bitPattern, "trial \(trial) \(symmetry) \(bits) bits x\(fraction): \(fast) vs \(slow)")
                        }
                    }
                }
            }
        }
        // All values equal: a zero-width bin, handled by the reference path.
        var constant = try GrowingHistogram()
        try [Float](repeating: 0.25, count: 100).withUnsafeBufferPointer { try constant.observe($0) }
        let grid = try QuantizationEncoding.compute(min: 0, max: 1, bitWidth: 8, symmetry: .asymmetric)
        #expect(HistogramCost(constant).cost(grid, gamma: 3) == HistogramCost(constant).referenceCost(grid, gamma: 3))
    }

    @Test("parallel calibration gives the same SQNR encodings on every call and names failing tensors")
    func calibrationDeterministic() throws {
        let graph = try TechniqueFixtures.model("digits-mobilenet.onnx")
        let data = try TechniqueFixtures.dataset("digits-calib.npz").subset(first: 64)
        let recipe = QuantizationRecipe(scheme: .sqnr)
        let first = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: data.inputs).model
        let second = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: data.inputs).model
        // Equal up to float rounding: other tests running in the same process may change the
        // engine's thread count between the two calls, and BLAS rounds differently then.
        #expect(Set(first.encodings.keys) == Set(second.encodings.keys))
        for (tensor, encoding) in first.encodings {
            guard case .perTensor(let a) = encoding, case .perTensor(let b)? = second.encodings[tensor] else {
                #expect(encoding == second.encodings[tensor], "\(tensor)")
                continue
            }
            #expect(a.bitWidth == b.bitWidth && a.symmetry == b.symmetry && abs(a.offset - b.offset) <= 1, "\(tensor)")
            #expect(abs(a.scale - b.scale) <= 1e-5 * a.scale, "\(tensor): \(a.scale) vs \(b.scale)")
        }
        #expect(first.encodings.count > 10)
        // Against the analyzer run alone on one tensor's values (serial path).
        let placement = first.placement.quantizers.filter { $0.value.role == .activation && $0.value.enabled }
        #expect(placement.keys.allSatisfy { first.encodings[$0] != nil })
    }

    static func digits() throws -> (Graph, Dataset, Dataset) {
        let graph = try TechniqueFixtures.model("digits-cnn.onnx")
        let calibration = try TechniqueFixtures.dataset("digits-calib.npz").subset(first: 64)
        let evaluation = try TechniqueFixtures.dataset("digits-test.npz").subset(first: 120)
        return (graph, calibration, evaluation)
    }

    @Test("AutoQuant tries every stage in order when nothing meets the target, and keeps the best")
    func autoQuantAllStages() throws {
        let (graph, calibration, evaluation) = try Self.digits()
        let base = QuantizationRecipe(weightBits: 4, activationBits: 4, perChannel: false)
        // A negative margin no candidate can meet is rejected; 0 with W4A4 per-tensor drops.
        let options = AutoQuantOptions(allowedDrop: 0, schemes: [.minMax, .sqnr], adaRoundIterations: 20)
        let result = try AutoQuantization.search(graph: graph, base: base, calibration: calibration.inputs,
                                                 evaluation: evaluation.inputs, labels: evaluation.labels, options: options)
        #expect(result.metric == "accuracy")
        let names = result.candidates.map(\.name)
        if result.metTarget {
            // The model held up at W4A4: the search stopped at the first stage that met the target.
            #expect(names.count <= 6)
        } else {
            #expect(names == ["scheme minmax", "scheme sqnr", "+ CLE", "+ bias correction", "+ fold scale/shift, activation bias correction", "+ AdaRound"])
            #expect(result.chosen.score == result.candidates.map(\.score).max())
            #expect(!result.candidates[5].recipe.biasCorrection && !result.candidates[5].recipe.activationBiasCorrection)
            #expect(result.candidates[5].recipe.adaRound)
            #expect(result.candidates[3].recipe.biasCorrection && !result.candidates[3].recipe.activationBiasCorrection)
            #expect(result.candidates[4].recipe.activationBiasCorrection && result.candidates[4].recipe.foldScaleShift)
            #expect(!result.candidates[4].recipe.biasCorrection && !result.candidates[5].recipe.foldScaleShift)
        }
        #expect(result.candidates.allSatisfy { abs($0.drop - (result.floatScore - $0.score)) < 1e-12 && $0.seconds >= 0 })
        #expect(result.comparison.quantizedAccuracy == result.chosen.score)
        #expect(result.model.encodings.count > 0)
    }

    @Test("AutoQuant stops at the first stage within the allowed drop and scores agreement without labels")
    func autoQuantEarlyStop() throws {
        let (graph, calibration, evaluation) = try Self.digits()
        let options = AutoQuantOptions(allowedDrop: 0.5, schemes: [.minMax, .percentile(99.99)], adaRoundIterations: 10)
        let result = try AutoQuantization.search(graph: graph, base: QuantizationRecipe(), calibration: calibration.inputs,
                                                 evaluation: evaluation.inputs, labels: nil, options: options)
        #expect(result.metric == "agreement")
        #expect(result.floatScore == 1)
        #expect(result.candidates.map(\.name) == ["scheme minmax", "scheme percentile:99.99"])
        #expect(result.metTarget)
        #expect(result.chosen.recipe.scheme == (result.candidates[1].score > result.candidates[0].score ? .percentile(99.99) : .minMax))
    }

    @Test("AutoQuant: cancellation and invalid options")
    func autoQuantErrors() throws {
        let (graph, calibration, evaluation) = try Self.digits()
        let flag = CancellationFlag()
        flag.cancel()
        #expect(throws: WhittleError.self) {
            try AutoQuantization.search(graph: graph, base: QuantizationRecipe(), calibration: calibration.inputs,
                                        evaluation: evaluation.inputs, labels: evaluation.labels, job: JobContext(cancellation: flag))
        }
        for options in [AutoQuantOptions(allowedDrop: -0.1), AutoQuantOptions(schemes: []), AutoQuantOptions(adaRoundIterations: 0)] {
            #expect(throws: WhittleError.self) {
                try AutoQuantization.search(graph: graph, base: QuantizationRecipe(), calibration: calibration.inputs,
                                            evaluation: evaluation.inputs, labels: nil, options: options)
            }
        }
    }
}

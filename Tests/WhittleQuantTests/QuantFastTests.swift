import CWhittleKernels
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
        // 64 x 288 = 18432 weights: five chunks of 4096, so the parallel elementwise pass runs,
        // and 32 rows x 64 x 288 is large enough for the split by output channels.
        let problem = try fastProblem(outputs: outputs, k: k, images: 40, perImage: 4, groups: groups, activation: activation, seed: 5)
        let options = AdaRoundOptions(regularization: 0.01, warmStart: 0.2, batchImages: 16, batchPositionsPerImage: 2)
        let reference = try AdaRoundOptimizer(problem: problem, encodings: try grids(problem), options: options)
        reference.runReference(iterations: 120)
        for parallelChannels in [false, true] {
            try checkFused(problem, options, reference, parallelChannels: parallelChannels)
        }
    }

    private func checkFused(_ problem: AdaRoundLayerProblem, _ options: AdaRoundOptions, _ reference: AdaRoundOptimizer,
                            parallelChannels: Bool) throws {
        let fast = try AdaRoundOptimizer(problem: problem, encodings: try grids(problem), options: options)
        try fast.run(iterations: 120, job: .silent, phase: "test", detail: nil, parallelChannels: parallelChannels)
        var worst: Float = 0
        for i in 0..<fast.count { worst = max(worst, abs(fast.v[i] - reference.v[i])) }
        // The fused pass rounds in another order (and other tests in the process may change the
        // BLAS thread count between the two runs, which changes GEMM rounding); 120 Adam steps
        // of 1e-3 move V by up to 0.12, so 1e-4 still catches any real divergence.
        #expect(worst <= 1e-4, "largest V difference \(worst) (parallel channels: \(parallelChannels))")
        // The iterations moved V (the comparison is not vacuous) and the soft weights follow V.
        let moved = (0..<fast.count).filter { abs(fast.v[$0] - reference.v[$0]) > 0 || abs(fast.firstMoment[$0]) > 0 }.count
        #expect(moved > fast.count / 2)
        let kept = (0..<fast.count).map { fast.soft[$0] }
        fast.computeSoftWeights()
        for i in 0..<fast.count { #expect(abs(kept[i] - fast.soft[i]) <= 1e-6 * max(1, abs(kept[i]))) }
    }

    @Test("AdaRound's fused update: the dispatched (AVX2) kernel follows the portable one")
    func adaRoundKernelMatchesPortable() {
        // 1003 weights: 125 vectors and a scalar tail of 3.
        let n = 1003
        var random = TestRandom(seed: 31)
        func buffer(_ values: [Float]) -> UnsafeMutablePointer<Float> {
            let pointer = UnsafeMutablePointer<Float>.allocate(capacity: n)
            pointer.initialize(from: values, count: n)
            return pointer
        }
        // Grid [-8, 7] with floors in [-8, 6], so floor + h never leaves the grid (a weight on
        // the grid's edge could flip in or out of it on a last-bit difference of h).
        let floors = buffer((0..<n).map { _ in Float(Int(random.unit() * 15) - 8) })
        let scales = buffer((0..<n).map { _ in random.uniform(0.005, 0.05) })
        let lows = buffer([Float](repeating: -8, count: n)), highs = buffer([Float](repeating: 7, count: n))
        let startV = (0..<n).map { i in i % 97 == 0 ? Float(i % 2 == 0 ? 30 : -30) : random.uniform(-4, 4) }
        let zeros = [Float](repeating: 0, count: n)
        let states = (0..<2).map { _ in
            whittle_adaround_buffers(v: buffer(startV), first_moment: buffer(zeros), second_moment: buffer(zeros),
                                     sigmoid: buffer(startV.map { 1 / (1 + exp(-$0)) }), soft: buffer(zeros),
                                     gradient: buffer(zeros), floor_w: floors, scale: scales, low: lows, high: highs)
        }
        defer {
            for state in states {
                for p in [state.v, state.first_moment, state.second_moment, state.sigmoid, state.soft, state.gradient] { p?.deallocate() }
            }
            for p in [floors, scales, lows, highs] { p.deallocate() }
        }
        // A steady pull per weight plus noise, so Adam moves V by about 1e-3 a step.
        let pull = (0..<n).map { _ in random.uniform(-0.05, 0.05) }
        var gradientsCleared = true
        for t in 1...200 {
            for i in 0..<n {
                let g = pull[i] + random.gaussian() * 0.02
                states[0].gradient[i] = g
                states[1].gradient[i] = g
            }
            var step = whittle_adaround_step(
                zeta: AdaRoundConstants.zeta, gamma: AdaRoundConstants.gamma, regularised: t > 40 ? 1 : 0,
                beta: 20 - 18 * Float(t) / 200, regularization: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
                step_size: 1e-3 / (1 - pow(0.9, Float(t))), inverse_root2: 1 / (1 - pow(0.999, Float(t))).squareRoot())
            var fast = states[0], portable = states[1]
            whittle_adaround_update(&fast, &step, 0, n)
            whittle_adaround_update_portable(&portable, &step, 0, n)
            // Both leave the gradient zero for the next product to accumulate into.
            gradientsCleared = gradientsCleared && (0..<n).allSatisfy { states[0].gradient[$0] == 0 && states[1].gradient[$0] == 0 }
        }
        #expect(gradientsCleared)
        guard let fastV = states[0].v, let fastSoft = states[0].soft, let v = states[1].v, let soft = states[1].soft else { return }
        var worstV: Float = 0, worstSoft: Float = 0
        for i in 0..<n {
            worstV = max(worstV, abs(fastV[i] - v[i]))
            worstSoft = max(worstSoft, abs(fastSoft[i] - soft[i]) / scales[i])
        }
        // 200 steps of 1e-3 move V by up to 0.2; fused multiply-adds change the last bits only.
        #expect(worstV <= 1e-5, "largest V difference \(worstV)")
        #expect(worstSoft <= 1e-5, "largest soft-weight difference \(worstSoft) steps")
        // The steps moved V (saturated weights barely), and the soft weights follow V.
        #expect((0..<n).filter { abs(v[$0] - startV[$0]) > 0.05 }.count > n / 2)
        for i in 0..<n {
            let h = min(max(1 / (1 + exp(-v[i])) * 1.2 - 0.1, 0), 1)
            #expect(abs(soft[i] - scales[i] * (floors[i] + h)) <= 1e-4 * scales[i])
        }
    }

    @Test("histogram counting: the dispatched (AVX2) kernel counts as the portable one and as the formula says")
    func histogramKernelMatchesPortable() {
        var random = TestRandom(seed: 41)
        let n = 10_003
        let low: Float = -4, inverse: Float = 32, last: Float = 255
        var values = (0..<n).map { _ in random.gaussian() * 3 }
        // Values on bin edges and centres, NaN, infinities, signed zeros, far outside the range.
        for i in stride(from: 0, to: n, by: 37) { values[i] = low + Float(Int(random.unit() * 512)) / (2 * inverse) }
        values[5] = .nan; values[6] = .infinity; values[7] = -.infinity; values[8] = -0.0; values[9] = 1e30; values[n - 1] = .nan
        func count(portable: Bool) -> [UInt32] {
            var lanes = [UInt32](repeating: 0, count: 4 * 256)
            lanes.withUnsafeMutableBufferPointer { counts in
                guard let h = counts.baseAddress else { return }
                if portable {
                    whittle_histogram_count_portable(values, n, low, inverse, last, h, h + 256, h + 512, h + 768)
                } else {
                    whittle_histogram_count(values, n, low, inverse, last, h, h + 256, h + 512, h + 768)
                }
            }
            return lanes
        }
        let fast = count(portable: false)
        #expect(fast == count(portable: true))
        // Merged counts against the formula, bin by bin.
        var expected = [UInt32](repeating: 0, count: 256)
        for x in values {
            var g = (x - low) * inverse
            g = g - 0.5
            g = g > 0 ? g : 0
            g = min(g, last)
            expected[Int(g.rounded(.toNearestOrEven))] += 1
        }
        var merged = [UInt32](repeating: 0, count: 256)
        for lane in 0..<4 {
            for b in 0..<256 { merged[b] += fast[lane * 256 + b] }
        }
        #expect(merged == expected)
        #expect(expected[0] >= 3 && expected[255] >= 2)  // NaN and -inf in bin 0, +inf and 1e30 in the last
    }

    @Test("pruned SQNR search picks the grid the exhaustive search picks, costing few candidates")
    func sqnrPruningMatchesExhaustive() throws {
        var random = TestRandom(seed: 23)
        func sample(_ kind: Int) -> Float {
            switch kind {
            case 0: return random.gaussian()
            case 1: return max(0, random.gaussian() * 2)  // ReLU: a spike at 0
            case 2: return min(6, max(0, random.gaussian() * 3 + 2))  // ReLU6: spikes at both ends
            case 3: return Float(-log(max(random.unit(), 1e-12))) * 0.5  // long right tail
            case 4: return random.unit() < 0.001 ? random.uniform(-60, 60) : random.gaussian()  // rare outliers
            case 5: return random.uniform(-1, 3)
            default: return (random.unit() < 0.5 ? -2 : 3) + random.gaussian() * 0.3  // two modes, a gap between
            }
        }
        var candidatesTotal = 0, costedTotal = 0
        for kind in 0..<7 {
            var analyzer = try SqnrEncodingAnalyzer()
            for batch in 0..<4 {
                // The last batch reaches further, so the histogram grows and re-bins once.
                let stretch: Float = batch == 3 ? 1.5 : 1
                try analyzer.observe((0..<5000).map { _ in sample(kind) * stretch })
            }
            let cost = HistogramCost(analyzer.histogram)
            for symmetry in [QuantizationSymmetry.asymmetric, .signedSymmetric, .unsignedSymmetric] {
                for bits in [4, 8, 16] {
                    let candidates = try analyzer.searchCandidates(bitWidth: bits, symmetry: symmetry)
                    for candidate in candidates {
                        let bound = cost.lowerBound(candidate, gamma: 3), exact = cost.cost(candidate, gamma: 3)
                        #expect(bound <= exact * (1 + 1e-9), "kind \(kind) \(symmetry) \(bits) bits: bound \(bound) > cost \(exact)")
                    }
                    let pruned = try analyzer.encoding(bitWidth: bits, symmetry: symmetry)
                    let exhaustive = try analyzer.exhaustiveEncoding(bitWidth: bits, symmetry: symmetry)
                    #expect(pruned == exhaustive, "kind \(kind) \(symmetry) \(bits) bits")
                    let costed = cost.cheapest(candidates, gamma: 3)?.costed ?? 0
                    candidatesTotal += candidates.count
                    costedTotal += costed
                }
            }
        }
        print("SQNR pruning: costed \(costedTotal) of \(candidatesTotal) candidates")
        #expect(costedTotal * 4 < candidatesTotal, "costed \(costedTotal) of \(candidatesTotal) candidates")
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

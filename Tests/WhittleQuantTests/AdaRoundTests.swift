import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

/// A random layer problem: `rows` rows (one per image), targets from a slightly perturbed
/// weight so rounding choices matter.
private func randomProblem(outputs: Int, k: Int, rows: Int, groups: Int = 1, activation: FusedActivation = .none,
                           seed: UInt64) throws -> AdaRoundLayerProblem {
    var random = TestRandom(seed: seed)
    let weights = (0..<(outputs * k)).map { _ in random.gaussian() * 0.5 }
    let bias = (0..<outputs).map { _ in random.gaussian() * 0.1 }
    let patches = (0..<(groups * rows * k)).map { _ in random.gaussian() }
    var targets = [Float](repeating: 0, count: rows * outputs)
    let perGroup = outputs / groups
    for r in 0..<rows {
        for o in 0..<outputs {
            let g = o / perGroup
            var sum = bias[o]
            for i in 0..<k { sum += weights[o * k + i] * patches[(g * rows + r) * k + i] }
            targets[r * outputs + o] = sum + random.gaussian() * 0.01
        }
    }
    return try AdaRoundLayerProblem(groups: groups, outputChannels: outputs, patchSize: k, rowCount: rows, weights: weights,
                                    bias: bias, patches: patches, targets: targets, activation: activation)
}

/// 4-bit signed symmetric grids from each row's absolute maximum.
private func rowGrids(_ problem: AdaRoundLayerProblem, bits: Int = 4) throws -> [QuantizationEncoding] {
    try (0..<problem.outputChannels).map { o in
        let row = problem.weights[(o * problem.patchSize)..<((o + 1) * problem.patchSize)]
        return try QuantizationEncoding.compute(min: row.min() ?? 0, max: row.max() ?? 0, bitWidth: bits, symmetry: .signedSymmetric)
    }
}

/// The AdaRound loss written plainly in Double: soft weights, forward, activation, mean over
/// rows of the squared channel norm, plus the regulariser.
private func referenceLoss(_ problem: AdaRoundLayerProblem, grids: [QuantizationEncoding], v: [Double], beta: Double?,
                           lambda: Double) -> Double {
    let k = problem.patchSize, outputs = problem.outputChannels, perGroup = problem.channelsPerGroup
    var soft = [Double](repeating: 0, count: outputs * k)
    var regulariser = 0.0
    for o in 0..<outputs {
        let s = Double(grids[o].scale)
        for i in 0..<k {
            let x = Double(problem.weights[o * k + i] / grids[o].scale)
            let sigma = 1 / (1 + exp(-v[o * k + i]))
            let h = min(max(sigma * 1.2 - 0.1, 0), 1)
            let u = min(max(x.rounded(.down) + h, Double(grids[o].offset)), Double(grids[o].offset + grids[o].steps))
            soft[o * k + i] = s * u
            regulariser += 1 - pow(abs(2 * h - 1), beta ?? 1)
        }
    }
    func f(_ y: Double) -> Double {
        switch problem.activation {
        case .none: return y
        case .relu: return max(y, 0)
        case .clip(let low, let high): return min(max(y, Double(low)), Double(high))
        }
    }
    var total = 0.0
    for r in 0..<problem.rowCount {
        for o in 0..<outputs {
            let g = o / perGroup
            var y = Double(problem.bias[o])
            for i in 0..<k { y += soft[o * k + i] * Double(problem.patches[(g * problem.rowCount + r) * k + i]) }
            let d = f(y) - f(Double(problem.targets[r * outputs + o]))
            total += d * d
        }
    }
    return total / Double(problem.rowCount) + (beta == nil ? 0 : lambda * regulariser)
}

@Suite("AdaRound")
struct AdaRoundTests {
    @Test("gradient matches finite differences", arguments: [FusedActivation.none, .relu, .clip(min: -0.5, max: 0.8)])
    func gradientCheck(activation: FusedActivation) throws {
        for (groups, beta) in [(1, Float(4)), (2, Float(7.5))] {
            let problem = try randomProblem(outputs: 4, k: 6, rows: 24, groups: groups, activation: activation, seed: 11)
            let grids = try rowGrids(problem)
            let options = AdaRoundOptions(regularization: 0.05, batchImages: 24, batchPositionsPerImage: 1)
            let optimizer = try AdaRoundOptimizer(problem: problem, encodings: grids, options: options)
            var random = TestRandom(seed: 3)
            for i in 0..<optimizer.count { optimizer.v[i] = random.uniform(-3, 3) }
            for r in 0..<24 { optimizer.batchRows[r] = r }
            try problem.patches.withUnsafeBufferPointer { p in
                try problem.targets.withUnsafeBufferPointer { y in
                    optimizer.gather(optimizer.batchRows, 24, patches: try #require(p.baseAddress), targets: try #require(y.baseAddress))
                }
            }
            let (reconstruction, regulariser) = optimizer.lossAndGradient(rows: 24, beta: beta)
            let v = (0..<optimizer.count).map { Double(optimizer.v[$0]) }
            let reference = referenceLoss(problem, grids: grids, v: v, beta: Double(beta), lambda: 0.05)
            #expect(abs(reconstruction + regulariser - reference) <= 1e-4 * max(1, reference))
            var matched = 0
            for i in 0..<optimizer.count {
                let epsilon = 1e-4
                var plus = v, minus = v
                plus[i] += epsilon
                minus[i] -= epsilon
                let numeric = (referenceLoss(problem, grids: grids, v: plus, beta: Double(beta), lambda: 0.05)
                    - referenceLoss(problem, grids: grids, v: minus, beta: Double(beta), lambda: 0.05)) / (2 * epsilon)
                let analytic = Double(optimizer.gradient[i])
                if abs(numeric - analytic) <= 2e-3 * max(1, abs(numeric)) { matched += 1 }
            }
            // A handful may straddle a ReLU or clamp kink within +-epsilon.
            #expect(matched >= optimizer.count - 1, "groups \(groups): \(matched) of \(optimizer.count) components match")
        }
    }

    @Test("warm start and cosine beta schedule")
    func betaSchedule() {
        let options = AdaRoundOptions()
        #expect(AdaRoundOptimizer.beta(iteration: 0, of: 1000, options: options) == nil)
        #expect(AdaRoundOptimizer.beta(iteration: 199, of: 1000, options: options) == nil)
        #expect(abs((AdaRoundOptimizer.beta(iteration: 200, of: 1000, options: options) ?? 0) - 20) < 1e-4)
        #expect(abs((AdaRoundOptimizer.beta(iteration: 600, of: 1000, options: options) ?? 0) - 11) < 1e-3)
        #expect(abs((AdaRoundOptimizer.beta(iteration: 1000, of: 1000, options: options) ?? 0) - 2) < 1e-4)
        #expect(AdaRoundOptions.defaultIterations(bitWidth: 4) == 15_000)
        #expect(AdaRoundOptions.defaultIterations(bitWidth: 8) == 10_000)
        // AIMET's other defaults (aimet.md §1.8): reg 0.01, beta 20 -> 2, warm start 0.2,
        // minibatch of 32 cached images, Adam at torch's default step 1e-3.
        #expect(options.iterations == nil && options.regularization == 0.01)
        #expect(options.betaStart == 20 && options.betaEnd == 2 && options.warmStart == 0.2)
        #expect(options.batchImages == 32 && options.learningRate == 1e-3)
    }

    @Test("V starts at the fractional part and the soft weights start at the float weights")
    func initialisation() throws {
        let problem = try randomProblem(outputs: 3, k: 5, rows: 8, seed: 5)
        let grids = try rowGrids(problem)
        let optimizer = try AdaRoundOptimizer(problem: problem, encodings: grids, options: AdaRoundOptions())
        optimizer.computeSoftWeights()
        for o in 0..<3 {
            for i in 0..<5 {
                let x = problem.weights[o * 5 + i] / grids[o].scale
                #expect(abs(optimizer.softness[o * 5 + i] - (x - x.rounded(.down))) < 1e-4)
                #expect(abs(optimizer.soft[o * 5 + i] - problem.weights[o * 5 + i]) < 1e-4 * grids[o].scale + 1e-6)
            }
        }
    }

    @Test("rounds only to floor or ceiling, ends binary, beats nearest", arguments: [FusedActivation.none, .relu])
    func optimisation(activation: FusedActivation) throws {
        let problem = try randomProblem(outputs: 6, k: 12, rows: 256, activation: activation, seed: 21)
        let grids = try rowGrids(problem)
        let options = AdaRoundOptions(iterations: 3000, learningRate: 1e-2, batchImages: 32, batchPositionsPerImage: 1)
        let outcome = try AdaRound.optimize(problem, encodings: grids, options: options)
        for o in 0..<6 {
            for i in 0..<12 {
                let x = problem.weights[o * 12 + i] / grids[o].scale
                let code = outcome.weights[o * 12 + i] / grids[o].scale
                let low = Float(grids[o].offset), high = Float(grids[o].offset + grids[o].steps)
                #expect(abs(code - code.rounded()) < 1e-4, "on the grid")
                let down = min(max(x.rounded(.down), low), high), up = min(max(x.rounded(.up), low), high)
                #expect(abs(code - down) < 1e-4 || abs(code - up) < 1e-4, "weight \(o),\(i): \(x) rounded to \(code)")
            }
        }
        #expect(outcome.lossAdaRound <= outcome.lossNearest, "\(outcome.lossAdaRound) vs nearest \(outcome.lossNearest)")
        // After annealing the soft rounding is (almost) binary.
        let optimizer = try AdaRoundOptimizer(problem: problem, encodings: grids, options: options)
        try optimizer.run(iterations: 3000, job: .silent, phase: "test", detail: nil)
        optimizer.computeSoftWeights()
        let undecided = (0..<optimizer.count).filter { abs(2 * optimizer.softness[$0] - 1) < 0.9 }.count
        #expect(undecided <= optimizer.count / 20, "\(undecided) of \(optimizer.count) soft values still between 0.05 and 0.95")
    }

    @Test("finds the better rounding when nearest rounding errs in the same direction twice")
    func correlatedInputs() throws {
        // y = 0.45 p + 0.35 p with (nearly) identical inputs: nearest rounds both down (output 0);
        // rounding one of them up gives output about 1 * p, error 0.2 p instead of 0.8 p.
        let rows = 64
        var random = TestRandom(seed: 8)
        let inputs = (0..<rows).map { _ in random.gaussian() }
        var patches: [Float] = []
        var targets: [Float] = []
        for input in inputs {
            let second: Float = input + 0.01 * random.gaussian()
            patches += [input, second]
            targets.append(0.45 * input + 0.35 * second)
        }
        let problem = try AdaRoundLayerProblem(outputChannels: 1, patchSize: 2, rowCount: rows, weights: [0.45, 0.35],
                                               patches: patches, targets: targets)
        let grid = try QuantizationEncoding.validated(scale: 1, offset: -8, bitWidth: 4, symmetry: .signedSymmetric)
        let outcome = try AdaRound.optimize(problem, encodings: [grid], options: AdaRoundOptions(iterations: 2000, learningRate: 1e-2))
        #expect(outcome.weights.sorted() == [0, 1])
        #expect(outcome.lossAdaRound < 0.2 * outcome.lossNearest)
    }

    @Test("cancellation stops the optimisation")
    func cancellation() throws {
        let problem = try randomProblem(outputs: 2, k: 3, rows: 16, seed: 2)
        let flag = CancellationFlag()
        flag.cancel()
        #expect(throws: WhittleError.self) {
            _ = try AdaRound.optimize(problem, encodings: try rowGrids(problem), options: AdaRoundOptions(iterations: 10),
                                      job: JobContext(cancellation: flag))
        }
    }

    @Test("invalid problems and options are rejected")
    func validation() throws {
        #expect(throws: WhittleError.self) {
            _ = try AdaRoundLayerProblem(outputChannels: 2, patchSize: 3, rowCount: 4, weights: [1, 2, 3], patches: [], targets: [])
        }
        let problem = try randomProblem(outputs: 2, k: 3, rows: 4, seed: 1)
        #expect(throws: WhittleError.self) {
            _ = try AdaRound.optimize(problem, encodings: try rowGrids(problem), options: AdaRoundOptions(warmStart: 1.5))
        }
        #expect(throws: WhittleError.self) {
            _ = try AdaRound.optimize(problem, encodings: [try rowGrids(problem)[0]])
        }
    }
}

// MARK: Model-level tests

/// x [N, 2, 9, 9] -> Conv(4, 3x3, stride 2, pads 1 0 1 2, groups 2) -> Relu -> depthwise
/// Conv(4, 3x3, SAME_UPPER) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(transB 0, 3).
func smallConvModel(seed: UInt64) -> (Graph, [String: Tensor]) {
    var random = TestRandom(seed: seed)
    func values(_ count: Int, _ scale: Float) -> [Float] { (0..<count).map { _ in random.gaussian() * scale } }
    let nodes = [
        Node(name: "conv1", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"],
             attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 2]), "group": .int(2), "kernel_shape": .ints([3, 3])]),
        Node(name: "relu1", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
        Node(name: "dw", opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"],
             attributes: ["group": .int(4), "auto_pad": .string("SAME_UPPER")]),
        Node(name: "relu2", opType: "Clip", inputs: ["c2", "lo", "hi"], outputs: ["r2"]),
        Node(name: "gap", opType: "GlobalAveragePool", inputs: ["r2"], outputs: ["g"]),
        Node(name: "flatten", opType: "Flatten", inputs: ["g"], outputs: ["f"]),
        Node(name: "fc", opType: "Gemm", inputs: ["f", "w3", "b3"], outputs: ["logits"]),
    ]
    let graph = Graph(
        nodes: nodes,
        initializers: [
            "w1": Tensor(shape: [4, 1, 3, 3], floats: values(36, 0.5)), "b1": Tensor(shape: [4], floats: values(4, 0.1)),
            "w2": Tensor(shape: [4, 1, 3, 3], floats: values(36, 0.5)),
            "lo": Tensor(shape: [], floats: [0]), "hi": Tensor(shape: [], floats: [6]),
            "w3": Tensor(shape: [4, 3], floats: values(12, 0.5)), "b3": Tensor(shape: [3], floats: values(3, 0.1)),
        ],
        inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(2), .fixed(9), .fixed(9)])],
        outputs: [ValueInfo(name: "logits", dimensions: [.symbolic("N"), .fixed(3)])])
    let data = ["x": Tensor(shape: [40, 2, 9, 9], floats: values(40 * 2 * 81, 1))]
    return (graph, data)
}

/// Per-channel 4-bit symmetric min-max encodings of every weight along its output axis.
func perChannelEncodings(_ graph: Graph, axes: [String: Int], bits: Int = 4) throws -> [String: TensorEncoding] {
    var result: [String: TensorEncoding] = [:]
    for (name, axis) in axes {
        let weight = try #require(graph.initializers[name])
        var analyzer = try PerChannelEncodingAnalyzer(MinMaxEncodingAnalyzer(), shape: weight.shape, axis: axis)
        try analyzer.observe(weight.floats)
        result[name] = try analyzer.tensorEncoding(bitWidth: bits, symmetry: .signedSymmetric)
    }
    return result
}

@Suite("AdaRound on a model")
struct AdaRoundModelTests {
    @Test("im2col rows reproduce the float layer outputs (strides, asymmetric pads, groups, SAME, Gemm)")
    func patchesMatchOutputs() throws {
        let (graph, data) = smallConvModel(seed: 4)
        let encodings = try perChannelEncodings(graph, axes: ["w1": 0, "w2": 0, "w3": 1])
        let context = try LayerDataContext(graph: graph, encodings: encodings, data: data, maxImages: 40, positionsPerImage: 7,
                                           passBatchSize: 16, seed: 1)
        #expect(context.sites.map(\.nodeName) == ["conv1", "dw", "fc"])
        #expect(context.sites.map(\.activation) == [.relu, .clip(min: 0, max: 6), .none])
        let targets = try context.collectOutputs(of: context.graph, sites: context.sites, job: .silent)
        for (index, site) in context.sites.enumerated() {
            let patches = try context.collectPatches(of: context.graph, site: site, job: .silent)
            let weight = try #require(context.graph.initializers[site.weightName])
            var bias = [Float](repeating: 0, count: site.outputChannels)
            if let name = site.biasName { bias = try #require(context.graph.initializers[name]).floats }
            let problem = try AdaRoundLayerProblem(groups: site.groups, outputChannels: site.outputChannels, patchSize: site.patchSize,
                                                   rowCount: context.rowCount(site), weights: site.gemmWeights(weight), bias: bias,
                                                   patches: patches, targets: targets[index], imageOfRow: context.rowImages(site))
            #expect(problem.rowCount == 40 * min(7, site.positions))
            let loss = problem.reconstructionLoss(weights: problem.weights)
            let energy = targets[index].reduce(0) { $0 + Double($1 * $1) } / Double(problem.rowCount)
            #expect(loss <= 1e-9 * max(1, energy), "\(site.nodeName): loss \(loss), output energy \(energy)")
            // Round trip of the GEMM layout.
            #expect(site.weightTensor(fromGemm: site.gemmWeights(weight)) == weight)
        }
    }

    @Test("apply rounds every weight to its grid, floor or ceiling, and reports per layer")
    func applyModel() throws {
        let (graph, data) = smallConvModel(seed: 9)
        let encodings = try perChannelEncodings(graph, axes: ["w1": 0, "w2": 0, "w3": 1])
        let options = AdaRoundOptions(iterations: 300, cachedPositionsPerImage: 4, passBatchSize: 16)
        let counter = EventCounter()
        let result = try AdaRound.apply(graph: graph, weightEncodings: encodings, data: data, options: options,
                                        job: JobContext(progress: { _ in counter.add() }))
        #expect(counter.value > 0)
        #expect(result.layers.map(\.node) == ["conv1", "dw", "fc"])
        #expect(result.layers.map(\.activation) == ["Relu", "Clip", ""])
        for (name, axis) in [("w1", 0), ("w2", 0), ("w3", 1)] {
            let original = try #require(graph.initializers[name])
            let rounded = try #require(result.graph.initializers[name])
            guard case .perChannel(_, let grids)? = encodings[name] else { Issue.record("no grids"); continue }
            let layout = try ChannelLayout(shape: original.shape, axis: axis)
            let a = original.floats, b = rounded.floats
            for index in a.indices {
                let channel = (index / layout.innerSize) % layout.channelCount
                let grid = grids[channel]
                let x = a[index] / grid.scale, code = b[index] / grid.scale
                let low = Float(grid.offset), high = Float(grid.offset + grid.steps)
                #expect(abs(code - code.rounded()) < 1e-4)
                let down = min(max(x.rounded(.down), low), high), up = min(max(x.rounded(.up), low), high)
                #expect(abs(code - down) < 1e-4 || abs(code - up) < 1e-4, "\(name)[\(index)] \(x) -> \(code)")
            }
        }
        // Unsupported encodings leave a layer alone.
        var partial = encodings
        partial["w2"] = .float(bitWidth: 16)
        let skipped = try AdaRound.apply(graph: graph, weightEncodings: partial, data: data,
                                         options: AdaRoundOptions(iterations: 10, passBatchSize: 16))
        #expect(skipped.layers.map(\.node) == ["conv1", "fc"])
        #expect(skipped.graph.initializers["w2"] == graph.initializers["w2"])
    }

    @Test("per-channel encodings on the wrong axis are an error naming the weight")
    func wrongAxis() throws {
        let (graph, data) = smallConvModel(seed: 9)
        let encodings = try perChannelEncodings(graph, axes: ["w3": 0])
        let error = #expect(throws: WhittleError.self) {
            _ = try AdaRound.apply(graph: graph, weightEncodings: encodings, data: data, options: AdaRoundOptions(iterations: 5))
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("w3"))
    }
}

/// Counts progress events from any thread.
final class EventCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

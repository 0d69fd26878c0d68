import COpenBLAS
import CWhittleKernels
import Foundation
import WhittleEngine

/// AdaRound's hyper-parameters (Nagel et al. 2020; AIMET defaults, shared reference aimet.md §1.8).
public struct AdaRoundOptions: Sendable {
    /// Iterations per layer; nil: AIMET's default, 10 000 when every weight has at least 8 bits
    /// and 15 000 when any has fewer.
    public var iterations: Int?
    /// Weight `lambda` of the rounding regulariser (`reg_param`, 0.01).
    public var regularization: Float
    /// The regulariser exponent is annealed from `betaStart` to `betaEnd` (20 -> 2).
    public var betaStart: Float
    public var betaEnd: Float
    /// Share of the iterations at the start without the regulariser (0.2).
    public var warmStart: Float
    /// Adam step size (torch's default, 1e-3, which AIMET keeps).
    public var learningRate: Float
    /// Images drawn per iteration (AIMET's `BATCH_SIZE` = 32 cached samples).
    public var batchImages: Int
    /// Output positions used per drawn image and iteration, chosen at random among the cached
    /// ones (AIMET uses every position of the 32 images; see `AdaRound` for why Whittle samples).
    public var batchPositionsPerImage: Int
    /// Output positions cached per image and layer (a fixed random subset, drawn once).
    public var cachedPositionsPerImage: Int
    /// At most this many images of the data are used (AIMET's guidance: 500-1000 images).
    public var maxImages: Int
    /// Apply the activation that follows a layer (Relu, Clip) to both sides of the loss.
    public var activationInLoss: Bool
    /// Batch size of the forward passes that collect layer inputs and targets.
    public var passBatchSize: Int
    /// Seed of the minibatch and position sampling.
    public var seed: UInt64
    /// Cancellation is checked and progress reported every this many iterations.
    public var checkInterval: Int
    /// Transforms the graph whose activations feed each layer (the model with the layers
    /// rounded so far) before it runs, e.g. to insert activation fake-quantization from a
    /// quantization simulation. Tensor names must survive; the layer input is read by name.
    public var activationQuantizer: (@Sendable (Graph) throws -> Graph)?

    public init(iterations: Int? = nil, regularization: Float = 0.01, betaStart: Float = 20, betaEnd: Float = 2,
                warmStart: Float = 0.2, learningRate: Float = 1e-3, batchImages: Int = 32, batchPositionsPerImage: Int = 2,
                cachedPositionsPerImage: Int = 16, maxImages: Int = 1024, activationInLoss: Bool = true,
                passBatchSize: Int = 32, seed: UInt64 = 0x5EED, checkInterval: Int = 250,
                activationQuantizer: (@Sendable (Graph) throws -> Graph)? = nil) {
        self.iterations = iterations
        self.regularization = regularization
        self.betaStart = betaStart
        self.betaEnd = betaEnd
        self.warmStart = warmStart
        self.learningRate = learningRate
        self.batchImages = batchImages
        self.batchPositionsPerImage = batchPositionsPerImage
        self.cachedPositionsPerImage = cachedPositionsPerImage
        self.maxImages = maxImages
        self.activationInLoss = activationInLoss
        self.passBatchSize = passBatchSize
        self.seed = seed
        self.checkInterval = checkInterval
        self.activationQuantizer = activationQuantizer
    }

    /// AIMET's default iteration count for a weight of `bitWidth` bits.
    public static func defaultIterations(bitWidth: Int) -> Int { bitWidth < 8 ? 15_000 : 10_000 }

    func validate() throws {
        func fail(_ what: String, _ message: String) -> WhittleError { WhittleError(.invalidArgument, "AdaRound \(what)", message) }
        if let iterations, iterations < 1 { throw fail("iterations", "must be at least 1, got \(iterations)") }
        guard regularization >= 0, regularization.isFinite else { throw fail("regularization", "must be finite and >= 0") }
        guard betaStart >= 1, betaEnd >= 1, betaStart.isFinite, betaEnd.isFinite else { throw fail("beta range", "both ends must be >= 1") }
        guard warmStart >= 0, warmStart < 1 else { throw fail("warm start", "must be in [0, 1), got \(warmStart)") }
        guard learningRate > 0, learningRate.isFinite else { throw fail("learning rate", "must be positive") }
        guard batchImages >= 1, batchPositionsPerImage >= 1, cachedPositionsPerImage >= 1, maxImages >= 1, passBatchSize >= 1,
              checkInterval >= 1 else {
            throw fail("options", "batch, position, image and interval counts must be at least 1")
        }
    }
}

/// AdaRound's constants: the rectified sigmoid's stretch `zeta = 1.1`, `gamma = -0.1`.
public enum AdaRoundConstants {
    public static let zeta: Float = 1.1
    public static let gamma: Float = -0.1
}

/// What optimising one layer measured.
public struct AdaRoundLayerOutcome: Sendable {
    /// Rounded weights `[O x K]`: `scale * clamp(floor(W / scale) + (V >= 0), low, high)`.
    public var weights: [Float]
    /// Reconstruction loss (all cached rows) with nearest rounding and with AdaRound's rounding.
    public var lossNearest: Double
    public var lossAdaRound: Double
    public var iterations: Int
    public var seconds: Double
    /// Share of weights rounded differently from nearest rounding.
    public var changedShare: Double
}

/// The optimiser of one layer problem. Every buffer is allocated in `init`; an iteration
/// gathers a minibatch, computes the soft weights, runs two GEMMs (forward, weight gradient)
/// and one fused elementwise pass (chain rule to `V`, Adam; `whittle_adaround_update` in
/// CWhittleKernels, AVX2+FMA when the CPU has it) without allocating.
///
/// Math (per weight, grid `[low, high]` = `[offset, offset + steps]` of its channel):
///
///     h(V)  = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1)
///     W~    = s * clamp(floor(W / s) + h(V), low, high)
///     L     = mean_rows sum_o (f(W~ p + b) - f(y))^2  +  lambda * sum (1 - |2h - 1|^beta)
///
/// with the regulariser off during the warm start and `beta` annealed by cosine
/// `beta(t) = end + (start - end)(1 + cos(pi (t - tw) / (T - tw))) / 2`. Gradients follow
/// torch's conventions: a clamp passes the gradient where `min <= x <= max`, ReLU where `x > 0`.
final class AdaRoundOptimizer {
    let problem: AdaRoundLayerProblem
    let options: AdaRoundOptions
    let count: Int
    let rowScale: [Float], rowLow: [Float], rowHigh: [Float]
    // Per-weight state.
    let floorW: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>
    let firstMoment: UnsafeMutablePointer<Float>
    let secondMoment: UnsafeMutablePointer<Float>
    let soft: UnsafeMutablePointer<Float>
    let softness: UnsafeMutablePointer<Float>
    let softDerivative: UnsafeMutablePointer<Float>
    let softChain: UnsafeMutablePointer<Float>
    /// `sigmoid(V)` of the current `V`, kept by the fused iteration (`fusedUpdate`).
    let sigmoid: UnsafeMutablePointer<Float>
    let gradient: UnsafeMutablePointer<Float>
    let elementScale: UnsafeMutablePointer<Float>
    let elementLow: UnsafeMutablePointer<Float>
    let elementHigh: UnsafeMutablePointer<Float>
    /// `count` rounded up to a multiple of 8 (the SIMD loops' length; padding stays inert).
    let paddedCount: Int
    // Minibatch buffers.
    let maxBatchRows: Int
    let batchPatches: UnsafeMutablePointer<Float>
    let batchTargets: UnsafeMutablePointer<Float>
    let batchOutput: UnsafeMutablePointer<Float>
    let batchRows: UnsafeMutablePointer<Int>
    /// The rows of the next iteration's minibatch, drawn one iteration ahead (see `run`).
    let nextBatchRows: UnsafeMutablePointer<Int>
    let imagePermutation: UnsafeMutablePointer<Int>
    let rowPermutation: UnsafeMutablePointer<Int>
    let imageStarts: UnsafeMutablePointer<Int>
    let imageEnds: UnsafeMutablePointer<Int>
    let imageCount: Int
    var generator: SplitMix64
    var step = 0

    /// - Parameter encodings: one grid per output channel (row).
    init(problem: AdaRoundLayerProblem, encodings: [QuantizationEncoding], options: AdaRoundOptions) throws {
        guard encodings.count == problem.outputChannels else {
            throw WhittleError(.invalidArgument, "AdaRound", "\(encodings.count) encodings for \(problem.outputChannels) output channels")
        }
        try options.validate()
        self.problem = problem
        self.options = options
        count = problem.weights.count
        rowScale = encodings.map(\.scale)
        rowLow = encodings.map { Float($0.offset) }
        rowHigh = encodings.map { Float($0.offset + $0.steps) }
        func buffer(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
            p.initialize(repeating: 0, count: max(1, n))
            return p
        }
        paddedCount = (count + 7) / 8 * 8
        floorW = buffer(paddedCount); v = buffer(paddedCount); firstMoment = buffer(paddedCount); secondMoment = buffer(paddedCount)
        soft = buffer(paddedCount); softness = buffer(paddedCount); gradient = buffer(paddedCount)
        softDerivative = buffer(paddedCount); softChain = buffer(paddedCount); sigmoid = buffer(paddedCount)
        elementScale = buffer(paddedCount); elementLow = buffer(paddedCount); elementHigh = buffer(paddedCount)
        let ranges = problem.imageRowRanges
        imageCount = ranges.count
        let widest = ranges.map(\.count).max() ?? 1
        maxBatchRows = min(options.batchImages, imageCount) * min(options.batchPositionsPerImage, widest)
        batchPatches = buffer(problem.groups * maxBatchRows * problem.patchSize)
        batchTargets = buffer(maxBatchRows * problem.outputChannels)
        batchOutput = buffer(maxBatchRows * problem.outputChannels)
        batchRows = .allocate(capacity: max(1, maxBatchRows))
        batchRows.initialize(repeating: 0, count: max(1, maxBatchRows))
        nextBatchRows = .allocate(capacity: max(1, maxBatchRows))
        nextBatchRows.initialize(repeating: 0, count: max(1, maxBatchRows))
        imagePermutation = .allocate(capacity: max(1, imageCount))
        imageStarts = .allocate(capacity: max(1, imageCount))
        imageEnds = .allocate(capacity: max(1, imageCount))
        for (i, range) in ranges.enumerated() {
            (imagePermutation + i).initialize(to: i)
            (imageStarts + i).initialize(to: range.lowerBound)
            (imageEnds + i).initialize(to: range.upperBound)
        }
        rowPermutation = .allocate(capacity: problem.rowCount)
        for r in 0..<problem.rowCount { (rowPermutation + r).initialize(to: r) }
        generator = SplitMix64(seed: options.seed)

        // Initialise V so that h(V) is the fractional part of W / s:
        // V0 = -log((zeta - gamma) / (frac - gamma) - 1).
        let zeta = AdaRoundConstants.zeta, gamma = AdaRoundConstants.gamma
        let k = problem.patchSize
        for o in 0..<problem.outputChannels {
            let s = rowScale[o]
            for i in 0..<k {
                elementScale[o * k + i] = s
                elementLow[o * k + i] = rowLow[o]
                elementHigh[o * k + i] = rowHigh[o]
                let x = problem.weights[o * k + i] / s
                let f = x.rounded(.down)
                floorW[o * k + i] = f
                let frac = x - f
                v[o * k + i] = -log((zeta - gamma) / (frac - gamma) - 1)
            }
        }
    }

    deinit {
        for p in [floorW, v, firstMoment, secondMoment, soft, softness, softDerivative, softChain, sigmoid, gradient,
                  elementScale, elementLow, elementHigh, batchPatches, batchTargets, batchOutput] {
            p.deallocate()
        }
        batchRows.deallocate(); nextBatchRows.deallocate(); imagePermutation.deallocate(); rowPermutation.deallocate()
        imageStarts.deallocate(); imageEnds.deallocate()
    }

    /// The regulariser exponent at iteration `t` of `total`, or nil during the warm start.
    static func beta(iteration t: Int, of total: Int, options: AdaRoundOptions) -> Float? {
        // In float, as AIMET's `warm_start * num_iterations` gives 200 (not 200.000003) for 0.2 * 1000.
        let warm = Double(options.warmStart * Float(total))
        if Double(t) < warm { return nil }
        let span = max(1e-9, Double(total) - warm)
        let relative = (Double(t) - warm) / span
        let start = Double(options.betaStart), end = Double(options.betaEnd)
        return Float(end + 0.5 * (start - end) * (1 + cos(Double.pi * relative)))
    }

    /// Draws a minibatch (`batchImages` distinct images by a partial Fisher-Yates shuffle,
    /// `batchPositionsPerImage` distinct cached rows of each) into `batchRows`; returns its size.
    func sampleBatch() -> Int { sampleBatch(into: batchRows) }

    /// `sampleBatch()` into `rowList` (`maxBatchRows` long).
    func sampleBatch(into rowList: UnsafeMutablePointer<Int>) -> Int {
        let images = min(options.batchImages, imageCount)
        var rows = 0
        for i in 0..<images {
            let j = i + Int(generator.next() % UInt64(imageCount - i))
            let chosen = imagePermutation[j]
            imagePermutation[j] = imagePermutation[i]
            imagePermutation[i] = chosen
            let start = imageStarts[chosen], width = imageEnds[chosen] - start
            let take = min(options.batchPositionsPerImage, width)
            for p in 0..<take {
                let q = p + Int(generator.next() % UInt64(width - p))
                let row = rowPermutation[start + q]
                rowPermutation[start + q] = rowPermutation[start + p]
                rowPermutation[start + p] = row
                rowList[rows] = row
                rows += 1
            }
        }
        return rows
    }

    /// Copies the patches and targets of `rows` rows listed in `rowList` into the batch buffers.
    func gather(_ rowList: UnsafePointer<Int>, _ rows: Int, patches: UnsafePointer<Float>, targets: UnsafePointer<Float>) {
        let k = problem.patchSize, outputs = problem.outputChannels, total = problem.rowCount
        for g in 0..<problem.groups {
            whittle_gather_rows(patches + g * total * k, rowList, rows, k, batchPatches + g * maxBatchRows * k)
        }
        whittle_gather_rows(targets, rowList, rows, outputs, batchTargets)
    }

    /// Starts fetching the rows `gather` will read for `rowList` into cache. The cached rows
    /// (tens of MB for wide layers) are read at random, so without this the gather waits on
    /// memory for every row.
    func prefetch(_ rowList: UnsafePointer<Int>, _ rows: Int, patches: UnsafePointer<Float>, targets: UnsafePointer<Float>) {
        let k = problem.patchSize, total = problem.rowCount
        for g in 0..<problem.groups { whittle_prefetch_rows(patches + g * total * k, rowList, rows, k) }
        whittle_prefetch_rows(targets, rowList, rows, problem.outputChannels)
    }

    /// Soft weights `W~`, `h(V)`, `dh/dV` and `s * 1[low <= floor + h <= high] * dh/dV` from the
    /// current `V`, eight weights at a time (buffers are padded to a multiple of 8).
    func computeSoftWeights() {
        let zeta = AdaRoundConstants.zeta, gamma = AdaRoundConstants.gamma
        let zero = F8(repeating: 0), one = F8(repeating: 1)
        for i in stride(from: 0, to: paddedCount, by: 8) {
            let sigma = one / (one + adaRoundExp8(-load8(v + i)))
            let r = sigma * (zeta - gamma) + gamma
            let h = r.replacing(with: zero, where: r .< zero).replacing(with: one, where: r .> one)
            let derivative = (sigma * (one - sigma) * (zeta - gamma)).replacing(with: 0, where: (r .< 0) .| (r .> 1))
            let low = load8(elementLow + i), high = load8(elementHigh + i), scale = load8(elementScale + i)
            let u = load8(floorW + i) + h
            let clamped = u.replacing(with: low, where: u .< low).replacing(with: high, where: u .> high)
            store8(h, softness + i)
            store8(derivative, softDerivative + i)
            store8(scale * clamped, soft + i)
            store8((scale * derivative).replacing(with: 0, where: (u .< low) .| (u .> high)), softChain + i)
        }
    }

    /// Loss of the minibatch in the batch buffers (`rows` rows) and, in `gradient`, its
    /// derivative with respect to `V`. Returns (reconstruction, regulariser) losses; with
    /// `measure` false they are not accumulated (returned as 0).
    @discardableResult
    func lossAndGradient(rows: Int, beta: Float?, measure: Bool = true) -> (reconstruction: Double, regulariser: Double) {
        let k = problem.patchSize, outputs = problem.outputChannels
        let groups = problem.groups, perGroup = problem.channelsPerGroup
        computeSoftWeights()
        AdaRoundAlgebra.forward(groups: groups, channelsPerGroup: perGroup, patchSize: k, rows: rows,
                                patches: batchPatches, groupStride: maxBatchRows * k, weights: soft, output: batchOutput)
        // Output gradient d = (2 / rows) (f(yhat) - f(y)) f'(yhat), in place of yhat.
        let scale = 2 / Float(max(1, rows))
        var reconstruction: Float = 0
        problem.bias.withUnsafeBufferPointer { bias in
            guard let bias = bias.baseAddress else { return }
            if measure {
                let activation = problem.activation
                for r in 0..<rows {
                    let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                    for o in 0..<outputs {
                        let difference = activation.apply(out[o] + bias[o]) - activation.apply(target[o])
                        reconstruction += difference * difference
                    }
                }
            }
            switch problem.activation {
            case .none:
                for r in 0..<rows {
                    let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                    for o in 0..<outputs { out[o] = scale * (out[o] + bias[o] - target[o]) }
                }
            case .relu:
                for r in 0..<rows {
                    let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                    for o in 0..<outputs {
                        let y = out[o] + bias[o]
                        let t = target[o] > 0 ? target[o] : 0
                        out[o] = y > 0 ? scale * (y - t) : 0
                    }
                }
            case .clip(let low, let high):
                for r in 0..<rows {
                    let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                    for o in 0..<outputs {
                        let y = out[o] + bias[o]
                        let t = min(max(target[o], low), high)
                        out[o] = (y > low && y < high) ? scale * (y - t) : 0
                    }
                }
            }
        }
        AdaRoundAlgebra.weightGradient(groups: groups, channelsPerGroup: perGroup, patchSize: k, rows: rows,
                                       patches: batchPatches, groupStride: maxBatchRows * k,
                                       diff: batchOutput, gradient: gradient)
        // Chain rule to V: dL/dV = dL/dW~ * s * 1[in grid] * dh/dV + lambda * dR/dh * dh/dV, with
        // dR/dh = d/dh (1 - |2h - 1|^beta) = -2 beta |2h - 1|^(beta - 1) sign(2h - 1).
        let lambda = options.regularization
        var regulariser: Float = 0
        if let beta {
            let tiny = F8(repeating: 1e-30), floorLog = F8(repeating: -100)
            let factor = -2 * beta * lambda
            for i in stride(from: 0, to: paddedCount, by: 8) {
                let a = load8(softness + i) * 2 - 1
                let magnitude = a.replacing(with: -a, where: a .< 0)
                let small = magnitude .< tiny
                let logarithm = adaRoundLog8(magnitude.replacing(with: 1, where: small)).replacing(with: floorLog, where: small)
                let power = adaRoundExp8(logarithm * (beta - 1))
                let sign = F8(repeating: 1).replacing(with: -1, where: a .< 0)
                let g = load8(gradient + i) * load8(softChain + i) + factor * power * sign * load8(softDerivative + i)
                store8(g, gradient + i)
            }
            if measure {
                for i in 0..<count {
                    let a = 2 * softness[i] - 1
                    let magnitude = a < 0 ? -a : a
                    regulariser += 1 - (magnitude > 1e-30 ? adaRoundExp(beta * adaRoundLog(magnitude)) : 0)
                }
            }
        } else {
            for i in stride(from: 0, to: paddedCount, by: 8) {
                store8(load8(gradient + i) * load8(softChain + i), gradient + i)
            }
        }
        return (Double(reconstruction) / Double(max(1, rows)), Double(lambda) * Double(regulariser))
    }

    /// One Adam step on `V` with the gradient in `gradient` (torch.optim.Adam defaults:
    /// betas 0.9 / 0.999, eps 1e-8, bias-corrected moments).
    func adamStep() {
        step += 1
        let beta1 = Self.adamBeta1, beta2 = Self.adamBeta2, epsilon = Self.adamEpsilon
        let correction1 = 1 - Float(pow(Double(beta1), Double(step)))
        let correction2 = 1 - Float(pow(Double(beta2), Double(step)))
        let stepSize = options.learningRate / correction1
        let inverseRoot2 = 1 / correction2.squareRoot()
        for i in stride(from: 0, to: paddedCount, by: 8) {
            let g = load8(gradient + i)
            let m = load8(firstMoment + i) * beta1 + g * (1 - beta1)
            let s = load8(secondMoment + i) * beta2 + g * g * (1 - beta2)
            store8(m, firstMoment + i)
            store8(s, secondMoment + i)
            store8(load8(v + i) - stepSize * m / (adaRoundSquareRoot8(s) * inverseRoot2 + epsilon), v + i)
        }
    }

    /// Runs `iterations` iterations; checks cancellation and reports every `checkInterval`.
    ///
    /// Each iteration: gather a minibatch, forward GEMM with the soft weights, output
    /// gradient, weight-gradient GEMM, then one fused elementwise pass (`fusedUpdate`: chain
    /// rule to `V`, regulariser, Adam, and the next soft weights). The same arithmetic as
    /// `lossAndGradient` + `adamStep`, in one pass over the weights instead of three. The next
    /// minibatch is drawn right after this one is gathered (the same draws in the same order
    /// as `runReference`) so its rows can be prefetched while this iteration computes.
    ///
    /// - Parameter parallelChannels: with BLAS on one thread, split each iteration of a large
    ///   ungrouped layer over two threads by output channels (all of an iteration's work after
    ///   the gather is independent per output channel: the forward column, its output gradient,
    ///   its weight-gradient row and the update of its weights), one hand-off per iteration.
    ///   Otherwise only the elementwise pass of large layers is split.
    func run(iterations: Int, job: JobContext, phase: String, detail: String?, parallelChannels: Bool = false) throws {
        let k = problem.patchSize, outputs = problem.outputChannels
        let groups = problem.groups, perGroup = problem.channelsPerGroup
        refreshSoftWeights()
        // The fused update leaves `gradient` zero for the next weight-gradient product to
        // accumulate into; start from zeros too (the reference loop may have left a gradient).
        gradient.update(repeating: 0, count: paddedCount)
        let threads = EngineThreads.count
        // Split by channels when the per-iteration products (2 x rows x O x K multiply-adds)
        // are worth a thread hand-off (a few microseconds).
        let channelParts = parallelChannels && threads > 1 && groups == 1 && outputs >= 16
            && maxBatchRows * outputs * k >= 1 << 19 ? 2 : 1
        // Otherwise: elements per parallel chunk of the elementwise pass (a multiple of 8);
        // small layers run on the calling thread.
        let chunk = 4096
        let chunks = (paddedCount + chunk - 1) / chunk
        try problem.patches.withUnsafeBufferPointer { patches in
            try problem.targets.withUnsafeBufferPointer { targets in
                try problem.bias.withUnsafeBufferPointer { bias in
                    guard let patches = patches.baseAddress, let targets = targets.baseAddress,
                          let bias = bias.baseAddress, iterations > 0 else { return }
                    var current = batchRows, next = nextBatchRows
                    var rows = sampleBatch(into: current)
                    for t in 0..<iterations {
                        if t % options.checkInterval == 0 {
                            try job.checkCancellation(phase)
                            job.report(phase: phase, completed: t, total: iterations, detail: detail)
                        }
                        gather(current, rows, patches: patches, targets: targets)
                        let nextRows = t + 1 < iterations ? sampleBatch(into: next) : 0
                        prefetch(next, nextRows, patches: patches, targets: targets)
                        step += 1
                        let constants = stepConstants(beta: Self.beta(iteration: t, of: iterations, options: options))
                        if channelParts > 1 {
                            let batchRows = rows
                            parallelFor(channelParts) { part in
                                let channels = (part * outputs / channelParts)..<((part + 1) * outputs / channelParts)
                                self.iterate(channels: channels, rows: batchRows, bias: bias, constants)
                            }
                        } else {
                            AdaRoundAlgebra.forward(groups: groups, channelsPerGroup: perGroup, patchSize: k, rows: rows,
                                                    patches: batchPatches, groupStride: maxBatchRows * k, weights: soft, output: batchOutput)
                            outputGradient(rows: rows, bias: bias, channels: 0..<outputs)
                            AdaRoundAlgebra.weightGradient(groups: groups, channelsPerGroup: perGroup, patchSize: k, rows: rows,
                                                           patches: batchPatches, groupStride: maxBatchRows * k,
                                                           diff: batchOutput, gradient: gradient, gradientIsZero: true)
                            if chunks >= 4 && threads > 1 {
                                parallelFor(chunks, grain: 2) { c in
                                    self.fusedUpdate(from: c * chunk, to: Swift.min(self.paddedCount, (c + 1) * chunk), constants)
                                }
                            } else {
                                fusedUpdate(from: 0, to: paddedCount, constants)
                            }
                        }
                        swap(&current, &next)
                        rows = nextRows
                    }
                }
            }
        }
    }

    /// One iteration's work after the gather for output `channels` of an ungrouped layer:
    /// the forward columns, their output gradient, the weight-gradient rows (single-threaded
    /// BLAS calls, accumulating into the zeros the previous update left) and the fused update
    /// of those rows' weights (the last part also takes the inert padding).
    func iterate(channels: Range<Int>, rows: Int, bias: UnsafePointer<Float>, _ constants: whittle_adaround_step) {
        let k = problem.patchSize, outputs = problem.outputChannels
        let first = channels.lowerBound
        cblas_sgemm_rowMajor(transA: false, transB: true, m: rows, n: channels.count, k: k, a: batchPatches, lda: k,
                             b: soft + first * k, ldb: k, c: batchOutput + first, ldc: outputs)
        outputGradient(rows: rows, bias: bias, channels: channels)
        cblas_sgemm_rowMajor(transA: true, transB: false, m: channels.count, n: k, k: rows, a: batchOutput + first, lda: outputs,
                             b: batchPatches, ldb: k, c: gradient + first * k, ldc: k, accumulate: true)
        fusedUpdate(from: first * k, to: channels.upperBound == outputs ? paddedCount : channels.upperBound * k, constants)
    }

    /// The reference iteration loop (three passes: soft weights, loss and gradient, Adam);
    /// `run` must produce the same `V` (tests compare them).
    func runReference(iterations: Int) {
        problem.patches.withUnsafeBufferPointer { patches in
            problem.targets.withUnsafeBufferPointer { targets in
                guard let patches = patches.baseAddress, let targets = targets.baseAddress else { return }
                for t in 0..<iterations {
                    let rows = sampleBatch()
                    gather(batchRows, rows, patches: patches, targets: targets)
                    lossAndGradient(rows: rows, beta: Self.beta(iteration: t, of: iterations, options: options), measure: false)
                    adamStep()
                }
            }
        }
    }

    /// torch.optim.Adam's defaults (betas 0.9 / 0.999, eps 1e-8), as AIMET uses them.
    static let adamBeta1: Float = 0.9
    static let adamBeta2: Float = 0.999
    static let adamEpsilon: Float = 1e-8

    /// The constants of one fused step at the current `step`: the regulariser exponent (nil
    /// during the warm start), Adam's bias-corrected step size and `1 / sqrt(1 - beta2^t)`.
    func stepConstants(beta: Float?) -> whittle_adaround_step {
        let correction1 = 1 - Float(pow(Double(Self.adamBeta1), Double(step)))
        let correction2 = 1 - Float(pow(Double(Self.adamBeta2), Double(step)))
        return whittle_adaround_step(
            zeta: AdaRoundConstants.zeta, gamma: AdaRoundConstants.gamma, regularised: beta == nil ? 0 : 1,
            beta: beta ?? 0, regularization: options.regularization,
            beta1: Self.adamBeta1, beta2: Self.adamBeta2, epsilon: Self.adamEpsilon,
            step_size: options.learningRate / correction1, inverse_root2: 1 / correction2.squareRoot())
    }

    /// Replaces the forward output `batchOutput` (`rows x O`, before bias) of `channels` by
    /// the output gradient `(2 / rows) (f(yhat) - f(y)) f'(yhat)`, as `lossAndGradient` does.
    func outputGradient(rows: Int, bias: UnsafePointer<Float>, channels: Range<Int>) {
        let outputs = problem.outputChannels
        let scale = 2 / Float(max(1, rows))
        switch problem.activation {
        case .none:
            for r in 0..<rows {
                let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                for o in channels { out[o] = scale * (out[o] + bias[o] - target[o]) }
            }
        case .relu:
            for r in 0..<rows {
                let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                for o in channels {
                    let y = out[o] + bias[o]
                    let t = target[o] > 0 ? target[o] : 0
                    out[o] = y > 0 ? scale * (y - t) : 0
                }
            }
        case .clip(let low, let high):
            for r in 0..<rows {
                let out = batchOutput + r * outputs, target = batchTargets + r * outputs
                for o in channels {
                    let y = out[o] + bias[o]
                    let t = min(max(target[o], low), high)
                    out[o] = (y > low && y < high) ? scale * (y - t) : 0
                }
            }
        }
    }

    /// `sigmoid` and `soft` from the current `V` (before the first fused iteration).
    func refreshSoftWeights() {
        let zeta = AdaRoundConstants.zeta, gamma = AdaRoundConstants.gamma
        let zero = F8(repeating: 0), one = F8(repeating: 1)
        for i in stride(from: 0, to: paddedCount, by: 8) {
            let sigma = one / (one + adaRoundExp8(-load8(v + i)))
            let r = sigma * (zeta - gamma) + gamma
            let h = r.replacing(with: zero, where: r .< zero).replacing(with: one, where: r .> one)
            let low = load8(elementLow + i), high = load8(elementHigh + i)
            let u = load8(floorW + i) + h
            store8(sigma, sigmoid + i)
            store8(load8(elementScale + i) * u.replacing(with: low, where: u .< low).replacing(with: high, where: u .> high), soft + i)
        }
    }

    /// Elements `[start, end)` of one fused step, with `gradient` holding `dL/dW~`: chain rule
    /// to `V` (plus the regulariser's gradient when `constants.regularised`), the Adam update
    /// of `V` (`step` already advanced) and the new `sigmoid` and soft weights
    /// (`whittle_adaround_update`; the math is spelled out in CWhittleKernels.h).
    func fusedUpdate(from start: Int, to end: Int, _ constants: whittle_adaround_step) {
        var buffers = whittle_adaround_buffers(
            v: v, first_moment: firstMoment, second_moment: secondMoment, sigmoid: sigmoid, soft: soft,
            gradient: gradient, floor_w: floorW, scale: elementScale, low: elementLow, high: elementHigh)
        var constants = constants
        whittle_adaround_update(&buffers, &constants, start, end)
    }

    /// Hard-rounded weights: `h = 1[V >= 0]`.
    func hardWeights() -> [Float] {
        var result = [Float](repeating: 0, count: count)
        let k = problem.patchSize
        for o in 0..<problem.outputChannels {
            for i in 0..<k {
                let index = o * k + i
                var u = floorW[index] + (v[index] >= 0 ? 1 : 0)
                u = min(max(u, rowLow[o]), rowHigh[o])
                result[index] = rowScale[o] * u
            }
        }
        return result
    }

    /// Weights rounded to nearest (ties to even, clamped), as `QuantizationGrid` does.
    func nearestWeights() -> [Float] {
        var result = [Float](repeating: 0, count: count)
        let k = problem.patchSize
        for o in 0..<problem.outputChannels {
            let s = rowScale[o]
            for i in 0..<k {
                let x = min(max(problem.weights[o * k + i] / s, rowLow[o]), rowHigh[o])
                result[o * k + i] = s * x.rounded(.toNearestOrEven)
            }
        }
        return result
    }
}

extension AdaRound {
    /// Optimises the rounding of one layer problem.
    ///
    /// - Parameters:
    ///   - encodings: one grid per output channel (repeat a per-tensor grid).
    ///   - iterations: nil: `options.iterations`, else AIMET's default for the smallest bit width.
    public static func optimize(_ problem: AdaRoundLayerProblem, encodings: [QuantizationEncoding],
                                options: AdaRoundOptions = AdaRoundOptions(), job: JobContext = .silent,
                                detail: String? = nil) throws -> AdaRoundLayerOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        let optimizer = try AdaRoundOptimizer(problem: problem, encodings: encodings, options: options)
        // The per-iteration GEMMs are small: OpenBLAS's thread hand-off costs more than it saves
        // (and much more on a loaded machine), so they run on one thread; restored afterwards.
        // Large ungrouped layers then split each iteration over the engine's threads by output
        // channels instead (`run(parallelChannels:)`).
        let singleThreaded = optimizer.maxBatchRows * problem.outputChannels * problem.patchSize < (1 << 22)
        if singleThreaded { openblas_set_num_threads(1) }
        defer { if singleThreaded { openblas_set_num_threads(Int32(EngineThreads.count)) } }
        let smallest = encodings.map(\.bitWidth).min() ?? 8
        let iterations = options.iterations ?? AdaRoundOptions.defaultIterations(bitWidth: smallest)
        try optimizer.run(iterations: iterations, job: job, phase: "AdaRound", detail: detail, parallelChannels: singleThreaded)
        let hard = optimizer.hardWeights()
        let nearest = optimizer.nearestWeights()
        let changed = zip(hard, nearest).filter { $0 != $1 }.count
        let elapsed = clock.now - start
        return AdaRoundLayerOutcome(
            weights: hard, lossNearest: problem.reconstructionLoss(weights: nearest),
            lossAdaRound: problem.reconstructionLoss(weights: hard), iterations: iterations,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
            changedShare: Double(changed) / Double(max(1, hard.count)))
    }
}

// MARK: Vectorisable exp and log

typealias F8 = SIMD8<Float>

@inline(__always)
func load8(_ pointer: UnsafePointer<Float>) -> F8 { UnsafeRawPointer(pointer).loadUnaligned(as: F8.self) }

@inline(__always)
func load8(_ pointer: UnsafeMutablePointer<Float>) -> F8 { UnsafeRawPointer(pointer).loadUnaligned(as: F8.self) }

@inline(__always)
func store8(_ value: F8, _ pointer: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: F8.self) }

/// Square root of eight non-negative lanes without a library call (`SIMD8.squareRoot()`
/// runs lane by lane through `sqrtf` on the baseline x86-64 target): `x * rsqrt(x)`, the
/// reciprocal square root from the exponent-halving bit trick refined by three Newton steps
/// `y (3 - x y^2) / 2` (relative error about 2e-7); 0 gives 0.
@inline(__always)
func adaRoundSquareRoot8(_ x: F8) -> F8 {
    let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
    var y = unsafeBitCast(Int32(0x5F37_59DF) &- (bits &>> 1), to: F8.self)
    let half = x * 0.5
    y = y * (1.5 - half * y * y)
    y = y * (1.5 - half * y * y)
    y = y * (1.5 - half * y * y)
    return x * y
}

/// `adaRoundExp` on eight lanes.
@inline(__always)
func adaRoundExp8(_ x: F8) -> F8 {
    let clamped = x.replacing(with: -87, where: x .< -87).replacing(with: 88, where: x .> 88)
    let magic: Float = 12_582_912
    let shifted = clamped * 1.442_695_04 + magic
    let n = shifted - magic
    let r = (clamped - n * 0.693_359_375) + n * 2.121_944_4e-4
    var p = F8(repeating: 1.0 / 720)
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let exponent = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- Int32(bitPattern: magic.bitPattern)
    return p * unsafeBitCast((exponent &+ 127) &<< 23, to: F8.self)
}

/// `adaRoundLog` on eight lanes (positive normal inputs).
@inline(__always)
func adaRoundLog8(_ x: F8) -> F8 {
    let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
    var exponent = ((bits &>> 23) & 0xFF) &- 127
    var mantissa = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F80_0000, to: F8.self)
    let large = mantissa .> 1.414_213_5
    mantissa.replace(with: mantissa * 0.5, where: large)
    exponent.replace(with: exponent &+ 1, where: large)
    let t = (mantissa - 1) / (mantissa + 1)
    let t2 = t * t
    var series = F8(repeating: 1.0 / 9)
    series = series * t2 + 1.0 / 7
    series = series * t2 + 1.0 / 5
    series = series * t2 + 1.0 / 3
    series = series * t2 + 1
    return 2 * t * series + F8(exponent) * 0.693_147_18
}

/// `e^x` without a library call so loops using it vectorise: `x = n ln2 + r`, `e^r` by a
/// degree-6 polynomial (relative error about 1e-7 on |r| <= ln2/2), `2^n` in exponent bits.
/// Inputs are clamped to [-87, 88] (so `e^-inf` gives about 1.6e-38, not 0).
@inline(__always)
func adaRoundExp(_ x: Float) -> Float {
    let clamped = x < -87 ? -87 : (x > 88 ? 88 : x)
    let magic: Float = 12_582_912
    let shifted = clamped * 1.442_695_04 + magic
    let n = shifted - magic
    let r = (clamped - n * 0.693_359_375) + n * 2.121_944_4e-4
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let exponent = Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: magic.bitPattern)
    return p * Float(bitPattern: UInt32(bitPattern: (exponent &+ 127) &<< 23))
}

/// Natural logarithm of a positive normal float without a library call: exponent bits plus
/// `log(m) = 2 atanh((m - 1) / (m + 1))` on a mantissa `m` in [sqrt(1/2), sqrt(2)) (series to
/// t^9, error below 1e-7).
@inline(__always)
func adaRoundLog(_ x: Float) -> Float {
    let bits = Int32(bitPattern: x.bitPattern)
    var exponent = ((bits &>> 23) & 0xFF) &- 127
    var mantissa = Float(bitPattern: UInt32(bitPattern: (bits & 0x007F_FFFF) | 0x3F80_0000))
    let large = mantissa > 1.414_213_5
    mantissa = large ? mantissa * 0.5 : mantissa
    exponent = large ? exponent &+ 1 : exponent
    let t = (mantissa - 1) / (mantissa + 1)
    let t2 = t * t
    var series: Float = 1.0 / 9
    series = series * t2 + 1.0 / 7
    series = series * t2 + 1.0 / 5
    series = series * t2 + 1.0 / 3
    series = series * t2 + 1
    return 2 * t * series + Float(exponent) * 0.693_147_18
}

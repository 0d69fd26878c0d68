import COpenBLAS
import WhittleEngine

/// Data-aware SVD truncation: the rank-`k` factorisation that is best for the layer's
/// OUTPUT on real inputs, not for its weight.
///
/// Plain truncated SVD minimises ‖M − M_k‖_F, which treats every input direction as equally
/// loud. After BatchNorm folding and ReLU/ReLU6 the inputs of a layer are far from that:
/// channels are dead (always 0), carry large positive means, or differ in scale by orders of
/// magnitude, so a small singular direction of the weight can carry most of the output
/// (EfficientNet-Lite0's `block0.project/Conv`: rank 9 of 16 keeps 8 % top-1 agreement
/// plain, 72 % whitened). With G = E[p pᵀ] the second moment of the factor's input patch p
/// and S any matrix with SᵀS = G, E‖(M − M_k)ᵀ p‖² = ‖S (M − M_k)‖²_F, so the optimum is
/// M_k = S⁻¹ · (rank-k SVD of S·M). Using G = V diag(e) Vᵀ: S = diag(√e) Vᵀ,
/// S⁻¹ = V diag(1/√e). A ridge of `ridge` · mean(e) on e keeps S invertible when inputs have
/// dead directions.
struct SVDWhitening: Sendable {
    /// S, row-major dim x dim.
    var forward: [Float]
    /// S⁻¹, row-major dim x dim.
    var inverse: [Float]
    var dimension: Int

    static let ridge: Double = 1e-3
    /// Sampled patches per image: at least this many, and at least 2·dim over all images.
    static let patchesPerImage = 16

    /// The patch a factor's first half reads: a vertical window (spatial SVD, C_in·kH values
    /// at output row, input column), one pixel's channels (weight SVD), or the feature vector (Gemm).
    enum Patch {
        case vertical(ConvLayer)
        case pixel(ConvLayer)
        case features(Int)
    }

    /// Estimates G from `inputs` run through `graph` up to tensor `source` and returns S, S⁻¹.
    static func estimate(graph: Graph, source: String, patch: Patch, inputs: [String: Tensor], batchSize: Int,
                         seed: String, activations: ActivationSource? = nil, job: JobContext) throws -> SVDWhitening {
        let dim: Int, positions: Int
        switch patch {
        case .vertical(let conv):
            dim = conv.inChannels * conv.kernel.h
            positions = conv.outputShape[2] * conv.inputShape[3]
        case .pixel(let conv):
            dim = conv.inChannels
            positions = conv.inputShape[2] * conv.inputShape[3]
        case .features(let count):
            dim = count
            positions = 1
        }
        // The images' values of `source`: read straight from the reference activations when
        // the compression left them unchanged, else computed by running the prefix.
        var stored: Tensor?
        var run: (graph: Graph, inputs: [String: Tensor])?
        switch try activations?.prefix(for: source, of: graph) {
        case .stored(let values)?: stored = values
        case .run(let suffix, let cut)?: run = (suffix, cut)
        case nil: run = (graph.prefix(computing: source), inputs)
        }
        let runner = try run.map { try BatchRunner(graph: $0.graph, batchSize: batchSize) }
        let images: Int
        if let stored { images = stored.rank >= 1 ? stored.shape[0] : 0 }
        else if let runner, let run { images = try runner.validate(inputs: run.inputs) }
        else { images = 0 }
        guard images > 0, dim > 0, positions > 0 else {
            throw WhittleError(.invalidData, "reconstruction data", "holds no samples")
        }
        let perImage = min(positions, max(patchesPerImage, (2 * dim + images - 1) / images))
        var random = SplitMix64(seed: seed.utf8.reduce(0x84222325_CBF29CE4) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
        var pool = Array(0..<positions)
        let rows = images * perImage
        var x = [Float](repeating: 0, count: rows * dim)
        var row = 0
        // Samples `perImage` patches of each of `count` consecutive images of `buffer`.
        func sample(_ buffer: UnsafeBufferPointer<Float>, images count: Int) throws {
            guard count > 0, buffer.count % count == 0 else {
                throw WhittleError(.invalidModel, "tensor '\(source)'", "has no batch dimension to sample for SVD whitening")
            }
            let perSample = buffer.count / count
            for offset in 0..<count {
                let base = offset * perSample
                for slot in 0..<perImage {
                    pool.swapAt(slot, slot + Int(random.next() % UInt64(positions - slot)))
                }
                for slot in 0..<perImage {
                    let position = pool[slot]
                    let rowBase = row * dim
                    switch patch {
                    case .vertical(let conv):
                        let h = conv.inputShape[2], w = conv.inputShape[3]
                        let oy = position / w, ix = position % w
                        for c in 0..<conv.inChannels {
                            for i in 0..<conv.kernel.h {
                                let iy = oy * conv.strides.h + i * conv.dilations.h - conv.pads.top
                                if iy >= 0, iy < h { x[rowBase + c * conv.kernel.h + i] = buffer[base + (c * h + iy) * w + ix] }
                            }
                        }
                    case .pixel(let conv):
                        let area = conv.inputShape[2] * conv.inputShape[3]
                        for c in 0..<conv.inChannels { x[rowBase + c] = buffer[base + c * area + position] }
                    case .features(let count):
                        for c in 0..<count { x[rowBase + c] = buffer[base + c] }
                    }
                    row += 1
                }
            }
        }
        if let stored {
            try stored.floats.withUnsafeBufferPointer { try sample($0, images: images) }
        } else if let runner, let run {
            try runner.forEachBatch(inputs: run.inputs, shouldStop: { job.isCancelled }) { batch, plan in
                guard let buffer = plan.outputBuffer(source), let info = plan.info(source), info.count <= buffer.count else {
                    throw WhittleError(.invalidModel, "tensor '\(source)'", "not readable during SVD whitening")
                }
                try sample(UnsafeBufferPointer(rebasing: buffer[0..<info.count]), images: batch.count)
            }
        }
        try job.checkCancellation("SVD whitening")
        // G = XᵀX / rows.
        var gram = [Float](repeating: 0, count: dim * dim)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(dim), Int32(dim), Int32(rows),
                    1 / Float(max(1, rows)), x, Int32(dim), x, Int32(dim), 0, &gram, Int32(dim))
        // G is symmetric positive semi-definite: G = U diag(e) Uᵀ (`ssyevd_`, eigenvalues descending).
        let (u, e) = try LinearAlgebra.symmetricEigen(gram, dimension: dim)
        let mean = e.reduce(0.0) { $0 + Double($1) } / Double(dim)
        let lift = Float(ridge * max(mean, 1e-12))
        var forward = [Float](repeating: 0, count: dim * dim)
        var inverse = [Float](repeating: 0, count: dim * dim)
        for r in 0..<dim {
            let root = (max(e[r], 0) + lift).squareRoot()
            for c in 0..<dim {
                forward[r * dim + c] = root * u[c * dim + r]
                inverse[c * dim + r] = u[c * dim + r] / root
            }
        }
        return SVDWhitening(forward: forward, inverse: inverse, dimension: dim)
    }

    /// Rank-`rank` factors of the row-major `rows x cols` matrix M (rows = this whitening's
    /// dimension): `left` rows x rank and `right` rank x cols (both row-major) with
    /// left · right ≈ M, singular values split as `left` gets σ^`leftPower`, `right` the rest.
    /// Without whitening this is the plain truncated SVD.
    static func factors(_ matrix: [Float], rows: Int, cols: Int, rank: Int, whitening: SVDWhitening?,
                        leftPower: Float) throws -> (left: [Float], right: [Float]) {
        try Decomposition(matrix, rows: rows, cols: cols, whitening: whitening, leftPower: leftPower).factors(rank: rank)
    }

    /// The (whitened) SVD of a weight matrix, computed once, from which the factors of every
    /// rank are read (a score table asks for several ranks of the same layer).
    struct Decomposition: Sendable {
        var rows: Int
        var cols: Int
        var leftPower: Float
        private var u: [Float]
        private var s: [Float]
        private var vt: [Float]
        private var inverse: [Float]?

        /// SVD of S·M (S the whitening's forward matrix; M itself without whitening).
        init(_ matrix: [Float], rows: Int, cols: Int, whitening: SVDWhitening?, leftPower: Float) throws {
            var target = matrix
            if let whitening {
                guard whitening.dimension == rows else {
                    throw WhittleError(.numerical, "SVD whitening", "dimension \(whitening.dimension) does not match \(rows) rows")
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(rows), 1,
                            whitening.forward, Int32(rows), matrix, Int32(cols), 0, &target, Int32(cols))
            }
            (u, s, vt) = try LinearAlgebra.svd(target, rows: rows, cols: cols)
            self.rows = rows
            self.cols = cols
            self.leftPower = leftPower
            inverse = whitening?.inverse
        }

        /// Rank-`rank` factors: `left` rows x rank and `right` rank x cols, row-major.
        func factors(rank: Int) -> (left: [Float], right: [Float]) {
            let full = min(rows, cols)
            var left = [Float](repeating: 0, count: rows * rank)
            var right = [Float](repeating: 0, count: rank * cols)
            for r in 0..<min(rank, full) {
                let sigma = max(s[r], 0)
                let leftScale = leftPower == 0 ? 1 : (leftPower == 1 ? sigma : sigma.squareRoot())
                let rightScale = leftPower == 0 ? sigma : (leftPower == 1 ? 1 : sigma.squareRoot())
                for row in 0..<rows { left[row * rank + r] = u[row * full + r] * leftScale }
                for column in 0..<cols { right[r * cols + column] = rightScale * vt[r * cols + column] }
            }
            if let inverse {
                var unwhitened = [Float](repeating: 0, count: rows * rank)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(rank), Int32(rows), 1,
                            inverse, Int32(rows), left, Int32(rank), 0, &unwhitened, Int32(rank))
                left = unwhitened
            }
            return (left, right)
        }
    }
}

import WhittleEngine

/// Spatial and weight SVD (AIMET's `lingalg_spatial_svd` / `lingalg_weight_svd`, see
/// aimet.md 2.3-2.4): one Conv or Gemm becomes two whose product is the rank-`k`
/// truncation of the original weight.
enum SVDSplitting {
    /// MACs (batch 1) one unit of rank costs after splitting, and the largest useful rank.
    ///
    /// Spatial SVD, weight (n, m, kh, kw): first conv (k, m, kh, 1) runs at output height and
    /// full input width, second (n, k, 1, kw) at the output size:
    ///   MACs(k) = k · (m·kh·H_out·W_in + n·kw·H_out·W_out),  max rank min(m·kh, n·kw).
    /// Weight SVD: first 1x1 conv (k, m, 1, 1) at input resolution, second (n, k, kh, kw) with
    /// the original window: MACs(k) = k · (m·H_in·W_in + n·kh·kw·H_out·W_out), max rank
    /// min(m, n·kh·kw). AIMET writes W_in as W_out·stride_w (and H_in·W_in as
    /// H_out·W_out·s_h·s_w), equal for "same"-padded convs; Whittle uses the exact sizes so the
    /// formula equals the cost of the graph it builds.
    /// Gemm (both techniques): MACs(k) = k · (K + N).
    static func convCost(_ layer: ConvLayer, technique: CompressionTechnique) -> (perRank: Int, maxRank: Int) {
        let m = layer.inChannels, n = layer.outChannels
        let (kh, kw) = layer.kernel
        let hIn = layer.inputShape[2], wIn = layer.inputShape[3]
        let hOut = layer.outputShape[2], wOut = layer.outputShape[3]
        if technique == .weightSVD {
            return (m * hIn * wIn + n * kh * kw * hOut * wOut, min(m, n * kh * kw))
        }
        return (m * kh * hOut * wIn + n * kw * hOut * wOut, min(m * kh, n * kw))
    }

    static func gemmCost(_ layer: GemmLayer) -> (perRank: Int, maxRank: Int) {
        (layer.inFeatures + layer.outFeatures, min(layer.inFeatures, layer.outFeatures))
    }

    /// AIMET's rank search: the largest rank whose cost is at most `ratio` times the
    /// original (at least 1), then rounded up to a multiple of `multiplicity`, never above
    /// the full rank.
    static func rank(ratio: Double, originalMACs: Int, perRank: Int, maxRank: Int, multiplicity: Int) -> Int {
        let budget = ratio * Double(originalMACs)
        var rank = perRank > 0 ? Int((budget / Double(perRank) + 1e-9).rounded(.down)) : maxRank
        rank = min(max(rank, 1), maxRank)
        let step = max(1, multiplicity)
        rank = (rank + step - 1) / step * step
        return min(rank, maxRank)
    }

    /// Replaces the Conv by its rank-`rank` split; returns the two new node names. The second
    /// node writes the original output tensor and reads the original bias.
    ///
    /// With `whitening` (estimated on the first factor's input patches, see `SVDWhitening`)
    /// the truncation minimises the output error on that data instead of the weight error.
    static func splitConv(_ editor: inout GraphEditor, layer: ConvLayer, technique: CompressionTechnique,
                          rank: Int, whitening: SVDWhitening? = nil) throws -> [String] {
        try splitConv(&editor, layer: layer, technique: technique, rank: rank,
                      decomposition: decompose(layer, technique: technique, whitening: whitening))
    }

    /// The (whitened) SVD a Conv's split truncates: of M[(c, i), (o, j)] = W[o, c, i, j]
    /// ((m·kh) x (n·kw)) for spatial SVD, of M[c, (o, i, j)] (m x (n·kh·kw)) for weight SVD.
    static func decompose(_ layer: ConvLayer, technique: CompressionTechnique,
                          whitening: SVDWhitening?) throws -> SVDWhitening.Decomposition {
        let n = layer.outChannels, m = layer.inChannels
        let (kh, kw) = layer.kernel
        let w = layer.weight.floats
        if technique == .spatialSVD {
            let rows = m * kh, cols = n * kw
            var matrix = [Float](repeating: 0, count: rows * cols)
            for o in 0..<n { for c in 0..<m { for i in 0..<kh { for j in 0..<kw {
                matrix[(c * kh + i) * cols + o * kw + j] = w[((o * m + c) * kh + i) * kw + j]
            } } } }
            return try SVDWhitening.Decomposition(matrix, rows: rows, cols: cols, whitening: whitening, leftPower: 0.5)
        }
        let rows = m, cols = n * kh * kw
        var matrix = [Float](repeating: 0, count: rows * cols)
        for o in 0..<n { for c in 0..<m { for t in 0..<(kh * kw) {
            matrix[c * cols + o * kh * kw + t] = w[(o * m + c) * kh * kw + t]
        } } }
        return try SVDWhitening.Decomposition(matrix, rows: rows, cols: cols, whitening: whitening, leftPower: 0)
    }

    /// `splitConv` with the rank-`rank` factors of a decomposition from `decompose`.
    static func splitConv(_ editor: inout GraphEditor, layer: ConvLayer, technique: CompressionTechnique,
                          rank: Int, decomposition: SVDWhitening.Decomposition) throws -> [String] {
        let n = layer.outChannels, m = layer.inChannels
        let (kh, kw) = layer.kernel
        let name = layer.node.name
        var first: [Float], second: [Float], firstShape: [Int], secondShape: [Int]
        var firstAttributes: [String: Attribute], secondAttributes: [String: Attribute]
        let p = layer.pads
        let (left, right) = decomposition.factors(rank: rank)
        if technique == .spatialSVD {
            let cols = n * kw
            first = [Float](repeating: 0, count: rank * m * kh)
            second = [Float](repeating: 0, count: n * rank * kw)
            for r in 0..<rank {
                for c in 0..<m { for i in 0..<kh { first[(r * m + c) * kh + i] = left[(c * kh + i) * rank + r] } }
                for o in 0..<n { for j in 0..<kw { second[(o * rank + r) * kw + j] = right[r * cols + o * kw + j] } }
            }
            firstShape = [rank, m, kh, 1]
            secondShape = [n, rank, 1, kw]
            firstAttributes = ConvLayer.attributes(kernel: (kh, 1), strides: (layer.strides.h, 1),
                                                   dilations: (layer.dilations.h, 1), pads: (p.top, 0, p.bottom, 0))
            secondAttributes = ConvLayer.attributes(kernel: (1, kw), strides: (1, layer.strides.w),
                                                    dilations: (1, layer.dilations.w), pads: (0, p.left, 0, p.right))
        } else {
            let cols = n * kh * kw
            first = [Float](repeating: 0, count: rank * m)
            second = [Float](repeating: 0, count: n * rank * kh * kw)
            for r in 0..<rank {
                for c in 0..<m { first[r * m + c] = left[c * rank + r] }
                for o in 0..<n { for t in 0..<(kh * kw) { second[(o * rank + r) * kh * kw + t] = right[r * cols + o * kh * kw + t] } }
            }
            firstShape = [rank, m, 1, 1]
            secondShape = [n, rank, kh, kw]
            firstAttributes = ConvLayer.attributes(kernel: (1, 1), strides: (1, 1), dilations: (1, 1), pads: (0, 0, 0, 0))
            secondAttributes = ConvLayer.attributes(kernel: (kh, kw), strides: (layer.strides.h, layer.strides.w),
                                                    dilations: (layer.dilations.h, layer.dilations.w),
                                                    pads: (p.top, p.left, p.bottom, p.right))
        }
        let firstName = editor.freshName(name + "_svd_a")
        let secondName = editor.freshName(name + "_svd_b")
        let middle = editor.freshName(firstName + ".output")
        let firstWeight = editor.addInitializer(firstName + ".weight", Tensor(shape: firstShape, floats: first))
        let secondWeight = editor.addInitializer(secondName + ".weight", Tensor(shape: secondShape, floats: second))
        guard let input = layer.node.input(0) else { throw WhittleError(.invalidModel, name, "Conv has no input") }
        var secondInputs = [middle, secondWeight]
        if let bias = layer.node.input(2) { secondInputs.append(bias) }
        let nodes = [
            Node(name: firstName, opType: "Conv", inputs: [input, firstWeight], outputs: [middle], attributes: firstAttributes),
            Node(name: secondName, opType: "Conv", inputs: secondInputs, outputs: layer.node.outputs, attributes: secondAttributes),
        ]
        editor.replaceNode(layer.nodeIndex, with: nodes)
        return [firstName, secondName]
    }

    /// Replaces the Gemm by two Gemms: A · U_k√Σ_k then · √Σ_k V_kᵀ (spatial; weight SVD puts
    /// Σ_k wholly on the second factor, as AIMET does), alpha folded into the factors, the
    /// original C and beta on the second, which writes the original output tensor.
    /// `whitening` as for `splitConv`, on the Gemm's input features.
    static func splitGemm(_ editor: inout GraphEditor, layer: GemmLayer, technique: CompressionTechnique,
                          rank: Int, whitening: SVDWhitening? = nil) throws -> [String] {
        try splitGemm(&editor, layer: layer, technique: technique, rank: rank,
                      decomposition: decompose(layer, technique: technique, whitening: whitening))
    }

    /// The (whitened) SVD of a Gemm's B' [K, N_out] that its split truncates.
    static func decompose(_ layer: GemmLayer, technique: CompressionTechnique,
                          whitening: SVDWhitening?) throws -> SVDWhitening.Decomposition {
        try SVDWhitening.Decomposition(layer.weight, rows: layer.inFeatures, cols: layer.outFeatures, whitening: whitening,
                                       leftPower: technique == .weightSVD ? 0 : 0.5)
    }

    /// `splitGemm` with the rank-`rank` factors of a decomposition from `decompose`.
    static func splitGemm(_ editor: inout GraphEditor, layer: GemmLayer, technique: CompressionTechnique,
                          rank: Int, decomposition: SVDWhitening.Decomposition) throws -> [String] {
        let k = layer.inFeatures, n = layer.outFeatures
        let (first, second) = decomposition.factors(rank: rank)
        let name = layer.node.name
        let firstName = editor.freshName(name + "_svd_a")
        let secondName = editor.freshName(name + "_svd_b")
        let middle = editor.freshName(firstName + ".output")
        let firstWeight = editor.addInitializer(firstName + ".weight", Tensor(shape: [k, rank], floats: first))
        let secondWeight = editor.addInitializer(secondName + ".weight", Tensor(shape: [rank, n], floats: second))
        guard let input = layer.node.input(0) else { throw WhittleError(.invalidModel, name, "Gemm has no input") }
        var secondInputs = [middle, secondWeight]
        var secondAttributes: [String: Attribute] = [:]
        if let c = layer.node.input(2) {
            secondInputs.append(c)
            secondAttributes["beta"] = .float(layer.beta)
        }
        let nodes = [
            Node(name: firstName, opType: "Gemm", inputs: [input, firstWeight], outputs: [middle]),
            Node(name: secondName, opType: "Gemm", inputs: secondInputs, outputs: layer.node.outputs, attributes: secondAttributes),
        ]
        editor.replaceNode(layer.nodeIndex, with: nodes)
        return [firstName, secondName]
    }
}

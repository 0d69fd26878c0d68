import Testing
@testable import WhittleEngine

/// Deterministic pseudo-random numbers for test tensors.
private struct LinearTestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float((state >> 40) & 0xFFFF) / 32768 - 1
    }
    mutating func tensor(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in next() })
    }
}

private func expectClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, "shape \(actual.shape) vs \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    let a = actual.floats, e = expected.floats
    var worst: Float = 0, worstIndex = 0
    for i in 0..<a.count {
        let error = abs(a[i] - e[i]) / max(1, abs(e[i]))
        if !(error <= worst) { worst = error; worstIndex = i }
    }
    #expect(worst <= tolerance, "max relative error \(worst) at \(worstIndex): \(a.isEmpty ? 0 : a[worstIndex]) vs \(e.isEmpty ? 0 : e[worstIndex])",
            sourceLocation: sourceLocation)
}

/// Runs one node with every input constant (the folding path, like `evaluate`).
private func evaluate(_ opType: String, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                      outputs: [String] = ["y"], opset: Int = 13) throws -> Tensor {
    let node = Node(name: "n", opType: opType, inputs: inputs.enumerated().map { $0.element == nil ? "" : "i\($0.offset)" },
                    outputs: outputs, attributes: attributes)
    return try OperatorRegistry.evaluate(node: node, inputs: inputs, opsetVersion: opset)[0]
}

/// Compiles a kernel with only the inputs listed in `constant` known at compile time (the
/// executor path) and runs it once.
private func runCompiled(_ opType: String, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                         constant: Set<Int> = [], activation: FusedActivation = .none) throws -> Tensor {
    let node = Node(name: "n", opType: opType, inputs: inputs.enumerated().map { $0.element == nil ? "" : "i\($0.offset)" },
                    outputs: ["y"], attributes: attributes)
    let infos = inputs.map { $0.map { TensorInfo(shape: $0.shape) } }
    let constants = inputs.enumerated().map { constant.contains($0.offset) ? $0.element : nil }
    let context = NodeContext(node: node, inputs: infos, constants: constants, opsetVersion: 13)
    let spec = try #require(OperatorRegistry.spec(for: opType))
    let outputs = try spec.inferShapes(context)
    let makeKernel = try #require(spec.makeKernel)
    let kernel: any Kernel
    switch opType {
    case "Conv": kernel = try OperatorRegistry.makeConvKernel(context: context, outputs: outputs, activation: activation)
    case "Gemm": kernel = try OperatorRegistry.makeGemmKernel(context: context, outputs: outputs, activation: activation)
    case "MatMul": kernel = try OperatorRegistry.makeMatMulKernel(context: context, outputs: outputs, activation: activation)
    default: kernel = try makeKernel(context, outputs)
    }
    return OperatorRegistry.runOnce(kernel: kernel, inputs: inputs, outputInfos: outputs)[0]
}

// MARK: Reference implementations

/// Direct-loop convolution; 1-D inputs are handled as height 1.
private func referenceConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, group: Int = 1, strides: [Int], dilations: [Int],
                           padBegin: [Int], padEnd: [Int], activation: FusedActivation = .none) -> Tensor {
    let oneD = x.rank == 3
    let xs = oneD ? [x.shape[0], x.shape[1], 1, x.shape[2]] : x.shape
    let ws = oneD ? [w.shape[0], w.shape[1], 1, w.shape[2]] : w.shape
    let s = oneD ? [1] + strides : strides, d = oneD ? [1] + dilations : dilations
    let pb = oneD ? [0] + padBegin : padBegin, pe = oneD ? [0] + padEnd : padEnd
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
    let (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
    let oh = (h + pb[0] + pe[0] - ((kh - 1) * d[0] + 1)) / s[0] + 1
    let ow = (wd + pb[1] + pe[1] - ((kw - 1) * d[1] + 1)) / s[1] + 1
    let xv = x.floats, wv = w.floats, bv = b?.floats
    let mg = m / group
    var out = [Float](repeating: 0, count: n * m * oh * ow)
    for img in 0..<n { for oc in 0..<m { for oy in 0..<oh { for ox in 0..<ow {
        let g = oc / mg
        var sum: Float = bv?[oc] ?? 0
        for ic in 0..<cg { for ky in 0..<kh { for kx in 0..<kw {
            let iy = oy * s[0] - pb[0] + ky * d[0], ix = ox * s[1] - pb[1] + kx * d[1]
            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
            sum += xv[((img * c + g * cg + ic) * h + iy) * wd + ix] * wv[((oc * cg + ic) * kh + ky) * kw + kx]
        } } }
        out[((img * m + oc) * oh + oy) * ow + ox] = activation.apply(sum)
    } } } }
    return Tensor(shape: oneD ? [n, m, ow] : [n, m, oh, ow], floats: out)
}

/// Direct-loop transposed convolution (2-D), scattering every input element.
private func referenceConvTranspose(_ x: Tensor, _ w: Tensor, _ b: Tensor?, group: Int, strides: [Int],
                                    dilations: [Int], padBegin: [Int], output: [Int]) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (mg, kh, kw) = (w.shape[1], w.shape[2], w.shape[3])
    let m = mg * group, cg = c / group
    let (oh, ow) = (output[0], output[1])
    let xv = x.floats, wv = w.floats
    var out = [Float](repeating: 0, count: n * m * oh * ow)
    for img in 0..<n { for ic in 0..<c { for iy in 0..<h { for ix in 0..<wd {
        let g = ic / cg
        for j in 0..<mg { for ky in 0..<kh { for kx in 0..<kw {
            let oy = iy * strides[0] - padBegin[0] + ky * dilations[0]
            let ox = ix * strides[1] - padBegin[1] + kx * dilations[1]
            if oy < 0 || oy >= oh || ox < 0 || ox >= ow { continue }
            out[((img * m + g * mg + j) * oh + oy) * ow + ox] +=
                xv[((img * c + ic) * h + iy) * wd + ix] * wv[((ic * mg + j) * kh + ky) * kw + kx]
        } } }
    } } } }
    if let b {
        let bv = b.floats
        for i in 0..<out.count { out[i] += bv[(i / (oh * ow)) % m] }
    }
    return Tensor(shape: [n, m, oh, ow], floats: out)
}

/// Direct-loop 2-D pooling with explicit pads and output size.
private func referencePool(_ x: Tensor, max isMax: Bool, kernel: [Int], strides: [Int], dilations: [Int] = [1, 1],
                           padBegin: [Int], padEnd: [Int], output: [Int], includePad: Bool = false) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let xv = x.floats
    var out: [Float] = []
    for plane in 0..<(n * c) { for oy in 0..<output[0] { for ox in 0..<output[1] {
        var best = -Float.infinity, sum: Float = 0, inside = 0, padded = 0
        for ky in 0..<kernel[0] { for kx in 0..<kernel[1] {
            let iy = oy * strides[0] - padBegin[0] + ky * dilations[0]
            let ix = ox * strides[1] - padBegin[1] + kx * dilations[1]
            if iy >= -padBegin[0] && iy < h + padEnd[0] && ix >= -padBegin[1] && ix < wd + padEnd[1] { padded += 1 }
            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
            let v = xv[(plane * h + iy) * wd + ix]
            best = max(best, v); sum += v; inside += 1
        } }
        out.append(isMax ? best : sum / Float(includePad ? padded : inside))
    } } }
    return Tensor(shape: [n, c] + output, floats: out)
}

/// Naive matrix product of row-major `[m, k]` and `[k, n]` slices.
private func referenceMatrix(_ a: [Float], _ aOffset: Int, _ b: [Float], _ bOffset: Int, m: Int, k: Int, n: Int) -> [Float] {
    var out = [Float](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n {
        var sum: Float = 0
        for p in 0..<k { sum += a[aOffset + i * k + p] * b[bOffset + p * n + j] }
        out[i * n + j] = sum
    } }
    return out
}

private func ints(_ values: [Int]) -> Attribute { .ints(values) }

@Suite struct LinearKernelTests {
    // MARK: Conv

    @Test func convBasicWithBiasAndPadding() throws {
        var random = LinearTestRandom(1)
        let x = random.tensor([2, 3, 9, 8]), w = random.tensor([5, 3, 3, 3]), b = random.tensor([5])
        let y = try evaluate("Conv", [x, w, b], ["pads": ints([1, 1, 1, 1])])
        expectClose(y, referenceConv(x, w, b, strides: [1, 1], dilations: [1, 1], padBegin: [1, 1], padEnd: [1, 1]))
    }

    @Test func convStridesDilationsAsymmetricPads() throws {
        var random = LinearTestRandom(2)
        let x = random.tensor([2, 4, 11, 10]), w = random.tensor([6, 4, 3, 2])
        let attrs: [String: Attribute] = ["strides": ints([2, 3]), "dilations": ints([2, 1]), "pads": ints([0, 2, 1, 1])]
        let y = try evaluate("Conv", [x, w], attrs)
        expectClose(y, referenceConv(x, w, nil, strides: [2, 3], dilations: [2, 1], padBegin: [0, 2], padEnd: [1, 1]))
    }

    @Test func convGroups() throws {
        var random = LinearTestRandom(3)
        let x = random.tensor([1, 6, 7, 7]), w = random.tensor([4, 3, 3, 3]), b = random.tensor([4])
        let y = try evaluate("Conv", [x, w, b], ["group": .int(2), "pads": ints([1, 0, 0, 1])])
        expectClose(y, referenceConv(x, w, b, group: 2, strides: [1, 1], dilations: [1, 1], padBegin: [1, 0], padEnd: [0, 1]))
    }

    @Test(arguments: [
        // (kernel, stride, dilation, pads [t, l, b, r], width)
        (3, 1, 1, [1, 1, 1, 1], 20), (3, 2, 1, [1, 1, 1, 1], 19), (3, 1, 2, [2, 2, 2, 2], 16),
        (5, 1, 1, [2, 2, 2, 2], 17), (3, 1, 1, [0, 0, 0, 0], 9), (3, 2, 1, [0, 0, 1, 1], 12),
        (3, 1, 1, [0, 2, 1, 0], 3),
    ])
    func convDepthwise(kernel: Int, stride: Int, dilation: Int, pads: [Int], width: Int) throws {
        var random = LinearTestRandom(UInt64(4 + kernel * 7 + stride * 13 + width))
        let x = random.tensor([2, 5, 7, width]), w = random.tensor([5, 1, kernel, kernel]), b = random.tensor([5])
        let attrs: [String: Attribute] = ["group": .int(5), "strides": ints([stride, stride]),
                                          "dilations": ints([dilation, dilation]), "pads": ints(pads)]
        let y = try evaluate("Conv", [x, w, b], attrs)
        expectClose(y, referenceConv(x, w, b, group: 5, strides: [stride, stride], dilations: [dilation, dilation],
                                     padBegin: [pads[0], pads[1]], padEnd: [pads[2], pads[3]]))
    }

    @Test func convDepthwiseMultiplierWithFusedClip() throws {
        var random = LinearTestRandom(5)
        let x = random.tensor([2, 3, 10, 13]), w = random.tensor([6, 1, 3, 3]), b = random.tensor([6])
        let attrs: [String: Attribute] = ["group": .int(3), "pads": ints([1, 1, 1, 1])]
        let y = try runCompiled("Conv", [x, w, b], attrs, constant: [1, 2], activation: .clip(min: -0.5, max: 0.5))
        expectClose(y, referenceConv(x, w, b, group: 3, strides: [1, 1], dilations: [1, 1], padBegin: [1, 1],
                                     padEnd: [1, 1], activation: .clip(min: -0.5, max: 0.5)))
    }

    @Test(arguments: ["SAME_UPPER", "SAME_LOWER", "VALID"])
    func convAutoPad(mode: String) throws {
        var random = LinearTestRandom(6)
        // Input 6 with kernel 3, stride 2: out 3, total padding 1 (odd) for SAME.
        let x = random.tensor([1, 2, 6, 7]), w = random.tensor([3, 2, 3, 3])
        let y = try evaluate("Conv", [x, w], ["auto_pad": .string(mode), "strides": ints([2, 2])])
        let (begin, end): ([Int], [Int]) = switch mode {
        case "SAME_UPPER": ([0, 1], [1, 1])
        case "SAME_LOWER": ([1, 1], [0, 1])
        default: ([0, 0], [0, 0])
        }
        expectClose(y, referenceConv(x, w, nil, strides: [2, 2], dilations: [1, 1], padBegin: begin, padEnd: end))
        #expect(y.shape == (mode == "VALID" ? [1, 3, 2, 3] : [1, 3, 3, 4]))
    }

    @Test func convDepthwiseSameUpper() throws {
        var random = LinearTestRandom(7)
        let x = random.tensor([1, 4, 8, 9]), w = random.tensor([4, 1, 3, 3])
        let y = try evaluate("Conv", [x, w], ["auto_pad": .string("SAME_UPPER"), "group": .int(4), "strides": ints([2, 2])])
        expectClose(y, referenceConv(x, w, nil, group: 4, strides: [2, 2], dilations: [1, 1], padBegin: [0, 1], padEnd: [1, 1]))
    }

    /// One depthwise case for the direct kernel: input `[n, c, h, w]`, kernel `[kh, kw]`,
    /// depth multiplier, strides, dilations, pads `[t, l, b, r]` (or an `auto_pad` mode).
    struct DepthwiseCase: Sendable, CustomStringConvertible {
        var input: [Int], kernel: [Int], multiplier = 1, strides = [1, 1], dilations = [1, 1]
        var pads = [0, 0, 0, 0], autoPad: String? = nil
        var activation: FusedActivation = .none, bias = true
        var description: String { "\(input) k\(kernel) m\(multiplier) s\(strides) d\(dilations) p\(pads) \(autoPad ?? "")" }
    }

    static let depthwiseCases: [DepthwiseCase] = [
        // 5x5 stride 2 with asymmetric SAME_UPPER padding (even input: 1 before, 2 after).
        DepthwiseCase(input: [2, 3, 14, 16], kernel: [5, 5], strides: [2, 2], autoPad: "SAME_UPPER",
                      activation: .clip(min: 0, max: 6)),
        // Odd input: 2 before, 2 after; SAME_LOWER puts the odd element first.
        DepthwiseCase(input: [1, 4, 15, 13], kernel: [5, 5], strides: [2, 2], autoPad: "SAME_UPPER"),
        DepthwiseCase(input: [1, 4, 12, 10], kernel: [5, 5], strides: [2, 2], autoPad: "SAME_LOWER"),
        DepthwiseCase(input: [3, 2, 7, 7], kernel: [5, 5], pads: [2, 2, 2, 2], activation: .relu),
        DepthwiseCase(input: [2, 5, 11, 9], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        DepthwiseCase(input: [2, 3, 10, 12], kernel: [3, 3], strides: [2, 2], pads: [0, 0, 1, 1],
                      activation: .clip(min: -0.25, max: 0.5)),
        DepthwiseCase(input: [1, 3, 9, 11], kernel: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2]),
        DepthwiseCase(input: [2, 2, 13, 12], kernel: [5, 5], strides: [2, 1], dilations: [1, 2], pads: [3, 0, 1, 4]),
        DepthwiseCase(input: [2, 3, 8, 9], kernel: [3, 3], multiplier: 2, pads: [1, 1, 1, 1], activation: .relu),
        DepthwiseCase(input: [1, 2, 9, 9], kernel: [5, 5], multiplier: 3, strides: [2, 2], pads: [2, 2, 2, 2], bias: false),
        // Stride 3 (generic phase split), non-square and unusual kernels, pads larger than needed.
        DepthwiseCase(input: [1, 3, 13, 14], kernel: [3, 3], strides: [3, 3], pads: [1, 2, 2, 1]),
        DepthwiseCase(input: [2, 2, 9, 10], kernel: [2, 4], strides: [1, 2], pads: [1, 2, 0, 1]),
        DepthwiseCase(input: [1, 2, 8, 11], kernel: [5, 3], pads: [2, 1, 2, 1], activation: .clip(min: -1, max: 0.3)),
        DepthwiseCase(input: [1, 2, 6, 6], kernel: [3, 3], strides: [2, 2], pads: [3, 3, 3, 3]),
        DepthwiseCase(input: [1, 3, 1, 1], kernel: [3, 3], pads: [1, 1, 1, 1]),
        DepthwiseCase(input: [1, 2, 4, 5], kernel: [4, 5], bias: false),
        // EfficientNet-like plane sizes.
        DepthwiseCase(input: [2, 4, 28, 28], kernel: [5, 5], autoPad: "SAME_UPPER", activation: .clip(min: 0, max: 6)),
        DepthwiseCase(input: [1, 3, 56, 56], kernel: [3, 3], strides: [2, 2], autoPad: "SAME_UPPER"),
    ]

    /// Direct depthwise kernel against the reference, through the executor path (weights and
    /// bias constant, fused activation) and the folding path.
    @Test(arguments: depthwiseCases)
    func convDepthwiseDirect(_ c: DepthwiseCase) throws {
        var random = LinearTestRandom(UInt64(c.input.reduce(0, +) * 31 + c.kernel[0] * 7 + c.multiplier))
        let channels = c.input[1], m = channels * c.multiplier
        let x = random.tensor(c.input), w = random.tensor([m, 1] + c.kernel)
        let b = c.bias ? random.tensor([m]) : nil
        var attrs: [String: Attribute] = ["group": .int(channels), "strides": ints(c.strides), "dilations": ints(c.dilations)]
        var begin = [c.pads[0], c.pads[1]], end = [c.pads[2], c.pads[3]]
        if let mode = c.autoPad {
            attrs["auto_pad"] = .string(mode)
            for axis in 0..<2 {
                let size = c.input[2 + axis], s = c.strides[axis]
                let out = (size + s - 1) / s
                let total = max(0, (out - 1) * s + (c.kernel[axis] - 1) * c.dilations[axis] + 1 - size)
                begin[axis] = mode == "SAME_UPPER" ? total / 2 : total - total / 2
                end[axis] = total - begin[axis]
            }
        } else {
            attrs["pads"] = ints(c.pads)
        }
        let expected = referenceConv(x, w, b, group: channels, strides: c.strides, dilations: c.dilations,
                                     padBegin: begin, padEnd: end, activation: c.activation)
        let inputs: [Tensor?] = c.bias ? [x, w, b] : [x, w]
        let compiled = try runCompiled("Conv", inputs, attrs, constant: [1, 2], activation: c.activation)
        expectClose(compiled, expected)
        if c.activation == .none {
            expectClose(try evaluate("Conv", inputs, attrs), expected)
        }
    }

    /// The kernel owns one scratch slice per thread, zeroes its own padding (the shared scratch
    /// holds garbage from other kernels), and gives the same result whatever the thread count
    /// at build and run time.
    @Test(arguments: [1, 2, 5])
    func convDepthwiseScratchSlices(threads: Int) throws {
        var random = LinearTestRandom(UInt64(40 + threads))
        let x = random.tensor([3, 3, 9, 10]), w = random.tensor([6, 1, 5, 5]), b = random.tensor([6])
        let attrs: [String: Attribute] = ["group": .int(3), "strides": ints([2, 2]), "pads": ints([2, 1, 2, 2])]
        let node = Node(name: "n", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"], attributes: attrs)
        let context = NodeContext(node: node, inputs: [TensorInfo(shape: x.shape), TensorInfo(shape: w.shape),
                                                       TensorInfo(shape: b.shape)],
                                  constants: [nil, w, b], opsetVersion: 13)
        let layout = try LinearConv.layout(context)
        let kernel = LinearDepthwiseKernel(layout: layout, activation: .clip(min: -1, max: 1), threads: threads)
        #expect(kernel.scratchCount == threads * kernel.sliceCount)
        var scratch = [Float](repeating: .nan, count: kernel.scratchCount)
        var output = [Float](repeating: .nan, count: layout.outputShape.reduce(1, *))
        let xv = x.floats, wv = w.floats, bv = b.floats
        xv.withUnsafeBufferPointer { xp in wv.withUnsafeBufferPointer { wp in bv.withUnsafeBufferPointer { bp in
            output.withUnsafeMutableBufferPointer { yp in scratch.withUnsafeMutableBufferPointer { sp in
                kernel.run(inputs: [xp.baseAddress!, wp.baseAddress!, bp.baseAddress!], outputs: [yp.baseAddress!],
                           scratch: sp.baseAddress!)
            } }
        } } }
        let expected = referenceConv(x, w, b, group: 3, strides: [2, 2], dilations: [1, 1], padBegin: [2, 1],
                                     padEnd: [2, 2], activation: .clip(min: -1, max: 1))
        expectClose(Tensor(shape: layout.outputShape, floats: output), expected)
    }

    @Test func convPointwiseDirectGemmWithRelu() throws {
        var random = LinearTestRandom(8)
        // 16x16 output plane: one image per GEMM, read straight from the NCHW input.
        let x = random.tensor([2, 8, 16, 16]), w = random.tensor([12, 8, 1, 1]), b = random.tensor([12])
        let y = try runCompiled("Conv", [x, w, b], [:], constant: [1, 2], activation: .relu)
        expectClose(y, referenceConv(x, w, b, strides: [1, 1], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0],
                                     activation: .relu))
    }

    @Test func convWideOutputUsesBlockedEpilogue() throws {
        var random = LinearTestRandom(27)
        // 300 output channels: GEMM column blocks of 256 over a 320-column plane.
        let x = random.tensor([2, 4, 16, 20]), b = random.tensor([300])
        let w1 = random.tensor([300, 4, 1, 1]), w3 = random.tensor([300, 4, 3, 3])
        let y1 = try runCompiled("Conv", [x, w1, b], [:], constant: [1, 2], activation: .relu)
        expectClose(y1, referenceConv(x, w1, b, strides: [1, 1], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0],
                                      activation: .relu))
        let y3 = try runCompiled("Conv", [x, w3, b], ["pads": ints([1, 1, 1, 1])], constant: [1, 2])
        expectClose(y3, referenceConv(x, w3, b, strides: [1, 1], dilations: [1, 1], padBegin: [1, 1], padEnd: [1, 1]))
    }

    @Test func convSmallPlanesBatchImagesIntoOneGemm() throws {
        var random = LinearTestRandom(9)
        // 4x4 output planes, batch 5: several images share a GEMM, for 1x1 and 3x3 kernels.
        let x = random.tensor([5, 6, 4, 4])
        let w1 = random.tensor([4, 6, 1, 1]), w3 = random.tensor([4, 3, 3, 3]), b = random.tensor([4])
        let y1 = try runCompiled("Conv", [x, w1, b], [:], activation: .relu)
        expectClose(y1, referenceConv(x, w1, b, strides: [1, 1], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0],
                                      activation: .relu))
        let y3 = try runCompiled("Conv", [x, w3, b], ["group": .int(2), "pads": ints([1, 1, 1, 1])],
                                 activation: .clip(min: 0, max: 1))
        expectClose(y3, referenceConv(x, w3, b, group: 2, strides: [1, 1], dilations: [1, 1], padBegin: [1, 1],
                                      padEnd: [1, 1], activation: .clip(min: 0, max: 1)))
    }

    /// Column blocks that start and end inside output rows (tiny blocks), on one and two
    /// threads, for strided, dilated, padded, grouped and pointwise convolutions.
    @Test(arguments: [1, 2])
    func convColumnBlocksAcrossRows(threads: Int) throws {
        let previous = EngineThreads.count
        EngineThreads.set(threads)
        defer { EngineThreads.set(previous) }
        var random = LinearTestRandom(31)
        let x = random.tensor([2, 4, 48, 29]), b = random.tensor([6])  // output planes of 256 or more: column blocks
        let cases: [(w: Tensor, attributes: [String: Attribute], group: Int, strides: [Int], dilations: [Int], pads: [Int])] = [
            (random.tensor([6, 4, 3, 3]), ["strides": ints([2, 2]), "pads": ints([1, 0, 2, 1])], 1, [2, 2], [1, 1], [1, 0, 2, 1]),
            (random.tensor([6, 4, 3, 2]), ["dilations": ints([2, 3]), "pads": ints([2, 1, 0, 3])], 1, [1, 1], [2, 3], [2, 1, 0, 3]),
            (random.tensor([6, 2, 3, 3]), ["group": .int(2), "pads": ints([1, 1, 1, 1])], 2, [1, 1], [1, 1], [1, 1, 1, 1]),
            (random.tensor([6, 4, 1, 1]), [:], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
        ]
        for (index, item) in cases.enumerated() {
            let node = Node(name: "n", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"], attributes: item.attributes)
            let context = NodeContext(node: node, inputs: [TensorInfo(shape: x.shape), TensorInfo(shape: item.w.shape),
                                                           TensorInfo(shape: b.shape)],
                                      constants: [nil, item.w, b], opsetVersion: 13)
            let layout = try LinearConv.layout(context)
            for width in [5, 7, 16] {
                let kernel = LinearConv.GemmKernel(layout: layout, activation: .clip(min: -0.7, max: 0.9),
                                                   columnRanges: LinearTable(layout.window.columnRanges()),
                                                   threads: threads, cacheFloats: 0, minimumBlockWidth: width)
                #expect(kernel.imagesPerGemm == 1 && kernel.blockWidth <= width, "case \(index)")
                let y = OperatorRegistry.runOnce(kernel: kernel, inputs: [x, item.w, b],
                                                 outputInfos: [TensorInfo(shape: layout.outputShape)])[0]
                expectClose(y, referenceConv(x, item.w, b, group: item.group, strides: item.strides, dilations: item.dilations,
                                             padBegin: [item.pads[0], item.pads[1]], padEnd: [item.pads[2], item.pads[3]],
                                             activation: .clip(min: -0.7, max: 0.9)))
            }
        }
    }

    /// The Conv -> depthwise chain kernel with strips of one or a few rows (tiny strip
    /// budget), strided and padded depthwise windows, on one and two threads.
    @Test(arguments: [1, 2])
    func convDepthwiseChainStrips(threads: Int) throws {
        let previous = EngineThreads.count
        EngineThreads.set(threads)
        defer { EngineThreads.set(previous) }
        var random = LinearTestRandom(41)
        let x = random.tensor([4, 3, 19, 17])
        let w = random.tensor([6, 3, 3, 3]), b = random.tensor([6])
        let cases: [(attributes: [String: Attribute], kernel: Int, stride: Int, pads: [Int])] = [
            (["group": .int(6), "strides": ints([2, 2]), "pads": ints([1, 1, 1, 1])], 3, 2, [1, 1, 1, 1]),
            (["group": .int(6), "pads": ints([2, 1, 2, 3])], 5, 1, [2, 1, 2, 3]),
            (["group": .int(6), "pads": ints([0, 0, 0, 0])], 3, 1, [0, 0, 0, 0]),
        ]
        let producerNode = Node(name: "p", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["m"],
                                attributes: ["pads": ints([1, 1, 1, 1])])
        let producer = NodeContext(node: producerNode, inputs: [TensorInfo(shape: x.shape), TensorInfo(shape: w.shape),
                                                                 TensorInfo(shape: b.shape)],
                                   constants: [nil, w, b], opsetVersion: 13)
        let middle = referenceConv(x, w, b, strides: [1, 1], dilations: [1, 1], padBegin: [1, 1], padEnd: [1, 1],
                                   activation: .clip(min: 0, max: 6))
        for item in cases {
            let dw = random.tensor([6, 1, item.kernel, item.kernel]), db = random.tensor([6])
            let node = Node(name: "d", opType: "Conv", inputs: ["m", "dw", "db"], outputs: ["y"], attributes: item.attributes)
            let depthwise = NodeContext(node: node, inputs: [TensorInfo(shape: middle.shape), TensorInfo(shape: dw.shape),
                                                             TensorInfo(shape: db.shape)],
                                        constants: [nil, dw, db], opsetVersion: 13)
            let expected = referenceConv(middle, dw, db, group: 6, strides: [item.stride, item.stride], dilations: [1, 1],
                                         padBegin: [item.pads[0], item.pads[1]], padEnd: [item.pads[2], item.pads[3]],
                                         activation: .relu)
            let producerLayout = try LinearConv.layout(producer)
            for budget in [1, 6 * 17 * 4, 1 << 20] {
                let kernel = try #require(LinearConvDepthwiseChainKernel.make(
                    producer: producerLayout, producerActivation: .clip(min: 0, max: 6),
                    producerColumnRanges: LinearTable(producerLayout.window.columnRanges()),
                    depthwise: try LinearConv.layout(depthwise), depthwiseActivation: .relu, depthwiseWeightInput: 3,
                    threads: threads, stripCacheFloats: budget, minimumPlane: 1, maximumRecompute: 100))
                let y = OperatorRegistry.runOnce(kernel: kernel, inputs: [x, w, b, dw, db],
                                                 outputInfos: [TensorInfo(shape: expected.shape)])[0]
                expectClose(y, expected)
            }
        }
    }

    @Test func conv1D() throws {
        var random = LinearTestRandom(10)
        let x = random.tensor([2, 3, 15]), w = random.tensor([4, 3, 4]), b = random.tensor([4])
        let attrs: [String: Attribute] = ["strides": ints([2]), "dilations": ints([2]), "pads": ints([3, 1])]
        let y = try evaluate("Conv", [x, w, b], attrs)
        expectClose(y, referenceConv(x, w, b, strides: [2], dilations: [2], padBegin: [3], padEnd: [1]))
        let dw = random.tensor([6, 1, 3])
        let yd = try evaluate("Conv", [x, dw], ["group": .int(3), "pads": ints([1, 1])])
        expectClose(yd, referenceConv(x, dw, nil, group: 3, strides: [1], dilations: [1], padBegin: [1], padEnd: [1]))
    }

    @Test func convErrors() throws {
        var random = LinearTestRandom(11)
        let x = random.tensor([1, 4, 5, 5])
        #expect(throws: WhittleError.self) { try evaluate("Conv", [x, random.tensor([3, 3, 3, 3])]) }
        #expect(throws: WhittleError.self) { try evaluate("Conv", [x, random.tensor([3, 4, 3])]) }
        #expect(throws: WhittleError.self) {
            try evaluate("Conv", [x, random.tensor([3, 4, 3, 3]), random.tensor([4])])
        }
        #expect(throws: WhittleError.self) {
            try evaluate("Conv", [x, random.tensor([3, 4, 3, 3])], ["kernel_shape": ints([2, 2])])
        }
        #expect(throws: WhittleError.self) { try evaluate("Conv", [x, random.tensor([3, 4, 7, 7])]) }
        #expect(throws: WhittleError.self) {
            try evaluate("Conv", [x, random.tensor([3, 4, 3, 3])], ["auto_pad": .string("SAME")])
        }
        do {
            _ = try evaluate("Conv", [random.tensor([1, 2, 3, 3, 3]), random.tensor([2, 2, 1, 1, 1])])
            Issue.record("3-D convolution must be rejected")
        } catch let error as WhittleError {
            #expect(error.message.contains("3-D"))
            #expect(error.subject.contains("Conv"))
        }
    }

    // MARK: ConvTranspose

    @Test func convTransposeStridesPadsOutputPadding() throws {
        var random = LinearTestRandom(12)
        let x = random.tensor([2, 4, 5, 4]), w = random.tensor([4, 3, 3, 3]), b = random.tensor([3])
        let attrs: [String: Attribute] = ["strides": ints([2, 2]), "pads": ints([1, 0, 1, 2]), "output_padding": ints([1, 0])]
        let y = try evaluate("ConvTranspose", [x, w, b], attrs)
        // out = s * (in - 1) + output_padding + k - pb - pe
        let output = [2 * 4 + 1 + 3 - 2, 2 * 3 + 0 + 3 - 2]
        expectClose(y, referenceConvTranspose(x, w, b, group: 1, strides: [2, 2], dilations: [1, 1], padBegin: [1, 0], output: output))
    }

    @Test func convTransposeGroupsDilations() throws {
        var random = LinearTestRandom(13)
        let x = random.tensor([1, 4, 3, 5]), w = random.tensor([4, 2, 2, 3])
        let attrs: [String: Attribute] = ["group": .int(2), "dilations": ints([2, 1]), "strides": ints([1, 3])]
        let y = try evaluate("ConvTranspose", [x, w], attrs)
        let output = [1 * 2 + 3, 3 * 4 + 3]
        expectClose(y, referenceConvTranspose(x, w, nil, group: 2, strides: [1, 3], dilations: [2, 1], padBegin: [0, 0], output: output))
    }

    @Test func convTransposeOutputShapeAndSame() throws {
        var random = LinearTestRandom(14)
        let x = random.tensor([1, 2, 4, 4]), w = random.tensor([2, 3, 3, 3])
        // Full size 2 * 3 + 3 = 9; output_shape 8 -> total padding 1, at the beginning (NOTSET).
        let y = try evaluate("ConvTranspose", [x, w], ["strides": ints([2, 2]), "output_shape": ints([8, 8])])
        expectClose(y, referenceConvTranspose(x, w, nil, group: 1, strides: [2, 2], dilations: [1, 1], padBegin: [1, 1], output: [8, 8]))
        let upper = try evaluate("ConvTranspose", [x, w], ["strides": ints([2, 2]), "auto_pad": .string("SAME_UPPER")])
        expectClose(upper, referenceConvTranspose(x, w, nil, group: 1, strides: [2, 2], dilations: [1, 1], padBegin: [0, 0], output: [8, 8]))
        let lower = try evaluate("ConvTranspose", [x, w], ["strides": ints([2, 2]), "auto_pad": .string("SAME_LOWER")])
        expectClose(lower, referenceConvTranspose(x, w, nil, group: 1, strides: [2, 2], dilations: [1, 1], padBegin: [1, 1], output: [8, 8]))
    }

    @Test func convTranspose1D() throws {
        var random = LinearTestRandom(28)
        let x = random.tensor([2, 3, 6]), w = random.tensor([3, 2, 4]), b = random.tensor([2])
        let y = try evaluate("ConvTranspose", [x, w, b], ["strides": ints([3]), "pads": ints([1, 2])])
        // out = 3 * 5 + 4 - 1 - 2 = 16
        let reference = referenceConvTranspose(x.reshaped([2, 3, 1, 6]), w.reshaped([3, 2, 1, 4]), b, group: 1,
                                               strides: [1, 3], dilations: [1, 1], padBegin: [0, 1], output: [1, 16])
        expectClose(y, reference.reshaped([2, 2, 16]))
        #expect(throws: WhittleError.self) { try evaluate("ConvTranspose", [x, random.tensor([2, 2, 4])]) }
    }

    // MARK: Gemm and MatMul

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmTransposes(transA: Bool, transB: Bool) throws {
        var random = LinearTestRandom(15)
        let (m, k, n) = (5, 7, 6)
        let a = random.tensor(transA ? [k, m] : [m, k]), b = random.tensor(transB ? [n, k] : [k, n])
        let c = random.tensor([n])
        let attrs: [String: Attribute] = ["transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0),
                                          "alpha": .float(0.5), "beta": .float(2)]
        let av = a.floats, bv = b.floats, cv = c.floats
        var expected = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var sum: Float = 0
            for p in 0..<k { sum += av[transA ? p * m + i : i * k + p] * bv[transB ? j * k + p : p * n + j] }
            expected[i * n + j] = 0.5 * sum + 2 * cv[j]
        } }
        let reference = Tensor(shape: [m, n], floats: expected)
        expectClose(try evaluate("Gemm", [a, b, c], attrs), reference)
        expectClose(try runCompiled("Gemm", [a, b, c], attrs), reference)
        expectClose(try runCompiled("Gemm", [a, b, c], attrs, constant: [1, 2], activation: .relu),
                    Tensor(shape: [m, n], floats: expected.map { max($0, 0) }))
    }

    @Test(arguments: [[Int](), [1], [6], [1, 6], [4, 1], [4, 6]])
    func gemmBroadcastC(cShape: [Int]) throws {
        var random = LinearTestRandom(16)
        let a = random.tensor([4, 3]), b = random.tensor([3, 6]), c = random.tensor(cShape)
        let product = referenceMatrix(a.floats, 0, b.floats, 0, m: 4, k: 3, n: 6)
        let cv = c.floats
        let expected = (0..<24).map { index -> Float in
            let i = index / 6, j = index % 6
            let ci = (cShape.count == 2 && cShape[0] == 4 ? i : 0) * (cShape.last == 6 ? 6 : 1)
                + (cShape.last == 6 ? j : 0)
            return product[index] + cv[ci]
        }
        expectClose(try evaluate("Gemm", [a, b, c]), Tensor(shape: [4, 6], floats: expected))
    }

    @Test func gemmWithoutCAndErrors() throws {
        var random = LinearTestRandom(17)
        let a = random.tensor([2, 3]), b = random.tensor([3, 4])
        expectClose(try evaluate("Gemm", [a, b, nil]),
                    Tensor(shape: [2, 4], floats: referenceMatrix(a.floats, 0, b.floats, 0, m: 2, k: 3, n: 4)))
        #expect(throws: WhittleError.self) { try evaluate("Gemm", [a, random.tensor([4, 3])]) }
        #expect(throws: WhittleError.self) { try evaluate("Gemm", [a, b, random.tensor([3])]) }
        #expect(throws: WhittleError.self) { try evaluate("Gemm", [random.tensor([2, 3, 1]), b]) }
    }

    @Test(arguments: [
        ([2, 3, 4, 5], [2, 3, 5, 6]), ([3, 4, 5], [5, 6]), ([4, 5], [2, 5, 6]), ([2, 1, 4, 5], [3, 5, 2]),
        ([5], [2, 5, 3]), ([2, 4, 5], [5]), ([5], [5]), ([1, 4, 5], [3, 5, 6]),
    ])
    func matMulBroadcasting(aShape: [Int], bShape: [Int]) throws {
        var random = LinearTestRandom(18)
        let a = random.tensor(aShape), b = random.tensor(bShape)
        let aM = aShape.count == 1 ? [1, aShape[0]] : Array(aShape.suffix(2))
        let bM = bShape.count == 1 ? [bShape[0], 1] : Array(bShape.suffix(2))
        let (m, k, n) = (aM[0], aM[1], bM[1])
        let aB = Array(aShape.dropLast(2)), bB = Array(bShape.dropLast(2))
        let rank = max(aB.count, bB.count)
        let aP = Array(repeating: 1, count: rank - aB.count) + aB, bP = Array(repeating: 1, count: rank - bB.count) + bB
        let batch = zip(aP, bP).map { max($0, $1) }
        var expected: [Float] = []
        for index in 0..<batch.reduce(1, *) {
            var rest = index, ai = 0, bi = 0, aStride = 1, bStride = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let coordinate = rest % batch[axis]; rest /= batch[axis]
                ai += (aP[axis] == 1 ? 0 : coordinate) * aStride; aStride *= aP[axis]
                bi += (bP[axis] == 1 ? 0 : coordinate) * bStride; bStride *= bP[axis]
            }
            expected += referenceMatrix(a.floats, ai * m * k, b.floats, bi * k * n, m: m, k: k, n: n)
        }
        var shape = batch
        if aShape.count > 1 { shape.append(m) }
        if bShape.count > 1 { shape.append(n) }
        let reference = Tensor(shape: shape, floats: expected)
        expectClose(try evaluate("MatMul", [a, b]), reference)
        expectClose(try runCompiled("MatMul", [a, b], activation: .clip(min: -1, max: 0.25)),
                    Tensor(shape: shape, floats: expected.map { min(max($0, -1), 0.25) }))
    }

    @Test func matMulErrors() throws {
        var random = LinearTestRandom(19)
        #expect(throws: WhittleError.self) { try evaluate("MatMul", [random.tensor([2, 3]), random.tensor([4, 2])]) }
        #expect(throws: WhittleError.self) { try evaluate("MatMul", [random.tensor([2, 2, 3]), random.tensor([3, 3, 2])]) }
    }

    // MARK: BatchNormalization

    @Test(arguments: [[3, 4], [2, 4, 5], [2, 4, 3, 5]])
    func batchNorm(shape: [Int]) throws {
        var random = LinearTestRandom(20)
        let x = random.tensor(shape)
        let scale = random.tensor([4]), bias = random.tensor([4]), mean = random.tensor([4])
        let variance = Tensor(shape: [4], floats: random.tensor([4]).floats.map { abs($0) + 0.1 })
        let inner = shape.dropFirst(2).reduce(1, *)
        let (sv, bv, mv, vv) = (scale.floats, bias.floats, mean.floats, variance.floats)
        let expected = x.floats.enumerated().map { index, value -> Float in
            let c = (index / inner) % 4
            return (value - mv[c]) / (vv[c] + 1e-3).squareRoot() * sv[c] + bv[c]
        }
        let reference = Tensor(shape: shape, floats: expected)
        let inputs = [x, scale, bias, mean, variance]
        expectClose(try evaluate("BatchNormalization", inputs, ["epsilon": .float(1e-3)]), reference)
        expectClose(try runCompiled("BatchNormalization", inputs, ["epsilon": .float(1e-3)]), reference)
    }

    @Test func batchNormErrors() throws {
        var random = LinearTestRandom(21)
        let x = random.tensor([1, 3, 2, 2]), p = random.tensor([3])
        #expect(throws: WhittleError.self) {
            try evaluate("BatchNormalization", [x, p, p, p, p], ["training_mode": .int(1)], opset: 15)
        }
        #expect(throws: WhittleError.self) { try evaluate("BatchNormalization", [x, p, p, p, random.tensor([4])]) }
        #expect(throws: WhittleError.self) {
            try evaluate("BatchNormalization", [x, p, p, p, p], outputs: ["y", "mean", "var"])
        }
    }

    // MARK: Pooling

    @Test func maxPoolPadsStridesDilations() throws {
        var random = LinearTestRandom(22)
        let x = random.tensor([2, 3, 9, 10])
        let attrs: [String: Attribute] = ["kernel_shape": ints([3, 2]), "strides": ints([2, 1]),
                                          "dilations": ints([1, 2]), "pads": ints([1, 0, 0, 1])]
        let y = try evaluate("MaxPool", [x], attrs)
        let output = [(9 + 1 - 3) / 2 + 1, (10 + 1 - 3) / 1 + 1]
        expectClose(y, referencePool(x, max: true, kernel: [3, 2], strides: [2, 1], dilations: [1, 2],
                                     padBegin: [1, 0], padEnd: [0, 1], output: output))
    }

    @Test func maxPoolCeilModeAndSame() throws {
        var random = LinearTestRandom(23)
        let x = random.tensor([1, 2, 6, 7])
        let floorMode = try evaluate("MaxPool", [x], ["kernel_shape": ints([3, 3]), "strides": ints([2, 2])])
        #expect(floorMode.shape == [1, 2, 2, 3])
        let ceil = try evaluate("MaxPool", [x], ["kernel_shape": ints([3, 3]), "strides": ints([2, 2]), "ceil_mode": .int(1)])
        #expect(ceil.shape == [1, 2, 3, 3])
        expectClose(ceil, referencePool(x, max: true, kernel: [3, 3], strides: [2, 2], padBegin: [0, 0], padEnd: [1, 0],
                                        output: [3, 3]))
        // Ceil mode drops a last window that would start in the end padding: in 5, k 2, s 2, pads 1/1.
        let dropped = try evaluate("MaxPool", [random.tensor([1, 1, 5, 5])],
                                   ["kernel_shape": ints([2, 2]), "strides": ints([2, 2]), "pads": ints([1, 1, 1, 1]), "ceil_mode": .int(1)])
        #expect(dropped.shape == [1, 1, 3, 3])
        let same = try evaluate("MaxPool", [x], ["kernel_shape": ints([3, 3]), "strides": ints([2, 2]), "auto_pad": .string("SAME_LOWER")])
        // in 6: out 3, total 1 -> (1, 0); in 7: out 4, total 2 -> (1, 1).
        expectClose(same, referencePool(x, max: true, kernel: [3, 3], strides: [2, 2], padBegin: [1, 1], padEnd: [0, 1],
                                        output: [3, 4]))
    }

    @Test(arguments: [false, true])
    func averagePool(includePad: Bool) throws {
        var random = LinearTestRandom(24)
        let x = random.tensor([2, 2, 7, 8])
        let attrs: [String: Attribute] = ["kernel_shape": ints([3, 3]), "strides": ints([2, 2]), "pads": ints([1, 0, 1, 0]),
                                          "count_include_pad": .int(includePad ? 1 : 0), "ceil_mode": .int(1)]
        let y = try evaluate("AveragePool", [x], attrs)
        // Ceil mode: H ceil((7 + 2 - 3) / 2) + 1 = 4; W ceil((8 - 3) / 2) + 1 = 4, its last window
        // reaches one column past the input (and past the padding).
        expectClose(y, referencePool(x, max: false, kernel: [3, 3], strides: [2, 2], padBegin: [1, 0], padEnd: [1, 0],
                                     output: [4, 4], includePad: includePad))
        let same = try evaluate("AveragePool", [x], ["kernel_shape": ints([2, 3]), "auto_pad": .string("SAME_UPPER"),
                                                     "count_include_pad": .int(includePad ? 1 : 0)])
        expectClose(same, referencePool(x, max: false, kernel: [2, 3], strides: [1, 1], padBegin: [0, 1], padEnd: [1, 1],
                                        output: [7, 8], includePad: includePad))
    }

    @Test func pool1DAndGlobalAverage() throws {
        var random = LinearTestRandom(25)
        let x = random.tensor([2, 3, 11])
        let y = try evaluate("AveragePool", [x], ["kernel_shape": ints([4]), "strides": ints([3]), "pads": ints([1, 2])])
        let reference = referencePool(x.reshaped([2, 3, 1, 11]), max: false, kernel: [1, 4], strides: [1, 3],
                                      padBegin: [0, 1], padEnd: [0, 2], output: [1, 4])
        expectClose(y, reference.reshaped([2, 3, 4]))
        let image = random.tensor([3, 5, 6, 7])
        let global = try evaluate("GlobalAveragePool", [image])
        let values = image.floats
        let expected = (0..<15).map { plane in values[(plane * 42)..<(plane * 42 + 42)].reduce(0, +) / 42 }
        expectClose(global, Tensor(shape: [3, 5, 1, 1], floats: expected))
    }

    @Test func poolErrors() throws {
        var random = LinearTestRandom(26)
        let x = random.tensor([1, 2, 5, 5])
        #expect(throws: WhittleError.self) {
            try evaluate("MaxPool", [x], ["kernel_shape": ints([2, 2])], outputs: ["y", "indices"])
        }
        let withoutIndices = try evaluate("MaxPool", [x], ["kernel_shape": ints([2, 2])], outputs: ["y", ""])
        #expect(withoutIndices.shape == [1, 2, 4, 4])
        #expect(throws: WhittleError.self) { try evaluate("MaxPool", [x]) }
        #expect(throws: WhittleError.self) { try evaluate("AveragePool", [x], ["kernel_shape": ints([3])]) }
        #expect(throws: WhittleError.self) { try evaluate("MaxPool", [x], ["kernel_shape": ints([7, 7])]) }
        #expect(throws: WhittleError.self) { try evaluate("MaxPool", [random.tensor([1, 1, 2, 2, 2])], ["kernel_shape": ints([1, 1, 1])]) }
        #expect(throws: WhittleError.self) { try evaluate("GlobalAveragePool", [random.tensor([2, 3])]) }
    }
}

/// ConvTranspose (ONNX opsets 11-18): 1-D and 2-D, groups, strides, dilations, pads,
/// output_padding, output_shape and auto_pad; computed as GEMM + col2im.
enum LinearConvTranspose {
    struct Layout: Sendable {
        var batch: Int
        var inChannels: Int
        var outChannels: Int
        var groups: Int
        /// The transposed convolution's geometry seen from the output: `in*` are the output
        /// sizes of the node, `out*` its input sizes (the forward convolution it inverts).
        var window: LinearPlanarWindow
        var hasBias: Bool
        var outputShape: [Int]
    }

    /// Output size per spatial axis (ONNX ConvTranspose):
    /// `out = stride * (in - 1) + output_padding + ((k - 1) * d + 1) - pad_begin - pad_end`.
    /// With `output_shape` (or SAME auto_pad, where `out = in * stride`) the total padding is
    /// derived from it and split with the odd element at the end for SAME_UPPER and at the
    /// beginning otherwise.
    static func layout(_ context: NodeContext) throws -> Layout {
        let x = try context.input(0)
        let w = try context.input(1)
        let spatial = try linearSpatialRank(context, x, what: "ConvTranspose")
        guard w.rank == x.rank else {
            throw context.error("weight shape \(w.shape) must have rank \(x.rank) (C x M/group x kernel) for input \(x)")
        }
        let groups = try context.int("group", default: 1)
        let channels = x.shape[1]
        guard groups >= 1, channels % groups == 0 else {
            throw context.error("group \(groups) must divide input channels \(channels)")
        }
        guard w.shape[0] == channels else {
            throw context.error("weight shape \(w.shape) must start with the input channel count \(channels)", kind: .shapeMismatch)
        }
        let outChannels = w.shape[1] * groups
        let kernel = Array(w.shape.dropFirst(2))
        if context.hasAttribute("kernel_shape") {
            let declared = try context.ints("kernel_shape")
            guard declared == kernel else {
                throw context.error("kernel_shape \(declared) does not match weight shape \(w.shape)", kind: .shapeMismatch)
            }
        }
        let hasBias = context.hasInput(2)
        if hasBias {
            let b = try context.input(2)
            guard b.shape == [outChannels] else {
                throw context.error("bias shape \(b.shape) must be [\(outChannels)]", kind: .shapeMismatch)
            }
        }
        let input = Array(x.shape.suffix(spatial))
        let ones = Array(repeating: 1, count: spatial)
        let strides = try context.ints("strides", default: ones)
        let dilations = try context.ints("dilations", default: ones)
        let outputPadding = try context.ints("output_padding", default: Array(repeating: 0, count: spatial))
        let autoPad = try LinearAutoPad.parse(context)
        guard strides.count == spatial, strides.allSatisfy({ $0 > 0 }) else {
            throw context.error("strides \(strides) must hold \(spatial) positive values")
        }
        guard dilations.count == spatial, dilations.allSatisfy({ $0 > 0 }) else {
            throw context.error("dilations \(dilations) must hold \(spatial) positive values")
        }
        guard outputPadding.count == spatial, outputPadding.allSatisfy({ $0 >= 0 }) else {
            throw context.error("output_padding \(outputPadding) must hold \(spatial) non-negative values")
        }
        var requested: [Int]? = nil
        if context.hasAttribute("output_shape") {
            let shape = try context.ints("output_shape")
            guard shape.count == spatial || shape.count == spatial + 2 else {
                throw context.error("output_shape \(shape) must hold \(spatial) spatial sizes")
            }
            requested = Array(shape.suffix(spatial))
        } else if autoPad == .sameUpper || autoPad == .sameLower {
            requested = zip(input, strides).map { $0 * $1 }
        }
        var padBegin: [Int] = [], padEnd: [Int] = [], output: [Int] = []
        let pads = try context.ints("pads", default: Array(repeating: 0, count: 2 * spatial))
        for axis in 0..<spatial {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1
            let full = strides[axis] * (input[axis] - 1) + outputPadding[axis] + extent
            if let requested {
                let total = full - requested[axis]
                let half = total >= 0 ? total / 2 : -((-total) / 2)
                if autoPad == .sameUpper {
                    padBegin.append(half)
                    padEnd.append(total - half)
                } else {
                    padBegin.append(total - half)
                    padEnd.append(half)
                }
                output.append(requested[axis])
            } else if autoPad == .valid {
                padBegin.append(0)
                padEnd.append(0)
                output.append(full)
            } else {
                guard pads.count == 2 * spatial, pads.allSatisfy({ $0 >= 0 }) else {
                    throw context.error("pads \(pads) must hold \(2 * spatial) non-negative values")
                }
                padBegin.append(pads[axis])
                padEnd.append(pads[spatial + axis])
                output.append(full - pads[axis] - pads[spatial + axis])
            }
        }
        guard output.allSatisfy({ $0 > 0 }) else {
            throw context.error("empty output \(output) for input \(x)")
        }
        let window = LinearWindow(input: output, kernel: kernel, strides: strides, dilations: dilations,
                                  padBegin: padBegin, padEnd: padEnd, output: input)
        return Layout(batch: x.shape[0], inChannels: channels, outChannels: outChannels, groups: groups,
                      window: window.planar, hasBias: hasBias, outputShape: [x.shape[0], outChannels] + output)
    }

    static func inferShapes(_ context: NodeContext) throws -> [TensorInfo] {
        let layout = try layout(context)
        return [TensorInfo(shape: layout.outputShape, elementType: try context.input(0).elementType)]
    }

    static func makeKernel(_ context: NodeContext) throws -> any Kernel {
        let layout = try layout(context)
        return TransposeKernel(layout: layout, columnRanges: LinearTable(layout.window.columnRanges()))
    }

    /// Per image and group: `cols[(M/g * kh * kw) x HW] = W_g^T * X_g` by GEMM, then col2im
    /// scatters every column entry to output position `i * stride - pad + k * dilation`
    /// (split over output channels, which own disjoint planes).
    struct TransposeKernel: Kernel {
        let layout: Layout
        /// Per horizontal tap, the input columns `[lo, hi)` that land inside the output.
        let columnRanges: LinearTable<Int>

        var scratchCount: Int {
            layout.outChannels / layout.groups * layout.window.kH * layout.window.kW * layout.window.outPlane
        }

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let x = inputs[0], w = inputs[1]
            let bias: UnsafePointer<Float>? = layout.hasBias ? inputs[2] : nil
            let y = outputs[0]
            // `win.out*` is this node's input plane, `win.in*` its output plane.
            let win = layout.window
            let channelsPerGroup = layout.inChannels / layout.groups
            let outPerGroup = layout.outChannels / layout.groups
            let taps = win.kH * win.kW
            let rows = outPerGroup * taps
            let inPlane = win.outPlane, outPlane = win.inPlane
            let ranges = columnRanges
            for image in 0..<layout.batch {
                for group in 0..<layout.groups {
                    let source = x + (image * layout.inChannels + group * channelsPerGroup) * inPlane
                    linearGemm(transA: true, transB: false, m: rows, n: inPlane, k: channelsPerGroup, alpha: 1,
                               a: w + group * channelsPerGroup * rows, lda: rows, b: source, ldb: inPlane,
                               beta: 0, c: scratch, ldc: inPlane)
                    parallelFor(outPerGroup) { m in
                        let channel = group * outPerGroup + m
                        let destination = y + (image * layout.outChannels + channel) * outPlane
                        destination.update(repeating: bias?[channel] ?? 0, count: outPlane)
                        for tap in 0..<taps {
                            let ky = tap / win.kW, kx = tap % win.kW
                            let column = scratch + (m * taps + tap) * inPlane
                            let lo = ranges[2 * kx], hi = ranges[2 * kx + 1]
                            let offset = kx * win.dilationW - win.padLeft
                            for iy in 0..<win.outH {
                                let oy = iy * win.strideH - win.padTop + ky * win.dilationH
                                if oy < 0 || oy >= win.inH { continue }
                                let target = destination + oy * win.inW
                                let values = column + iy * win.outW
                                if hi <= lo { continue }
                                let stride = win.strideW, count = hi - lo
                                let into = target + (lo * stride + offset), from = values + lo
                                if stride == 1 {
                                    for i in 0..<count { into[i] += from[i] }
                                } else {
                                    for i in 0..<count { into[i &* stride] += from[i] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

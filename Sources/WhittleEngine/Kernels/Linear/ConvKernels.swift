/// Conv (ONNX opsets 11-18): 1-D and 2-D, groups, depthwise, strides, dilations, explicit
/// and automatic padding, optional bias, optional fused activation.
enum LinearConv {
    /// Everything the Conv kernels need, checked against the weights.
    struct Layout: Sendable {
        var batch: Int
        var inChannels: Int
        var outChannels: Int
        var groups: Int
        var window: LinearPlanarWindow
        var hasBias: Bool
        var outputShape: [Int]
    }

    static func layout(_ context: NodeContext) throws -> Layout {
        let x = try context.input(0)
        let w = try context.input(1)
        let spatial = try linearSpatialRank(context, x, what: "Conv")
        guard w.rank == x.rank else {
            throw context.error("weight shape \(w.shape) must have rank \(x.rank) (M x C/group x kernel) for input \(x)")
        }
        let groups = try context.int("group", default: 1)
        let channels = x.shape[1], outChannels = w.shape[0]
        guard groups >= 1, channels % groups == 0, outChannels % groups == 0 else {
            throw context.error("group \(groups) must divide input channels \(channels) and output channels \(outChannels)")
        }
        guard w.shape[1] * groups == channels else {
            throw context.error("weight shape \(w.shape) expects \(w.shape[1] * groups) input channels (group \(groups)), input \(x) has \(channels)", kind: .shapeMismatch)
        }
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
        let window = try LinearWindow.resolve(context, input: Array(x.shape.suffix(spatial)), kernel: kernel, ceilMode: false)
        guard window.output.allSatisfy({ $0 > 0 }) else {
            throw context.error("empty output \(window.output) for input \(x)")
        }
        return Layout(batch: x.shape[0], inChannels: channels, outChannels: outChannels, groups: groups,
                      window: window.planar, hasBias: hasBias,
                      outputShape: [x.shape[0], outChannels] + window.output)
    }

    static func inferShapes(_ context: NodeContext) throws -> [TensorInfo] {
        let layout = try layout(context)
        return [TensorInfo(shape: layout.outputShape, elementType: try context.input(0).elementType)]
    }

    static func makeKernel(_ context: NodeContext, activation: FusedActivation) throws -> any Kernel {
        let layout = try layout(context)
        if layout.groups == layout.inChannels && layout.groups > 1 {
            // Depthwise: direct convolution over padded, phase-split planes (DepthwiseConvKernel.swift).
            return LinearDepthwiseKernel(layout: layout, activation: activation, threads: EngineThreads.count)
        }
        return GemmKernel(layout: layout, activation: activation, columnRanges: LinearTable(layout.window.columnRanges()))
    }

    /// General convolution as GEMM: per group, `Y[M/g x P] = W[M/g x K] * cols[K x P]` with
    /// `K = C/g * kh * kw`. For a 1x1, stride-1, unpadded convolution the NCHW image already
    /// is the column matrix, so the GEMM reads it directly; otherwise im2col fills the scratch
    /// buffer. When an output plane is small, several images share one GEMM (their columns side
    /// by side) and the result is scattered back with bias and activation.
    struct GemmKernel: Kernel {
        let layout: Layout
        let activation: FusedActivation
        let columnRanges: LinearTable<Int>
        /// 1x1 kernel, unit strides, no padding: X is the column matrix.
        let pointwise: Bool
        /// Images packed into one GEMM.
        let imagesPerGemm: Int
        /// Output columns per GEMM when a bias/activation pass follows (about 256 KB of output).
        let epilogueBlock: Int
        let scratchCount: Int

        init(layout: Layout, activation: FusedActivation, columnRanges: LinearTable<Int>) {
            self.layout = layout
            self.activation = activation
            self.columnRanges = columnRanges
            let win = layout.window
            pointwise = win.kH == 1 && win.kW == 1 && win.strideH == 1 && win.strideW == 1
                && win.padTop == 0 && win.padLeft == 0 && win.padBottom == 0 && win.padRight == 0
            let depth = layout.inChannels / layout.groups * win.kH * win.kW
            let outPerGroup = layout.outChannels / layout.groups
            // Batch small planes so a GEMM has at least ~1024 columns, within ~16 MB of scratch.
            var images = 1
            if win.outPlane < 256 {
                images = min(layout.batch, max(1, 1024 / win.outPlane))
                while images > 1 && (depth + outPerGroup) * images * win.outPlane > 4 << 20 { images -= 1 }
            }
            imagesPerGemm = images
            epilogueBlock = max(256, (65_536 / max(1, outPerGroup)) / 64 * 64)
            if images > 1 {
                scratchCount = (depth + outPerGroup) * images * win.outPlane
            } else {
                scratchCount = pointwise ? 0 : depth * win.outPlane
            }
        }

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let x = inputs[0], w = inputs[1]
            let bias: UnsafePointer<Float>? = layout.hasBias ? inputs[2] : nil
            let y = outputs[0]
            let win = layout.window
            let groups = layout.groups, channels = layout.inChannels, outChannels = layout.outChannels
            let channelsPerGroup = channels / groups, outPerGroup = outChannels / groups
            let depth = channelsPerGroup * win.kH * win.kW
            let plane = win.outPlane
            let activation = self.activation
            let needsEpilogue = bias != nil || activation != .none
            var first = 0
            while first < layout.batch {
                let count = min(imagesPerGemm, layout.batch - first)
                for group in 0..<groups {
                    let weights = w + group * outPerGroup * depth
                    if count == 1 {
                        let columns: UnsafePointer<Float>
                        if pointwise {
                            columns = x + (first * channels + group * channelsPerGroup) * win.inPlane
                        } else {
                            im2col(x, firstImage: first, images: 1, group: group, into: scratch)
                            columns = UnsafePointer(scratch)
                        }
                        let result = y + (first * outChannels + group * outPerGroup) * plane
                        if !needsEpilogue {
                            linearGemm(transA: false, transB: false, m: outPerGroup, n: plane, k: depth, alpha: 1,
                                       a: weights, lda: depth, b: columns, ldb: plane, beta: 0, c: result, ldc: plane)
                            continue
                        }
                        // Column blocks small enough to stay in cache for the bias/activation pass.
                        var start = 0
                        while start < plane {
                            let width = min(epilogueBlock, plane - start)
                            linearGemm(transA: false, transB: false, m: outPerGroup, n: width, k: depth, alpha: 1,
                                       a: weights, lda: depth, b: columns + start, ldb: plane, beta: 0,
                                       c: result + start, ldc: plane)
                            parallelFor(outPerGroup, grain: max(1, 2048 / width)) { m in
                                let channel = group * outPerGroup + m
                                linearBiasActivation(result + m * plane + start, count: width,
                                                     bias: bias?[channel] ?? 0, activation: activation)
                            }
                            start += width
                        }
                    } else {
                        let width = count * plane
                        im2col(x, firstImage: first, images: count, group: group, into: scratch)
                        let product = scratch + depth * width
                        linearGemm(transA: false, transB: false, m: outPerGroup, n: width, k: depth, alpha: 1,
                                   a: weights, lda: depth, b: scratch, ldb: width, beta: 0, c: product, ldc: width)
                        parallelFor(outPerGroup * count) { index in
                            let m = index / count, image = index % count
                            let channel = group * outPerGroup + m
                            linearCopyBiasActivation(from: product + m * width + image * plane,
                                                     to: y + ((first + image) * outChannels + channel) * plane,
                                                     count: plane, bias: bias?[channel] ?? 0, activation: activation)
                        }
                    }
                }
                first += count
            }
        }

        /// Writes the column matrix `[C/g * kh * kw, images * P]` of `images` consecutive
        /// images for one group: row `(c, ky, kx)`, column `(image, oy, ox)` holds
        /// `X[n, g * C/g + c, oy * sh - padTop + ky * dh, ox * sw - padLeft + kx * dw]`, or 0 in
        /// the padding.
        func im2col(_ x: UnsafePointer<Float>, firstImage: Int, images: Int, group: Int,
                    into columns: UnsafeMutablePointer<Float>) {
            let win = layout.window
            let channels = layout.inChannels, channelsPerGroup = channels / layout.groups
            let taps = win.kH * win.kW
            let width = images * win.outPlane
            let ranges = columnRanges
            parallelFor(channelsPerGroup * taps) { row in
                let c = row / taps, tap = row % taps
                let ky = tap / win.kW, kx = tap % win.kW
                let lo = ranges[2 * kx], hi = ranges[2 * kx + 1]
                let offset = kx * win.dilationW - win.padLeft
                let outW = win.outW
                for image in 0..<images {
                    let source = x + ((firstImage + image) * channels + group * channelsPerGroup + c) * win.inPlane
                    let destination = columns + row * width + image * win.outPlane
                    for oy in 0..<win.outH {
                        let out = destination + oy * outW
                        let iy = oy * win.strideH - win.padTop + ky * win.dilationH
                        if iy < 0 || iy >= win.inH {
                            out.update(repeating: 0, count: outW)
                            continue
                        }
                        let input = source + iy * win.inW
                        if lo > 0 { out.update(repeating: 0, count: lo) }
                        if hi < outW { (out + hi).update(repeating: 0, count: outW - hi) }
                        if hi > lo {
                            let stride = win.strideW, source = input + (lo * stride + offset), target = out + lo
                            if stride == 1 {
                                target.update(from: source, count: hi - lo)
                            } else {
                                for i in 0..<(hi - lo) { target[i] = source[i &* stride] }
                            }
                        }
                    }
                }
            }
        }
    }
}

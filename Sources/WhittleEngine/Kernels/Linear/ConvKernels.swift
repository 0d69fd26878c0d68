/// Conv (ONNX opsets 11-18): 1-D and 2-D, groups, depthwise, strides, dilations, explicit
/// and automatic padding, optional bias, optional fused activation.
import CWhittleKernels

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

    static func makeKernel(_ context: NodeContext, activation: FusedActivation,
                           quantizer: FusedQuantizer? = nil) throws -> any Kernel {
        let layout = try layout(context)
        if layout.groups == layout.inChannels && layout.groups > 1 {
            // Depthwise: direct convolution over padded, phase-split planes (DepthwiseConvKernel.swift).
            return LinearDepthwiseKernel(layout: layout, activation: activation, quantizer: quantizer,
                                         threads: ProcessInfoCores.active)
        }
        return GemmKernel(layout: layout, activation: activation, quantizer: quantizer,
                          columnRanges: LinearTable(layout.window.columnRanges()))
    }

    /// General convolution as GEMM: per group, `Y[M/g x P] = W[M/g x K] * cols[K x P]` with
    /// `K = C/g * kh * kw`.
    ///
    /// The work is cut into independent tasks that each fit in a core's L2 cache, and the
    /// engine's threads take contiguous runs of tasks while OpenBLAS runs single-threaded
    /// inside each one (no fork/join per GEMM, no idle BLAS threads competing for the cores):
    /// - large planes: a task is one image and one block of output columns. For a 1x1,
    ///   stride-1, unpadded convolution the NCHW image already is the column matrix; otherwise
    ///   the task fills its own scratch slice with just its block of im2col columns. The output
    ///   block is prefilled with the bias, the GEMM accumulates into it (beta = 1, so OpenBLAS
    ///   skips its zeroing pass) and the activation clamps it (and a fused quantizer rounds it)
    ///   while it is still in cache.
    /// - small planes: a task is a run of images whose columns sit side by side in one GEMM,
    ///   scattered back per image with bias and activation.
    /// When there are too few tasks to keep every thread busy (batch 1 with a small plane),
    /// the tasks run one after the other with OpenBLAS threads instead.
    struct GemmKernel: Kernel {
        let layout: Layout
        let activation: FusedActivation
        let quantizer: FusedQuantizer?
        let columnRanges: LinearTable<Int>
        /// 1x1 kernel, unit strides, no padding: X is the column matrix.
        let pointwise: Bool
        /// Images packed into one GEMM (small planes), else 1.
        let imagesPerGemm: Int
        /// Output columns per task when `imagesPerGemm == 1`.
        let blockWidth: Int
        /// Worker slices in the scratch buffer.
        let workers: Int
        let scratchPerWorker: Int
        var scratchCount: Int { workers * scratchPerWorker }

        /// Floats of output block plus column block a task keeps hot (about 384 KB of a 1 MB L2).
        static let taskCacheFloats = 96 * 1024

        /// `cacheFloats` and `minimumBlockWidth` size the column blocks (tests shrink them to
        /// make blocks that start and end inside output rows). `threads` defaults to the
        /// machine's cores, not the current engine thread setting: the blocking (every GEMM's
        /// shape) is the same under any `--threads` or any temporary `EngineThreads.set`;
        /// running with fewer threads takes the same tasks in turn.
        init(layout: Layout, activation: FusedActivation, quantizer: FusedQuantizer? = nil, columnRanges: LinearTable<Int>,
             threads: Int = ProcessInfoCores.active, cacheFloats: Int = GemmKernel.taskCacheFloats,
             minimumBlockWidth: Int = 256) {
            self.layout = layout
            self.activation = activation
            self.quantizer = quantizer
            self.columnRanges = columnRanges
            let win = layout.window
            pointwise = win.kH == 1 && win.kW == 1 && win.strideH == 1 && win.strideW == 1
                && win.padTop == 0 && win.padLeft == 0 && win.padBottom == 0 && win.padRight == 0
            let depth = layout.inChannels / layout.groups * win.kH * win.kW
            let outPerGroup = layout.outChannels / layout.groups
            let plane = win.outPlane
            workers = max(1, threads)
            if plane < 256 && layout.batch > 1 {
                // ~1024 columns per GEMM, but at least one run of images per worker when the
                // batch allows, runs of equal length, and at most 4 M floats of scratch each.
                var images = min(layout.batch, max(1, 1024 / plane))
                images = min(images, (layout.batch + min(layout.batch, workers) - 1) / min(layout.batch, workers))
                while images > 1 && (depth + outPerGroup) * images * plane > 4 << 20 { images -= 1 }
                let runs = (layout.batch + images - 1) / images
                images = (layout.batch + runs - 1) / runs
                imagesPerGemm = images
                blockWidth = plane
                scratchPerWorker = (depth + outPerGroup) * images * plane
            } else {
                imagesPerGemm = 1
                let perColumn = outPerGroup + (pointwise ? 0 : depth)
                var width = max(1, minimumBlockWidth, cacheFloats / max(1, perColumn))
                if width >= 64 { width = width / 64 * 64 }
                if width >= plane {
                    width = plane
                } else {
                    // Equal blocks rather than a short last one.
                    let blocks = (plane + width - 1) / width
                    width = (plane + blocks - 1) / blocks
                }
                blockWidth = width
                scratchPerWorker = pointwise ? 0 : depth * width
            }
        }

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let x = inputs[0], w = inputs[1]
            let bias: UnsafePointer<Float>? = layout.hasBias ? inputs[2] : nil
            let y = outputs[0]
            let plane = layout.window.outPlane
            let blocks = (plane + blockWidth - 1) / blockWidth
            let tasks = imagesPerGemm > 1 ? (layout.batch + imagesPerGemm - 1) / imagesPerGemm : layout.batch * blocks
            let threads = min(workers, EngineThreads.count)
            let perTask: (Int, UnsafeMutablePointer<Float>) -> Void = { task, slice in
                if imagesPerGemm > 1 {
                    let first = task * imagesPerGemm
                    runImages(x, w, bias, y, first: first, count: min(imagesPerGemm, layout.batch - first), scratch: slice)
                } else {
                    let start = (task % blocks) * blockWidth, image = task / blocks
                    runBlock(x, w, bias, image: image, start: start, width: min(blockWidth, plane - start),
                             into: y + image * layout.outChannels * plane + start, pitch: plane, scratch: slice)
                }
            }
            if threads > 1 && (tasks >= 2 * threads || (tasks >= threads && tasks % threads == 0)) {
                withSingleThreadedBLAS {
                    parallelWorkers(threads, tasks: tasks) { task, worker in
                        perTask(task, scratch + worker * scratchPerWorker)
                    }
                }
            } else {
                for task in 0..<tasks { perTask(task, scratch) }
            }
        }

        /// One image, output columns `[start, start + width)`, every group: output channel `m`'s
        /// block goes to `destination + m * pitch` (the NCHW output, or a strip buffer).
        func runBlock(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                      image: Int, start: Int, width: Int, into destination: UnsafeMutablePointer<Float>, pitch: Int,
                      scratch: UnsafeMutablePointer<Float>) {
            let win = layout.window
            let groups = layout.groups, channels = layout.inChannels
            let channelsPerGroup = channels / groups, outPerGroup = layout.outChannels / groups
            let depth = channelsPerGroup * win.kH * win.kW
            let plane = win.outPlane
            let (low, high) = activation.bounds
            for group in 0..<groups {
                let columns: UnsafePointer<Float>
                let columnStride: Int
                if pointwise {
                    columns = x + (image * channels + group * channelsPerGroup) * win.inPlane + start
                    columnStride = plane
                } else {
                    im2colBlock(x, image: image, group: group, start: start, width: width, into: scratch)
                    columns = UnsafePointer(scratch)
                    columnStride = width
                }
                let result = destination + group * outPerGroup * pitch
                for m in 0..<outPerGroup {
                    whittle_fill(result + m * pitch, width, bias?[group * outPerGroup + m] ?? 0)
                }
                linearGemm(transA: false, transB: false, m: outPerGroup, n: width, k: depth, alpha: 1,
                           a: w + group * outPerGroup * depth, lda: depth, b: columns, ldb: columnStride,
                           beta: 1, c: result, ldc: pitch)
                if activation != .none || quantizer != nil {
                    for m in 0..<outPerGroup {
                        let row = result + m * pitch
                        if activation != .none { whittle_bias_clamp(row, width, 0, low, high) }
                        quantizer.apply(row, count: width)
                    }
                }
            }
        }

        /// Images `[first, first + count)` side by side in one GEMM per group, then scattered
        /// to NCHW with bias, activation and fused quantizer.
        private func runImages(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                               _ y: UnsafeMutablePointer<Float>, first: Int, count: Int,
                               scratch: UnsafeMutablePointer<Float>) {
            let win = layout.window
            let groups = layout.groups, outChannels = layout.outChannels
            let outPerGroup = outChannels / groups
            let depth = layout.inChannels / groups * win.kH * win.kW
            let plane = win.outPlane, width = count * plane
            let (low, high) = activation.bounds
            for group in 0..<groups {
                im2colImages(x, firstImage: first, images: count, group: group, into: scratch)
                let product = scratch + depth * width
                linearGemm(transA: false, transB: false, m: outPerGroup, n: width, k: depth, alpha: 1,
                           a: w + group * outPerGroup * depth, lda: depth, b: scratch, ldb: width, beta: 0,
                           c: product, ldc: width)
                for m in 0..<outPerGroup {
                    let channel = group * outPerGroup + m
                    for image in 0..<count {
                        let destination = y + ((first + image) * outChannels + channel) * plane
                        whittle_copy_bias_clamp(product + m * width + image * plane, destination,
                                                plane, bias?[channel] ?? 0, low, high)
                        quantizer.apply(destination, count: plane)
                    }
                }
            }
        }

        /// The im2col columns `[start, start + width)` of one image and group: row
        /// `(c, ky, kx)`, column `p - start` holds `X[n, g * C/g + c, oy * sh - padTop + ky * dh,
        /// ox * sw - padLeft + kx * dw]` for output position `p = oy * outW + ox`, or 0 in the padding.
        func im2colBlock(_ x: UnsafePointer<Float>, image: Int, group: Int, start: Int, width: Int,
                         into columns: UnsafeMutablePointer<Float>) {
            let win = layout.window
            let channels = layout.inChannels, channelsPerGroup = channels / layout.groups
            let taps = win.kH * win.kW
            let outW = win.outW, end = start + width
            for row in 0..<(channelsPerGroup * taps) {
                let c = row / taps, tap = row % taps
                let ky = tap / win.kW, kx = tap % win.kW
                let lo = columnRanges[2 * kx], hi = columnRanges[2 * kx + 1]
                let offset = kx * win.dilationW - win.padLeft
                let source = x + (image * channels + group * channelsPerGroup + c) * win.inPlane
                let destination = columns + row * width - start
                let y0 = ky * win.dilationH - win.padTop
                // Output row `oy`, columns `[first, last)`: a one-row im2col of just that segment.
                func segment(_ oy: Int, _ first: Int, _ last: Int) {
                    let count = last - first
                    let segmentLo = min(max(lo - first, 0), count), segmentHi = max(min(hi - first, count), segmentLo)
                    whittle_im2col_tap(source, win.inH, win.inW, 1, count, win.strideH, win.strideW, oy * win.strideH + y0,
                                       offset + first * win.strideW, segmentLo, segmentHi, destination + oy * outW + first)
                }
                let firstRow = start / outW, lastRow = (end - 1) / outW
                if firstRow == lastRow {
                    segment(firstRow, start - firstRow * outW, end - firstRow * outW)
                    continue
                }
                // Partial rows at the block's ends, whole rows between them in one call.
                var fullFrom = firstRow, fullTo = lastRow + 1
                if start > firstRow * outW {
                    segment(firstRow, start - firstRow * outW, outW)
                    fullFrom += 1
                }
                if end < fullTo * outW {
                    segment(lastRow, 0, end - lastRow * outW)
                    fullTo -= 1
                }
                if fullTo > fullFrom {
                    whittle_im2col_tap(source, win.inH, win.inW, fullTo - fullFrom, outW, win.strideH, win.strideW,
                                       fullFrom * win.strideH + y0, offset, lo, hi, destination + fullFrom * outW)
                }
            }
        }

        /// Writes the column matrix `[C/g * kh * kw, images * P]` of `images` consecutive
        /// images for one group: row `(c, ky, kx)`, column `(image, oy, ox)` holds
        /// `X[n, g * C/g + c, oy * sh - padTop + ky * dh, ox * sw - padLeft + kx * dw]`, or 0 in
        /// the padding.
        func im2colImages(_ x: UnsafePointer<Float>, firstImage: Int, images: Int, group: Int,
                          into columns: UnsafeMutablePointer<Float>) {
            let win = layout.window
            let channels = layout.inChannels, channelsPerGroup = channels / layout.groups
            let taps = win.kH * win.kW
            let width = images * win.outPlane
            for row in 0..<(channelsPerGroup * taps) {
                let c = row / taps, tap = row % taps
                let ky = tap / win.kW, kx = tap % win.kW
                whittle_im2col_tap_images(x + (firstImage * channels + group * channelsPerGroup + c) * win.inPlane,
                                          channels * win.inPlane, images, win.inH, win.inW, win.outH, win.outW,
                                          win.strideH, win.strideW, ky * win.dilationH - win.padTop,
                                          kx * win.dilationW - win.padLeft, columnRanges[2 * kx], columnRanges[2 * kx + 1],
                                          columns + row * width, win.outPlane)
            }
        }
    }
}

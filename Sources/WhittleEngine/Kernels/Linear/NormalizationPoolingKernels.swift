/// BatchNormalization in inference form (ONNX opsets 11-18):
/// `y = (x - mean) / sqrt(var + epsilon) * scale + B`, per channel (axis 1), any rank >= 2.
enum LinearBatchNorm {
    static func check(_ context: NodeContext) throws -> (channels: Int, inner: Int, outer: Int) {
        let x = try context.input(0)
        guard x.rank >= 2 else { throw context.error("input must have rank >= 2, found \(x)") }
        if try context.int("training_mode", default: 0) != 0 {
            throw context.error("training_mode=1 is not supported (inference only)", kind: .unsupportedOperator)
        }
        if context.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw context.error("running mean/variance outputs are only produced in training mode, which is not supported",
                                kind: .unsupportedOperator)
        }
        let channels = x.shape[1]
        for index in 1...4 {
            let info = try context.input(index)
            guard info.count == channels, info.rank == 1 else {
                throw context.error("input #\(index) \(info) must be [\(channels)]", kind: .shapeMismatch)
            }
        }
        return (channels, x.shape.dropFirst(2).reduce(1, *), x.shape[0])
    }

    static func inferShapes(_ context: NodeContext) throws -> [TensorInfo] {
        let (channels, _, _) = try check(context)
        let x = try context.input(0)
        return [x] + context.node.outputs.dropFirst().map { _ in TensorInfo(shape: [channels], elementType: x.elementType) }
    }

    /// Precomputes `scale' = scale / sqrt(var + eps)` and `shift = B - mean * scale'` when all
    /// four parameters are constant; otherwise computes them at run time in scratch.
    static func makeKernel(_ context: NodeContext) throws -> any Kernel {
        let (channels, inner, outer) = try check(context)
        let epsilon = try context.float("epsilon", default: 1e-5)
        var folded: LinearTable<Float>? = nil
        if let scale = context.constant(1), let bias = context.constant(2),
           let mean = context.constant(3), let variance = context.constant(4) {
            let s = scale.floats, b = bias.floats, m = mean.floats, v = variance.floats
            var table = [Float](repeating: 0, count: 2 * channels)
            for c in 0..<channels {
                let factor = s[c] / (v[c] + epsilon).squareRoot()
                table[c] = factor
                table[channels + c] = b[c] - m[c] * factor
            }
            folded = LinearTable(table)
        }
        return Compiled(channels: channels, inner: inner, outer: outer, epsilon: epsilon, folded: folded)
    }

    struct Compiled: Kernel {
        let channels: Int, inner: Int, outer: Int
        let epsilon: Float
        /// `[scale' (C), shift (C)]` when the parameters are constant.
        let folded: LinearTable<Float>?

        var scratchCount: Int { folded == nil ? 2 * channels : 0 }

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let x = inputs[0], y = outputs[0]
            let table: UnsafePointer<Float>
            if let folded {
                table = UnsafePointer(folded.base)
            } else {
                let scale = inputs[1], bias = inputs[2], mean = inputs[3], variance = inputs[4]
                for c in 0..<channels {
                    let factor = scale[c] / (variance[c] + epsilon).squareRoot()
                    scratch[c] = factor
                    scratch[channels + c] = bias[c] - mean[c] * factor
                }
                table = UnsafePointer(scratch)
            }
            let channels = self.channels, inner = self.inner
            parallelFor(outer * channels, grain: max(1, 8192 / max(1, inner))) { plane in
                let c = plane % channels
                let factor = table[c], shift = table[channels + c]
                let source = x + plane * inner, target = y + plane * inner
                for i in 0..<inner { target[i] = source[i] * factor + shift }
            }
        }
    }
}

/// MaxPool and AveragePool (ONNX opsets 11-18) over 1-D or 2-D spatial dims.
enum LinearPool {
    enum Mode: Sendable { case max, average }

    static func window(_ context: NodeContext, mode: Mode) throws -> LinearWindow {
        let x = try context.input(0)
        let spatial = try linearSpatialRank(context, x, what: context.node.opType)
        if mode == .max && context.node.outputs.count > 1 && !context.node.outputs[1].isEmpty {
            throw context.error("the Indices output of MaxPool is not supported", kind: .unsupportedOperator)
        }
        let kernel = try context.ints("kernel_shape")
        guard kernel.count == spatial else {
            throw context.error("kernel_shape \(kernel) must hold \(spatial) values for input \(x)")
        }
        let ceilMode = try context.int("ceil_mode", default: 0) != 0
        let window = try LinearWindow.resolve(context, input: Array(x.shape.suffix(spatial)), kernel: kernel,
                                              ceilMode: ceilMode)
        guard window.output.allSatisfy({ $0 > 0 }) else {
            throw context.error("empty output \(window.output) for input \(x)")
        }
        return window
    }

    static func inferShapes(_ context: NodeContext, mode: Mode) throws -> [TensorInfo] {
        let window = try window(context, mode: mode)
        let x = try context.input(0)
        let y = TensorInfo(shape: Array(x.shape.prefix(2)) + window.output, elementType: x.elementType)
        // An omitted (empty-named) Indices output still gets an info so outputs stay parallel.
        return [y] + context.node.outputs.dropFirst().map { _ in TensorInfo(shape: y.shape, elementType: .int64) }
    }

    /// Precomputes, per output row and column, the first input index of the window and the
    /// range of taps that fall inside the input, plus the averaging divisor per axis:
    /// the taps inside the input, or with `count_include_pad` the taps inside the padded
    /// input (ONNX AveragePool). Windows with no tap inside the input produce 0.
    static func makeKernel(_ context: NodeContext, mode: Mode) throws -> any Kernel {
        let win = try window(context, mode: mode).planar
        let x = try context.input(0)
        let includePad = try mode == .average && context.int("count_include_pad", default: 0) != 0
        func axisTable(size: Int, out: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int) -> [Int] {
            var table: [Int] = []
            for o in 0..<out {
                let start = o * stride - padBegin
                var first = kernel, last = 0, padded = 0
                for tap in 0..<kernel {
                    let index = start + tap * dilation
                    if index >= 0 && index < size { first = min(first, tap); last = max(last, tap + 1) }
                    if index >= -padBegin && index < size + padEnd { padded += 1 }
                }
                if first >= last { first = 0; last = 0 }
                table += [start, first, last, includePad ? padded : last - first]
            }
            return table
        }
        let rows = axisTable(size: win.inH, out: win.outH, kernel: win.kH, stride: win.strideH,
                             dilation: win.dilationH, padBegin: win.padTop, padEnd: win.padBottom)
        let columns = axisTable(size: win.inW, out: win.outW, kernel: win.kW, stride: win.strideW,
                                dilation: win.dilationW, padBegin: win.padLeft, padEnd: win.padRight)
        return Compiled(planes: x.shape[0] * x.shape[1], window: win, mode: mode,
                      rows: LinearTable(rows), columns: LinearTable(columns))
    }

    struct Compiled: Kernel {
        let planes: Int
        let window: LinearPlanarWindow
        let mode: Mode
        /// Per output row / column: `[start, firstTap, endTap, divisor]`.
        let rows: LinearTable<Int>
        let columns: LinearTable<Int>

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let x = inputs[0], y = outputs[0]
            let win = window, rows = self.rows, columns = self.columns, mode = self.mode
            parallelFor(planes) { plane in
                let source = x + plane * win.inPlane
                let target = y + plane * win.outPlane
                for oy in 0..<win.outH {
                    let rowStart = rows[4 * oy], rowFirst = rows[4 * oy + 1], rowEnd = rows[4 * oy + 2]
                    let rowCount = rows[4 * oy + 3]
                    let out = target + oy * win.outW
                    for ox in 0..<win.outW {
                        let columnStart = columns[4 * ox], columnFirst = columns[4 * ox + 1]
                        let columnEnd = columns[4 * ox + 2]
                        if rowFirst >= rowEnd || columnFirst >= columnEnd {
                            out[ox] = 0
                            continue
                        }
                        switch mode {
                        case .max:
                            var best = -Float.infinity
                            for ty in rowFirst..<rowEnd {
                                let line = (rowStart + ty * win.dilationH) * win.inW + columnStart
                                for tx in columnFirst..<columnEnd { best = max(best, source[line + tx * win.dilationW]) }
                            }
                            out[ox] = best
                        case .average:
                            var sum: Float = 0
                            for ty in rowFirst..<rowEnd {
                                let line = (rowStart + ty * win.dilationH) * win.inW + columnStart
                                for tx in columnFirst..<columnEnd { sum += source[line + tx * win.dilationW] }
                            }
                            out[ox] = sum / Float(rowCount * columns[4 * ox + 3])
                        }
                    }
                }
            }
        }
    }
}

/// GlobalAveragePool: the mean over all spatial dimensions, kept as size-1 dimensions.
enum LinearGlobalAveragePool {
    static func inferShapes(_ context: NodeContext) throws -> [TensorInfo] {
        let x = try context.input(0)
        guard x.rank >= 3 else { throw context.error("input must be N x C x spatial, found \(x)") }
        return [TensorInfo(shape: Array(x.shape.prefix(2)) + Array(repeating: 1, count: x.rank - 2),
                           elementType: x.elementType)]
    }

    static func makeKernel(_ context: NodeContext) throws -> any Kernel {
        let x = try context.input(0)
        _ = try inferShapes(context)
        return Compiled(planes: x.shape[0] * x.shape[1], size: x.shape.dropFirst(2).reduce(1, *))
    }

    struct Compiled: Kernel {
        let planes: Int, size: Int

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let x = inputs[0], y = outputs[0], size = self.size
            parallelFor(planes, grain: max(1, 16_384 / max(1, size))) { plane in
                let source = x + plane * size
                // Eight running sums so the reduction vectorizes.
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
                var i = 0
                while i + 8 <= size {
                    s0 += source[i]; s1 += source[i + 1]; s2 += source[i + 2]; s3 += source[i + 3]
                    s4 += source[i + 4]; s5 += source[i + 5]; s6 += source[i + 6]; s7 += source[i + 7]
                    i += 8
                }
                var sum = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
                while i < size { sum += source[i]; i += 1 }
                y[plane] = size > 0 ? sum / Float(size) : 0
            }
        }
    }
}

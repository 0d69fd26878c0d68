import CWhittleKernels

/// Depthwise convolution (ONNX Conv with `group == C_in`; `C_out / C_in` output channels per
/// input channel), computed directly on one (image, input channel) plane at a time.
///
/// Each plane is copied once into a zero-padded, phase-split buffer: padded position
/// `(py, px) = (iy + padTop, ix + padLeft)` goes to phase plane `(py % strideH, px % strideW)`
/// at `(py / strideH, px / strideW)`, every phase plane `phaseRows x phaseWidth`. Kernel tap
/// `(ky, kx)` of output `(oy, ox)` reads padded `(oy * sH + ky * dH, ox * sW + kx * dW)`, which
/// is phase plane `((ky * dH) % sH, (kx * dW) % sW)` at `(oy + (ky * dH) / sH, ox + (kx * dW) / sW)`.
/// So every tap is one fixed offset `offset[tap]` into the buffer, and output row `oy` is
/// `y[oy, ox] = act(b + sum over taps of w[tap] * buffer[offset[tap] + oy * phaseWidth + ox])` over
/// contiguous `ox`: no border branches and no strided loads. The rows are computed straight
/// into the output, bias and fused activation included, by `whittle_depthwise_rows`
/// (CWhittleKernels: AVX2+FMA when the CPU has it, register-tiled rows, no masked stores); a
/// fused quantizer then rounds the plane while it is in cache.
///
/// Planes are split into one contiguous range per thread; each thread owns a slice of the
/// scratch buffer (its padded planes).
struct LinearDepthwiseKernel: Kernel {
    /// Vector width of the inner loops (floats).
    static var lanes: Int { 8 }
    typealias Vector = SIMD8<Float>

    let batch: Int
    let inChannels: Int
    let multiplier: Int
    let hasBias: Bool
    let activation: FusedActivation
    let quantizer: FusedQuantizer?
    let inH: Int, inW: Int, outH: Int, outW: Int
    let kH: Int, kW: Int
    let strideH: Int, strideW: Int
    let padTop: Int, padLeft: Int
    /// Padded extent actually read (rows, columns); input beyond it is never used.
    let paddedH: Int, paddedW: Int
    /// Size of one phase plane.
    let phaseRows: Int, phaseWidth: Int
    /// Floats per phase plane, including the vector overrun slack.
    let phaseStride: Int
    /// Floats of one thread's scratch slice: `strideH * strideW` phase planes.
    let sliceCount: Int
    /// Thread slices in the scratch buffer.
    let slices: Int
    let scratchCount: Int
    /// Offset of every tap (row-major `ky, kx`) in the phase buffer.
    let tapOffsets: LinearTable<Int>

    init(layout: LinearConv.Layout, activation: FusedActivation, quantizer: FusedQuantizer? = nil, threads: Int) {
        let win = layout.window
        batch = layout.batch
        inChannels = layout.inChannels
        multiplier = layout.outChannels / layout.inChannels
        hasBias = layout.hasBias
        self.activation = activation
        self.quantizer = quantizer
        inH = win.inH; inW = win.inW; outH = win.outH; outW = win.outW
        kH = win.kH; kW = win.kW
        strideH = win.strideH; strideW = win.strideW
        padTop = win.padTop; padLeft = win.padLeft
        paddedH = (win.outH - 1) * win.strideH + (win.kH - 1) * win.dilationH + 1
        paddedW = (win.outW - 1) * win.strideW + (win.kW - 1) * win.dilationW + 1
        phaseRows = (paddedH + win.strideH - 1) / win.strideH
        phaseWidth = (paddedW + win.strideW - 1) / win.strideW
        // A row's last (partial) vector may read up to `lanes - 1` floats past the last phase
        // plane row; the row kernel's contract asks for two vectors of slack.
        phaseStride = phaseRows * phaseWidth + 2 * Self.lanes
        sliceCount = win.strideH * win.strideW * phaseStride
        slices = max(1, threads)
        scratchCount = slices * sliceCount
        tapOffsets = LinearTable(Self.tapOffsets(win, phaseStride: phaseStride, phaseWidth: phaseWidth))
    }

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        let x = inputs[0], w = inputs[1]
        let bias: UnsafePointer<Float>? = hasBias ? inputs[2] : nil
        let y = outputs[0]
        let units = batch * inChannels
        let chunks = max(1, min(slices, EngineThreads.count, units))
        let planes = strideH * strideW * phaseStride
        let taps = kH * kW
        let outChannels = inChannels * multiplier
        let outPlane = outH * outW
        let (low, high) = activation.bounds
        parallelFor(chunks) { chunk in
            let buffer = scratch + chunk * sliceCount
            // Zero once: the padding positions are never written by the plane copies.
            buffer.update(repeating: 0, count: planes)
            for unit in (chunk * units / chunks)..<((chunk + 1) * units / chunks) {
                let image = unit / inChannels, channel = unit % inChannels
                fill(buffer, from: x + unit * inH * inW)
                for m in 0..<multiplier {
                    let outChannel = channel * multiplier + m
                    let target = y + (image * outChannels + outChannel) * outPlane
                    whittle_depthwise_rows(buffer, tapOffsets.base, taps, w + outChannel * taps, bias?[outChannel] ?? 0,
                                           low, high, outH, outW, phaseWidth, target)
                    quantizer.apply(target, count: outPlane)
                }
            }
        }
    }

    /// Offset of every tap (row-major `ky, kx`) in a phase buffer of `strideH * strideW` phase
    /// planes `phaseStride` floats apart, rows `phaseWidth` apart.
    static func tapOffsets(_ win: LinearPlanarWindow, phaseStride: Int, phaseWidth: Int) -> [Int] {
        var offsets: [Int] = []
        for ky in 0..<win.kH {
            for kx in 0..<win.kW {
                let row = ky * win.dilationH, column = kx * win.dilationW
                let phase = (row % win.strideH) * win.strideW + column % win.strideW
                offsets.append(phase * phaseStride + (row / win.strideH) * phaseWidth + column / win.strideW)
            }
        }
        return offsets
    }

    /// Copies one input plane into the phase planes (only the part of the padded extent that
    /// is read; the padding stays zero).
    @inline(__always)
    func fill(_ buffer: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>) {
        let rows = min(inH, paddedH - padTop)
        let columns = min(inW, paddedW - padLeft)
        if rows <= 0 || columns <= 0 { return }
        let sH = strideH, sW = strideW, pitch = phaseWidth
        for iy in 0..<rows {
            let py = iy + padTop
            Self.scatterRow(source + iy * inW, columns: columns, padLeft: padLeft, strideW: sW, phaseStride: phaseStride,
                            into: buffer + (py % sH) * sW * phaseStride + (py / sH) * pitch)
        }
    }

    /// Copies one input row of `columns` floats to padded columns `padLeft ..< padLeft + columns`
    /// of the phase planes: padded column `px` goes to phase `px % strideW`, position
    /// `px / strideW` of the row starting at `rowBase` (phase planes `phaseStride` apart).
    @inline(__always)
    static func scatterRow(_ input: UnsafePointer<Float>, columns: Int, padLeft: Int, strideW sW: Int, phaseStride: Int,
                           into rowBase: UnsafeMutablePointer<Float>) {
        if sW == 1 {
            (rowBase + padLeft).update(from: input, count: columns)
        } else if sW == 2 {
            // Even padded columns to phase 0, odd to phase 1.
            let first = padLeft & 1
            let a = rowBase + first * phaseStride + (padLeft >> 1)
            let b = rowBase + (1 - first) * phaseStride + ((padLeft + 1) >> 1)
            let pairs = columns >> 1
            var i = 0
            while i &+ 8 <= pairs {
                let v = UnsafeRawPointer(input + (i &<< 1)).loadUnaligned(as: SIMD16<Float>.self)
                store(v.evenHalf, a, i)
                store(v.oddHalf, b, i)
                i &+= 8
            }
            while i < pairs {
                a[i] = input[i &<< 1]
                b[i] = input[(i &<< 1) &+ 1]
                i &+= 1
            }
            if columns & 1 == 1 { a[pairs] = input[columns - 1] }
        } else {
            for ix in 0..<columns {
                let px = ix + padLeft
                rowBase[(px % sW) * phaseStride + px / sW] = input[ix]
            }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vector {
        UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vector.self)
    }
}

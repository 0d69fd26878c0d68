/// Depthwise convolution (ONNX Conv with `group == C_in`; `C_out / C_in` output channels per
/// input channel), computed directly on one (image, input channel) plane at a time.
///
/// Each plane is copied once into a zero-padded, phase-split buffer: padded position
/// `(py, px) = (iy + padTop, ix + padLeft)` goes to phase plane `(py % strideH, px % strideW)`
/// at `(py / strideH, px / strideW)`, every phase plane `phaseRows x phaseWidth`. Kernel tap
/// `(ky, kx)` of output `(oy, ox)` reads padded `(oy * sH + ky * dH, ox * sW + kx * dW)`, which
/// is phase plane `((ky * dH) % sH, (kx * dW) % sW)` at `(oy + (ky * dH) / sH, ox + (kx * dW) / sW)`.
/// So with the output laid out "flat" with the phase planes' row pitch (`q = oy * phaseWidth + ox`),
/// every tap is one fixed offset `offset[tap]` into the buffer, and the convolution is a 1-D sum
/// `flat[q] = sum over taps of w[tap] * buffer[offset[tap] + q]` over contiguous `q`: no border
/// branches, no strided loads, and 8-wide vector loops even for 7-wide rows. The few columns
/// `ox >= outW` of each flat row are computed and dropped when the rows are copied out with the
/// bias and the fused activation.
///
/// Planes are split into one contiguous range per thread; each thread owns a slice of the
/// scratch buffer (its padded planes and its flat output).
struct LinearDepthwiseKernel: Kernel {
    /// Vector width of the inner loops (floats).
    static var lanes: Int { 8 }
    typealias Vector = SIMD8<Float>

    let batch: Int
    let inChannels: Int
    let multiplier: Int
    let hasBias: Bool
    let activation: FusedActivation
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
    /// Flat outputs per plane (`(outH - 1) * phaseWidth + outW`) rounded up to the vector width.
    let flatCount: Int
    /// Floats of one thread's scratch slice: `strideH * strideW` phase planes, then the flat output.
    let sliceCount: Int
    /// Thread slices in the scratch buffer.
    let slices: Int
    let scratchCount: Int
    /// Offset of every tap (row-major `ky, kx`) in the phase buffer.
    let tapOffsets: LinearTable<Int>

    init(layout: LinearConv.Layout, activation: FusedActivation, threads: Int) {
        let win = layout.window
        batch = layout.batch
        inChannels = layout.inChannels
        multiplier = layout.outChannels / layout.inChannels
        hasBias = layout.hasBias
        self.activation = activation
        inH = win.inH; inW = win.inW; outH = win.outH; outW = win.outW
        kH = win.kH; kW = win.kW
        strideH = win.strideH; strideW = win.strideW
        padTop = win.padTop; padLeft = win.padLeft
        paddedH = (win.outH - 1) * win.strideH + (win.kH - 1) * win.dilationH + 1
        paddedW = (win.outW - 1) * win.strideW + (win.kW - 1) * win.dilationW + 1
        phaseRows = (paddedH + win.strideH - 1) / win.strideH
        phaseWidth = (paddedW + win.strideW - 1) / win.strideW
        // The last vector may read up to `lanes - 1` floats past the last phase plane row.
        phaseStride = phaseRows * phaseWidth + Self.lanes
        let lanes = Self.lanes
        flatCount = ((win.outH - 1) * phaseWidth + win.outW + lanes - 1) / lanes * lanes
        sliceCount = win.strideH * win.strideW * phaseStride + flatCount
        slices = max(1, threads)
        scratchCount = slices * sliceCount
        var offsets: [Int] = []
        for ky in 0..<win.kH {
            for kx in 0..<win.kW {
                let row = ky * win.dilationH, column = kx * win.dilationW
                let phase = (row % win.strideH) * win.strideW + column % win.strideW
                offsets.append(phase * phaseStride + (row / win.strideH) * phaseWidth + column / win.strideW)
            }
        }
        tapOffsets = LinearTable(offsets)
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
        parallelFor(chunks) { chunk in
            let buffer = scratch + chunk * sliceCount
            let flat = buffer + planes
            // Zero once: the padding positions are never written by the plane copies.
            buffer.update(repeating: 0, count: planes)
            for unit in (chunk * units / chunks)..<((chunk + 1) * units / chunks) {
                let image = unit / inChannels, channel = unit % inChannels
                fill(buffer, from: x + unit * inH * inW)
                for m in 0..<multiplier {
                    let outChannel = channel * multiplier + m
                    convolve(UnsafePointer(buffer), weights: w + outChannel * taps, into: flat)
                    let destination = y + (image * outChannels + outChannel) * outPlane
                    let biasValue = bias?[outChannel] ?? 0
                    for oy in 0..<outH {
                        linearCopyBiasActivation(from: flat + oy * phaseWidth, to: destination + oy * outW,
                                                 count: outW, bias: biasValue, activation: activation)
                    }
                }
            }
        }
    }

    /// Copies one input plane into the phase planes (only the part of the padded extent that
    /// is read; the padding stays zero).
    @inline(__always)
    func fill(_ buffer: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>) {
        let rows = min(inH, paddedH - padTop)
        let columns = min(inW, paddedW - padLeft)
        if rows <= 0 || columns <= 0 { return }
        let sH = strideH, sW = strideW, pitch = phaseWidth, phaseStride = self.phaseStride
        for iy in 0..<rows {
            let py = iy + padTop
            let input = source + iy * inW
            let rowBase = buffer + (py % sH) * sW * phaseStride + (py / sH) * pitch
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
                    Self.store(v.evenHalf, a, i)
                    Self.store(v.oddHalf, b, i)
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
    }

    /// `flat[q] = sum over taps of w[tap] * buffer[offset[tap] + q]` for `q` in `0..<flatCount`.
    @inline(__always)
    func convolve(_ buffer: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into flat: UnsafeMutablePointer<Float>) {
        let count = flatCount
        let o = tapOffsets
        if kH == 3 && kW == 3 {
            Self.nine(flat, count: count, buffer + o[0], buffer + o[1], buffer + o[2], buffer + o[3], buffer + o[4],
                      buffer + o[5], buffer + o[6], buffer + o[7], buffer + o[8], w)
            return
        }
        var first = true
        if kW == 5 {
            for ky in 0..<kH {
                let t = ky * 5
                Self.five(flat, count: count, first: first, buffer + o[t], buffer + o[t + 1], buffer + o[t + 2],
                          buffer + o[t + 3], buffer + o[t + 4], w + t)
                first = false
            }
            return
        }
        if kW == 3 {
            for ky in 0..<kH {
                let t = ky * 3
                Self.three(flat, count: count, first: first, buffer + o[t], buffer + o[t + 1], buffer + o[t + 2], w + t)
                first = false
            }
            return
        }
        for t in 0..<(kH * kW) {
            Self.one(flat, count: count, first: first, buffer + o[t], w[t])
            first = false
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

    /// All nine taps of a 3x3 window in one pass.
    @inline(__always)
    static func nine(_ out: UnsafeMutablePointer<Float>, count: Int,
                     _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>,
                     _ p3: UnsafePointer<Float>, _ p4: UnsafePointer<Float>, _ p5: UnsafePointer<Float>,
                     _ p6: UnsafePointer<Float>, _ p7: UnsafePointer<Float>, _ p8: UnsafePointer<Float>,
                     _ w: UnsafePointer<Float>) {
        let w0 = Vector(repeating: w[0]), w1 = Vector(repeating: w[1]), w2 = Vector(repeating: w[2])
        let w3 = Vector(repeating: w[3]), w4 = Vector(repeating: w[4]), w5 = Vector(repeating: w[5])
        let w6 = Vector(repeating: w[6]), w7 = Vector(repeating: w[7]), w8 = Vector(repeating: w[8])
        var q = 0
        while q < count {
            let top = w0 * load(p0, q) + w1 * load(p1, q) + w2 * load(p2, q)
            let middle = w3 * load(p3, q) + w4 * load(p4, q) + w5 * load(p5, q)
            let bottom = w6 * load(p6, q) + w7 * load(p7, q) + w8 * load(p8, q)
            store(top + middle + bottom, out, q)
            q &+= lanes
        }
    }

    /// One row of five taps, written (`first`) or accumulated into `out`.
    @inline(__always)
    static func five(_ out: UnsafeMutablePointer<Float>, count: Int, first: Bool,
                     _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>,
                     _ p3: UnsafePointer<Float>, _ p4: UnsafePointer<Float>, _ w: UnsafePointer<Float>) {
        let w0 = Vector(repeating: w[0]), w1 = Vector(repeating: w[1]), w2 = Vector(repeating: w[2])
        let w3 = Vector(repeating: w[3]), w4 = Vector(repeating: w[4])
        var q = 0
        if first {
            while q < count {
                let a = w0 * load(p0, q) + w1 * load(p1, q) + w2 * load(p2, q)
                let b = w3 * load(p3, q) + w4 * load(p4, q)
                store(a + b, out, q)
                q &+= lanes
            }
        } else {
            while q < count {
                let a = w0 * load(p0, q) + w1 * load(p1, q) + w2 * load(p2, q)
                let b = w3 * load(p3, q) + w4 * load(p4, q)
                store(load(out, q) + (a + b), out, q)
                q &+= lanes
            }
        }
    }

    /// One row of three taps, written (`first`) or accumulated into `out`.
    @inline(__always)
    static func three(_ out: UnsafeMutablePointer<Float>, count: Int, first: Bool,
                      _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>,
                      _ w: UnsafePointer<Float>) {
        let w0 = Vector(repeating: w[0]), w1 = Vector(repeating: w[1]), w2 = Vector(repeating: w[2])
        var q = 0
        if first {
            while q < count {
                store(w0 * load(p0, q) + w1 * load(p1, q) + w2 * load(p2, q), out, q)
                q &+= lanes
            }
        } else {
            while q < count {
                store(load(out, q) + (w0 * load(p0, q) + w1 * load(p1, q) + w2 * load(p2, q)), out, q)
                q &+= lanes
            }
        }
    }

    /// One tap, written (`first`) or accumulated into `out`.
    @inline(__always)
    static func one(_ out: UnsafeMutablePointer<Float>, count: Int, first: Bool, _ p: UnsafePointer<Float>, _ weight: Float) {
        let wv = Vector(repeating: weight)
        var q = 0
        if first {
            while q < count {
                store(wv * load(p, q), out, q)
                q &+= lanes
            }
        } else {
            while q < count {
                store(load(out, q) + wv * load(p, q), out, q)
                q &+= lanes
            }
        }
    }
}

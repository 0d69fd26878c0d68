import CWhittleKernels

/// A convolution computed as GEMM (groups 1) whose output, after an optional activation (and
/// an optional fused fake quantizer, in a quantization simulation), feeds nothing but a
/// depthwise convolution: MobileNet's 1x1 expansion (or the stem) and the
/// depthwise 3x3/5x5 after it. The pair runs one horizontal strip at a time, so the wide
/// intermediate tensor (6x the block's channels) never goes to memory and back.
///
/// For depthwise output rows `[oy0, oy1)` the depthwise reads padded input rows
/// `[oy0 * sH, (oy1 - 1) * sH + (kH - 1) * dH]`, i.e. input rows `[r0, r1)` once clipped to the
/// image. Those rows are a column range of every channel plane of the producer's NCHW output,
/// so the producer's GEMM computes exactly them (bias and activation included) into a strip
/// buffer that stays in the core's cache. The depthwise pass then reads the strip through the
/// same zero-padded, phase-split buffer as `LinearDepthwiseKernel`, local padded row `j` being
/// global padded row `oy0 * sH + j`, so the tap offsets are the same. Neighbouring strips
/// recompute the `(kH - 1) * dH + 1 - sH` rows they share.
///
/// Tasks are (image, strip) pairs spread over the engine's threads with single-threaded BLAS;
/// each worker owns a strip buffer, an im2col block and a phase buffer in the scratch area.
struct LinearConvDepthwiseChainKernel: Kernel {
    let producer: LinearConv.GemmKernel
    /// Index of the depthwise weight among the step's inputs (its bias, if any, follows).
    let depthwiseWeightInput: Int
    let depthwiseHasBias: Bool
    let depthwiseActivation: FusedActivation
    /// Fake quantizer fused after the depthwise activation (the producer's is in `producer`).
    let depthwiseQuantizer: FusedQuantizer?
    let batch: Int, channels: Int
    let inH: Int, inW: Int, outH: Int, outW: Int
    let kH: Int, kW: Int, strideH: Int, strideW: Int, dilationH: Int
    let padTop: Int, padLeft: Int
    /// Input columns a row copy moves (the padded extent actually read, minus the left pad).
    let copyColumns: Int
    let phaseWidth: Int, phaseStride: Int
    /// Depthwise output rows per strip, and strips per image.
    let stripRows: Int, strips: Int
    let tapOffsets: LinearTable<Int>
    let workers: Int
    let stripFloats: Int, columnFloats: Int, phaseFloats: Int
    var scratchPerWorker: Int { stripFloats + columnFloats + phaseFloats }
    var scratchCount: Int { workers * scratchPerWorker }

    /// Floats of strip buffer a task keeps hot (512 KB of a 1 MB L2).
    static let stripCacheFloats = 128 * 1024

    /// The chain kernel, or nil when the pair does not qualify (not groups-1 into a
    /// multiplier-1 depthwise over the same tensor) or would not pay (planes under 128
    /// positions, too few strips to keep the threads busy, or strips so thin that recomputing
    /// shared rows costs over 50%).
    static func make(producer: LinearConv.Layout, producerActivation: FusedActivation,
                     producerQuantizer: FusedQuantizer? = nil,
                     producerColumnRanges: LinearTable<Int>, depthwise: LinearConv.Layout,
                     depthwiseActivation: FusedActivation, depthwiseQuantizer: FusedQuantizer? = nil,
                     depthwiseWeightInput: Int,
                     threads: Int = ProcessInfoCores.active, stripCacheFloats: Int = stripCacheFloats,
                     minimumPlane: Int = 128, maximumRecompute: Double = 1.5) -> Self? {
        let win = depthwise.window
        guard producer.groups == 1, producer.outputShape.count == 4, depthwise.outputShape.count == 4,
              depthwise.groups == depthwise.inChannels, depthwise.outChannels == depthwise.inChannels,
              depthwise.inChannels == producer.outChannels, depthwise.batch == producer.batch,
              producer.window.outH == win.inH, producer.window.outW == win.inW
        else { return nil }
        // Below ~128 positions per plane the producer's GEMM runs far better with several
        // images side by side (GemmKernel's small-plane path) than one image per call.
        guard win.inH * win.inW >= minimumPlane else { return nil }
        let channels = depthwise.inChannels
        let extentH = (win.kH - 1) * win.dilationH + 1
        var rows: Int
        if channels * win.inH * win.inW <= 2 * stripCacheFloats {
            rows = win.outH                     // a whole image fits: one strip, nothing recomputed
        } else {
            let inputRowsBudget = max(1, stripCacheFloats / max(1, channels * win.inW))
            rows = max(1, min(win.outH, (inputRowsBudget - extentH) / win.strideH + 1))
        }
        let strips = (win.outH + rows - 1) / rows
        rows = (win.outH + strips - 1) / strips
        let span = (rows - 1) * win.strideH + extentH
        let workers = max(1, threads)
        // Input rows the producer computes over all strips, against the rows it has.
        var computedRows = 0
        for strip in 0..<strips {
            let count = min(win.outH, (strip + 1) * rows) - strip * rows
            let first = strip * rows * win.strideH - win.padTop
            computedRows += max(0, min(win.inH, first + (count - 1) * win.strideH + extentH) - max(0, first))
        }
        let recomputed = Double(computedRows) / Double(max(1, win.inH))
        guard producer.batch * strips >= 2 * workers || workers == 1, recomputed <= maximumRecompute else { return nil }
        return Self(producer: producer, producerActivation: producerActivation, producerQuantizer: producerQuantizer,
                    producerColumnRanges: producerColumnRanges, depthwise: depthwise, depthwiseActivation: depthwiseActivation,
                    depthwiseQuantizer: depthwiseQuantizer, depthwiseWeightInput: depthwiseWeightInput,
                    stripRows: rows, strips: strips, span: span, workers: workers)
    }

    private init(producer: LinearConv.Layout, producerActivation: FusedActivation, producerQuantizer: FusedQuantizer?,
                 producerColumnRanges: LinearTable<Int>, depthwise: LinearConv.Layout, depthwiseActivation: FusedActivation,
                 depthwiseQuantizer: FusedQuantizer?, depthwiseWeightInput: Int,
                 stripRows: Int, strips: Int, span: Int, workers: Int) {
        let win = depthwise.window
        self.producer = LinearConv.GemmKernel(layout: producer, activation: producerActivation, quantizer: producerQuantizer,
                                              columnRanges: producerColumnRanges, threads: 1)
        self.depthwiseWeightInput = depthwiseWeightInput
        depthwiseHasBias = depthwise.hasBias
        self.depthwiseActivation = depthwiseActivation
        self.depthwiseQuantizer = depthwiseQuantizer
        batch = depthwise.batch
        channels = depthwise.inChannels
        inH = win.inH; inW = win.inW; outH = win.outH; outW = win.outW
        kH = win.kH; kW = win.kW; strideH = win.strideH; strideW = win.strideW; dilationH = win.dilationH
        padTop = win.padTop; padLeft = win.padLeft
        let paddedW = (win.outW - 1) * win.strideW + (win.kW - 1) * win.dilationW + 1
        copyColumns = max(0, min(win.inW, paddedW - win.padLeft))
        phaseWidth = (paddedW + win.strideW - 1) / win.strideW
        let phaseRows = (span + win.strideH - 1) / win.strideH
        // Slack for the row kernel's last (partial) vector, as in LinearDepthwiseKernel.
        phaseStride = phaseRows * phaseWidth + 2 * LinearDepthwiseKernel.lanes
        self.stripRows = stripRows
        self.strips = strips
        tapOffsets = LinearTable(LinearDepthwiseKernel.tapOffsets(win, phaseStride: phaseStride, phaseWidth: phaseWidth))
        self.workers = workers
        let maxInputRows = min(span, win.inH)
        stripFloats = channels * maxInputRows * win.inW
        let pw = producer.window
        columnFloats = self.producer.pointwise ? 0 : producer.inChannels * pw.kH * pw.kW * maxInputRows * win.inW
        phaseFloats = win.strideH * win.strideW * phaseStride
    }

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        let tasks = batch * strips
        let threads = min(workers, EngineThreads.count)
        let body: (Int, Int) -> Void = { task, worker in
            runStrip(inputs, outputs[0], image: task / strips, strip: task % strips,
                     scratch: scratch + worker * scratchPerWorker)
        }
        if threads > 1 && tasks >= threads {
            withSingleThreadedBLAS { parallelWorkers(threads, tasks: tasks, body) }
        } else {
            for task in 0..<tasks { body(task, 0) }
        }
    }

    /// Depthwise output rows of one strip of one image, every channel.
    private func runStrip(_ inputs: [UnsafePointer<Float>], _ y: UnsafeMutablePointer<Float>, image: Int, strip: Int,
                          scratch: UnsafeMutablePointer<Float>) {
        let oy0 = strip * stripRows
        let count = min(outH, oy0 + stripRows) - oy0
        let first = oy0 * strideH                              // first padded row read
        let span = (count - 1) * strideH + (kH - 1) * dilationH + 1
        let r0 = max(0, first - padTop), r1 = min(inH, first + span - padTop)
        let stripBuffer = scratch, columns = scratch + stripFloats, phases = columns + columnFloats
        let width = max(0, r1 - r0) * inW
        if width > 0 {
            producer.runBlock(inputs[0], inputs[1], producer.layout.hasBias ? inputs[2] : nil, image: image,
                              start: r0 * inW, width: width, into: stripBuffer, pitch: width, scratch: columns)
        }
        // Padding rows and columns stay zero for every channel of the strip.
        phases.update(repeating: 0, count: phaseFloats)
        let weights = inputs[depthwiseWeightInput]
        let bias: UnsafePointer<Float>? = depthwiseHasBias ? inputs[depthwiseWeightInput + 1] : nil
        let (low, high) = depthwiseActivation.bounds
        let taps = kH * kW, outPlane = outH * outW
        for channel in 0..<channels {
            let plane = UnsafePointer(stripBuffer + channel * width)
            for iy in r0..<max(r0, r1) {
                let local = iy + padTop - first
                LinearDepthwiseKernel.scatterRow(plane + (iy - r0) * inW, columns: copyColumns, padLeft: padLeft,
                                                 strideW: strideW, phaseStride: phaseStride,
                                                 into: phases + (local % strideH) * strideW * phaseStride
                                                     + (local / strideH) * phaseWidth)
            }
            let target = y + (image * channels + channel) * outPlane + oy0 * outW
            whittle_depthwise_rows(phases, tapOffsets.base, taps, weights + channel * taps, bias?[channel] ?? 0,
                                   low, high, count, outW, phaseWidth, target)
            depthwiseQuantizer.apply(target, count: count * outW)
        }
    }
}

extension LinearConv {
    /// The fused kernel for Conv `producer` (+ `producerActivation`) feeding depthwise Conv
    /// `depthwise` (+ `depthwiseActivation`), whose weight (and bias) are step inputs
    /// `depthwiseWeightInput` (and the next one); nil when the pair does not qualify or would
    /// not run faster.
    static func makeDepthwiseChainKernel(producer: NodeContext, producerActivation: FusedActivation,
                                         producerQuantizer: FusedQuantizer? = nil,
                                         depthwise: NodeContext, depthwiseActivation: FusedActivation,
                                         depthwiseQuantizer: FusedQuantizer? = nil,
                                         depthwiseWeightInput: Int) throws -> (any Kernel)? {
        guard try producer.input(0).rank == 4, try depthwise.input(0).rank == 4 else { return nil }
        let producerLayout = try layout(producer)
        let depthwiseLayout = try layout(depthwise)
        return LinearConvDepthwiseChainKernel.make(
            producer: producerLayout, producerActivation: producerActivation, producerQuantizer: producerQuantizer,
            producerColumnRanges: LinearTable(producerLayout.window.columnRanges()),
            depthwise: depthwiseLayout, depthwiseActivation: depthwiseActivation, depthwiseQuantizer: depthwiseQuantizer,
            depthwiseWeightInput: depthwiseWeightInput)
    }
}

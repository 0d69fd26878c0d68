/// How a reduction combines values (ReduceSum, ReduceMean, ReduceMax).
protocol Reduction: Sendable {
    var initial: Float { get }
    func combine(_ accumulator: Float, _ x: Float) -> Float
    func finish(_ accumulator: Float) -> Float
}

/// Sum, multiplied by `scale` at the end (1 for ReduceSum, `1/n` for ReduceMean).
struct SumReduction: Reduction {
    var scale: Float
    var initial: Float { 0 }
    @inline(__always) func combine(_ accumulator: Float, _ x: Float) -> Float { accumulator + x }
    @inline(__always) func finish(_ accumulator: Float) -> Float { accumulator * scale }
}

/// Maximum; an empty reduction yields -inf.
struct MaxReduction: Reduction {
    var initial: Float { -Float.infinity }
    @inline(__always) func combine(_ accumulator: Float, _ x: Float) -> Float { accumulator >= x ? accumulator : x }
    @inline(__always) func finish(_ accumulator: Float) -> Float { accumulator }
}

/// The memory pattern of a reduction over a row-major tensor, found at build time.
///
/// Axes of size 1 are dropped and neighbouring axes that are all kept or all reduced are
/// merged. Reducing trailing axes (LayerNorm's last axis, spatial H and W of NCHW) becomes
/// `trailing`: contiguous rows reduced to one value each. Reducing a middle block (channels of
/// NCHW, or leading axes) becomes `middle`: whole contiguous rows accumulated into the output
/// row. Anything else is `general`, driven by a table of the reduced elements' offsets.
struct ReduceGeometry: Sendable, Equatable {
    enum Layout: Sendable, Equatable {
        /// `outer` rows of `length` contiguous values, each reduced to one output.
        case trailing(outer: Int, length: Int)
        /// `[outer, length, inner]` reduced over `length` into `[outer, inner]`.
        case middle(outer: Int, length: Int, inner: Int)
        /// Output element `i` sits at input offset `Σ index(i)[d] * keptStrides[d]`, and reduces
        /// the input at that offset plus each entry of `reducedOffsets`.
        case general(keptSizes: [Int], keptStrides: [Int], reducedOffsets: [Int])
    }

    let outputShape: [Int]
    /// Input elements combined into each output element.
    let reducedCount: Int
    let layout: Layout
    /// The general form, valid whatever `layout` is (used by integer constant folding).
    let keptSizes: [Int]
    let keptStrides: [Int]
    let reducedOffsets: [Int]

    /// The geometry reducing `axes` (normalised to `0..<rank`, distinct) of `shape`.
    init(shape: [Int], axes: Set<Int>, keepDims: Bool) {
        var output: [Int] = []
        for axis in shape.indices {
            if !axes.contains(axis) { output.append(shape[axis]) } else if keepDims { output.append(1) }
        }
        outputShape = output
        reducedCount = axes.reduce(1) { $0 * shape[$1] }

        let strides = contiguousStrides(shape)
        var groups: [(size: Int, stride: Int, reduced: Bool)] = []
        var kept: [(size: Int, stride: Int)] = [], reduced: [(size: Int, stride: Int)] = []
        for axis in shape.indices where shape[axis] != 1 {
            let isReduced = axes.contains(axis)
            if isReduced { reduced.append((shape[axis], strides[axis])) } else { kept.append((shape[axis], strides[axis])) }
            if let last = groups.last, last.reduced == isReduced {
                groups[groups.count - 1] = (last.size * shape[axis], strides[axis], isReduced)
            } else {
                groups.append((shape[axis], strides[axis], isReduced))
            }
        }
        keptSizes = kept.map(\.size)
        keptStrides = kept.map(\.stride)
        var offsets = [0]
        for (size, stride) in reduced {
            var next: [Int] = []
            next.reserveCapacity(offsets.count * size)
            for offset in offsets { for index in 0..<size { next.append(offset + index * stride) } }
            offsets = next
        }
        reducedOffsets = offsets

        let flags = groups.map(\.reduced)
        let sizes = groups.map(\.size)
        switch flags {
        case []: layout = .trailing(outer: 1, length: 1)
        case [true]: layout = .trailing(outer: 1, length: sizes[0])
        case [false]: layout = .trailing(outer: sizes[0], length: 1)
        case [false, true]: layout = .trailing(outer: sizes[0], length: sizes[1])
        case [true, false]: layout = .middle(outer: 1, length: sizes[0], inner: sizes[1])
        case [false, true, false]: layout = .middle(outer: sizes[0], length: sizes[1], inner: sizes[2])
        default: layout = .general(keptSizes: keptSizes, keptStrides: keptStrides, reducedOffsets: reducedOffsets)
        }
    }

    /// Reduces integer data with the general tables (constant folding of shape arithmetic).
    func reduceInts(_ values: [Int64], initial: Int64, _ combine: (Int64, Int64) -> Int64) -> [Int64] {
        let count = outputShape.reduce(1, *)
        var result = [Int64](repeating: initial, count: count)
        for position in 0..<count {
            var remaining = position, base = 0
            var axis = keptSizes.count - 1
            while axis >= 0 {
                base += (remaining % keptSizes[axis]) * keptStrides[axis]
                remaining /= keptSizes[axis]
                axis -= 1
            }
            var accumulator = initial
            for offset in reducedOffsets { accumulator = combine(accumulator, values[base + offset]) }
            result[position] = accumulator
        }
        return result
    }
}

/// The reductions a kernel can run, resolved once per run (see `UnaryOperation`).
enum ReduceOperation: Sendable, Equatable {
    /// Sum times `scale` (1 for ReduceSum, `1/n` for ReduceMean).
    case sum(scale: Float)
    case max
}

/// Runs `body(first, last)` over the rows `0..<rows` of `elementsPerRow` elements each: one
/// call when the work is small, otherwise one contiguous range of rows per engine thread,
/// each worth at least `elementwiseParallelChunk` elements.
@inline(__always)
func forEachRowRange(_ rows: Int, elementsPerRow: Int, _ body: (Int, Int) -> Void) {
    let work = rows * Swift.max(1, elementsPerRow)
    let chunks = Swift.min(EngineThreads.count, work / elementwiseParallelChunk, rows)
    if chunks <= 1 {
        body(0, rows)
        return
    }
    parallelFor(chunks) { chunk in body(chunk * rows / chunks, (chunk + 1) * rows / chunks) }
}

/// ReduceSum / ReduceMean / ReduceMax over a precomputed geometry. Not generic (the
/// operation is switched once per run), so the loops are specialised behind `any Kernel`.
struct ReduceKernel: Kernel {
    let layout: ReduceGeometry.Layout
    let operation: ReduceOperation

    /// Output columns one job accumulates in the `middle` layout.
    static var columnTile: Int { 2048 }

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        switch operation {
        case .sum(let scale): Self.reduce(SumReduction(scale: scale), layout, inputs[0], outputs[0])
        case .max: Self.reduce(MaxReduction(), layout, inputs[0], outputs[0])
        }
    }

    @inline(__always)
    static func reduce<R: Reduction>(_ reduction: R, _ layout: ReduceGeometry.Layout,
                                     _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        switch layout {
        case .trailing(let outer, let length):
            forEachRowRange(outer, elementsPerRow: length) { first, last in
                var row = first
                while row < last {
                    out[row] = reduceRow(reduction, x + row * length, length)
                    row += 1
                }
            }
        case .middle(let outer, let length, let inner):
            let tiles = (inner + columnTile - 1) / columnTile
            forEachRowRange(outer * tiles, elementsPerRow: length * Swift.min(inner, columnTile)) { firstJob, lastJob in
                for job in firstJob..<lastJob {
                    let block = job / tiles
                    let first = (job % tiles) * columnTile
                    let width = Swift.min(inner, first + columnTile) - first
                    let target = out + block * inner + first
                    var j = 0
                    while j < width { target[j] = reduction.initial; j = j &+ 1 }
                    for k in 0..<length {
                        let row = x + (block * length + k) * inner + first
                        j = 0
                        while j < width { target[j] = reduction.combine(target[j], row[j]); j = j &+ 1 }
                    }
                    j = 0
                    while j < width { target[j] = reduction.finish(target[j]); j = j &+ 1 }
                }
            }
        case .general(let keptSizes, let keptStrides, let reducedOffsets):
            let count = keptSizes.reduce(1, *)
            parallelFor(count, grain: Swift.max(1, elementwiseParallelChunk / Swift.max(1, reducedOffsets.count))) { position in
                var remaining = position, base = 0
                var axis = keptSizes.count - 1
                while axis >= 0 {
                    base += (remaining % keptSizes[axis]) * keptStrides[axis]
                    remaining /= keptSizes[axis]
                    axis -= 1
                }
                var accumulator = reduction.initial
                for offset in reducedOffsets { accumulator = reduction.combine(accumulator, x[base + offset]) }
                out[position] = reduction.finish(accumulator)
            }
        }
    }

    /// One contiguous row with eight independent accumulators, so the loop pipelines and the
    /// compiler can pack the accumulators into vector registers.
    @inline(__always)
    static func reduceRow<R: Reduction>(_ reduction: R, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        reduction.finish(combineRow(reduction, x, n))
    }
}

/// Combines a contiguous row with `reduction` (without `finish`), using eight independent
/// accumulators; combining the partial accumulators is valid for sums and maxima alike.
@inline(__always)
func combineRow<R: Reduction>(_ reduction: R, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let initial = reduction.initial
    var a0 = initial, a1 = initial, a2 = initial, a3 = initial
    var a4 = initial, a5 = initial, a6 = initial, a7 = initial
    var i = 0
    while i &+ 8 <= n {
        a0 = reduction.combine(a0, x[i])
        a1 = reduction.combine(a1, x[i &+ 1])
        a2 = reduction.combine(a2, x[i &+ 2])
        a3 = reduction.combine(a3, x[i &+ 3])
        a4 = reduction.combine(a4, x[i &+ 4])
        a5 = reduction.combine(a5, x[i &+ 5])
        a6 = reduction.combine(a6, x[i &+ 6])
        a7 = reduction.combine(a7, x[i &+ 7])
        i = i &+ 8
    }
    while i < n {
        a0 = reduction.combine(a0, x[i])
        i = i &+ 1
    }
    a0 = reduction.combine(a0, a4); a1 = reduction.combine(a1, a5)
    a2 = reduction.combine(a2, a6); a3 = reduction.combine(a3, a7)
    return reduction.combine(reduction.combine(a0, a1), reduction.combine(a2, a3))
}

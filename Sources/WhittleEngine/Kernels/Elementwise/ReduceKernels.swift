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

/// ReduceSum / ReduceMean / ReduceMax over a precomputed geometry.
struct ReduceKernel<R: Reduction>: Kernel {
    let layout: ReduceGeometry.Layout
    let reduction: R

    /// Output columns one job accumulates in the `middle` layout.
    static var columnTile: Int { 2048 }

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        let x = inputs[0], out = outputs[0], reduction = self.reduction
        switch layout {
        case .trailing(let outer, let length):
            parallelFor(outer, grain: Swift.max(1, elementwiseParallelChunk / Swift.max(1, length))) { row in
                out[row] = Self.reduceRow(reduction, x + row * length, length)
            }
        case .middle(let outer, let length, let inner):
            let tiles = (inner + Self.columnTile - 1) / Self.columnTile
            let work = Swift.max(1, length * Swift.min(inner, Self.columnTile))
            parallelFor(outer * tiles, grain: Swift.max(1, elementwiseParallelChunk / work)) { job in
                let block = job / tiles
                let first = (job % tiles) * Self.columnTile
                let last = Swift.min(inner, first + Self.columnTile)
                let target = out + block * inner
                for j in first..<last { target[j] = reduction.initial }
                for k in 0..<length {
                    let row = x + (block * length + k) * inner
                    for j in first..<last { target[j] = reduction.combine(target[j], row[j]) }
                }
                for j in first..<last { target[j] = reduction.finish(target[j]) }
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

    /// One contiguous row, with four independent accumulators so the loop pipelines.
    @inline(__always)
    static func reduceRow(_ reduction: R, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = reduction.initial, a1 = reduction.initial, a2 = reduction.initial, a3 = reduction.initial
        var i = 0
        while i + 4 <= n {
            a0 = reduction.combine(a0, x[i])
            a1 = reduction.combine(a1, x[i + 1])
            a2 = reduction.combine(a2, x[i + 2])
            a3 = reduction.combine(a3, x[i + 3])
            i += 4
        }
        while i < n {
            a0 = reduction.combine(a0, x[i])
            i += 1
        }
        // Combining the partial accumulators is correct for both sums and maxima.
        return reduction.finish(reduction.combine(reduction.combine(a0, a1), reduction.combine(a2, a3)))
    }
}

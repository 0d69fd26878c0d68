/// Smallest number of elements worth handing to another thread in elementwise loops: below
/// about this much work per thread, `DispatchQueue.concurrentPerform`'s wake-up cost exceeds
/// the time saved on a memory-bound loop.
let elementwiseParallelChunk = 32_768

/// Runs `body(start, end)` over `0..<count`, as one call when the loop is small, otherwise as
/// one contiguous chunk per engine thread (each of at least `elementwiseParallelChunk`
/// elements, boundaries rounded to 16 floats so chunks start on cache lines).
@inline(__always)
func forEachElementChunk(_ count: Int, _ body: (Int, Int) -> Void) {
    let chunks = Swift.min(EngineThreads.count, count / elementwiseParallelChunk)
    if chunks <= 1 {
        body(0, count)
        return
    }
    parallelFor(chunks) { chunk in
        let start = chunk == 0 ? 0 : (chunk * count / chunks) & ~15
        let end = chunk == chunks - 1 ? count : ((chunk + 1) * count / chunks) & ~15
        body(start, end)
    }
}

/// Multidirectional (numpy-style) broadcasting as in the ONNX "Broadcasting" document:
/// shapes are aligned on their trailing dimensions, missing leading dimensions count as 1,
/// and each aligned pair must be equal or contain a 1 (a 0 pairs only with 0 or 1).
enum Broadcasting {
    /// The common shape of `shapes`, or nil when two of them are incompatible.
    static func shape(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (axis, size) in shape.enumerated() {
                let current = result[offset + axis]
                if size == current || size == 1 { continue }
                if current == 1 { result[offset + axis] = size } else { return nil }
            }
        }
        return result
    }

    /// The common shape of the node's present inputs, or a shape-mismatch error naming them.
    static func shape(_ shapes: [[Int]], context: NodeContext) throws -> [Int] {
        guard let result = shape(shapes) else {
            let listed = shapes.map { "[\($0.map(String.init).joined(separator: ", "))]" }
                .joined(separator: " and ")
            throw context.error("cannot broadcast shapes \(listed)", kind: .shapeMismatch)
        }
        return result
    }

    /// Row-major strides of `shape` seen through `output`'s rank: 0 on broadcast axes
    /// (including the missing leading ones), so `offset = Σ index[axis] * stride[axis]`.
    static func strides(of shape: [Int], in output: [Int]) -> [Int] {
        let aligned = [Int](repeating: 1, count: output.count - shape.count) + shape
        var strides = contiguousStrides(aligned)
        for axis in aligned.indices where aligned[axis] == 1 && output[axis] != 1 { strides[axis] = 0 }
        return strides
    }

    /// Evaluates `function` over broadcast integer operands (the constant-folding path).
    static func mapInts(_ a: Tensor, _ b: Tensor, output: [Int],
                        _ function: (Int64, Int64) throws -> Int64) rethrows -> [Int64] {
        let x = a.ints, y = b.ints
        let stridesA = strides(of: a.shape, in: output), stridesB = strides(of: b.shape, in: output)
        let count = output.reduce(1, *)
        var result = [Int64](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: output.count)
        for position in 0..<count {
            var offsetA = 0, offsetB = 0
            for axis in output.indices {
                offsetA += index[axis] * stridesA[axis]
                offsetB += index[axis] * stridesB[axis]
            }
            result[position] = try function(x[offsetA], y[offsetB])
            var axis = output.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < output[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }
}

/// A broadcast binary operation `out = f(a, b)` decomposed at build time into rows of one
/// tight contiguous inner loop.
///
/// Axes of size 1 in the output are dropped, and neighbouring axes on which each operand is
/// either fully present or fully broadcast in the same way are merged. The last merged axis
/// becomes the inner loop, where each operand is either a contiguous vector or a single
/// repeated scalar; the remaining axes enumerate rows whose operand offsets are computed once
/// per row. So same shapes, a scalar operand, per-channel `[1,C,1,1]`/`[C,1,1]` or `[N,C,1,1]`
/// against NCHW and `[1,1,H,W]` against NCHW all run without per-element index arithmetic.
struct BroadcastPlan: Sendable, Equatable {
    /// How the operands appear in the inner loop.
    enum InnerMode: Sendable, Equatable {
        /// Both operands are contiguous vectors.
        case vectors
        /// `a` is one scalar repeated along the row, `b` a contiguous vector.
        case scalarA
        /// `a` is a contiguous vector, `b` one scalar repeated along the row.
        case scalarB
    }

    let count: Int
    let inner: Int
    let mode: InnerMode
    let rows: Int
    /// Sizes and operand strides of the merged outer axes, outermost first.
    let outerSizes: [Int]
    let outerStridesA: [Int]
    let outerStridesB: [Int]

    /// The plan for `a` and `b` broadcast to `output` (which must be their broadcast shape).
    init(a: [Int], b: [Int], output: [Int]) {
        count = output.reduce(1, *)
        let stridesA = Broadcasting.strides(of: a, in: output)
        let stridesB = Broadcasting.strides(of: b, in: output)
        var sizes: [Int] = [], mergedA: [Int] = [], mergedB: [Int] = []
        var patterns: [(Bool, Bool)] = []
        for axis in output.indices where output[axis] != 1 {
            let pattern = (stridesA[axis] != 0, stridesB[axis] != 0)
            if let last = patterns.last, last == pattern {
                sizes[sizes.count - 1] *= output[axis]
                mergedA[mergedA.count - 1] = stridesA[axis]
                mergedB[mergedB.count - 1] = stridesB[axis]
            } else {
                sizes.append(output[axis])
                mergedA.append(stridesA[axis])
                mergedB.append(stridesB[axis])
                patterns.append(pattern)
            }
        }
        guard let innerSize = sizes.last, let innerPattern = patterns.last else {
            // Every output axis is 1: a single element.
            inner = 1
            mode = .vectors
            rows = 1
            outerSizes = []; outerStridesA = []; outerStridesB = []
            return
        }
        inner = innerSize
        switch innerPattern {
        case (false, _): mode = .scalarA
        case (true, false): mode = .scalarB
        case (true, true): mode = .vectors
        }
        outerSizes = Array(sizes.dropLast())
        outerStridesA = Array(mergedA.dropLast())
        outerStridesB = Array(mergedB.dropLast())
        rows = outerSizes.reduce(1, *)
    }

    /// `out[i] = function(a[...], b[...])` over the whole output. `a` may alias `out` when
    /// `a` has the output's shape (in-place accumulation).
    @inline(__always)
    func apply<F: BinaryFunction>(_ function: F, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                  _ out: UnsafeMutablePointer<Float>) {
        if count == 0 { return }
        let mode = self.mode
        if rows == 1 {
            forEachElementChunk(inner) { start, end in
                let offsetA = mode == .scalarA ? 0 : start
                let offsetB = mode == .scalarB ? 0 : start
                Self.row(function, mode, a + offsetA, b + offsetB, out + start, end - start)
            }
            return
        }
        let chunks = Swift.max(1, Swift.min(EngineThreads.count, count / elementwiseParallelChunk, rows))
        if chunks == 1 {
            applyRows(function, a, b, out, 0, rows)
            return
        }
        parallelFor(chunks) { chunk in
            applyRows(function, a, b, out, chunk * rows / chunks, (chunk + 1) * rows / chunks)
        }
    }

    /// Rows `first..<last` of the outer axes: the starting index is decomposed once, then
    /// advanced like an odometer, so each row costs a few additions besides its inner loop.
    @inline(__always)
    func applyRows<F: BinaryFunction>(_ function: F, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                      _ out: UnsafeMutablePointer<Float>, _ first: Int, _ last: Int) {
        let axes = outerSizes.count, inner = self.inner, mode = self.mode
        withUnsafeTemporaryAllocation(of: Int.self, capacity: axes) { index in
            var remaining = first, offsetA = 0, offsetB = 0
            var axis = axes - 1
            while axis >= 0 {
                let size = outerSizes[axis]
                index[axis] = remaining % size
                remaining /= size
                offsetA += index[axis] * outerStridesA[axis]
                offsetB += index[axis] * outerStridesB[axis]
                axis -= 1
            }
            var row = first
            while row < last {
                Self.row(function, mode, a + offsetA, b + offsetB, out + row * inner, inner)
                row += 1
                axis = axes - 1
                while axis >= 0 {
                    index[axis] += 1
                    offsetA += outerStridesA[axis]
                    offsetB += outerStridesB[axis]
                    if index[axis] < outerSizes[axis] { break }
                    offsetA -= outerSizes[axis] * outerStridesA[axis]
                    offsetB -= outerSizes[axis] * outerStridesB[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }

    /// One row of the inner loop: counted loops on raw pointers without bounds or overflow
    /// checks, so each mode vectorises once `function` is concrete.
    @inline(__always)
    static func row<F: BinaryFunction>(_ function: F, _ mode: InnerMode, _ a: UnsafePointer<Float>,
                                       _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                       _ n: Int) {
        var i = 0
        // In place (`a == out`, accumulating variadic inputs): separate loops reading through
        // `out`, since the vectoriser's runtime overlap check would reject `a == out`.
        if a == UnsafePointer(out) && mode != .scalarA {
            if mode == .vectors {
                while i < n {
                    out[i] = function(out[i], b[i])
                    i = i &+ 1
                }
            } else {
                let scalar = b[0]
                while i < n {
                    out[i] = function(out[i], scalar)
                    i = i &+ 1
                }
            }
            return
        }
        switch mode {
        case .vectors:
            while i < n {
                out[i] = function(a[i], b[i])
                i = i &+ 1
            }
        case .scalarA:
            let scalar = a[0]
            while i < n {
                out[i] = function(scalar, b[i])
                i = i &+ 1
            }
        case .scalarB:
            let scalar = b[0]
            while i < n {
                out[i] = function(a[i], scalar)
                i = i &+ 1
            }
        }
    }
}

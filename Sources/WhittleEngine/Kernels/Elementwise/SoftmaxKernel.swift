#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax over the middle axis of an `[outer, axis, inner]` view of the input:
/// `y = exp(x - max) / Σ exp(x - max)`, with the maximum subtracted for numerical stability.
///
/// Opset < 13 coerces the input to 2-D at `axis` (so `inner` is 1 and `axis` covers every
/// trailing dimension); opset >= 13 normalises along the single axis, possibly with
/// `inner > 1` (e.g. channels of NCHW), handled in column tiles of contiguous loops.
struct SoftmaxKernel: Kernel {
    let outer: Int
    let axis: Int
    let inner: Int

    /// Columns handled together when the softmax axis is not the last one.
    static let tile = 64

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        let x = inputs[0], out = outputs[0]
        let axis = self.axis, inner = self.inner
        if axis == 0 || outer == 0 || inner == 0 { return }
        if inner == 1 {
            forEachRowRange(outer, elementsPerRow: axis) { first, last in
                var row = first
                while row < last {
                    Self.contiguousRow(x + row * axis, out + row * axis, axis)
                    row += 1
                }
            }
            return
        }
        let tiles = (inner + Self.tile - 1) / Self.tile
        let grain = Swift.max(1, elementwiseParallelChunk / (axis * Swift.min(inner, Self.tile)))
        parallelFor(outer * tiles, grain: grain) { job in
            let block = job / tiles
            let first = (job % tiles) * Self.tile
            let width = Swift.min(Self.tile, inner - first)
            let base = block * axis * inner + first
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * Self.tile) { buffer in
                guard let maxima = buffer.baseAddress else { return }
                let sums = maxima + Self.tile
                for j in 0..<width { maxima[j] = -Float.infinity; sums[j] = 0 }
                for k in 0..<axis {
                    let row = x + base + k * inner
                    for j in 0..<width { maxima[j] = Swift.max(maxima[j], row[j]) }
                }
                for k in 0..<axis {
                    let row = x + base + k * inner, target = out + base + k * inner
                    for j in 0..<width {
                        let e = fastExp(row[j] - maxima[j])
                        target[j] = e
                        sums[j] += e
                    }
                }
                for j in 0..<width { sums[j] = 1 / sums[j] }
                for k in 0..<axis {
                    let target = out + base + k * inner
                    for j in 0..<width { target[j] *= sums[j] }
                }
            }
        }
    }

    /// One row: maximum, exponentials, sum, scale, each as its own loop so the exponential
    /// loop (with the call-free `fastExp`) vectorises and the reductions use eight accumulators.
    @inline(__always)
    static func contiguousRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let maximum = combineRow(MaxReduction(), x, n)
        var i = 0
        while i < n {
            out[i] = fastExp(x[i] - maximum)
            i = i &+ 1
        }
        let scale = 1 / combineRow(SumReduction(scale: 1), UnsafePointer(out), n)
        i = 0
        while i < n {
            out[i] *= scale
            i = i &+ 1
        }
    }
}

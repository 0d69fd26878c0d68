/// Gemm (ONNX opsets 11-18): `Y = alpha * op(A) * op(B) + beta * C`, C unidirectionally
/// broadcast to `[M, N]`.
enum LinearGemm {
    struct Layout: Sendable {
        var m: Int
        var n: Int
        var k: Int
        var transA: Bool
        var transB: Bool
        var alpha: Float
        var beta: Float
        /// C is present (and beta is not zero).
        var addsC: Bool
        /// Element strides of C along rows and columns (0 on a broadcast axis).
        var cRowStride: Int
        var cColumnStride: Int
    }

    static func layout(_ context: NodeContext) throws -> Layout {
        let a = try context.input(0), b = try context.input(1)
        guard a.rank == 2, b.rank == 2 else {
            throw context.error("Gemm needs 2-D A and B, found \(a) and \(b)")
        }
        let transA = try context.int("transA", default: 0) != 0
        let transB = try context.int("transB", default: 0) != 0
        let m = transA ? a.shape[1] : a.shape[0]
        let k = transA ? a.shape[0] : a.shape[1]
        let kB = transB ? b.shape[1] : b.shape[0]
        let n = transB ? b.shape[0] : b.shape[1]
        guard k == kB else {
            throw context.error("inner dimensions differ: op(A) is \(m)x\(k), op(B) is \(kB)x\(n)", kind: .shapeMismatch)
        }
        let alpha = try context.float("alpha", default: 1)
        let beta = try context.float("beta", default: 1)
        var rowStride = 0, columnStride = 0
        let hasC = context.hasInput(2)
        if hasC {
            let c = try context.input(2)
            // Unidirectional broadcast: right-aligned, each dimension 1 or equal.
            guard c.rank <= 2 else { throw context.error("C \(c) must have rank 0, 1 or 2", kind: .shapeMismatch) }
            let padded = Array(repeating: 1, count: 2 - c.rank) + c.shape
            guard padded[0] == 1 || padded[0] == m, padded[1] == 1 || padded[1] == n else {
                throw context.error("C \(c) cannot be broadcast to [\(m), \(n)]", kind: .shapeMismatch)
            }
            columnStride = padded[1] == 1 ? 0 : 1
            rowStride = padded[0] == 1 ? 0 : padded[1]
        }
        return Layout(m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta,
                      addsC: hasC && beta != 0, cRowStride: rowStride, cColumnStride: columnStride)
    }

    static func inferShapes(_ context: NodeContext) throws -> [TensorInfo] {
        let layout = try layout(context)
        return [TensorInfo(shape: [layout.m, layout.n], elementType: try context.input(0).elementType)]
    }

    /// Builds the kernel; a constant B is pre-packed as a row-major `[K, N]` copy with
    /// `alpha` folded in.
    static func makeKernel(_ context: NodeContext, activation: FusedActivation) throws -> any Kernel {
        var layout = try layout(context)
        var packed: LinearTable<Float>? = nil
        if let b = context.constant(1), b.count == layout.k * layout.n {
            let values = b.floats
            var copy = [Float](repeating: 0, count: values.count)
            for row in 0..<layout.k {
                for column in 0..<layout.n {
                    let source = layout.transB ? column * layout.k + row : row * layout.n + column
                    copy[row * layout.n + column] = layout.alpha * values[source]
                }
            }
            packed = LinearTable(copy)
            layout.transB = false
            layout.alpha = 1
        }
        return Compiled(layout: layout, packedB: packed, activation: activation)
    }

    struct Compiled: Kernel {
        let layout: Layout
        let packedB: LinearTable<Float>?
        let activation: FusedActivation

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let a = inputs[0]
            let b: UnsafePointer<Float> = packedB.map { UnsafePointer($0.base) } ?? inputs[1]
            let y = outputs[0]
            let m = layout.m, n = layout.n, k = layout.k
            if layout.addsC {
                let c = inputs[2], beta = layout.beta
                let rowStride = layout.cRowStride, columnStride = layout.cColumnStride
                parallelFor(m, grain: max(1, 4096 / max(1, n))) { row in
                    let target = y + row * n, source = c + row * rowStride
                    if columnStride == 0 {
                        target.update(repeating: beta * source[0], count: n)
                    } else {
                        for column in 0..<n { target[column] = beta * source[column] }
                    }
                }
            }
            linearGemm(transA: layout.transA, transB: layout.transB, m: m, n: n, k: k, alpha: layout.alpha,
                       a: a, lda: layout.transA ? m : k, b: b, ldb: layout.transB ? k : n,
                       beta: layout.addsC ? 1 : 0, c: y, ldc: n)
            if k == 0 && !layout.addsC { y.update(repeating: 0, count: m * n) }
            linearApplyActivation(y, count: m * n, activation: activation)
        }
    }
}

/// MatMul (ONNX opsets 11-18), numpy semantics: 1-D operands are promoted (A to a row, B to a
/// column) and the added dimension removed from the result; leading (batch) dimensions
/// broadcast.
enum LinearMatMul {
    struct Layout: Sendable {
        var m: Int
        var n: Int
        var k: Int
        /// Per output batch matrix, the element offsets of its A and B matrices.
        var aOffsets: [Int]
        var bOffsets: [Int]
        /// B is one matrix shared by every batch and A's batches are contiguous: the batch
        /// folds into M and a single GEMM does all the work.
        var foldsBatch: Bool
        var outputShape: [Int]
    }

    static func layout(_ context: NodeContext) throws -> Layout {
        let a = try context.input(0), b = try context.input(1)
        guard a.rank >= 1, b.rank >= 1 else {
            throw context.error("MatMul operands must have rank >= 1, found \(a) and \(b)")
        }
        let aMatrix = a.rank == 1 ? [1, a.shape[0]] : Array(a.shape.suffix(2))
        let bMatrix = b.rank == 1 ? [b.shape[0], 1] : Array(b.shape.suffix(2))
        let m = aMatrix[0], k = aMatrix[1], n = bMatrix[1]
        guard bMatrix[0] == k else {
            throw context.error("inner dimensions differ: \(a) x \(b)", kind: .shapeMismatch)
        }
        let aBatch = a.rank > 2 ? Array(a.shape.dropLast(2)) : []
        let bBatch = b.rank > 2 ? Array(b.shape.dropLast(2)) : []
        let rank = max(aBatch.count, bBatch.count)
        let aPadded = Array(repeating: 1, count: rank - aBatch.count) + aBatch
        let bPadded = Array(repeating: 1, count: rank - bBatch.count) + bBatch
        var batch: [Int] = []
        for axis in 0..<rank {
            let p = aPadded[axis], q = bPadded[axis]
            guard p == q || p == 1 || q == 1 else {
                throw context.error("batch dimensions of \(a) and \(b) cannot be broadcast", kind: .shapeMismatch)
            }
            batch.append(p == 1 ? q : p)
        }
        let count = batch.reduce(1, *)
        let aStrides = contiguousStrides(aPadded), bStrides = contiguousStrides(bPadded)
        var aOffsets: [Int] = [], bOffsets: [Int] = []
        aOffsets.reserveCapacity(count)
        bOffsets.reserveCapacity(count)
        for index in 0..<count {
            var rest = index, aIndex = 0, bIndex = 0
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let coordinate = rest % batch[axis]
                rest /= batch[axis]
                if aPadded[axis] != 1 { aIndex += coordinate * aStrides[axis] }
                if bPadded[axis] != 1 { bIndex += coordinate * bStrides[axis] }
            }
            aOffsets.append(aIndex * m * k)
            bOffsets.append(bIndex * k * n)
        }
        var shape = batch
        if a.rank != 1 { shape.append(m) }
        if b.rank != 1 { shape.append(n) }
        let foldsBatch = bPadded.allSatisfy { $0 == 1 } && aPadded == batch
        return Layout(m: m, n: n, k: k, aOffsets: aOffsets, bOffsets: bOffsets, foldsBatch: foldsBatch,
                      outputShape: shape)
    }

    static func inferShapes(_ context: NodeContext) throws -> [TensorInfo] {
        let layout = try layout(context)
        return [TensorInfo(shape: layout.outputShape, elementType: try context.input(0).elementType)]
    }

    static func makeKernel(_ context: NodeContext, activation: FusedActivation) throws -> any Kernel {
        let layout = try layout(context)
        return Compiled(m: layout.m, n: layout.n, k: layout.k, foldsBatch: layout.foldsBatch,
                      aOffsets: LinearTable(layout.aOffsets), bOffsets: LinearTable(layout.bOffsets),
                      activation: activation)
    }

    struct Compiled: Kernel {
        let m: Int, n: Int, k: Int
        let foldsBatch: Bool
        let aOffsets: LinearTable<Int>
        let bOffsets: LinearTable<Int>
        let activation: FusedActivation

        func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
            let a = inputs[0], b = inputs[1], y = outputs[0]
            let batch = aOffsets.count
            if foldsBatch {
                linearGemm(transA: false, transB: false, m: batch * m, n: n, k: k, alpha: 1,
                           a: a, lda: k, b: b, ldb: n, beta: 0, c: y, ldc: n)
            } else {
                for index in 0..<batch {
                    linearGemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                               a: a + aOffsets[index], lda: k, b: b + bOffsets[index], ldb: n,
                               beta: 0, c: y + index * m * n, ldc: n)
                }
            }
            if k == 0 { y.update(repeating: 0, count: batch * m * n) }
            linearApplyActivation(y, count: batch * m * n, activation: activation)
        }
    }
}

import COpenBLAS
import WhittleEngine

/// The LAPACK calls compression needs, on row-major Swift arrays.
///
/// LAPACK is column-major: a row-major `rows x cols` buffer is the column-major
/// `cols x rows` matrix Aᵀ, which the routines below exploit instead of copying.
enum LinearAlgebra {
    /// Thin SVD `A = U diag(s) Vᵀ` of a row-major `rows x cols` matrix via `sgesdd_`.
    /// Returns U row-major `rows x r`, s (descending) and Vᵀ row-major `r x cols`, r = min(rows, cols).
    ///
    /// The buffer handed to LAPACK is Aᵀ (column-major view); its SVD Aᵀ = U' Σ V'ᵀ gives
    /// A = V' Σ U'ᵀ, and LAPACK's column-major U' (cols x r) read row-major is exactly Vᵀ,
    /// its column-major V'ᵀ (r x rows) read row-major is exactly U.
    static func svd(_ matrix: [Float], rows: Int, cols: Int) throws -> (u: [Float], s: [Float], vt: [Float]) {
        let rank = min(rows, cols)
        guard rank > 0, matrix.count == rows * cols else {
            throw WhittleError(.numerical, "SVD", "empty or mis-sized matrix \(rows)x\(cols)")
        }
        var a = matrix
        var m = Int32(cols), n = Int32(rows), lda = Int32(cols)
        var ldu = Int32(cols), ldvt = Int32(rank)
        var s = [Float](repeating: 0, count: rank)
        var uPrime = [Float](repeating: 0, count: cols * rank)
        var vtPrime = [Float](repeating: 0, count: rank * rows)
        var iwork = [Int32](repeating: 0, count: 8 * rank)
        var info: Int32 = 0
        var lwork: Int32 = -1
        var query: Float = 0
        sgesdd_("S", &m, &n, &a, &lda, &s, &uPrime, &ldu, &vtPrime, &ldvt, &query, &lwork, &iwork, &info)
        guard info == 0 else { throw WhittleError(.numerical, "SVD", "sgesdd workspace query failed (info \(info))") }
        lwork = Int32(max(1, Int(query.rounded(.up))))
        var work = [Float](repeating: 0, count: Int(lwork))
        sgesdd_("S", &m, &n, &a, &lda, &s, &uPrime, &ldu, &vtPrime, &ldvt, &work, &lwork, &iwork, &info)
        guard info == 0 else {
            throw WhittleError(.numerical, "SVD", info > 0 ? "sgesdd did not converge" : "sgesdd rejected argument \(-info)")
        }
        return (vtPrime, s, uPrime)
    }

    /// Least-squares solution `W` (row-major `cols x outputs`) of `X W ≈ Y` with a ridge
    /// pulling `W` toward `prior`: minimises ‖X W − Y‖² + λ‖W − prior‖², solved with
    /// `sgels_` (QR) on the stacked system [X; √λ I] W = [Y; √λ prior].
    /// `x` is row-major `rows x cols`, `y` row-major `rows x outputs`.
    ///
    /// λ = `ridge` · (mean squared column norm of X), so the penalty is scale-free; it keeps
    /// the system full rank when inputs have dead (always zero) channels.
    static func ridgeLeastSquares(x: [Float], y: [Float], rows: Int, cols: Int, outputs: Int, prior: [Float],
                                  ridge: Float) throws -> [Float] {
        guard x.count == rows * cols, y.count == rows * outputs, prior.count == cols * outputs else {
            throw WhittleError(.numerical, "least squares", "mis-sized system")
        }
        var meanSquare: Double = 0
        for value in x { meanSquare += Double(value) * Double(value) }
        meanSquare /= Double(max(1, cols))
        let lambda = Float(Double(ridge) * max(meanSquare, 1e-12))
        let root = lambda.squareRoot()
        let total = rows + cols
        // Column-major stacked design matrix (total x cols) and right-hand side (total x outputs).
        var a = [Float](repeating: 0, count: total * cols)
        x.withUnsafeBufferPointer { source in
            a.withUnsafeMutableBufferPointer { target in
                for row in 0..<rows {
                    let base = row * cols
                    for column in 0..<cols { target[column * total + row] = source[base + column] }
                }
            }
        }
        for column in 0..<cols { a[column * total + rows + column] = root }
        var b = [Float](repeating: 0, count: total * outputs)
        b.withUnsafeMutableBufferPointer { target in
            for row in 0..<rows {
                for output in 0..<outputs { target[output * total + row] = y[row * outputs + output] }
            }
            for column in 0..<cols {
                for output in 0..<outputs { target[output * total + rows + column] = root * prior[column * outputs + output] }
            }
        }
        var m = Int32(total), n = Int32(cols), nrhs = Int32(outputs), lda = Int32(total), ldb = Int32(total)
        var info: Int32 = 0
        var lwork: Int32 = -1
        var query: Float = 0
        sgels_("N", &m, &n, &nrhs, &a, &lda, &b, &ldb, &query, &lwork, &info)
        guard info == 0 else { throw WhittleError(.numerical, "least squares", "sgels workspace query failed (info \(info))") }
        lwork = Int32(max(1, Int(query.rounded(.up))))
        var work = [Float](repeating: 0, count: Int(lwork))
        sgels_("N", &m, &n, &nrhs, &a, &lda, &b, &ldb, &work, &lwork, &info)
        guard info == 0 else {
            throw WhittleError(.numerical, "least squares", info > 0 ? "design matrix is rank deficient" : "sgels rejected argument \(-info)")
        }
        var solution = [Float](repeating: 0, count: cols * outputs)
        for column in 0..<cols {
            for output in 0..<outputs { solution[column * outputs + output] = b[output * total + column] }
        }
        guard solution.allSatisfy(\.isFinite) else {
            throw WhittleError(.numerical, "least squares", "solution is not finite")
        }
        return solution
    }
}

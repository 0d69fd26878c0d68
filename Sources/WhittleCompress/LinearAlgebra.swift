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

    /// Eigendecomposition `A = U diag(e) Uᵀ` of a symmetric `dimension x dimension` matrix via
    /// `ssyevd_` (divide and conquer). Returns U row-major with eigenvector `r` in column `r`
    /// (`u[c * dimension + r]`) and e, both in descending order of the eigenvalues: the same
    /// layout `svd` gives for a positive semi-definite matrix, at a fraction of its cost.
    ///
    /// A symmetric matrix reads the same row- or column-major; LAPACK returns the eigenvectors
    /// as the columns of its column-major result, i.e. as rows of the row-major buffer, ascending.
    static func symmetricEigen(_ matrix: [Float], dimension n: Int) throws -> (u: [Float], e: [Float]) {
        guard n > 0, matrix.count == n * n else {
            throw WhittleError(.numerical, "eigendecomposition", "empty or mis-sized matrix of \(matrix.count) values for \(n)x\(n)")
        }
        var a = matrix
        var order = Int32(n), lda = Int32(n)
        var w = [Float](repeating: 0, count: n)
        var info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var query: Float = 0
        var iquery: Int32 = 0
        ssyevd_("V", "U", &order, &a, &lda, &w, &query, &lwork, &iquery, &liwork, &info)
        guard info == 0 else { throw WhittleError(.numerical, "eigendecomposition", "ssyevd workspace query failed (info \(info))") }
        lwork = Int32(max(1, Int(query.rounded(.up))))
        liwork = max(1, iquery)
        var work = [Float](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        ssyevd_("V", "U", &order, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else {
            throw WhittleError(.numerical, "eigendecomposition",
                               info > 0 ? "ssyevd did not converge" : "ssyevd rejected argument \(-info)")
        }
        var u = [Float](repeating: 0, count: n * n)
        var e = [Float](repeating: 0, count: n)
        for r in 0..<n {
            let source = n - 1 - r
            e[r] = w[source]
            for c in 0..<n { u[c * n + r] = a[source * n + c] }
        }
        return (u, e)
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

/// The normal equations of a least-squares system X W ≈ Y, accumulated once in double
/// precision, from which the ridge solution over any subset S of X's columns is a single
/// Cholesky solve of a sub-block:
///
///   (X_Sᵀ X_S + λ I) W = X_Sᵀ Y + λ·prior,   λ = ridge · mean_{j∈S} ‖X_j‖²,
///
/// the minimiser of ‖X_S W − Y‖² + λ‖W − prior‖² — the same problem (and the same λ) as
/// `LinearAlgebra.ridgeLeastSquares`, which solves it by QR (`sgels`) on the stacked system.
///
/// Why normal equations here: a score table refits one layer at up to N-1 ratios whose
/// systems differ only in which columns are kept (the channels kept by magnitude are
/// nested, and so are the ranks of an SVD), so one Gram matrix serves every ratio and each
/// solve costs O(|S|³/3 + |S|²·outputs) instead of a QR of the whole (rows + |S|) x |S|
/// system. Conditioning: forming XᵀX squares the condition number, which float32 could not
/// afford, so the Gram matrix is accumulated and factored in float64 (products of two floats
/// are exact in double). The ridge bounds it: with λ = ridge · trace(G_S)/|S| and G_S's
/// largest eigenvalue at most its trace, cond(G_S + λI) ≤ 1 + |S|/ridge (about 1e7 for 1,000
/// columns at ridge 1e-4), so the double-precision Cholesky factor carries a relative error
/// of about cond · 1e-16 ≈ 1e-9 — below the float32 QR's own rounding (about
/// cond(X_S) · 6e-8), from which the solutions then differ by float noise only.
struct NormalEquations {
    let columns: Int
    let outputs: Int
    let rows: Int
    /// XᵀX, row-major columns x columns (both triangles filled).
    private(set) var gram: [Double]
    /// XᵀY, row-major columns x outputs.
    private(set) var cross: [Double]

    /// Accumulates XᵀX and XᵀY of row-major `x` (rows x columns) and `y` (rows x outputs).
    init(x: [Float], y: [Float], rows: Int, columns: Int, outputs: Int) throws {
        guard rows > 0, columns > 0, outputs > 0, x.count == rows * columns, y.count == rows * outputs else {
            throw WhittleError(.numerical, "least squares", "mis-sized system")
        }
        self.rows = rows
        self.columns = columns
        self.outputs = outputs
        let xd = x.map(Double.init)
        let yd = y.map(Double.init)
        var gram = [Double](repeating: 0, count: columns * columns)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(columns), Int32(rows), 1, xd, Int32(columns),
                    0, &gram, Int32(columns))
        for r in 0..<columns {
            for c in 0..<r { gram[r * columns + c] = gram[c * columns + r] }
        }
        var cross = [Double](repeating: 0, count: columns * outputs)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(columns), Int32(outputs), Int32(rows), 1,
                    xd, Int32(columns), yd, Int32(outputs), 0, &cross, Int32(outputs))
        self.gram = gram
        self.cross = cross
    }

    /// The ridge solution over columns `subset` (indices into X's columns, in the order the
    /// solution's rows should have): row-major `subset.count x outputs`. `prior` is laid out
    /// the same way.
    func solve(subset: [Int], prior: [Float], ridge: Float) throws -> [Float] {
        let n = subset.count
        guard n > 0, prior.count == n * outputs, subset.allSatisfy({ $0 >= 0 && $0 < columns }) else {
            throw WhittleError(.numerical, "least squares", "mis-sized column subset")
        }
        var meanSquare = 0.0
        for column in subset { meanSquare += gram[column * columns + column] }
        meanSquare /= Double(n)
        let lambda = Double(Float(Double(ridge) * max(meanSquare, 1e-12)))
        // Column-major n x n (symmetric, so the row-major sub-block is the same matrix).
        var a = [Double](repeating: 0, count: n * n)
        for (i, row) in subset.enumerated() {
            let base = row * columns
            for (j, column) in subset.enumerated() { a[i * n + j] = gram[base + column] }
            a[i * n + i] += lambda
        }
        // Right-hand side, column-major n x outputs.
        var b = [Double](repeating: 0, count: n * outputs)
        for (i, row) in subset.enumerated() {
            for o in 0..<outputs { b[o * n + i] = cross[row * outputs + o] + lambda * Double(prior[i * outputs + o]) }
        }
        var order = Int32(n), lda = Int32(n), nrhs = Int32(outputs), info: Int32 = 0
        dpotrf_("L", &order, &a, &lda, &info)
        guard info == 0 else {
            throw WhittleError(.numerical, "least squares", info > 0 ? "normal equations are not positive definite (column \(info))"
                               : "dpotrf rejected argument \(-info)")
        }
        dpotrs_("L", &order, &nrhs, a, &lda, &b, &lda, &info)
        guard info == 0 else { throw WhittleError(.numerical, "least squares", "dpotrs rejected argument \(-info)") }
        var solution = [Float](repeating: 0, count: n * outputs)
        for i in 0..<n {
            for o in 0..<outputs { solution[i * outputs + o] = Float(b[o * n + i]) }
        }
        guard solution.allSatisfy(\.isFinite) else {
            throw WhittleError(.numerical, "least squares", "solution is not finite")
        }
        return solution
    }
}

/// Computing integer grids from observed ranges, following AIMET's libpymo rules
/// (shared reference aimet.md §3.4 and §5.1).
///
/// Decisions (documented here because they differ between AIMET versions):
/// - Pre-conditioning: the range is first widened to contain zero (`min <- min(min, 0)`,
///   `max <- max(max, 0)`), as every AIMET analyzer does, so zero is always on the grid.
/// - Minimum range: by default there is NO 0.01 minimum width (libpymo's `MIN_RANGE`).
///   That floor costs precision on small per-channel weight ranges (a depthwise channel with
///   |w| <= 1e-3 would get a step 5x coarser than needed), and AIMET 2 dropped it. Instead the
///   scale is floored at `minimumScale` (float32 epsilon, AIMET 2's `_MINIMUM_SCALE`), which
///   also gives dead (all-zero) channels exactly the scale 1.1920928955078125e-07 that AIMET
///   exports. Pass `minimumRange: 0.01` to reproduce libpymo bit for bit.
/// - Rounding of the zero point uses half away from zero (C `round`, as libpymo).
/// - Arithmetic runs in Double; the scale is then rounded to Float once and the offset is
///   derived from that Float scale, so the stored pair is self-consistent.
extension QuantizationEncoding {
    /// The smallest scale any computed encoding gets: float32 epsilon, 2^-23.
    public static let minimumScale: Float = 1.1920928955078125e-07

    /// The integer bit widths the math supports.
    public static let supportedBitWidths: ClosedRange<Int> = 4...16

    /// Number of grid steps: 2^b - 2 for strict symmetric, 2^b - 1 otherwise.
    public static func steps(bitWidth: Int, symmetry: QuantizationSymmetry) -> Int {
        symmetry == .strictSymmetric ? (1 << bitWidth) - 2 : (1 << bitWidth) - 1
    }

    static func checkBitWidth(_ bitWidth: Int) throws(QuantizationError) {
        guard supportedBitWidths.contains(bitWidth) else { throw .bitWidthOutOfRange(bitWidth) }
    }

    /// The encoding AIMET computes for an observed range `[min, max]`.
    ///
    /// - Asymmetric: `scale = (max - min) / N` (N = 2^b - 1); the zero point
    ///   `z = clamp(round(-min / scale), 0, N)`, `offset = -z`. The grid is the observed range
    ///   shifted (not stretched) so that zero is exactly representable.
    ///   Example (8 bits, [-2.1179, 2.64]): scale 0.018658, offset -114, grid [-2.1271, 2.6308].
    /// - Signed / strict symmetric: `scale = absmax / floor(N/2)`, `offset = -ceil(N/2)`
    ///   (8 bits: offset -128, grid [-128, 127] x scale; strict: N = 254, offset -127).
    /// - Unsigned symmetric: only when the observed `min >= 0`: offset 0, `scale = max / N`.
    ///   With a negative minimum it falls back to signed symmetric, as AIMET does; the result's
    ///   `symmetry` then says `.signedSymmetric`.
    ///
    /// - Parameter minimumRange: the smallest `max - min` after pre-conditioning (libpymo: 0.01;
    ///   default 0, relying on the `minimumScale` floor instead).
    /// - Throws: `QuantizationError` for a bit width outside 4...16, a NaN/Inf bound or `min > max`.
    public static func compute(
        min: Float, max: Float, bitWidth: Int, symmetry: QuantizationSymmetry, minimumRange: Float = 0
    ) throws(QuantizationError) -> QuantizationEncoding {
        try checkBitWidth(bitWidth)
        guard min.isFinite, max.isFinite else { throw .nonFiniteRange(min: min, max: max) }
        guard min <= max else { throw .invertedRange(min: min, max: max) }
        guard minimumRange.isFinite, minimumRange >= 0 else {
            throw .invalidParameter("minimum range \(minimumRange) must be finite and non-negative")
        }
        let low = Swift.min(Double(min), 0)
        var high = Swift.max(Double(max), 0)
        if high - low < Double(minimumRange) { high = low + Double(minimumRange) }
        let floorScale = Double(minimumScale)

        switch symmetry {
        case .unsignedSymmetric where low >= 0:
            let steps = (1 << bitWidth) - 1
            let scale = Float(Swift.max(high / Double(steps), floorScale))
            return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: 0, steps: steps, symmetry: .unsignedSymmetric)
        case .signedSymmetric, .strictSymmetric, .unsignedSymmetric:
            let resolved: QuantizationSymmetry = symmetry == .strictSymmetric ? .strictSymmetric : .signedSymmetric
            let steps = Self.steps(bitWidth: bitWidth, symmetry: resolved)
            let positiveSteps = steps / 2
            let absMax = Swift.max(-low, high)
            let scale = Float(Swift.max(absMax / Double(positiveSteps), floorScale))
            return QuantizationEncoding(
                bitWidth: bitWidth, scale: scale, offset: -((steps + 1) / 2), steps: steps, symmetry: resolved)
        case .asymmetric:
            let steps = (1 << bitWidth) - 1
            let scale = Float(Swift.max((high - low) / Double(steps), floorScale))
            let zeroPoint: Int
            if low < 0 && high > 0 {
                let raw = (-low / Double(scale)).rounded(.toNearestOrAwayFromZero)
                zeroPoint = Int(Swift.min(Swift.max(raw, 0), Double(steps)))
            } else if low < 0 {
                zeroPoint = steps
            } else {
                zeroPoint = 0
            }
            return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: -zeroPoint, steps: steps, symmetry: .asymmetric)
        }
    }

    /// An encoding given directly by its scale and offset (e.g. read from a file), validated.
    ///
    /// Asymmetric offsets must lie in `-(2^b - 1)...0`; signed symmetric needs exactly
    /// `-2^(b-1)`, strict symmetric `-(2^(b-1) - 1)`, unsigned symmetric 0.
    public static func validated(
        scale: Float, offset: Int, bitWidth: Int, symmetry: QuantizationSymmetry
    ) throws(QuantizationError) -> QuantizationEncoding {
        try checkBitWidth(bitWidth)
        guard scale.isFinite, scale > 0 else { throw .invalidScale(scale) }
        let steps = Self.steps(bitWidth: bitWidth, symmetry: symmetry)
        let valid: Bool
        switch symmetry {
        case .asymmetric: valid = offset <= 0 && offset >= -steps
        case .signedSymmetric: valid = offset == -(1 << (bitWidth - 1))
        case .strictSymmetric: valid = offset == -((1 << (bitWidth - 1)) - 1)
        case .unsignedSymmetric: valid = offset == 0
        }
        guard valid else { throw .invalidOffset(offset: offset, symmetry: symmetry, bitWidth: bitWidth) }
        return QuantizationEncoding(bitWidth: bitWidth, scale: scale, offset: offset, steps: steps, symmetry: symmetry)
    }
}

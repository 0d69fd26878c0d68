import WhittleEngine

/// How a quantization grid is placed around zero (AIMET's four modes; see
/// shared reference aimet.md §3.4 and §5.1).
public enum QuantizationSymmetry: String, Sendable, Codable, CaseIterable {
    /// Grid [min, max] with zero exactly representable; offset in [-(2^b - 1), 0].
    case asymmetric
    /// Signed symmetric: offset -2^(b-1), grid [-2^(b-1), 2^(b-1) - 1] x scale.
    case signedSymmetric
    /// Strict symmetric: 2^b - 2 steps, offset -(2^(b-1) - 1), grid [-(2^(b-1) - 1), 2^(b-1) - 1] x scale.
    case strictSymmetric
    /// Unsigned symmetric (non-negative tensors only): offset 0, grid [0, 2^b - 1] x scale.
    case unsignedSymmetric

    public var isSymmetric: Bool { self != .asymmetric }
}

/// One integer quantization grid in AIMET's convention: a value q in 0...steps maps to
/// `scale * (q + offset)`, with `offset <= 0`.
public struct QuantizationEncoding: Sendable, Equatable, Codable {
    public var bitWidth: Int
    public var scale: Float
    public var offset: Int
    /// Number of steps of the grid: 2^b - 1, or 2^b - 2 for strict symmetric.
    public var steps: Int
    public var symmetry: QuantizationSymmetry

    public init(bitWidth: Int, scale: Float, offset: Int, steps: Int? = nil, symmetry: QuantizationSymmetry) {
        self.bitWidth = bitWidth
        self.scale = scale
        self.offset = offset
        self.steps = steps ?? (symmetry == .strictSymmetric ? (1 << bitWidth) - 2 : (1 << bitWidth) - 1)
        self.symmetry = symmetry
    }

    public var isSymmetric: Bool { symmetry.isSymmetric }
    /// Smallest representable value (grid-adjusted, as exported).
    public var min: Float { scale * Float(offset) }
    /// Largest representable value (grid-adjusted, as exported).
    public var max: Float { scale * Float(offset + steps) }
}

/// The encoding of one tensor.
public enum TensorEncoding: Sendable, Equatable {
    /// One grid for the whole tensor.
    case perTensor(QuantizationEncoding)
    /// One grid per slice along `axis` (Conv weights: axis 0).
    case perChannel(axis: Int, [QuantizationEncoding])
    /// Float pass-through at this bit width (16: float16).
    case float(bitWidth: Int)
}

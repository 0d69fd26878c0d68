import WhittleEngine

/// Errors of the quantization math and the encoding analyzers.
///
/// Messages name no tensor: callers know which tensor they were quantizing or observing and
/// add its name with `whittleError(subject:)`.
public enum QuantizationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Bit width outside `QuantizationEncoding.supportedBitWidths` (4...16).
    case bitWidthOutOfRange(Int)
    /// A range bound is NaN or infinite.
    case nonFiniteRange(min: Float, max: Float)
    /// `min > max`.
    case invertedRange(min: Float, max: Float)
    /// A scale that is not finite and positive.
    case invalidScale(Float)
    /// An offset that does not fit the grid of the given symmetry and bit width.
    case invalidOffset(offset: Int, symmetry: QuantizationSymmetry, bitWidth: Int)
    /// Observed data contains NaN.
    case containsNaN
    /// Observed data contains +Inf or -Inf.
    case containsInfinity
    /// An encoding was requested from an analyzer that has observed no values.
    case noData
    /// Percentile outside [50, 100].
    case invalidPercentile(Double)
    /// A buffer whose element count does not match what the layout requires.
    case sizeMismatch(expected: Int, actual: Int)
    /// A channel axis outside the shape's rank.
    case invalidAxis(axis: Int, rank: Int)
    /// A shape with a negative dimension.
    case invalidShape([Int])
    /// Per-channel encodings whose count differs from the channel dimension.
    case channelCountMismatch(expected: Int, actual: Int)
    /// A float pass-through encoding with an unsupported width, or one used where integer codes are needed.
    case unsupportedFloatWidth(Int)
    /// An analyzer parameter out of its documented range.
    case invalidParameter(String)

    public var description: String {
        switch self {
        case .bitWidthOutOfRange(let bits):
            return "bit width \(bits) is outside the supported range 4...16"
        case .nonFiniteRange(let min, let max):
            return "range [\(min), \(max)] is not finite"
        case .invertedRange(let min, let max):
            return "range minimum \(min) is greater than its maximum \(max)"
        case .invalidScale(let scale):
            return "scale \(scale) must be finite and positive"
        case .invalidOffset(let offset, let symmetry, let bits):
            return "offset \(offset) is not valid for a \(bits)-bit \(symmetry.rawValue) grid"
        case .containsNaN:
            return "tensor contains NaN"
        case .containsInfinity:
            return "tensor contains Inf"
        case .noData:
            return "no values were observed, so no encoding can be computed"
        case .invalidPercentile(let percentile):
            return "percentile \(percentile) is outside [50, 100]"
        case .sizeMismatch(let expected, let actual):
            return "buffer has \(actual) elements, expected \(expected)"
        case .invalidAxis(let axis, let rank):
            return "channel axis \(axis) is out of range for rank \(rank)"
        case .invalidShape(let shape):
            return "shape \(shape) has a negative dimension"
        case .channelCountMismatch(let expected, let actual):
            return "\(actual) per-channel encodings given for \(expected) channels"
        case .unsupportedFloatWidth(let bits):
            return "float pass-through at \(bits) bits is not supported (16 or 32 only, and no integer codes)"
        case .invalidParameter(let message):
            return message
        }
    }

    /// The engine-wide error for this failure, about `subject` (usually a tensor name).
    public func whittleError(subject: String) -> WhittleError {
        switch self {
        case .containsNaN, .containsInfinity:
            return WhittleError(.numerical, subject, description)
        case .sizeMismatch, .channelCountMismatch, .invalidAxis, .invalidShape:
            return WhittleError(.shapeMismatch, subject, description)
        case .noData:
            return WhittleError(.invalidData, subject, description)
        default:
            return WhittleError(.invalidArgument, subject, description)
        }
    }
}

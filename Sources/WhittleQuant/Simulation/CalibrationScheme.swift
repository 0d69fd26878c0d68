import WhittleEngine

/// How activation ranges are chosen from calibration data (aimet.md §1.4, §5.3).
///
/// Weights (params) always use min-max ranges, per tensor or per channel as the config says:
/// weights are fully known, and clipping their outliers (what SQNR search does) costs more
/// accuracy than it saves on every model we measured; AIMET's users report the same.
public enum CalibrationScheme: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Absolute min and max of everything seen (AIMET `post_training_tf` / `min_max`).
    case minMax
    /// SQNR search over a histogram that grows with the data (AIMET `tf_enhanced`, gamma 3).
    case sqnr
    /// Range from the p-th and (100-p)-th percentiles (p in 50...100).
    case percentile(Double)
    /// Range minimising the expected squared quantization error over the histogram.
    case mse

    /// Parses `minmax` (or `tf`, `min-max`), `sqnr` (or `tf-enhanced`), `percentile[:P]`
    /// (default 99.99) and `mse`.
    public init(parsing text: String) throws {
        let lowered = text.lowercased()
        switch lowered {
        case "minmax", "min-max", "min_max", "tf": self = .minMax
        case "sqnr", "tf-enhanced", "tf_enhanced": self = .sqnr
        case "mse": self = .mse
        case "percentile": self = .percentile(99.99)
        default:
            guard lowered.hasPrefix("percentile:") else {
                throw WhittleError(.invalidArgument, "scheme '\(text)'", "unknown; use minmax, sqnr, percentile[:P] or mse")
            }
            let value = lowered.dropFirst("percentile:".count)
            guard let p = Double(value), p >= 50, p <= 100 else {
                throw WhittleError(.invalidArgument, "scheme '\(text)'", "the percentile must be a number in 50...100")
            }
            self = .percentile(p)
        }
    }

    public var description: String {
        switch self {
        case .minMax: return "minmax"
        case .sqnr: return "sqnr"
        case .percentile(let p): return "percentile:\(p)"
        case .mse: return "mse"
        }
    }

    /// AIMET's name for the scheme in an encodings file's `quantizer_args`.
    public var aimetName: String {
        switch self {
        case .minMax: return "post_training_tf"
        case .sqnr: return "post_training_tf_enhanced"
        case .percentile: return "post_training_percentile"
        case .mse: return "post_training_mse"
        }
    }

    /// A fresh analyzer for one tensor.
    func makeAnalyzer() throws(QuantizationError) -> any EncodingAnalyzer {
        switch self {
        case .minMax: return MinMaxEncodingAnalyzer()
        case .sqnr: return try SqnrEncodingAnalyzer()
        case .percentile(let p): return try PercentileEncodingAnalyzer(percentile: p)
        case .mse: return try MseEncodingAnalyzer()
        }
    }
}

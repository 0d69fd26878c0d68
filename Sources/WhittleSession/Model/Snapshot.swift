import Foundation

/// Measured quality and cost of one state of the model.
public struct SessionMetrics: Codable, Sendable, Equatable {
    /// Top-1 accuracy against labels (0...1).
    public var accuracy: Double?
    /// Top-1 agreement with the float model (0...1), when there are no labels.
    public var agreement: Double?
    /// Output signal-to-quantization-noise ratio against the float model, in dB.
    public var sqnr: Double?
    public var macs: Int?
    public var parameters: Int?
    /// Size of the deployable model in bytes (weights at their bit widths).
    public var sizeBytes: Int?
    /// Per-layer measurements, keyed by layer (node) name.
    public var layers: [String: LayerMetrics]

    public init(accuracy: Double? = nil, agreement: Double? = nil, sqnr: Double? = nil, macs: Int? = nil,
                parameters: Int? = nil, sizeBytes: Int? = nil, layers: [String: LayerMetrics] = [:]) {
        self.accuracy = accuracy
        self.agreement = agreement
        self.sqnr = sqnr
        self.macs = macs
        self.parameters = parameters
        self.sizeBytes = sizeBytes
        self.layers = layers
    }

    enum CodingKeys: String, CodingKey { case accuracy, agreement, sqnr, macs, parameters, sizeBytes, layers }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        accuracy = try c.decodeIfPresent(Double.self, forKey: .accuracy)
        agreement = try c.decodeIfPresent(Double.self, forKey: .agreement)
        sqnr = try c.decodeIfPresent(Double.self, forKey: .sqnr)
        macs = try c.decodeIfPresent(Int.self, forKey: .macs)
        parameters = try c.decodeIfPresent(Int.self, forKey: .parameters)
        sizeBytes = try c.decodeIfPresent(Int.self, forKey: .sizeBytes)
        layers = try c.decodeIfPresent([String: LayerMetrics].self, forKey: .layers) ?? [:]
    }
}

/// Per-layer state and measurements in a snapshot or the current metrics.
public struct LayerMetrics: Codable, Sendable, Equatable {
    public var ratio: Double?
    public var weightBits: Int?
    public var activationBits: Int?
    /// SQNR of the layer's output under quantization, in dB.
    public var sqnr: Double?
    public var macs: Int?
    public var parameters: Int?
    /// The encoding the quantizer computed for the layer's weight (both factors of a split layer).
    public var weightEncoding: EncodingSummary?
    /// The encoding of the layer's output activation (or of the first quantized tensor after
    /// it, when the output itself is fused, e.g. Conv -> Relu).
    public var activationEncoding: EncodingSummary?

    public init(ratio: Double? = nil, weightBits: Int? = nil, activationBits: Int? = nil, sqnr: Double? = nil,
                macs: Int? = nil, parameters: Int? = nil, weightEncoding: EncodingSummary? = nil,
                activationEncoding: EncodingSummary? = nil) {
        self.weightEncoding = weightEncoding
        self.activationEncoding = activationEncoding
        self.ratio = ratio
        self.weightBits = weightBits
        self.activationBits = activationBits
        self.sqnr = sqnr
        self.macs = macs
        self.parameters = parameters
    }
}

/// A quantizer's encoding as the workbench shows it: `scale * (q + offset)`, q in 0...2^b - 1
/// (AIMET's convention). Per-channel encodings keep the range of their channels' scales.
public struct EncodingSummary: Codable, Sendable, Equatable {
    public var bitWidth: Int
    public var symmetric: Bool
    /// Number of per-channel grids (nil: one grid for the whole tensor).
    public var channels: Int?
    /// The scale (per-tensor), or the smallest channel scale.
    public var scale: Double
    /// The largest channel scale (equal to `scale` per-tensor).
    public var maximumScale: Double
    /// The offset of a per-tensor grid (nil per-channel: one per channel).
    public var offset: Int?
    /// Float pass-through (e.g. float16) instead of an integer grid.
    public var isFloat: Bool

    public init(bitWidth: Int, symmetric: Bool, channels: Int? = nil, scale: Double, maximumScale: Double? = nil,
                offset: Int? = nil, isFloat: Bool = false) {
        self.bitWidth = bitWidth
        self.symmetric = symmetric
        self.channels = channels
        self.scale = scale
        self.maximumScale = maximumScale ?? scale
        self.offset = offset
        self.isFloat = isFloat
    }
}

/// A named what-if state: the settings it captured and what they measured.
public struct Snapshot: Codable, Sendable, Equatable, Identifiable {
    public var name: String
    public var created: Date
    public var settings: SessionSettings
    public var metrics: SessionMetrics

    public var id: String { name }

    /// `created` is kept to whole milliseconds, the precision a profile stores.
    public init(name: String, created: Date = Date(), settings: SessionSettings = SessionSettings(),
                metrics: SessionMetrics = SessionMetrics()) {
        self.name = name
        self.created = ProfileDate.wholeMilliseconds(created)
        self.settings = settings
        self.metrics = metrics
    }

    enum CodingKeys: String, CodingKey { case name, created, settings, metrics }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        let text = try c.decode(String.self, forKey: .created)
        guard let date = ProfileDate.parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: .created, in: c,
                                                   debugDescription: "expected an ISO 8601 date like 2024-05-01T12:00:00Z, got '\(text)'")
        }
        created = date
        settings = try c.decodeIfPresent(SessionSettings.self, forKey: .settings) ?? SessionSettings()
        metrics = try c.decodeIfPresent(SessionMetrics.self, forKey: .metrics) ?? SessionMetrics()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(ProfileDate.format(created), forKey: .created)
        try c.encode(settings, forKey: .settings)
        try c.encode(metrics, forKey: .metrics)
    }

    /// Per-layer ratio and bits of this snapshot for `layer`: measured values where recorded,
    /// else what the captured settings say.
    public func layerState(_ layer: String) -> LayerMetrics {
        var state = metrics.layers[layer] ?? LayerMetrics()
        let bits = settings.bitWidths(for: layer)
        if state.ratio == nil { state.ratio = settings.compression.ratio(for: layer) }
        if state.weightBits == nil { state.weightBits = bits.weight }
        if state.activationBits == nil { state.activationBits = bits.activation }
        return state
    }
}

/// Dates in profiles: ISO 8601 text in UTC with milliseconds, independent of the coder's date
/// strategy, so a session encodes the same way through any JSONEncoder.
enum ProfileDate {
    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// Accepts dates with or without fractional seconds.
    static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return wholeMilliseconds(date) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map(wholeMilliseconds)
    }

    /// The date rounded to whole milliseconds, computed the same way for new and parsed dates
    /// so that a round trip is exact.
    static func wholeMilliseconds(_ date: Date) -> Date {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        return Date(timeIntervalSince1970: milliseconds / 1000)
    }
}

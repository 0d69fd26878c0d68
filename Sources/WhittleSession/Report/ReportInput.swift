import Foundation
import WhittleEngine

/// A histogram of one tensor's values, for the range plots of the report and the layer detail
/// panel.
public struct RangeHistogram: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case weight, activation
    }

    /// The layer (node) the tensor belongs to.
    public var layer: String
    /// The tensor's name.
    public var tensor: String
    public var kind: Kind
    public var minimum: Float
    public var maximum: Float
    /// Counts of equal-width bins spanning `minimum...maximum`.
    public var counts: [Int]

    public init(layer: String, tensor: String, kind: Kind, minimum: Float, maximum: Float, counts: [Int]) {
        self.layer = layer
        self.tensor = tensor
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum
        self.counts = counts
    }

    /// Bins `values` (NaN and infinities are skipped) into `bins` equal-width bins over their
    /// range. Nil when no finite value is present.
    public init?(layer: String, tensor: String, kind: Kind, values: UnsafeBufferPointer<Float>, bins: Int = 48) {
        var low = Float.infinity, high = -Float.infinity
        for value in values where value.isFinite {
            low = min(low, value)
            high = max(high, value)
        }
        guard low <= high else { return nil }
        let binCount = max(1, bins)
        var counts = [Int](repeating: 0, count: binCount)
        let width = high - low
        let scale = width > 0 ? Float(binCount) / width : 0
        for value in values where value.isFinite {
            let bin = min(binCount - 1, max(0, Int((value - low) * scale)))
            counts[bin] += 1
        }
        self.init(layer: layer, tensor: tensor, kind: kind, minimum: low, maximum: high, counts: counts)
    }

    public init?(layer: String, tensor: String, kind: Kind, values: [Float], bins: Int = 48) {
        guard let histogram = values.withUnsafeBufferPointer({
            RangeHistogram(layer: layer, tensor: tensor, kind: kind, values: $0, bins: bins)
        }) else { return nil }
        self = histogram
    }

    public var total: Int { counts.reduce(0, +) }
}

/// Everything the HTML report shows.
public struct ReportInput: Sendable {
    public var title: String
    public var session: Session
    /// Per-layer cost of the float model (model summary, MAC shares, chosen-ratio savings).
    public var cost: ModelCost?
    /// Layer names in execution order (orders every per-layer table and chart).
    public var layerOrder: [String]
    public var histograms: [RangeHistogram]
    public var generated: Date

    public init(title: String, session: Session, cost: ModelCost? = nil, layerOrder: [String]? = nil,
                histograms: [RangeHistogram] = [], generated: Date = Date()) {
        self.title = title
        self.session = session
        self.cost = cost
        self.layerOrder = layerOrder ?? cost?.layers.map(\.name) ?? []
        self.histograms = histograms
        self.generated = generated
    }
}

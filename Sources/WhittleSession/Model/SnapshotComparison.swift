import Foundation
import WhittleQuant

/// The difference between two snapshots, for the Compare panel and the report: every metric
/// side by side with its change, and the layers whose ratio or bit widths differ.
public struct SnapshotComparison: Sendable, Equatable {
    /// One metric of both snapshots.
    public struct MetricDelta: Sendable, Equatable, Identifiable {
        public enum Metric: String, Sendable, Equatable, CaseIterable {
            case accuracy, agreement, sqnr, macs, parameters, sizeBytes

            /// Short label for tables.
            public var label: String {
                switch self {
                case .accuracy: return "Accuracy"
                case .agreement: return "Agreement"
                case .sqnr: return "SQNR (dB)"
                case .macs: return "MACs"
                case .parameters: return "Parameters"
                case .sizeBytes: return "Size (bytes)"
                }
            }

            /// Whether a larger value is an improvement (quality up, cost down).
            public var higherIsBetter: Bool {
                switch self {
                case .accuracy, .agreement, .sqnr: return true
                case .macs, .parameters, .sizeBytes: return false
                }
            }
        }

        public var metric: Metric
        public var a: Double?
        public var b: Double?
        public var id: Metric { metric }

        /// `b - a` when both are known.
        public var delta: Double? {
            guard let a, let b else { return nil }
            return b - a
        }

        /// `(b - a) / |a|` when both are known and `a` is not zero.
        public var relativeDelta: Double? {
            guard let a, let b, a != 0 else { return nil }
            return (b - a) / abs(a)
        }

        /// +1 when b is better than a, -1 when worse, 0 when equal or unknown.
        public var verdict: Int {
            guard let delta, delta != 0 else { return 0 }
            return (delta > 0) == metric.higherIsBetter ? 1 : -1
        }
    }

    /// One layer whose settings differ between the snapshots.
    public struct LayerDifference: Sendable, Equatable, Identifiable {
        public var layer: String
        public var a: LayerMetrics
        public var b: LayerMetrics
        public var id: String { layer }

        public var ratioChanged: Bool { !same(a.ratio, b.ratio) }
        public var weightBitsChanged: Bool { a.weightBits != b.weightBits }
        public var activationBitsChanged: Bool { a.activationBits != b.activationBits }
        public var techniqueA: CompressionTechnique?
        public var techniqueB: CompressionTechnique?
        public var techniqueChanged: Bool { techniqueA != techniqueB }
    }

    public var a: Snapshot
    public var b: Snapshot
    /// Every metric, in `Metric.allCases` order (including those known in neither snapshot).
    public var metrics: [MetricDelta]
    /// Layers that differ in ratio, technique (where either is compressed) or bit widths, in
    /// `layerOrder` order (then by name).
    public var layers: [LayerDifference]
    /// Recipe fields that differ, as `name: a -> b` lines.
    public var recipeChanges: [String]

    /// Compares `a` (the reference) with `b`. `layerOrder` (e.g. execution order) orders the
    /// layer differences; layers not in it follow by name. `layers` names extra layers to check
    /// beyond those the snapshots mention (so a bits change from the recipe shows per layer).
    public init(_ a: Snapshot, _ b: Snapshot, layerOrder: [String] = [], layers extraLayers: [String] = []) {
        self.a = a
        self.b = b
        func values(_ metrics: SessionMetrics, _ metric: MetricDelta.Metric) -> Double? {
            switch metric {
            case .accuracy: return metrics.accuracy
            case .agreement: return metrics.agreement
            case .sqnr: return metrics.sqnr
            case .macs: return metrics.macs.map(Double.init)
            case .parameters: return metrics.parameters.map(Double.init)
            case .sizeBytes: return metrics.sizeBytes.map(Double.init)
            }
        }
        metrics = MetricDelta.Metric.allCases.map { MetricDelta(metric: $0, a: values(a.metrics, $0), b: values(b.metrics, $0)) }

        var names = Set(extraLayers)
        for snapshot in [a, b] {
            names.formUnion(snapshot.metrics.layers.keys)
            names.formUnion(snapshot.settings.compression.ratios.keys)
            names.formUnion(snapshot.settings.compression.techniques.keys)
            names.formUnion(snapshot.settings.compression.ignoredLayers)
            names.formUnion(snapshot.settings.bitWidthOverrides.keys)
        }
        let rank = Dictionary(layerOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let ordered = names.sorted { x, y in
            switch (rank[x], rank[y]) {
            case let (i?, j?): return i < j
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return x < y
            }
        }
        var differences: [LayerDifference] = []
        for layer in ordered {
            var difference = LayerDifference(layer: layer, a: a.layerState(layer), b: b.layerState(layer))
            let ratioA = difference.a.ratio ?? 1, ratioB = difference.b.ratio ?? 1
            // A technique only matters for a layer that is compressed in either snapshot.
            if ratioA < 1 || ratioB < 1 {
                difference.techniqueA = ratioA < 1 ? a.settings.compression.technique(for: layer) : nil
                difference.techniqueB = ratioB < 1 ? b.settings.compression.technique(for: layer) : nil
            }
            if difference.ratioChanged || difference.weightBitsChanged || difference.activationBitsChanged || difference.techniqueChanged {
                differences.append(difference)
            }
        }
        layers = differences
        recipeChanges = SnapshotComparison.recipeChanges(a.settings, b.settings)
    }

    /// The metric row for `metric`.
    public func delta(_ metric: MetricDelta.Metric) -> MetricDelta? {
        metrics.first { $0.metric == metric }
    }

    static func recipeChanges(_ sa: SessionSettings, _ sb: SessionSettings) -> [String] {
        let a = sa.recipe, b = sb.recipe
        var changes: [String] = []
        func compare<T: Equatable>(_ name: String, _ x: T, _ y: T) {
            if x != y { changes.append("\(name): \(x) -> \(y)") }
        }
        compare("config", a.config, b.config)
        compare("scheme", a.scheme.profileText, b.scheme.profileText)
        compare("weight bits", a.weightBits, b.weightBits)
        compare("activation bits", a.activationBits, b.activationBits)
        compare("per-channel", a.perChannel == true, b.perChannel == true)
        compare("scale/shift folding", a.foldScaleShift, b.foldScaleShift)
        compare("CLE", a.crossLayerEqualization, b.crossLayerEqualization)
        compare("bias correction", a.biasCorrection, b.biasCorrection)
        compare("activation bias correction", a.activationBiasCorrection, b.activationBiasCorrection)
        compare("AdaRound", a.adaRound, b.adaRound)
        compare("sequential MSE", a.sequentialMSE, b.sequentialMSE)
        compare("auto", sa.autoQuant, sb.autoQuant)
        return changes
    }
}

private func same(_ x: Double?, _ y: Double?) -> Bool {
    switch (x, y) {
    case (nil, nil): return true
    case let (x?, y?): return abs(x - y) < 1e-9
    default: return false
    }
}

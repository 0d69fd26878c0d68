import Foundation
import WhittleEngine

/// A value histogram: equal-width bins over [low, high].
public struct Histogram: Sendable, Equatable, Codable {
    public var low: Double
    public var high: Double
    public var counts: [Int]

    public init(low: Double, high: Double, counts: [Int]) {
        self.low = low
        self.high = high
        self.counts = counts
    }

    /// Histogram of `values` in `bins` bins over their own range (nil when empty).
    public init?(values: some Collection<Float>, bins: Int) {
        guard !values.isEmpty, bins > 0 else { return nil }
        var low = Float.infinity, high = -Float.infinity
        for v in values where v.isFinite {
            low = min(low, v)
            high = max(high, v)
        }
        guard low.isFinite, high.isFinite else { return nil }
        var counts = [Int](repeating: 0, count: bins)
        let span = high > low ? high - low : 1
        let scale = Float(bins) / span
        for v in values where v.isFinite {
            counts[min(bins - 1, max(0, Int((v - low) * scale)))] += 1
        }
        self.init(low: Double(low), high: Double(high), counts: counts)
    }

    /// Adds another histogram with the same range and bin count.
    public mutating func add(_ other: Histogram) {
        guard other.counts.count == counts.count else { return }
        for i in counts.indices { counts[i] += other.counts[i] }
    }

    /// `bins` counts resampled to `width` columns: each column sums the bins it covers
    /// (or repeats the one bin it falls in when there are more columns than bins).
    public func resampled(to width: Int) -> [Double] {
        guard width > 0, !counts.isEmpty else { return [] }
        let bins = counts.count
        return (0..<width).map { column in
            let first = column * bins / width
            let last = max(first + 1, (column + 1) * bins / width)
            return Double(counts[first..<min(last, bins)].reduce(0, +))
        }
    }
}

/// What one row of the layer graph draws in its connector gutter.
public enum GutterCell: Sendable, Equatable {
    case space, node, vertical, horizontal, start, end, cross
}

/// One runtime layer as the workbench shows it.
public struct LayerSummary: Sendable, Equatable {
    public var name: String
    public var opType: String
    public var outputShape: [Int]
    public var parameters: Int
    public var macs: Int
    /// Connector gutter (node column, then one column per lane) for branches and residuals.
    public var gutter: [GutterCell]
    /// Name of the weight initializer (Conv, Gemm, MatMul input 1), if any.
    public var weightName: String?
    /// Weight values' histogram, computed once on load.
    public var weightHistogram: Histogram?
    /// Conv/Gemm/MatMul layers with MACs: the ones compression ratios apply to.
    public var compressible: Bool
    /// Output tensor names (for activation statistics).
    public var outputs: [String]
}

/// What compression keeps of a layer as its ratio moves, measured by the compression library
/// when the workbench starts (`Compressor.keptScales`): a rank for spatial and weight SVD,
/// input channels for channel pruning.
public struct LayerStructure: Sendable, Equatable {
    /// True for input channels (channel pruning), false for a rank (SVD).
    public var channels: Bool
    /// Full rank, or the layer's input channels.
    public var full: Int
    /// Units per unit of ratio before flooring: kept(r) = min(full, max(1, ⌊r · perRatio⌋)),
    /// the library's rule at multiplicity 1 (a test holds them equal).
    public var perRatio: Double

    public init(channels: Bool, full: Int, perRatio: Double) {
        self.channels = channels
        self.full = full
        self.perRatio = perRatio
    }

    public func kept(ratio: Double) -> Int {
        min(full, max(1, Int((ratio * perRatio + 1e-9).rounded(.down))))
    }
}

/// The loaded model as the workbench needs it: layers in execution order with costs,
/// connectors and weight histograms; totals at batch 1.
public struct ModelSummary: Sendable, Equatable {
    public var name: String
    public var path: String
    public var layers: [LayerSummary]
    public var inputs: [String]
    public var lanes: Int

    public init(name: String, path: String, layers: [LayerSummary], inputs: [String], lanes: Int) {
        self.name = name
        self.path = path
        self.layers = layers
        self.inputs = inputs
        self.lanes = lanes
    }

    public var totalMACs: Int { layers.reduce(0) { $0 + $1.macs } }
    public var totalParameters: Int { layers.reduce(0) { $0 + $1.parameters } }
    public func index(of layer: String) -> Int? { layers.firstIndex { $0.name == layer } }

    /// Most connector lanes drawn; more parallel skips are folded into the last lane.
    public static let maximumLanes = 4

    /// Analyses `graph` at batch 1 and summarises every runtime layer.
    public init(graph: Graph, path: String, histogramBins: Int = 48) throws {
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        let cost = CostModel.analyze(analysis)
        let runtime = analysis.runtimeNodes
        // Skip edges: a layer output consumed by a later layer that is not the next one.
        var producerRow: [String: Int] = [:]
        for (row, node) in runtime.enumerated() { for output in node.node.outputs { producerRow[output] = row } }
        var edges: [(start: Int, end: Int)] = []
        for (row, node) in runtime.enumerated() {
            for input in Set(node.node.inputs) where !input.isEmpty {
                if let start = producerRow[input], row > start + 1 { edges.append((start, row)) }
            }
        }
        edges.sort { $0.start != $1.start ? $0.start < $1.start : $0.end < $1.end }
        var laneEnds: [Int] = []
        var assigned: [(start: Int, end: Int, lane: Int)] = []
        for edge in edges {
            var lane = laneEnds.firstIndex { $0 < edge.start } ?? laneEnds.count
            if lane >= ModelSummary.maximumLanes { lane = ModelSummary.maximumLanes - 1 }
            if lane == laneEnds.count { laneEnds.append(edge.end) } else { laneEnds[lane] = max(laneEnds[lane], edge.end) }
            assigned.append((edge.start, edge.end, lane))
        }
        let laneCount = laneEnds.count
        var gutters = [[GutterCell]](repeating: [GutterCell](repeating: .space, count: laneCount + 1), count: runtime.count)
        for row in gutters.indices { gutters[row][0] = .node }
        for edge in assigned {
            let column = edge.lane + 1
            for row in edge.start + 1..<edge.end where gutters[row][column] == .space || gutters[row][column] == .horizontal {
                gutters[row][column] = gutters[row][column] == .horizontal ? .cross : .vertical
            }
            for (row, cap) in [(edge.start, GutterCell.start), (edge.end, GutterCell.end)] {
                if gutters[row][column] == .space || gutters[row][column] == .horizontal { gutters[row][column] = cap }
                for between in 1..<column {
                    switch gutters[row][between] {
                    case .space: gutters[row][between] = .horizontal
                    case .vertical: gutters[row][between] = .cross
                    default: break
                    }
                }
            }
        }
        var layers: [LayerSummary] = []
        for (row, node) in runtime.enumerated() {
            let layerCost = cost.layers[row]
            let weightName = ["Conv", "ConvTranspose", "Gemm", "MatMul"].contains(node.node.opType) ? node.node.input(1) : nil
            var histogram: Histogram?
            if let weightName, let tensor = analysis.constants[weightName], tensor.isFloatingPoint {
                histogram = Histogram(values: tensor.floats, bins: histogramBins)
            }
            layers.append(LayerSummary(
                name: node.node.name.isEmpty ? (node.node.outputs.first ?? "layer \(row)") : node.node.name,
                opType: node.node.opType, outputShape: layerCost.outputShape, parameters: layerCost.parameters,
                macs: layerCost.macs, gutter: gutters[row], weightName: weightName, weightHistogram: histogram,
                compressible: weightName != nil && layerCost.macs > 0, outputs: node.node.outputs))
        }
        self.init(name: graph.name, path: path, layers: layers, inputs: graph.runtimeInputs.map(\.name), lanes: laneCount)
    }
}

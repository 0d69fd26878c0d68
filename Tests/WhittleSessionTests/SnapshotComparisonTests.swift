import Foundation
import Testing
@testable import WhittleSession

@Suite struct SnapshotComparisonTests {
    func snapshots() -> (Snapshot, Snapshot) {
        var session = Session(modelPath: "m.onnx")
        session.compression.ratios = ["conv1": 0.5, "conv2": 0.75]
        session.compression.techniques = ["conv2": .channelPruning]
        session.bitWidthOverrides = ["fc": BitWidthOverride(weightBits: 4)]
        let a = session.takeSnapshot(named: "a", metrics: SessionMetrics(accuracy: 0.9, sqnr: 20, macs: 1000, parameters: 500, sizeBytes: 2000))
        session.compression.ratios = ["conv1": 0.5, "conv2": 0.5, "conv3": 0.25]
        session.compression.techniques = ["conv2": .spatialSVD]
        session.bitWidthOverrides = [:]
        session.recipe.activationBits = 16
        session.recipe.scheme = .mse
        let b = session.takeSnapshot(named: "b", metrics: SessionMetrics(
            accuracy: 0.85, sqnr: 25, macs: 600, parameters: 400,
            layers: ["conv3": LayerMetrics(ratio: 0.25, sqnr: 18)]))
        return (a, b)
    }

    @Test func metricDeltasAndVerdicts() throws {
        let (a, b) = snapshots()
        let comparison = SnapshotComparison(a, b)
        #expect(comparison.metrics.map(\.metric) == SnapshotComparison.MetricDelta.Metric.allCases)
        let accuracy = try #require(comparison.delta(.accuracy))
        #expect(abs((accuracy.delta ?? 0) + 0.05) < 1e-12)
        #expect(accuracy.verdict == -1)
        let macs = try #require(comparison.delta(.macs))
        #expect(macs.delta == -400)
        #expect(macs.relativeDelta == -0.4)
        #expect(macs.verdict == 1)  // fewer MACs is better
        #expect(comparison.delta(.sqnr)?.verdict == 1)
        // Known in one snapshot only: no delta, no verdict.
        let size = try #require(comparison.delta(.sizeBytes))
        #expect(size.a == 2000 && size.b == nil && size.delta == nil && size.verdict == 0)
        #expect(comparison.delta(.agreement)?.a == nil)
    }

    @Test func layerDifferences() throws {
        let (a, b) = snapshots()
        let comparison = SnapshotComparison(a, b, layerOrder: ["conv3", "conv2", "conv1", "fc"])
        // conv1 keeps its ratio and technique, but every layer's activation bits follow the
        // recipe from 8 to 16, so all four layers the snapshots mention differ.
        let names = comparison.layers.map(\.layer)
        #expect(names == ["conv3", "conv2", "conv1", "fc"])
        let conv2 = try #require(comparison.layers.first { $0.layer == "conv2" })
        #expect(conv2.a.ratio == 0.75 && conv2.b.ratio == 0.5)
        #expect(conv2.techniqueA == .channelPruning && conv2.techniqueB == .spatialSVD)
        #expect(conv2.techniqueChanged && conv2.ratioChanged)
        let conv3 = try #require(comparison.layers.first { $0.layer == "conv3" })
        #expect(conv3.a.ratio == 1 && conv3.b.ratio == 0.25 && conv3.b.sqnr == 18)
        #expect(conv3.techniqueA == nil && conv3.techniqueB == .spatialSVD)
        let fc = try #require(comparison.layers.first { $0.layer == "fc" })
        #expect(fc.a.weightBits == 4 && fc.b.weightBits == 8 && fc.weightBitsChanged)
        #expect(fc.a.activationBits == 8 && fc.b.activationBits == 16)
        #expect(comparison.recipeChanges == ["scheme: sqnr -> mse", "activation bits: 8 -> 16"])
    }

    @Test func identicalSnapshotsHaveNoDifferences() {
        let (a, _) = snapshots()
        let comparison = SnapshotComparison(a, a, layers: ["conv1", "conv2", "fc", "other"])
        #expect(comparison.layers.isEmpty)
        #expect(comparison.recipeChanges.isEmpty)
        #expect(comparison.metrics.allSatisfy { $0.delta == nil || $0.delta == 0 })
    }

    @Test func unorderedLayersFollowByName() {
        var a = Snapshot(name: "a"), b = Snapshot(name: "b")
        a.settings.compression.ratios = ["zeta": 0.5, "alpha": 0.5, "mid": 0.5]
        b.settings.compression.ratios = [:]
        let comparison = SnapshotComparison(a, b, layerOrder: ["mid"])
        #expect(comparison.layers.map(\.layer) == ["mid", "alpha", "zeta"])
    }
}

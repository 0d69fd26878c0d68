import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine

@Suite("Landing on the target cost ratio")
struct TargetLandingTests {
    /// Layers with whole-number kept units: cost = total - Σ macs_i · (1 - floor(r_i · units_i) / units_i).
    struct Toy {
        var macs: [String: Int] = ["a": 60_000, "b": 30_000, "c": 9_000]
        var units: [String: Int] = ["a": 48, "b": 7, "c": 200]
        let total = 120_000
        func ratio(_ ratios: [String: Double]) -> Double {
            var cost = Double(total)
            for (layer, r) in ratios {
                let n = units[layer] ?? 1
                let kept = max(1, Int((Double(n) * r + 1e-9).rounded(.down)))
                cost -= Double(macs[layer] ?? 0) * (1 - Double(kept) / Double(n))
            }
            return cost / Double(total)
        }
    }

    static let rows: [(layer: String, candidates: [Double], scores: [Double])] = ["a", "b", "c"].enumerated().map { index, layer in
        (layer, [0.25, 0.5, 0.75], [0.5, 0.8, 0.95].map { $0 - Double(index) * 0.1 })
    }

    @Test("lands within the tolerance from above and from below", arguments: [0.55, 0.62, 0.7, 0.81, 0.9])
    func lands(target: Double) throws {
        let toy = Toy()
        for start in [["a": 0.25, "b": 0.25, "c": 0.25], ["a": 0.75], [:]] as [[String: Double]] {
            var calls = 0
            let result = try TargetLanding.land(ratios: start, target: target, tolerance: 0.001, layers: Self.rows,
                                                smallestRatio: 0.25) { ratios, _ in
                calls += 1
                return toy.ratio(ratios)
            }
            #expect(abs(result.measured - target) <= 0.001, "start \(start): \(result.measured)")
            #expect(abs(toy.ratio(result.ratios) - result.measured) < 1e-12)
            #expect(result.measurements == calls)
            #expect(result.ratios.values.allSatisfy { $0 >= 0.25 - 1e-12 && $0 < 1 })
        }
    }

    @Test("coarse layers that cannot land meet the target from below, or stay above when asked")
    func coarseLayersMeetFromBelow() throws {
        // One layer of 10 units holding half the cost: reachable ratios are 0.5 + 0.05 k.
        var toy = Toy()
        toy.macs = ["a": 60_000]
        toy.units = ["a": 10]
        let rows = [Self.rows[0]]
        for (fromBelow, expected) in [(true, 0.70), (false, 0.75)] {
            let result = try TargetLanding.land(ratios: ["a": 0.75], target: 0.72, tolerance: 0.001, layers: rows,
                                                smallestRatio: 0.25, meetFromBelow: fromBelow) { ratios, _ in toy.ratio(ratios) }
            #expect(abs(result.measured - expected) < 1e-9, "meetFromBelow \(fromBelow): \(result.measured)")
            #expect(abs(toy.ratio(result.ratios) - result.measured) < 1e-12)
        }
    }

    @Test("an unreachable target leaves every layer at the smallest ratio")
    func unreachable() throws {
        let toy = Toy()
        let result = try TargetLanding.land(ratios: [:], target: 0.1, tolerance: 0.001, layers: Self.rows, smallestRatio: 0.25) { r, _ in
            toy.ratio(r)
        }
        #expect(result.ratios == ["a": 0.25, "b": 0.25, "c": 0.25])
        #expect(result.measured > 0.1)
    }

    @Test("the pipeline hits the MAC target within 0.001 on digits-cnn and digits-mobilenet",
          arguments: [("digits-cnn", "spatial-svd,channel-pruning"), ("digits-mobilenet", "channel-pruning")])
    func pipeline(model: String, scheme: String) throws {
        let graph = try Fixture.model(model)
        let data = try Fixture.data("digits-test", first: 8)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: data.inputs, labels: data.labels, batchSize: 8)
        var request = CompressionRequest(scheme: try CompressionArguments.scheme(scheme), goal: .target(0.5))
        request.candidateCount = 3
        request.refine = false
        request.options = CompressionOptions(reconstructionInputs: try Fixture.data("digits-calib", first: 8).inputs, batchSize: 8)
        let (compressed, report) = try CompressionPipeline.run(request, evaluator: evaluator)
        #expect(abs(report.macRatio - 0.5) <= 0.001, "\(report.macRatio)")
        let cost = CostModel.analyze(try GraphAnalysis(graph: compressed, batchSize: 1))
        #expect(cost.totalMACs == report.compressedMACs)
    }
}

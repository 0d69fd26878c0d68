import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine
import WhittleIO

/// A synthetic table: each layer holds `share` of 1000 MACs and saves share x (1 - r).
func syntheticTable(_ layers: [(name: String, share: Int, scores: [Double])], candidates: Int = 10) -> ScoreTable {
    let ratios = (1..<candidates).map { Double($0) / Double(candidates) }
    let rows = layers.map { layer in
        LayerScores(layer: layer.name, technique: .spatialSVD, macs: layer.share, parameters: layer.share,
                    entries: zip(ratios, layer.scores).map { ratio, score in
                        let saved = Int((Double(layer.share) * (1 - ratio)).rounded())
                        return ScoreEntry(ratio: ratio, scores: ScoreValues(accuracy: score, agreement: score, sqnr: score * 40),
                                          macs: 1000 - saved, parameters: 1000 - saved, kept: 1, original: 1)
                    })
    }
    return ScoreTable(technique: .spatialSVD, candidates: ratios, baseline: ScoreValues(accuracy: 1, agreement: 1, sqnr: 200),
                      modelMACs: 1000, modelParameters: 1000, layers: rows)
}

@Suite("Selection: greedy")
struct SelectionGreedyTests {
    let ratios = (1..<10).map { Double($0) / 10 }

    @Test("monotonic fit pools violators and keeps monotonic input")
    func monotonic() {
        #expect(GreedySelector.monotonicFit([1, 3, 2, 4]) == [1, 2.5, 2.5, 4])
        #expect(GreedySelector.monotonicFit([0.1, 0.2, 0.3]) == [0.1, 0.2, 0.3])
        #expect(GreedySelector.monotonicFit([3, 2, 1]) == [2, 2, 2])
        let fitted = GreedySelector.monotonicFit([0.5, 0.9, 0.4, 0.8, 0.7, 1.0])
        #expect(zip(fitted, fitted.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(abs(fitted.reduce(0, +) - 4.3) < 1e-12)  // isotonic regression preserves the sum
    }

    @Test("AIMET's per-layer pick for a threshold")
    func pick() {
        let scores = [0.2, 0.5, 0.5, 0.9]
        #expect(GreedySelector.ratioIndex(forThreshold: 0.95, scores: scores) == nil)
        #expect(GreedySelector.ratioIndex(forThreshold: 0.1, scores: scores) == 0)
        #expect(GreedySelector.ratioIndex(forThreshold: 0.5, scores: scores) == 1)
        #expect(GreedySelector.ratioIndex(forThreshold: 0.6, scores: scores) == 3)
        // A dip stops the walk: the first score below the threshold ends it.
        #expect(GreedySelector.ratioIndex(forThreshold: 0.5, scores: [0.2, 0.6, 0.3, 0.9]) == 3)
    }

    @Test("known answer: threshold 0.7 gives A 0.7 and B 0.4")
    func knownAnswer() throws {
        let table = syntheticTable([("A", 500, ratios), ("B", 500, ratios.map { 0.5 + $0 / 2 })])
        let selection = try GreedySelector.select(table, metric: .agreement, target: 0.6)
        #expect(selection.ratios["A"] == 0.7)
        #expect(selection.ratios["B"] == 0.4)
        #expect(abs(selection.predictedRatio - 0.55) < 1e-9)
        #expect(selection.predictedRatio <= 0.6 + GreedySelector.ratioTolerance)
    }

    @Test("binary search meets the target within 0.001 on a fine-grained table", arguments: [0.3, 0.5, 0.75, 0.9])
    func precision(target: Double) throws {
        // 100 layers of 10 MACs: each candidate step saves 1 MAC = 0.001 of the model.
        var generator = SplitMix64(seed: 7)
        let layers = (0..<100).map { index -> (String, Int, [Double]) in
            let slope = 0.2 + Double(generator.next() % 1000) / 1000
            return ("l\(index)", 10, ratios.map { 1 - slope * (1 - $0) * (1 - $0) })
        }
        let selection = try GreedySelector.select(syntheticTable(layers), metric: .agreement, target: target)
        #expect(abs(selection.predictedRatio - target) <= GreedySelector.ratioTolerance + 1e-12,
                "predicted \(selection.predictedRatio) for \(target)")
    }

    @Test("unreachable target names the reason")
    func unreachable() {
        let table = syntheticTable([("A", 300, ratios)])  // at most 270 of 1000 MACs saved
        #expect {
            try GreedySelector.select(table, metric: .agreement, target: 0.5)
        } throws: { error in
            (error as? WhittleError)?.message.contains("unreachable") == true
        }
        #expect(throws: WhittleError.self) { try GreedySelector.select(table, metric: .agreement, target: 1.5) }
        // Accuracy without labels cannot drive the search.
        var unlabelled = table
        unlabelled.layers[0].entries = unlabelled.layers[0].entries.map { var e = $0; e.scores.accuracy = nil; return e }
        #expect(throws: WhittleError.self) { try GreedySelector.select(unlabelled, metric: .accuracy, target: 0.9) }
    }

    @Test("noise allocation compresses the insensitive layer first")
    func noiseAllocation() throws {
        // A: SQNR 40 dB x score; B: nearly free to compress (score close to 1 everywhere).
        let table = syntheticTable([("A", 500, ratios), ("B", 500, ratios.map { 0.95 + $0 / 20 })])
        let selection = try GreedySelector.allocateNoise(table, target: 0.6)
        #expect(selection.predictedRatio <= 0.6 + GreedySelector.ratioTolerance)
        #expect(selection.ratios["B"] == 0.1 || selection.ratios["B"] == 0.2)
        #expect((selection.ratios["A"] ?? 1) >= 0.8)
    }
}

@Suite("Selection: cache and arguments")
struct SelectionCacheTests {
    func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-cache-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("hit, miss and corrupt file")
    func cache() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let graph = try SelectionFixtures.model("digits-cnn")
        let data = try SelectionFixtures.data(graph, first: 8)
        let evaluator = try ScoreEvaluator(graph: graph, inputs: data.inputs, labels: data.labels, batchSize: 8)
        let cache = ScoreCache(directory: directory)
        let builder = ScoreTableBuilder(technique: .spatialSVD, candidateCount: 3, ignore: ["conv1", "conv2", "conv3"],
                                        backend: SelectionFixtures.scaling, cache: cache)
        var warnings: [String] = []
        let first = try builder.build(evaluator: evaluator, warn: { warnings.append($0) })
        #expect(first.statistics.evaluations == first.layers.count * 2)
        #expect(first.statistics.cacheHits == 0)
        let second = try builder.build(evaluator: evaluator, warn: { warnings.append($0) })
        #expect(second.statistics.evaluations == 0)
        #expect(second.statistics.cacheHits == first.layers.count * 2)
        #expect(second.layers == first.layers)
        #expect(warnings.isEmpty)
        // Another rank multiplicity is a miss.
        var other = builder
        other.options.rankMultiplicity = 8
        #expect(try other.build(evaluator: evaluator).statistics.evaluations == first.layers.count * 2)
        // Corrupt every cache file: a warning, then a full rebuild.
        for file in try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil) {
            try Data("{ not json".utf8).write(to: file)
        }
        let third = try builder.build(evaluator: evaluator, warn: { warnings.append($0) })
        #expect(third.statistics.evaluations == first.layers.count * 2)
        #expect(warnings.count == 1 && warnings[0].contains("ignoring unreadable score cache"))
        #expect(Self.sameTables(third.layers, first.layers))
    }

    /// The same table, SQNR scores up to float rounding: a rebuild recomputes the SVDs on
    /// multi-threaded BLAS, and other tests running alongside change the engine's thread count
    /// (OpenBLAS may then sum in another order; seen as a 1e-8 relative SQNR difference).
    static func sameTables(_ a: [LayerScores], _ b: [LayerScores]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.layer == y.layer, x.technique == y.technique, x.macs == y.macs, x.parameters == y.parameters,
                  x.entries.count == y.entries.count else { return false }
            for (e, f) in zip(x.entries, y.entries) {
                guard e.ratio == f.ratio, e.macs == f.macs, e.parameters == f.parameters, e.kept == f.kept,
                      e.original == f.original, e.scores.accuracy == f.scores.accuracy,
                      e.scores.agreement == f.scores.agreement,
                      abs(e.scores.sqnr - f.scores.sqnr) <= 1e-6 * max(1, abs(e.scores.sqnr)) else { return false }
            }
        }
        return true
    }

    @Test("default cache directory follows XDG_CACHE_HOME")
    func defaultDirectory() {
        #expect(ScoreCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x"]).path == "/x/whittle/scores")
        #expect(ScoreCache.defaultDirectory(environment: ["HOME": "/home/u"]).path == "/home/u/.cache/whittle/scores")
    }

    @Test("argument parsing and validation errors")
    func arguments() throws {
        #expect(try CompressionArguments.scheme("spatial-svd,channel-pruning") == [.spatialSVD, .channelPruning])
        #expect(throws: WhittleError.self) { try CompressionArguments.scheme("svd") }
        #expect(throws: WhittleError.self) { try CompressionArguments.scheme("weight-svd,weight-svd") }
        #expect(try CompressionArguments.ratios("conv1=0.5, conv2=1") == ["conv1": 0.5, "conv2": 1])
        for bad in ["conv1=0", "conv1=1.5", "conv1", "conv1=x", "conv1=0.5,conv1=0.6", ""] {
            #expect(throws: WhittleError.self, "\(bad)") { try CompressionArguments.ratios(bad) }
        }
        let graph = try SelectionFixtures.model("digits-mobilenet")
        func validate(_ goal: CompressionRequest.Goal, scheme: [CompressionTechnique] = [.spatialSVD],
                      ignore: Set<String> = []) -> String? {
            var request = CompressionRequest(scheme: scheme, goal: goal)
            request.ignore = ignore
            do { try CompressionPipeline.validate(request, graph: graph); return nil }
            catch let error as WhittleError { return error.description } catch { return "\(error)" }
        }
        #expect(validate(.manual(["nope": 0.5]))?.contains("no layer of this name") == true)
        #expect(validate(.target(0.5), ignore: ["nope"])?.contains("--ignore nope") == true)
        #expect(validate(.target(0)) != nil)
        #expect(validate(.manual(["x": 0.5]), scheme: [.spatialSVD, .channelPruning])?.contains("single technique") == true)
        let eligibility = try Compressor.eligibility(of: graph, technique: .spatialSVD)
        if let depthwise = eligibility.first(where: { !$0.eligible }) {
            #expect(validate(.manual([depthwise.layer: 0.5]))?.contains("not eligible") == true)
        }
        if let good = eligibility.first(where: { $0.eligible }) {
            #expect(validate(.manual([good.layer: 0.5])) == nil)
        }
    }
}

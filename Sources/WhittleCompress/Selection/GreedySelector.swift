import Foundation
import WhittleEngine

/// What the target ratio counts.
public enum CostMetric: String, Sendable, Codable, CaseIterable {
    case macs
    case parameters
}

/// Per-layer ratios chosen for a target, with the cost ratio the table predicts for them.
public struct GreedySelection: Sendable, Codable, Equatable {
    /// How the ratios were chosen: "threshold" (AIMET's common score threshold) or
    /// "noise-allocation" (marginal SQNR noise per MAC saved).
    public var method: String
    /// Ratio per compressed layer (layers left whole are absent).
    public var ratios: [String: Double]
    /// The common score threshold (threshold method).
    public var threshold: Double?
    /// Compressed cost / original cost predicted from the table's per-layer costs.
    public var predictedRatio: Double
    /// Binary-search steps (threshold) or moves (noise allocation).
    public var iterations: Int

    public init(method: String, ratios: [String: Double], threshold: Double?, predictedRatio: Double, iterations: Int) {
        self.method = method
        self.ratios = ratios
        self.threshold = threshold
        self.predictedRatio = predictedRatio
        self.iterations = iterations
    }
}

/// AIMET's greedy compression-ratio selection on a score table (aimet_common
/// comp_ratio_select), and a noise-allocation variant that accounts for errors adding up.
public enum GreedySelector {
    /// Required precision of the model cost ratio (AIMET: 0.001).
    public static let ratioTolerance = 0.001

    /// Least-squares non-decreasing fit of `values` (pool-adjacent-violators): the closest
    /// monotonic curve, used to smooth noisy per-layer scores before the search. AIMET fits
    /// a constrained degree-7 polynomial with a QP solver; isotonic regression is the exact
    /// least-squares solution among all non-decreasing curves.
    public static func monotonicFit(_ values: [Double]) -> [Double] {
        var blocks: [(sum: Double, count: Int)] = []
        for value in values {
            blocks.append((value, 1))
            while blocks.count >= 2 {
                let last = blocks[blocks.count - 1], previous = blocks[blocks.count - 2]
                guard previous.sum / Double(previous.count) > last.sum / Double(last.count) else { break }
                blocks.removeLast(2)
                blocks.append((previous.sum + last.sum, previous.count + last.count))
            }
        }
        return blocks.flatMap { Array(repeating: $0.sum / Double($0.count), count: $0.count) }
    }

    /// One layer's curve: (ratio, score, cost saved) per candidate, ascending ratio.
    struct Curve {
        var layer: String
        var ratios: [Double]
        var scores: [Double]
        var savings: [Int]
    }

    static func curves(_ table: ScoreTable, metric: CompressionScore, cost: CostMetric, fit: Bool) throws -> [Curve] {
        let base = cost == .macs ? table.modelMACs : table.modelParameters
        return try table.layers.filter { !$0.entries.isEmpty }.map { row in
            var scores: [Double] = []
            for entry in row.entries {
                guard let value = entry.scores.value(metric) else {
                    throw WhittleError(.invalidArgument, "--metric \(metric.rawValue)",
                                       metric == .accuracy ? "needs labels `y` in the data and a [N, classes] output"
                                                           : "needs a [N, classes] model output")
                }
                scores.append(value)
            }
            return Curve(layer: row.layer, ratios: row.entries.map(\.ratio), scores: fit ? monotonicFit(scores) : scores,
                         savings: row.entries.map { base - (cost == .macs ? $0.macs : $0.parameters) })
        }
    }

    /// The ratio AIMET picks for one layer at score threshold `threshold`: nil (no
    /// compression) above the least-compressed candidate's score, the most compressed
    /// candidate below the most compressed one's score, otherwise walking from least to
    /// most compression the last candidate still scoring at least the threshold.
    /// `scores` are in ascending ratio.
    public static func ratioIndex(forThreshold threshold: Double, scores: [Double]) -> Int? {
        guard let last = scores.last, let first = scores.first else { return nil }
        if threshold > last { return nil }
        if threshold < first { return 0 }
        var chosen = scores.count - 1
        for index in stride(from: scores.count - 1, through: 0, by: -1) {
            if scores[index] < threshold { break }
            chosen = index
        }
        return chosen
    }

    static func predicted(_ curves: [Curve], choice: [Int?], base: Int) -> Double {
        var saved = 0
        for (curve, index) in zip(curves, choice) { if let index { saved += curve.savings[index] } }
        return base > 0 ? Double(base - saved) / Double(base) : 1
    }

    /// The cost ratio with every layer at its most compressed candidate (the best any
    /// selection from this table can do).
    public static func smallestReachable(_ table: ScoreTable, cost: CostMetric) -> Double {
        let base = cost == .macs ? table.modelMACs : table.modelParameters
        let saved = table.layers.reduce(0) { total, row in
            total + (row.entries.map { base - (cost == .macs ? $0.macs : $0.parameters) }.max() ?? 0)
        }
        return base > 0 ? Double(base - saved) / Double(base) : 1
    }

    static func checkReachable(_ table: ScoreTable, target: Double, cost: CostMetric) throws {
        guard target > 0, target <= 1 else {
            throw WhittleError(.invalidArgument, "--target-\(cost == .macs ? "macs" : "parameters")",
                               "must be in (0, 1], got \(target)")
        }
        let best = smallestReachable(table, cost: cost)
        if best > target + ratioTolerance {
            let smallest = table.candidates.first.map { String(format: "%.2f", $0) } ?? "?"
            throw WhittleError(.invalidArgument, "target \(cost.rawValue) ratio \(target)",
                               String(format: "unreachable with %@: even with all %d scored layers at ratio %@ the model keeps %.3f of its %@ (%d layers ineligible, the rest ignored or uncompressible)",
                                      table.technique.rawValue, table.layers.count, smallest, best, cost.rawValue,
                                      table.ineligible.count))
        }
    }

    /// AIMET's binary search over a common score threshold: lo/hi start at the table's
    /// smallest and largest scores, each step picks every layer's ratio for the midpoint
    /// (`ratioIndex`), and the search stops when the predicted cost ratio is within 0.001
    /// of `target` (threshold = mid) or the interval is below (hi - lo) 1e-4 (threshold = lo).
    public static func select(_ table: ScoreTable, metric: CompressionScore, target: Double, cost: CostMetric = .macs,
                              monotonicFit fit: Bool = false) throws -> GreedySelection {
        try checkReachable(table, target: target, cost: cost)
        let curves = try curves(table, metric: metric, cost: cost, fit: fit)
        let base = cost == .macs ? table.modelMACs : table.modelParameters
        let all = curves.flatMap(\.scores)
        guard var lo = all.min(), var hi = all.max() else {
            return GreedySelection(method: "threshold", ratios: [:], threshold: nil, predictedRatio: 1, iterations: 0)
        }
        let exit = (hi - lo) * 1e-4
        var threshold = lo
        var iterations = 0
        while iterations < 200 {
            if abs(hi - lo) <= exit { threshold = lo; break }
            iterations += 1
            let mid = (lo + hi) / 2
            let ratio = predicted(curves, choice: curves.map { ratioIndex(forThreshold: mid, scores: $0.scores) }, base: base)
            if abs(ratio - target) <= ratioTolerance { threshold = mid; break }
            if ratio > target { hi = mid } else { lo = mid }
            threshold = lo
        }
        let choice = curves.map { ratioIndex(forThreshold: threshold, scores: $0.scores) }
        var ratios: [String: Double] = [:]
        for (curve, index) in zip(curves, choice) { if let index { ratios[curve.layer] = curve.ratios[index] } }
        return GreedySelection(method: "threshold", ratios: ratios, threshold: threshold,
                               predictedRatio: predicted(curves, choice: choice, base: base), iterations: iterations)
    }

    /// Chooses ratios that minimise the summed output noise for the target cost.
    ///
    /// A layer compressed alone adds output noise of relative power 10^(-SQNR/10). Errors of
    /// different layers compound; to first order their noise powers add, so the model's
    /// noise is predicted as the sum over layers. Starting from no compression, each move
    /// takes the (layer, ratio) with the least added noise per unit of cost saved until the
    /// target is met; then layers are backed off (less compression) wherever the target
    /// still holds, largest noise reduction first. Unlike a common score threshold — which
    /// lets every layer lose as much as the worst accepted one — this spends the error budget
    /// where it buys the most MACs.
    public static func allocateNoise(_ table: ScoreTable, target: Double, cost: CostMetric = .macs,
                                     monotonicFit fit: Bool = false) throws -> GreedySelection {
        try checkReachable(table, target: target, cost: cost)
        let curves = try curves(table, metric: .sqnr, cost: cost, fit: fit)
        let base = cost == .macs ? table.modelMACs : table.modelParameters
        let noise = curves.map { $0.scores.map { pow(10, -$0 / 10) } }
        var choice: [Int?] = Array(repeating: nil, count: curves.count)
        func noiseOf(_ layer: Int, _ index: Int?) -> Double { index.map { noise[layer][$0] } ?? 0 }
        func savingOf(_ layer: Int, _ index: Int?) -> Int { index.map { curves[layer].savings[$0] } ?? 0 }
        var moves = 0
        let budget = Double(base) * target
        var current = Double(base)
        while current > budget + Double(base) * ratioTolerance * 0.5 {
            var best: (layer: Int, index: Int, rate: Double)?
            for layer in curves.indices {
                for index in curves[layer].ratios.indices {
                    let saved = savingOf(layer, index) - savingOf(layer, choice[layer])
                    guard saved > 0 else { continue }
                    let rate = (noiseOf(layer, index) - noiseOf(layer, choice[layer])) / Double(saved)
                    if best == nil || rate < (best?.rate ?? .infinity) { best = (layer, index, rate) }
                }
            }
            guard let move = best else { break }
            current -= Double(savingOf(move.layer, move.index) - savingOf(move.layer, choice[move.layer]))
            choice[move.layer] = move.index
            moves += 1
        }
        // Back off where the budget allows.
        var improved = true
        while improved {
            improved = false
            var best: (layer: Int, index: Int?, gain: Double)?
            for layer in curves.indices {
                guard let currentIndex = choice[layer] else { continue }
                let options: [Int?] = [nil] + Array(curves[layer].ratios.indices.filter { $0 > currentIndex })
                for option in options {
                    let lost = savingOf(layer, currentIndex) - savingOf(layer, option)
                    guard current + Double(lost) <= budget + Double(base) * ratioTolerance else { continue }
                    let gain = noiseOf(layer, currentIndex) - noiseOf(layer, option)
                    if gain > 0, gain > (best?.gain ?? 0) { best = (layer, option, gain) }
                }
            }
            if let move = best, let currentIndex = choice[move.layer] {
                current += Double(savingOf(move.layer, currentIndex) - savingOf(move.layer, move.index))
                choice[move.layer] = move.index
                moves += 1
                improved = true
            }
        }
        var ratios: [String: Double] = [:]
        for (curve, index) in zip(curves, choice) { if let index { ratios[curve.layer] = curve.ratios[index] } }
        return GreedySelection(method: "noise-allocation", ratios: ratios, threshold: nil,
                               predictedRatio: predicted(curves, choice: choice, base: base), iterations: moves)
    }
}

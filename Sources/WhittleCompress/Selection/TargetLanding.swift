import Foundation
import WhittleEngine

/// Moves a selection's per-layer ratios off the candidate grid so that the measured cost
/// ratio lands within a tolerance of the target.
///
/// A selection made from candidates i/N predicts the cost only to the granularity of one
/// candidate step of one layer, and layers that share nodes (pruning neighbours) do not add
/// up exactly, so the compressed model can miss the target by several percent. Landing
/// measures the real cost of the selection and, one layer at a time, searches that layer's
/// ratio continuously (by bisection on the ratio, which the layer turns into a whole number
/// of kept channels or rank) until the measured ratio is within the tolerance:
/// - too expensive: the least sensitive layers first (highest score at the next candidate
///   below their current ratio), down to the smallest candidate ratio;
/// - too cheap (over-compressed): the most sensitive compressed layers first (lowest score
///   at their current ratio), up to 1 (left whole).
/// A layer whose steps are too coarse to land is left at the closest ratio on the side of the
/// target it started from and the next layer continues from there (up to three passes).
public enum TargetLanding {
    /// The landed ratios and the measured cost ratio.
    public struct Result: Sendable, Equatable {
        public var ratios: [String: Double]
        public var measured: Double
        /// Cost measurements made.
        public var measurements: Int
    }

    /// Lands `ratios` on `target`.
    ///
    /// `measure(ratios, layer)` returns the measured cost ratio of the graph compressed with
    /// `ratios` (absent layers whole); `layer`, when set, names the only layer that changed
    /// since the previous call with the same other ratios (the caller may then reuse work).
    /// `layers` are the adjustable layers with their scores per candidate (ascending ratio).
    public static func land(ratios start: [String: Double], target: Double, tolerance: Double,
                            layers: [(layer: String, candidates: [Double], scores: [Double])],
                            smallestRatio: Double,
                            measure: ([String: Double], String?) throws -> Double) throws -> Result {
        var ratios = start
        var measured = try measure(ratios, nil)
        var measurements = 1
        func landed(_ value: Double) -> Bool { abs(value - target) <= tolerance }
        if landed(measured) { return Result(ratios: ratios, measured: measured, measurements: measurements) }

        func score(_ row: (layer: String, candidates: [Double], scores: [Double]), below ratio: Double) -> Double {
            let index = row.candidates.lastIndex { $0 < ratio - 1e-9 } ?? 0
            return row.scores.isEmpty ? 0 : row.scores[min(index, row.scores.count - 1)]
        }
        func score(_ row: (layer: String, candidates: [Double], scores: [Double]), at ratio: Double) -> Double {
            guard !row.scores.isEmpty else { return 0 }
            var best = 0
            for (index, candidate) in row.candidates.enumerated()
            where abs(candidate - ratio) < abs(row.candidates[best] - ratio) { best = index }
            return row.scores[min(best, row.scores.count - 1)]
        }
        // A coarse layer can leave a remainder on the other side for the finer ones: a few passes.
        for _ in 0..<3 where !landed(measured) {
            let tooExpensive = measured > target
            let order = layers.filter { row in
                let current = ratios[row.layer] ?? 1
                return tooExpensive ? current > smallestRatio + 1e-9 : ratios[row.layer] != nil
            }.sorted { a, b in
                tooExpensive ? score(a, below: ratios[a.layer] ?? 1) > score(b, below: ratios[b.layer] ?? 1)
                             : score(a, at: ratios[a.layer] ?? 1) < score(b, at: ratios[b.layer] ?? 1)
            }
            for row in order {
                let current = ratios[row.layer] ?? 1
                func trial(_ ratio: Double) throws -> Double {
                    var candidate = ratios
                    candidate[row.layer] = ratio >= 1 - 1e-12 ? nil : ratio
                    measurements += 1
                    return try measure(candidate, row.layer)
                }
                func accept(_ ratio: Double, _ value: Double) {
                    ratios[row.layer] = ratio >= 1 - 1e-12 ? nil : ratio
                    measured = value
                }
                // Far end of this layer's range first: if even that does not reach the target,
                // take it and move on.
                let far = measured > target ? smallestRatio : 1.0
                let farValue = try trial(far)
                if landed(farValue) { accept(far, farValue); break }
                if (measured > target) == (farValue > target) {
                    accept(far, farValue)
                    continue
                }
                // Bisection between the current ratio and the far end; `near` stays on the side
                // of the target the search started from.
                var near = current, nearValue = measured
                var other = far
                for _ in 0..<40 where abs(other - near) > 1e-7 {
                    let mid = (near + other) / 2
                    let value = try trial(mid)
                    if landed(value) { accept(mid, value); break }
                    if (value > target) == (nearValue > target) { near = mid; nearValue = value } else { other = mid }
                }
                if landed(measured) { break }
                accept(near, nearValue)
            }
        }
        return Result(ratios: ratios, measured: measured, measurements: measurements)
    }
}

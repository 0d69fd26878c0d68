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
/// 1. too cheap (over-compressed): the most sensitive compressed layers first (lowest score
///    at their current ratio) move up toward 1 (left whole) until the cost is at or just
///    above the target;
/// 2. too expensive: the least sensitive layers first (highest score at the next candidate
///    below their current ratio) move down toward the smallest candidate ratio; a layer whose
///    steps are too coarse to land stops just above the target and the next, finer, layer
///    continues from there.
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
    /// With `meetFromBelow`, a selection that cannot land within the tolerance returns the
    /// closest measured one below the target instead of one above it (earlier stages of a
    /// multi-stage scheme pass false: the last stage makes up the difference).
    public static func land(ratios start: [String: Double], target: Double, tolerance: Double,
                            layers: [(layer: String, candidates: [Double], scores: [Double])],
                            smallestRatio: Double, meetFromBelow: Bool = true,
                            measure: ([String: Double], String?) throws -> Double) throws -> Result {
        var ratios = start
        var measured = try measure(ratios, nil)
        var measurements = 1
        func landed(_ value: Double) -> Bool { abs(value - target) <= tolerance }
        // Fallback: the trial closest to the target from below. When
        // every layer's steps are too coarse to land within the tolerance (tiny models, where
        // one rank or channel is a percent of the cost), the result meets the target from
        // below instead of staying above it.
        var closestBelow: (ratios: [String: Double], value: Double)?
        func remember(_ candidate: [String: Double], _ value: Double) {
            if value <= target + tolerance, value > (closestBelow?.value ?? -Double.infinity) { closestBelow = (candidate, value) }
        }
        remember(ratios, measured)
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
        func search(_ row: (layer: String, candidates: [Double], scores: [Double]), toward far: Double) throws {
            func trial(_ ratio: Double) throws -> Double {
                var candidate = ratios
                candidate[row.layer] = ratio >= 1 - 1e-12 ? nil : ratio
                measurements += 1
                let value = try measure(candidate, row.layer)
                remember(candidate, value)
                return value
            }
            func accept(_ ratio: Double, _ value: Double) {
                ratios[row.layer] = ratio >= 1 - 1e-12 ? nil : ratio
                measured = value
            }
            let current = ratios[row.layer] ?? 1
            guard abs(far - current) > 1e-9 else { return }
            // The far end first: if even that stays on this side of the target, take it.
            let farValue = try trial(far)
            if landed(farValue) || (measured > target) == (farValue > target) { accept(far, farValue); return }
            // Bisection; `above` keeps the bracket end whose cost is above the target.
            var near = current, nearValue = measured, other = far, otherValue = farValue
            for _ in 0..<40 where abs(other - near) > 1e-7 {
                let mid = (near + other) / 2
                let value = try trial(mid)
                if landed(value) { accept(mid, value); return }
                if (value > target) == (nearValue > target) { near = mid; nearValue = value } else { other = mid; otherValue = value }
            }
            if nearValue > target { accept(near, nearValue) } else { accept(other, otherValue) }
        }
        // Phase 1, too cheap: give MACs back (most sensitive compressed layers first) until the
        // cost is at or just above the target.
        if measured < target - tolerance {
            let order = layers.filter { ratios[$0.layer] != nil }
                .sorted { score($0, at: ratios[$0.layer] ?? 1) < score($1, at: ratios[$1.layer] ?? 1) }
            for row in order where measured < target - tolerance { try search(row, toward: 1) }
        }
        // Phase 2, too expensive: compress further (least sensitive first); a layer whose steps
        // are too coarse stops just above the target and finer layers continue from there.
        for _ in 0..<2 where measured > target + tolerance {
            let order = layers.filter { (ratios[$0.layer] ?? 1) > smallestRatio + 1e-9 }
                .sorted { score($0, below: ratios[$0.layer] ?? 1) > score($1, below: ratios[$1.layer] ?? 1) }
            for row in order where measured > target + tolerance { try search(row, toward: smallestRatio) }
        }
        if meetFromBelow, measured > target + tolerance, let below = closestBelow {
            return Result(ratios: below.ratios, measured: below.value, measurements: measurements)
        }
        return Result(ratios: ratios, measured: measured, measurements: measurements)
    }
}

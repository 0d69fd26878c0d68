import Foundation
import WhittleEngine

/// Estimates the time left in a phase from its progress history.
///
/// The rate is an exponentially time-weighted average throughput: both the units completed and
/// the time spent are summed with weights that decay as `exp(-age / tau)`, and the rate is
/// their quotient. Unlike averaging instantaneous rates, this does not depend on how often a
/// job reports, and a burst of closely spaced reports counts for the little time it took.
/// A new phase or total (or progress going backwards) restarts the estimate.
public struct ETAEstimator: Sendable, Equatable {
    /// Smoothing time constant in seconds.
    public var timeConstant: Double
    public private(set) var phase: String?
    public private(set) var total = 0
    public private(set) var completed = 0
    private var lastTime: Double?
    private var weightedUnits = 0.0
    private var weightedSeconds = 0.0

    public init(timeConstant: Double = 5) {
        self.timeConstant = timeConstant
    }

    /// Smoothed units per second (nil until the phase has made progress over some time).
    public var rate: Double? {
        guard weightedSeconds > 0, weightedUnits > 0 else { return nil }
        return weightedUnits / weightedSeconds
    }

    /// Takes one report made at `time` (seconds on any monotonic clock).
    public mutating func observe(_ event: ProgressEvent, at time: Double) {
        guard let lastTime, event.phase == phase, event.total == total, event.completed >= completed else {
            phase = event.phase
            total = event.total
            completed = event.completed
            weightedUnits = 0
            weightedSeconds = 0
            self.lastTime = time
            return
        }
        let dt = max(0, time - lastTime)
        let decay = exp(-dt / max(timeConstant, 1e-9))
        weightedUnits = weightedUnits * decay + Double(event.completed - completed)
        weightedSeconds = weightedSeconds * decay + dt
        completed = event.completed
        self.lastTime = time
    }

    /// Seconds left in the current phase, or nil when unknown (no total, no rate yet, or
    /// nothing moving).
    public var secondsRemaining: Double? {
        guard total > 0, let rate, rate.isFinite else { return nil }
        return max(0, Double(total - completed)) / rate
    }

    /// Short text for a duration in seconds: `45s`, `3m 04s`, `2h 05m`.
    public static func format(seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded(.up))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m \(String(format: "%02d", total % 60))s" }
        return "\(total / 3600)h \(String(format: "%02d", total % 3600 / 60))m"
    }
}

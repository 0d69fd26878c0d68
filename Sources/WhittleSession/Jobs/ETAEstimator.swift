import Foundation

/// Estimates the time left in a phase from its progress history.
///
/// The rate (units per second) is smoothed with an exponential moving average whose weight
/// depends on the time between reports, `alpha = 1 - exp(-dt / tau)`, so bursts of closely
/// spaced reports do not swing the estimate and the result does not depend on how often a job
/// reports. A new phase or total restarts the estimate.
public struct ETAEstimator: Sendable, Equatable {
    /// Smoothing time constant in seconds.
    public var timeConstant: Double
    public private(set) var phase: String?
    public private(set) var total = 0
    public private(set) var completed = 0
    /// Smoothed units per second (nil until two reports of one phase have been seen).
    public private(set) var rate: Double?
    private var lastTime: Double?
    private var phaseStart: Double?
    private var startCompleted = 0

    public init(timeConstant: Double = 3) {
        self.timeConstant = timeConstant
    }

    /// Takes one report made at `time` (seconds on any monotonic clock).
    public mutating func observe(_ event: ProgressEvent, at time: Double) {
        if event.phase != phase || event.total != total || event.completed < completed || lastTime == nil {
            phase = event.phase
            total = event.total
            completed = event.completed
            startCompleted = event.completed
            rate = nil
            lastTime = time
            phaseStart = time
            return
        }
        guard let lastTime, let phaseStart else { return }
        let dt = time - lastTime
        let units = Double(event.completed - completed)
        guard dt > 0 else {
            completed = event.completed
            return
        }
        let instant = units / dt
        if let rate {
            let alpha = 1 - exp(-dt / max(timeConstant, 1e-9))
            self.rate = rate + alpha * (instant - rate)
        } else {
            // First interval: the average since the phase began is the best guess.
            let elapsed = time - phaseStart
            rate = elapsed > 0 ? Double(event.completed - startCompleted) / elapsed : instant
        }
        completed = event.completed
        self.lastTime = time
    }

    /// Seconds left in the current phase, or nil when unknown (no total, no rate yet, or
    /// nothing moving).
    public var secondsRemaining: Double? {
        guard total > 0, let rate, rate > 0, rate.isFinite else { return nil }
        return max(0, Double(total - completed)) / rate
    }
}

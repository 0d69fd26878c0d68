import Foundation

/// Input-to-frame latencies of a workbench run: for every frame drawn because of a key or
/// mouse event, the milliseconds from the moment the event was read (the input poll woke
/// up) to the moment the frame was flushed to the terminal, split by whether a job ran.
public struct FrameStatistics: Sendable, Equatable {
    /// Latencies of input frames drawn while no job ran, in milliseconds.
    public var idle: [Double] = []
    /// Latencies of input frames drawn while at least one job ran, in milliseconds.
    public var busy: [Double] = []
    /// Process start to the first frame, in milliseconds (nil when unknown).
    public var startupMilliseconds: Double?
    /// Frames drawn in all (input, job progress, ticks).
    public var frames = 0

    public init() {}

    public mutating func record(inputLatency milliseconds: Double, jobsRunning: Bool) {
        if jobsRunning { busy.append(milliseconds) } else { idle.append(milliseconds) }
    }

    /// Median, 95th percentile (nearest rank) and maximum of `samples`; nil when empty.
    public static func summary(_ samples: [Double]) -> (median: Double, p95: Double, max: Double)? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        func rank(_ p: Double) -> Double { sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))] }
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return (median, rank(0.95), sorted[sorted.count - 1])
    }

    /// A few lines for `--frame-stats`.
    public var report: String {
        var lines: [String] = []
        if let startupMilliseconds { lines.append(String(format: "startup to first frame: %.1f ms", startupMilliseconds)) }
        lines.append("frames drawn: \(frames)")
        for (label, samples) in [("input to frame, idle", idle), ("input to frame, job running", busy)] {
            if let s = FrameStatistics.summary(samples) {
                lines.append(String(format: "%@: %d frames, median %.2f ms, p95 %.2f ms, max %.2f ms", label, samples.count, s.median, s.p95, s.max))
            } else {
                lines.append("\(label): no frames")
            }
        }
        return lines.joined(separator: "\n")
    }
}

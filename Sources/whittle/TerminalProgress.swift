import Foundation
import Synchronization
import WhittleEngine

/// A one-line progress bar on standard error, drawn only when standard error is a terminal
/// (scripts and CI logs stay clean). Redraws at most ten times a second.
final class TerminalProgress: Sendable {
    private let enabled: Bool
    private let state = Mutex<(lastDraw: ContinuousClock.Instant?, drawn: Bool, started: ContinuousClock.Instant)>(
        (nil, false, ContinuousClock.now))

    init(enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.enabled = enabled
    }

    /// A job context that reports here.
    func context(cancellation: CancellationFlag = CancellationFlag()) -> JobContext {
        JobContext(cancellation: cancellation) { [self] event in self.show(event) }
    }

    func show(_ event: ProgressEvent) {
        guard enabled else { return }
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            if let last = state.lastDraw, now - last < .milliseconds(100), event.completed < event.total { return nil }
            state.lastDraw = now
            state.drawn = true
            let width = 30
            let filled = Int(event.fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            var text = "\r\(event.phase) [\(bar)] \(event.completed)/\(event.total)"
            if let detail = event.detail { text += " \(detail)" }
            return text + "\u{1B}[K"
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// Clears the bar so the next output starts on a clean line.
    func finish() {
        guard enabled else { return }
        let drawn = state.withLock { $0.drawn }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

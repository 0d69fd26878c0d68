import Foundation
import Synchronization
import WhittleEngine

#if canImport(Glibc)
import Glibc
#endif

/// The command-line progress bar (every subcommand's): one line on standard error, drawn only
/// when standard error is a terminal (pipes and logs stay clean). Redraws at most ten times a
/// second; the ETA extrapolates the current phase's rate; the line is cut to the terminal width.
final class ProgressBar: Sendable {
    private struct State {
        var phase = ""
        var phaseStart = ContinuousClock.now
        var lastDraw = ContinuousClock.now - .seconds(1)
        var drawn = false
    }

    private let enabled: Bool
    private let state = Mutex(State())

    init(enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.enabled = enabled
    }

    /// A job context whose progress reports draw this bar.
    func context(cancellation: CancellationFlag = CancellationFlag()) -> JobContext {
        JobContext(cancellation: cancellation) { [self] event in self.update(event) }
    }

    func update(_ event: ProgressEvent) {
        guard enabled else { return }
        let line: String? = state.withLock { state in
            let now = ContinuousClock.now
            if event.phase != state.phase {
                state.phase = event.phase
                state.phaseStart = now
            } else if now - state.lastDraw < .milliseconds(100) && event.completed < event.total {
                return nil
            }
            state.lastDraw = now
            state.drawn = true
            let width = 24
            let filled = Int(event.fraction * Double(width))
            var text = "\(event.phase) [" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
                + "] \(event.completed)/\(event.total)"
            let elapsed = now - state.phaseStart
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            if event.completed > 0, event.completed < event.total, seconds > 1 {
                let remaining = seconds / Double(event.completed) * Double(event.total - event.completed)
                text += String(format: " ETA %d:%02d", Int(remaining) / 60, Int(remaining) % 60)
            }
            if let detail = event.detail { text += "  " + detail }
            return String(text.prefix(terminalWidth() - 1))
        }
        if let line { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) }
    }

    /// Clears the bar's line (call before printing results).
    func finish() {
        guard enabled else { return }
        let drawn = state.withLock { state in
            defer { state.drawn = false }
            return state.drawn
        }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 { return Int(size.ws_col) }
        return 100
    }
}

@preconcurrency import Glibc
import CNCursesW
import Foundation
import Synchronization
import WhittleTUI

/// Actions posted from job threads, drained by the UI loop after a self-pipe wake-up.
final class ActionInbox: Sendable {
    private let queue = Mutex<[WorkbenchAction]>([])
    let wakeFD: Int32

    init(wakeFD: Int32) { self.wakeFD = wakeFD }

    func post(_ action: WorkbenchAction) {
        queue.withLock { $0.append(action) }
        var byte = Signals.wakeJob
        _ = write(wakeFD, &byte, 1)
    }

    func drain() -> [WorkbenchAction] { queue.withLock { queue in defer { queue.removeAll() }; return queue } }
}

/// Runs the workbench in the terminal: the only place that touches ncurses.
///
/// One thread (the caller's) owns ncurses. It blocks in `poll(2)` on standard input and a
/// self-pipe, with no timeout while nothing runs (zero CPU when idle) and a spinner tick
/// while jobs run. Job threads, SIGWINCH, SIGINT, SIGTERM and SIGTSTP write a byte to the pipe.
/// The terminal is restored on quit, on SIGINT/SIGTERM/SIGHUP, while suspended (Ctrl-Z), and
/// on fatal signals (and SIGQUIT).
public enum WorkbenchTerminal {
    /// Interval of spinner ticks while a job runs.
    public static let tickMilliseconds: Int32 = 120

    /// Runs until the user quits; returns the final state (for saving the session).
    public static func run(_ initial: WorkbenchState, services: WorkbenchServices, themes: ThemeCatalog,
                           options: TerminalOptions, keys: KeyTable = .standard) -> WorkbenchState {
        runMeasured(initial, services: services, themes: themes, options: options, keys: keys).state
    }

    /// Runs until the user quits; returns the final state and the input-to-frame latencies.
    /// A changed session with a profile path is autosaved every `options.autosaveSeconds`.
    public static func runMeasured(_ initial: WorkbenchState, services: WorkbenchServices, themes: ThemeCatalog,
                                   options: TerminalOptions, keys: KeyTable = .standard) -> (state: WorkbenchState, statistics: FrameStatistics) {
        var statistics = FrameStatistics()
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return (initial, statistics) }
        let (readFD, writeFD) = (fds[0], fds[1])
        for fd in [readFD, writeFD] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        defer {
            close(readFD)
            close(writeFD)
        }
        Signals.install(pipeWrite: writeFD)
        defer { Signals.uninstall() }
        let inbox = ActionInbox(wakeFD: writeFD)
        let runtime = WorkbenchRuntime(services: services) { inbox.post($0) }
        let screen = CursesScreen(options: options)
        defer { screen.close() }
        let timing = options.timingLog.flatMap { FileHandle(forWritingAtPath: $0) ?? (FileManager.default.createFile(atPath: $0, contents: nil) ? FileHandle(forWritingAtPath: $0) : nil) }
        timing?.seekToEndOfFile()

        var state = initial
        state.size = screen.size
        state.options.unicode = screen.unicode
        state.options.mouse = !options.noMouse
        state.capabilities = services.capabilities
        if screen.depth == .mono, !state.themeNames.contains("mono") { state.themeNames.append("mono") }
        var quit = false
        func apply(_ action: WorkbenchAction) {
            state.now = Date()
            let (next, effects) = Workbench.update(state, action, keys: keys)
            state = next
            for effect in effects {
                switch effect {
                case .quit: quit = true
                case .redraw: screen.invalidate()
                default:
                    if let feedback = runtime.perform(effect) { apply(feedback) }
                }
            }
        }
        // Jobs that start by themselves (activation statistics).
        let (started, effects) = Workbench.start(state)
        state = started
        for effect in effects { runtime.perform(effect) }

        let clock = ContinuousClock()
        var frame = 0
        var dirty = true
        let autosaveInterval = Duration.milliseconds(Int64(max(0.05, options.autosaveSeconds) * 1000))
        var nextAutosave = clock.now + autosaveInterval
        /// When the input that the next frame answers was read (nil: the frame answers no input).
        var inputRead: ContinuousClock.Instant?
        let uiThread = ThreadPriority.currentThread
        var lastRenice = clock.now - .seconds(10)
        while !quit {
            // Job threads, and the BLAS and dispatch workers they wake, yield to this thread.
            if options.lowerBackgroundPriority, !state.runningJobs.isEmpty, clock.now - lastRenice > .milliseconds(500) {
                ThreadPriority.lowerOthers(keep: uiThread)
                lastRenice = clock.now
            }
            if dirty {
                var theme = screen.depth == .mono ? Theme.mono : themes.theme(named: state.themeName) ?? .dark
                // Eight colours cannot keep a selection colour apart from the background (the
                // dark theme's both become black): the selection is shown in reverse video.
                if screen.depth == .ansi8 { theme.monochrome = true }
                let renderStart = clock.now
                let buffer = Workbench.render(state, size: state.size, theme: theme, keys: keys)
                let drawStart = clock.now
                screen.draw(buffer)
                let end = clock.now
                if frame == 0, let processStart = options.processStart {
                    statistics.startupMilliseconds = milliseconds(end - processStart)
                    timing?.write(Data(String(format: "startup_ms %.2f\n", milliseconds(end - processStart)).utf8))
                }
                let latency = inputRead.map { milliseconds(end - $0) }
                if let latency { statistics.record(inputLatency: latency, jobsRunning: !state.runningJobs.isEmpty) }
                if let timing {
                    timing.write(Data((String(format: "frame %d render_ms %.3f write_ms %.3f jobs %d", frame,
                                              milliseconds(drawStart - renderStart), milliseconds(end - drawStart), state.runningJobs.count)
                                       + (latency.map { String(format: " input_ms %.3f", $0) } ?? "") + "\n").utf8))
                }
                frame += 1
                statistics.frames = frame
                dirty = false
            }
            inputRead = nil
            var polls = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0), pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)]
            var timeout: Int32 = state.runningJobs.isEmpty ? -1 : tickMilliseconds
            let autosaveArmed = state.profilePath != nil && state.isDirty
            if autosaveArmed {
                let wait = max(0, Int32(min(Double(Int32.max), milliseconds(nextAutosave - clock.now).rounded(.up))))
                timeout = timeout < 0 ? wait : min(timeout, wait)
            } else {
                nextAutosave = clock.now + autosaveInterval
            }
            let ready = poll(&polls, 2, timeout)
            let woke = clock.now
            let before = state
            if ready == 0, !state.runningJobs.isEmpty {
                apply(.tick)
            }
            if autosaveArmed, woke >= nextAutosave {
                apply(.autosaveTimer)
                nextAutosave = woke + autosaveInterval
            }
            if polls[1].revents & Int16(POLLIN) != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                var wakes = Set<UInt8>()
                while true {
                    let count = read(readFD, &bytes, bytes.count)
                    if count <= 0 { break }
                    wakes.formUnion(bytes.prefix(count))
                }
                if wakes.contains(Signals.wakeResize) {
                    screen.refreshSize()
                    apply(.resize(screen.size))
                }
                if wakes.contains(Signals.wakeInterrupt) || wakes.contains(Signals.wakeTerminate) {
                    quit = true
                }
                if wakes.contains(Signals.wakeSuspend), !quit {
                    screen.suspend()
                    Signals.stopProcess()
                    screen.resume()
                    apply(.resize(screen.size))
                    dirty = true
                }
            }
            for action in inbox.drain() { apply(action) }
            if polls[0].revents & Int16(POLLHUP | POLLERR) != 0 && polls[0].revents & Int16(POLLIN) == 0 { quit = true }
            let input = screen.readInput()
            if !input.isEmpty { inputRead = polls[0].revents & Int16(POLLIN) != 0 ? woke : clock.now }
            for event in input {
                switch event {
                case .key(let key): apply(.key(key))
                case .mouse(let mouse): apply(.mouse(mouse))
                case .resize:
                    screen.refreshSize()
                    apply(.resize(screen.size))
                }
            }
            if state != before { dirty = true }
        }
        if let profile = state.profilePath, state.isDirty {
            // Quitting: the caller saves the profile itself; the autosave covers a failed save.
            _ = runtime.perform(.autosave(profile: profile, session: state.sessionForSaving))
        }
        // The terminal goes back first: jobs may take up to two seconds to stop.
        screen.close()
        runtime.shutdown()
        return (state, statistics)
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) * 1e-15
    }
}

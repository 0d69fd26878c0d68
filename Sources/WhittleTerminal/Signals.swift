@preconcurrency import Glibc

/// Signal plumbing for the terminal loop. Handlers only do async-signal-safe work: write
/// one byte to the self-pipe (resize, interrupt, terminate), or, for fatal signals, write
/// the terminal reset sequence, restore the saved termios and re-raise.
enum Signals {
    /// Write end of the self-pipe (-1 until installed).
    nonisolated(unsafe) static var pipeWrite: Int32 = -1
    /// Terminal settings before the workbench started, restored on a crash.
    nonisolated(unsafe) static var savedTermios = termios()
    nonisolated(unsafe) static var haveTermios = false

    static let wakeJob: UInt8 = 0x6A       // "j"
    static let wakeResize: UInt8 = 0x77    // "w"
    static let wakeInterrupt: UInt8 = 0x69 // "i"
    static let wakeTerminate: UInt8 = 0x74 // "t"
    static let wakeSuspend: UInt8 = 0x73   // "s"

    /// Leaves the alternate screen, shows the cursor, resets colours, mouse reporting and the
    /// keypad (application cursor keys) mode.
    static let resetSequence: [UInt8] = Array("\u{1B}[?1000l\u{1B}[?1002l\u{1B}[?1003l\u{1B}[?1006l\u{1B}[0m\u{1B}[?25h\u{1B}[?1l\u{1B}>\u{1B}[?1049l\r\n".utf8)

    /// Signals that end the process after the terminal is restored (SIGQUIT is Ctrl-\,
    /// which cbreak mode leaves on).
    static let fatal: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGQUIT]

    static func install(pipeWrite fd: Int32) {
        pipeWrite = fd
        if tcgetattr(0, &savedTermios) == 0 { haveTermios = true }
        signal(SIGWINCH) { _ in Signals.wake(Signals.wakeResize) }
        signal(SIGINT) { _ in Signals.wake(Signals.wakeInterrupt) }
        signal(SIGTERM) { _ in Signals.wake(Signals.wakeTerminate) }
        signal(SIGHUP) { _ in Signals.wake(Signals.wakeTerminate) }
        installSuspend()
        for number in fatal {
            signal(number) { number in
                Signals.resetSequence.withUnsafeBufferPointer { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
                if Signals.haveTermios { _ = tcsetattr(0, TCSANOW, &Signals.savedTermios) }
                signal(number, SIG_DFL)
                raise(number)
            }
        }
    }

    /// Ctrl-Z: the loop leaves curses mode, stops the process, and takes the screen back on
    /// SIGCONT (installed before `initscr`, so ncurses does not install its own handler).
    static func installSuspend() {
        signal(SIGTSTP) { _ in Signals.wake(Signals.wakeSuspend) }
    }

    /// Stops the process with the default SIGTSTP action; returns when it is continued.
    static func stopProcess() {
        signal(SIGTSTP, SIG_DFL)
        raise(SIGTSTP)
        installSuspend()
    }

    static func uninstall() {
        for number in [SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGTSTP] + fatal { signal(number, SIG_DFL) }
        pipeWrite = -1
    }

    static func wake(_ byte: UInt8) {
        var value = byte
        if pipeWrite >= 0 { _ = write(pipeWrite, &value, 1) }
    }
}

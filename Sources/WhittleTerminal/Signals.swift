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

    /// Leaves the alternate screen, shows the cursor, resets colours and mouse reporting.
    static let resetSequence: [UInt8] = Array("\u{1B}[?1000l\u{1B}[?1002l\u{1B}[?1003l\u{1B}[?1006l\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l\r\n".utf8)

    static let fatal: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP]

    static func install(pipeWrite fd: Int32) {
        pipeWrite = fd
        if tcgetattr(0, &savedTermios) == 0 { haveTermios = true }
        signal(SIGWINCH) { _ in Signals.wake(Signals.wakeResize) }
        signal(SIGINT) { _ in Signals.wake(Signals.wakeInterrupt) }
        signal(SIGTERM) { _ in Signals.wake(Signals.wakeTerminate) }
        signal(SIGHUP) { _ in Signals.wake(Signals.wakeTerminate) }
        for number in fatal {
            signal(number) { number in
                Signals.resetSequence.withUnsafeBufferPointer { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
                if Signals.haveTermios { _ = tcsetattr(0, TCSANOW, &Signals.savedTermios) }
                signal(number, SIG_DFL)
                raise(number)
            }
        }
    }

    static func uninstall() {
        for number in [SIGWINCH, SIGINT, SIGTERM, SIGHUP] + fatal { signal(number, SIG_DFL) }
        pipeWrite = -1
    }

    static func wake(_ byte: UInt8) {
        var value = byte
        if pipeWrite >= 0 { _ = write(pipeWrite, &value, 1) }
    }
}

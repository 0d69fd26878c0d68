@preconcurrency import Glibc
import CNCursesW
import Foundation
import WhittleTUI

/// Options of the terminal backend (command-line flags).
public struct TerminalOptions: Sendable {
    public var noColor: Bool
    public var noUnicode: Bool
    public var noMouse: Bool
    /// Append per-frame timings (`frame N render_ms write_ms`) and the time to the first frame to this file.
    public var timingLog: String?
    /// When the process started (for the startup-to-first-frame figure).
    public var processStart: ContinuousClock.Instant?
    /// Seconds between autosaves of a changed session (when it has a profile path).
    public var autosaveSeconds: Double
    /// Collect input-to-frame latencies and startup time.
    public var frameStatistics: Bool
    /// While jobs run, move every other thread of the process to a lower scheduling priority
    /// so keys are answered at once on saturated cores (see `ThreadPriority`).
    public var lowerBackgroundPriority: Bool

    public init(noColor: Bool = false, noUnicode: Bool = false, noMouse: Bool = false, timingLog: String? = nil,
                processStart: ContinuousClock.Instant? = nil, autosaveSeconds: Double = Workbench.autosaveInterval,
                frameStatistics: Bool = false, lowerBackgroundPriority: Bool = true) {
        self.noColor = noColor
        self.noUnicode = noUnicode
        self.noMouse = noMouse
        self.timingLog = timingLog
        self.processStart = processStart
        self.autosaveSeconds = autosaveSeconds
        self.frameStatistics = frameStatistics
        self.lowerBackgroundPriority = lowerBackgroundPriority
    }
}

/// The ncurses screen: owns ncurses on the calling thread, writes `ScreenBuffer` diffs with
/// one `doupdate` per frame, and decodes keys, mouse and resizes.
final class CursesScreen {
    let depth: ColorDepth
    let unicode: Bool
    private var previous: ScreenBuffer?
    private var pairs: [Int: Int32] = [:]
    private var nextPair: Int32 = 1
    private let maxPairs: Int32
    private var open = true
    private let mouse: Bool
    /// xterm button-event tracking: motion with a button held (slider drags). ncurses enables
    /// only what the terminfo `XM` string asks for, which for xterm entries is press/release
    /// (1000). The terminal keeps one tracking mode, the last one set, so 1002 is written
    /// straight to the tty after ncurses has flushed its own 1000 (after a `doupdate`).
    static let buttonMotionOn = "\u{1B}[?1002h"
    static let buttonMotionOff = "\u{1B}[?1002l"
    /// Button-event tracking is to be switched on after the next frame.
    private var motionPending = false

    private static func writeToTerminal(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }
    static let mouseMask = whittle_button1_pressed() | whittle_button1_released() | whittle_button4_pressed()
        | whittle_button5_pressed() | whittle_report_mouse_position()

    init(options: TerminalOptions) {
        setlocale(LC_ALL, "")
        let codeset = String(cString: nl_langinfo(nl_item(CODESET)))
        unicode = !options.noUnicode && codeset.uppercased().replacingOccurrences(of: "-", with: "") == "UTF8"
        if ProcessInfo.processInfo.environment["ESCDELAY"] == nil { set_escdelay(25) }
        initscr()
        cbreak()
        noecho()
        nonl()
        keypad(whittle_stdscr(), true)
        nodelay(whittle_stdscr(), true)
        curs_set(0)
        var terminfoColors: Int32 = 0
        if has_colors() {
            start_color()
            use_default_colors()
            terminfoColors = whittle_colors()
        }
        let detected = ColorDepth.detect(environment: ProcessInfo.processInfo.environment, terminfoColors: Int(terminfoColors), noColor: options.noColor)
        // ncurses emits 24-bit colour only through a direct-colour terminfo (TERM=xterm-direct,
        // tmux-direct); COLORTERM=truecolor over a 256-colour terminfo gets the 256 palette. It
        // cannot set a colour the terminfo does not have (TERM=xterm and linux have 8).
        depth = min(detected, ColorDepth.supported(terminfoColors: Int(terminfoColors)))
        maxPairs = max(0, whittle_color_pairs() - 1)
        mouse = !options.noMouse
        if mouse {
            mousemask(CursesScreen.mouseMask, nil)
            mouseinterval(0)
            motionPending = true
        }
    }

    /// Gives the terminal back (Ctrl-Z) until `resume`.
    func suspend() {
        guard open else { return }
        if mouse {
            CursesScreen.writeToTerminal(CursesScreen.buttonMotionOff)
            mousemask(0, nil)
        }
        endwin()
    }

    /// Takes the terminal again after `suspend`; the next `draw` repaints everything.
    func resume() {
        guard open else { return }
        if mouse {
            mousemask(CursesScreen.mouseMask, nil)
            motionPending = true
        }
        invalidate()
        refreshSize()
    }

    var size: Size { Size(width: Int(whittle_cols()), height: Int(whittle_lines())) }

    /// Re-reads the window size from the tty and tells ncurses.
    func refreshSize() {
        var ws = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_row > 0, ws.ws_col > 0 {
            resizeterm(Int32(ws.ws_row), Int32(ws.ws_col))
        }
        previous = nil
    }

    /// Forces the next frame to repaint every cell (Ctrl-L).
    func invalidate() {
        clearok(whittle_curscr(), true)
        previous = nil
    }

    /// Writes the cells that differ from the last frame, then one `doupdate`.
    func draw(_ buffer: ScreenBuffer) {
        let stdscr = whittle_stdscr()
        let width = min(buffer.size.width, Int(whittle_cols())), height = min(buffer.size.height, Int(whittle_lines()))
        let old = previous?.size == buffer.size ? previous : nil
        var cell = cchar_t()
        var text: [wchar_t] = [0, 0]
        for y in 0..<height {
            for x in 0..<width {
                let new = buffer[x, y]
                if let old, old[x, y] == new { continue }
                text[0] = wchar_t(bitPattern: new.character.value)
                var pair = pairNumber(new.style)
                setcchar(&cell, text, attributes(new.style.attributes), 0, &pair)
                mvwadd_wch(stdscr, Int32(y), Int32(x), &cell)
            }
        }
        wnoutrefresh(stdscr)
        doupdate()
        if motionPending {
            CursesScreen.writeToTerminal(CursesScreen.buttonMotionOn)
            motionPending = false
        }
        previous = buffer
    }

    private func attributes(_ attributes: CellAttributes) -> attr_t {
        var value: attr_t = 0
        if attributes.contains(.bold) { value |= whittle_a_bold() }
        if attributes.contains(.dim) { value |= whittle_a_dim() }
        if attributes.contains(.underline) { value |= whittle_a_underline() }
        if attributes.contains(.reverse) { value |= whittle_a_reverse() }
        return value
    }

    private static func number(_ color: TerminalColor) -> Int32 {
        switch color {
        case .default: return -1
        case .palette(let n): return Int32(n)
        case .direct(let rgb): return Int32(rgb)
        }
    }

    /// The colour pair for a style's colours at this terminal's depth (allocated on first use).
    private func pairNumber(_ style: Style) -> Int32 {
        guard depth != .mono else { return 0 }
        let colors = depth.colors(foreground: style.foreground, background: style.background)
        let fg = CursesScreen.number(colors.foreground), bg = CursesScreen.number(colors.background)
        if fg == -1 && bg == -1 { return 0 }
        let key = Int(fg + 1) << 32 | Int(bg + 1)
        if let pair = pairs[key] { return pair }
        guard nextPair <= maxPairs else { return 0 }
        let pair = nextPair
        nextPair += 1
        init_extended_pair(pair, fg, bg)
        pairs[key] = pair
        return pair
    }

    /// Every pending input event, without blocking.
    func readInput() -> [InputEvent] {
        var events: [InputEvent] = []
        var ch: wint_t = 0
        while true {
            let status = wget_wch(whittle_stdscr(), &ch)
            if status == ERR { break }
            if status == KEY_CODE_YES {
                switch Int32(ch) {
                case KEY_RESIZE: events.append(.resize)
                case KEY_MOUSE:
                    var event = MEVENT()
                    while getmouse(&event) == OK {
                        if let mouse = CursesScreen.mouse(event) { events.append(.mouse(mouse)) }
                    }
                default:
                    if let key = CursesScreen.key(code: Int32(ch)) { events.append(.key(key)) }
                }
            } else if let key = CursesScreen.key(character: UInt32(ch)) {
                events.append(.key(key))
            }
        }
        return events
    }

    static func key(code: Int32) -> Key? {
        switch code {
        case KEY_UP: return .up
        case KEY_DOWN: return .down
        case KEY_LEFT: return .left
        case KEY_RIGHT: return .right
        case KEY_HOME: return .home
        case KEY_END: return .end
        case KEY_PPAGE: return .pageUp
        case KEY_NPAGE: return .pageDown
        case KEY_BTAB: return .backTab
        case KEY_ENTER: return .enter
        case KEY_BACKSPACE: return .backspace
        case KEY_DC: return .delete
        case (KEY_F0 + 1)...(KEY_F0 + 12): return .function(Int(code - KEY_F0))
        default: return nil
        }
    }

    static func key(character value: UInt32) -> Key? {
        switch value {
        case 9: return .tab
        case 10, 13: return .enter
        case 27: return .escape
        case 8, 127: return .backspace
        case 1...26: return Unicode.Scalar(value + 96).map { .control(Character($0)) }
        default: return Unicode.Scalar(value).map { .character(Character($0)) }
        }
    }

    static func mouse(_ event: MEVENT) -> MouseEvent? {
        let state = event.bstate
        let x = Int(event.x), y = Int(event.y)
        if state & whittle_button4_pressed() != 0 { return MouseEvent(.wheelUp, x: x, y: y) }
        if state & whittle_button5_pressed() != 0 { return MouseEvent(.wheelDown, x: x, y: y) }
        if state & whittle_button1_pressed() != 0 { return MouseEvent(.press, x: x, y: y) }
        if state & whittle_button1_released() != 0 { return MouseEvent(.release, x: x, y: y) }
        if state & whittle_report_mouse_position() != 0 { return MouseEvent(.drag, x: x, y: y) }
        return nil
    }

    /// Ends ncurses and restores the terminal (idempotent).
    func close() {
        guard open else { return }
        open = false
        if mouse {
            CursesScreen.writeToTerminal(CursesScreen.buttonMotionOff)
            mousemask(0, nil)
        }
        endwin()
    }

    deinit { close() }
}

/// What the screen reads from the terminal.
enum InputEvent {
    case key(Key)
    case mouse(MouseEvent)
    case resize
}

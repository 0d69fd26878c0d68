import Foundation

/// A colour as a theme states it: the terminal's default, one of the 16 ANSI palette
/// entries (so the workbench follows the user's terminal palette), a 256-palette index, or
/// 24-bit RGB.
public enum Color: Sendable, Hashable, CustomStringConvertible {
    case `default`
    case ansi(UInt8)
    case indexed(UInt8)
    case rgb(UInt8, UInt8, UInt8)

    /// `default`, `ansi:N`, `idx:N` or `#rrggbb` (the theme-file and golden-file spelling).
    public var description: String {
        switch self {
        case .default: return "default"
        case .ansi(let n): return "ansi:\(n)"
        case .indexed(let n): return "idx:\(n)"
        case .rgb(let r, let g, let b):
            return "#" + [r, g, b].map { value in
                let text = String(value, radix: 16)
                return text.count == 1 ? "0" + text : text
            }.joined()
        }
    }

    /// Parses `#rrggbb`, `#rgb`, `ansi:N` (0-15), `idx:N` (0-255) or `default`.
    public init?(parsing text: String) {
        let value = text.trimmingCharacters(in: .whitespaces).lowercased()
        if value == "default" || value.isEmpty {
            self = .default
        } else if value.hasPrefix("ansi:"), let n = UInt8(value.dropFirst(5)), n < 16 {
            self = .ansi(n)
        } else if value.hasPrefix("idx:"), let n = UInt8(value.dropFirst(4)) {
            self = .indexed(n)
        } else if value.hasPrefix("#") {
            let hex = Array(value.dropFirst())
            let digits: [Character]
            switch hex.count {
            case 6: digits = hex
            case 3: digits = hex.flatMap { [$0, $0] }
            default: return nil
            }
            var bytes: [UInt8] = []
            for i in stride(from: 0, to: 6, by: 2) {
                guard let byte = UInt8(String(digits[i...i + 1]), radix: 16) else { return nil }
                bytes.append(byte)
            }
            self = .rgb(bytes[0], bytes[1], bytes[2])
        } else {
            return nil
        }
    }

    /// The colour as RGB (ANSI entries use the xterm defaults), for contrast math and
    /// palette reduction.
    public var rgbValue: (r: Int, g: Int, b: Int)? {
        switch self {
        case .default: return nil
        case .rgb(let r, let g, let b): return (Int(r), Int(g), Int(b))
        case .ansi(let n): return ColorDepth.ansiRGB[Int(n)]
        case .indexed(let n): return ColorDepth.rgb(ofIndex: Int(n))
        }
    }
}

/// How many colours the terminal can show. The workbench renders with theme colours and the
/// backend reduces them: truecolor → 256 (xterm 6×6×6 cube or grey ramp) → 16 (nearest ANSI
/// entry) → 8 (nearest of the eight basic ANSI colours, for terminfo entries such as `xterm`
/// and `linux` that have no bright colours) → mono (attributes only).
public enum ColorDepth: String, Sendable, CaseIterable, Comparable {
    case mono, ansi8, ansi16, palette256, truecolor

    public static func < (a: ColorDepth, b: ColorDepth) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }

    /// Picks the depth from the environment and the terminfo colour count (`tput colors`):
    /// `NO_COLOR` (non-empty) or `noColor` → mono; `COLORTERM=truecolor|24bit` or a terminfo
    /// count of 2^24 → truecolor; ≥ 256 → 256; ≥ 16 → 16; ≥ 8 → 8; else mono.
    public static func detect(environment: [String: String], terminfoColors: Int, noColor: Bool) -> ColorDepth {
        if noColor { return .mono }
        if let value = environment["NO_COLOR"], !value.isEmpty { return .mono }
        let colorterm = environment["COLORTERM"]?.lowercased() ?? ""
        if terminfoColors >= 1 << 24 { return .truecolor }
        if (colorterm == "truecolor" || colorterm == "24bit") && terminfoColors >= 8 { return .truecolor }
        return supported(terminfoColors: terminfoColors)
    }

    /// The deepest depth a terminfo colour count can carry (ncurses can only set colours below
    /// it: `init_pair` fails for a colour ≥ COLORS).
    public static func supported(terminfoColors: Int) -> ColorDepth {
        if terminfoColors >= 1 << 24 { return .truecolor }
        if terminfoColors >= 256 { return .palette256 }
        if terminfoColors >= 16 { return .ansi16 }
        if terminfoColors >= 8 { return .ansi8 }
        return .mono
    }

    /// The xterm default RGB values of the 16 ANSI colours.
    public static let ansiRGB: [(r: Int, g: Int, b: Int)] = [
        (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
        (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
    ]

    private static let cubeLevels = [0, 95, 135, 175, 215, 255]

    /// RGB of a 256-palette index (0-15 ANSI, 16-231 the 6×6×6 cube, 232-255 greys 8…238).
    public static func rgb(ofIndex index: Int) -> (r: Int, g: Int, b: Int) {
        switch index {
        case ..<16: return ansiRGB[max(0, index)]
        case 16..<232:
            let n = index - 16
            return (cubeLevels[n / 36], cubeLevels[(n / 6) % 6], cubeLevels[n % 6])
        default:
            let grey = 8 + 10 * (min(index, 255) - 232)
            return (grey, grey, grey)
        }
    }

    /// Nearest 256-palette index (cube 16-231 or grey ramp 232-255, whichever is closer).
    public static func index256(r: Int, g: Int, b: Int) -> Int {
        func level(_ v: Int) -> Int {
            var best = 0
            for (i, l) in cubeLevels.enumerated() where abs(l - v) < abs(cubeLevels[best] - v) { best = i }
            return best
        }
        let (lr, lg, lb) = (level(r), level(g), level(b))
        let cube = 16 + 36 * lr + 6 * lg + lb
        let greyLevel = max(0, min(23, ((r + g + b) / 3 - 3) / 10))
        let grey = 232 + greyLevel
        return distance(rgb(ofIndex: grey), (r, g, b)) < distance(rgb(ofIndex: cube), (r, g, b)) ? grey : cube
    }

    /// Nearest of the 16 ANSI colours.
    public static func index16(r: Int, g: Int, b: Int) -> Int {
        nearestANSI(r: r, g: g, b: b, count: 16)
    }

    /// Nearest of the 8 basic ANSI colours.
    public static func index8(r: Int, g: Int, b: Int) -> Int {
        nearestANSI(r: r, g: g, b: b, count: 8)
    }

    static func nearestANSI(r: Int, g: Int, b: Int, count: Int) -> Int {
        var best = 0
        var bestDistance = Int.max
        for (i, c) in ansiRGB.prefix(count).enumerated() {
            let d = distance(c, (r, g, b))
            if d < bestDistance { best = i; bestDistance = d }
        }
        return best
    }

    /// Colours a palette of this depth has (0 for mono and for depths that are not palettes).
    var paletteSize: Int {
        switch self {
        case .ansi8: return 8
        case .ansi16: return 16
        case .palette256: return 256
        case .mono, .truecolor: return 0
        }
    }

    /// The foreground and background of a style at this depth. Reducing two different colours
    /// can land both on one palette entry (on an 8-colour terminal the dark theme's border and
    /// background both become black): the foreground then takes the palette entry farthest
    /// from the background, so text never disappears into its background.
    public func colors(foreground: Color, background: Color) -> (foreground: TerminalColor, background: TerminalColor) {
        let fg = foreground.reduced(to: self), bg = background.reduced(to: self)
        guard fg == bg, foreground != background, case .palette(let index) = bg, paletteSize > 0 else { return (fg, bg) }
        let base = ColorDepth.rgb(ofIndex: index)
        let farthest = (0..<min(16, paletteSize)).max { a, b in
            ColorDepth.distance(ColorDepth.rgb(ofIndex: a), base) < ColorDepth.distance(ColorDepth.rgb(ofIndex: b), base)
        } ?? 0
        return (.palette(farthest), bg)
    }

    /// Squared distance weighted for perceived brightness (red 2, green 4, blue 3).
    static func distance(_ a: (r: Int, g: Int, b: Int), _ b: (r: Int, g: Int, b: Int)) -> Int {
        let dr = a.r - b.r, dg = a.g - b.g, db = a.b - b.b
        return 2 * dr * dr + 4 * dg * dg + 3 * db * db
    }
}

/// A colour reduced to what a terminal of some depth can show.
public enum TerminalColor: Sendable, Hashable {
    /// The terminal's default foreground or background.
    case `default`
    /// A palette index (0-15 at 16 colours, 0-255 at 256).
    case palette(Int)
    /// 24-bit RGB packed as 0xRRGGBB (terminals with direct colour).
    case direct(Int)
}

extension Color {
    /// This colour at `depth` (mono: always the default colour).
    public func reduced(to depth: ColorDepth) -> TerminalColor {
        switch (self, depth) {
        case (_, .mono), (.default, _): return .default
        case (_, .ansi8):
            guard let c = rgbValue else { return .default }
            if case .ansi(let n) = self, n < 8 { return .palette(Int(n)) }
            return .palette(ColorDepth.index8(r: c.r, g: c.g, b: c.b))
        case (.ansi(let n), _): return .palette(Int(n))
        case (.indexed(let n), .ansi16):
            let c = ColorDepth.rgb(ofIndex: Int(n))
            return .palette(n < 16 ? Int(n) : ColorDepth.index16(r: c.r, g: c.g, b: c.b))
        case (.indexed(let n), _): return .palette(Int(n))
        case (.rgb(let r, let g, let b), .truecolor): return .direct(Int(r) << 16 | Int(g) << 8 | Int(b))
        case (.rgb(let r, let g, let b), .palette256): return .palette(ColorDepth.index256(r: Int(r), g: Int(g), b: Int(b)))
        case (.rgb(let r, let g, let b), .ansi16): return .palette(ColorDepth.index16(r: Int(r), g: Int(g), b: Int(b)))
        }
    }
}

import Foundation

/// Text attributes of a cell.
public struct CellAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let bold = CellAttributes(rawValue: 1)
    public static let dim = CellAttributes(rawValue: 2)
    public static let underline = CellAttributes(rawValue: 4)
    public static let reverse = CellAttributes(rawValue: 8)

    /// `b`, `d`, `u`, `r` letters (golden files).
    public var letters: String {
        var text = ""
        if contains(.bold) { text += "b" }
        if contains(.dim) { text += "d" }
        if contains(.underline) { text += "u" }
        if contains(.reverse) { text += "r" }
        return text
    }
}

/// Foreground, background and attributes of a cell.
public struct Style: Sendable, Hashable {
    public var foreground: Color
    public var background: Color
    public var attributes: CellAttributes

    public init(foreground: Color = .default, background: Color = .default, attributes: CellAttributes = []) {
        self.foreground = foreground
        self.background = background
        self.attributes = attributes
    }

    public func with(_ attributes: CellAttributes) -> Style {
        var copy = self
        copy.attributes.formUnion(attributes)
        return copy
    }

    public func foreground(_ color: Color) -> Style {
        var copy = self
        copy.foreground = color
        return copy
    }

    public func background(_ color: Color) -> Style {
        var copy = self
        copy.background = color
        return copy
    }
}

/// One character cell of the screen.
public struct Cell: Sendable, Hashable {
    /// A single-column scalar (wide and combining characters are replaced when drawn).
    public var character: Unicode.Scalar
    public var style: Style

    public init(_ character: Unicode.Scalar = " ", style: Style = Style()) {
        self.character = character
        self.style = style
    }
}

/// A position and size on the screen, in cells.
public struct Rect: Sendable, Hashable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = max(0, width)
        self.height = max(0, height)
    }

    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public var isEmpty: Bool { width <= 0 || height <= 0 }
    public var description: String { "\(x),\(y) \(width)x\(height)" }

    public func contains(x px: Int, y py: Int) -> Bool { px >= x && px < maxX && py >= y && py < maxY }

    /// The rectangle shrunk by `n` cells on every side (a box's inside).
    public func inset(_ n: Int) -> Rect { Rect(x: x + n, y: y + n, width: width - 2 * n, height: height - 2 * n) }

    /// Splits off the top `rows` rows: (top, rest).
    public func splitTop(_ rows: Int) -> (Rect, Rect) {
        let r = min(max(0, rows), height)
        return (Rect(x: x, y: y, width: width, height: r), Rect(x: x, y: y + r, width: width, height: height - r))
    }

    /// Splits off the left `columns` columns: (left, rest).
    public func splitLeft(_ columns: Int) -> (Rect, Rect) {
        let c = min(max(0, columns), width)
        return (Rect(x: x, y: y, width: c, height: height), Rect(x: x + c, y: y, width: width - c, height: height))
    }

    /// Splits off the bottom `rows` rows: (rest, bottom).
    public func splitBottom(_ rows: Int) -> (Rect, Rect) {
        let r = min(max(0, rows), height)
        return (Rect(x: x, y: y, width: width, height: height - r), Rect(x: x, y: maxY - r, width: width, height: r))
    }

    /// A rectangle of at most `w`×`h` centred in this one.
    public func centered(width w: Int, height h: Int) -> Rect {
        let cw = min(w, width), ch = min(h, height)
        return Rect(x: x + (width - cw) / 2, y: y + (height - ch) / 2, width: cw, height: ch)
    }
}

/// A screen size in cells.
public struct Size: Sendable, Hashable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
    }
    public var description: String { "\(width)x\(height)" }
}

/// A grid of cells: what `render` produces and the terminal backend writes (only the cells
/// that differ from the previous frame). Drawing outside the buffer or outside the clip is
/// ignored, so widgets never need bounds checks of their own.
public struct ScreenBuffer: Sendable, Equatable {
    public let size: Size
    public private(set) var cells: [Cell]
    /// Drawing is limited to this rectangle (the whole buffer by default).
    public var clip: Rect

    public init(size: Size, fill: Cell = Cell()) {
        self.size = size
        cells = Array(repeating: fill, count: size.width * size.height)
        clip = Rect(x: 0, y: 0, width: size.width, height: size.height)
    }

    public var bounds: Rect { Rect(x: 0, y: 0, width: size.width, height: size.height) }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * size.width + x] }
        set { cells[y * size.width + x] = newValue }
    }

    /// Sets one cell when it lies inside the clip.
    public mutating func set(_ x: Int, _ y: Int, _ character: Unicode.Scalar, _ style: Style) {
        guard clip.contains(x: x, y: y), x < size.width, y < size.height, x >= 0, y >= 0 else { return }
        cells[y * size.width + x] = Cell(ScreenBuffer.printable(character), style: style)
    }

    /// Writes `text` from (x, y) on one line, at most `maxWidth` cells; returns the column
    /// after the last cell written. Characters that do not take exactly one column are
    /// shown as `?`.
    @discardableResult
    public mutating func write(_ text: String, x: Int, y: Int, style: Style, maxWidth: Int = Int.max) -> Int {
        var column = x
        let limit = maxWidth == Int.max ? Int.max : x + maxWidth
        for scalar in text.unicodeScalars {
            if column >= limit { break }
            if scalar.properties.generalCategory == .nonspacingMark || scalar.value == 0x200D || (0xFE00...0xFE0F).contains(scalar.value) { continue }
            set(column, y, scalar, style)
            column += 1
        }
        return column
    }

    /// Fills a rectangle with one character and style.
    public mutating func fill(_ rect: Rect, _ character: Unicode.Scalar = " ", style: Style) {
        for y in rect.y..<rect.maxY { for x in rect.x..<rect.maxX { set(x, y, character, style) } }
    }

    /// Changes only the style of the cells in `rect` (e.g. a selection highlight).
    public mutating func restyle(_ rect: Rect, _ transform: (Style) -> Style) {
        for y in max(rect.y, clip.y)..<min(rect.maxY, clip.maxY, size.height) {
            for x in max(rect.x, clip.x)..<min(rect.maxX, clip.maxX, size.width) {
                cells[y * size.width + x].style = transform(cells[y * size.width + x].style)
            }
        }
    }

    /// Runs `body` with drawing clipped to `rect` (intersected with the current clip).
    public mutating func clipped(to rect: Rect, _ body: (inout ScreenBuffer) -> Void) {
        let saved = clip
        let x0 = max(rect.x, clip.x), y0 = max(rect.y, clip.y)
        clip = Rect(x: x0, y: y0, width: min(rect.maxX, clip.maxX) - x0, height: min(rect.maxY, clip.maxY) - y0)
        body(&self)
        clip = saved
    }

    /// Replaces every non-ASCII character by a one-column ASCII stand-in (`--no-unicode`, or a
    /// terminal whose locale is not UTF-8): separators and arrows that panels write as text,
    /// and any box, block or braille character a widget did not already draw in ASCII.
    public mutating func foldToASCII() {
        for index in cells.indices where cells[index].character.value >= 0x80 {
            cells[index].character = ScreenBuffer.asciiStandIn(cells[index].character)
        }
    }

    static func asciiStandIn(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        switch scalar.value {
        case 0xB7, 0x2022, 0x2027, 0x22C5: return "."          // · • ‧ ⋅
        case 0x2248, 0x223C, 0x2026: return "~"                // ≈ ∼ …
        case 0x2192, 0x203A, 0x25B8, 0x25B6: return ">"        // → › ▸ ▶
        case 0x2190, 0x2039, 0x25C2, 0x25C0: return "<"        // ← ‹ ◂ ◀
        case 0x2191, 0x25B2: return "^"                        // ↑ ▲
        case 0x2193, 0x25BC: return "v"                        // ↓ ▼
        case 0x0394: return "d"                                // Δ
        case 0x2714, 0x2713: return "+"                        // ✔ ✓
        case 0x2718, 0x2717, 0x00D7: return "x"                // ✘ ✗ ×
        case 0x2298: return "x"                                // ⊘
        case 0x25C6, 0x25CF, 0x2605: return "*"                // ◆ ● ★
        case 0x2500...0x257F: return "-"                       // box drawing not drawn by widgets
        case 0x2580...0x259F: return "#"                       // blocks
        case 0x2800...0x28FF: return "*"                       // braille
        default: return "?"
        }
    }

    /// Scalars that occupy exactly one terminal column pass; others become `?`.
    static func printable(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        let v = scalar.value
        if v >= 0x20 && v < 0x7F { return scalar }
        if v < 0x20 || v == 0x7F || (0x80..<0xA0).contains(v) { return "?" }
        // East Asian wide and fullwidth blocks, emoji: two columns in a terminal.
        if (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
            || (0xFFE0...0xFFE6).contains(v) || (0x1F300...0x1FAFF).contains(v) || (0x20000...0x3FFFD).contains(v) {
            return "?"
        }
        return scalar
    }

    /// The characters only, one line per row, trailing spaces kept (golden files).
    public var text: String {
        var lines: [String] = []
        for y in 0..<size.height {
            var line = String.UnicodeScalarView()
            for x in 0..<size.width { line.append(self[x, y].character) }
            lines.append(String(line))
        }
        return lines.joined(separator: "\n")
    }

    /// Every distinct style as a legend line plus one letter per cell naming its style
    /// (golden files for themes: colour changes show up as a changed legend or map).
    public var styleMap: String {
        var legend: [Style: Character] = [:]
        var order: [Style] = []
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var rows: [String] = []
        for y in 0..<size.height {
            var row = ""
            for x in 0..<size.width {
                let style = self[x, y].style
                if legend[style] == nil {
                    legend[style] = order.count < letters.count ? letters[order.count] : "*"
                    order.append(style)
                }
                row.append(legend[style] ?? "*")
            }
            rows.append(row)
        }
        let key = order.map { style in
            "\(legend[style] ?? "*") fg=\(style.foreground) bg=\(style.background)" + (style.attributes.isEmpty ? "" : " attr=\(style.attributes.letters)")
        }
        return (key + [""] + rows).joined(separator: "\n")
    }
}

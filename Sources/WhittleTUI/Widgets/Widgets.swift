import Foundation

/// A run of text in one style (a piece of a table cell or a status line).
public struct Span: Sendable, Equatable {
    public var text: String
    public var style: Style
    public init(_ text: String, _ style: Style) {
        self.text = text
        self.style = style
    }

    /// Breaks a line of spans into lines of at most `width` cells (one cell per Unicode
    /// scalar, as `ScreenBuffer.write` counts), keeping each piece's style.
    public static func wrap(_ spans: [Span], width: Int) -> [[Span]] {
        guard width > 0 else { return [spans] }
        var lines: [[Span]] = [[]]
        var used = 0
        for span in spans {
            var rest = span.text.unicodeScalars[...]
            while !rest.isEmpty {
                if used == width {
                    lines.append([])
                    used = 0
                }
                let piece = rest.prefix(width - used)
                lines[lines.count - 1].append(Span(String(String.UnicodeScalarView(piece)), span.style))
                used += piece.count
                rest = rest.dropFirst(piece.count)
            }
        }
        return lines
    }
}

extension ScreenBuffer {
    /// Draws a box around `rect` with an optional title in the top border.
    public mutating func box(_ rect: Rect, title: String? = nil, style: Style, titleStyle: Style, glyphs: Glyphs) {
        guard rect.width >= 2, rect.height >= 2 else { return }
        for x in rect.x + 1..<rect.maxX - 1 {
            set(x, rect.y, glyphs.horizontal, style)
            set(x, rect.maxY - 1, glyphs.horizontal, style)
        }
        for y in rect.y + 1..<rect.maxY - 1 {
            set(rect.x, y, glyphs.vertical, style)
            set(rect.maxX - 1, y, glyphs.vertical, style)
        }
        set(rect.x, rect.y, glyphs.topLeft, style)
        set(rect.maxX - 1, rect.y, glyphs.topRight, style)
        set(rect.x, rect.maxY - 1, glyphs.bottomLeft, style)
        set(rect.maxX - 1, rect.maxY - 1, glyphs.bottomRight, style)
        if let title, rect.width > 4 {
            write(" " + Text.truncate(title, rect.width - 4, glyphs: glyphs) + " ", x: rect.x + 1, y: rect.y, style: titleStyle, maxWidth: rect.width - 2)
        }
    }

    /// Writes spans one after the other from (x, y), clipped to `maxWidth`; returns the end column.
    @discardableResult
    public mutating func write(_ spans: [Span], x: Int, y: Int, maxWidth: Int) -> Int {
        var column = x
        for span in spans {
            let remaining = x + maxWidth - column
            if remaining <= 0 { break }
            column = write(span.text, x: column, y: y, style: span.style, maxWidth: remaining)
        }
        return column
    }

    /// A horizontal bar of `fraction` (0...1) of `width` cells in eighths, the rest in `track`.
    public mutating func bar(_ fraction: Double, x: Int, y: Int, width: Int, style: Style, trackStyle: Style, glyphs: Glyphs) {
        let text = Bars.horizontal(fraction, width: width, glyphs: glyphs)
        var column = x
        for scalar in text.unicodeScalars {
            set(column, y, scalar, scalar == " " ? trackStyle : style)
            column += 1
        }
    }

    /// A slider: track, filled part and thumb for `value` in `range`, `width` cells.
    public mutating func slider(_ value: Double, in range: ClosedRange<Double>, x: Int, y: Int, width: Int,
                                style: Style, trackStyle: Style, glyphs: Glyphs) {
        guard width > 0 else { return }
        let thumb = Slider.thumbColumn(value, in: range, width: width)
        for i in 0..<width {
            if i == thumb {
                set(x + i, y, glyphs.sliderThumb, style.with(.bold))
            } else if i < thumb {
                set(x + i, y, glyphs.sliderFill, style)
            } else {
                set(x + i, y, glyphs.sliderTrack, trackStyle)
            }
        }
    }

    /// Vertical columns (a histogram): one value per cell column scaled to `rect`'s height,
    /// in block eighths (ASCII: `.:|#`).
    public mutating func columns(_ values: [Double], in rect: Rect, style: Style, glyphs: Glyphs) {
        guard rect.height > 0, let top = values.max(), top > 0 else { return }
        for (i, value) in values.prefix(rect.width).enumerated() {
            let eighths = Int((value / top * Double(rect.height * 8)).rounded())
            for row in 0..<rect.height {
                let filled = eighths - row * 8
                guard filled > 0 else { break }
                let glyph = glyphs.columnEighths[min(8, filled)]
                set(rect.x + i, rect.maxY - 1 - row, glyph, style)
            }
        }
    }

    /// A line chart of (x, y) points in `rect`: braille dots (2×4 per cell) with Unicode,
    /// `*` per cell in ASCII. Points are connected by straight segments.
    public mutating func lineChart(_ points: [(x: Double, y: Double)], xRange: ClosedRange<Double>, yRange: ClosedRange<Double>,
                                   in rect: Rect, style: Style, glyphs: Glyphs) {
        guard rect.width > 0, rect.height > 0, !points.isEmpty else { return }
        let sub = glyphs.unicode ? (x: 2, y: 4) : (x: 1, y: 1)
        let dotsWide = rect.width * sub.x, dotsHigh = rect.height * sub.y
        var dots = [UInt8](repeating: 0, count: rect.width * rect.height)
        func plot(_ dx: Int, _ dy: Int) {
            guard dx >= 0, dx < dotsWide, dy >= 0, dy < dotsHigh else { return }
            let cell = (dy / sub.y) * rect.width + dx / sub.x
            dots[cell] |= glyphs.unicode ? Braille.bit(column: dx % 2, row: dy % 4) : 1
        }
        func toDots(_ p: (x: Double, y: Double)) -> (Int, Int) {
            let xSpan = max(xRange.upperBound - xRange.lowerBound, 1e-12)
            let ySpan = max(yRange.upperBound - yRange.lowerBound, 1e-12)
            let fx = (p.x - xRange.lowerBound) / xSpan, fy = (p.y - yRange.lowerBound) / ySpan
            let dx = Int((min(1, max(0, fx)) * Double(dotsWide - 1)).rounded())
            let dy = Int(((1 - min(1, max(0, fy))) * Double(dotsHigh - 1)).rounded())
            return (dx, dy)
        }
        var previous: (Int, Int)?
        for point in points {
            let current = toDots(point)
            if let previous {
                // Bresenham between consecutive points.
                var (x0, y0) = previous
                let (x1, y1) = current
                let dx = abs(x1 - x0), dy = -abs(y1 - y0)
                let stepX = x0 < x1 ? 1 : -1, stepY = y0 < y1 ? 1 : -1
                var error = dx + dy
                while true {
                    plot(x0, y0)
                    if x0 == x1 && y0 == y1 { break }
                    let e2 = 2 * error
                    if e2 >= dy { error += dy; x0 += stepX }
                    if e2 <= dx { error += dx; y0 += stepY }
                }
            } else {
                plot(current.0, current.1)
            }
            previous = current
        }
        for row in 0..<rect.height {
            for column in 0..<rect.width {
                let bits = dots[row * rect.width + column]
                guard bits != 0 else { continue }
                let glyph: Unicode.Scalar = glyphs.unicode ? Braille.scalar(bits) : "*"
                set(rect.x + column, rect.y + row, glyph, style)
            }
        }
    }
}

/// Braille cell encoding (Unicode U+2800 block): dots 1-2-3-7 in the left column, 4-5-6-8
/// in the right, top to bottom.
public enum Braille {
    static let bits: [[UInt8]] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]]

    public static func bit(column: Int, row: Int) -> UInt8 { bits[column & 1][row & 3] }

    public static func scalar(_ bits: UInt8) -> Unicode.Scalar { Unicode.Scalar(0x2800 + UInt32(bits)) ?? " " }
}

public enum Bars {
    /// `fraction` of `width` cells in horizontal eighths, padded with spaces.
    public static func horizontal(_ fraction: Double, width: Int, glyphs: Glyphs) -> String {
        guard width > 0 else { return "" }
        let clamped = fraction.isFinite ? min(1, max(0, fraction)) : 0
        let eighths = Int((clamped * Double(width * 8)).rounded())
        var text = String(repeating: String(glyphs.barEighths[8]), count: eighths / 8)
        if eighths % 8 > 0 { text.unicodeScalars.append(glyphs.barEighths[eighths % 8]) }
        return text + String(repeating: " ", count: max(0, width - text.unicodeScalars.count))
    }
}

/// Slider geometry shared by drawing and mouse handling.
public enum Slider {
    /// The thumb's column (0..<width) for `value`.
    public static func thumbColumn(_ value: Double, in range: ClosedRange<Double>, width: Int) -> Int {
        guard width > 1 else { return 0 }
        let span = range.upperBound - range.lowerBound
        let fraction = span > 0 ? (value - range.lowerBound) / span : 0
        return Int((min(1, max(0, fraction)) * Double(width - 1)).rounded())
    }

    /// The value a click or drag at `column` (0..<width) selects, snapped to `step`.
    public static func value(atColumn column: Int, width: Int, in range: ClosedRange<Double>, step: Double) -> Double {
        let fraction = width > 1 ? Double(min(max(0, column), width - 1)) / Double(width - 1) : 0
        let raw = range.lowerBound + fraction * (range.upperBound - range.lowerBound)
        let snapped = step > 0 ? (raw / step).rounded() * step : raw
        return min(range.upperBound, max(range.lowerBound, snapped))
    }
}

/// Text helpers for fixed-width columns.
public enum Text {
    /// `text` cut to `width` cells, ending with an ellipsis when cut.
    public static func truncate(_ text: String, _ width: Int, glyphs: Glyphs = .unicode) -> String {
        guard width > 0 else { return "" }
        let scalars = text.unicodeScalars
        if scalars.count <= width { return text }
        let marker = glyphs.ellipsis.unicodeScalars.count
        if width <= marker { return String(String.UnicodeScalarView(scalars.prefix(width))) }
        return String(String.UnicodeScalarView(scalars.prefix(width - marker))) + glyphs.ellipsis
    }

    /// `text` cut to its last `width` cells, starting with an ellipsis when cut (for paths,
    /// whose end says the most).
    public static func truncateHead(_ text: String, _ width: Int, glyphs: Glyphs = .unicode) -> String {
        guard width > 0 else { return "" }
        let scalars = text.unicodeScalars
        if scalars.count <= width { return text }
        let marker = glyphs.ellipsis.unicodeScalars.count
        if width <= marker { return String(String.UnicodeScalarView(scalars.suffix(width))) }
        return glyphs.ellipsis + String(String.UnicodeScalarView(scalars.suffix(width - marker)))
    }

    /// Left-aligned in `width` cells (truncated or padded).
    public static func left(_ text: String, _ width: Int, glyphs: Glyphs = .unicode) -> String {
        let cut = truncate(text, width, glyphs: glyphs)
        return cut + String(repeating: " ", count: max(0, width - cut.unicodeScalars.count))
    }

    /// Right-aligned in `width` cells.
    public static func right(_ text: String, _ width: Int, glyphs: Glyphs = .unicode) -> String {
        let cut = truncate(text, width, glyphs: glyphs)
        return String(repeating: " ", count: max(0, width - cut.unicodeScalars.count)) + cut
    }

    /// 1.23M, 45.6k, 789.
    public static func count(_ value: Int) -> String {
        let magnitude = Double(value)
        switch abs(magnitude) {
        case 1e9...: return String(format: "%.2fG", magnitude / 1e9)
        case 1e6...: return String(format: "%.2fM", magnitude / 1e6)
        case 1e3...: return String(format: "%.1fk", magnitude / 1e3)
        default: return String(value)
        }
    }

    /// 3 s, 1m05s, 1h02m.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }

    /// A shape as `1x16x8x8`.
    public static func shape(_ shape: [Int]) -> String { shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x") }

    /// Plain number with at most `digits` decimals and no trailing zeros (0.55, 1, 0.125).
    public static func number(_ value: Double, digits: Int = 3) -> String {
        var text = String(format: "%.\(digits)f", value)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }
}

/// A table column: title, width in cells and alignment.
public struct TableColumn: Sendable, Equatable {
    public var title: String
    public var width: Int
    public var rightAligned: Bool
    public init(_ title: String, width: Int, rightAligned: Bool = false) {
        self.title = title
        self.width = width
        self.rightAligned = rightAligned
    }
}

extension ScreenBuffer {
    /// Draws a header row of column titles separated by one space; returns the x of each column.
    @discardableResult
    public mutating func tableHeader(_ columns: [TableColumn], x: Int, y: Int, maxWidth: Int, style: Style, glyphs: Glyphs) -> [Int] {
        var positions: [Int] = []
        var column = x
        for c in columns {
            positions.append(column)
            let text = c.rightAligned ? Text.right(c.title, c.width, glyphs: glyphs) : Text.left(c.title, c.width, glyphs: glyphs)
            write(text, x: column, y: y, style: style, maxWidth: max(0, x + maxWidth - column))
            column += c.width + 1
        }
        return positions
    }

    /// Draws one row of cells aligned like `columns`.
    public mutating func tableRow(_ cells: [Span], columns: [TableColumn], x: Int, y: Int, maxWidth: Int, glyphs: Glyphs) {
        var column = x
        for (c, cell) in zip(columns, cells) {
            let text = c.rightAligned ? Text.right(cell.text, c.width, glyphs: glyphs) : Text.left(cell.text, c.width, glyphs: glyphs)
            write(text, x: column, y: y, style: cell.style, maxWidth: max(0, x + maxWidth - column))
            column += c.width + 1
        }
    }
}

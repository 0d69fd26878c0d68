/// The characters widgets draw with: Unicode box drawing, block eighths and braille, or an
/// ASCII set for terminals and fonts without them (`--no-unicode`).
public struct Glyphs: Sendable, Equatable {
    public var unicode: Bool
    public var horizontal: Unicode.Scalar
    public var vertical: Unicode.Scalar
    public var topLeft: Unicode.Scalar
    public var topRight: Unicode.Scalar
    public var bottomLeft: Unicode.Scalar
    public var bottomRight: Unicode.Scalar
    /// Horizontal bar eighths, index 0 (empty) … 8 (full).
    public var barEighths: [Unicode.Scalar]
    /// Vertical bar eighths, index 0 (empty) … 8 (full).
    public var columnEighths: [Unicode.Scalar]
    public var sliderTrack: Unicode.Scalar
    public var sliderFill: Unicode.Scalar
    public var sliderThumb: Unicode.Scalar
    /// Layer-graph connectors: node mark, lane, lane start, lane end, crossing.
    public var node: Unicode.Scalar
    public var laneStart: Unicode.Scalar
    public var laneEnd: Unicode.Scalar
    public var laneCross: Unicode.Scalar
    public var ellipsis: String
    public var spinner: [Unicode.Scalar]
    public var arrowUp: String
    public var arrowDown: String
    public var arrowLeft: String
    public var arrowRight: String

    public static let unicode = Glyphs(
        unicode: true, horizontal: "─", vertical: "│", topLeft: "╭", topRight: "╮", bottomLeft: "╰", bottomRight: "╯",
        barEighths: [" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"],
        columnEighths: [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
        sliderTrack: "─", sliderFill: "━", sliderThumb: "●",
        node: "●", laneStart: "┐", laneEnd: "┘", laneCross: "┼", ellipsis: "…",
        spinner: ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"],
        arrowUp: "↑", arrowDown: "↓", arrowLeft: "←", arrowRight: "→")

    public static let ascii = Glyphs(
        unicode: false, horizontal: "-", vertical: "|", topLeft: "+", topRight: "+", bottomLeft: "+", bottomRight: "+",
        barEighths: [" ", " ", " ", ":", ":", ":", ":", "#", "#"],
        columnEighths: [" ", " ", ".", ".", ":", ":", "|", "|", "#"],
        sliderTrack: "-", sliderFill: "=", sliderThumb: "O",
        node: "*", laneStart: "+", laneEnd: "+", laneCross: "+", ellipsis: "~",
        spinner: ["|", "/", "-", "\\"],
        arrowUp: "Up", arrowDown: "Down", arrowLeft: "Left", arrowRight: "Right")

    public static func forUnicode(_ enabled: Bool) -> Glyphs { enabled ? .unicode : .ascii }
}

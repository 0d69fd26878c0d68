/// A key press, as the backend decodes it.
public enum Key: Sendable, Hashable, CustomStringConvertible {
    case character(Character)
    case up, down, left, right, home, end, pageUp, pageDown
    case tab, backTab, enter, escape, backspace, delete
    case function(Int)
    /// Ctrl plus a letter (lower case).
    case control(Character)

    /// How the help overlay shows the key.
    public var description: String {
        switch self {
        case .character(" "): return "Space"
        case .character(let c): return String(c)
        case .up: return "↑"
        case .down: return "↓"
        case .left: return "←"
        case .right: return "→"
        case .home: return "Home"
        case .end: return "End"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .tab: return "Tab"
        case .backTab: return "S-Tab"
        case .enter: return "Enter"
        case .escape: return "Esc"
        case .backspace: return "Bksp"
        case .delete: return "Del"
        case .function(let n): return "F\(n)"
        case .control(let c): return "C-\(c)"
        }
    }

    /// The key name with ASCII arrows (for `--no-unicode`).
    public func label(unicode: Bool) -> String {
        guard !unicode else { return description }
        switch self {
        case .up: return "Up"
        case .down: return "Down"
        case .left: return "Left"
        case .right: return "Right"
        default: return description
        }
    }
}

/// A mouse event in screen cells.
public struct MouseEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case press, release, drag, wheelUp, wheelDown
    }
    public var kind: Kind
    public var x: Int
    public var y: Int
    public init(_ kind: Kind, x: Int, y: Int) {
        self.kind = kind
        self.x = x
        self.y = y
    }
}

/// Everything a key can do. Each command has a name (the command palette accepts it) and a
/// help text (the `?` overlay shows it), so keys are data and help never drifts.
public enum WorkbenchCommand: Sendable, Hashable {
    case quit, help, filter, palette, back, redraw
    case focusNext, focusPrevious
    case showPanel(Panel)
    case moveUp, moveDown, pageUp, pageDown, top, bottom
    case decrease, increase, edit
    case autoSelect, cycleTechnique, resetLayer, raiseTarget, lowerTarget
    case runQuantization, evaluate
    case takeSnapshot, restoreSnapshot, markSnapshot, deleteSnapshot
    case cancelJob, clearJobs
    case toggleSensitivity
    case export(ExportKind), exportSelected, exportAll
    case nextEncodingsVersion, previousEncodingsVersion, editExportFolder

    /// Short help text.
    public var help: String {
        switch self {
        case .quit: return "quit (asks when a job runs)"
        case .help: return "this help"
        case .filter: return "filter layers by name or op"
        case .palette: return "command palette"
        case .back: return "close overlay / clear filter"
        case .redraw: return "redraw the screen"
        case .focusNext: return "next panel"
        case .focusPrevious: return "previous panel"
        case .showPanel(let panel): return "go to \(panel.title)"
        case .moveUp: return "previous row"
        case .moveDown: return "next row"
        case .pageUp: return "page up"
        case .pageDown: return "page down"
        case .top: return "first row"
        case .bottom: return "last row"
        case .decrease: return "decrease value (ratio -0.05)"
        case .increase: return "increase value (ratio +0.05)"
        case .edit: return "type a value / toggle"
        case .autoSelect: return "auto-select ratios for the target"
        case .cycleTechnique: return "cycle compression technique"
        case .resetLayer: return "reset layer (ratio 1 / recipe bits)"
        case .raiseTarget: return "target MAC ratio +0.05"
        case .lowerTarget: return "target MAC ratio -0.05"
        case .runQuantization: return "run quantization with this recipe"
        case .evaluate: return "evaluate the current settings"
        case .takeSnapshot: return "take a snapshot"
        case .restoreSnapshot: return "restore the selected snapshot"
        case .markSnapshot: return "mark snapshot to compare with"
        case .deleteSnapshot: return "delete the selected snapshot"
        case .cancelJob: return "cancel the selected job"
        case .clearJobs: return "clear finished jobs"
        case .toggleSensitivity: return "switch curve: compression / quantization"
        case .export(let kind): return "export the \(kind.title) (background job)"
        case .exportSelected: return "export the selected item (background job)"
        case .exportAll: return "export every item that is ready"
        case .nextEncodingsVersion: return "encodings version: next (0.6.1, 1.0.0, 2.0.0)"
        case .previousEncodingsVersion: return "encodings version: previous"
        case .editExportFolder: return "set the output folder"
        }
    }
}

/// Where a binding applies: everywhere, or only when a panel has focus.
public enum KeyScope: Sendable, Hashable {
    case global
    case panel(Panel)
}

/// One line of the key table.
public struct KeyBinding: Sendable, Hashable {
    public var keys: [Key]
    public var command: WorkbenchCommand
    public var scope: KeyScope

    public init(_ keys: [Key], _ command: WorkbenchCommand, _ scope: KeyScope = .global) {
        self.keys = keys
        self.command = command
        self.scope = scope
    }
}

/// The key table: it drives both dispatch and the `?` overlay.
public struct KeyTable: Sendable, Equatable {
    public var bindings: [KeyBinding]

    public init(bindings: [KeyBinding]) { self.bindings = bindings }

    /// The command for `key` with `panel` focused: panel bindings first, then global ones.
    public func command(for key: Key, in panel: Panel) -> WorkbenchCommand? {
        if let binding = bindings.first(where: { $0.scope == .panel(panel) && $0.keys.contains(key) }) { return binding.command }
        return bindings.first { $0.scope == .global && $0.keys.contains(key) }?.command
    }

    /// Bindings active in `panel`: the panel's own, then the global ones not shadowed by them.
    public func active(in panel: Panel) -> [KeyBinding] {
        let own = bindings.filter { $0.scope == .panel(panel) }
        let ownKeys = Set(own.flatMap(\.keys))
        let global = bindings.filter { $0.scope == .global }.compactMap { binding -> KeyBinding? in
            let keys = binding.keys.filter { !ownKeys.contains($0) }
            return keys.isEmpty ? nil : KeyBinding(keys, binding.command, .global)
        }
        return own + global
    }

    /// The first key bound to `command` in `panel` (for hints such as "press a to …").
    public func key(for command: WorkbenchCommand, in panel: Panel) -> Key? {
        active(in: panel).first { $0.command == command }?.keys.first
    }

    public static let standard = KeyTable(bindings: [
        KeyBinding([.character("q")], .quit),
        KeyBinding([.character("?"), .function(1)], .help),
        KeyBinding([.character("/")], .filter),
        KeyBinding([.character(":")], .palette),
        KeyBinding([.escape], .back),
        KeyBinding([.control("l")], .redraw),
        KeyBinding([.tab], .focusNext),
        KeyBinding([.backTab], .focusPrevious),
        KeyBinding([.character("1")], .showPanel(.layers)),
        KeyBinding([.character("2")], .showPanel(.detail)),
        KeyBinding([.character("3")], .showPanel(.compression)),
        KeyBinding([.character("4")], .showPanel(.quantization)),
        KeyBinding([.character("5")], .showPanel(.compare)),
        KeyBinding([.character("6")], .showPanel(.jobs)),
        KeyBinding([.character("7")], .showPanel(.export)),
        KeyBinding([.up, .character("k")], .moveUp),
        KeyBinding([.down, .character("j")], .moveDown),
        KeyBinding([.pageUp], .pageUp),
        KeyBinding([.pageDown], .pageDown),
        KeyBinding([.home, .character("g")], .top),
        KeyBinding([.end, .character("G")], .bottom),
        KeyBinding([.character("s")], .takeSnapshot),
        KeyBinding([.character("e")], .evaluate),
        KeyBinding([.character("t")], .toggleSensitivity, .panel(.detail)),
        KeyBinding([.left, .character("h")], .decrease, .panel(.compression)),
        KeyBinding([.right, .character("l")], .increase, .panel(.compression)),
        KeyBinding([.enter], .edit, .panel(.compression)),
        KeyBinding([.character("a")], .autoSelect, .panel(.compression)),
        KeyBinding([.character("c")], .cycleTechnique, .panel(.compression)),
        KeyBinding([.character("0")], .resetLayer, .panel(.compression)),
        KeyBinding([.character("+"), .character("]")], .raiseTarget, .panel(.compression)),
        KeyBinding([.character("-"), .character("[")], .lowerTarget, .panel(.compression)),
        KeyBinding([.left, .character("h")], .decrease, .panel(.quantization)),
        KeyBinding([.right, .character("l")], .increase, .panel(.quantization)),
        KeyBinding([.enter, .character(" ")], .edit, .panel(.quantization)),
        KeyBinding([.character("0")], .resetLayer, .panel(.quantization)),
        KeyBinding([.enter, .character("r")], .restoreSnapshot, .panel(.compare)),
        KeyBinding([.character(" "), .character("m")], .markSnapshot, .panel(.compare)),
        KeyBinding([.character("d"), .delete], .deleteSnapshot, .panel(.compare)),
        KeyBinding([.character("x")], .cancelJob, .panel(.compression)),
        KeyBinding([.character("r")], .runQuantization, .panel(.quantization)),
        KeyBinding([.character("x")], .cancelJob, .panel(.quantization)),
        KeyBinding([.character("x")], .cancelJob, .panel(.jobs)),
        KeyBinding([.character("c")], .clearJobs, .panel(.jobs)),
        KeyBinding([.enter], .exportSelected, .panel(.export)),
        KeyBinding([.character("o")], .export(.onnx), .panel(.export)),
        KeyBinding([.character("n")], .export(.encodings), .panel(.export)),
        KeyBinding([.character("d")], .export(.qdq), .panel(.export)),
        KeyBinding([.character("r")], .export(.report), .panel(.export)),
        KeyBinding([.character("a")], .exportAll, .panel(.export)),
        KeyBinding([.right, .character("l"), .character("v")], .nextEncodingsVersion, .panel(.export)),
        KeyBinding([.left, .character("h")], .previousEncodingsVersion, .panel(.export)),
        KeyBinding([.character("f")], .editExportFolder, .panel(.export)),
        KeyBinding([.character("x")], .cancelJob, .panel(.export)),
    ])
}

import Foundation
import WhittleSession

/// A command typed into the `:` palette.
public enum PaletteCommand: Sendable, Equatable {
    case export(ExportKind, path: String?)
    case snapshot(name: String?)
    case restore(name: String)
    case theme(String)
    case save(path: String?)
    case target(Double)
    case ratio(Double)
    case filter(String)
    case evaluate, quantize, autoSelect, help, quit
    case panel(Panel)

    /// Parses `export onnx|encodings|qdq|report [PATH]` (`export` alone: the export panel), `snapshot [NAME]`, `restore NAME`, `theme NAME`,
    /// `save [PATH]`, `target R`, `ratio R`, `filter TEXT`, `evaluate`, `quantize`,
    /// `auto-select`, `help`, `quit`/`q`, or a panel name.
    public static func parse(_ text: String) -> PaletteCommand? {
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let verb = words.first?.lowercased() else { return nil }
        let rest = words.dropFirst().joined(separator: " ")
        let argument: String? = rest.isEmpty ? nil : rest
        switch verb {
        case "export":
            // `export` alone opens the export panel.
            guard words.count >= 2 else { return .panel(.export) }
            guard let kind = ExportKind(rawValue: words[1].lowercased()) else { return nil }
            let path = words.dropFirst(2).joined(separator: " ")
            return .export(kind, path: path.isEmpty ? nil : path)
        case "snapshot": return .snapshot(name: argument)
        case "restore": return argument.map { .restore(name: $0) }
        case "theme": return argument.map { .theme($0) }
        case "save": return .save(path: argument)
        case "target": return argument.flatMap(Double.init).flatMap { $0 > 0 && $0 <= 1 ? .target($0) : nil }
        case "ratio": return argument.flatMap(Double.init).flatMap { $0 > 0 && $0 <= 1 ? .ratio($0) : nil }
        case "filter": return .filter(rest)
        case "evaluate", "eval": return words.count == 1 ? .evaluate : nil
        case "quantize": return words.count == 1 ? .quantize : nil
        case "auto-select", "autoselect": return words.count == 1 ? .autoSelect : nil
        case "help": return .help
        case "quit", "q": return .quit
        default:
            if words.count == 1, let panel = Panel.allCases.first(where: { $0.title.lowercased() == verb }) { return .panel(panel) }
            return nil
        }
    }
}

/// One suggestion line of the palette.
public struct PaletteSuggestion: Sendable, Equatable {
    public var template: String
    public var help: String
    /// True when the template needs an argument typed after it.
    public var needsArgument: Bool
}

extension WorkbenchState {
    /// Every palette command with its help, themes expanded.
    var paletteCatalog: [PaletteSuggestion] {
        var list: [PaletteSuggestion] = [
            PaletteSuggestion(template: "export onnx", help: "write the compressed model as ONNX", needsArgument: false),
            PaletteSuggestion(template: "export encodings", help: "write AIMET encodings (version: panel 7)", needsArgument: false),
            PaletteSuggestion(template: "export qdq", help: "write QDQ ONNX", needsArgument: false),
            PaletteSuggestion(template: "export report", help: "write the HTML report", needsArgument: false),
            PaletteSuggestion(template: "snapshot", help: "take a snapshot (optional NAME)", needsArgument: false),
            PaletteSuggestion(template: "restore", help: "restore snapshot NAME", needsArgument: true),
            PaletteSuggestion(template: "save", help: "save the session profile (optional PATH)", needsArgument: false),
            PaletteSuggestion(template: "target", help: "set the target MAC ratio R", needsArgument: true),
            PaletteSuggestion(template: "ratio", help: "set the selected layer's ratio R", needsArgument: true),
            PaletteSuggestion(template: "filter", help: "filter layers by TEXT", needsArgument: true),
            PaletteSuggestion(template: "auto-select", help: "run the greedy ratio search", needsArgument: false),
            PaletteSuggestion(template: "quantize", help: "run quantization with the recipe", needsArgument: false),
            PaletteSuggestion(template: "evaluate", help: "evaluate the current settings", needsArgument: false),
            PaletteSuggestion(template: "help", help: "show the keys", needsArgument: false),
            PaletteSuggestion(template: "quit", help: "leave the workbench", needsArgument: false),
        ]
        list += themeNames.map { PaletteSuggestion(template: "theme \($0)", help: "switch to the \($0) theme", needsArgument: false) }
        list += session.snapshots.map { PaletteSuggestion(template: "restore \($0.name)", help: "restore this snapshot", needsArgument: false) }
        return list
    }

    /// Suggestions whose text contains the typed characters in order (fuzzy subsequence),
    /// spaces ignored: first those that start with the typed text, then those that contain it
    /// in one piece, then the rest (so `theme li` puts `theme light` before `theme colorblind`).
    public func paletteSuggestions(for text: String) -> [PaletteSuggestion] {
        let needle = text.lowercased().filter { $0 != " " }
        guard !needle.isEmpty else { return paletteCatalog }
        var ranked: [[PaletteSuggestion]] = [[], [], []]
        for suggestion in paletteCatalog {
            let template = suggestion.template.lowercased().filter { $0 != " " }
            if template.hasPrefix(needle) {
                ranked[0].append(suggestion)
            } else if template.contains(needle) {
                ranked[1].append(suggestion)
            } else {
                var remaining = Substring(needle)
                for c in template where remaining.first == c { remaining = remaining.dropFirst() }
                if remaining.isEmpty { ranked[2].append(suggestion) }
            }
        }
        return ranked.flatMap { $0 }
    }

    /// Whether a parsed palette command names only things that exist (a theme or snapshot
    /// name that is not there is better served by the highlighted suggestion).
    func paletteNamesExist(_ command: PaletteCommand) -> Bool {
        switch command {
        case .theme(let name): return themeNames.contains { $0.lowercased() == name.lowercased() }
        case .restore(let name): return session.snapshots.contains { $0.name == name }
        default: return true
        }
    }

    mutating func run(palette text: String, effects: inout [WorkbenchEffect]) {
        guard let command = PaletteCommand.parse(text) else {
            status = StatusMessage("unknown command '\(text)' (press : and look at the list)", .error)
            return
        }
        switch command {
        case .export(let kind, let path):
            startExport(kind, path: path.map { ($0 as NSString).expandingTildeInPath }, effects: &effects)
        case .snapshot(let name):
            commit(entry: .snapshotName, text: name ?? "")
        case .restore(let name):
            if session.restoreSnapshot(named: name) {
                exactCompression = nil
                status = StatusMessage("restored snapshot '\(name)'")
            } else {
                status = StatusMessage("no snapshot named '\(name)'", .error)
            }
        case .theme(let name):
            if let found = themeNames.first(where: { $0.lowercased() == name.lowercased() }) {
                themeName = found
                session.ui.theme = found
                status = StatusMessage("theme \(found)")
            } else {
                status = StatusMessage("no theme '\(name)' (have: \(themeNames.joined(separator: ", ")))", .error)
            }
        case .save(let path):
            guard let target = path ?? profilePath else {
                status = StatusMessage("save needs a path: save FILE.json", .error)
                return
            }
            do {
                let url = URL(fileURLWithPath: target)
                let data = try SessionProfile.encode(SessionProfile.relativizingPaths(of: sessionForSaving, to: url))
                effects.append(.writeFile(path: target, contents: data))
                profilePath = target
                savedSession = session
                status = StatusMessage("saved session profile \(target)")
            } catch {
                status = StatusMessage("cannot encode the session: \(error)", .error)
            }
        case .target(let value):
            session.compression.targetMACRatio = value
        case .ratio(let value):
            if let layer = selectedCompressible { setRatio(value, for: layer.name) } else {
                status = StatusMessage("the selected layer has no compressible weights", .warning)
            }
        case .filter(let text):
            filter = text
            keepSelectionVisible()
        case .evaluate: perform(.evaluate, effects: &effects)
        case .quantize: perform(.runQuantization, effects: &effects)
        case .autoSelect: perform(.autoSelect, effects: &effects)
        case .help: overlay = .help(scroll: 0)
        case .quit: perform(.quit, effects: &effects)
        case .panel(let panel): focusPanel(panel)
        }
    }
}

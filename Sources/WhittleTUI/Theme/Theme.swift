import Foundation

/// The colour roles a theme sets (the keys of a `.theme` file).
public enum ThemeRole: String, Sendable, CaseIterable, Hashable {
    case background, foreground, muted, border
    case borderFocused = "border_focused"
    case title
    case selectionBackground = "selection_bg"
    case selectionForeground = "selection_fg"
    case accent
    case barLow = "bar_low", barMid = "bar_mid", barHigh = "bar_high"
    case ok, warn, error
    case chart1 = "chart_1", chart2 = "chart_2", chart3 = "chart_3"
}

/// A named set of colours for every `ThemeRole`, plus whether it relies on attributes
/// (reverse video, bold) instead of colour, as the `mono` theme does.
public struct Theme: Sendable, Equatable {
    public var name: String
    public var colors: [ThemeRole: Color]
    /// True for themes without colour: selection is shown in reverse video.
    public var monochrome: Bool
    /// Where the theme came from (a file path, or "built-in").
    public var source: String

    public init(name: String, colors: [ThemeRole: Color], monochrome: Bool = false, source: String = "built-in") {
        self.name = name
        self.colors = colors
        self.monochrome = monochrome
        self.source = source
    }

    public subscript(role: ThemeRole) -> Color { colors[role] ?? .default }

    // MARK: Styles the panels use

    public var base: Style { Style(foreground: self[.foreground], background: self[.background]) }
    public var muted: Style { base.foreground(self[.muted]).with(monochrome ? .dim : []) }
    public var border: Style { base.foreground(self[.border]) }
    public var borderFocused: Style { base.foreground(self[.borderFocused]).with(.bold) }
    public var title: Style { base.foreground(self[.title]).with(.bold) }
    public var accent: Style { base.foreground(self[.accent]) }
    public var selection: Style {
        monochrome ? base.with(.reverse) : Style(foreground: self[.selectionForeground], background: self[.selectionBackground])
    }
    public func style(_ role: ThemeRole) -> Style { base.foreground(self[role]) }

    /// Bar colour for a level in 0...1 (low share is calm, high share is loud).
    public func barStyle(level: Double) -> Style {
        style(level < 0.34 ? .barLow : level < 0.67 ? .barMid : .barHigh)
    }

    /// The built-in default (dark), also the base every theme file overrides.
    public static let dark = Theme(name: "dark", colors: [
        .background: .rgb(0x1c, 0x1e, 0x24), .foreground: .rgb(0xd8, 0xde, 0xe9), .muted: .rgb(0x7b, 0x83, 0x94),
        .border: .rgb(0x3b, 0x42, 0x52), .borderFocused: .rgb(0x88, 0xc0, 0xd0), .title: .rgb(0xec, 0xef, 0xf4),
        .selectionBackground: .rgb(0x34, 0x50, 0x6b), .selectionForeground: .rgb(0xff, 0xff, 0xff),
        .accent: .rgb(0x88, 0xc0, 0xd0), .barLow: .rgb(0xa3, 0xbe, 0x8c), .barMid: .rgb(0xeb, 0xcb, 0x8b),
        .barHigh: .rgb(0xbf, 0x61, 0x6a), .ok: .rgb(0xa3, 0xbe, 0x8c), .warn: .rgb(0xeb, 0xcb, 0x8b),
        .error: .rgb(0xbf, 0x61, 0x6a), .chart1: .rgb(0x88, 0xc0, 0xd0), .chart2: .rgb(0xb4, 0x8e, 0xad),
        .chart3: .rgb(0xd0, 0x87, 0x70),
    ])

    /// No colour at all (NO_COLOR, `--no-color`, terminals without colour): the terminal's
    /// default colours, with reverse video, bold and dim carrying the meaning.
    public static let mono = Theme(
        name: "mono", colors: Dictionary(uniqueKeysWithValues: ThemeRole.allCases.map { ($0, Color.default) }), monochrome: true)
}

/// A problem with a theme file: one line naming the file, the line and the key.
public struct ThemeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String
    public var message: String

    public var description: String { "\(file):\(line): \(key.isEmpty ? "" : "key '\(key)': ")\(message)" }
}

/// Reads `.theme` files: flat `key = "value"` lines, `#` comments, values `#rrggbb`,
/// `#rgb`, `ansi:N`, `idx:N` or `default`; missing keys come from `dark`; unknown keys are
/// reported as warnings and ignored; a bad value or line is an error.
public enum ThemeLoader {
    /// Parses one theme file's text. Returns the theme and the warnings (unknown keys).
    public static func parse(_ text: String, name: String, file: String, base: Theme = .dark) throws(ThemeError) -> (Theme, [String]) {
        var theme = base
        theme.name = name
        theme.source = file
        theme.monochrome = false
        var warnings: [String] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ThemeError(file: file, line: index + 1, key: "", message: "expected key = \"value\", got '\(line)'")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if let hash = value.range(of: " #"), value.hasPrefix("\"") { value = String(value[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces) }
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            if key == "monochrome" {
                guard let flag = Bool(value) else {
                    throw ThemeError(file: file, line: index + 1, key: key, message: "expected true or false, got '\(value)'")
                }
                theme.monochrome = flag
                continue
            }
            guard let role = ThemeRole(rawValue: key) else {
                warnings.append("\(file):\(index + 1): unknown key '\(key)' ignored")
                continue
            }
            guard let color = Color(parsing: value) else {
                throw ThemeError(file: file, line: index + 1, key: key,
                                 message: "bad colour '\(value)' (expected #rrggbb, ansi:0-15, idx:0-255 or default)")
            }
            theme.colors[role] = color
        }
        return (theme, warnings)
    }
}

/// Every theme the workbench can use, by name: the built-ins (`dark`, `mono`), the files of
/// the repository's `Themes/` folder, then user themes from `$XDG_CONFIG_HOME/whittle/themes`
/// (default `~/.config/whittle/themes`), which replace same-named ones.
public struct ThemeCatalog: Sendable {
    public private(set) var themes: [String: Theme]
    /// Warnings and errors met while loading (one line each); bad files are skipped.
    public private(set) var problems: [String]

    public init(themes: [Theme] = [.dark, .mono], problems: [String] = []) {
        self.themes = Dictionary(themes.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        self.problems = problems
    }

    public var names: [String] { themes.keys.sorted() }

    public func theme(named name: String) -> Theme? { themes[name.lowercased()] ?? themes[name] }

    /// Loads every `*.theme` file of `directories` in order (later directories win).
    public static func load(directories: [URL]) -> ThemeCatalog {
        var catalog = ThemeCatalog()
        for directory in directories { catalog.add(directory: directory) }
        return catalog
    }

    /// Adds the `*.theme` files of one directory (a missing directory adds nothing).
    public mutating func add(directory: URL) {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".theme") }.sorted()
        for file in files {
            let url = directory.appendingPathComponent(file)
            add(file: url)
        }
    }

    /// Adds one theme file; a bad file is skipped and reported in `problems`.
    public mutating func add(file url: URL) {
        let name = url.deletingPathExtension().lastPathComponent.lowercased()
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            problems.append("\(url.path): cannot read theme file")
            return
        }
        do {
            let (theme, warnings) = try ThemeLoader.parse(text, name: name, file: url.path)
            themes[name] = theme
            problems.append(contentsOf: warnings)
        } catch {
            problems.append(error.description)
        }
    }

    /// The standard search path: `themesDirectory` (the repository's `Themes/`, when found),
    /// then the user directory.
    public static func standardDirectories(bundled: URL?, environment: [String: String]) -> [URL] {
        var directories: [URL] = []
        if let bundled { directories.append(bundled) }
        let config: URL
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
            config = URL(fileURLWithPath: xdg)
        } else {
            config = URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".config")
        }
        directories.append(config.appendingPathComponent("whittle/themes"))
        return directories
    }
}

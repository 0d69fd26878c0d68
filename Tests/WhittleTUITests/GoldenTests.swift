import Foundation
import Testing
import WhittleEngine
@testable import WhittleTUI

/// Render-to-text snapshots. Each file holds the screen's characters, then a style legend and
/// a per-cell style map (so colour changes show). `WHITTLE_UPDATE_GOLDEN=1 swift test
/// --filter GoldenTests` rewrites them.
@Suite("Golden screens")
struct GoldenTests {
    static let directory = repositoryRoot.appendingPathComponent("Tests/WhittleTUITests/Golden")
    static let themes = ThemeCatalog.load(directories: [repositoryRoot.appendingPathComponent("Themes")])

    static func check(_ name: String, _ buffer: ScreenBuffer, styles: Bool = true) throws {
        let body = buffer.text + (styles ? "\n\n" + buffer.styleMap : "") + "\n"
        let url = directory.appendingPathComponent(name + ".txt")
        if ProcessInfo.processInfo.environment["WHITTLE_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try body.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            Issue.record("missing golden \(url.path); run with WHITTLE_UPDATE_GOLDEN=1 to create it")
            return
        }
        if expected != body {
            let a = expected.split(separator: "\n", omittingEmptySubsequences: false), b = body.split(separator: "\n", omittingEmptySubsequences: false)
            let line = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
            let want = line < a.count ? String(a[line]) : "<end>", got = line < b.count ? String(b[line]) : "<end>"
            Issue.record("\(name): line \(line + 1) differs\n  want: \(want)\n  got:  \(got)\n(WHITTLE_UPDATE_GOLDEN=1 rewrites)")
        }
    }

    static let sizes = [Size(width: 80, height: 24), Size(width: 160, height: 48)]

    /// The rich state with `panel` focused (and its own selection set).
    static func panelState(_ panel: Panel, size: Size) throws -> WorkbenchState {
        var state = try richState(size: size)
        state.focus = panel
        if panel != .detail { state.primary = panel }
        if panel == .quantization { state.quantizationRow = 2 }
        if panel == .jobs { state.jobSelection = 1 }
        if panel == .export { state.exportSelection = 2 }
        state.tickCount = 3
        return state
    }

    /// Every panel with data at both sizes in the default (dark) theme.
    @Test(arguments: Panel.allCases)
    func everyPanelWithData(_ panel: Panel) throws {
        for size in GoldenTests.sizes {
            let state = try GoldenTests.panelState(panel, size: size)
            try GoldenTests.check("\(panel.title.lowercased())-\(size)", Workbench.render(state, size: size, theme: .dark))
        }
    }

    @Test(arguments: Panel.allCases)
    func everyPanelEmpty(_ panel: Panel) throws {
        var state = try makeState(capabilities: [.autoSelect, .quantize, .evaluate, .activationStatistics])
        state.focus = panel
        if panel != .detail { state.primary = panel }
        try GoldenTests.check("\(panel.title.lowercased())-empty-80x24", Workbench.render(state, size: state.size, theme: .dark), styles: false)
    }

    /// The other theme classes (dark is `everyPanelWithData`): every panel at both sizes in
    /// the light, high-contrast, colour-blind-safe and 16-colour `terminal` themes, in `mono`
    /// (what NO_COLOR and --no-color draw with), and with ASCII glyphs (--no-unicode, dark
    /// colours). Files: `theme-CLASS-PANEL-WxH.txt`.
    @Test(arguments: ["light", "high-contrast", "colorblind", "terminal", "mono", "ascii"])
    func everyPanelInEveryThemeClass(_ name: String) throws {
        let theme = try #require(GoldenTests.themes.theme(named: name == "ascii" ? "dark" : name))
        for panel in Panel.allCases {
            for size in GoldenTests.sizes {
                var state = try GoldenTests.panelState(panel, size: size)
                if name == "ascii" { state.options.unicode = false }
                let buffer = Workbench.render(state, size: size, theme: theme)
                if name == "ascii" {
                    let other = buffer.text.unicodeScalars.filter { !$0.isASCII }
                    #expect(other.isEmpty, "\(panel) \(size): non-ASCII \(String(String.UnicodeScalarView(other)))")
                }
                try GoldenTests.check("theme-\(name)-\(panel.title.lowercased())-\(size)", buffer)
            }
        }
    }

    @Test func overlaysAndSmallScreens() throws {
        var state = try richState(size: Size(width: 80, height: 24))
        state.overlay = .help(scroll: 0)
        try GoldenTests.check("overlay-help-80x24", Workbench.render(state, size: state.size, theme: .dark), styles: false)
        state.focus = .export
        state.primary = .export
        try GoldenTests.check("overlay-help-export-80x24", Workbench.render(state, size: state.size, theme: .dark), styles: false)
        state = try richState(size: Size(width: 80, height: 24))
        state.overlay = .palette(text: "exp", selection: 1)
        try GoldenTests.check("overlay-palette-80x24", Workbench.render(state, size: state.size, theme: .dark), styles: false)
        state.overlay = .confirmQuit
        try GoldenTests.check("overlay-quit-80x24", Workbench.render(state, size: state.size, theme: .dark), styles: false)
        state.overlay = nil
        state.filter = "conv"
        try GoldenTests.check("filter-layers-80x24", Workbench.render(state, size: state.size, theme: .dark), styles: false)
        try GoldenTests.check("too-small-59x17", Workbench.render(state, size: Size(width: 59, height: 17), theme: .dark), styles: false)
        // The smallest usable screen: narrow tab bar (digits, the focused tab named).
        state = try GoldenTests.panelState(.export, size: Layout.minimumSize)
        try GoldenTests.check("export-60x18", Workbench.render(state, size: Layout.minimumSize, theme: .dark), styles: false)
    }

    @Test func renderIsFastEnough() throws {
        // Keypress-to-frame budget is 16 ms; render alone must stay far below it.
        let state = try richState(size: Size(width: 160, height: 48))
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<20 { _ = Workbench.render(state, size: state.size, theme: .dark) }
        let perFrame = (clock.now - start) / 20
        #expect(perFrame < .milliseconds(50), "render took \(perFrame) per frame (debug build)")
    }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleTUI

@Suite("Themes, colours and widgets")
struct ThemeAndWidgetTests {
    @Test func repositoryThemesLoadCleanly() throws {
        let catalog = ThemeCatalog.load(directories: [repositoryRoot.appendingPathComponent("Themes")])
        #expect(catalog.problems.isEmpty, "\(catalog.problems)")
        for name in ["dark", "light", "high-contrast", "colorblind", "terminal", "mono"] {
            #expect(catalog.theme(named: name) != nil, "\(name)")
        }
        let terminal = try #require(catalog.theme(named: "terminal"))
        #expect(ThemeRole.allCases.allSatisfy { if case .ansi = terminal[$0] { return true } else { return false } })
    }

    @Test func badThemeFileNamesFileLineAndKey() throws {
        #expect(throws: ThemeError(file: "x.theme", line: 3, key: "accent",
                                   message: "bad colour 'blue-ish' (expected #rrggbb, ansi:0-15, idx:0-255 or default)")) {
            try ThemeLoader.parse("# c\nforeground = \"#ffffff\"\naccent = \"blue-ish\"\n", name: "x", file: "x.theme")
        }
        #expect(throws: ThemeError.self) { try ThemeLoader.parse("accent\n", name: "x", file: "x.theme") }
        let (theme, warnings) = try ThemeLoader.parse("accnet = \"#ff0000\"\nok = \"#0f0\"\n", name: "x", file: "x.theme")
        #expect(warnings == ["x.theme:1: unknown key 'accnet' ignored"])
        #expect(theme[.ok] == .rgb(0, 255, 0))
        #expect(theme[.accent] == Theme.dark[.accent], "missing keys come from dark")
        // A bad user file is skipped with one line; the rest still load.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-themes-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "bar_low = \"#12\"\n".write(to: directory.appendingPathComponent("broken.theme"), atomically: true, encoding: .utf8)
        try "accent = \"ansi:3\"\n".write(to: directory.appendingPathComponent("mine.theme"), atomically: true, encoding: .utf8)
        let catalog = ThemeCatalog.load(directories: [directory])
        #expect(catalog.theme(named: "mine")?[.accent] == .ansi(3))
        #expect(catalog.theme(named: "broken") == nil)
        #expect(catalog.problems.count == 1)
        #expect(catalog.problems[0].contains("broken.theme:1: key 'bar_low'"))
    }

    @Test func colourDepthDetectionAndReduction() {
        #expect(ColorDepth.detect(environment: ["NO_COLOR": "1"], terminfoColors: 256, noColor: false) == .mono)
        #expect(ColorDepth.detect(environment: ["NO_COLOR": ""], terminfoColors: 256, noColor: false) == .palette256)
        #expect(ColorDepth.detect(environment: [:], terminfoColors: 256, noColor: true) == .mono)
        #expect(ColorDepth.detect(environment: ["COLORTERM": "truecolor"], terminfoColors: 256, noColor: false) == .truecolor)
        #expect(ColorDepth.detect(environment: [:], terminfoColors: 1 << 24, noColor: false) == .truecolor)
        #expect(ColorDepth.detect(environment: [:], terminfoColors: 16, noColor: false) == .ansi16)
        #expect(ColorDepth.detect(environment: [:], terminfoColors: 8, noColor: false) == .ansi8, "TERM=xterm and linux have 8 colours")
        #expect(ColorDepth.supported(terminfoColors: 8) == .ansi8 && ColorDepth.supported(terminfoColors: 256) == .palette256)
        #expect(min(ColorDepth.detect(environment: ["COLORTERM": "truecolor"], terminfoColors: 8, noColor: false),
                    ColorDepth.supported(terminfoColors: 8)) == .ansi8)
        #expect(ColorDepth.detect(environment: [:], terminfoColors: 0, noColor: false) == .mono)
        #expect(Color.rgb(255, 0, 0).reduced(to: .palette256) == .palette(196))
        #expect(Color.rgb(0x80, 0x80, 0x80).reduced(to: .palette256) == .palette(244))
        #expect(Color.rgb(250, 250, 250).reduced(to: .ansi16) == .palette(15))
        #expect(Color.rgb(1, 2, 3).reduced(to: .truecolor) == .direct(0x010203))
        #expect(Color.ansi(4).reduced(to: .palette256) == .palette(4))
        #expect(Color.rgb(1, 2, 3).reduced(to: .mono) == .default)
        // Every 256-palette colour maps back to itself.
        for index in 16..<256 {
            let c = ColorDepth.rgb(ofIndex: index)
            #expect(ColorDepth.rgb(ofIndex: ColorDepth.index256(r: c.r, g: c.g, b: c.b)) == c)
        }
        #expect(Color(parsing: "#ABCDEF") == .rgb(0xab, 0xcd, 0xef))
        #expect(Color(parsing: "ansi:16") == nil)
        #expect(Color(parsing: "idx:200")?.description == "idx:200")
    }

    /// On 8- and 16-colour terminals every theme colour lands on a palette entry the terminal
    /// has, and text never takes the colour of its own background (8 colours: the dark theme's
    /// bright foregrounds used to be set as colours 8-15, which ncurses refuses, leaving black on
    /// black; its border and background both reduce to black).
    @Test(arguments: [ColorDepth.ansi8, .ansi16])
    func lowColourDepthsKeepTextVisible(_ depth: ColorDepth) throws {
        let catalog = ThemeCatalog.load(directories: [repositoryRoot.appendingPathComponent("Themes")])
        let limit = depth == .ansi8 ? 8 : 16
        for name in catalog.names where name != "mono" {
            let theme = try #require(catalog.theme(named: name))
            var pairs = ThemeRole.allCases.filter { $0 != .background }.map { (theme[$0], theme[.background], "\($0)") }
            pairs.append((theme[.selectionForeground], theme[.selectionBackground], "selection"))
            for (foreground, background, role) in pairs {
                let reduced = depth.colors(foreground: foreground, background: background)
                for color in [reduced.foreground, reduced.background] {
                    if case .palette(let index) = color { #expect(index < limit, "\(name) \(role): colour \(index) at \(depth)") }
                }
                if foreground != background {
                    #expect(reduced.foreground != reduced.background, "\(name) \(role) vanishes into its background at \(depth)")
                }
            }
        }
        #expect(Color.ansi(9).reduced(to: .ansi8) == .palette(1), "bright red becomes red")
        #expect(Color.rgb(250, 250, 250).reduced(to: .ansi8) == .palette(7))
        let border = ColorDepth.ansi8.colors(foreground: .rgb(0x3b, 0x42, 0x52), background: .rgb(0x1c, 0x1e, 0x24))
        #expect(border.foreground == .palette(7) && border.background == .palette(0), "the dark border on its background")
    }

    @Test func barsSlidersAndText() {
        #expect(Bars.horizontal(0.5, width: 4, glyphs: .unicode) == "██  ")
        #expect(Bars.horizontal(1.0 / 16, width: 2, glyphs: .unicode) == "▏ ")
        #expect(Bars.horizontal(2, width: 3, glyphs: .ascii) == "###")
        #expect(Bars.horizontal(.nan, width: 2, glyphs: .unicode) == "  ")
        #expect(Slider.thumbColumn(0, in: 0...1, width: 11) == 0)
        #expect(Slider.thumbColumn(1, in: 0...1, width: 11) == 10)
        #expect(Slider.value(atColumn: 5, width: 11, in: 0...1, step: 0.05) == 0.5)
        #expect(Slider.value(atColumn: 99, width: 11, in: 0...1, step: 0.05) == 1)
        #expect(Text.truncate("abcdef", 4) == "abc…")
        #expect(Text.truncate("abcdef", 4, glyphs: .ascii) == "abc~")
        #expect(Text.count(1_234_567) == "1.23M")
        #expect(Text.duration(65) == "1m05s")
        var buffer = ScreenBuffer(size: Size(width: 6, height: 2))
        buffer.write("漢a\u{301}bcdefgh", x: 0, y: 0, style: Style())
        #expect(buffer.text == "?abcde\n      ", "wide characters become ?, combining marks vanish, text is clipped")
    }

    @Test func brailleLineChartAndAsciiFallback() {
        var buffer = ScreenBuffer(size: Size(width: 2, height: 1))
        buffer.lineChart([(0, 0), (1, 1)], xRange: 0...1, yRange: 0...1, in: buffer.bounds, style: Style(), glyphs: .unicode)
        // A rising diagonal over 4x4 dots: bottom-left to top-right.
        let left = buffer[0, 0].character.value - 0x2800, right = buffer[1, 0].character.value - 0x2800
        #expect(left & UInt32(Braille.bit(column: 0, row: 3)) != 0)
        #expect(right & UInt32(Braille.bit(column: 1, row: 0)) != 0)
        var ascii = ScreenBuffer(size: Size(width: 3, height: 3))
        ascii.lineChart([(0, 0), (1, 1)], xRange: 0...1, yRange: 0...1, in: ascii.bounds, style: Style(), glyphs: .ascii)
        #expect(ascii.text == "  *\n * \n*  ")
        var columns = ScreenBuffer(size: Size(width: 3, height: 2))
        columns.columns([0, 8, 16], in: columns.bounds, style: Style(), glyphs: .unicode)
        #expect(columns.text == "  █\n ██")
    }

    @Test func histogramsAndConnectors() throws {
        let histogram = try #require(Histogram(values: [0, 0.5, 1, 1] as [Float], bins: 2))
        #expect(histogram.counts == [1, 3])
        #expect(histogram.resampled(to: 4) == [1, 1, 3, 3])
        #expect(Histogram(low: 0, high: 1, counts: [1, 2, 3, 4]).resampled(to: 2) == [3, 7])
        let model = try ModelSummary(graph: residualGraph(), path: "m.onnx")
        #expect(model.lanes == 1)
        let gutters = model.layers.map(\.gutter)
        let names = model.layers.map(\.name)
        let start = try #require(names.firstIndex(of: "stem_relu")), end = try #require(names.firstIndex(of: "residual_add"))
        #expect(gutters[start] == [.node, .start])
        #expect(gutters[end] == [.node, .end])
        for row in start + 1..<end { #expect(gutters[row] == [.node, .vertical]) }
        #expect(gutters[0] == [.node, .space])
        #expect(model.layers.filter(\.compressible).map(\.name) == ["stem", "block_conv1", "block_conv2", "head_conv", "classifier"])
        #expect(model.layers[0].weightHistogram != nil)
    }
}

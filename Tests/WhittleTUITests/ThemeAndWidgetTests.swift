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
        #expect(ColorDepth.detect(environment: [:], terminfoColors: 8, noColor: false) == .ansi16)
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

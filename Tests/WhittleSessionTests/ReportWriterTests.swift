import Foundation
import Testing
import WhittleIO
@testable import WhittleSession
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A session on the sample model with scores, ratios, overrides, results and two snapshots,
/// one layer name carrying markup that must be escaped.
func sampleReportSession() -> Session {
    var session = Session(
        modelPath: repositoryRoot.appendingPathComponent("SampleModels/digits-cnn.onnx").path,
        calibrationDataPath: repositoryRoot.appendingPathComponent("SampleModels/digits-calib.npz").path)
    session.scores = ScoreTables(metric: "accuracy", baseline: 0.95)
    for (layer, sensitivity) in [("conv2", 0.1), ("conv3", 0.3), ("conv4", 0.05), ("<script>alert('x')</script>", 0.2)] {
        for ratio in [0.25, 0.5, 0.75] {
            session.scores.record(technique: .spatialSVD, layer: layer, ratio: ratio, score: 0.95 - sensitivity * (1 - ratio))
        }
    }
    session.scores.record(technique: .channelPruning, layer: "conv3", ratio: 0.5, score: 0.8)
    session.compression.ratios = ["conv3": 0.5, "conv4": 0.75]
    session.compression.techniques = ["conv4": .channelPruning]
    session.compression.targetMACRatio = 0.7
    session.bitWidthOverrides = ["fc": BitWidthOverride(weightBits: 4)]
    session.currentMetrics = SessionMetrics(accuracy: 0.93, sqnr: 27.5, layers: [
        "conv1": LayerMetrics(sqnr: 31.2), "conv3": LayerMetrics(sqnr: 24.8), "fc": LayerMetrics(sqnr: 19.0)])
    session.takeSnapshot(named: "float & friends", metrics: SessionMetrics(accuracy: 0.95, macs: 2_101_888, parameters: 61_402),
                         at: Date(timeIntervalSince1970: 1_700_000_000))
    session.compression.ratios["conv2"] = 0.5
    session.takeSnapshot(named: "compressed", metrics: SessionMetrics(accuracy: 0.91, macs: 1_400_000, parameters: 40_000),
                         at: Date(timeIntervalSince1970: 1_700_000_600))
    return session
}

@Suite struct ReportWriterTests {
    func sampleInput() throws -> ReportInput {
        let session = sampleReportSession()
        let graph = try ONNXImporter.load(contentsOf: URL(fileURLWithPath: session.modelPath))
        let data = try Dataset.load(from: URL(fileURLWithPath: session.calibrationDataPath ?? ""), inputNames: ["x"])
        return try ReportData.collect(session: session, graph: graph, data: data, samples: 16, title: "Digits <b>report</b>")
    }

    @Test func collectsCostAndHistograms() throws {
        let input = try sampleInput()
        #expect(input.cost?.layers.count == 15)
        #expect(input.cost?.totalMACs == 2_101_888)
        let weights = input.histograms.filter { $0.kind == .weight }
        let activations = input.histograms.filter { $0.kind == .activation }
        #expect(weights.map(\.layer) == ["conv1", "conv2", "conv3", "conv4", "fc"])
        #expect(activations.map(\.layer) == ["conv1", "conv2", "conv3", "conv4", "fc"])
        // conv1 has 16x1x3x3 weights; its output is 16 samples x 16x16x16.
        #expect(weights.first?.total == 144)
        #expect(activations.first?.total == 16 * 16 * 16 * 16)
        #expect(activations.allSatisfy { $0.minimum <= $0.maximum })
    }

    @Test func reportIsWellFormedAndComplete() throws {
        let input = try sampleInput()
        let html = ReportWriter.html(input)
        // Self-contained: no scripts, no external references.
        #expect(!html.contains("<script"))
        #expect(!html.contains("src="))
        #expect(!html.contains("href=\"http"))
        #expect(!html.contains("https://"))
        // Escaped markup from data.
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        #expect(html.contains("Digits &lt;b&gt;report&lt;/b&gt;"))
        #expect(html.contains("float &amp; friends"))
        for id in ["model", "sensitivity", "ratios", "ranges", "quantization", "snapshots"] {
            #expect(html.contains("<section id=\"\(id)\">"))
        }
        #expect(html.contains("2.10M"))  // total MACs
        #expect(html.contains("24.8"))  // conv3 SQNR

        #if canImport(FoundationXML)
        let document = try XMLDocument(xmlString: html, options: [])
        let root = try #require(document.rootElement())
        #expect(root.name == "html")
        func elements(_ name: String, in node: XMLNode) -> [XMLElement] {
            var found: [XMLElement] = []
            for child in node.children ?? [] {
                if let element = child as? XMLElement {
                    if element.localName == name { found.append(element) }
                    found += elements(name, in: element)
                }
            }
            return found
        }
        // (attribute(forName:) misses attributes in namespaced documents on Linux.)
        func attribute(_ name: String, of element: XMLElement) -> String? {
            element.attributes?.first { $0.name == name }?.stringValue
        }
        let svgs = elements("svg", in: root)
        // 2 sensitivity charts, 1 ratio chart, 10 histograms.
        #expect(svgs.count == 13)
        #expect(svgs.allSatisfy { $0.uri == "http://www.w3.org/2000/svg" })
        let polylines = elements("polyline", in: root)
        #expect(polylines.count == 5)  // 4 spatial-SVD curves + 1 channel-pruning curve
        // Every polyline's points are finite coordinates.
        for line in polylines {
            let points = attribute("points", of: line) ?? ""
            let numbers = points.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { Double($0) }
            #expect(!numbers.isEmpty && numbers.allSatisfy(\.isFinite))
        }
        // Chosen-ratio bars: one row per layer with MACs.
        let ratioSection = try #require(elements("section", in: root).first { attribute("id", of: $0) == "ratios" })
        let barLabels = elements("text", in: ratioSection).filter { attribute("class", of: $0) == "bar-label" }
        #expect(barLabels.map { $0.stringValue ?? "" } == ["conv1", "conv2", "conv3", "conv4", "fc"])
        // The escaped layer name survives as text.
        #expect(root.stringValue?.contains("<script>alert('x')</script>") == true)
        #endif
    }

    @Test func emptySessionStillRenders() throws {
        let input = ReportInput(title: "empty", session: Session(modelPath: "m.onnx"))
        let html = ReportWriter.html(input)
        #expect(html.contains("No sensitivity scores in this session yet."))
        #expect(html.contains("No layer is compressed."))
        #expect(html.contains("No snapshots in this session."))
        #if canImport(FoundationXML)
        _ = try XMLDocument(xmlString: html, options: [])
        #endif
    }

    @Test func writesAtomically() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("report.html")
        try ReportWriter.write(ReportInput(title: "t", session: Session(modelPath: "m.onnx")), to: url)
        #expect(try String(contentsOf: url, encoding: .utf8).hasPrefix("<!DOCTYPE html>"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["report.html"])
        #expect(throws: WhittleError.self) {
            try ReportWriter.write(ReportInput(title: "t", session: Session(modelPath: "m.onnx")), to: dir.file("missing/report.html"))
        }
    }

    @Test func histogramBinsEveryFiniteValue() throws {
        let values: [Float] = [-1, 0, 0.5, 1, .nan, .infinity]
        let histogram = try #require(RangeHistogram(layer: "l", tensor: "t", kind: .weight, values: values, bins: 4))
        #expect(histogram.minimum == -1 && histogram.maximum == 1)
        #expect(histogram.counts == [1, 0, 1, 2])
        #expect(RangeHistogram(layer: "l", tensor: "t", kind: .weight, values: [.nan], bins: 4) == nil)
        let constant = try #require(RangeHistogram(layer: "l", tensor: "t", kind: .weight, values: [2, 2, 2], bins: 3))
        #expect(constant.counts == [3, 0, 0])
    }

    @Test func escapingCoversMarkupAndControls() {
        #expect(HTML.escape("a<b>&\"c'\u{1}") == "a&lt;b&gt;&amp;&quot;c&#39;\u{FFFD}")
        #expect(SVG.ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1])
    }
}

import Foundation
import WhittleIO
import WhittleQuant

/// HTML text helpers.
enum HTML {
    /// Escapes text for element content and attribute values (`& < > " '`).
    static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default:
                // Control characters are not allowed in HTML/XML text: show them as U+FFFD.
                if character.value < 0x20, character != "\n", character != "\t", character != "\r" {
                    result += "\u{FFFD}"
                } else {
                    result.unicodeScalars.append(character)
                }
            }
        }
        return result
    }

    /// `text` cut to `limit` characters with an ellipsis.
    static func shorten(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(1, limit - 1))) + "…"
    }
}

/// Writes the self-contained HTML report: one file with inline CSS and inline SVG charts, no
/// scripts and no external assets, well-formed XHTML (so any XML parser can check it).
///
/// Sections: model summary (from the cost model), sensitivity curves (score vs ratio per layer
/// and technique), chosen ratios, weight and activation range histograms, quantization results
/// (per-layer bits and SQNR) and the snapshot comparison.
public enum ReportWriter {
    /// Writes the report for `input` to `url` atomically.
    public static func write(_ input: ReportInput, to url: URL) throws {
        try AtomicFile.write(Data(html(input).utf8), to: url)
    }

    /// The report as one HTML document.
    public static func html(_ input: ReportInput) -> String {
        var page = """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="generator" content="Whittle"/>
        <title>\(HTML.escape(input.title))</title>
        <style>\(stylesheet)</style>
        </head>
        <body>
        <header><h1>\(HTML.escape(input.title))</h1>
        <p class="meta">Generated \(HTML.escape(timestamp(input.generated))) by Whittle.</p>
        <nav><a href="#model">Model</a> · <a href="#sensitivity">Sensitivity</a> · <a href="#ratios">Chosen ratios</a> · <a href="#ranges">Ranges</a> · <a href="#quantization">Quantization</a> · <a href="#snapshots">Snapshots</a></nav>
        </header>

        """
        page += modelSection(input)
        page += sensitivitySection(input)
        page += ratiosSection(input)
        page += rangesSection(input)
        page += quantizationSection(input)
        page += snapshotsSection(input)
        page += "</body>\n</html>\n"
        return page
    }

    // MARK: - Sections

    static func modelSection(_ input: ReportInput) -> String {
        let session = input.session
        var html = "<section id=\"model\"><h2>Model</h2>\n<table class=\"facts\">"
        func fact(_ name: String, _ value: String?) {
            guard let value else { return }
            html += "<tr><th>\(HTML.escape(name))</th><td>\(HTML.escape(value))</td></tr>"
        }
        fact("Model", session.modelPath)
        fact("Calibration data", session.calibrationDataPath)
        fact("Evaluation data", session.evaluationDataPath)
        if let cost = input.cost {
            fact("Layers", "\(cost.layers.count) (\(cost.layers.filter { $0.macs > 0 }.count) with MACs)")
            fact("MACs per sample", "\(count(cost.totalMACs)) (\(cost.totalMACs))")
            fact("Parameters", "\(count(cost.totalParameters)) (\(cost.totalParameters))")
            fact("Compressed MACs", compressedMACs(input).map { "\(count($0.macs)) (\(percent($0.ratio)) of the original)" })
        }
        if let metrics = session.currentMetrics { html += metricFacts(metrics) }
        let recipe = session.recipe
        fact("Quantization", "\(recipe.config), \(recipe.scheme.profileText), W\(recipe.weightBits)/A\(recipe.activationBits)"
             + (recipe.perChannel == true ? ", per-channel" : ""))
        let techniques = [("scale/shift folding", recipe.foldScaleShift), ("CLE", recipe.crossLayerEqualization), ("bias correction", recipe.biasCorrection),
                          ("activation bias correction", recipe.activationBiasCorrection),
                          ("AdaRound", recipe.adaRound), ("sequential MSE", recipe.sequentialMSE), ("auto", session.autoQuant)]
            .filter(\.1).map(\.0)
        fact("Techniques", techniques.isEmpty ? "none" : techniques.joined(separator: ", "))
        if let target = session.compression.targetMACRatio { fact("Target MAC ratio", percent(target)) }
        html += "</table>\n"

        if let cost = input.cost, !cost.layers.isEmpty {
            let total = max(1, cost.totalMACs)
            html += "<h3>Layers</h3>\n<table class=\"layers\"><thead><tr><th>#</th><th>Layer</th><th>Op</th><th>Output</th>"
            html += "<th class=\"num\">Params</th><th class=\"num\">MACs</th><th>Share of MACs</th></tr></thead><tbody>"
            for (index, layer) in cost.layers.enumerated() {
                let share = Double(layer.macs) / Double(total)
                html += "<tr><td class=\"num\">\(index + 1)</td><td>\(HTML.escape(layer.name))</td><td>\(HTML.escape(layer.opType))</td>"
                html += "<td>\(layer.outputShape.map(String.init).joined(separator: "×"))</td>"
                html += "<td class=\"num\">\(count(layer.parameters))</td><td class=\"num\">\(count(layer.macs))</td>"
                html += "<td><span class=\"share\"><span style=\"width: \(String(format: "%.1f", share * 100))%\"></span></span> \(percent(share))</td></tr>"
            }
            html += "</tbody></table>\n"
        }
        return html + "</section>\n"
    }

    static func sensitivitySection(_ input: ReportInput) -> String {
        let scores = input.session.scores
        var html = "<section id=\"sensitivity\"><h2>Sensitivity</h2>\n"
        guard !scores.isEmpty else {
            return html + "<p class=\"empty\">No sensitivity scores in this session yet.</p></section>\n"
        }
        html += "<p>Model \(HTML.escape(scores.metric)) with one layer compressed to each ratio (share of the layer's MACs kept)"
        html += scores.baseline.map { "; the dashed line is the uncompressed model (\(HTML.escape(SVG.number($0))))." } ?? "."
        html += "</p>\n"
        for technique in scores.techniques {
            let layers = ordered(scores.layers(technique: technique), by: input.layerOrder)
            let series = layers.enumerated().map { index, layer in
                SVG.Series(name: layer, points: scores.curve(technique: technique, layer: layer).map { ($0.ratio, $0.score) },
                           color: SVG.color(index))
            }
            html += "<h3>\(HTML.escape(technique.rawValue))</h3>\n<figure>"
            html += SVG.lineChart(series, xLabel: "ratio (MACs kept)", yLabel: scores.metric,
                                  reference: scores.baseline.map { ($0, "uncompressed: \(SVG.number($0))") },
                                  ariaLabel: "\(technique.rawValue) sensitivity curves")
            html += "<figcaption>\(layers.count) layer\(layers.count == 1 ? "" : "s"); hover a line for its layer.</figcaption></figure>\n"
        }
        return html + "</section>\n"
    }

    static func ratiosSection(_ input: ReportInput) -> String {
        let compression = input.session.compression
        var html = "<section id=\"ratios\"><h2>Chosen ratios</h2>\n"
        var layers = Set(compression.ratios.keys)
        if let cost = input.cost { layers.formUnion(cost.layers.filter { $0.macs > 0 }.map(\.name)) }
        let names = ordered(Array(layers), by: input.layerOrder)
        guard !names.isEmpty, !compression.ratios.isEmpty else {
            return html + "<p class=\"empty\">No layer is compressed.</p></section>\n"
        }
        let techniques = Array(Set(names.map { compression.technique(for: $0) })).sorted()
        let bars = names.map { layer -> SVG.Bar in
            let ratio = compression.ratio(for: layer)
            let technique = compression.technique(for: layer)
            let ignored = compression.ignoredLayers.contains(layer)
            let note = ignored ? "ignored" : ratio < 1 ? "\(percent(ratio)) \(technique.rawValue)" : "unchanged"
            let color = ratio < 1 ? SVG.color(techniques.firstIndex(of: technique) ?? 0) : "#9a9a9a"
            return SVG.Bar(label: layer, value: ratio, color: color, note: note)
        }
        html += "<figure>" + SVG.barChart(bars, ariaLabel: "kept MAC ratio per layer")
        html += "<figcaption>Share of each layer's MACs kept"
        if let target = compression.targetMACRatio { html += "; target for the whole model: \(percent(target))" }
        html += ".</figcaption></figure>\n"
        return html + "</section>\n"
    }

    static func rangesSection(_ input: ReportInput) -> String {
        var html = "<section id=\"ranges\"><h2>Ranges</h2>\n"
        guard !input.histograms.isEmpty else {
            return html + "<p class=\"empty\">No range statistics were collected.</p></section>\n"
        }
        html += "<p>Value histograms of each layer's weights and outputs (bar heights are square roots of counts, so tails stay visible).</p>\n"
        let byLayer = Dictionary(grouping: input.histograms, by: \.layer)
        for layer in ordered(Array(byLayer.keys), by: input.layerOrder) {
            html += "<div class=\"range-row\"><h4>\(HTML.escape(layer))</h4>"
            for histogram in (byLayer[layer] ?? []).sorted(by: { $0.kind.rawValue > $1.kind.rawValue }) {
                let color = histogram.kind == .weight ? SVG.color(0) : SVG.color(1)
                html += "<figure>" + SVG.histogram(histogram, color: color)
                html += "<figcaption>\(histogram.kind == .weight ? "weights" : "activations") [\(HTML.escape(SVG.number(Double(histogram.minimum)))), \(HTML.escape(SVG.number(Double(histogram.maximum))))]</figcaption></figure>"
            }
            html += "</div>\n"
        }
        return html + "</section>\n"
    }

    static func quantizationSection(_ input: ReportInput) -> String {
        let session = input.session
        var html = "<section id=\"quantization\"><h2>Quantization</h2>\n"
        let measured = session.currentMetrics?.layers ?? [:]
        let layers = ordered(Array(Set(measured.keys).union(session.bitWidthOverrides.keys)), by: input.layerOrder)
        if let metrics = session.currentMetrics, metrics.sqnr != nil || metrics.accuracy != nil || metrics.agreement != nil {
            html += "<table class=\"facts\">" + metricFacts(metrics) + "</table>\n"
        }
        guard !layers.isEmpty else {
            return html + "<p class=\"empty\">Every layer uses the recipe's W\(session.recipe.weightBits)/A\(session.recipe.activationBits); no per-layer results yet.</p></section>\n"
        }
        let sqnrs = layers.compactMap { measured[$0]?.sqnr }.filter(\.isFinite)
        let best = max(1, sqnrs.max() ?? 1)
        let ops = Dictionary((input.cost?.layers ?? []).map { ($0.name, $0.opType) }, uniquingKeysWith: { first, _ in first })
        html += "<table class=\"layers\"><thead><tr><th>Layer</th><th>Op</th><th class=\"num\">Weight bits</th><th class=\"num\">Activation bits</th><th class=\"num\">SQNR (dB)</th><th></th></tr></thead><tbody>"
        for layer in layers {
            let bits = session.bitWidths(for: layer)
            let metric = measured[layer]
            let overridden = session.bitWidthOverrides[layer].map { !$0.isEmpty } ?? false
            html += "<tr\(overridden ? " class=\"override\"" : "")><td>\(HTML.escape(layer))</td><td>\(HTML.escape(ops[layer] ?? ""))</td>"
            html += "<td class=\"num\">\(metric?.weightBits ?? bits.weight)</td><td class=\"num\">\(metric?.activationBits ?? bits.activation)</td>"
            if let sqnr = metric?.sqnr, sqnr.isFinite {
                html += "<td class=\"num\">\(String(format: "%.1f", sqnr))</td><td><span class=\"share\"><span style=\"width: \(String(format: "%.1f", max(0, min(1, sqnr / best)) * 100))%\"></span></span></td>"
            } else {
                html += "<td class=\"num\">–</td><td></td>"
            }
            html += "</tr>"
        }
        html += "</tbody></table>\n"
        if !session.bitWidthOverrides.isEmpty { html += "<p class=\"note\">Highlighted rows override the recipe's bit widths.</p>\n" }
        return html + "</section>\n"
    }

    static func snapshotsSection(_ input: ReportInput) -> String {
        let snapshots = input.session.snapshots
        var html = "<section id=\"snapshots\"><h2>Snapshots</h2>\n"
        guard let reference = snapshots.first else {
            return html + "<p class=\"empty\">No snapshots in this session.</p></section>\n"
        }
        html += "<table class=\"compare\"><thead><tr><th>Metric</th>"
        for snapshot in snapshots {
            html += "<th>\(HTML.escape(snapshot.name))<br/><span class=\"meta\">\(HTML.escape(timestamp(snapshot.created)))</span></th>"
        }
        html += "</tr></thead><tbody>"
        let comparisons = snapshots.map { SnapshotComparison(reference, $0, layerOrder: input.layerOrder) }
        for metric in SnapshotComparison.MetricDelta.Metric.allCases {
            let rows = comparisons.compactMap { $0.delta(metric) }
            guard rows.contains(where: { $0.b != nil }) else { continue }
            html += "<tr><th>\(HTML.escape(metric.label))</th>"
            for (index, row) in rows.enumerated() {
                html += "<td class=\"num\">\(row.b.map { format($0, metric) } ?? "–")"
                if index > 0, let delta = row.delta {
                    let verdict = row.verdict > 0 ? "better" : row.verdict < 0 ? "worse" : "same"
                    html += " <span class=\"\(verdict)\">(\(delta >= 0 ? "+" : "−")\(format(abs(delta), metric)))</span>"
                }
                html += "</td>"
            }
            html += "</tr>"
        }
        html += "</tbody></table>\n"
        for comparison in comparisons.dropFirst() {
            html += "<h3>\(HTML.escape(comparison.b.name)) compared with \(HTML.escape(reference.name))</h3>\n"
            if !comparison.recipeChanges.isEmpty {
                html += "<p>Recipe: \(HTML.escape(comparison.recipeChanges.joined(separator: "; ")))</p>\n"
            }
            guard !comparison.layers.isEmpty else {
                html += "<p class=\"empty\">No per-layer differences.</p>\n"
                continue
            }
            html += "<table class=\"layers\"><thead><tr><th>Layer</th><th>Technique</th><th class=\"num\">Ratio</th><th class=\"num\">Weight bits</th><th class=\"num\">Activation bits</th></tr></thead><tbody>"
            for layer in comparison.layers {
                html += "<tr><td>\(HTML.escape(layer.layer))</td>"
                html += "<td>\(HTML.escape(change(layer.techniqueA?.rawValue ?? "–", layer.techniqueB?.rawValue ?? "–")))</td>"
                html += "<td class=\"num\">\(change(layer.a.ratio.map(percent) ?? "–", layer.b.ratio.map(percent) ?? "–"))</td>"
                html += "<td class=\"num\">\(change(layer.a.weightBits.map(String.init) ?? "–", layer.b.weightBits.map(String.init) ?? "–"))</td>"
                html += "<td class=\"num\">\(change(layer.a.activationBits.map(String.init) ?? "–", layer.b.activationBits.map(String.init) ?? "–"))</td></tr>"
            }
            html += "</tbody></table>\n"
        }
        return html + "</section>\n"
    }

    // MARK: - Helpers

    static func metricFacts(_ metrics: SessionMetrics) -> String {
        var html = ""
        func fact(_ name: String, _ value: String?) {
            guard let value else { return }
            html += "<tr><th>\(HTML.escape(name))</th><td>\(HTML.escape(value))</td></tr>"
        }
        fact("Accuracy", metrics.accuracy.map(percent))
        fact("Agreement with float", metrics.agreement.map(percent))
        fact("Output SQNR", metrics.sqnr.map { String(format: "%.1f dB", $0) })
        fact("Size", metrics.sizeBytes.map(bytes))
        return html
    }

    /// MACs per sample after the chosen ratios, and their share of the original.
    static func compressedMACs(_ input: ReportInput) -> (macs: Int, ratio: Double)? {
        guard let cost = input.cost, cost.totalMACs > 0, !input.session.compression.ratios.isEmpty else { return nil }
        let kept = cost.layers.reduce(0.0) { $0 + Double($1.macs) * input.session.compression.ratio(for: $1.name) }
        return (Int(kept.rounded()), kept / Double(cost.totalMACs))
    }

    static func change(_ a: String, _ b: String) -> String { a == b ? a : "\(a) → \(b)" }

    static func format(_ value: Double, _ metric: SnapshotComparison.MetricDelta.Metric) -> String {
        switch metric {
        case .accuracy, .agreement: return percent(value)
        case .sqnr: return String(format: "%.1f", value)
        case .macs, .parameters: return count(Int(value.rounded()))
        case .sizeBytes: return bytes(Int(value.rounded()))
        }
    }

    /// `names` in `order`, unknown names after them by name.
    static func ordered(_ names: [String], by order: [String]) -> [String] {
        let rank = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        return names.sorted { a, b in
            switch (rank[a], rank[b]) {
            case let (i?, j?): return i < j
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return a < b
            }
        }
    }

    static func percent(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        return String(format: value * 100 >= 10 || value == 0 ? "%.1f%%" : "%.2f%%", value * 100)
    }

    static func count(_ value: Int) -> String {
        let magnitude = Double(value)
        switch abs(magnitude) {
        case 1e9...: return String(format: "%.2fG", magnitude / 1e9)
        case 1e6...: return String(format: "%.2fM", magnitude / 1e6)
        case 1e3...: return String(format: "%.1fk", magnitude / 1e3)
        default: return String(value)
        }
    }

    static func bytes(_ value: Int) -> String {
        let magnitude = Double(value)
        switch abs(magnitude) {
        case 1_048_576...: return String(format: "%.2f MiB", magnitude / 1_048_576)
        case 1024...: return String(format: "%.1f KiB", magnitude / 1024)
        default: return "\(value) B"
        }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date).replacingOccurrences(of: "T", with: " ")
    }

    static let stylesheet = """

    :root { color-scheme: light dark; --fg: #1d1f21; --bg: #ffffff; --muted: #666; --line: #d8d8d8; --track: #eeeeee; --accent: #0072B2; }
    @media (prefers-color-scheme: dark) { :root { --fg: #e6e6e6; --bg: #16181b; --muted: #9a9a9a; --line: #3a3d42; --track: #2a2d31; --accent: #56B4E9; } }
    body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
    h1 { font-size: 1.6rem; margin: 0 0 .2rem; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .2rem; margin-top: 2.2rem; }
    h4 { margin: .8rem 0 .3rem; font-weight: 600; }
    nav a { color: var(--accent); text-decoration: none; } .meta, .note, figcaption, .empty { color: var(--muted); }
    table { border-collapse: collapse; margin: .6rem 0; } th, td { padding: .2rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
    table.facts th { font-weight: 600; padding-right: 1.5rem; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
    tr.override td { background: rgba(230, 159, 0, .15); }
    .share { display: inline-block; width: 120px; height: .7em; background: var(--track); vertical-align: middle; }
    .share span { display: block; height: 100%; background: var(--accent); }
    .better { color: #009E73; } .worse { color: #D55E00; } .same { color: var(--muted); }
    figure { margin: .6rem 0; display: inline-block; vertical-align: top; } .range-row figure { margin-right: 1rem; }
    svg.chart { max-width: 100%; height: auto; font-size: 11px; }
    svg .frame { fill: none; stroke: var(--line); } svg .grid { stroke: var(--line); stroke-width: .6; }
    svg .track { fill: var(--track); } svg .reference { stroke: var(--muted); stroke-dasharray: 5 4; stroke-width: 1.2; }
    svg .zero { stroke: var(--muted); stroke-width: .8; stroke-dasharray: 2 2; }
    svg text { fill: var(--fg); } svg .tick, svg .bar-note { fill: var(--muted); } svg .axis-label { font-size: 12px; }
    svg .series:hover polyline { stroke-width: 3.5; }

    """
}

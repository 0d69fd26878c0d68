import Foundation
import WhittleSession

extension Workbench {
    /// Panel 2: the selected layer: facts, weight and activation histograms, score curve.
    static func drawDetail(in inner: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        guard let layer = state.selected else {
            buffer.write("the model has no runtime layers", x: inner.x + 1, y: inner.y, style: theme.muted, maxWidth: inner.width - 1)
            return
        }
        let twoColumns = inner.width >= 70
        let left = twoColumns ? inner.splitLeft(inner.width / 2).0 : inner
        let right = twoColumns ? Rect(x: inner.x + inner.width / 2 + 1, y: inner.y, width: inner.width - inner.width / 2 - 1, height: inner.height) : inner

        // Facts.
        let ratio = state.session.compression.ratio(for: layer.name)
        let bits = state.session.bitWidths(for: layer.name)
        let share = state.model.totalMACs > 0 ? Double(layer.macs) / Double(state.model.totalMACs) * 100 : 0
        var facts: [[Span]] = [
            [Span(layer.name, theme.title), Span("  \(layer.opType)", theme.accent)],
            [Span("output ", theme.muted), Span(Text.shape(layer.outputShape), theme.base),
             Span("  params ", theme.muted), Span(Text.count(layer.parameters), theme.base)],
            [Span("MACs ", theme.muted), Span(Text.count(layer.macs), theme.base), Span(String(format: " (%.1f%% of model)", share), theme.muted)],
        ]
        if layer.compressible {
            let keptMACs = Int((Double(layer.macs) * ratio).rounded())
            let technique = state.session.compression.technique(for: layer.name)
            facts.append([Span("ratio ", theme.muted), Span(Text.number(ratio, digits: 2), theme.accent.with(.bold)),
                          Span("  \(technique.rawValue)", theme.muted)])
            var kept = [Span("kept ", theme.muted)]
            if let structure = state.structures[technique]?[layer.name] {
                // Ratio 1 leaves the layer as it is (the library's rule would already drop a
                // rank where the full-rank split costs more than the layer).
                let count = ratio >= 1 ? structure.full : structure.kept(ratio: ratio)
                kept += [Span(structure.channels ? "channels " : "rank ", theme.muted),
                         Span("\(count)/\(structure.full)", theme.base), Span(" · ", theme.muted)]
            }
            kept.append(Span("\(Text.count(keptMACs)) MACs", theme.base))
            facts.append(kept)
        } else {
            facts.append([Span("not compressible (no Conv/Gemm/MatMul weights)", theme.muted)])
        }
        var bitsLine = [Span("bits ", theme.muted), Span("W\(bits.weight) A\(bits.activation)", theme.accent.with(.bold))]
        if state.session.bitWidthOverrides[layer.name] != nil { bitsLine.append(Span(" (override)", theme.style(.warn))) }
        if let sqnr = state.quantizationResult?.layers[layer.name]?.sqnr {
            bitsLine.append(Span(String(format: "  SQNR %.1f dB", sqnr), theme.base))
        }
        facts.append(bitsLine)
        let measured = state.quantizationResult?.layers[layer.name]
        let indent = "          "
        if let weight = measured?.weightEncoding {
            for (i, line) in describe(weight).enumerated() {
                facts.append([Span(i == 0 ? "encodings " : indent, theme.muted), Span((i == 0 ? "W " : "") + line, theme.base)])
            }
        } else if let weight = layer.weightHistogram {
            // Before a quantization result (or for a layer it left in float): symmetric
            // per-tensor scale from the weight range, max|w| / (2^(b-1) - 1).
            let scale = max(abs(weight.low), abs(weight.high)) / Double((1 << (bits.weight - 1)) - 1)
            facts.append([Span("encodings ", theme.muted),
                          Span(String(format: "W scale %.3g sym", scale), theme.base), Span(" (est.)", theme.muted)])
        }
        if let activation = measured?.activationEncoding {
            let first = measured?.weightEncoding == nil && layer.weightHistogram == nil
            for (i, line) in describe(activation).enumerated() {
                facts.append([Span(first && i == 0 ? "encodings " : indent, theme.muted), Span((i == 0 ? "A " : "") + line, theme.base)])
            }
        }
        var y = left.y
        for line in facts {
            buffer.write(line, x: left.x + 1, y: y, maxWidth: left.width - 1)
            y += 1
        }

        // Histograms.
        let chartsTop = twoColumns ? right.y : y + 1
        let available = (twoColumns ? right.maxY : inner.maxY) - chartsTop
        let histogramHeight = max(2, min(12, (twoColumns ? available : available / 2) / 2 - 2))
        var hy = chartsTop
        for (title, histogram, missing) in [
            ("weights", layer.weightHistogram, "no weights (activation-only layer)"),
            ("activations", state.activationHistograms[layer.name], activationHint(state, context)),
        ] {
            guard hy + 1 < (twoColumns ? right.maxY : inner.maxY) else { break }
            let area = twoColumns ? right : left
            if let histogram {
                buffer.write([Span(title, theme.accent.with(.bold)), Span(String(format: "  %.3g … %.3g", histogram.low, histogram.high), theme.muted)],
                             x: area.x + 1, y: hy, maxWidth: area.width - 1)
                let chart = Rect(x: area.x + 1, y: hy + 1, width: area.width - 2, height: histogramHeight)
                buffer.columns(histogram.resampled(to: chart.width), in: chart, style: theme.style(title == "weights" ? .chart1 : .chart2), glyphs: glyphs)
                hy += histogramHeight + 1
            } else {
                buffer.write([Span(title, theme.accent.with(.bold)), Span("  " + missing, theme.muted)], x: area.x + 1, y: hy, maxWidth: area.width - 1)
                hy += 2
            }
        }

        // Score curve.
        let curveArea = twoColumns ? Rect(x: left.x, y: y + 1, width: left.width, height: left.maxY - y - 1)
                                   : Rect(x: inner.x, y: hy, width: inner.width, height: inner.maxY - hy)
        guard curveArea.height >= 2 else { return }
        drawCurve(layer: layer, in: curveArea, buffer: &buffer, context: context)
    }

    /// `8b scale 0.0123 off -128` per-tensor; per-channel on two lines (they fit the narrow
    /// detail column): `8b per-channel (32) sym`, `scales 0.001…0.02`.
    static func describe(_ encoding: EncodingSummary) -> [String] {
        if encoding.isFloat { return ["float\(encoding.bitWidth) (not quantized)"] }
        if let channels = encoding.channels {
            return ["\(encoding.bitWidth)b per-channel (\(channels))" + (encoding.symmetric ? " sym" : ""),
                    String(format: "scales %.3g…%.3g", encoding.scale, encoding.maximumScale)]
        }
        return [String(format: "%db scale %.3g off %d", encoding.bitWidth, encoding.scale, encoding.offset ?? 0)]
    }

    static func activationHint(_ state: WorkbenchState, _ context: RenderContext) -> String {
        if state.jobs.contains(where: { $0.kind == .activationStatistics && $0.phase == .running }) { return "measuring on the calibration data…" }
        if state.session.calibrationDataPath == nil { return "need calibration data: whittle tui MODEL --data CALIB.npz" }
        if !state.capabilities.contains(.activationStatistics) { return "not measured (no service wired)" }
        return "not measured for this layer (it may have been fused)"
    }

    static func drawCurve(layer: LayerSummary, in area: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        if state.detailShowsQuantization {
            let title = [Span("quantization", theme.accent.with(.bold)), Span("  per-layer SQNR (\(context.key(.toggleSensitivity, .detail)) switches)", theme.muted)]
            buffer.write(title, x: area.x + 1, y: area.y, maxWidth: area.width - 1)
            guard let result = state.quantizationResult else {
                buffer.write("no quantization result: press 4, then \(context.key(.runQuantization, .quantization))", x: area.x + 1, y: area.y + 1, style: theme.muted, maxWidth: area.width - 1)
                return
            }
            let layers = state.model.layers.filter { result.layers[$0.name]?.sqnr != nil }
            let points = layers.enumerated().compactMap { i, l in result.layers[l.name]?.sqnr.map { (x: Double(i), y: $0) } }
            let chart = Rect(x: area.x + 7, y: area.y + 1, width: area.width - 8, height: area.height - 1)
            let high = max(1, points.map(\.y).max() ?? 1)
            buffer.write(Text.right(Text.number(high, digits: 0) + "dB", 6), x: area.x, y: chart.y, style: theme.muted, maxWidth: 6)
            buffer.write(Text.right("0dB", 6), x: area.x, y: chart.maxY - 1, style: theme.muted, maxWidth: 6)
            buffer.lineChart(points, xRange: 0...Double(max(1, points.count - 1)), yRange: 0...high, in: chart, style: theme.style(.chart2), glyphs: glyphs)
            return
        }
        let technique = state.session.compression.technique(for: layer.name)
        var curve = state.session.scores.curve(technique: technique, layer: layer.name)
        var shown = technique
        if curve.isEmpty, let other = state.session.scores.techniques.first(where: { !state.session.scores.curve(technique: $0, layer: layer.name).isEmpty }) {
            curve = state.session.scores.curve(technique: other, layer: layer.name)
            shown = other
        }
        buffer.write([Span("score vs ratio", theme.accent.with(.bold)), Span("  \(shown.rawValue), \(state.session.scores.metric) (\(context.key(.toggleSensitivity, .detail)) switches)", theme.muted)],
                     x: area.x + 1, y: area.y, maxWidth: area.width - 1)
        guard !curve.isEmpty else {
            let hint = layer.compressible
                ? "no scores for this layer yet: press 3, then \(context.key(.autoSelect, .compression)) (auto-select measures them)"
                : "scores exist only for compressible layers"
            buffer.write(hint, x: area.x + 1, y: area.y + 1, style: theme.muted, maxWidth: area.width - 1)
            return
        }
        let scores = curve.map(\.score) + [state.session.scores.baseline].compactMap { $0 }
        let low = scores.min() ?? 0, high = scores.max() ?? 1
        let yRange = low < high ? low...high : (low - 0.5)...(high + 0.5)
        let chart = Rect(x: area.x + 7, y: area.y + 1, width: area.width - 8, height: area.height - 2)
        guard chart.height > 0, chart.width > 2 else { return }
        buffer.write(Text.right(Text.number(yRange.upperBound, digits: 3), 6), x: area.x, y: chart.y, style: theme.muted, maxWidth: 6)
        buffer.write(Text.right(Text.number(yRange.lowerBound, digits: 3), 6), x: area.x, y: chart.maxY - 1, style: theme.muted, maxWidth: 6)
        if let baseline = state.session.scores.baseline {
            buffer.lineChart([(x: 0, y: baseline), (x: 1, y: baseline)], xRange: 0...1, yRange: yRange, in: chart, style: theme.muted, glyphs: glyphs)
        }
        buffer.lineChart(curve.map { (x: $0.ratio, y: $0.score) }, xRange: 0...1, yRange: yRange, in: chart, style: theme.style(.chart1), glyphs: glyphs)
        let ratio = state.session.compression.ratio(for: layer.name)
        let marker = chart.x + Slider.thumbColumn(ratio, in: 0...1, width: chart.width)
        buffer.set(marker, chart.maxY, glyphs.unicode ? "▲" : "^", theme.style(.warn))
        buffer.write("0", x: chart.x, y: chart.maxY, style: theme.muted, maxWidth: 1)
        buffer.write("ratio 1", x: chart.maxX - 7, y: chart.maxY, style: theme.muted, maxWidth: 7)
    }
}

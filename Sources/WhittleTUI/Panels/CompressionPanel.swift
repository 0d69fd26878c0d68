import Foundation
import WhittleSession

extension Workbench {
    /// Panel 3: per-layer ratio sliders and techniques, target, auto-select and totals.
    static func drawCompression(in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        let inner = rect.inset(1)
        let totals = state.approximateTotals
        let exact = state.exactCompression
        let macs = exact?.macs ?? totals.macs, parameters = exact?.parameters ?? totals.parameters
        let baseMACs = max(1, state.model.totalMACs)
        let arrow = glyphs.unicode ? " → " : " -> "
        buffer.write([
            Span("MACs ", theme.muted), Span(Text.count(state.model.totalMACs) + arrow, theme.base),
            Span(Text.count(macs), theme.title), Span(String(format: " (%.1f%%)", Double(macs) / Double(baseMACs) * 100), theme.accent),
            Span("  params ", theme.muted), Span(Text.count(state.model.totalParameters) + arrow, theme.base), Span(Text.count(parameters), theme.title),
            Span(exact == nil ? "  ≈ cost model" : "  exact", exact == nil ? theme.muted : theme.style(.ok)),
        ], x: inner.x, y: inner.y, maxWidth: inner.width)
        let target = state.session.compression.targetMACRatio
        var targetLine = [Span("target MAC ratio ", theme.muted),
                          Span(target.map { Text.number($0, digits: 2) } ?? "unset", theme.accent.with(.bold)),
                          Span(" (\(context.key(.lowerTarget, .compression))/\(context.key(.raiseTarget, .compression)))", theme.muted),
                          Span("  default technique ", theme.muted), Span(state.session.compression.defaultTechnique.rawValue, theme.base)]
        if let accuracy = exact?.accuracy ?? state.evaluation?.accuracy {
            targetLine.append(Span(String(format: "  top-1 %.2f%%", accuracy * 100), theme.style(.ok)))
        }
        buffer.write(targetLine, x: inner.x, y: inner.y + 1, maxWidth: inner.width)
        let action: [Span]
        if let job = state.jobs.last(where: { $0.kind == .autoSelect && $0.phase == .running }) {
            var progress = job.progress.map { ($0.detail ?? $0.phase) + " (\($0.completed)/\($0.total))" } ?? "starting"
            if let done = job.layersScored, let total = job.layersToScore, job.progress?.detail?.hasPrefix("layer") != true {
                progress = "\(done) of \(total) layers scored · " + progress
            }
            if let remaining = job.secondsRemaining { progress += " · ETA " + Text.duration(remaining) }
            action = [Span("\(context.spinner()) auto-select running: ", theme.style(.warn)), Span(progress, theme.base),
                      Span(" (\(context.key(.cancelJob, .compression)) cancels)", theme.muted)]
        } else if state.capabilities.contains(.autoSelect) {
            action = [Span("press ", theme.muted), Span(context.key(.autoSelect, .compression), theme.accent.with(.bold)),
                      Span(" to auto-select ratios for the target (greedy search on the evaluation data)", theme.muted)]
        } else {
            action = [Span("set ratios with ", theme.muted), Span(glyphs.unicode ? "←/→" : "h/l", theme.accent.with(.bold)),
                      Span(" or Enter; auto-select needs the compression library (not in this build)", theme.muted)]
        }
        buffer.write(action, x: inner.x, y: inner.y + 2, maxWidth: inner.width)

        let list = Layout.listArea(of: .compression, in: rect)
        let c = Layout.compressionColumns(width: list.width)
        let columns = [TableColumn("layer", width: c.name), TableColumn("technique", width: c.technique), TableColumn("ratio", width: c.slider),
                       TableColumn("", width: c.value, rightAligned: true), TableColumn("MACs", width: c.macs, rightAligned: true),
                       TableColumn("score", width: c.score, rightAligned: true)]
        buffer.tableHeader(columns, x: inner.x, y: inner.y + 3, maxWidth: inner.width, style: theme.muted.with(.bold), glyphs: glyphs)
        let rows = state.visibleCompressible
        if rows.isEmpty {
            let text = state.filter.isEmpty ? "this model has no Conv, Gemm or MatMul layers to compress" : "no compressible layer matches \"\(state.filter)\""
            buffer.write(text, x: list.x + 1, y: list.y, style: theme.muted, maxWidth: list.width - 1)
            return
        }
        let top = state.scroll[.compression] ?? 0
        let sliders = Layout.sliderColumns(in: list)
        for (offset, index) in rows.dropFirst(top).prefix(list.height).enumerated() {
            let y = list.y + offset
            let layer = state.model.layers[index]
            let isSelected = index == state.selectedLayer
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected { buffer.fill(Rect(x: list.x, y: y, width: list.width, height: 1), style: rowStyle) }
            let ratio = state.session.compression.ratio(for: layer.name)
            let technique = state.session.compression.technique(for: layer.name)
            let score = state.session.scores.score(technique: technique, layer: layer.name, ratio: ratio)
            buffer.tableRow([Span(layer.name, isSelected ? rowStyle.with(.bold) : rowStyle),
                             Span(technique.rawValue, isSelected ? rowStyle : theme.muted)],
                            columns: Array(columns.prefix(2)), x: list.x, y: y, maxWidth: list.width, glyphs: glyphs)
            if let reason = state.compressionBlocker(for: layer.name) {
                buffer.write("not compressible: " + reason, x: sliders.lowerBound, y: y, style: isSelected ? rowStyle : theme.muted, maxWidth: sliders.count)
            } else {
                buffer.slider(ratio, in: 0...1, x: sliders.lowerBound, y: y, width: sliders.count,
                              style: isSelected ? rowStyle : theme.barStyle(level: 1 - ratio), trackStyle: isSelected ? rowStyle : theme.muted, glyphs: glyphs)
            }
            let rest = [Span(Text.number(ratio, digits: 2), isSelected ? rowStyle.with(.bold) : (ratio < 1 ? theme.accent : rowStyle)),
                        Span(Text.count(Int((Double(layer.macs) * ratio).rounded())), rowStyle),
                        Span(score.map { Text.number($0, digits: 3) } ?? "-", isSelected ? rowStyle : theme.muted)]
            buffer.tableRow(rest, columns: Array(columns.suffix(3)), x: sliders.upperBound + 1, y: y, maxWidth: list.maxX - sliders.upperBound - 1, glyphs: glyphs)
        }
    }
}

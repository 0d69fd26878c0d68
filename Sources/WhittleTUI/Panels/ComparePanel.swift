import Foundation
import WhittleSession

extension Workbench {
    /// Panel 5: snapshots list and a side-by-side diff of two (the marked one, or the current
    /// settings, against the selected one).
    static func drawCompare(in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        let inner = rect.inset(1)
        let snapshots = state.session.snapshots
        guard !snapshots.isEmpty else {
            let lines: [[Span]] = [
                [Span("no snapshots yet", theme.title)],
                [Span("press ", theme.muted), Span(context.key(.takeSnapshot, .compare), theme.accent.with(.bold)),
                 Span(" to record the current ratios, recipe and metrics as a snapshot;", theme.muted)],
                [Span("change settings, take another, then compare them here side by side.", theme.muted)],
            ]
            for (i, line) in lines.enumerated() { buffer.write(line, x: inner.x + 1, y: inner.y + i, maxWidth: inner.width - 1) }
            return
        }
        let list = Layout.listArea(of: .compare, in: rect)
        buffer.write(Text.left("snapshot", list.width - 8) + Text.right("top-1", 8), x: list.x, y: inner.y, style: theme.muted.with(.bold), maxWidth: list.width)
        let top = state.scroll[.compare] ?? 0
        for (offset, snapshot) in snapshots.enumerated().dropFirst(top).prefix(list.height) {
            let y = list.y + offset - top
            let isSelected = offset == state.snapshotSelection
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected { buffer.fill(Rect(x: list.x, y: y, width: list.width, height: 1), style: rowStyle) }
            let mark = state.snapshotMark == offset ? (glyphs.unicode ? "◆ " : "* ") : "  "
            let accuracy = snapshot.metrics.accuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "-"
            buffer.write(mark, x: list.x, y: y, style: isSelected ? rowStyle : theme.style(.warn), maxWidth: 2)
            buffer.write(Text.left(snapshot.name, list.width - 11, glyphs: glyphs), x: list.x + 2, y: y, style: isSelected ? rowStyle.with(.bold) : rowStyle, maxWidth: list.width - 11)
            buffer.write(Text.right(accuracy, 8), x: list.maxX - 8, y: y, style: rowStyle, maxWidth: 8)
        }
        // Side-by-side comparison.
        let diffArea: Rect
        if inner.width >= 70 {
            diffArea = Rect(x: list.maxX + 2, y: inner.y, width: inner.maxX - list.maxX - 2, height: inner.height)
        } else {
            let used = min(list.height, snapshots.count) + 2
            diffArea = Rect(x: inner.x, y: inner.y + used, width: inner.width, height: inner.height - used)
        }
        guard diffArea.height >= 3, snapshots.indices.contains(state.snapshotSelection) else { return }
        // A = the marked snapshot (or the selected one), B = the selected one (or the current
        // settings); Δ = B - A.
        let a: Snapshot, b: Snapshot
        if let mark = state.snapshotMark, snapshots.indices.contains(mark), mark != state.snapshotSelection {
            a = snapshots[mark]
            b = snapshots[state.snapshotSelection]
        } else {
            a = snapshots[state.snapshotSelection]
            b = Snapshot(name: "current", created: state.now, settings: state.session.settings, metrics: state.currentMetrics)
        }
        let nameWidth = max(8, diffArea.width - 30)
        let valueWidth = 9
        buffer.write([Span(Text.left("", nameWidth), theme.base), Span(Text.right(Text.truncate(a.name, valueWidth), valueWidth), theme.title),
                      Span(" " + Text.right(Text.truncate(b.name, valueWidth), valueWidth), theme.title), Span(Text.right("Δ", 9), theme.muted)],
                     x: diffArea.x, y: diffArea.y, maxWidth: diffArea.width)
        var y = diffArea.y + 1
        func row(_ label: String, _ va: Double?, _ vb: Double?, format: (Double) -> String, higherIsBetter: Bool) {
            guard y < diffArea.maxY else { return }
            var spans = [Span(Text.left(label, nameWidth), theme.muted),
                         Span(Text.right(va.map(format) ?? "-", valueWidth), theme.base),
                         Span(" " + Text.right(vb.map(format) ?? "-", valueWidth), theme.base)]
            if let va, let vb, va != vb {
                let delta = vb - va
                let better = higherIsBetter ? delta > 0 : delta < 0
                spans.append(Span(Text.right((delta > 0 ? "+" : "") + format(delta), 9), theme.style(better ? .ok : .error)))
            }
            buffer.write(spans, x: diffArea.x, y: y, maxWidth: diffArea.width)
            y += 1
        }
        row("top-1", a.metrics.accuracy, b.metrics.accuracy, format: { String(format: "%.2f%%", $0 * 100) }, higherIsBetter: true)
        row("SQNR dB", a.metrics.sqnr, b.metrics.sqnr, format: { String(format: "%.1f", $0) }, higherIsBetter: true)
        row("MACs", a.metrics.macs.map(Double.init), b.metrics.macs.map(Double.init), format: { Text.count(Int($0)) }, higherIsBetter: false)
        row("params", a.metrics.parameters.map(Double.init), b.metrics.parameters.map(Double.init), format: { Text.count(Int($0)) }, higherIsBetter: false)
        row("size B", a.metrics.sizeBytes.map(Double.init), b.metrics.sizeBytes.map(Double.init), format: { Text.count(Int($0)) }, higherIsBetter: false)
        y += 1
        guard y < diffArea.maxY else { return }
        let changed = state.model.layers.filter { layer in
            let sa = a.layerState(layer.name), sb = b.layerState(layer.name)
            return sa.ratio != sb.ratio || sa.weightBits != sb.weightBits || sa.activationBits != sb.activationBits
        }
        if changed.isEmpty {
            buffer.write("no per-layer differences", x: diffArea.x, y: y, style: theme.muted, maxWidth: diffArea.width)
            return
        }
        buffer.write("\(changed.count) layer\(changed.count == 1 ? "" : "s") differ (ratio · W/A bits)", x: diffArea.x, y: y, style: theme.accent.with(.bold), maxWidth: diffArea.width)
        y += 1
        for layer in changed where y < diffArea.maxY {
            let sa = a.layerState(layer.name), sb = b.layerState(layer.name)
            func describe(_ s: LayerMetrics) -> String {
                "\(Text.number(s.ratio ?? 1, digits: 2)) \(s.weightBits ?? 0)/\(s.activationBits ?? 0)"
            }
            buffer.write([Span(Text.left(layer.name, nameWidth, glyphs: glyphs), theme.base), Span(Text.right(describe(sa), valueWidth), theme.base),
                          Span(" " + Text.right(describe(sb), valueWidth), theme.accent)], x: diffArea.x, y: y, maxWidth: diffArea.width)
            y += 1
        }
    }
}

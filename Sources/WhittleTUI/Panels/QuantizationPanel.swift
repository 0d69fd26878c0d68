import Foundation
import WhittleSession

extension Workbench {
    /// Panel 4: recipe editor, per-layer bit widths and results with per-layer SQNR.
    static func drawQuantization(in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        let inner = rect.inset(1)
        let recipe = state.session.recipe
        // Result line.
        let result: [Span]
        if let job = state.jobs.last(where: { $0.kind == .quantize && $0.phase == .running }) {
            var progress = job.progress.map { "\($0.phase) \($0.completed)/\($0.total)" } ?? "starting"
            if let remaining = job.secondsRemaining { progress += " · ETA " + Text.duration(remaining) }
            result = [Span("\(context.spinner()) quantizing: ", theme.style(.warn)), Span(progress, theme.base),
                      Span(" (\(context.key(.cancelJob, .quantization)) cancels)", theme.muted)]
        } else if let metrics = state.quantizationResult {
            var spans = [Span("result ", theme.muted), Span(WorkbenchState.describe(metrics), theme.title)]
            if let float = state.baseline?.accuracy ?? state.evaluation?.accuracy {
                spans.append(Span(String(format: " (float %.2f%%)", float * 100), theme.muted))
            }
            result = spans
        } else if state.capabilities.contains(.quantize) {
            result = [Span("no result yet: press ", theme.muted), Span(context.key(.runQuantization, .quantization), theme.accent.with(.bold)),
                      Span(" to quantize with this recipe", theme.muted)]
        } else {
            result = [Span("edit the recipe here; running it needs the quantization library (not in this build)", theme.muted)]
        }
        buffer.write(result, x: inner.x, y: inner.y, maxWidth: inner.width)
        let sizeText = Text.count(state.approximateSizeBytes) + "B"
        buffer.write([Span("model size ≈ ", theme.muted), Span(sizeText, theme.base), Span(" at these bit widths and ratios", theme.muted)],
                     x: inner.x, y: inner.y + 1, maxWidth: inner.width)

        let split = Layout.quantizationSplit(inner)
        // Recipe editor.
        for field in QuantizationField.allCases {
            let y = split.recipe.y + field.rawValue
            guard y < split.recipe.maxY else { break }
            let isSelected = state.focus == .quantization && state.quantizationRow == field.rawValue
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected { buffer.fill(Rect(x: split.recipe.x, y: y, width: split.recipe.width, height: 1), style: rowStyle) }
            let value: String
            switch field {
            case .config: value = recipe.config
            case .scheme: value = recipe.scheme.profileText
            case .weightBits: value = "\(recipe.weightBits)"
            case .activationBits: value = "\(recipe.activationBits)"
            case .perChannel:
                // Off in the recipe means "as the config says": show what the config says
                // ("config": on because the config preset says so).
                if recipe.perChannel != true, WorkbenchState.presetPerChannel[recipe.config] == true {
                    value = glyphs.unicode ? "✔ config" : "[x] config"
                } else {
                    value = check(recipe.perChannel == true, glyphs)
                }
            case .cle: value = check(recipe.crossLayerEqualization, glyphs)
            case .biasCorrection: value = check(recipe.biasCorrection, glyphs)
            case .adaRound: value = check(recipe.adaRound, glyphs)
            case .sequentialMSE: value = check(recipe.sequentialMSE, glyphs)
            case .automatic: value = check(state.session.autoQuant, glyphs)
            }
            let labelWidth = min(25, max(8, split.recipe.width - 14))
            buffer.write(Text.left(field.label, labelWidth, glyphs: glyphs), x: split.recipe.x + 1, y: y, style: isSelected ? rowStyle : theme.muted, maxWidth: labelWidth)
            let arrows = isSelected ? (glyphs.unicode ? "‹ \(value) ›" : "< \(value) >") : "  \(value)"
            buffer.write(arrows, x: split.recipe.x + 2 + labelWidth, y: y, style: isSelected ? rowStyle.with(.bold) : theme.accent,
                         maxWidth: split.recipe.width - labelWidth - 2)
        }

        // Per-layer table.
        let layers = split.layers
        let columns = [TableColumn("layer", width: max(8, layers.width - 28)), TableColumn("W", width: 3, rightAligned: true),
                       TableColumn("A", width: 3, rightAligned: true), TableColumn("SQNR", width: 7, rightAligned: true), TableColumn("", width: 10)]
        buffer.tableHeader(columns, x: layers.x, y: layers.y, maxWidth: layers.width, style: theme.muted.with(.bold), glyphs: glyphs)
        let list = Layout.listArea(of: .quantization, in: rect)
        let rows = state.visibleCompressible
        let top = state.scroll[.quantization] ?? 0
        if rows.isEmpty {
            buffer.write("no quantizable weight layers", x: list.x + 1, y: list.y, style: theme.muted, maxWidth: list.width - 1)
        }
        for (offset, index) in rows.dropFirst(top).prefix(list.height).enumerated() {
            let y = list.y + offset
            let layer = state.model.layers[index]
            let isSelected = state.focus == .quantization && state.quantizationRow == QuantizationField.allCases.count + top + offset
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected { buffer.fill(Rect(x: list.x, y: y, width: list.width, height: 1), style: rowStyle) }
            let bits = state.session.bitWidths(for: layer.name)
            let override = state.session.bitWidthOverrides[layer.name]
            let sqnr = state.quantizationResult?.layers[layer.name]?.sqnr
            buffer.tableRow([
                Span(layer.name, isSelected ? rowStyle.with(.bold) : rowStyle),
                Span("\(bits.weight)", override?.weightBits != nil && !isSelected ? theme.style(.warn).with(.bold) : rowStyle),
                Span("\(bits.activation)", override?.activationBits != nil && !isSelected ? theme.style(.warn).with(.bold) : rowStyle),
                Span(sqnr.map { String(format: "%.1fdB", $0) } ?? "-", isSelected ? rowStyle : theme.muted),
            ], columns: Array(columns.prefix(4)), x: list.x, y: y, maxWidth: list.width, glyphs: glyphs)
            if let level = state.quantizationSensitivity(layer.name) {
                let x = list.x + columns.prefix(4).reduce(0) { $0 + $1.width + 1 }
                buffer.bar(1 - level, x: x, y: y, width: 10, style: isSelected ? rowStyle : theme.barStyle(level: level), trackStyle: rowStyle, glyphs: glyphs)
            }
        }
    }

    static func check(_ value: Bool, _ glyphs: Glyphs) -> String {
        glyphs.unicode ? (value ? "✔ on" : "· off") : (value ? "[x] on" : "[ ] off")
    }
}

import Foundation

extension Workbench {
    /// Panel 1: every layer in execution order with connectors, op, shape, params, MACs with
    /// a share bar and inline sensitivity bars.
    static func drawLayers(in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        let inner = rect.inset(1)
        let list = Layout.listArea(of: .layers, in: rect)
        let gutter = state.model.lanes + 1
        let wide = inner.width >= 100
        let shareWidth = wide ? 12 : 6
        var columns = [
            TableColumn("", width: gutter),
            TableColumn("layer", width: 10),
            TableColumn("op", width: wide ? 14 : 9),
            TableColumn("output", width: wide ? 14 : 9),
            TableColumn("params", width: 7, rightAligned: true),
            TableColumn("MACs", width: 7, rightAligned: true),
            TableColumn("share", width: shareWidth),
            TableColumn("comp", width: wide ? 8 : 5),
            TableColumn("quant", width: wide ? 8 : 5),
        ]
        let fixed = columns.dropFirst(2).reduce(0) { $0 + $1.width + 1 } + gutter + 1
        columns[1].width = max(6, inner.width - fixed)
        buffer.tableHeader(columns, x: inner.x, y: inner.y, maxWidth: inner.width, style: theme.muted.with(.bold), glyphs: glyphs)
        let rows = state.visibleLayers
        let total = max(1, state.model.totalMACs)
        let top = state.scroll[.layers] ?? 0
        if rows.isEmpty {
            buffer.write("no layer matches \"\(state.filter)\" (Esc clears the filter)", x: list.x + 1, y: list.y, style: theme.muted, maxWidth: list.width - 1)
        }
        for (offset, index) in rows.dropFirst(top).prefix(list.height).enumerated() {
            let y = list.y + offset
            let layer = state.model.layers[index]
            let isSelected = index == state.selectedLayer
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected { buffer.fill(Rect(x: inner.x, y: y, width: inner.width, height: 1), style: rowStyle) }
            let ratio = state.session.compression.ratio(for: layer.name)
            let nameStyle = isSelected ? rowStyle.with(.bold) : (ratio < 1 ? theme.style(.accent) : theme.base)
            let cells = [
                Span("", rowStyle),
                Span(layer.name, nameStyle),
                Span(layer.opType, isSelected ? rowStyle : theme.muted),
                Span(Text.shape(Array(layer.outputShape.dropFirst())), isSelected ? rowStyle : theme.muted),
                Span(layer.parameters > 0 ? Text.count(layer.parameters) : "-", rowStyle),
                Span(layer.macs > 0 ? Text.count(layer.macs) : "-", rowStyle),
            ]
            buffer.tableRow(cells, columns: Array(columns.prefix(6)), x: inner.x, y: y, maxWidth: inner.width, glyphs: glyphs)
            var x = inner.x
            for cell in layer.gutter {
                let glyph: Unicode.Scalar
                switch cell {
                case .space: glyph = " "
                case .node: glyph = glyphs.node
                case .vertical: glyph = glyphs.vertical
                case .horizontal: glyph = glyphs.horizontal
                case .start: glyph = glyphs.laneStart
                case .end: glyph = glyphs.laneEnd
                case .cross: glyph = glyphs.laneCross
                }
                buffer.set(x, y, glyph, (isSelected ? rowStyle : theme.accent).foreground(isSelected ? theme[.selectionForeground] : theme[.accent]))
                x += 1
            }
            var barX = inner.x + columns.prefix(6).reduce(0) { $0 + $1.width + 1 }
            let share = Double(layer.macs) / Double(total)
            if layer.macs > 0 {
                buffer.bar(share, x: barX, y: y, width: shareWidth, style: isSelected ? rowStyle : theme.barStyle(level: share * 3),
                           trackStyle: rowStyle, glyphs: glyphs)
            }
            barX += shareWidth + 1
            for (level, width) in [(state.compressionSensitivity(layer.name), columns[7].width), (state.quantizationSensitivity(layer.name), columns[8].width)] {
                if let level {
                    buffer.bar(level, x: barX, y: y, width: width, style: isSelected ? rowStyle : theme.barStyle(level: level), trackStyle: rowStyle, glyphs: glyphs)
                } else {
                    buffer.write(Text.left(layer.compressible ? "·" : "", width, glyphs: glyphs).replacingOccurrences(of: "·", with: glyphs.unicode ? "·" : "."),
                                 x: barX, y: y, style: isSelected ? rowStyle : theme.muted, maxWidth: width)
                }
                barX += width + 1
            }
        }
        // Footer: what the bars mean, or how to get them.
        let footerY = inner.maxY - 1
        let hasScores = !state.session.scores.isEmpty || state.quantizationResult != nil
        let footer: [Span]
        if hasScores {
            footer = [Span("share", theme.accent), Span(" of MACs · ", theme.muted), Span("comp", theme.accent),
                      Span(" score drop at the lowest ratio · ", theme.muted), Span("quant", theme.accent), Span(" 40 dB - SQNR", theme.muted)]
        } else {
            footer = [Span("no sensitivity scores yet: ", theme.muted), Span("3", theme.accent.with(.bold)), Span(" then ", theme.muted),
                      Span(context.key(.autoSelect, .compression), theme.accent.with(.bold)), Span(" (auto-select) or ", theme.muted),
                      Span("4", theme.accent.with(.bold)), Span(" then ", theme.muted), Span(context.key(.runQuantization, .quantization), theme.accent.with(.bold)),
                      Span(" (quantize)", theme.muted)]
        }
        buffer.write(footer, x: inner.x, y: footerY, maxWidth: inner.width)
    }
}

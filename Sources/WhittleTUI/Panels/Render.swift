import Foundation
import WhittleSession

/// What every panel renderer is handed.
struct RenderContext {
    var state: WorkbenchState
    var theme: Theme
    var glyphs: Glyphs
    var keys: KeyTable

    /// Key hint text for a command in a panel ("a" or "Enter").
    func key(_ command: WorkbenchCommand, _ panel: Panel) -> String {
        keys.key(for: command, in: panel)?.label(unicode: glyphs.unicode) ?? ":"
    }

    func spinner() -> Unicode.Scalar { glyphs.spinner[state.tickCount % glyphs.spinner.count] }
}

extension Workbench {
    /// Draws the whole screen for `state` at `size`. Pure: no terminal, no I/O.
    public static func render(_ state: WorkbenchState, size: Size, theme: Theme, keys: KeyTable = .standard) -> ScreenBuffer {
        let context = RenderContext(state: state, theme: theme, glyphs: Glyphs.forUnicode(state.options.unicode), keys: keys)
        var buffer = ScreenBuffer(size: size, fill: Cell(" ", style: theme.base))
        let layout = Layout(state: state, size: size)
        if layout.tooSmall {
            drawTooSmall(&buffer, context: context)
            if !state.options.unicode { buffer.foldToASCII() }
            return buffer
        }
        drawTabBar(&buffer, layout: layout, context: context)
        for (panel, rect) in layout.panels {
            buffer.clipped(to: rect) { buffer in
                drawPanel(panel, in: rect, buffer: &buffer, context: context)
            }
        }
        drawStatusBar(&buffer, layout: layout, context: context)
        if let overlay = state.overlay {
            drawOverlay(overlay, buffer: &buffer, layout: layout, context: context)
        }
        if !state.options.unicode { buffer.foldToASCII() }
        return buffer
    }

    static func drawPanel(_ panel: Panel, in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let focused = context.state.focus == panel
        let title = panelTitle(panel, context: context)
        buffer.box(rect, title: title, style: focused ? context.theme.borderFocused : context.theme.border,
                   titleStyle: focused ? context.theme.title : context.theme.muted, glyphs: context.glyphs)
        let inner = rect.inset(1)
        buffer.clipped(to: inner) { buffer in
            switch panel {
            case .layers: drawLayers(in: rect, buffer: &buffer, context: context)
            case .detail: drawDetail(in: inner, buffer: &buffer, context: context)
            case .compression: drawCompression(in: rect, buffer: &buffer, context: context)
            case .quantization: drawQuantization(in: rect, buffer: &buffer, context: context)
            case .compare: drawCompare(in: rect, buffer: &buffer, context: context)
            case .jobs: drawJobs(in: rect, buffer: &buffer, context: context)
            case .export: drawExport(in: rect, buffer: &buffer, context: context)
            }
        }
    }

    static func panelTitle(_ panel: Panel, context: RenderContext) -> String {
        let state = context.state
        switch panel {
        case .layers:
            let count = state.visibleLayers.count
            let filter = state.filter.isEmpty ? "" : " · filter \"\(state.filter)\" \(count)/\(state.model.layers.count)"
            return "\(panel.rawValue) Layers · \(state.model.layers.count) layers · \(Text.count(state.model.totalMACs)) MACs\(filter)"
        case .detail:
            return "\(panel.rawValue) Detail" + (state.selected.map { " · \($0.name)" } ?? "")
        case .compression:
            return "\(panel.rawValue) Compression" + (state.filter.isEmpty ? "" : " · filter \"\(state.filter)\"")
        case .quantization: return "\(panel.rawValue) Quantization"
        case .compare: return "\(panel.rawValue) Compare · \(state.session.snapshots.count) snapshots"
        case .jobs: return "\(panel.rawValue) Jobs · \(state.runningJobs.count) running"
        case .export:
            let running = state.exportRecords.values.filter { record in
                record.outcome == .running && state.jobs.contains { $0.id == record.job && $0.phase == .running }
            }.count
            let written = state.exportRecords.values.filter { $0.outcome == .written }.count
            return "\(panel.rawValue) Export" + (written > 0 ? " · \(written) written" : "") + (running > 0 ? " · \(running) running" : "")
        }
    }

    static func drawTooSmall(_ buffer: inout ScreenBuffer, context: RenderContext) {
        let size = buffer.size
        let minimum = Layout.minimumSize
        let lines = [
            "terminal too small",
            "have \(size.width)x\(size.height), need \(minimum.width)x\(minimum.height)",
            "enlarge the window, or press q to quit",
        ]
        let top = max(0, (size.height - lines.count) / 2)
        for (i, line) in lines.enumerated() {
            let x = max(0, (size.width - line.count) / 2)
            buffer.write(line, x: x, y: top + i, style: i == 0 ? context.theme.style(.warn).with(.bold) : context.theme.base, maxWidth: size.width - x)
        }
    }

    static func drawTabBar(_ buffer: inout ScreenBuffer, layout: Layout, context: RenderContext) {
        let theme = context.theme, state = context.state
        let bar = layout.tabBar
        buffer.fill(bar, style: theme.base)
        let style = Layout.tabStyle(width: bar.width)
        let start = layout.tabStart
        if start >= 4 {
            let name = (style == .full && start >= 22 ? "whittle · " : "") + state.model.name
            buffer.write(Text.truncate(name, start - 2, glyphs: context.glyphs), x: 0, y: bar.y, style: theme.title, maxWidth: start - 1)
        }
        for (panel, columns) in layout.tabs {
            let focused = panel == state.focus
            let visible = layout.panels.contains { $0.panel == panel }
            let tabStyle = focused ? theme.selection.with(.bold) : visible ? theme.accent : theme.muted
            buffer.write(Layout.tabLabel(panel, style: style, focused: focused), x: columns.lowerBound, y: bar.y, style: tabStyle,
                         maxWidth: bar.width - columns.lowerBound)
        }
        // Running jobs at the right end: spinner and the first job's percentage.
        if let job = state.runningJobs.first {
            let percent = job.progress.map { " \(Int(($0.fraction * 100).rounded()))%" } ?? ""
            let more = state.runningJobs.count > 1 ? " +\(state.runningJobs.count - 1)" : ""
            let end = layout.tabs.last?.columns.upperBound ?? 0
            var text = "\(context.spinner()) \(job.kind.shortName)\(percent)\(more)"
            if bar.maxX - text.unicodeScalars.count - 1 <= end { text = "\(context.spinner())\(percent)\(more)" }
            let x = bar.maxX - text.unicodeScalars.count - 1
            if x > end { buffer.write(text, x: x, y: bar.y, style: theme.style(.warn), maxWidth: text.count + 1) }
        }
    }

    static func drawStatusBar(_ buffer: inout ScreenBuffer, layout: Layout, context: RenderContext) {
        let theme = context.theme, state = context.state
        let bar = layout.statusBar
        buffer.fill(bar, style: theme.base)
        if let status = state.status {
            let role: ThemeRole = status.level == .error ? .error : status.level == .warning ? .warn : .foreground
            buffer.write(" " + status.text, x: 0, y: bar.y, style: theme.style(role), maxWidth: bar.width)
            return
        }
        var spans: [Span] = []
        let hints: [WorkbenchCommand]
        switch state.focus {
        case .layers: hints = [.filter, .help, .palette, .takeSnapshot, .quit]
        case .detail: hints = [.toggleSensitivity, .moveDown, .help, .quit]
        case .compression: hints = [.increase, .edit, .autoSelect, .raiseTarget, .cycleTechnique, .help]
        case .quantization: hints = [.edit, .increase, .runQuantization, .evaluate, .help]
        case .compare: hints = [.takeSnapshot, .markSnapshot, .restoreSnapshot, .deleteSnapshot, .help]
        case .jobs: hints = [.cancelJob, .clearJobs, .help, .quit]
        case .export: hints = [.exportSelected, .nextEncodingsVersion, .editExportFolder, .exportAll, .help]
        }
        for command in hints {
            guard let binding = context.keys.active(in: state.focus).first(where: { $0.command == command }) else { continue }
            let keyText = binding.keys.prefix(2).map { $0.label(unicode: context.glyphs.unicode) }.joined(separator: "/")
            spans.append(Span(" " + keyText, theme.accent.with(.bold)))
            spans.append(Span(" " + shortHelp(command) + " ", theme.muted))
        }
        buffer.write(spans, x: 0, y: bar.y, maxWidth: bar.width)
    }

    static func shortHelp(_ command: WorkbenchCommand) -> String {
        switch command {
        case .filter: return "filter"
        case .help: return "help"
        case .palette: return "commands"
        case .takeSnapshot: return "snapshot"
        case .quit: return "quit"
        case .toggleSensitivity: return "curve"
        case .moveDown: return "next layer"
        case .increase: return "ratio"
        case .edit: return "edit"
        case .autoSelect: return "auto-select"
        case .raiseTarget: return "target"
        case .cycleTechnique: return "technique"
        case .runQuantization: return "quantize"
        case .evaluate: return "evaluate"
        case .markSnapshot: return "mark"
        case .restoreSnapshot: return "restore"
        case .deleteSnapshot: return "delete"
        case .cancelJob: return "cancel"
        case .clearJobs: return "clear"
        case .exportSelected: return "export"
        case .exportAll: return "all"
        case .nextEncodingsVersion: return "version"
        case .editExportFolder: return "folder"
        case .export(let kind): return kind.rawValue
        default: return command.help
        }
    }

    // MARK: Overlays

    static func drawOverlay(_ overlay: Overlay, buffer: inout ScreenBuffer, layout: Layout, context: RenderContext) {
        let theme = context.theme, state = context.state
        let screen = buffer.bounds
        switch overlay {
        case .help(let scroll):
            let bindings = context.keys.active(in: state.focus)
            var lines: [(String, String)] = bindings.map { binding in
                (binding.keys.map { $0.label(unicode: context.glyphs.unicode) }.joined(separator: " "), binding.command.help)
            }
            lines.append(("", ""))
            if state.options.mouse {
                lines.append(("mouse", "click: focus/select · wheel: scroll · drag: sliders"))
                lines.append(("", "hold Shift to select text in the terminal"))
            } else {
                lines.append(("mouse", "off (--no-mouse)"))
            }
            let rect = screen.centered(width: min(72, screen.width - 4), height: min(lines.count + 2, screen.height - 2))
            buffer.fill(rect, style: theme.base)
            buffer.box(rect, title: "Keys · \(state.focus.title) (Esc closes)", style: theme.borderFocused, titleStyle: theme.title, glyphs: context.glyphs)
            let inner = rect.inset(1)
            let first = min(scroll, max(0, lines.count - inner.height))
            for (row, line) in lines.dropFirst(first).prefix(inner.height).enumerated() {
                buffer.write(Text.left(line.0, 14), x: inner.x + 1, y: inner.y + row, style: theme.accent.with(.bold), maxWidth: 14)
                buffer.write(line.1, x: inner.x + 16, y: inner.y + row, style: theme.base, maxWidth: inner.width - 16)
            }
            if lines.count > inner.height {
                // The list is taller than the box: say which rows show and how to scroll.
                let last = min(lines.count, first + inner.height)
                let hint = " \(first + 1)-\(last) of \(lines.count) · ↑↓ j k PgUp PgDn scroll "
                let width = min(hint.count, rect.width - 4)
                buffer.write(hint, x: rect.maxX - 2 - width, y: rect.maxY - 1, style: theme.muted, maxWidth: width)
            }
        case .palette(let text, let selection):
            let suggestions = state.paletteSuggestions(for: text)
            let height = min(screen.height - 4, max(3, suggestions.count + 3))
            let rect = Rect(x: screen.x + (screen.width - min(70, screen.width - 4)) / 2, y: 2, width: min(70, screen.width - 4), height: height)
            buffer.fill(rect, style: theme.base)
            buffer.box(rect, title: "Command (Enter runs, Tab completes, Esc closes)", style: theme.borderFocused, titleStyle: theme.title, glyphs: context.glyphs)
            let inner = rect.inset(1)
            let cursor = context.glyphs.unicode ? "▏" : "_"
            buffer.write(": " + text + cursor, x: inner.x, y: inner.y, style: theme.title, maxWidth: inner.width)
            let visible = max(0, inner.height - 1)
            let first = max(0, selection - visible + 1)
            for (row, suggestion) in suggestions.dropFirst(first).prefix(visible).enumerated() {
                let y = inner.y + 1 + row
                let chosen = first + row == selection
                let style = chosen ? theme.selection : theme.base
                buffer.fill(Rect(x: inner.x, y: y, width: inner.width, height: 1), style: style)
                buffer.write(Text.left(suggestion.template, 26), x: inner.x + 1, y: y, style: chosen ? style.with(.bold) : theme.accent, maxWidth: 26)
                buffer.write(suggestion.help, x: inner.x + 28, y: y, style: chosen ? style : theme.muted, maxWidth: inner.width - 28)
            }
        case .filter:
            let rect = layout.statusBar
            buffer.fill(rect, style: theme.base)
            let cursor = context.glyphs.unicode ? "▏" : "_"
            buffer.write([Span(" filter: ", theme.accent.with(.bold)), Span(state.filter + cursor, theme.title),
                          Span("   Enter keeps · Esc clears · \(state.visibleLayers.count) match", theme.muted)],
                         x: rect.x, y: rect.y, maxWidth: rect.width)
        case .entry(let purpose, let text):
            let prompt: String
            switch purpose {
            case .ratio(let layer): prompt = "ratio for \(layer) (0.05-1)"
            case .bits(let layer): prompt = "bits for \(layer) as W/A (\(WorkbenchState.bitWidths.lowerBound)-\(WorkbenchState.bitWidths.upperBound))"
            case .recipe(let field): prompt = field.label
            case .snapshotName: prompt = "snapshot name"
            case .exportFolder: prompt = "export folder (empty: next to the model)"
            }
            let rect = screen.centered(width: min(56, screen.width - 4), height: 4)
            buffer.fill(rect, style: theme.base)
            buffer.box(rect, title: prompt, style: theme.borderFocused, titleStyle: theme.title, glyphs: context.glyphs)
            let cursor = context.glyphs.unicode ? "▏" : "_"
            buffer.write("> " + text + cursor, x: rect.x + 2, y: rect.y + 1, style: theme.title, maxWidth: rect.width - 4)
            buffer.write("Enter applies · Esc cancels", x: rect.x + 2, y: rect.y + 2, style: theme.muted, maxWidth: rect.width - 4)
        case .confirmQuit:
            let rect = screen.centered(width: min(54, screen.width - 4), height: 5)
            buffer.fill(rect, style: theme.base)
            buffer.box(rect, title: "Quit?", style: theme.style(.warn).with(.bold), titleStyle: theme.title, glyphs: context.glyphs)
            let running = state.runningJobs.count
            buffer.write("\(running) job\(running == 1 ? "" : "s") still running; quitting cancels \(running == 1 ? "it" : "them").",
                         x: rect.x + 2, y: rect.y + 1, style: theme.base, maxWidth: rect.width - 4)
            buffer.write([Span("y", theme.accent.with(.bold)), Span(" quit   ", theme.base), Span("n/Esc", theme.accent.with(.bold)), Span(" stay", theme.base)],
                         x: rect.x + 2, y: rect.y + 3, maxWidth: rect.width - 4)
        }
    }
}

extension JobKind {
    /// A short name for the tab bar.
    var shortName: String {
        switch self {
        case .autoSelect: return "auto-select"
        case .quantize: return "quantize"
        case .evaluate: return "evaluate"
        case .activationStatistics: return "activations"
        case .export(let kind): return "export \(kind.rawValue)"
        }
    }
}

extension WorkbenchState {
    /// Normalised score drop (0 = insensitive, 1 = the score falls to zero) at the lowest
    /// measured ratio of the layer's curve, when scores exist.
    public func compressionSensitivity(_ layer: String) -> Double? {
        var curve = session.scores.curve(technique: session.compression.technique(for: layer), layer: layer)
        if curve.isEmpty, let technique = session.scores.techniques.first(where: { !session.scores.curve(technique: $0, layer: layer).isEmpty }) {
            curve = session.scores.curve(technique: technique, layer: layer)
        }
        guard let lowest = curve.map(\.score).min() else { return nil }
        let baseline = session.scores.baseline ?? curve.map(\.score).max() ?? lowest
        guard abs(baseline) > 1e-12 else { return 0 }
        return min(1, max(0, (baseline - lowest) / abs(baseline)))
    }

    /// Quantization sensitivity from the layer's output SQNR: 40 dB and above → 0, 0 dB → 1.
    public func quantizationSensitivity(_ layer: String) -> Double? {
        guard let sqnr = quantizationResult?.layers[layer]?.sqnr else { return nil }
        return min(1, max(0, (40 - sqnr) / 40))
    }
}

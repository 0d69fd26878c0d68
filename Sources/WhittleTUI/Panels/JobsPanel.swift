import Foundation

extension Workbench {
    /// Panel 6: every job with a progress bar, ETA, and cancel.
    static func drawJobs(in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        let inner = rect.inset(1)
        guard !state.jobs.isEmpty else {
            let lines: [[Span]] = [
                [Span("no jobs yet", theme.title)],
                [Span("long computations run here in the background; the workbench stays responsive.", theme.muted)],
                [Span("start one with ", theme.muted), Span("3", theme.accent.with(.bold)), Span(" then ", theme.muted),
                 Span(context.key(.autoSelect, .compression), theme.accent.with(.bold)), Span(" (auto-select), ", theme.muted),
                 Span("4", theme.accent.with(.bold)), Span(" then ", theme.muted), Span(context.key(.runQuantization, .quantization), theme.accent.with(.bold)),
                 Span(" (quantize), ", theme.muted), Span(context.key(.evaluate, .layers), theme.accent.with(.bold)), Span(" (evaluate)", theme.muted)],
                [Span("exports run here too: ", theme.muted), Span("7", theme.accent.with(.bold)), Span(" (export panel) or ", theme.muted),
                 Span(":export", theme.accent.with(.bold)), Span(" in the palette.", theme.muted)],
            ]
            for (i, line) in lines.enumerated() { buffer.write(line, x: inner.x + 1, y: inner.y + i, maxWidth: inner.width - 1) }
            return
        }
        let barWidth = max(8, min(30, inner.width / 4))
        let titleWidth = max(10, inner.width - barWidth - 28)
        let columns = [TableColumn("", width: 1), TableColumn("job", width: titleWidth), TableColumn("progress", width: barWidth),
                       TableColumn("done", width: 11, rightAligned: true), TableColumn("ETA", width: 7, rightAligned: true)]
        buffer.tableHeader(columns, x: inner.x, y: inner.y, maxWidth: inner.width, style: theme.muted.with(.bold), glyphs: glyphs)
        let list = Layout.listArea(of: .jobs, in: rect)
        let top = state.scroll[.jobs] ?? 0
        for (offset, job) in state.jobs.enumerated().dropFirst(top).prefix(list.height) {
            let y = list.y + offset - top
            let isSelected = offset == state.jobSelection
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected { buffer.fill(Rect(x: list.x, y: y, width: list.width, height: 1), style: rowStyle) }
            let icon: Unicode.Scalar
            let iconRole: ThemeRole
            switch job.phase {
            case .running: icon = context.spinner(); iconRole = .warn
            case .finished: icon = glyphs.unicode ? "✔" : "+"; iconRole = .ok
            case .failed: icon = glyphs.unicode ? "✘" : "!"; iconRole = .error
            case .cancelled: icon = glyphs.unicode ? "⊘" : "x"; iconRole = .muted
            }
            buffer.set(list.x, y, icon, isSelected ? rowStyle : theme.style(iconRole))
            var title = job.title
            if job.cancelRequested && job.phase == .running { title += " (cancelling)" }
            if job.phase != .running, let message = job.message { title += " · " + message }
            else if let detail = job.progress?.detail { title += " · " + detail }
            else if let phase = job.progress?.phase { title += " · " + phase }
            buffer.write(Text.left(title, titleWidth, glyphs: glyphs), x: list.x + 2, y: y, style: job.phase == .failed && !isSelected ? theme.style(.error) : rowStyle, maxWidth: titleWidth)
            let barX = list.x + 2 + titleWidth + 1
            let fraction = job.phase == .finished ? 1 : job.progress?.fraction ?? 0
            buffer.bar(fraction, x: barX, y: y, width: barWidth, style: isSelected ? rowStyle : theme.style(job.phase == .failed ? .error : .accent),
                       trackStyle: isSelected ? rowStyle : theme.muted, glyphs: glyphs)
            if !glyphs.unicode || !isSelected {
                // A visible track for partially filled ASCII bars.
                for i in 0..<barWidth where buffer[min(buffer.size.width - 1, barX + i), y].character == " " && barX + i < buffer.size.width {
                    buffer.set(barX + i, y, glyphs.unicode ? "·" : ".", isSelected ? rowStyle : theme.muted)
                }
            }
            // A finished job has done all of its last phase, whatever its last report said
            // (an auto-select's one-step search phase reported 0/1 before it ended).
            let done = job.progress.map { progress in
                job.phase == .finished && progress.total > 0 ? "\(progress.total)/\(progress.total)" : "\(progress.completed)/\(progress.total)"
            } ?? (job.phase == .running ? "…" : "")
            let eta = job.phase == .running ? (job.secondsRemaining.map { Text.duration($0) } ?? "?") : ""
            buffer.tableRow([Span(done, rowStyle), Span(eta, rowStyle)], columns: Array(columns.suffix(2)), x: barX + barWidth + 1, y: y,
                            maxWidth: list.maxX - barX - barWidth - 1, glyphs: glyphs)
        }
        buffer.write([Span(context.key(.cancelJob, .jobs), theme.accent.with(.bold)), Span(" cancels the selected job · ", theme.muted),
                      Span(context.key(.clearJobs, .jobs), theme.accent.with(.bold)), Span(" clears finished ones", theme.muted)],
                     x: inner.x, y: inner.maxY - 1, maxWidth: inner.width)
    }
}

import Foundation
import WhittleQuant
import WhittleSession

extension Workbench {
    /// Panel 7: every export with its key, file, what it needs and how its last run ended;
    /// the output folder and the encodings version above, the selected export's full path
    /// and message below.
    static func drawExport(in rect: Rect, buffer: inout ScreenBuffer, context: RenderContext) {
        let state = context.state, theme = context.theme, glyphs = context.glyphs
        let inner = rect.inset(1)
        let key = { (command: WorkbenchCommand) in context.key(command, .export) }

        // Output folder and encodings version.
        let folderLabel = "output folder  "
        let folderHint = (state.session.exports.directory == nil ? "  (the model's; " : "  (") + "\(key(.editExportFolder)) changes)"
        let folderWidth = max(4, inner.width - 1 - folderLabel.count - folderHint.count)
        buffer.write([Span(folderLabel, theme.muted), Span(Text.truncateHead(state.exportDirectory, folderWidth, glyphs: glyphs), theme.title),
                      Span(folderHint, theme.muted)], x: inner.x + 1, y: inner.y, maxWidth: inner.width - 1)
        var versionLine = [Span("encodings version ", theme.muted)]
        for version in EncodingsVersion.allCases {
            let chosen = version == state.session.exports.encodingsVersion
            let text = chosen ? (glyphs.unicode ? "‹\(version.rawValue)›" : "<\(version.rawValue)>") : " \(version.rawValue) "
            versionLine.append(Span(" " + text, chosen ? theme.accent.with(.bold) : theme.muted))
        }
        versionLine.append(Span("  (\(key(.previousEncodingsVersion))/\(key(.nextEncodingsVersion)) changes)", theme.muted))
        buffer.write(versionLine, x: inner.x + 1, y: inner.y + 1, maxWidth: inner.width - 1)

        // The exports, two lines each: key, name, file and last run; then what it needs.
        let list = Layout.listArea(of: .export, in: rect)
        let statusWidth = 16
        let nameWidth = 12
        let fileWidth = max(8, list.width - 4 - nameWidth - 1 - statusWidth - 1)
        let columns = [TableColumn("", width: 3), TableColumn("export", width: nameWidth), TableColumn("file", width: fileWidth),
                       TableColumn("last run", width: statusWidth)]
        buffer.tableHeader(columns, x: list.x, y: list.y - 1, maxWidth: list.width, style: theme.muted.with(.bold), glyphs: glyphs)
        for (row, kind) in ExportKind.allCases.enumerated() {
            let y = list.y + row * Layout.exportRowHeight
            guard y < list.maxY else { break }
            let isSelected = row == state.exportSelection
            let rowStyle = isSelected ? theme.selection : theme.base
            if isSelected {
                buffer.fill(Rect(x: list.x, y: y, width: list.width, height: min(Layout.exportRowHeight, list.maxY - y)), style: rowStyle)
            }
            let requirement = state.exportRequirement(kind)
            let record = state.exportRecords[kind]
            var file = ((record?.path ?? state.exportPath(kind)) as NSString).lastPathComponent
            if kind == .encodings { file += " (v\(state.session.exports.encodingsVersion.rawValue))" }
            let (status, statusRole) = exportStatus(record, state: state, context: context)
            buffer.tableRow([
                Span(" " + key(.export(kind)), isSelected ? rowStyle.with(.bold) : theme.accent.with(.bold)),
                Span(kind.title, isSelected ? rowStyle.with(.bold) : requirement.ready ? theme.title : theme.muted),
                Span(file, isSelected ? rowStyle : requirement.ready ? theme.base : theme.muted),
                Span(status, isSelected ? rowStyle : theme.style(statusRole)),
            ], columns: columns, x: list.x, y: y, maxWidth: list.width, glyphs: glyphs)
            guard y + 1 < list.maxY else { continue }
            let mark = requirement.ready ? "" : (glyphs.unicode ? "✘ " : "! ")
            buffer.write(Text.truncate(mark + requirement.text, list.width - 4, glyphs: glyphs), x: list.x + 4, y: y + 1,
                         style: isSelected ? rowStyle : requirement.ready ? theme.muted : theme.style(.warn), maxWidth: list.width - 4)
        }

        // The selected export in full: where it goes (or went) and the last message.
        let hintY = inner.maxY - 1
        var y = list.maxY + 1
        let kind = ExportKind.allCases[min(max(0, state.exportSelection), ExportKind.allCases.count - 1)]
        let record = state.exportRecords[kind]
        var details: [[Span]] = [[Span("path ", theme.muted), Span(record?.path ?? state.exportPath(kind), theme.base)]]
        switch record?.outcome {
        case .none:
            details.append([Span("not exported in this session; ", theme.muted), Span(key(.export(kind)), theme.accent.with(.bold)),
                            Span(" or ", theme.muted), Span(key(.exportSelected), theme.accent.with(.bold)), Span(" writes it", theme.muted)])
        case .running:
            let job = state.jobs.first { $0.id == record?.job }
            let progress = job?.progress.map { "\($0.phase) \($0.completed)/\($0.total)" } ?? "starting"
            details.append([Span("running: ", theme.style(.warn)), Span(progress, theme.base),
                            Span(" (\(key(.cancelJob)) cancels)", theme.muted)])
        case .written:
            details.append([Span("written ", theme.style(.ok)), Span(record?.path ?? "", theme.base)])
        case .failed(let message):
            details.append([Span("failed: ", theme.style(.error)), Span(message, theme.base)])
        case .cancelled:
            details.append([Span("cancelled before it was written", theme.muted)])
        }
        let requirement = state.exportRequirement(kind)
        if !requirement.detail.isEmpty { details.append([Span(requirement.detail, theme.muted)]) }
        // Long paths and messages wrap onto the following lines.
        for line in details.flatMap({ Span.wrap($0, width: max(1, inner.width - 2)) }) where y < hintY {
            buffer.write(line, x: inner.x + 1, y: y, maxWidth: inner.width - 1)
            y += 1
        }
        buffer.write([Span(key(.exportSelected), theme.accent.with(.bold)), Span(" exports the selected · ", theme.muted),
                      Span(key(.exportAll), theme.accent.with(.bold)), Span(" every ready one · ", theme.muted),
                      Span(key(.cancelJob), theme.accent.with(.bold)), Span(" cancels", theme.muted)],
                     x: inner.x, y: hintY, maxWidth: inner.width)
    }

    /// The "last run" cell: glyph and word, and its colour.
    static func exportStatus(_ record: ExportRecord?, state: WorkbenchState, context: RenderContext) -> (String, ThemeRole) {
        let unicode = context.glyphs.unicode
        switch record?.outcome {
        case .none: return ("not yet", .muted)
        case .running:
            let job = state.jobs.first { $0.id == record?.job }
            let percent = job?.progress.map { " \(Int(($0.fraction * 100).rounded()))%" } ?? ""
            return ("\(context.spinner()) running\(percent)", .warn)
        case .written: return ((unicode ? "✔" : "+") + " written", .ok)
        case .failed: return ((unicode ? "✘" : "!") + " failed", .error)
        case .cancelled: return ((unicode ? "⊘" : "x") + " cancelled", .muted)
        }
    }
}

import Foundation
import Testing
import WhittleEngine
import WhittleQuant
import WhittleSession
@testable import WhittleTUI

@Suite("Export panel")
struct ExportPanelTests {
    /// The export request of the first effect, if it is one.
    static func export(_ effects: [WorkbenchEffect]) -> (id: Int, kind: ExportKind, path: String, session: Session)? {
        guard case .startJob(let id, .export(let kind, let path, let session)) = effects.first else { return nil }
        return (id, kind, path, session)
    }

    @Test func keysStartExportsAndTheLastRunIsRecorded() throws {
        var (state, effects) = press([.character("7")], on: try makeState())
        #expect(state.focus == .export && effects.isEmpty)
        (state, effects) = press([.character("n")], on: state)
        let encodings = try #require(ExportPanelTests.export(effects))
        #expect(encodings.kind == .encodings && encodings.path == "/models/resnet_tiny-encodings.json")
        #expect(state.exportSelection == 1)
        #expect(state.exportRecords[.encodings] == ExportRecord(job: encodings.id, path: encodings.path, outcome: .running))
        // The same export twice at once: refused, nothing started.
        (state, effects) = press([.character("n")], on: state)
        #expect(effects.isEmpty && state.status?.level == .warning)
        (state, _) = Workbench.update(state, .jobFinished(id: encodings.id, .exported(.encodings, path: encodings.path)))
        #expect(state.exportRecords[.encodings]?.outcome == .written)
        #expect(state.jobs.last?.phase == .finished)

        // Enter exports the selected row; a failure keeps its message for the panel.
        (state, effects) = press([.up, .enter], on: state)
        let onnx = try #require(ExportPanelTests.export(effects))
        #expect(onnx.kind == .onnx && onnx.path == "/models/resnet_tiny-whittled.onnx")
        (state, _) = Workbench.update(state, .jobFailed(id: onnx.id, message: "/models: no such folder"))
        #expect(state.exportRecords[.onnx]?.outcome == .failed("/models: no such folder"))
        #expect(state.exportRecords[.encodings]?.outcome == .written, "other records stay")

        // x cancels the selected row's running export.
        (state, effects) = press([.character("o")], on: state)
        let again = try #require(ExportPanelTests.export(effects))
        (state, effects) = press([.character("x")], on: state)
        #expect(effects == [.cancelJob(id: again.id)])
        (state, _) = Workbench.update(state, .jobCancelled(id: again.id))
        #expect(state.exportRecords[.onnx]?.outcome == .cancelled)
        (state, effects) = press([.character("x")], on: state)
        #expect(effects.isEmpty && state.status?.text == "no ONNX model export is running")

        // Kinds this build cannot run say why instead of starting.
        (state, effects) = press([.character("d")], on: state)
        #expect(effects.isEmpty)
        #expect(state.status?.text == "export qdq: needs the quantization library (not in this build)")
        var noData = try makeState(capabilities: [])
        noData.session.calibrationDataPath = nil
        noData.session.evaluationDataPath = nil
        #expect(noData.exportRequirement(.encodings) == ExportRequirement(ready: false, text: "needs calibration data (start with --data FILE.npz)"))
    }

    @Test func exportAllStartsEveryReadyKind() throws {
        let state = try makeState(capabilities: [.export(.onnx), .export(.report)])
        let (next, effects) = press([.character("7"), .character("a")], on: state)
        let kinds = effects.compactMap { effect -> ExportKind? in
            if case .startJob(_, .export(let kind, _, _)) = effect { return kind } else { return nil }
        }
        #expect(kinds == [.onnx, .report])
        #expect(next.status?.text == "started 2 exports: onnx, report")
        #expect(next.exportRecords.count == 2)
    }

    @Test func encodingsVersionIsASessionFieldTheExportCarries() throws {
        var (state, _) = press([.character("7"), .right], on: try makeState())
        #expect(state.session.exports.encodingsVersion == .v2_0_0)
        (state, _) = press([.character("l")], on: state)
        #expect(state.session.exports.encodingsVersion == .v0_6_1, "wraps after 2.0.0")
        (state, _) = press([.left, .character("v")], on: state)
        #expect(state.session.exports.encodingsVersion == .v0_6_1)
        #expect(state.status?.text == "encodings version 0.6.1")
        #expect(state.isDirty || state.profilePath == nil)
        #expect(state.sessionForSaving.exports.encodingsVersion == .v0_6_1)
        let (_, effects) = press([.character("n")], on: state)
        #expect(ExportPanelTests.export(effects)?.session.exports.encodingsVersion == .v0_6_1)
        // Saved with the profile.
        let (_, saved) = press([.character(":")] + type("save /tmp/p.json") + [.enter], on: state)
        guard case .writeFile(_, let data) = saved.first else { Issue.record("no profile written"); return }
        #expect(try SessionProfile.decode(data, file: "p.json").0.exports.encodingsVersion == .v0_6_1)
    }

    @Test func outputFolderIsEditedAndUsedByPanelAndPalette() throws {
        var (state, _) = press([.character("7"), .character("f")], on: try makeState(capabilities: [.export(.onnx), .export(.report)]))
        #expect(state.overlay == .entry(.exportFolder, text: "/models"))
        (state, _) = press(Array(repeating: .backspace, count: 7) + type("/tmp/out") + [.enter], on: state)
        #expect(state.session.exports.directory == "/tmp/out")
        #expect(state.exportDirectory == "/tmp/out" && state.status?.text == "exports go to /tmp/out")
        var effects: [WorkbenchEffect]
        (state, effects) = press([.character("r")], on: state)
        #expect(ExportPanelTests.export(effects)?.path == "/tmp/out/resnet_tiny-report.html")
        (_, effects) = press([.character(":")] + type("export onnx") + [.enter], on: state)
        #expect(ExportPanelTests.export(effects)?.path == "/tmp/out/resnet_tiny-whittled.onnx")
        (_, effects) = press([.character(":")] + type("export onnx /elsewhere/m.onnx") + [.enter], on: state)
        #expect(ExportPanelTests.export(effects)?.path == "/elsewhere/m.onnx", "an explicit path wins")
        // Empty, or the model's own folder unchanged, means next to the model.
        (state, _) = press([.character("f")] + Array(repeating: .backspace, count: 8) + [.enter], on: state)
        #expect(state.session.exports.directory == nil && state.exportDirectory == "/models")
        (state, _) = press([.character("f"), .enter], on: state)
        #expect(state.session.exports.directory == nil)
    }

    @Test func mouseSelectsRowsAndTheTabFocusesThePanel() throws {
        let state = try makeState(size: Size(width: 100, height: 30))
        let tab = try #require(Layout(state: state, size: state.size).tabs.first { $0.panel == .export })
        var (next, _) = Workbench.update(state, .mouse(MouseEvent(.press, x: tab.columns.lowerBound, y: 0)))
        #expect(next.focus == .export)
        let rect = try #require(Layout(state: next, size: next.size).rect(of: .export))
        let list = Layout.listArea(of: .export, in: rect)
        #expect(list.height == ExportKind.allCases.count * Layout.exportRowHeight)
        // Either line of an export selects it.
        (next, _) = Workbench.update(next, .mouse(MouseEvent(.press, x: list.x + 5, y: list.y + 2 * Layout.exportRowHeight + 1)))
        #expect(next.exportSelection == 2)
        (next, _) = Workbench.update(next, .mouse(MouseEvent(.wheelDown, x: list.x + 5, y: list.y)))
        #expect(next.exportSelection == 3)
    }

    @Test func filterFromTheExportPanelGoesToALayerPanel() throws {
        let (state, _) = press([.character("7"), .character("/")], on: try makeState())
        #expect(state.focus == .layers && state.overlay == .filter)
        // `:export` alone opens the panel.
        #expect(press([.character(":")] + type("export") + [.enter], on: try makeState()).0.focus == .export)
    }

    /// The jobs that start by themselves keep the launch's message (theme file problems).
    @Test func startKeepsTheLaunchMessage() throws {
        var state = try makeState(capabilities: [.activationStatistics])
        state.status = StatusMessage("themes/broken.theme:1: key 'bar_low': bad colour '#12'", .warning)
        let (started, effects) = Workbench.start(state)
        #expect(effects.count == 1 && started.jobs.count == 1)
        #expect(started.status == state.status)
    }

    /// The tab bar keeps every tab on screen down to the minimum width, and the job indicator
    /// where there is room for it.
    @Test func tabBarFitsAtEveryWidth() throws {
        for width in Layout.minimumSize.width...200 {
            var state = try richState(size: Size(width: width, height: 30))
            state.focus = .export
            let layout = Layout(state: state, size: state.size)
            let end = try #require(layout.tabs.last?.columns.upperBound)
            #expect(end <= width, "width \(width): tabs end at \(end)")
            let bar = Workbench.render(state, size: state.size, theme: .dark).text.split(separator: "\n").first.map(String.init) ?? ""
            if width >= Layout.narrowTabsBelow { #expect(bar.contains("35%"), "width \(width): no job indicator in '\(bar)'") }
            #expect(bar.contains("7 Export"), "width \(width)")
        }
    }
}

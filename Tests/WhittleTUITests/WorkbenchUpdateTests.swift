import Foundation
import Testing
import WhittleEngine
import WhittleSession
@testable import WhittleTUI

@Suite("Workbench update")
struct WorkbenchUpdateTests {
    @Test func digitsJumpAndTabCycles() throws {
        let state = try makeState()
        #expect(press([.character("3")], on: state).0.focus == .compression)
        #expect(press([.character("6")], on: state).0.focus == .jobs)
        var (next, _) = press([.tab, .tab], on: state)
        #expect(next.focus == .compression)
        (next, _) = press([.backTab, .backTab, .backTab], on: next)
        #expect(next.focus == .export, "Shift-Tab wraps from the first panel to the last")
        (next, _) = press([.tab], on: next)
        #expect(next.focus == .layers)
        #expect(press([.character("7")], on: state).0.focus == .export)
        #expect(press(Array(repeating: .tab, count: 6), on: state).0.focus == .export)
        // Focusing the compression panel moves the selection onto a compressible layer.
        (next, _) = press([.character("1"), .down], on: state)
        #expect(next.selected?.name == "stem_relu")
        (next, _) = press([.character("3")], on: next)
        #expect(next.selected?.compressible == true)
        #expect(next.selected?.name == "block_conv1")
    }

    @Test func navigationClampsAtBothEnds() throws {
        let state = try makeState()
        var (next, _) = press([.up, .up], on: state)
        #expect(next.selectedLayer == 0)
        (next, _) = press([.end], on: state)
        #expect(next.selectedLayer == state.model.layers.count - 1)
        (next, _) = press([.character("j"), .character("j"), .character("k")], on: state)
        #expect(next.selectedLayer == 1)
    }

    @Test func filterNarrowsLiveAndEscapeClears() throws {
        let state = try makeState()
        var (next, _) = press([.character("/")] + type("relu"), on: state)
        #expect(next.overlay == .filter)
        #expect(next.visibleLayers.map { next.model.layers[$0].name } == ["stem_relu", "block_relu"])
        #expect(next.selected?.name == "stem_relu")
        (next, _) = press([.enter], on: next)
        #expect(next.overlay == nil && next.filter == "relu")
        (next, _) = press([.down], on: next)
        #expect(next.selected?.name == "block_relu")
        (next, _) = press([.escape], on: next)
        #expect(next.filter.isEmpty)
        // Esc while typing clears too; the filter matches op types as well.
        (next, _) = press([.character("/")] + type("gemm"), on: state)
        #expect(next.visibleLayers.count == 1)
        (next, _) = press([.backspace, .backspace, .backspace, .backspace, .escape], on: next)
        #expect(next.filter.isEmpty && next.overlay == nil)
    }

    @Test func slidersStepClampAndUpdateTotals() throws {
        let state = try makeState()
        let before = state.approximateTotals
        var (next, _) = press([.character("3"), .left, .character("h")], on: state)
        let layer = try #require(next.selected)
        #expect(abs(next.session.compression.ratio(for: layer.name) - 0.9) < 1e-9)
        let after = next.approximateTotals
        #expect(after.macs == before.macs - Int((Double(layer.macs) * 0.1).rounded()))
        (next, _) = press(Array(repeating: .left, count: 30), on: next)
        #expect(abs(next.session.compression.ratio(for: layer.name) - Workbench.minimumRatio) < 1e-9)
        (next, _) = press(Array(repeating: .character("l"), count: 30), on: next)
        #expect(next.session.compression.ratios[layer.name] == nil, "ratio 1 is stored as unset")
    }

    @Test func numericEntrySetsRatioAndRejectsBadInput() throws {
        let state = try makeState()
        var (next, _) = press([.character("3"), .enter, .backspace, .backspace, .backspace, .backspace] + type("0.42") + [.enter], on: state)
        let layer = try #require(next.selected?.name)
        #expect(abs(next.session.compression.ratio(for: layer) - 0.4) < 1e-9, "snapped to the 0.05 grid")
        (next, _) = press([.enter] + type("x") + [.enter], on: next)
        #expect(next.status?.level == .error)
        #expect(abs(next.session.compression.ratio(for: layer) - 0.4) < 1e-9)
    }

    @Test func autoSelectStartsAJobOnlyWhenAvailable() throws {
        let state = try makeState()
        var (next, effects) = press([.character("3"), .character("+"), .character("a")], on: state)
        guard case .startJob(let id, .autoSelect(let target, _)) = effects.first else {
            Issue.record("expected an auto-select job, got \(effects)")
            return
        }
        #expect(abs(target - 0.55) < 1e-9)
        #expect(next.jobs.map(\.id) == [id])
        (next, effects) = press([.character("a")], on: next)
        #expect(effects.isEmpty, "a second auto-select while one runs is refused")
        let bare = try makeState(capabilities: [])
        (next, effects) = press([.character("3"), .character("a")], on: bare)
        #expect(effects.isEmpty && next.jobs.isEmpty)
        #expect(next.status?.level == .warning)
    }

    @Test func jobEventsUpdateProgressAndApplyResults() throws {
        var (state, effects) = press([.character("3"), .character("a")], on: try makeState())
        guard case .startJob(let id, _) = effects.first else { Issue.record("no job"); return }
        (state, _) = Workbench.update(state, .jobProgress(id: id, ProgressEvent(phase: "scoring", completed: 3, total: 10), secondsRemaining: 5))
        #expect(state.jobs[0].progress?.completed == 3 && state.jobs[0].secondsRemaining == 5)
        var scores = ScoreTables(metric: "accuracy", baseline: 0.9)
        scores.record(technique: .spatialSVD, layer: "stem", ratio: 0.5, score: 0.8)
        let outcome = CompressionOutcome(ratios: ["stem": 0.5, "head_conv": 1], metrics: SessionMetrics(macs: 1234, parameters: 99), scores: scores)
        (state, _) = Workbench.update(state, .jobFinished(id: id, .compression(outcome)))
        #expect(state.jobs[0].phase == .finished)
        #expect(state.session.compression.ratios == ["stem": 0.5])
        #expect(state.exactCompression?.macs == 1234)
        #expect(state.session.scores.score(technique: .spatialSVD, layer: "stem", ratio: 0.5) == 0.8)
        #expect(state.compressionSensitivity("stem") != nil)
        // Moving a slider afterwards makes the totals approximate again.
        (state, _) = press([.right], on: state)
        #expect(state.exactCompression == nil)
        (state, _) = Workbench.update(state, .jobFailed(id: 99, message: "x"))
        #expect(state.jobs.count == 1)
    }

    @Test func quitAsksWhileAJobRuns() throws {
        var (state, effects) = press([.character("q")], on: try makeState())
        #expect(effects == [.quit])
        (state, effects) = press([.character("e")], on: try makeState())
        guard case .startJob(let id, .evaluate) = effects.first else { Issue.record("no evaluate job"); return }
        (state, effects) = press([.character("q")], on: state)
        #expect(state.overlay == .confirmQuit && effects.isEmpty)
        let (stay, stayEffects) = press([.character("n")], on: state)
        #expect(stay.overlay == nil && stayEffects.isEmpty)
        (state, effects) = press([.character("y")], on: state)
        #expect(effects == [.cancelJob(id: id), .quit])
    }

    @Test func cancelFromJobsPanel() throws {
        var (state, effects) = press([.character("e"), .character("6"), .character("x")], on: try makeState())
        #expect(effects.count == 2)
        guard case .cancelJob(let id) = effects.last else { Issue.record("no cancel"); return }
        #expect(state.jobs[0].cancelRequested)
        (state, _) = Workbench.update(state, .jobCancelled(id: id))
        #expect(state.jobs[0].phase == .cancelled)
        (state, _) = press([.character("c")], on: state)
        #expect(state.jobs.isEmpty)
    }

    @Test func resizeAndRedraw() throws {
        var (state, effects) = Workbench.update(try makeState(), .resize(Size(width: 40, height: 10)))
        #expect(state.size == Size(width: 40, height: 10))
        let screen = Workbench.render(state, size: state.size, theme: .dark)
        #expect(screen.text.contains("terminal too small"))
        #expect(screen.text.contains("have 40x10, need \(Layout.minimumSize.width)x\(Layout.minimumSize.height)"))
        (state, effects) = press([.control("l")], on: state)
        #expect(effects == [.redraw])
    }

    @Test func paletteRunsCommands() throws {
        let state = try makeState()
        var (next, effects) = press([.character(":")] + type("theme light") + [.enter], on: state)
        #expect(next.themeName == "light" && effects.isEmpty)
        (next, effects) = press([.character(":")] + type("export onnx") + [.enter], on: state)
        #expect(effects.count == 1)
        if case .startJob(_, .export(.onnx, let path, _)) = effects.first {
            #expect(path == "/models/resnet_tiny-whittled.onnx")
        } else {
            Issue.record("expected an export job, got \(effects)")
        }
        (next, effects) = press([.character(":")] + type("save /tmp/whittle-profile.json") + [.enter], on: state)
        guard case .writeFile(let path, let data) = effects.first else { Issue.record("no write"); return }
        #expect(path == "/tmp/whittle-profile.json")
        let (decoded, _) = try SessionProfile.decode(data, file: path)
        #expect(decoded.ui.theme == "dark")
        #expect(next.profilePath == path)
        (next, effects) = press([.character(":")] + type("bogus") + [.enter], on: state)
        #expect(next.status?.level == .error)
        // Fuzzy suggestions, and Enter on an incomplete template fills it in.
        #expect(state.paletteSuggestions(for: "expqdq").map(\.template) == ["export qdq"])
        (next, _) = press([.character(":")] + type("targ") + [.enter], on: state)
        #expect(next.overlay == .palette(text: "target ", selection: 0))
        (next, _) = press(type("0.3") + [.enter], on: next)
        #expect(next.session.compression.targetMACRatio == 0.3)
        // A partial name runs the highlighted suggestion, which is the one starting with the
        // typed text (it used to run `theme li` and fail with "no theme 'li'").
        #expect(state.paletteSuggestions(for: "theme l").map(\.template) == ["theme light", "theme terminal"])
        (next, _) = press([.character(":")] + type("theme li") + [.enter], on: state)
        #expect(next.themeName == "light" && next.status?.level != .error)
        // A complete command still runs as typed, even where suggestions exist.
        (next, effects) = press([.character(":")] + type("q") + [.enter], on: state)
        #expect(effects == [.quit])
        (next, _) = press([.character(":")] + type("theme nosuch") + [.enter], on: state)
        #expect(next.themeName == "dark" && next.status?.level == .error)
    }

    @Test func snapshotsTakeMarkRestoreDelete() throws {
        var (state, _) = press([.character("3"), .left, .character("s"), .enter], on: try makeState())
        #expect(state.session.snapshots.map(\.name) == ["snapshot-1"])
        let ratio = state.session.compression.ratios
        (state, _) = press([.left, .left, .character("s")] + type("-b") + [.enter], on: state)
        #expect(state.session.snapshots.map(\.name) == ["snapshot-1", "snapshot-2-b"])
        (state, _) = press([.character("5"), .up, .enter], on: state)
        #expect(state.session.compression.ratios == ratio)
        (state, _) = press([.character("m")], on: state)
        #expect(state.snapshotMark == 0)
        (state, _) = press([.character("d")], on: state)
        #expect(state.session.snapshots.map(\.name) == ["snapshot-2-b"] && state.snapshotMark == nil)
    }

    @Test func quantizationRecipeEditing() throws {
        var (state, _) = press([.character("4"), .right], on: try makeState())
        #expect(state.session.recipe.config == "default-per-channel")
        (state, _) = press([.down, .right, .down, .left, .left], on: state)
        #expect(state.session.recipe.scheme == .percentile(99.99))
        #expect(state.session.recipe.weightBits == 6)
        (state, _) = press([.down, .down, .character(" ")], on: state)
        #expect(state.session.recipe.perChannel == true)
        // Past the recipe rows: per-layer overrides.
        (state, _) = press(Array(repeating: .down, count: 6) + [.left], on: state)
        let layer = try #require(state.selected?.name)
        #expect(state.session.bitWidthOverrides[layer]?.weightBits == 5)
        (state, _) = press([.enter] + Array(repeating: .backspace, count: 5) + type("4/6") + [.enter], on: state)
        #expect(state.session.bitWidths(for: layer) == (4, 6))
        (state, _) = press([.character("0")], on: state)
        #expect(state.session.bitWidthOverrides[layer] == nil)
        let (_, effects) = press([.character("r")], on: state)
        guard case .startJob(_, .quantize(let settings)) = effects.first else { Issue.record("no quantize job"); return }
        #expect(settings.recipe.perChannel == true)
    }

    /// The editor offers only the bit widths the quantizer accepts (it used to go down to 2,
    /// and quantizing then failed with "weight bits: must be in 4...16").
    @Test func bitWidthsStayInTheQuantizersRange() throws {
        var (state, _) = press([.character("4"), .down, .down] + Array(repeating: .left, count: 10), on: try makeState())
        #expect(state.session.recipe.weightBits == 4)
        (state, _) = press([.down] + Array(repeating: .right, count: 20), on: state)
        #expect(state.session.recipe.activationBits == 16)
        (state, _) = press([.up, .enter, .backspace, .backspace] + type("3") + [.enter], on: state)
        #expect(state.session.recipe.weightBits == 4 && state.status?.level == .error)
        // Per-layer overrides too.
        (state, _) = press(Array(repeating: .down, count: 9) + Array(repeating: .left, count: 10), on: state)
        let layer = try #require(state.selected?.name)
        #expect(state.session.bitWidths(for: layer).weight == 4)
        (state, _) = press([.enter] + Array(repeating: .backspace, count: 5) + type("2/8") + [.enter], on: state)
        #expect(state.status?.level == .error && state.session.bitWidths(for: layer).weight == 4)
    }

    /// Ratios land on the 0.05 grid exactly (a profile stores 0.95, not 0.9500000000000001).
    @Test func ratiosSnapToExactGridValues() {
        #expect(WorkbenchState.snap(0.93) == 0.95)
        #expect(WorkbenchState.snap(0.3) == 0.3 && WorkbenchState.snap(0.7) == 0.7 && WorkbenchState.snap(0.01) == 0.05)
        #expect((1...20).allSatisfy { WorkbenchState.snap(Double($0) / 20) == Double($0) / 20 })
    }

    /// The detail panel: at ratio 1 a layer keeps all of its rank (it is not compressed); the
    /// quantization panel: a recipe without its own per-channel choice shows the config's.
    @Test func detailKeptRankAndConfigPerChannel() throws {
        var state = try makeState(size: Size(width: 120, height: 40))
        state.structures[.spatialSVD] = ["stem": LayerStructure(channels: false, full: 3, perRatio: 2.5)]
        state.selectedLayer = try #require(state.model.index(of: "stem"))
        state.focus = .detail
        #expect(Workbench.render(state, size: state.size, theme: .dark).text.contains("kept rank 3/3"))
        state.session.compression.ratios["stem"] = 0.8
        #expect(Workbench.render(state, size: state.size, theme: .dark).text.contains("kept rank 2/3"))
        state.focus = .quantization
        state.primary = .quantization
        #expect(Workbench.render(state, size: state.size, theme: .dark).text.contains("per-channel weights        · off"))
        state.session.recipe.config = "htp-v73"
        #expect(Workbench.render(state, size: state.size, theme: .dark).text.contains("per-channel weights        ✔ config"))
    }

    /// The detail panel's encodings: an estimate labelled "(est.)" until a quantization result
    /// has the layer's encodings (also when a result exists without them), then the real
    /// weight grid (per-tensor scale and offset, or per-channel with the scale range) and the
    /// output activation grid.
    @Test func detailShowsRealEncodingsOnceQuantized() throws {
        var state = try makeState(size: Size(width: 120, height: 40))
        state.selectedLayer = try #require(state.model.index(of: "block_conv1"))
        state.focus = .detail
        func text() -> String { Workbench.render(state, size: state.size, theme: .dark).text }
        #expect(text().contains("(est.)") && text().contains("encodings W scale"))
        state.quantizationResult = SessionMetrics(sqnr: 20, layers: ["block_conv1": LayerMetrics(sqnr: 30)])
        #expect(text().contains("(est.)"), "a result without encodings still shows the estimate as one")
        state.quantizationResult?.layers["block_conv1"]?.weightEncoding = EncodingSummary(bitWidth: 8, symmetric: true, scale: 0.00312, offset: -128)
        state.quantizationResult?.layers["block_conv1"]?.activationEncoding = EncodingSummary(bitWidth: 16, symmetric: false, scale: 4.5e-5, offset: -1234)
        #expect(!text().contains("(est.)"))
        #expect(text().contains("encodings W 8b scale 0.00312 off -128"))
        #expect(text().contains("A 16b scale 4.5e-05 off -1234"))
        state.quantizationResult?.layers["block_conv1"]?.weightEncoding = EncodingSummary(bitWidth: 4, symmetric: true, channels: 8, scale: 0.01, maximumScale: 0.25)
        #expect(text().contains("encodings W 4b per-channel (8) sym") && text().contains("scales 0.01…0.25"))
    }

    /// The results of a quantize and an auto-select job are part of what a profile saves, and
    /// a workbench opened on the saved session shows them again (SQNR, exact totals).
    @Test func jobResultsAreSavedAndRestored() throws {
        var state = try makeState(size: Size(width: 120, height: 30))
        let quantized = SessionMetrics(sqnr: 24.5, layers: ["stem": LayerMetrics(sqnr: 31, weightEncoding: EncodingSummary(bitWidth: 8, symmetric: true, scale: 0.01, offset: -128))])
        (state, _) = Workbench.update(state, .jobFinished(id: 1, .quantization(quantized)))
        let exact = SessionMetrics(macs: 123_456, parameters: 1_234)
        (state, _) = Workbench.update(state, .jobFinished(id: 2, .compression(CompressionOutcome(ratios: ["block_conv1": 0.5], metrics: exact))))
        let saved = state.sessionForSaving
        #expect(saved.quantizationResult == quantized && saved.compressionResult == exact)
        let resumed = WorkbenchState(session: saved, model: state.model, size: state.size)
        #expect(resumed.quantizationResult == quantized && resumed.exactCompression == exact)
        #expect(resumed.session.compression.ratios == ["block_conv1": 0.5])
        // Moving a slider makes the totals approximate again, in the saved session too.
        var moved = resumed
        (moved, _) = press([.character("3"), .left], on: moved)
        #expect(moved.exactCompression == nil && moved.sessionForSaving.compressionResult == nil)
    }

    /// A layer its technique cannot compress (a depthwise Conv for SVD) shows the reason in
    /// panel 3 instead of a slider, and its ratio does not move.
    @Test func ineligibleLayerKeepsItsRatioAndSaysWhy() throws {
        var state = try makeState(size: Size(width: 120, height: 30))
        let technique = state.session.compression.technique(for: "block_conv2")
        state.ineligible[technique] = ["block_conv2": "depthwise convolution (group 8); only group-1 convolutions are compressed"]
        (state, _) = press([.character("3")], on: state)
        while state.selected?.name != "block_conv2" { (state, _) = press([.down], on: state) }
        (state, _) = press([.left, .left], on: state)
        #expect(state.session.compression.ratios["block_conv2"] == nil)
        #expect(state.status?.level == .warning && state.status?.text.contains("depthwise convolution") == true, "\(String(describing: state.status))")
        #expect(Workbench.render(state, size: state.size, theme: .dark).text.contains("not compressible: depthwise"))
        // Other layers still move.
        (state, _) = press([.up, .left], on: state)
        #expect(state.session.compression.ratios[try #require(state.selected?.name)] == 0.95)
    }

    /// A finished job shows its last phase complete (an auto-select's search phase reported
    /// 0/1 before the job ended); the help overlay says how to scroll when it is cut off.
    @Test func finishedJobCountAndHelpScrollHint() throws {
        var state = try makeState(size: Size(width: 100, height: 24))
        var job = JobEntry(id: 1, title: "auto-select ratios", kind: .autoSelect)
        job.progress = ProgressEvent(phase: "search", completed: 0, total: 1)
        job.phase = .finished
        state.jobs = [job]
        state.focus = .jobs
        state.primary = .jobs
        let jobs = Workbench.render(state, size: state.size, theme: .dark).text
        #expect(jobs.contains("1/1") && !jobs.contains("0/1"))
        state.focus = .layers
        state.primary = .layers
        (state, _) = press([.character("?")], on: state)
        let help = Workbench.render(state, size: state.size, theme: .dark).text
        #expect(help.contains("1-20 of ") && help.contains("scroll"), "\(help)")
        (state, _) = press([.down, .down], on: state)
        #expect(Workbench.render(state, size: state.size, theme: .dark).text.contains("3-22 of "))
        state.size = Size(width: 100, height: 60)
        #expect(!Workbench.render(state, size: state.size, theme: .dark).text.contains("PgUp PgDn scroll"), "all rows fit: no hint")
    }

    @Test func mouseFocusesSelectsAndDragsSliders() throws {
        let state = try makeState(size: Size(width: 100, height: 30))
        let layout = Layout(state: state, size: state.size)
        let tab = try #require(layout.tabs.first { $0.panel == .compression })
        var (next, _) = Workbench.update(state, .mouse(MouseEvent(.press, x: tab.columns.lowerBound + 1, y: 0)))
        #expect(next.focus == .compression)
        let rect = try #require(Layout(state: next, size: next.size).rect(of: .compression))
        let list = Layout.listArea(of: .compression, in: rect)
        let sliders = Layout.sliderColumns(in: list)
        (next, _) = Workbench.update(next, .mouse(MouseEvent(.press, x: sliders.lowerBound + sliders.count / 2, y: list.y + 1)))
        let layer = try #require(next.selected?.name)
        #expect(layer == next.model.layers[next.visibleCompressible[1]].name)
        #expect(next.dragging == layer)
        #expect(abs(next.session.compression.ratio(for: layer) - 0.5) < 0.051)
        (next, _) = Workbench.update(next, .mouse(MouseEvent(.drag, x: sliders.lowerBound, y: list.y + 1)))
        #expect(abs(next.session.compression.ratio(for: layer) - Workbench.minimumRatio) < 1e-9)
        (next, _) = Workbench.update(next, .mouse(MouseEvent(.release, x: sliders.lowerBound, y: list.y + 1)))
        #expect(next.dragging == nil)
        (next, _) = Workbench.update(next, .mouse(MouseEvent(.wheelDown, x: list.x + 2, y: list.y)))
        #expect(next.selected?.name != layer)
        var off = state
        off.options.mouse = false
        #expect(Workbench.update(off, .mouse(MouseEvent(.press, x: tab.columns.lowerBound + 1, y: 0))).0.focus == .layers)
    }

    @Test func helpOverlayListsTheLiveKeyTable() throws {
        for panel in Panel.allCases {
            var state = try makeState(size: Size(width: 120, height: 60))
            state.focus = panel
            state.overlay = .help(scroll: 0)
            let text = Workbench.render(state, size: state.size, theme: .dark).text
            for binding in KeyTable.standard.active(in: panel) {
                #expect(text.contains(binding.command.help), "\(panel): \(binding.command.help)")
            }
        }
        // A custom table changes dispatch and help together.
        let custom = KeyTable(bindings: [KeyBinding([.character("x")], .quit), KeyBinding([.character("h")], .help)])
        let state = try makeState()
        #expect(Workbench.update(state, .key(.character("x")), keys: custom).1 == [.quit])
        #expect(Workbench.update(state, .key(.character("q")), keys: custom).1.isEmpty)
    }

    @Test func updateIsPure() throws {
        let state = try richState(size: Size(width: 80, height: 24))
        for key: Key in [.character("3"), .left, .character("a"), .character("s"), .character(":"), .tab] {
            #expect(Workbench.update(state, .key(key)) == Workbench.update(state, .key(key)))
        }
    }

    @Test func streamedScoresFillTheTablesWhileAutoSelectRuns() throws {
        var (state, effects) = press([.character("3"), .character("a")], on: try makeState())
        guard case .startJob(let id, .autoSelect) = effects.first else { Issue.record("no auto-select job"); return }
        #expect(state.session.scores.isEmpty && state.compressionSensitivity("stem") == nil)
        let points = [ScorePoint(ratio: 0.25, score: 0.5), ScorePoint(ratio: 0.5, score: 0.8), ScorePoint(ratio: 0.75, score: 0.9)]
        state = Workbench.update(state, .jobScores(id: id, ScoreUpdate(metric: "accuracy", baseline: 1, technique: .spatialSVD,
                                                                     layer: "stem", points: points, layersDone: 1, layersTotal: 5))).0
        #expect(state.session.scores.curve(technique: .spatialSVD, layer: "stem") == points)
        #expect(state.session.scores.baseline == 1)
        #expect(state.compressionSensitivity("stem") == 0.5)
        #expect(state.compressionSensitivity("head_conv") == nil)
        #expect(state.jobs.first?.layersScored == 1 && state.jobs.first?.layersToScore == 5)
        #expect(state.jobs.first?.phase == .running)
        // The panel shows the running search with its layer count and ETA, and the new score.
        state = Workbench.update(state, .jobProgress(id: id, ProgressEvent(phase: "scoring spatial-svd", completed: 4, total: 15,
                                                                          detail: "layer 2 of 5: block_conv1 at 0.75"), secondsRemaining: 33)).0
        state.session.compression.ratios["stem"] = 0.5
        let text = Workbench.render(state, size: Size(width: 120, height: 30), theme: .dark).text
        #expect(text.contains("layer 2 of 5: block_conv1 at 0.75 (4/15) · ETA 33s"), "\(text)")
        #expect(text.contains(" 0.8│"), "the streamed score at the slider ratio")
        // A second layer adds to the tables; the final result keeps both.
        state = Workbench.update(state, .jobScores(id: id, ScoreUpdate(metric: "accuracy", baseline: 1, technique: .spatialSVD,
                                                                     layer: "head_conv", points: points, layersDone: 2, layersTotal: 5))).0
        #expect(state.session.scores.layers(technique: .spatialSVD) == ["head_conv", "stem"])
        var final = ScoreTables(metric: "accuracy", baseline: 1)
        final.record(technique: .spatialSVD, layer: "block_conv1", ratio: 0.5, score: 0.7)
        state = Workbench.update(state, .jobFinished(id: id, .compression(CompressionOutcome(ratios: ["stem": 0.5], metrics: SessionMetrics(macs: 1), scores: final)))).0
        #expect(state.session.scores.layers(technique: .spatialSVD) == ["block_conv1", "head_conv", "stem"])
    }

    @Test func cancelKeyInTheCompressionPanelStopsTheRunningAutoSelect() throws {
        var (state, effects) = press([.character("3"), .character("x")], on: try makeState())
        #expect(effects.isEmpty && state.status?.text == "no auto-select is running")
        (state, effects) = press([.character("a")], on: state)
        guard case .startJob(let id, _) = effects.first else { Issue.record("no job"); return }
        (state, effects) = press([.character("x")], on: state)
        #expect(effects == [.cancelJob(id: id)])
        #expect(state.jobs.first?.cancelRequested == true)
        let text = Workbench.render(state, size: Size(width: 120, height: 30), theme: .dark).text
        #expect(text.contains("x cancels"))
    }

    @Test func autosaveTimerWritesOnlyAChangedSessionWithAProfile() throws {
        var state = try makeState()
        // No profile path: nothing to autosave to.
        state.session.compression.ratios["stem"] = 0.5
        #expect(Workbench.update(state, .autosaveTimer).1.isEmpty)

        state = try makeState()
        state.profilePath = "/tmp/p.json"
        state.savedSession = state.session
        #expect(!state.isDirty)
        #expect(Workbench.update(state, .autosaveTimer).1.isEmpty, "unchanged")
        (state, _) = press([.character("3"), .left], on: state)
        #expect(state.isDirty)
        var effects: [WorkbenchEffect]
        (state, effects) = Workbench.update(state, .autosaveTimer)
        guard case .autosave(let profile, let saved) = effects.first, effects.count == 1 else { Issue.record("\(effects)"); return }
        #expect(profile == "/tmp/p.json")
        #expect(saved == state.sessionForSaving && saved.compression.ratios == state.session.compression.ratios)
        #expect(!state.isDirty)
        #expect(Workbench.update(state, .autosaveTimer).1.isEmpty, "already autosaved")
        // A failed write makes the session dirty again (the next timer retries) and says so.
        (state, _) = Workbench.update(state, .autosaved(path: "/tmp/p.autosave.json", error: "disk full"))
        #expect(state.isDirty && state.status?.level == .error)
        #expect(Workbench.update(state, .autosaveTimer).1.count == 1)
        // :save counts as a save.
        (state, effects) = press([.character(":")] + type("save") + [.enter], on: state)
        #expect(!state.isDirty && effects.count == 1)
    }
}

import Foundation
import WhittleEngine
import WhittleQuant
import WhittleSession

/// The workbench's pure functions: `update` (state, action → state, effects) and `render`.
public enum Workbench {
    /// Ratio slider step (left/right, h/l).
    public static let ratioStep = 0.05
    /// Smallest ratio a slider allows.
    public static let minimumRatio = 0.05
    /// Seconds between autosaves of a changed session.
    public static let autosaveInterval = 30.0

    /// Applies one action. Pure: the same state and action always give the same result;
    /// anything that touches the world is returned as an effect.
    public static func update(_ state: WorkbenchState, _ action: WorkbenchAction, keys: KeyTable = .standard) -> (WorkbenchState, [WorkbenchEffect]) {
        var next = state
        var effects: [WorkbenchEffect] = []
        switch action {
        case .key(let key):
            next.handle(key: key, keys: keys, effects: &effects)
        case .mouse(let event):
            if next.options.mouse { next.handle(mouse: event, effects: &effects) }
        case .resize(let size):
            next.size = size
            next.revealSelection()
        case .tick:
            next.tickCount &+= 1
        case .jobStarted:
            break
        case .jobProgress(let id, let event, let remaining):
            next.updateJob(id) {
                $0.progress = event
                $0.secondsRemaining = remaining
            }
        case .jobScores(let id, let update):
            next.updateJob(id) {
                $0.layersScored = update.layersDone
                $0.layersToScore = update.layersTotal
            }
            var scores = ScoreTables(metric: update.metric, baseline: update.baseline)
            for point in update.points {
                scores.record(technique: update.technique, layer: update.layer, ratio: point.ratio, score: point.score)
            }
            next.merge(scores)
        case .autosaveTimer:
            if let profile = next.profilePath, next.isDirty {
                effects.append(.autosave(profile: profile, session: next.sessionForSaving))
                next.savedSession = next.session
            }
        case .autosaved(let path, let error):
            if let error {
                next.savedSession = nil
                next.status = StatusMessage("autosave to \(path) failed: \(error)", .error)
            }
        case .jobFinished(let id, let result):
            next.updateJob(id) { $0.phase = .finished }
            next.apply(result, job: id)
        case .jobFailed(let id, let message):
            next.updateJob(id) {
                $0.phase = .failed
                $0.message = message
            }
            next.settleExport(job: id, .failed(message))
            let title = next.jobs.first { $0.id == id }?.title ?? "job"
            next.status = StatusMessage("\(title) failed: \(message)", .error)
        case .message(let message):
            next.status = message
        case .jobCancelled(let id):
            next.updateJob(id) {
                $0.phase = .cancelled
                $0.message = "cancelled"
            }
            next.settleExport(job: id, .cancelled)
            next.status = StatusMessage("\(next.jobs.first { $0.id == id }?.title ?? "job") cancelled")
        }
        return (next, effects)
    }
}

extension WorkbenchState {
    // MARK: Keys

    mutating func handle(key: Key, keys: KeyTable, effects: inout [WorkbenchEffect]) {
        if let overlay {
            handle(key: key, overlay: overlay, keys: keys, effects: &effects)
            return
        }
        if key != .escape { status = nil }
        guard let command = keys.command(for: key, in: focus) else {
            if case .character(let c) = key, c != " " {
                status = StatusMessage("'\(c)' does nothing here; press ? for the keys of this panel")
            }
            return
        }
        perform(command, effects: &effects)
    }

    mutating func handle(key: Key, overlay: Overlay, keys: KeyTable, effects: inout [WorkbenchEffect]) {
        switch overlay {
        case .help(let scroll):
            switch key {
            case .down, .character("j"): self.overlay = .help(scroll: scroll + 1)
            case .up, .character("k"): self.overlay = .help(scroll: max(0, scroll - 1))
            case .pageDown: self.overlay = .help(scroll: scroll + 10)
            case .pageUp: self.overlay = .help(scroll: max(0, scroll - 10))
            default: self.overlay = nil
            }
        case .confirmQuit:
            switch key {
            case .character("y"), .character("Y"), .character("q"), .enter:
                self.overlay = nil
                for job in runningJobs { effects.append(.cancelJob(id: job.id)) }
                effects.append(.quit)
            default:
                self.overlay = nil
                status = StatusMessage("quit cancelled")
            }
        case .filter:
            switch key {
            case .enter:
                self.overlay = nil
            case .escape:
                filter = ""
                self.overlay = nil
            case .backspace:
                if !filter.isEmpty { filter.removeLast() }
            case .character(let c):
                filter.append(c)
            case .up, .down:
                self.overlay = nil
                handle(key: key, keys: keys, effects: &effects)
                return
            default:
                break
            }
            keepSelectionVisible()
        case .entry(let purpose, let text):
            switch key {
            case .escape: self.overlay = nil
            case .backspace: self.overlay = .entry(purpose, text: String(text.dropLast()))
            case .character(let c): self.overlay = .entry(purpose, text: text + String(c))
            case .enter:
                self.overlay = nil
                commit(entry: purpose, text: text.trimmingCharacters(in: .whitespaces))
            default: break
            }
        case .palette(let text, let selection):
            let suggestions = paletteSuggestions(for: text)
            switch key {
            case .escape: self.overlay = nil
            case .backspace: self.overlay = .palette(text: String(text.dropLast()), selection: 0)
            case .character(let c): self.overlay = .palette(text: text + String(c), selection: 0)
            case .down: self.overlay = .palette(text: text, selection: min(selection + 1, max(0, suggestions.count - 1)))
            case .up: self.overlay = .palette(text: text, selection: max(0, selection - 1))
            case .tab:
                if suggestions.indices.contains(selection) {
                    self.overlay = .palette(text: suggestions[selection].template + " ", selection: 0)
                }
            case .enter:
                self.overlay = nil
                let typed = text.trimmingCharacters(in: .whitespaces)
                // What was typed runs when it is a complete command (or nothing else matches);
                // otherwise the highlighted suggestion does (`theme li` → `theme light`).
                let parsed = typed.isEmpty ? nil : PaletteCommand.parse(typed)
                if !typed.isEmpty, (parsed.map { paletteNamesExist($0) } ?? false) || suggestions.isEmpty {
                    run(palette: typed, effects: &effects)
                } else if suggestions.indices.contains(selection) {
                    let chosen = suggestions[selection]
                    if chosen.needsArgument && !typed.hasPrefix(chosen.template) {
                        self.overlay = .palette(text: chosen.template + " ", selection: 0)
                    } else {
                        run(palette: chosen.template, effects: &effects)
                    }
                }
            default: break
            }
        }
    }

    // MARK: Commands

    mutating func perform(_ command: WorkbenchCommand, effects: inout [WorkbenchEffect]) {
        switch command {
        case .quit:
            if runningJobs.isEmpty { effects.append(.quit) } else { overlay = .confirmQuit }
        case .help: overlay = .help(scroll: 0)
        case .filter:
            if !focus.listsLayers { focusPanel(primary.listsLayers ? primary : .layers) }
            overlay = .filter
        case .palette: overlay = .palette(text: "", selection: 0)
        case .back:
            if !filter.isEmpty {
                filter = ""
                keepSelectionVisible()
            } else if focus == .detail, size.width < Layout.wideWidth {
                focusPanel(primary)
            } else if snapshotMark != nil {
                snapshotMark = nil
            }
        case .redraw: effects.append(.redraw)
        case .focusNext: focusPanel(Panel(rawValue: focus.rawValue % Panel.allCases.count + 1) ?? .layers)
        case .focusPrevious: focusPanel(Panel(rawValue: (focus.rawValue + Panel.allCases.count - 2) % Panel.allCases.count + 1) ?? .layers)
        case .showPanel(let panel): focusPanel(panel)
        case .moveUp: move(by: -1)
        case .moveDown: move(by: 1)
        case .pageUp: move(by: -max(1, pageRows - 1))
        case .pageDown: move(by: max(1, pageRows - 1))
        case .top: move(by: Int.min / 2)
        case .bottom: move(by: Int.max / 2)
        case .decrease: adjust(by: -1)
        case .increase: adjust(by: 1)
        case .edit: edit()
        case .autoSelect:
            let target = session.compression.targetMACRatio ?? 0.5
            if session.compression.targetMACRatio == nil { session.compression.targetMACRatio = target }
            start(.autoSelect(target: target, settings: session.settings), effects: &effects)
        case .cycleTechnique:
            guard let layer = selectedCompressible else { return }
            let all = CompressionTechnique.builtIn
            let current = session.compression.technique(for: layer.name)
            let next = all[((all.firstIndex(of: current) ?? -1) + 1) % all.count]
            session.compression.techniques[layer.name] = next == session.compression.defaultTechnique ? nil : next
            exactCompression = nil
        case .resetLayer:
            guard let layer = selected else { return }
            if focus == .quantization {
                session.bitWidthOverrides[layer.name] = nil
            } else {
                session.compression.ratios[layer.name] = nil
                exactCompression = nil
            }
        case .raiseTarget, .lowerTarget:
            let current = session.compression.targetMACRatio ?? 0.5
            let step = command == .raiseTarget ? Workbench.ratioStep : -Workbench.ratioStep
            session.compression.targetMACRatio = WorkbenchState.snap(current + step)
        case .runQuantization: start(.quantize(settings: session.settings), effects: &effects)
        case .evaluate: start(.evaluate(settings: session.settings), effects: &effects)
        case .takeSnapshot:
            overlay = .entry(.snapshotName, text: nextSnapshotName)
        case .restoreSnapshot:
            guard session.snapshots.indices.contains(snapshotSelection) else { return }
            let name = session.snapshots[snapshotSelection].name
            session.restoreSnapshot(named: name)
            exactCompression = nil
            status = StatusMessage("restored snapshot '\(name)'")
        case .markSnapshot:
            guard session.snapshots.indices.contains(snapshotSelection) else { return }
            snapshotMark = snapshotMark == snapshotSelection ? nil : snapshotSelection
        case .deleteSnapshot:
            guard session.snapshots.indices.contains(snapshotSelection) else { return }
            let name = session.snapshots.remove(at: snapshotSelection).name
            snapshotMark = nil
            snapshotSelection = min(snapshotSelection, max(0, session.snapshots.count - 1))
            status = StatusMessage("deleted snapshot '\(name)'")
        case .cancelJob:
            if focus == .export {
                let kind = ExportKind.allCases[min(exportSelection, ExportKind.allCases.count - 1)]
                guard let record = exportRecords[kind], record.outcome == .running,
                      let index = jobs.firstIndex(where: { $0.id == record.job && $0.phase == .running }) else {
                    status = StatusMessage("no \(kind.title) export is running")
                    return
                }
                jobs[index].cancelRequested = true
                effects.append(.cancelJob(id: record.job))
                status = StatusMessage("cancelling \(jobs[index].title)")
                return
            }
            if focus == .compression || focus == .quantization {
                // The panel's own running job (auto-select, quantize).
                let kind: JobKind = focus == .compression ? .autoSelect : .quantize
                guard let index = jobs.lastIndex(where: { $0.kind == kind && $0.phase == .running }) else {
                    status = StatusMessage("no \(focus == .compression ? "auto-select" : "quantization") is running")
                    return
                }
                jobs[index].cancelRequested = true
                effects.append(.cancelJob(id: jobs[index].id))
                status = StatusMessage("cancelling \(jobs[index].title)")
                return
            }
            guard jobs.indices.contains(jobSelection) else { return }
            let job = jobs[jobSelection]
            guard job.phase == .running else {
                status = StatusMessage("\(job.title) is not running")
                return
            }
            jobs[jobSelection].cancelRequested = true
            effects.append(.cancelJob(id: job.id))
        case .clearJobs:
            jobs.removeAll { $0.phase != .running }
            jobSelection = min(jobSelection, max(0, jobs.count - 1))
        case .toggleSensitivity:
            detailShowsQuantization.toggle()
        case .export(let kind):
            if let row = ExportKind.allCases.firstIndex(of: kind) { exportSelection = row }
            startExport(kind, effects: &effects)
        case .exportSelected:
            startExport(ExportKind.allCases[min(exportSelection, ExportKind.allCases.count - 1)], effects: &effects)
        case .exportAll:
            let ready = ExportKind.allCases.filter { kind in
                exportRequirement(kind).ready && !(exportRecords[kind]?.outcome == .running
                    && jobs.contains { $0.id == exportRecords[kind]?.job && $0.phase == .running })
            }
            guard !ready.isEmpty else {
                status = StatusMessage("no export is ready to start (see the needs line of each)", .warning)
                return
            }
            for kind in ready { startExport(kind, effects: &effects) }
            status = StatusMessage("started \(ready.count) export\(ready.count == 1 ? "" : "s"): \(ready.map(\.rawValue).joined(separator: ", "))")
        case .nextEncodingsVersion: stepEncodingsVersion(by: 1)
        case .previousEncodingsVersion: stepEncodingsVersion(by: -1)
        case .editExportFolder:
            overlay = .entry(.exportFolder, text: exportDirectory)
        }
        revealSelection()
    }

    /// Starts a job when the services can run it, else says why not.
    mutating func start(_ request: JobRequest, effects: inout [WorkbenchEffect]) {
        guard capabilities.contains(request.kind) else {
            status = StatusMessage("\(request.title): not available in this build (no service wired for it)", .warning)
            return
        }
        if case .autoSelect = request, jobs.contains(where: { $0.phase == .running && $0.kind == .autoSelect }) {
            status = StatusMessage("auto-select is already running (panel 6 to follow or cancel it)", .warning)
            return
        }
        let id = nextJobID
        nextJobID += 1
        jobs.append(JobEntry(id: id, title: request.title, kind: request.kind))
        effects.append(.startJob(id: id, request))
        status = StatusMessage("started: \(request.title)")
    }

    mutating func focusPanel(_ panel: Panel) {
        focus = panel
        if panel != .detail { primary = panel }
        if panel == .compression || panel == .quantization, let first = visibleCompressible.first,
           !(model.layers.indices.contains(selectedLayer) && model.layers[selectedLayer].compressible) {
            selectedLayer = visibleCompressible.first { $0 > selectedLayer } ?? first
        }
        revealSelection()
    }

    var selectedCompressible: LayerSummary? {
        guard let layer = selected, layer.compressible else { return nil }
        return layer
    }

    var nextSnapshotName: String {
        var n = session.snapshots.count + 1
        while session.snapshots.contains(where: { $0.name == "snapshot-\(n)" }) { n += 1 }
        return "snapshot-\(n)"
    }

    /// Rows that fit in the focused panel's list.
    var pageRows: Int {
        let layout = Layout(state: self, size: size)
        guard let rect = layout.rect(of: focus == .detail ? .layers : focus) ?? layout.panels.first?.rect else { return 10 }
        return max(1, Layout.listArea(of: focus == .detail ? .layers : focus, in: rect).height)
    }

    // MARK: Navigation

    mutating func move(by delta: Int) {
        switch focus {
        case .layers, .detail, .compression:
            moveLayer(in: rows(of: focus), by: delta)
        case .quantization:
            let layerRows = visibleCompressible
            let count = QuantizationField.allCases.count + layerRows.count
            quantizationRow = WorkbenchState.clampedAdd(quantizationRow, delta, count)
            let layerIndex = quantizationRow - QuantizationField.allCases.count
            if layerRows.indices.contains(layerIndex) { selectedLayer = layerRows[layerIndex] }
        case .compare:
            snapshotSelection = WorkbenchState.clampedAdd(snapshotSelection, delta, session.snapshots.count)
        case .jobs:
            jobSelection = WorkbenchState.clampedAdd(jobSelection, delta, jobs.count)
        case .export:
            exportSelection = WorkbenchState.clampedAdd(exportSelection, delta, ExportKind.allCases.count)
        }
    }

    mutating func moveLayer(in rows: [Int], by delta: Int) {
        guard !rows.isEmpty else { return }
        let position = rows.firstIndex(of: selectedLayer) ?? rows.firstIndex { $0 > selectedLayer } ?? 0
        selectedLayer = rows[WorkbenchState.clampedAdd(position, delta, rows.count)]
    }

    static func clampedAdd(_ value: Int, _ delta: Int, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        let sum = delta > 0 ? (value > Int.max - delta ? Int.max : value + delta) : (value < Int.min - delta ? Int.min : value + delta)
        return min(count - 1, max(0, sum))
    }

    /// Keeps the selection inside the filtered rows.
    mutating func keepSelectionVisible() {
        let rows = rows(of: focus.listsLayers ? focus : .layers)
        if !rows.isEmpty, !rows.contains(selectedLayer) {
            selectedLayer = rows.first { $0 > selectedLayer } ?? rows[rows.count - 1]
        }
        revealSelection()
    }

    /// Scrolls every list so its selection is on screen.
    mutating func revealSelection() {
        let layout = Layout(state: self, size: size)
        for (panel, rect) in layout.panels {
            let area = Layout.listArea(of: panel, in: rect)
            guard area.height > 0 else { continue }
            let position: Int
            switch panel {
            case .layers, .compression: position = rows(of: panel).firstIndex(of: selectedLayer) ?? 0
            case .quantization: position = max(0, quantizationRow - QuantizationField.allCases.count)
            case .compare: position = snapshotSelection
            case .jobs: position = jobSelection
            case .detail, .export: continue
            }
            var top = scroll[panel] ?? 0
            if position < top { top = position }
            if position >= top + area.height { top = position - area.height + 1 }
            scroll[panel] = max(0, top)
        }
    }

    // MARK: Editing

    static func snap(_ ratio: Double) -> Double {
        // Divided by the step count, not multiplied by the step, so 0.95 is 0.95 and not
        // 0.9500000000000001 in a profile.
        let steps = (1 / Workbench.ratioStep).rounded()
        return min(1, max(Workbench.minimumRatio, (ratio * steps).rounded() / steps))
    }

    mutating func setRatio(_ ratio: Double, for layer: String) {
        let value = WorkbenchState.snap(ratio)
        if value < 1, let reason = compressionBlocker(for: layer) {
            // Refused here, not at evaluate or export time.
            let technique = session.compression.technique(for: layer).rawValue
            status = StatusMessage("\(layer): \(technique) cannot compress it (\(reason))", .warning)
            return
        }
        session.compression.ratios[layer] = value >= 1 ? nil : value
        exactCompression = nil
    }

    mutating func adjust(by direction: Int) {
        switch focus {
        case .compression:
            guard let layer = selectedCompressible else { return }
            setRatio(session.compression.ratio(for: layer.name) + Double(direction) * Workbench.ratioStep, for: layer.name)
        case .quantization:
            if let field = QuantizationField(rawValue: quantizationRow) {
                adjustRecipe(field, by: direction)
            } else if let layer = selected {
                let bits = session.bitWidths(for: layer.name)
                let weight = WorkbenchState.clampBits(bits.weight + direction)
                var override = session.bitWidthOverrides[layer.name] ?? BitWidthOverride()
                override.weightBits = weight == session.recipe.weightBits ? nil : weight
                session.bitWidthOverrides[layer.name] = override.isEmpty ? nil : override
            }
        default:
            break
        }
    }

    /// Bit widths the quantizer supports (the recipe rejects others), so the editor offers only these.
    static let bitWidths = QuantizationEncoding.supportedBitWidths

    static func clampBits(_ bits: Int) -> Int { min(bitWidths.upperBound, max(bitWidths.lowerBound, bits)) }

    /// Whether each built-in quantsim config preset quantizes weights per channel by default
    /// (what a recipe without its own per-channel choice gets).
    static let presetPerChannel: [String: Bool] = Dictionary(uniqueKeysWithValues: QuantsimConfig.presetNames.compactMap { name in
        (try? QuantsimConfig.preset(named: name)).map { (name, $0.defaults.perChannelQuantization ?? false) }
    })

    mutating func adjustRecipe(_ field: QuantizationField, by direction: Int) {
        var recipe = session.recipe
        switch field {
        case .config:
            let index = configPresets.firstIndex(of: recipe.config) ?? -1
            recipe.config = configPresets[(index + direction + configPresets.count) % configPresets.count]
        case .scheme:
            let all = CalibrationScheme.workbenchChoices
            let index = all.firstIndex(of: recipe.scheme) ?? 0
            recipe.scheme = all[(index + direction + all.count) % all.count]
        case .weightBits: recipe.weightBits = WorkbenchState.clampBits(recipe.weightBits + direction)
        case .activationBits: recipe.activationBits = WorkbenchState.clampBits(recipe.activationBits + direction)
        case .perChannel: recipe.perChannel = recipe.perChannel == true ? nil : true
        case .cle: recipe.crossLayerEqualization.toggle()
        case .biasCorrection: recipe.biasCorrection.toggle()
        case .adaRound: recipe.adaRound.toggle()
        case .sequentialMSE: recipe.sequentialMSE.toggle()
        case .automatic: session.autoQuant.toggle()
        }
        session.recipe = recipe
    }

    mutating func edit() {
        switch focus {
        case .compression:
            guard let layer = selectedCompressible else { return }
            overlay = .entry(.ratio(layer: layer.name), text: Text.number(session.compression.ratio(for: layer.name), digits: 2))
        case .quantization:
            if let field = QuantizationField(rawValue: quantizationRow) {
                switch field {
                case .config: overlay = .entry(.recipe(.config), text: session.recipe.config)
                case .scheme: overlay = .entry(.recipe(.scheme), text: session.recipe.scheme.profileText)
                case .weightBits: overlay = .entry(.recipe(.weightBits), text: String(session.recipe.weightBits))
                case .activationBits: overlay = .entry(.recipe(.activationBits), text: String(session.recipe.activationBits))
                default: adjustRecipe(field, by: 1)
                }
            } else if let layer = selected {
                let bits = session.bitWidths(for: layer.name)
                overlay = .entry(.bits(layer: layer.name), text: "\(bits.weight)/\(bits.activation)")
            }
        default:
            break
        }
    }

    mutating func commit(entry purpose: EntryPurpose, text: String) {
        switch purpose {
        case .ratio(let layer):
            guard let value = Double(text), value > 0, value <= 1 else {
                status = StatusMessage("ratio must be a number in (0, 1], got '\(text)'", .error)
                return
            }
            setRatio(value, for: layer)
        case .bits(let layer):
            let parts = text.split(separator: "/").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            let range = WorkbenchState.bitWidths
            guard (1...2).contains(parts.count), parts.allSatisfy({ $0.map { range.contains($0) } ?? false }) else {
                status = StatusMessage("bit widths are W or W/A, each \(range.lowerBound) to \(range.upperBound), got '\(text)'", .error)
                return
            }
            let weight = parts[0] ?? session.recipe.weightBits
            let activation = parts.count > 1 ? (parts[1] ?? session.recipe.activationBits) : session.bitWidths(for: layer).activation
            let override = BitWidthOverride(weightBits: weight == session.recipe.weightBits ? nil : weight,
                                            activationBits: activation == session.recipe.activationBits ? nil : activation)
            session.bitWidthOverrides[layer] = override.isEmpty ? nil : override
        case .recipe(let field):
            switch field {
            case .config:
                guard !text.isEmpty else { return }
                session.recipe.config = text
            case .scheme:
                guard let scheme = try? CalibrationScheme(parsing: text) else {
                    status = StatusMessage("unknown range scheme '\(text)' (minmax, sqnr, mse, percentile:P with P in 50...100)", .error)
                    return
                }
                session.recipe.scheme = scheme
            case .weightBits, .activationBits:
                guard let bits = Int(text), WorkbenchState.bitWidths.contains(bits) else {
                    status = StatusMessage("bit width must be \(WorkbenchState.bitWidths.lowerBound) to \(WorkbenchState.bitWidths.upperBound), got '\(text)'", .error)
                    return
                }
                if field == .weightBits { session.recipe.weightBits = bits } else { session.recipe.activationBits = bits }
            default:
                break
            }
        case .exportFolder:
            let folder = (text as NSString).expandingTildeInPath
            let modelFolder = (session.modelPath as NSString).deletingLastPathComponent
            if folder.isEmpty || (session.exports.directory == nil && folder == (modelFolder.isEmpty ? "." : modelFolder)) {
                session.exports.directory = nil
            } else {
                session.exports.directory = folder
            }
            status = StatusMessage("exports go to \(exportDirectory)")
        case .snapshotName:
            let name = text.isEmpty ? nextSnapshotName : text
            session.takeSnapshot(named: name, metrics: currentMetrics, at: now)
            snapshotSelection = session.snapshots.firstIndex { $0.name == name } ?? 0
            status = StatusMessage("snapshot '\(name)' taken (\(session.snapshots.count) in total; 5 to compare)")
        }
    }

    /// What a snapshot records now: evaluation, quantization result and totals.
    var currentMetrics: SessionMetrics {
        var metrics = evaluation ?? session.currentMetrics ?? SessionMetrics()
        let totals = approximateTotals
        metrics.macs = exactCompression?.macs ?? totals.macs
        metrics.parameters = exactCompression?.parameters ?? totals.parameters
        metrics.sizeBytes = approximateSizeBytes
        if let sqnr = quantizationResult?.sqnr { metrics.sqnr = sqnr }
        for layer in model.layers where layer.compressible || layer.weightName != nil {
            var entry = metrics.layers[layer.name] ?? LayerMetrics()
            entry.ratio = session.compression.ratio(for: layer.name)
            let bits = session.bitWidths(for: layer.name)
            entry.weightBits = bits.weight
            entry.activationBits = bits.activation
            entry.macs = Int((Double(layer.macs) * (layer.compressible ? entry.ratio ?? 1 : 1)).rounded())
            if let sqnr = quantizationResult?.layers[layer.name]?.sqnr { entry.sqnr = sqnr }
            metrics.layers[layer.name] = entry
        }
        return metrics
    }

    // MARK: Jobs

    mutating func updateJob(_ id: Int, _ change: (inout JobEntry) -> Void) {
        guard let index = jobs.firstIndex(where: { $0.id == id }) else { return }
        change(&jobs[index])
    }

    mutating func apply(_ result: JobResult, job id: Int) {
        let title = jobs.first { $0.id == id }?.title ?? "job"
        switch result {
        case .compression(let outcome):
            session.compression.ratios = outcome.ratios.filter { $0.value < 1 }
            exactCompression = outcome.metrics
            if let scores = outcome.scores { merge(scores) }
            let macs = outcome.metrics.macs.map { Text.count($0) } ?? "?"
            updateJob(id) { $0.message = "\(outcome.ratios.count) layers compressed, \(macs) MACs" }
            status = StatusMessage("\(title): done, \(outcome.ratios.count) layers compressed, \(macs) MACs")
        case .quantization(let metrics):
            quantizationResult = metrics
            let summary = WorkbenchState.describe(metrics)
            updateJob(id) { $0.message = summary }
            status = StatusMessage("\(title): \(summary)")
        case .evaluation(let metrics):
            evaluation = metrics
            session.currentMetrics = metrics
            if session.compression.ratios.isEmpty && baseline == nil { baseline = metrics }
            let summary = WorkbenchState.describe(metrics)
            updateJob(id) { $0.message = summary }
            status = StatusMessage("evaluation: \(summary)")
        case .exported(let kind, let path):
            updateJob(id) { $0.message = path }
            settleExport(job: id, .written, path: path)
            status = StatusMessage("wrote \(kind.rawValue): \(path)")
        case .activationStatistics(let histograms):
            activationHistograms = histograms
            updateJob(id) { $0.message = "\(histograms.count) layer outputs" }
        }
    }

    /// Folds measured scores into the session's tables: added to them when measured with the
    /// same metric (or the tables are empty), replacing them otherwise.
    mutating func merge(_ scores: ScoreTables) {
        guard session.scores.isEmpty || session.scores.metric == scores.metric else {
            session.scores = scores
            return
        }
        var merged = session.scores
        merged.metric = scores.metric
        merged.baseline = scores.baseline ?? merged.baseline
        for (technique, layers) in scores.tables {
            for (layer, points) in layers {
                for point in points {
                    merged.record(technique: CompressionTechnique(rawValue: technique), layer: layer, ratio: point.ratio, score: point.score)
                }
            }
        }
        session.scores = merged
    }

    static func describe(_ metrics: SessionMetrics) -> String {
        var parts: [String] = []
        if let accuracy = metrics.accuracy { parts.append(String(format: "top-1 %.2f%%", accuracy * 100)) }
        if let agreement = metrics.agreement { parts.append(String(format: "agreement %.2f%%", agreement * 100)) }
        if let sqnr = metrics.sqnr { parts.append(String(format: "SQNR %.1f dB", sqnr)) }
        if let macs = metrics.macs { parts.append("\(Text.count(macs)) MACs") }
        return parts.isEmpty ? "done" : parts.joined(separator: ", ")
    }

    // MARK: Mouse

    mutating func handle(mouse event: MouseEvent, effects: inout [WorkbenchEffect]) {
        if overlay != nil {
            if event.kind == .press, case .help = overlay { overlay = nil }
            return
        }
        let layout = Layout(state: self, size: size)
        guard !layout.tooSmall else { return }
        switch event.kind {
        case .release:
            dragging = nil
        case .drag:
            guard let layer = dragging, let rect = layout.rect(of: .compression) else { return }
            let columns = Layout.sliderColumns(in: Layout.listArea(of: .compression, in: rect))
            setRatio(Slider.value(atColumn: event.x - columns.lowerBound, width: columns.count, in: 0...1, step: Workbench.ratioStep), for: layer)
        case .wheelUp, .wheelDown:
            if let panel = layout.panel(atX: event.x, y: event.y), panel != focus { focusPanel(panel) }
            move(by: event.kind == .wheelUp ? -3 : 3)
            revealSelection()
        case .press:
            if layout.tabBar.contains(x: event.x, y: event.y) {
                if let tab = layout.tabs.first(where: { $0.columns.contains(event.x) }) { focusPanel(tab.panel) }
                return
            }
            if layout.statusBar.contains(x: event.x, y: event.y) {
                overlay = .help(scroll: 0)
                return
            }
            guard let (panel, rect) = layout.panels.first(where: { $0.rect.contains(x: event.x, y: event.y) }) else { return }
            if panel != focus { focusPanel(panel) }
            let list = Layout.listArea(of: panel, in: rect)
            guard list.contains(x: event.x, y: event.y) else { return }
            let row = event.y - list.y + (scroll[panel] ?? 0)
            switch panel {
            case .layers, .compression:
                let rows = rows(of: panel)
                guard rows.indices.contains(row) else { return }
                selectedLayer = rows[row]
                if panel == .compression, model.layers[selectedLayer].compressible {
                    let columns = Layout.sliderColumns(in: list)
                    if columns.contains(event.x) {
                        let name = model.layers[selectedLayer].name
                        dragging = name
                        setRatio(Slider.value(atColumn: event.x - columns.lowerBound, width: columns.count, in: 0...1, step: Workbench.ratioStep), for: name)
                    }
                }
            case .quantization:
                let rows = visibleCompressible
                guard rows.indices.contains(row) else { return }
                selectedLayer = rows[row]
                quantizationRow = QuantizationField.allCases.count + row
            case .compare:
                if session.snapshots.indices.contains(row) { snapshotSelection = row }
            case .jobs:
                if jobs.indices.contains(row) { jobSelection = row }
            case .export:
                let item = row / Layout.exportRowHeight
                if ExportKind.allCases.indices.contains(item) { exportSelection = item }
            case .detail:
                break
            }
        }
    }
}

extension Workbench {
    /// Jobs the workbench starts by itself when it opens: activation statistics when
    /// calibration data and a service for it exist.
    public static func start(_ state: WorkbenchState) -> (WorkbenchState, [WorkbenchEffect]) {
        var next = state
        var effects: [WorkbenchEffect] = []
        if next.capabilities.contains(.activationStatistics), next.session.calibrationDataPath != nil, next.activationHistograms.isEmpty {
            next.start(.activationStatistics, effects: &effects)
            // Keep what the launch had to say (theme file problems, a recovered autosave).
            next.status = state.status
        }
        return (next, effects)
    }
}

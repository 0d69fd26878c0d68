import ArgumentParser
import Foundation
import WhittleCompress
import WhittleIO
import WhittleQuant
import WhittleSession
import WhittleTerminal
import WhittleWorkbench
import WhittleTUI

/// `whittle tui`: the interactive workbench.
struct TUI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tui",
        abstract: "Open the workbench: layer graph, sensitivity, compression sliders, quantization recipe, snapshots, jobs, exports.",
        discussion: """
            With no MODEL and no --profile, opens the bundled sample (digits-cnn with its calibration and test data).
            Keys: ? help, 1-7 panels (7: exports), Tab focus, / filter, : commands, q quit. Themes: Themes/*.theme and \
            $XDG_CONFIG_HOME/whittle/themes. NO_COLOR is honoured. With --profile, a changed session is autosaved to NAME.autosave.json every \
            30 s (WHITTLE_AUTOSAVE_SECONDS overrides) and on quit. Set WHITTLE_FRAME_LOG=FILE (or WHITTLE_TUI_TIMING) to \
            log per-frame timings; --frame-stats prints input-to-frame latencies on exit. While jobs run, their threads get a \
            lower scheduling priority than the terminal thread (WHITTLE_TUI_RENICE=0 turns this off).
            """)

    @Argument(help: "ONNX model to open (default: the bundled sample, or the profile's model).")
    var model: String?

    @Option(name: .long, help: "Calibration data (.npz): activation ranges, and evaluation when --eval-data is not given.")
    var data: String?

    @Option(name: .customLong("eval-data"), help: "Evaluation data (.npz with labels y) for scores and snapshots.")
    var evalData: String?

    @Option(name: .long, help: "Session profile (JSON) to resume; written back on quit and with :save.")
    var profile: String?

    @Option(name: .long, help: "Theme name (dark, light, high-contrast, colorblind, terminal, mono, or a user theme).")
    var theme: String?

    @Flag(name: .customLong("no-mouse"), help: "Leave the mouse to the terminal (text selection).")
    var noMouse = false

    @Flag(name: .customLong("no-color"), help: "No colours (also when NO_COLOR is set).")
    var noColor = false

    @Flag(name: .customLong("no-unicode"), help: "ASCII borders, bars and charts.")
    var noUnicode = false

    @Option(name: .long, help: "Folder holding the bundled sample models.")
    var samples: String?

    @Option(name: .customLong("eval-samples"), help: "Samples the auto-select search scores each candidate on.")
    var evalSamples = WorkbenchWiring.defaultSearchSamples

    @Option(name: .customLong("cache-dir"), help: "Score cache directory for auto-select (default: $XDG_CACHE_HOME/whittle/scores or ~/.cache/whittle/scores).")
    var cacheDir: String?

    @Flag(name: .customLong("no-cache"), help: "Neither read nor write the auto-select score cache.")
    var noCache = false

    @Flag(name: .customLong("frame-stats"), help: "On exit, print startup time and keypress-to-frame latency (median, p95, max) to standard error.")
    var frameStats = false

    func run() throws {
        try reportingErrors {
            guard evalSamples >= 1 else {
                throw WhittleError(.invalidArgument, "--eval-samples", "must be at least 1, got \(evalSamples)")
            }
            guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
                throw WhittleError(.invalidArgument, "tui", "needs a terminal (standard input and output must be a tty)")
            }
            let launch = try WorkbenchLaunch.prepare(
                model: model, data: data, evalData: evalData, profile: profile, theme: theme, samples: samples,
                options: DisplayOptions(unicode: !noUnicode, mouse: !noMouse), searchSamples: evalSamples,
                cache: noCache ? nil : ScoreCache(directory: cacheDir.map { URL(fileURLWithPath: $0) } ?? ScoreCache.defaultDirectory()))
            let environment = ProcessInfo.processInfo.environment
            var options = TerminalOptions(noColor: noColor, noUnicode: noUnicode, noMouse: noMouse,
                                          timingLog: environment["WHITTLE_FRAME_LOG"] ?? environment["WHITTLE_TUI_TIMING"],
                                          processStart: StartupClock.start, frameStatistics: frameStats,
                                          lowerBackgroundPriority: environment["WHITTLE_TUI_RENICE"] != "0")
            if let text = environment["WHITTLE_AUTOSAVE_SECONDS"] {
                guard let seconds = Double(text), seconds > 0 else {
                    throw WhittleError(.invalidArgument, "WHITTLE_AUTOSAVE_SECONDS", "must be a positive number of seconds, got '\(text)'")
                }
                options.autosaveSeconds = seconds
            }
            let (final, statistics) = WorkbenchTerminal.runMeasured(launch.state, services: launch.services, themes: launch.themes, options: options)
            if frameStats { FileHandle.standardError.write(Data((statistics.report + "\n").utf8)) }
            if let profile {
                try SessionProfile.save(final.sessionForSaving, to: URL(fileURLWithPath: profile))
                SessionProfile.discardAutosave(for: URL(fileURLWithPath: profile))
            }
        }
    }
}

/// Everything the workbench needs, loaded before the terminal is taken over (so load errors
/// print as ordinary one-line errors).
struct WorkbenchLaunch {
    var state: WorkbenchState
    var services: WorkbenchServices
    var themes: ThemeCatalog

    static func prepare(model: String?, data: String?, evalData: String?, profile: String?, theme: String?, samples: String?,
                        options: DisplayOptions, searchSamples: Int = WorkbenchWiring.defaultSearchSamples,
                        cache: ScoreCache? = nil) throws -> WorkbenchLaunch {
        var session: Session
        var notes: [String] = []
        if let profile, FileManager.default.fileExists(atPath: profile) || FileManager.default.fileExists(atPath: SessionProfile.autosaveURL(for: URL(fileURLWithPath: profile)).path) {
            let loaded = try SessionProfile.load(from: URL(fileURLWithPath: profile))
            session = loaded.session
            notes += loaded.warnings
            if loaded.recoveredFromAutosave { notes.append("recovered unsaved changes from \(loaded.source.lastPathComponent)") }
            if let model { session.modelPath = model }
        } else if let model {
            session = Session(modelPath: model)
        } else {
            let folder = try SampleModels.locate(explicit: samples)
            session = Session(modelPath: folder.appendingPathComponent("digits-cnn.onnx").path,
                              calibrationDataPath: folder.appendingPathComponent("digits-calib.npz").path,
                              evaluationDataPath: folder.appendingPathComponent("digits-test.npz").path)
        }
        if let data { session.calibrationDataPath = data }
        if let evalData { session.evaluationDataPath = evalData }
        if session.evaluationDataPath == nil, let calibration = session.calibrationDataPath { session.evaluationDataPath = calibration }

        let graph = try loadModel(session.modelPath)
        let summary = try ModelSummary(graph: graph, path: session.modelPath)
        let calibration = try session.calibrationDataPath.map { try loadDataset($0, for: graph) }
        let evaluation = try session.evaluationDataPath.map { path in
            path == session.calibrationDataPath ? calibration : try loadDataset(path, for: graph)
        } ?? nil

        let bundled = try? SampleModels.locate(explicit: samples).deletingLastPathComponent().appendingPathComponent("Themes")
        var themes = ThemeCatalog.load(directories: ThemeCatalog.standardDirectories(bundled: bundled, environment: ProcessInfo.processInfo.environment))
        var themeName = theme ?? session.ui.theme ?? "dark"
        if themes.theme(named: themeName) == nil {
            // A theme file that failed to load says why; a profile's theme that is gone falls
            // back to dark instead of refusing the profile.
            let reason = themes.problems.first { $0.contains("/\(themeName.lowercased()).theme") }
                .map { "could not be loaded: \($0)" } ?? "no such theme (have: \(themes.names.joined(separator: ", ")))"
            guard theme == nil else { throw WhittleError(.invalidArgument, "--theme '\(themeName)'", reason) }
            notes.append("profile theme '\(themeName)': \(reason); using dark")
            themeName = "dark"
        }
        notes += themes.problems
        if themes.theme(named: "dark") == nil { themes = ThemeCatalog() }

        let services = WorkbenchWiring.services(graph: graph, model: summary, evaluation: evaluation, calibration: calibration,
                                                searchSamples: searchSamples, cache: cache)
        var state = WorkbenchState(session: session, model: summary, themeName: themeName.lowercased(), themeNames: themes.names,
                                   options: options, capabilities: services.capabilities,
                                   configPresets: ["default", "default-per-channel", "htp-v68", "htp-v69", "htp-v73", "htp-v75"],
                                   profilePath: profile)
        state.structures = WorkbenchWiring.structures(of: graph)
        state.ineligible = WorkbenchWiring.ineligibility(of: graph)
        if let first = notes.first {
            state.status = StatusMessage(first + (notes.count > 1 ? " (+\(notes.count - 1) more)" : ""), .warning)
        }
        return WorkbenchLaunch(state: state, services: services, themes: themes)
    }
}

/// When the process started, for the startup-to-first-frame figure.
enum StartupClock {
    nonisolated(unsafe) static var start: ContinuousClock.Instant?
}

import ArgumentParser
import Foundation
import WhittleIO
import WhittleSession

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report (model summary, sensitivity curves, chosen ratios, ranges, quantization results, snapshots) for a session profile.")

    @Option(name: .long, help: "The session profile (.json) saved by the workbench.")
    var profile: String

    @Option(name: .long, help: "The HTML file to write.")
    var out: String

    @Option(name: .long, help: "Calibration samples run to histogram each layer's outputs (0 skips activation ranges).")
    var samples = 64

    @Option(name: .long, help: "Report title (default: the model's file name).")
    var title: String?

    @Flag(name: .long, help: "Use the profile's autosave when it is newer than the profile.")
    var useAutosave = false

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard samples >= 0 else { throw WhittleError(.invalidArgument, "--samples", "must be 0 or more, got \(samples)") }
            let profileURL = URL(fileURLWithPath: profile)
            let loaded = try SessionProfile.load(from: profileURL, useNewerAutosave: useAutosave)
            for warning in loaded.warnings { printError("warning: \(warning)") }
            if !useAutosave, case .newer = SessionProfile.autosaveStatus(for: profileURL) {
                printError("note: \(SessionProfile.autosaveURL(for: profileURL).lastPathComponent) is newer than the profile; --use-autosave reports on it")
            }
            let session = loaded.session
            let graph: Graph
            do {
                graph = try loadModel(session.modelPath)
            } catch let error as WhittleError {
                throw error.within(loaded.source.path)
            }
            var data: Dataset?
            if samples > 0, let path = session.calibrationDataPath ?? session.evaluationDataPath {
                do {
                    data = try loadDataset(path, for: graph)
                } catch let error as WhittleError {
                    throw error.within(loaded.source.path)
                }
            }
            let input = try ReportData.collect(session: session, graph: graph, data: data, samples: samples, title: title)
            let url = URL(fileURLWithPath: out)
            try ReportWriter.write(input, to: url)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            if engine.json {
                struct Summary: Codable {
                    var report: String
                    var bytes: Int
                    var layers: Int
                    var histograms: Int
                    var snapshots: Int
                }
                try printJSON(Summary(report: out, bytes: size, layers: input.cost?.layers.count ?? 0,
                                      histograms: input.histograms.count, snapshots: session.snapshots.count))
                return
            }
            print("wrote \(out) (\(formatBytes(size)); \(input.cost?.layers.count ?? 0) layers, \(input.histograms.count) histograms, \(session.snapshots.count) snapshots)")
        }
    }
}

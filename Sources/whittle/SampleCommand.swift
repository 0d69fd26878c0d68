import ArgumentParser
import Foundation
import WhittleIO

/// `whittle` with no arguments: the workbench on the bundled sample model when standard input
/// and output are a terminal; otherwise the sample summarised and evaluated.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open the workbench on the bundled sample model (digits-cnn); without a terminal, show and evaluate it on its test data.")

    @Option(name: .long, help: "Folder holding the bundled sample models (default: found next to the executable or in the working directory).")
    var samples: String?

    @Flag(name: .long, help: "Print the summary and evaluation even in a terminal.")
    var summary = false

    func run() throws {
        if !summary, isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 {
            try TUI.parse(samples.map { ["--samples", $0] } ?? []).run()
            return
        }
        try reportingErrors {
            let folder = try SampleModels.locate(explicit: samples)
            let model = folder.appendingPathComponent("digits-cnn.onnx").path
            let data = folder.appendingPathComponent("digits-test.npz").path
            try Inspect.parse([model]).run()
            print("")
            let graph = try loadModel(model)
            let dataset = try loadDataset(data, for: graph)
            let result = try Evaluator(graph: graph, batchSize: 64).evaluate(inputs: dataset.inputs, labels: dataset.labels)
            print(String(format: "test set %@: %d samples, top-1 %.2f%%, %.0f samples/s", data, result.samples,
                         (result.top1Accuracy ?? 0) * 100, result.samplesPerSecond))
        }
    }
}

enum SampleModels {
    /// Finds the SampleModels folder: explicit path, `$WHITTLE_SAMPLES`, next to the
    /// executable (…/.build/release/whittle → repo root), or the working directory.
    static func locate(explicit: String?) throws -> URL {
        let fileManager = FileManager.default
        var candidates: [URL] = []
        if let explicit { candidates.append(URL(fileURLWithPath: explicit)) }
        if let environment = ProcessInfo.processInfo.environment["WHITTLE_SAMPLES"] { candidates.append(URL(fileURLWithPath: environment)) }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(directory.appendingPathComponent("SampleModels"))
            directory = directory.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: fileManager.currentDirectoryPath).appendingPathComponent("SampleModels"))
        for candidate in candidates where fileManager.fileExists(atPath: candidate.appendingPathComponent("digits-cnn.onnx").path) {
            return candidate
        }
        throw WhittleError(.io, "SampleModels", "bundled sample models not found (looked in \(candidates.map(\.path).joined(separator: ", ")))")
    }
}

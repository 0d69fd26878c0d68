import ArgumentParser
import Foundation
import WhittleIO

/// Options every command that runs a model shares.
struct EngineOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for BLAS and parallel loops (default: all cores).")
    var threads: Int?

    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    func apply() throws {
        if let threads {
            guard (1...256).contains(threads) else {
                throw ValidationError("--threads must be between 1 and 256, got \(threads)")
            }
            EngineThreads.set(threads)
        }
    }
}

/// Runs a command body, turning Whittle errors into one clear line and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as WhittleError {
        printError("error: \(error.description)")
        throw ExitCode(1)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Prints a Codable value as pretty JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(value)
    print(String(decoding: data, as: UTF8.self))
}

func loadModel(_ path: String) throws -> Graph {
    try ONNXImporter.load(contentsOf: URL(fileURLWithPath: path))
}

/// Loads a data set for `graph` and checks that its arrays fit the model's inputs.
func loadDataset(_ path: String, for graph: Graph) throws -> Dataset {
    let dataset = try Dataset.load(from: URL(fileURLWithPath: path), inputNames: graph.runtimeInputs.map(\.name))
    do {
        _ = try BatchRunner(graph: graph, batchSize: 1).validate(inputs: dataset.inputs)
    } catch let error as WhittleError {
        throw error.within(path)
    }
    return dataset
}

/// Checks that every input of `dataset` (loaded from `path`) is finite. Data a quantized model
/// sees must be: the simulation maps NaN to the grid minimum and clamps infinities, so a bad
/// sample would give plausible numbers instead of an error, and calibration would fail only
/// after the weight techniques (AdaRound can run for minutes) had finished.
func requireFiniteInputs(_ dataset: Dataset, path: String) throws {
    for name in dataset.inputs.keys.sorted() {
        guard let tensor = dataset.inputs[name] else { continue }
        let values = tensor.floats
        guard let bad = values.firstIndex(where: { !$0.isFinite }) else { continue }
        let row = max(1, values.count / max(1, tensor.shape.first ?? 1))
        throw WhittleError(.invalidData, path,
                           "input '\(name)' contains \(values[bad].isNaN ? "NaN" : "Inf") (sample \(bad / row)); quantization needs finite data")
    }
}

/// Human-friendly counts: 1.23M, 45.6k.
func formatCount(_ value: Int) -> String {
    let magnitude = Double(value)
    switch magnitude {
    case 1e9...: return String(format: "%.2fG", magnitude / 1e9)
    case 1e6...: return String(format: "%.2fM", magnitude / 1e6)
    case 1e3...: return String(format: "%.1fk", magnitude / 1e3)
    default: return String(value)
    }
}

func formatBytes(_ value: Int) -> String {
    let magnitude = Double(value)
    switch magnitude {
    case 1_073_741_824...: return String(format: "%.2f GiB", magnitude / 1_073_741_824)
    case 1_048_576...: return String(format: "%.1f MiB", magnitude / 1_048_576)
    case 1024...: return String(format: "%.1f KiB", magnitude / 1024)
    default: return "\(value) B"
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes, when the OS reports it.
func peakResidentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.split(separator: " ").compactMap { Int($0) }
        if let kib = digits.first { return kib * 1024 }
    }
    return nil
}

/// Seconds of a Duration as a Double.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let index = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count - 1)).rounded())))
    return sorted[index]
}

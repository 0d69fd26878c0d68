import ArgumentParser
import Foundation
import WhittleIO

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on a data set: top-1 accuracy when labels `y` exist, and throughput.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Data .npz: inputs under the model's input names (or `x`), optional integer labels `y`.")
    var data: String

    @Option(name: .long, help: "Samples per batch.")
    var batch = 32

    @Option(name: .long, help: "Evaluate only the first N samples.")
    var limit: Int?

    @Option(name: .long, help: "AIMET encodings file to evaluate the model quantized with (frozen simulation).")
    var encodings: String?

    @OptionGroup var engine: EngineOptions

    struct Report: Codable {
        var model: String
        var data: String
        var samples: Int
        var top1Accuracy: Double?
        var seconds: Double
        var samplesPerSecond: Double
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            var graph = try loadModel(model)
            var dataset = try loadDataset(data, for: graph)
            if let limit {
                guard limit >= 1 else { throw WhittleError(.invalidArgument, "--limit", "must be at least 1, got \(limit)") }
                dataset = dataset.subset(first: min(limit, dataset.sampleCount))
            }
            if let encodings {
                try requireFiniteInputs(dataset, path: data)
                graph = try frozenSimulation(of: graph, encodingsPath: encodings)
            }
            let evaluator = try Evaluator(graph: graph, batchSize: batch)
            let result = try evaluator.evaluate(inputs: dataset.inputs, labels: dataset.labels)
            let report = Report(model: model, data: data, samples: result.samples, top1Accuracy: result.top1Accuracy,
                                seconds: result.seconds, samplesPerSecond: result.samplesPerSecond)
            if engine.json { try printJSON(report); return }
            var line = "\(result.samples) samples"
            if let accuracy = result.top1Accuracy { line += String(format: "  top-1 %.2f%%", accuracy * 100) }
            else if dataset.labels == nil { line += "  (no labels `y`: accuracy not computed)" }
            line += String(format: "  %.1f samples/s (batch %d, %.3f s)", result.samplesPerSecond, batch, result.seconds)
            print(line)
        }
    }
}

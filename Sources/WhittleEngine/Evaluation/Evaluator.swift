import Foundation

/// What one pass over a data set measured.
public struct EvaluationResult: Sendable, Equatable, Codable {
    public var samples: Int
    /// Top-1 accuracy (0...1) when labels were given and the first output is [N, classes].
    public var top1Accuracy: Double?
    /// Predicted class per sample (argmax of the first output), when it is [N, classes].
    public var predictions: [Int]?
    public var seconds: Double
    public var samplesPerSecond: Double { seconds > 0 ? Double(samples) / seconds : 0 }
}

/// The one evaluator: a compiled model, a data set, a metric.
public struct Evaluator {
    public let runner: BatchRunner

    public init(graph: Graph, batchSize: Int, options: CompileOptions = CompileOptions()) throws {
        runner = try BatchRunner(graph: graph, batchSize: batchSize, options: options)
    }

    /// Runs the model over `inputs` and scores the first output against `labels`.
    public func evaluate(inputs: [String: Tensor], labels: [Int]?, shouldStop: () -> Bool = { false }) throws -> EvaluationResult {
        let total = try runner.validate(inputs: inputs)
        if let labels, labels.count != total {
            throw WhittleError(.invalidData, "labels", "\(labels.count) labels for \(total) samples")
        }
        guard let firstOutput = runner.graph.outputs.first?.name else {
            throw WhittleError(.invalidModel, "model", "has no outputs")
        }
        var predictions: [Int] = []
        var classification = true
        let clock = ContinuousClock()
        let start = clock.now
        try runner.forEachBatch(inputs: inputs, shouldStop: shouldStop) { batch, plan in
            guard classification, let info = plan.info(firstOutput), info.rank == 2, let buffer = plan.outputBuffer(firstOutput) else {
                classification = false
                return
            }
            predictions.append(contentsOf: argmaxRows(buffer, rows: batch.count, width: info.shape[1]))
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        var accuracy: Double?
        if classification, let labels, total > 0 {
            accuracy = Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(total)
        }
        return EvaluationResult(samples: total, top1Accuracy: accuracy, predictions: classification ? predictions : nil, seconds: seconds)
    }
}

import WhittleEngine

/// How a simulated (quantized) model's first output compares with the float model's on the
/// same data: accuracy of both when labels exist, top-1 agreement (argmax over the last axis,
/// per row: per sample for classifiers, per position for sequence models) and SQNR in dB.
public struct OutputComparison: Sendable, Equatable, Codable {
    public var samples: Int
    public var floatAccuracy: Double?
    public var quantizedAccuracy: Double?
    public var agreement: Double
    public var sqnrDB: Double

    /// Runs both graphs over `inputs` and compares their first outputs.
    public static func measure(float: Graph, quantized: Graph, inputs: [String: Tensor], labels: [Int]?,
                               batchSize: Int = 32, job: JobContext = .silent) throws -> OutputComparison {
        let floatRun = try firstOutput(float, inputs: inputs, batchSize: batchSize, job: job, phase: "float pass")
        let quantizedRun = try firstOutput(quantized, inputs: inputs, batchSize: batchSize, job: job, phase: "simulated pass")
        return compare(reference: floatRun, test: quantizedRun, labels: labels)
    }

    /// Compares two outputs of the same shape [N, ..., classes].
    public static func compare(reference: Tensor, test: Tensor, labels: [Int]?) -> OutputComparison {
        let samples = reference.shape.first ?? 0
        let width = reference.shape.last ?? 1
        let referenceValues = reference.floats, testValues = test.floats
        let agreement = top1Agreement(reference: referenceValues, test: testValues, classCount: max(1, width))
        let noise = sqnr(reference: referenceValues, test: testValues)
        var floatAccuracy: Double?
        var quantizedAccuracy: Double?
        if let labels, reference.rank == 2, labels.count == samples, samples > 0 {
            floatAccuracy = accuracy(referenceValues, width: width, labels: labels)
            quantizedAccuracy = accuracy(testValues, width: width, labels: labels)
        }
        return OutputComparison(samples: samples, floatAccuracy: floatAccuracy, quantizedAccuracy: quantizedAccuracy,
                                agreement: agreement, sqnrDB: noise)
    }

    static func accuracy(_ values: [Float], width: Int, labels: [Int]) -> Double {
        let predictions = values.withUnsafeBufferPointer { argmaxRows($0, rows: labels.count, width: width) }
        return Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }

    /// The first output of `graph` over all samples, batched.
    public static func firstOutput(_ graph: Graph, inputs: [String: Tensor], batchSize: Int, job: JobContext,
                                   phase: String) throws -> Tensor {
        guard let name = graph.outputs.first?.name else { throw WhittleError(.invalidModel, "model", "has no outputs") }
        let runner = try BatchRunner(graph: graph, batchSize: batchSize, options: CompileOptions(foldBatchNorm: false))
        let total = try runner.validate(inputs: inputs)
        var values: [Float] = []
        var shape: [Int] = []
        try runner.forEachBatch(inputs: inputs, shouldStop: { job.isCancelled }) { batch, plan in
            guard let info = plan.info(name), let buffer = plan.outputBuffer(name) else { return }
            if values.isEmpty { values.reserveCapacity(info.count / max(1, batch.count) * total) }
            values.append(contentsOf: buffer.prefix(info.count))
            shape = info.shape
            job.report(phase: phase, completed: batch.upperBound, total: total)
        }
        if !shape.isEmpty { shape[0] = total }
        return Tensor(shape: shape, floats: values)
    }
}

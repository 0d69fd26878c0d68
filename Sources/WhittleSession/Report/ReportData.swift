import Foundation
import WhittleIO

/// Gathers what the report needs from a model: its cost, weight histograms and (with data)
/// activation histograms of every layer with weights.
public enum ReportData {
    /// Op types whose weights and outputs the report plots.
    public static let weightOperators: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul"]

    /// Bytes the preserved layer outputs of the activation pass may take; the sample count is
    /// lowered to fit (at least one sample always runs).
    public static let activationMemoryBudget = 256 << 20

    /// Builds the report input for `session` on `graph`. With `data`, the first `samples`
    /// samples (fewer when their layer outputs would exceed `activationMemoryBudget`) are run
    /// once to histogram each weight layer's output.
    public static func collect(session: Session, graph: Graph, data: Dataset? = nil, samples: Int = 64,
                               title: String? = nil, context: JobContext = .silent) throws -> ReportInput {
        context.report(phase: "analysing model", completed: 0, total: 1)
        let analysis = try GraphAnalysis(graph: graph, batchSize: 1)
        let cost = CostModel.analyze(analysis)
        context.report(phase: "analysing model", completed: 1, total: 1)

        let layers = analysis.runtimeNodes.map(\.node).filter { weightOperators.contains($0.opType) }
        var histograms: [RangeHistogram] = []
        for (index, node) in layers.enumerated() {
            try context.checkCancellation("report")
            if let name = node.input(1), let weight = graph.initializers[name], weight.isFloatingPoint,
               let histogram = RangeHistogram(layer: node.name, tensor: name, kind: .weight, values: weight.floats) {
                histograms.append(histogram)
            }
            context.report(phase: "weight ranges", completed: index + 1, total: layers.count)
        }
        if let data, data.sampleCount > 0, samples > 0, !layers.isEmpty {
            let names = Set(layers.map(\.name))
            let perSample = max(1, cost.layers.filter { names.contains($0.name) }.reduce(0) { $0 + $1.activationBytes })
            let affordable = max(1, min(samples, activationMemoryBudget / perSample))
            histograms += try activationHistograms(graph: graph, layers: layers, data: data, samples: affordable, context: context)
        }
        let model = URL(fileURLWithPath: session.modelPath).lastPathComponent
        return ReportInput(title: title ?? "Whittle report: \(model)", session: session, cost: cost,
                           layerOrder: cost.layers.map(\.name), histograms: histograms)
    }

    /// Runs one batch of up to `samples` samples with every weight layer's output preserved
    /// and histograms those outputs.
    static func activationHistograms(graph: Graph, layers: [Node], data: Dataset, samples: Int,
                                     context: JobContext) throws -> [RangeHistogram] {
        let count = max(1, min(samples, data.sampleCount))
        let outputs = layers.compactMap { node in node.outputs.first.map { (node.name, $0) } }
        let options = CompileOptions(preservedTensors: Set(outputs.map(\.1)))
        context.report(phase: "activation ranges", completed: 0, total: 1)
        let plan = try Plan(graph: graph, batchSize: count, options: options)
        _ = try plan.run(data.batch(0..<count))
        try context.checkCancellation("report")
        var histograms: [RangeHistogram] = []
        for (layer, tensor) in outputs {
            guard let info = plan.info(tensor), let buffer = plan.outputBuffer(tensor) else { continue }
            let values = UnsafeBufferPointer(rebasing: buffer[0..<min(info.count, buffer.count)])
            if let histogram = RangeHistogram(layer: layer, tensor: tensor, kind: .activation, values: values) {
                histograms.append(histogram)
            }
        }
        context.report(phase: "activation ranges", completed: 1, total: 1)
        return histograms
    }
}

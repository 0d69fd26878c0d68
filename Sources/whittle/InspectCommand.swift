import ArgumentParser
import Foundation
import WhittleIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every layer of a model: op, output shape, parameters, MACs; and totals.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Batch size the shapes and costs are computed for.")
    var batch = 1

    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    struct Report: Codable {
        var model: String
        var opset: Int
        var inputs: [String: [Int]]
        var outputs: [String: [Int]]
        var foldedNodes: Int
        var peakActivationBytes: Int
        var cost: ModelCost
        var totalParameters: Int
        var totalMACs: Int
    }

    func run() throws {
        try reportingErrors {
            guard batch >= 1 else { throw WhittleError(.invalidArgument, "--batch", "must be at least 1, got \(batch)") }
            let graph = try loadModel(model)
            let analysis = try GraphAnalysis(graph: graph, batchSize: batch)
            let cost = CostModel.analyze(analysis)
            let plan = try Plan(analysis: analysis)
            let report = Report(
                model: model, opset: graph.opsetVersion,
                inputs: analysis.inputInfos.mapValues(\.shape),
                outputs: Dictionary(uniqueKeysWithValues: graph.outputs.map { ($0.name, analysis.infos[$0.name]?.shape ?? []) }),
                foldedNodes: analysis.foldedNodes.count, peakActivationBytes: plan.arenaFloats * 4,
                cost: cost, totalParameters: cost.totalParameters, totalMACs: cost.totalMACs)
            if json { try printJSON(report); return }
            printTable(report)
        }
    }

    func printTable(_ report: Report) {
        let layers = report.cost.layers
        let nameWidth = min(40, max(4, layers.map(\.name.count).max() ?? 4))
        let opWidth = max(2, layers.map(\.opType.count).max() ?? 2)
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
        }
        func lpad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
        }
        print("\(report.model)  opset \(report.opset)  batch \(batch)")
        for (name, shape) in report.inputs.sorted(by: { $0.key < $1.key }) { print("  input  \(name) \(shape)") }
        for (name, shape) in report.outputs.sorted(by: { $0.key < $1.key }) { print("  output \(name) \(shape)") }
        print("")
        print("\(pad("layer", nameWidth))  \(pad("op", opWidth))  \(pad("output", 18))  \(lpad("params", 9))  \(lpad("MACs", 9))  \(lpad("share", 6))")
        let total = max(1, report.totalMACs)
        for layer in layers {
            let shape = layer.outputShape.map(String.init).joined(separator: "x")
            let share = layer.macs > 0 ? String(format: "%5.1f%%", 100 * Double(layer.macs) / Double(total)) : ""
            print("\(pad(layer.name, nameWidth))  \(pad(layer.opType, opWidth))  \(pad(shape, 18))  \(lpad(layer.parameters > 0 ? formatCount(layer.parameters) : "", 9))  \(lpad(layer.macs > 0 ? formatCount(layer.macs) : "", 9))  \(lpad(share, 6))")
        }
        print("")
        print("layers \(layers.count) (\(report.foldedNodes) constant nodes folded)  params \(formatCount(report.totalParameters)) (\(report.totalParameters))  MACs \(formatCount(report.totalMACs)) (\(report.totalMACs))  peak activations \(formatBytes(report.peakActivationBytes))")
    }
}

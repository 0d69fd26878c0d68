import ArgumentParser
import Foundation
import WhittleIO
import WhittleQuant

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a forward pass over an .npz of inputs and save the outputs as .npz.",
        discussion: "With --encodings the model runs quantized, exactly as the encodings file says (frozen simulation).")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Input .npz: arrays keyed by the model's input names (or `x`).")
    var input: String

    @Option(name: .long, help: "Output .npz: arrays keyed by the model's output names.")
    var output: String

    @Option(name: .long, help: "Samples per batch.")
    var batch = 32

    @Option(name: .long, help: "AIMET encodings file (0.6.1, 1.0.0 or 2.0.0) to simulate quantization with.")
    var encodings: String?

    @Option(name: .long, help: ArgumentHelp(
        "Intermediate tensors to save as well, comma-separated (with --encodings: their quantized values).",
        valueName: "names"))
    var tensors: String?

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try reportingErrors {
            try engine.apply()
            var graph = try loadModel(model)
            let dataset = try loadDataset(input, for: graph)
            if let encodings {
                try requireFiniteInputs(dataset, path: input)
                graph = try frozenSimulation(of: graph, encodingsPath: encodings)
            }
            if let tensors { try exposeTensors(tensors, of: &graph) }
            let runner = try BatchRunner(graph: graph, batchSize: batch)
            let outputs = try runner.outputs(inputs: dataset.inputs)
            let ordered = graph.outputs.compactMap { info in outputs[info.name].map { (info.name, $0) } }
            try NumPyFile.writeArchive(ordered, to: URL(fileURLWithPath: output))
            if engine.json {
                try printJSON(["samples": dataset.sampleCount])
            } else {
                let shapes = ordered.map { "\($0.0) \($0.1.shape)" }.joined(separator: ", ")
                print("wrote \(output): \(shapes)")
            }
        }
    }
}

/// `graph` with the quantization an encodings file describes applied (fake-quant nodes).
func frozenSimulation(of graph: Graph, encodingsPath: String) throws -> Graph {
    let file = try EncodingsFile.read(from: URL(fileURLWithPath: encodingsPath), context: .graph(graph))
    return try QuantizedModel.frozen(graph: graph, encodings: file, source: encodingsPath).simulationGraph()
}

/// Adds the named intermediate tensors to `graph`'s outputs so a run saves them too.
private func exposeTensors(_ list: String, of graph: inout Graph) throws {
    let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !names.isEmpty else { throw WhittleError(.invalidArgument, "--tensors", "no tensor names given") }
    let produced = Set(graph.nodes.flatMap(\.outputs)).union(graph.runtimeInputs.map(\.name))
    let existing = Set(graph.outputs.map(\.name))
    for name in names where !existing.contains(name) {
        guard produced.contains(name) else {
            throw WhittleError(.invalidArgument, "--tensors", "the model has no tensor named '\(name)'")
        }
        graph.outputs.append(ValueInfo(name: name, dimensions: []))
    }
}

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

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try reportingErrors {
            try engine.apply()
            var graph = try loadModel(model)
            let dataset = try loadDataset(input, for: graph)
            if let encodings { graph = try frozenSimulation(of: graph, encodingsPath: encodings) }
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

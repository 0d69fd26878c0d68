import ArgumentParser
import Foundation
import WhittleIO

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a float forward pass over an .npz of inputs and save the outputs as .npz.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Input .npz: arrays keyed by the model's input names (or `x`).")
    var input: String

    @Option(name: .long, help: "Output .npz: arrays keyed by the model's output names.")
    var output: String

    @Option(name: .long, help: "Samples per batch.")
    var batch = 32

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try reportingErrors {
            try engine.apply()
            let graph = try loadModel(model)
            let dataset = try loadDataset(input, for: graph)
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

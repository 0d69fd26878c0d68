import ArgumentParser
import Foundation
import WhittleIO

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model back to ONNX as Whittle sees it (Constant nodes and constant subgraphs folded into weights).")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Output ONNX file (written atomically).")
    var out: String

    func run() throws {
        try reportingErrors {
            let graph = try loadModel(model)
            try ONNXExporter.write(graph, to: URL(fileURLWithPath: out))
            print("wrote \(out): \(graph.nodes.count) nodes, \(graph.initializers.count) initializers, opset \(graph.opsetVersion)")
        }
    }
}

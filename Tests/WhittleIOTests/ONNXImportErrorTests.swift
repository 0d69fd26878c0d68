import Foundation
import Testing
@testable import WhittleIO

/// Malformed and unsupported models: each must give a WhittleError naming the file and
/// the culprit, never a crash.
@Suite struct ONNXImportErrorTests {
    static func simpleGraph() -> Graph {
        Graph(
            name: "simple",
            nodes: [Node(name: "n1", opType: "Relu", inputs: ["x"], outputs: ["h"]),
                    Node(name: "n2", opType: "Add", inputs: ["h", "bias"], outputs: ["y"])],
            initializers: ["bias": Tensor(shape: [4], floats: [1, 2, 3, 4])],
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(4)])],
            outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(4)])])
    }

    static func model(_ graph: Graph = simpleGraph()) throws -> Onnx_ModelProto {
        try Onnx_ModelProto(serializedBytes: try ONNXExporter.data(for: graph))
    }

    /// The import error for `data`, which must be a WhittleError about `name`.
    static func importError(_ data: Data, name: String = "bad.onnx") throws -> WhittleError {
        let error = try #require(throws: WhittleError.self) { try ONNXImporter.importGraph(data: data, name: name) }
        #expect(error.subject.hasPrefix(name))
        return error
    }

    @Test func truncatedFilesAreRejected() throws {
        let data = try ONNXExporter.data(for: Self.simpleGraph())
        let half = try Self.importError(data.prefix(data.count / 2))
        #expect(half.description.hasPrefix("bad.onnx: not an ONNX model: "))
        // Every proper prefix fails cleanly (some at a field boundary decode, then fail a check).
        for length in 0..<data.count {
            #expect(throws: WhittleError.self) { try ONNXImporter.importGraph(data: data.prefix(length), name: "cut.onnx") }
        }
        let empty = try Self.importError(Data())
        #expect(empty.description == "bad.onnx: not an ONNX model: the file is empty")
    }

    @Test func randomBytesAreRejected() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for round in 0..<200 {
            var bytes = Data()
            for _ in 0..<(16 + round * 7) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(UInt8(truncatingIfNeeded: state >> 33))
            }
            #expect(throws: WhittleError.self) { try ONNXImporter.importGraph(data: bytes, name: "noise.bin") }
        }
        let text = try Self.importError(Data("this is a text file, not a model\n".utf8), name: "notes.txt")
        #expect(text.description.hasPrefix("notes.txt: not an ONNX model: "))
    }

    @Test func loadingAMissingFileIsAnIOError() throws {
        let url = URL(fileURLWithPath: "/nonexistent/whittle/model.onnx")
        let error = try #require(throws: WhittleError.self) { try ONNXImporter.load(contentsOf: url) }
        #expect(error.kind == .io)
        #expect(error.subject == url.path)
    }

    @Test func opsetOutsideTheSupportedRangeIsRejected() throws {
        for opset in [9, 10, 19] {
            var graph = Self.simpleGraph()
            graph.opsetVersion = opset
            let error = try Self.importError(try ONNXExporter.data(for: graph), name: "old.onnx")
            #expect(error.kind == .invalidModel)
            #expect(error.description.hasPrefix("old.onnx: opset \(opset) is not supported"))
        }
        var graph = Self.simpleGraph()
        graph.opsetVersion = 11
        #expect(try ONNXImporter.importGraph(data: try ONNXExporter.data(for: graph), name: "ok.onnx").opsetVersion == 11)

        var model = try Self.model()
        model.opsetImport = []
        let missing = try Self.importError(try model.serializedBytes())
        #expect(missing.description.contains("no default-domain"))
    }

    @Test func operatorsFromOtherDomainsAreRejected() throws {
        var graph = Self.simpleGraph()
        graph.nodes[1].domain = "com.microsoft"
        let error = try Self.importError(try ONNXExporter.data(for: graph))
        #expect(error.kind == .unsupportedOperator)
        #expect(error.message.contains("node 'n2'"))
        #expect(error.message.contains("'com.microsoft'"))
        // "ai.onnx" is the default domain spelled out.
        graph.nodes[1].domain = "ai.onnx"
        #expect(try ONNXImporter.importGraph(data: try ONNXExporter.data(for: graph), name: "ok.onnx").nodes[1].domain == "")
    }

    @Test func danglingInputsAndCyclesAreRejected() throws {
        var graph = Self.simpleGraph()
        graph.nodes[1].inputs = ["h", "ghost"]
        let dangling = try Self.importError(try ONNXExporter.data(for: graph))
        #expect(dangling.message == "node 'n2' reads tensor 'ghost', which no node, graph input or initializer produces")

        var cycle = Self.simpleGraph()
        cycle.nodes[0].inputs = ["y"]
        let cyclic = try Self.importError(try ONNXExporter.data(for: cycle))
        #expect(cyclic.message.contains("cycle"))
        #expect(cyclic.message.contains("node 'n"))

        var twice = Self.simpleGraph()
        twice.nodes[1].outputs = ["h"]
        twice.outputs = [ValueInfo(name: "h", dimensions: [])]
        let duplicate = try Self.importError(try ONNXExporter.data(for: twice))
        #expect(duplicate.message == "tensor 'h' is produced by both node 'n1' and node 'n2'")

        var orphan = Self.simpleGraph()
        orphan.outputs.append(ValueInfo(name: "nowhere", dimensions: []))
        #expect(try Self.importError(try ONNXExporter.data(for: orphan)).message.contains("'nowhere'"))
    }

    @Test func externalDataIsRejectedClearly() throws {
        var model = try Self.model()
        var location = Onnx_StringStringEntryProto()
        location.key = "location"
        location.value = "weights.bin"
        model.graph.initializer[0].clearRawData()
        model.graph.initializer[0].dataLocation = .external
        model.graph.initializer[0].externalData = [location]
        let error = try Self.importError(try model.serializedBytes(), name: "big.onnx")
        #expect(error.subject == "big.onnx: initializer 'bias'")
        #expect(error.message.contains("external file ('weights.bin')"))
    }

    @Test func tensorSizeMismatchesAreRejected() throws {
        var model = try Self.model()
        model.graph.initializer[0].rawData = Data(count: 12)
        let raw = try Self.importError(try model.serializedBytes())
        #expect(raw.subject == "bad.onnx: initializer 'bias'")
        #expect(raw.message == "has 12 bytes of data, expected 16 for shape [4] of float32")

        model.graph.initializer[0].clearRawData()
        model.graph.initializer[0].floatData = [1, 2, 3]
        let typed = try Self.importError(try model.serializedBytes())
        #expect(typed.message == "has 3 values in float_data, expected 4 for shape [4] of float32")

        model.graph.initializer[0].floatData = []
        let none = try Self.importError(try model.serializedBytes())
        #expect(none.message.contains("has 0 values"))

        model.graph.initializer[0].floatData = [1, 2, 3, 4]
        model.graph.initializer[0].dims = [2, -2]
        #expect(try Self.importError(try model.serializedBytes()).message.contains("negative dimension"))
    }

    @Test func unsupportedTypesAndAttributesAreRejected() throws {
        var model = try Self.model()
        model.graph.initializer[0].dataType = 10  // FLOAT16
        model.graph.initializer[0].rawData = Data(count: 8)
        #expect(try Self.importError(try model.serializedBytes()).message.contains("FLOAT16"))

        model = try Self.model()
        var branch = Onnx_AttributeProto()
        branch.name = "then_branch"
        branch.type = .graph
        branch.g = Onnx_GraphProto()
        model.graph.node[0].attribute.append(branch)
        let subgraph = try Self.importError(try model.serializedBytes())
        #expect(subgraph.message.contains("attribute 'then_branch' of node 'n1'"))

        model = try Self.model()
        model.graph.input[0].type.tensorType.elemType = 8  // STRING
        #expect(try Self.importError(try model.serializedBytes()).message.contains("graph input 'x'"))
    }
}

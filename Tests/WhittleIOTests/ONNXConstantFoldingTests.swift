import Foundation
import Testing
@testable import WhittleIO

/// `ConstantFolding` and its use by the importer.
@Suite struct ONNXConstantFoldingTests {
    static let registryHasAdd = OperatorRegistry.spec(for: "Add") != nil

    @Test func nodesWithoutSpecAreLeftInPlace() throws {
        let graph = Graph(
            nodes: [Node(name: "f", opType: "FooBar", inputs: ["a", "b"], outputs: ["c"]),
                    Node(name: "g", opType: "FooBar", inputs: ["c", "x"], outputs: ["y"])],
            initializers: ["a": Tensor(shape: [1], floats: [1]), "b": Tensor(shape: [1], floats: [2])],
            inputs: [ValueInfo(name: "x", dimensions: [.fixed(1)])],
            outputs: [ValueInfo(name: "y", dimensions: [.fixed(1)])])
        let (folded, names) = try ConstantFolding.fold(graph)
        #expect(names.isEmpty)
        #expect(folded == graph)
    }

    /// Graph: c = a + b (constant), d = c + c (constant), y = d + x, out2 = a + a (a graph output).
    static func constantChain() -> Graph {
        Graph(
            nodes: [
                Node(name: "add_c", opType: "Add", inputs: ["a", "b"], outputs: ["c"]),
                Node(name: "add_d", opType: "Add", inputs: ["c", "c"], outputs: ["d"]),
                Node(name: "add_y", opType: "Add", inputs: ["d", "x"], outputs: ["y"]),
                Node(name: "add_o", opType: "Add", inputs: ["a", "a"], outputs: ["out2"]),
            ],
            initializers: ["a": Tensor(shape: [2], floats: [1, 2]), "b": Tensor(shape: [2], floats: [10, 20])],
            inputs: [ValueInfo(name: "x", dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dimensions: [.fixed(2)]), ValueInfo(name: "out2", dimensions: [.fixed(2)])])
    }

    @Test(.enabled(if: registryHasAdd)) func constantChainsCollapse() throws {
        let (folded, names) = try ConstantFolding.fold(Self.constantChain())
        #expect(names == ["add_c", "add_d", "add_o"])
        #expect(folded.nodes.map(\.name) == ["add_y"])
        // a, b and c are no longer read; d feeds add_y; out2 is a graph output.
        #expect(Set(folded.initializers.keys) == ["d", "out2"])
        #expect(folded.initializers["d"]?.floats == [22, 44])
        #expect(folded.initializers["out2"]?.floats == [2, 4])
    }

    @Test(.enabled(if: registryHasAdd)) func foldingKeepsInitializersStillInUse() throws {
        var graph = Self.constantChain()
        graph.nodes.append(Node(name: "add_z", opType: "Add", inputs: ["x", "b"], outputs: ["z"]))
        graph.outputs.append(ValueInfo(name: "z", dimensions: [.fixed(2)]))
        let (folded, _) = try ConstantFolding.fold(graph)
        #expect(Set(folded.initializers.keys) == ["b", "d", "out2"])
    }

    @Test(.enabled(if: registryHasAdd)) func importerFoldsConstantNodes() throws {
        let graph = Graph(
            nodes: [
                Node(name: "k", opType: "Constant", inputs: [], outputs: ["k_out"], attributes: ["value_floats": .floats([1, 2])]),
                Node(name: "double", opType: "Add", inputs: ["k_out", "k_out"], outputs: ["twice"]),
                Node(name: "use", opType: "Add", inputs: ["x", "twice"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dimensions: [.fixed(2)])])
        let back = try ONNXImporter.load(data: try ONNXExporter.data(for: graph), name: "fold.onnx")
        #expect(back.nodes.map(\.name) == ["use"])
        #expect(back.initializers == ["twice": Tensor(shape: [2], floats: [2, 4])])
    }
}

import Foundation
import Testing
@testable import WhittleIO

/// Export → import round trips and the importer's graph normalisation.
@Suite struct ONNXRoundTripTests {
    /// A graph using every attribute kind, every element type, symbolic dims and metadata.
    static func sampleGraph() -> Graph {
        let weights = Tensor(shape: [2, 1, 3, 3], floats: (0..<18).map { Float($0) * 0.25 - 2 })
        let initializers: [String: Tensor] = [
            "w": weights,
            "b": Tensor(shape: [2], floats: [0.5, -1.5]),
            "scale64": Tensor(shape: [2], floats: [1.25, -3], elementType: .float64),
            "shape64": Tensor.int64([1, -1]),
            "axes32": Tensor(shape: [3], ints: [0, -2, 2_000_000_000], elementType: .int32),
            "q8": Tensor(shape: [2, 2], ints: [-128, 0, 5, 127], elementType: .int8),
            "u8": Tensor(shape: [3], ints: [0, 128, 255], elementType: .uint8),
            "mask": Tensor(shape: [2], ints: [1, 0], elementType: .bool),
            "scalar": Tensor(shape: [], floats: [3.5]),
            "empty": Tensor(shape: [0, 4], ints: [], elementType: .int64),
        ]
        let conv = Node(
            name: "conv1", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
            attributes: [
                "kernel_shape": .ints([3, 3]),
                "pads": .ints([1, 1, 1, 1]),
                "group": .int(1),
                "auto_pad": .string("NOTSET"),
                "alpha": .float(0.125),
                "coefficients": .floats([1.5, -2, 0]),
                "labels": .strings(["cat", "dög", ""]),
                "value": .tensor(Tensor(shape: [2], ints: [7, -7], elementType: .int32)),
                "empty_ints": .ints([]),
            ])
        let relu = Node(name: "relu1", opType: "Relu", inputs: ["c"], outputs: ["y"])
        let clip = Node(name: "clip1", opType: "Clip", inputs: ["y", "", "scalar"], outputs: ["z"])
        return Graph(
            name: "sample", nodes: [conv, relu, clip], initializers: initializers,
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(1), .symbolic("H"), .fixed(8)]),
                     ValueInfo(name: "ids", elementType: .int64, dimensions: [.symbolic(""), .fixed(3)])],
            outputs: [ValueInfo(name: "z", dimensions: [.symbolic("N"), .fixed(2), .symbolic("H"), .fixed(8)]),
                      ValueInfo(name: "y", dimensions: [])],
            opsetVersion: 17,
            metadata: ["labels": "cat,dog", "author": "whittle tests", "": "empty key"])
    }

    @Test func exportThenImportGivesTheSameGraph() throws {
        let graph = Self.sampleGraph()
        let data = try ONNXExporter.data(for: graph)
        let back = try ONNXImporter.importGraph(data: data, name: "sample.onnx")
        #expect(back.name == graph.name)
        #expect(back.nodes == graph.nodes)
        #expect(back.initializers == graph.initializers)
        #expect(back.inputs == graph.inputs)
        #expect(back.outputs == graph.outputs)
        #expect(back.opsetVersion == 17)
        #expect(back.metadata == graph.metadata)
        #expect(back == graph)
    }

    @Test func exportIsDeterministicAndHeaderIsSet() throws {
        let graph = Self.sampleGraph()
        let first = try ONNXExporter.data(for: graph, producer: "tester")
        #expect(first == (try ONNXExporter.data(for: graph, producer: "tester")))
        let model = try Onnx_ModelProto(serializedBytes: first)
        #expect(model.irVersion == 8)
        #expect(model.producerName == "tester")
        #expect(model.opsetImport.map(\.domain) == [""])
        #expect(model.opsetImport.map(\.version) == [17])
        #expect(model.metadataProps.map(\.key) == ["", "author", "labels"])
        // Initializers are stored as raw little-endian bytes in their own type.
        let byName = Dictionary(uniqueKeysWithValues: model.graph.initializer.map { ($0.name, $0) })
        #expect(byName["scale64"]?.dataType == 11)
        #expect(byName["scale64"]?.rawData.count == 16)
        #expect(byName["u8"]?.rawData == Data([0, 128, 255]))
        #expect(byName["mask"]?.rawData == Data([1, 0]))
        #expect(byName["b"]?.rawData == Data([0, 0, 0, 0x3F, 0, 0, 0xC0, 0xBF]))
        #expect(byName["axes32"]?.rawData.prefix(4) == Data([0, 0, 0, 0]))
        #expect(byName["axes32"]?.dataType == 6)
        let x = model.graph.input[0].type.tensorType.shape.dim
        #expect(x[0].dimParam == "N")
        #expect(x[1].dimValue == 1)
        // An unknown dimension has neither field.
        #expect(model.graph.input[1].type.tensorType.shape.dim[0].value == nil)
    }

    @Test func otherDomainsGetAnOpsetEntry() throws {
        var graph = Self.sampleGraph()
        graph.nodes[1].domain = "com.example"
        let model = try Onnx_ModelProto(serializedBytes: try ONNXExporter.data(for: graph))
        #expect(model.opsetImport.map(\.domain) == ["", "com.example"])
        #expect(model.graph.node[1].domain == "com.example")
    }

    @Test func exporterRejectsValuesThatDoNotFitTheirType() throws {
        var graph = Self.sampleGraph()
        graph.initializers["u8"] = Tensor(shape: [1], ints: [300], elementType: .uint8)
        #expect(throws: WhittleError.self) { try ONNXExporter.data(for: graph) }
        graph.initializers["u8"] = Tensor(shape: [1], floats: [1.5], elementType: .int64)
        #expect(throws: WhittleError.self) { try ONNXExporter.data(for: graph) }
        var inconsistent = Tensor(shape: [2], floats: [1, 2])
        inconsistent.shape = [3]
        graph.initializers["u8"] = inconsistent
        #expect(throws: WhittleError.self) { try ONNXExporter.data(for: graph) }
    }

    @Test func writeIsAtomicAndReadable() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.onnx")
        try Data("old contents".utf8).write(to: url)
        let graph = Self.sampleGraph()
        try ONNXExporter.write(graph, to: url)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.onnx"])
        let back = try ONNXImporter.importGraph(data: try Data(contentsOf: url), name: url.path)
        #expect(back == graph)
        // A missing directory is an i/o error, not a crash.
        let bad = directory.appendingPathComponent("missing/model.onnx")
        #expect(throws: WhittleError.self) { try ONNXExporter.write(graph, to: bad) }
    }

    @Test func typedDataFieldsAreDecoded() throws {
        var model = try Onnx_ModelProto(serializedBytes: try ONNXExporter.data(for: Self.sampleGraph()))
        var f = Onnx_TensorProto()
        f.name = "f"; f.dataType = 1; f.dims = [2]; f.floatData = [1.5, -2]
        var d = Onnx_TensorProto()
        d.name = "d"; d.dataType = 11; d.dims = [1, 2]; d.doubleData = [0.25, 8]
        var i64 = Onnx_TensorProto()
        i64.name = "i64"; i64.dataType = 7; i64.dims = [3]; i64.int64Data = [-1, 0, 1 << 40]
        var i8 = Onnx_TensorProto()
        i8.name = "i8"; i8.dataType = 3; i8.dims = [2]; i8.int32Data = [-5, 6]
        var bools = Onnx_TensorProto()
        bools.name = "bools"; bools.dataType = 9; bools.dims = [3]; bools.int32Data = [1, 0, 1]
        var raw = Onnx_TensorProto()
        raw.name = "raw"; raw.dataType = 1; raw.dims = []; raw.rawData = Data([0, 0, 0x80, 0x3F])
        model.graph.initializer += [f, d, i64, i8, bools, raw]
        let graph = try ONNXImporter.importGraph(data: try model.serializedBytes(), name: "typed.onnx")
        #expect(graph.initializers["f"] == Tensor(shape: [2], floats: [1.5, -2]))
        #expect(graph.initializers["d"] == Tensor(shape: [1, 2], floats: [0.25, 8], elementType: .float64))
        #expect(graph.initializers["i64"] == Tensor.int64([-1, 0, 1 << 40]))
        #expect(graph.initializers["i8"] == Tensor(shape: [2], ints: [-5, 6], elementType: .int8))
        #expect(graph.initializers["bools"] == Tensor(shape: [3], ints: [1, 0, 1], elementType: .bool))
        #expect(graph.initializers["raw"] == Tensor(shape: [], floats: [1]))
    }

    @Test func constantNodesBecomeInitializers() throws {
        let graph = Graph(
            nodes: [
                Node(name: "k1", opType: "Constant", inputs: [], outputs: ["t"],
                     attributes: ["value": .tensor(Tensor(shape: [2, 1], floats: [1, 2]))]),
                Node(name: "k2", opType: "Constant", inputs: [], outputs: ["f"], attributes: ["value_float": .float(2.5)]),
                Node(name: "k3", opType: "Constant", inputs: [], outputs: ["fs"], attributes: ["value_floats": .floats([1, 2, 3])]),
                Node(name: "k4", opType: "Constant", inputs: [], outputs: ["i"], attributes: ["value_int": .int(-4)]),
                Node(name: "k5", opType: "Constant", inputs: [], outputs: ["is"], attributes: ["value_ints": .ints([5, 6])]),
                Node(name: "use", opType: "FooBar", inputs: ["x", "t", "f", "fs", "i", "is"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dimensions: [.fixed(2)])])
        let back = try ONNXImporter.importGraph(data: try ONNXExporter.data(for: graph), name: "const.onnx")
        #expect(back.nodes.map(\.name) == ["use"])
        #expect(back.initializers == [
            "t": Tensor(shape: [2, 1], floats: [1, 2]),
            "f": Tensor(shape: [], floats: [2.5]),
            "fs": Tensor(shape: [3], floats: [1, 2, 3]),
            "i": Tensor(shape: [], ints: [-4]),
            "is": Tensor.int64([5, 6]),
        ])

        var strings = graph
        strings.nodes[1].attributes = ["value_string": .string("hi")]
        #expect(throws: WhittleError.self) { try ONNXImporter.importGraph(data: try ONNXExporter.data(for: strings), name: "s.onnx") }
    }

    @Test func nodesAreSortedTopologically() throws {
        let a = Node(name: "a", opType: "Relu", inputs: ["x"], outputs: ["a_out"])
        let b = Node(name: "b", opType: "Relu", inputs: ["a_out"], outputs: ["b_out"])
        let c = Node(name: "c", opType: "Add", inputs: ["a_out", "b_out"], outputs: ["y"])
        let d = Node(name: "d", opType: "Relu", inputs: ["x"], outputs: ["z"])
        let graph = Graph(nodes: [c, d, b, a], inputs: [ValueInfo(name: "x", dimensions: [.fixed(1)])],
                          outputs: [ValueInfo(name: "y", dimensions: [.fixed(1)]), ValueInfo(name: "z", dimensions: [.fixed(1)])])
        let back = try ONNXImporter.importGraph(data: try ONNXExporter.data(for: graph), name: "order.onnx")
        let order = back.nodes.map(\.name)
        #expect(Set(order) == ["a", "b", "c", "d"])
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        #expect(position["a"]! < position["b"]!)
        #expect(position["b"]! < position["c"]!)
        // An already sorted graph keeps its order.
        var sorted = graph
        sorted.nodes = [d, a, b, c]
        let same = try ONNXImporter.importGraph(data: try ONNXExporter.data(for: sorted), name: "sorted.onnx")
        #expect(same.nodes.map(\.name) == ["d", "a", "b", "c"])
    }

    @Test func initializerInputsAreNotRuntimeInputsAndUnnamedNodesGetNames() throws {
        var model = try Onnx_ModelProto(serializedBytes: try ONNXExporter.data(for: Self.sampleGraph()))
        var declared = Onnx_ValueInfoProto()
        declared.name = "w"
        declared.type.tensorType.elemType = 1
        model.graph.input.append(declared)
        model.graph.node[1].name = ""
        model.graph.node[2].name = ""
        let graph = try ONNXImporter.importGraph(data: try model.serializedBytes(), name: "m.onnx")
        #expect(graph.inputs.map(\.name) == ["x", "ids"])
        #expect(graph.runtimeInputs.map(\.name) == ["x", "ids"])
        #expect(graph.nodes.map(\.name) == ["conv1", "Relu_1", "Clip_2"])
    }

    @Test func checkSupportedNamesTheNodeAndOperator() throws {
        let graph = Graph(nodes: [Node(name: "x", opType: "FooBar", inputs: ["a"], outputs: ["b"])],
                          inputs: [ValueInfo(name: "a", dimensions: [.fixed(1)])],
                          outputs: [ValueInfo(name: "b", dimensions: [.fixed(1)])])
        let error = try #require(throws: WhittleError.self) { try ONNXImporter.checkSupported(graph) }
        #expect(error.kind == .unsupportedOperator)
        #expect(error.description == "node 'x' uses unsupported operator FooBar")

        var two = graph
        two.nodes.append(Node(name: "y", opType: "BarBaz", inputs: ["b"], outputs: ["c"]))
        let both = try #require(throws: WhittleError.self) { try ONNXImporter.checkSupported(two) }
        #expect(both.description == "node 'x' uses unsupported operator FooBar (also unsupported: BarBaz)")

        // load() runs the check and names the file.
        let loadError = try #require(throws: WhittleError.self) {
            try ONNXImporter.load(data: try ONNXExporter.data(for: graph), name: "foo.onnx")
        }
        #expect(loadError.description == "foo.onnx: node 'x' uses unsupported operator FooBar")
    }

    @Test(.enabled(if: OperatorRegistry.spec(for: "Conv") != nil && OperatorRegistry.spec(for: "Relu") != nil))
    func loadAcceptsSupportedGraphs() throws {
        let graph = Graph(
            name: "convrelu",
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                         attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
                    Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"])],
            initializers: ["w": Tensor(shape: [2, 1, 3, 3], floats: (0..<18).map { Float($0) }),
                           "b": Tensor(shape: [2], floats: [0, 1])],
            inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(1), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(2), .fixed(5), .fixed(5)])])
        let directory = FileManager.default.temporaryDirectory
        let url = directory.appendingPathComponent("whittle-convrelu-\(UUID().uuidString).onnx")
        defer { try? FileManager.default.removeItem(at: url) }
        try ONNXExporter.write(graph, to: url)
        #expect(try ONNXImporter.load(contentsOf: url) == graph)
    }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("Quantsim config quantizer placement")
struct QuantsimConfigPlacementTests {
    typealias Support = QuantFormatsTestSupport

    static func weights(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { Float($0) * 0.01 - 0.1 })
    }

    static func input(_ name: String = "x", _ dims: [Int] = [1, 3, 8, 8]) -> ValueInfo {
        ValueInfo(name: name, dimensions: dims.map { .fixed($0) })
    }

    static func output(_ name: String) -> ValueInfo { ValueInfo(name: name, dimensions: []) }

    static func place(_ graph: Graph, _ preset: String, activationBits: Int = 8, paramBits: Int = 8) throws -> QuantizerPlacement {
        try QuantizerPlacement.resolve(graph: graph, config: try QuantsimConfig.preset(named: preset),
                                       defaultActivationBits: activationBits, defaultParamBits: paramBits)
    }

    /// x → Conv(w, b) → c → Relu → r
    static let convRelu = Graph(
        nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"])],
        initializers: ["w": weights([4, 3, 3, 3]), "b": weights([4])],
        inputs: [input()], outputs: [output("r")])

    @Test func convReluSupergroupQuantizesOnlyAfterRelu() throws {
        let placement = try Self.place(Self.convRelu, "default")
        #expect(placement.quantizers["c"] == nil)
        #expect(placement.settings(for: "c") == nil)
        #expect(placement.quantizers["r"] == QuantizerSettings(role: .activation, bitWidth: 8, symmetry: .asymmetric))
        #expect(placement.quantizers["x"] == QuantizerSettings(role: .activation, bitWidth: 8, symmetry: .asymmetric))
        #expect(placement.quantizers["w"] == QuantizerSettings(role: .param, bitWidth: 8, symmetry: .signedSymmetric, paramType: "weight"))
        // Bias is not quantized: its quantizer exists but is disabled.
        #expect(placement.quantizers["b"]?.enabled == false)
        #expect(placement.quantizers["b"]?.paramType == "bias")
        #expect(placement.quantizers.count == 4)
    }

    @Test func perChannelConvWeightAxisZero() throws {
        let placement = try Self.place(Self.convRelu, "default-per-channel", activationBits: 16, paramBits: 4)
        #expect(placement.quantizers["w"]?.perChannelAxis == 0)
        #expect(placement.quantizers["w"]?.bitWidth == 4)
        #expect(placement.quantizers["b"]?.perChannelAxis == nil)
        #expect(placement.quantizers["r"]?.bitWidth == 16)
    }

    @Test func branchingConvIsNotASupergroup() throws {
        var graph = Self.convRelu
        graph.nodes.append(Node(name: "sig", opType: "Sigmoid", inputs: ["c"], outputs: ["s"]))
        graph.outputs.append(Self.output("s"))
        let placement = try Self.place(graph, "default")
        #expect(placement.quantizers["c"]?.role == .activation)
        #expect(placement.quantizers["r"] != nil)
        #expect(placement.quantizers["s"] != nil)
    }

    @Test func convBatchNormReluOnHTP() throws {
        let graph = Graph(
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                    Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "gamma", "beta", "mean", "var"], outputs: ["n"]),
                    Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["r"])],
            initializers: ["w": Self.weights([4, 3, 1, 1]), "gamma": Self.weights([4]), "beta": Self.weights([4]),
                           "mean": Self.weights([4]), "var": Self.weights([4])],
            inputs: [Self.input()], outputs: [Self.output("r")])
        let placement = try Self.place(graph, "htp-v73")
        #expect(placement.quantizers["c"] == nil)
        #expect(placement.quantizers["n"] == nil)
        #expect(placement.quantizers["r"]?.role == .activation)
        #expect(placement.quantizers["w"]?.perChannelAxis == 0)
        #expect(placement.quantizers["gamma"]?.paramType == "weight")
        #expect(placement.quantizers["gamma"]?.perChannelAxis == nil)
        #expect(placement.quantizers["beta"]?.enabled == false)
        #expect(placement.quantizers["mean"]?.enabled == false)
        #expect(placement.quantizers["var"]?.enabled == false)
        #expect(placement.quantizers["var"]?.paramType == "running_var")
        // The default config has no Conv+BN+Relu supergroup: BN output is quantized there.
        let plain = try Self.place(graph, "default")
        #expect(plain.quantizers["c"] != nil)
        #expect(plain.quantizers["n"] != nil)
        #expect(plain.quantizers["r"] != nil)
    }

    @Test func residualAddRelu() throws {
        // x → Conv1 → c1 → Relu → r1 → Conv2 → c2; Add(c2, r1) → a → Relu → out
        let graph = Graph(
            nodes: [Node(name: "conv1", opType: "Conv", inputs: ["x", "w1"], outputs: ["c1"]),
                    Node(name: "relu1", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
                    Node(name: "conv2", opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"]),
                    Node(name: "add", opType: "Add", inputs: ["c2", "r1"], outputs: ["a"]),
                    Node(name: "relu2", opType: "Relu", inputs: ["a"], outputs: ["out"])],
            initializers: ["w1": Self.weights([3, 3, 1, 1]), "w2": Self.weights([3, 3, 1, 1])],
            inputs: [Self.input()], outputs: [Self.output("out")])
        let placement = try Self.place(graph, "default")
        #expect(Set(placement.quantizers.filter { $0.value.role == .activation }.keys) == ["x", "r1", "c2", "out"])
        #expect(placement.sharedEncodings.isEmpty)
    }

    @Test func reshapeSharesItsInputEncodingAndGemmAxis() throws {
        // x → Conv → c → Reshape(c, shape) → flat → Gemm(flat, W, B) → y
        func graph(transB: Int) -> Graph {
            Graph(
                nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                        Node(name: "reshape", opType: "Reshape", inputs: ["c", "shape"], outputs: ["flat"]),
                        Node(name: "fc", opType: "Gemm", inputs: ["flat", "W", "B"], outputs: ["y"], attributes: ["transB": .int(transB)])],
                initializers: ["w": Self.weights([2, 3, 1, 1]), "shape": Tensor(shape: [2], ints: [1, 128]),
                               "W": transB == 1 ? Self.weights([10, 128]) : Self.weights([128, 10]), "B": Self.weights([10])],
                inputs: [Self.input()], outputs: [Self.output("y")])
        }
        var config = try QuantsimConfig.preset(named: "default")
        config.defaults.perChannelQuantization = true
        let placement = try QuantizerPlacement.resolve(graph: graph(transB: 1), config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(placement.sharedEncodings == ["flat": "c"])
        #expect(placement.quantizers["flat"] == nil)
        #expect(placement.encodingSource(for: "flat") == "c")
        #expect(placement.settings(for: "flat") == placement.quantizers["c"])
        #expect(placement.quantizers["shape"] == nil)
        #expect(placement.quantizers["W"]?.perChannelAxis == 0)
        let untransposed = try QuantizerPlacement.resolve(graph: graph(transB: 0), config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(untransposed.quantizers["W"]?.perChannelAxis == 1)
        // Config op_type entries with is_output_quantized False also keep their input's encoding.
        var squeezeGraph = graph(transB: 1)
        squeezeGraph.nodes[1].opType = "Squeeze"
        let squeezed = try QuantizerPlacement.resolve(graph: squeezeGraph, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(squeezed.sharedEncodings == ["flat": "c"])
    }

    @Test func softmaxConstraintOnV73() throws {
        let graph = Graph(
            nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "m"], outputs: ["logits"]),
                    Node(name: "softmax", opType: "Softmax", inputs: ["logits"], outputs: ["p"])],
            initializers: ["m": Self.weights([8, 5])],
            inputs: [Self.input("x", [1, 8])], outputs: [Self.output("p")])
        let v73 = try Self.place(graph, "htp-v73")
        #expect(v73.quantizers["p"]?.encodingConstraint == QuantsimConfig.EncodingConstraint(min: 0, max: 1))
        #expect(v73.quantizers["logits"]?.encodingConstraint == nil)
        #expect(v73.quantizers["m"]?.perChannelAxis == nil)
        let plain = try Self.place(graph, "default-per-channel")
        #expect(plain.quantizers["p"]?.encodingConstraint == nil)
        var config = try QuantsimConfig.preset(named: "default")
        config.defaults.perChannelQuantization = true
        let perChannel = try QuantizerPlacement.resolve(graph: graph, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(perChannel.quantizers["m"]?.perChannelAxis == 1)
    }

    /// a, b → MatMul → y (two activations).
    static let attention = Graph(
        nodes: [Node(name: "qa", opType: "Sigmoid", inputs: ["a"], outputs: ["q"]),
                Node(name: "kb", opType: "Tanh", inputs: ["b"], outputs: ["k"]),
                Node(name: "mm", opType: "MatMul", inputs: ["q", "k"], outputs: ["y"])],
        inputs: [input("a", [4, 4]), input("b", [4, 4])], outputs: [output("y")])

    @Test func matMulRuleOnV69ForcesEightBitSymmetricSecondInput() throws {
        let placement = try Self.place(Self.attention, "htp-v69", activationBits: 16)
        #expect(placement.quantizers["k"]?.bitWidth == 8)
        #expect(placement.quantizers["k"]?.symmetry == .signedSymmetric)
        #expect(placement.quantizers["q"]?.bitWidth == 16)
        #expect(placement.quantizers["q"]?.symmetry == .asymmetric)
    }

    @Test func matMulRuleOnV73RaisesFirstInputForSixteenBitSecond() throws {
        var placement = try Self.place(Self.attention, "htp-v73")
        #expect(placement.quantizers["k"]?.bitWidth == 8)
        #expect(placement.quantizers["k"]?.symmetry == .asymmetric)
        try placement.override(tensor: "k", bitWidth: 16)
        #expect(placement.quantizers["k"]?.symmetry == .signedSymmetric)
        #expect(placement.quantizers["q"]?.bitWidth == 16)
        // No hw_version: no rule.
        var plain = try Self.place(Self.attention, "default")
        try plain.override(tensor: "k", bitWidth: 16)
        #expect(plain.quantizers["k"]?.symmetry == .asymmetric)
        #expect(plain.quantizers["q"]?.bitWidth == 8)
    }

    @Test func groupNormParamsFollowOutputOnV73() throws {
        let graph = Graph(
            nodes: [Node(name: "gn", opType: "GroupNormalization", inputs: ["x", "scale", "bias"], outputs: ["g"],
                         attributes: ["num_groups": .int(1)])],
            initializers: ["scale": Self.weights([3]), "bias": Self.weights([3])],
            inputs: [Self.input()], outputs: [Self.output("g")])
        let v73 = try Self.place(graph, "htp-v73", activationBits: 16, paramBits: 8)
        for param in ["scale", "bias"] {
            #expect(v73.quantizers[param]?.bitWidth == 16)
            #expect(v73.quantizers[param]?.symmetry == .asymmetric)
            #expect(v73.quantizers[param]?.enabled == true)
        }
        let v69 = try Self.place(graph, "htp-v69", activationBits: 16, paramBits: 8)
        #expect(v69.quantizers["scale"]?.bitWidth == 8)
        #expect(v69.quantizers["bias"]?.enabled == false)

        // The rule holds after a mixed-precision override of the output too.
        var mixed = try Self.place(graph, "htp-v73", activationBits: 8, paramBits: 8)
        #expect(mixed.quantizers["scale"]?.bitWidth == 8)
        try mixed.override(tensor: "g", bitWidth: 16)
        #expect(mixed.quantizers["scale"]?.bitWidth == 16 && mixed.quantizers["bias"]?.bitWidth == 16)
    }

    @Test func modelInputOutputAndInputQuantizedOps() throws {
        var config = try QuantsimConfig.preset(named: "default")
        config.modelInputQuantized = false
        let noInput = try QuantizerPlacement.resolve(graph: Self.convRelu, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(noInput.quantizers["x"] == nil)
        config.opTypes["Conv"] = QuantsimConfig.OpSettings(isInputQuantized: true, isSymmetric: true)
        // model_input has the highest precedence: an explicit False wins over the op's inputs.
        let stillOff = try QuantizerPlacement.resolve(graph: Self.convRelu, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(stillOff.quantizers["x"] == nil)
        config.modelInputQuantized = nil
        let convInputs = try QuantizerPlacement.resolve(graph: Self.convRelu, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(convInputs.quantizers["x"]?.symmetry == .signedSymmetric)
        config.modelOutputQuantized = false
        let noOutput = try QuantizerPlacement.resolve(graph: Self.convRelu, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(noOutput.quantizers["r"] == nil)
        // Integer tensors (Shape) are never quantized.
        var shaped = Self.convRelu
        shaped.nodes.append(Node(name: "shape", opType: "Shape", inputs: ["r"], outputs: ["s"]))
        shaped.outputs.append(Self.output("s"))
        let withShape = try Self.place(shaped, "default")
        #expect(withShape.quantizers["s"] == nil)
        #expect(withShape.sharedEncodings["s"] == nil)
    }

    @Test func userConfigFixturePlacement() throws {
        let config = try QuantsimConfig.load(from: Support.fixture("quantsim_user_config.json"))
        let graph = Graph(
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                    Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                    Node(name: "flatten", opType: "Reshape", inputs: ["r", "shape"], outputs: ["f"]),
                    Node(name: "fc", opType: "Gemm", inputs: ["f", "W"], outputs: ["y"], attributes: ["transB": .int(1)])],
            initializers: ["w": Self.weights([2, 3, 1, 1]), "shape": Tensor(shape: [2], ints: [1, 128]), "W": Self.weights([10, 128])],
            inputs: [Self.input()], outputs: [Self.output("y")])
        let placement = try QuantizerPlacement.resolve(graph: graph, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        #expect(placement.quantizers["w"]?.symmetry == .strictSymmetric)
        #expect(placement.quantizers["w"]?.perChannelAxis == 0)
        #expect(placement.quantizers["W"]?.perChannelAxis == nil)
        #expect(placement.sharedEncodings["f"] == "r")
        #expect(placement.quantizers["y"] != nil)
        #expect(placement.quantizers["c"] == nil)
    }

    @Test func overridesAndTheirErrors() throws {
        var placement = try Self.place(Self.convRelu, "default")
        try placement.override(tensor: "w", bitWidth: 4)
        #expect(placement.quantizers["w"]?.bitWidth == 4)
        try placement.disable(tensor: "r")
        #expect(placement.quantizers["r"]?.enabled == false)
        try placement.enable(tensor: "r")
        #expect(placement.quantizers["r"]?.enabled == true)
        Support.expectError(["nope", "not a tensor of the graph"]) { try placement.override(tensor: "nope", bitWidth: 8) }
        Support.expectError(["nope", "not a tensor of the graph"]) { try placement.disable(tensor: "nope") }
        Support.expectError(["w", "4...16", "17"]) { try placement.override(tensor: "w", bitWidth: 17) }
        Support.expectError(["w", "4...16", "2"]) { try placement.override(tensor: "w", bitWidth: 2) }
        Support.expectError(["c", "no quantizer"]) { try placement.override(tensor: "c", bitWidth: 8) }
        Support.expectError(["activation bit width", "3"]) {
            _ = try Self.place(Self.convRelu, "default", activationBits: 3)
        }
        var config = try QuantsimConfig.preset(named: "default")
        config.defaults.perChannelQuantization = true
        let reshaped = Graph(
            nodes: [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                    Node(name: "reshape", opType: "Reshape", inputs: ["r", "shape"], outputs: ["f"])],
            initializers: ["shape": Tensor(shape: [2], ints: [1, 192])],
            inputs: [Self.input()], outputs: [Self.output("f")])
        var shared = try QuantizerPlacement.resolve(graph: reshaped, config: config, defaultActivationBits: 8, defaultParamBits: 8)
        Support.expectError(["f", "keeps the encoding of \"r\""]) { try shared.override(tensor: "f", bitWidth: 16) }
        try shared.disable(tensor: "r")
        #expect(shared.settings(for: "f")?.enabled == false)
    }
}

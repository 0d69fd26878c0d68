import Foundation
import Testing
@testable import WhittleEngine

/// Kernel tests for the elementwise family, against straightforward references written here.
@Suite struct ElementwiseKernelTests {
    // MARK: Helpers

    /// Deterministic pseudo-random floats in [low, high).
    static func random(_ shape: [Int], seed: UInt64, low: Float = -3, high: Float = 3) -> Tensor {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let unit = Float((state >> 40) & 0xFFFFFF) / Float(1 << 24)
            values[i] = low + (high - low) * unit
        }
        return Tensor(shape: shape, floats: values)
    }

    static func node(_ op: String, inputs: Int, outputs: Int = 1, _ attributes: [String: Attribute] = [:],
                     omitted: Set<Int> = []) -> Node {
        Node(name: "n", opType: op,
             inputs: (0..<inputs).map { omitted.contains($0) ? "" : "in\($0)" },
             outputs: (0..<outputs).map { "out\($0)" }, attributes: attributes)
    }

    /// Folds / evaluates a node with every input constant.
    static func evaluate(_ op: String, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                         opset: Int = 13) throws -> Tensor {
        let omitted = Set(inputs.indices.filter { inputs[$0] == nil })
        let node = node(op, inputs: inputs.count, attributes, omitted: omitted)
        return try OperatorRegistry.evaluate(node: node, inputs: inputs, opsetVersion: opset)[0]
    }

    /// Compiles the node's kernel with only `constant` inputs known at compile time, runs it once.
    static func compiled(_ op: String, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                         opset: Int = 13, constant: Set<Int> = []) throws -> Tensor {
        let omitted = Set(inputs.indices.filter { inputs[$0] == nil })
        let node = node(op, inputs: inputs.count, attributes, omitted: omitted)
        let infos = inputs.map { $0.map { TensorInfo(shape: $0.shape, elementType: $0.elementType) } }
        let constants = inputs.indices.map { constant.contains($0) ? inputs[$0] : nil }
        let context = NodeContext(node: node, inputs: infos, constants: constants, opsetVersion: opset)
        let spec = try #require(OperatorRegistry.spec(for: op))
        let outputs = try spec.inferShapes(context)
        let make = try #require(spec.makeKernel)
        let kernel = try make(context, outputs)
        return OperatorRegistry.runOnce(kernel: kernel, inputs: inputs, outputInfos: outputs)[0]
    }

    /// numpy-style broadcast reference: index arithmetic per element.
    static func referenceBroadcast(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        let rank = max(a.rank, b.rank)
        let sa = [Int](repeating: 1, count: rank - a.rank) + a.shape
        let sb = [Int](repeating: 1, count: rank - b.rank) + b.shape
        let out = (0..<rank).map { sa[$0] == 1 ? sb[$0] : sa[$0] }
        let x = a.floats, y = b.floats
        let count = out.reduce(1, *)
        var result = [Float](repeating: 0, count: count)
        for flat in 0..<count {
            var remaining = flat, ia = 0, ib = 0, ma = 1, mb = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let index = remaining % out[axis]
                remaining /= out[axis]
                ia += (sa[axis] == 1 ? 0 : index) * ma
                ib += (sb[axis] == 1 ? 0 : index) * mb
                ma *= sa[axis]
                mb *= sb[axis]
            }
            result[flat] = f(x[ia], y[ib])
        }
        return Tensor(shape: out, floats: result)
    }

    static func expectClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-5,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.shape == expected.shape, sourceLocation: sourceLocation)
        guard actual.shape == expected.shape else { return }
        let x = actual.floats, y = expected.floats
        var worst: Float = 0
        for i in x.indices {
            if x[i].isNaN && y[i].isNaN { continue }
            if x[i] == y[i] { continue }
            worst = max(worst, abs(x[i] - y[i]) / max(1, abs(y[i])))
        }
        #expect(worst <= tolerance, "max relative error \(worst)", sourceLocation: sourceLocation)
    }

    static func map(_ t: Tensor, _ f: (Float) -> Float) -> Tensor {
        Tensor(shape: t.shape, floats: t.floats.map(f))
    }

    // MARK: Unary operators

    @Test(arguments: [
        "Relu", "LeakyRelu", "LeakyRelu0.2", "HardSigmoid", "HardSigmoidCustom", "HardSwish", "Sigmoid", "Tanh",
        "Sqrt", "Exp", "Log", "Neg", "Abs", "Erf", "Reciprocal",
    ])
    func unaryMatchesReference(_ name: String) throws {
        var op = name
        var attributes: [String: Attribute] = [:]
        var input = Self.random([2, 3, 4, 5], seed: 7)
        let reference: (Float) -> Float
        switch name {
        case "Relu": reference = { max($0, 0) }
        case "LeakyRelu": reference = { $0 >= 0 ? $0 : 0.01 * $0 }
        case "LeakyRelu0.2":
            op = "LeakyRelu"; attributes["alpha"] = .float(0.2)
            reference = { $0 >= 0 ? $0 : 0.2 * $0 }
        case "HardSigmoid": reference = { max(0, min(1, 0.2 * $0 + 0.5)) }
        case "HardSigmoidCustom":
            op = "HardSigmoid"; attributes = ["alpha": .float(0.5), "beta": .float(0.25)]
            reference = { max(0, min(1, 0.5 * $0 + 0.25)) }
        case "HardSwish": reference = { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        case "Sigmoid": reference = { Float(1 / (1 + Foundation.exp(-Double($0)))) }
        case "Tanh": reference = { Float(Foundation.tanh(Double($0))) }
        case "Sqrt":
            input = Self.random([2, 3, 4, 5], seed: 7, low: 0, high: 9)
            reference = { Float(Double($0).squareRoot()) }
        case "Exp": reference = { Float(Foundation.exp(Double($0))) }
        case "Log":
            input = Self.random([2, 3, 4, 5], seed: 7, low: 0.01, high: 9)
            reference = { Float(Foundation.log(Double($0))) }
        case "Neg": reference = { -$0 }
        case "Abs": reference = { abs($0) }
        case "Erf": reference = { Float(Foundation.erf(Double($0))) }
        case "Reciprocal": reference = { Float(1 / Double($0)) }
        default: Issue.record("unknown case \(name)"); return
        }
        let expected = Self.map(input, reference)
        Self.expectClose(try Self.evaluate(op, [input], attributes), expected)
        Self.expectClose(try Self.compiled(op, [input], attributes), expected)
    }

    @Test func sigmoidSaturatesWithoutNaN() throws {
        let input = Tensor(shape: [4], floats: [-200, -90, 90, 200])
        let output = try Self.evaluate("Sigmoid", [input]).floats
        #expect(output == [0, 0, 1, 1] || output.allSatisfy { !$0.isNaN })
        #expect(output[0] == 0 && output[3] == 1)
    }

    @Test func largeUnaryUsesParallelChunks() throws {
        let input = Self.random([3, 7, 61, 59], seed: 11)
        Self.expectClose(try Self.compiled("HardSwish", [input]), Self.map(input) { $0 * max(0, min(1, $0 / 6 + 0.5)) })
    }

    // MARK: Clip

    @Test func clipOldOpsetUsesAttributes() throws {
        let input = Self.random([3, 4, 5], seed: 3)
        let both = try Self.compiled("Clip", [input], ["min": .float(-1), "max": .float(0.5)], opset: 6)
        Self.expectClose(both, Self.map(input) { min(max($0, -1), 0.5) })
        let onlyMax = try Self.compiled("Clip", [input], ["max": .float(6)], opset: 6)
        Self.expectClose(onlyMax, Self.map(input) { min($0, 6) })
        let none = try Self.compiled("Clip", [input], [:], opset: 6)
        Self.expectClose(none, input)
    }

    @Test func clipNewOpsetUsesConstantInputs() throws {
        let input = Self.random([3, 4, 5], seed: 4)
        let low = Tensor(shape: [], floats: [0]), high = Tensor(shape: [], floats: [1.5])
        let relu6Like = try Self.compiled("Clip", [input, low, high], opset: 13, constant: [1, 2])
        Self.expectClose(relu6Like, Self.map(input) { min(max($0, 0), 1.5) })
        // Omitted min (empty name) keeps the lower side open.
        let onlyMax = try Self.compiled("Clip", [input, nil, high], opset: 11, constant: [2])
        Self.expectClose(onlyMax, Self.map(input) { min($0, 1.5) })
        // Opset-11 attributes are ignored: bounds come from inputs only.
        let ignored = try Self.compiled("Clip", [input], ["min": .float(0)], opset: 12)
        Self.expectClose(ignored, input)
        // min > max gives max everywhere.
        let inverted = try Self.evaluate("Clip", [input, Tensor(shape: [], floats: [2]), Tensor(shape: [], floats: [1])], opset: 13)
        #expect(inverted.floats.allSatisfy { $0 == 1 })
    }

    @Test func clipRejectsRuntimeBound() throws {
        let input = Self.random([2, 2], seed: 5)
        let high = Tensor(shape: [], floats: [1])
        #expect(throws: WhittleError.self) {
            _ = try Self.compiled("Clip", [input, nil, high], opset: 13, constant: [])
        }
        let node = Self.node("Clip", inputs: 3, omitted: [1])
        let context = NodeContext(node: node, inputs: [TensorInfo(shape: [2, 2]), nil, TensorInfo(shape: [])],
                                  constants: [nil, nil, nil], opsetVersion: 13)
        #expect(OperatorRegistry.fusedActivation(for: context) == nil)
    }

    @Test func fusedActivationRecognisesReluAndConstantClip() {
        func context(_ op: String, _ attributes: [String: Attribute] = [:], constants: [Tensor?] = [nil],
                     opset: Int = 13) -> NodeContext {
            let node = Self.node(op, inputs: constants.count, attributes, omitted: Set(constants.indices.filter { $0 > 0 && constants[$0] == nil }))
            let infos = constants.indices.map { $0 == 0 ? TensorInfo(shape: [1, 4]) : constants[$0].map { TensorInfo(shape: $0.shape) } }
            return NodeContext(node: node, inputs: infos, constants: constants, opsetVersion: opset)
        }
        #expect(OperatorRegistry.fusedActivation(for: context("Relu")) == .relu)
        #expect(OperatorRegistry.fusedActivation(for: context("Sigmoid")) == nil)
        let six = Tensor(shape: [], floats: [6]), zero = Tensor(shape: [], floats: [0])
        #expect(OperatorRegistry.fusedActivation(for: context("Clip", constants: [nil, zero, six])) == .clip(min: 0, max: 6))
        #expect(OperatorRegistry.fusedActivation(for: context("Clip", ["min": .float(0), "max": .float(6)], opset: 9))
                == .clip(min: 0, max: 6))
        #expect(OperatorRegistry.fusedActivation(for: context("Clip", constants: [nil, zero]))
                == .clip(min: 0, max: .infinity))
    }

    // MARK: Broadcasting binary operators

    static let broadcastCases: [([Int], [Int])] = [
        ([2, 3, 4, 5], [2, 3, 4, 5]),   // same shape
        ([2, 3, 4, 5], []),             // scalar right
        ([], [2, 3]),                   // scalar left
        ([2, 3, 4, 5], [1]),            // one-element rank 1
        ([2, 3, 4, 5], [1, 3, 1, 1]),   // per channel
        ([2, 3, 4, 5], [3, 1, 1]),      // per channel, rank mismatch
        ([3, 1, 1], [2, 3, 4, 5]),      // per channel on the left
        ([2, 3, 4, 5], [1, 1, 4, 5]),   // spatial map
        ([2, 3, 4, 5], [2, 3, 1, 1]),   // squeeze-excitation scale
        ([2, 3, 4, 5], [2, 3, 4, 1]),   // last axis broadcast
        ([2, 3, 4, 5], [5]),            // trailing vector
        ([2, 1, 4, 1], [3, 1, 5]),      // both sides broadcast, rank mismatch
        ([4, 1], [1, 5]),               // outer product
        ([1, 3, 1, 5], [2, 1, 4, 1]),   // alternating
        ([2, 0, 3], [1, 3]),            // empty
    ]

    @Test(arguments: ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"])
    func binaryBroadcastMatchesReference(_ op: String) throws {
        let f: (Float, Float) -> Float
        switch op {
        case "Add": f = { $0 + $1 }
        case "Sub": f = { $0 - $1 }
        case "Mul": f = { $0 * $1 }
        case "Div": f = { $0 / $1 }
        case "Pow": f = { Float(Foundation.pow(Double($0), Double($1))) }
        case "Max": f = { max($0, $1) }
        default: f = { min($0, $1) }
        }
        for (index, (shapeA, shapeB)) in Self.broadcastCases.enumerated() {
            let positive = op == "Pow" || op == "Div"
            let a = Self.random(shapeA, seed: UInt64(index), low: positive ? 0.5 : -3, high: 3)
            let b = Self.random(shapeB, seed: UInt64(index + 100), low: positive ? 0.5 : -3, high: 3)
            let expected = Self.referenceBroadcast(a, b, f)
            Self.expectClose(try Self.compiled(op, [a, b]), expected, tolerance: 1e-5)
            Self.expectClose(try Self.evaluate(op, [a, b]), expected, tolerance: 1e-5)
        }
    }

    @Test func broadcastPlanDecomposesCommonCases() {
        let nchw = [2, 16, 8, 8]
        let same = BroadcastPlan(a: nchw, b: nchw, output: nchw)
        #expect(same.rows == 1 && same.inner == 2048 && same.mode == .vectors)
        let scalar = BroadcastPlan(a: nchw, b: [], output: nchw)
        #expect(scalar.rows == 1 && scalar.mode == .scalarB)
        let channel = BroadcastPlan(a: nchw, b: [1, 16, 1, 1], output: nchw)
        #expect(channel.rows == 32 && channel.inner == 64 && channel.mode == .scalarB)
        let spatial = BroadcastPlan(a: [1, 1, 8, 8], b: nchw, output: nchw)
        #expect(spatial.rows == 32 && spatial.inner == 64 && spatial.mode == .vectors)
        #expect(spatial.outerStridesA == [0])
    }

    @Test func largeBroadcastsUseParallelRows() throws {
        let x = Self.random([2, 16, 48, 48], seed: 21)
        for shape in [[1, 16, 1, 1], [2, 16, 1, 1], [16, 1, 1], [1, 1, 48, 48], [2, 16, 48, 48], [1]] {
            let y = Self.random(shape, seed: 22)
            Self.expectClose(try Self.compiled("Mul", [x, y]), Self.referenceBroadcast(x, y, *))
            Self.expectClose(try Self.compiled("Sub", [y, x]), Self.referenceBroadcast(y, x, -))
        }
    }

    @Test func incompatibleBroadcastIsAnError() throws {
        let a = Self.random([2, 3], seed: 1), b = Self.random([4], seed: 2)
        do {
            _ = try Self.compiled("Add", [a, b])
            Issue.record("expected an error")
        } catch let error as WhittleError {
            #expect(error.kind == .shapeMismatch)
            #expect(error.description.contains("cannot broadcast"))
        }
        #expect(throws: WhittleError.self) { _ = try Self.evaluate("Mul", [Self.random([2, 3], seed: 1), Self.random([2, 2], seed: 1)]) }
        #expect(throws: WhittleError.self) { _ = try Self.evaluate("Sum", [a, a, b]) }
        #expect(throws: WhittleError.self) { _ = try Self.evaluate("Add", [Self.random([0], seed: 1), Self.random([2], seed: 1)]) }
    }

    @Test(arguments: [2, 0.5, 1, 3, -1, 1.7, 0] as [Float])
    func powConstantExponentSpecialCases(_ exponent: Float) throws {
        let base = Self.random([2, 3, 40, 50], seed: 9, low: 0.1, high: 4)
        let e = Tensor(shape: [], floats: [exponent])
        let expected = Self.map(base) { Float(Foundation.pow(Double($0), Double(exponent))) }
        Self.expectClose(try Self.compiled("Pow", [base, e], constant: [1]), expected)
        // A rank-raising one-element exponent broadcasts the shape but keeps the fast path.
        let raised = try Self.compiled("Pow", [Self.random([3], seed: 1, low: 0.5, high: 2),
                                               Tensor(shape: [1, 1], floats: [exponent])], constant: [1])
        #expect(raised.shape == [1, 3])
    }

    // MARK: Variadic operators

    @Test func variadicOperatorsBroadcastAllInputs() throws {
        let a = Self.random([2, 3, 4], seed: 1), b = Self.random([3, 1], seed: 2), c = Self.random([4], seed: 3)
        let ab = { (f: (Float, Float) -> Float) in Self.referenceBroadcast(Self.referenceBroadcast(a, b, f), c, f) }
        Self.expectClose(try Self.compiled("Sum", [a, b, c]), ab(+))
        Self.expectClose(try Self.compiled("Max", [a, b, c]), ab { max($0, $1) })
        Self.expectClose(try Self.compiled("Min", [a, b, c]), ab { min($0, $1) })
        Self.expectClose(try Self.compiled("Mean", [a, b, c]), Self.map(ab(+)) { $0 / 3 })
        // The output may come only from a later input.
        Self.expectClose(try Self.compiled("Sum", [c, b, a]), Self.referenceBroadcast(Self.referenceBroadcast(c, b, +), a, +))
        Self.expectClose(try Self.compiled("Max", [a]), a)
        Self.expectClose(try Self.compiled("Mean", [a]), a)
        Self.expectClose(try Self.compiled("Mean", [a, b]), Self.map(Self.referenceBroadcast(a, b, +)) { $0 / 2 })
    }

    // MARK: PRelu

    @Test func preluBroadcastsSlopeToInput() throws {
        let x = Self.random([2, 3, 4, 5], seed: 5)
        for shape in [[3, 1, 1], [5], [1], [1, 3, 1, 1], [2, 3, 4, 5]] {
            let slope = Self.random(shape, seed: 6, low: 0, high: 1)
            let expected = Self.referenceBroadcast(x, slope) { $0 < 0 ? $0 * $1 : $0 }
            Self.expectClose(try Self.compiled("PRelu", [x, slope]), expected)
        }
        #expect(throws: WhittleError.self) { _ = try Self.compiled("PRelu", [x, Self.random([4], seed: 1)]) }
        // Unidirectional: the slope may not enlarge X.
        #expect(throws: WhittleError.self) { _ = try Self.compiled("PRelu", [Self.random([3, 1], seed: 1), Self.random([3, 4], seed: 1)]) }
    }

    // MARK: Softmax

    static func referenceSoftmax(_ x: Tensor, outer: Int, axis: Int, inner: Int) -> Tensor {
        let v = x.floats.map(Double.init)
        var out = [Float](repeating: 0, count: v.count)
        for o in 0..<outer {
            for j in 0..<inner {
                let idx = (0..<axis).map { (o * axis + $0) * inner + j }
                let m = idx.map { v[$0] }.max() ?? 0
                let s = idx.map { Foundation.exp(v[$0] - m) }.reduce(0, +)
                for i in idx { out[i] = Float(Foundation.exp(v[i] - m) / s) }
            }
        }
        return Tensor(shape: x.shape, floats: out)
    }

    @Test func softmaxOldOpsetFlattensTrailingDims() throws {
        let x = Self.random([2, 3, 4], seed: 8)
        // Opset 11 default axis 1: each of the 2 rows of 12 sums to 1.
        Self.expectClose(try Self.compiled("Softmax", [x], opset: 11), Self.referenceSoftmax(x, outer: 2, axis: 12, inner: 1))
        Self.expectClose(try Self.compiled("Softmax", [x], ["axis": .int(-1)], opset: 11), Self.referenceSoftmax(x, outer: 6, axis: 4, inner: 1))
        Self.expectClose(try Self.compiled("Softmax", [x], ["axis": .int(0)], opset: 12), Self.referenceSoftmax(x, outer: 1, axis: 24, inner: 1))
    }

    @Test func softmaxNewOpsetUsesSingleAxis() throws {
        let x = Self.random([2, 3, 4], seed: 8)
        Self.expectClose(try Self.compiled("Softmax", [x], opset: 13), Self.referenceSoftmax(x, outer: 6, axis: 4, inner: 1))
        Self.expectClose(try Self.compiled("Softmax", [x], ["axis": .int(1)], opset: 13), Self.referenceSoftmax(x, outer: 2, axis: 3, inner: 4))
        Self.expectClose(try Self.compiled("Softmax", [x], ["axis": .int(-3)], opset: 13), Self.referenceSoftmax(x, outer: 1, axis: 2, inner: 12))
        // Channel softmax of a segmentation map: inner spans several column tiles.
        let map = Self.random([2, 5, 7, 31], seed: 9)
        Self.expectClose(try Self.compiled("Softmax", [map], ["axis": .int(1)], opset: 13), Self.referenceSoftmax(map, outer: 2, axis: 5, inner: 217))
        #expect(throws: WhittleError.self) { _ = try Self.compiled("Softmax", [x], ["axis": .int(3)], opset: 13) }
    }

    @Test func softmaxIsNumericallyStable() throws {
        let x = Tensor(shape: [2, 3], floats: [1000, 1001, 1002, -1000, -1000, -1000])
        let y = try Self.evaluate("Softmax", [x], opset: 13)
        #expect(y.floats.allSatisfy { $0.isFinite })
        Self.expectClose(y, Self.referenceSoftmax(x, outer: 2, axis: 3, inner: 1))
    }

    // MARK: Reductions

    static func referenceReduce(_ x: Tensor, axes: Set<Int>, keepDims: Bool,
                                _ f: ([Double]) -> Double) -> Tensor {
        let shape = x.shape, v = x.floats.map(Double.init)
        var groups: [[Int]: [Double]] = [:]
        var order: [[Int]] = []
        let strides = contiguousStrides(shape)
        for flat in 0..<v.count {
            let index = shape.indices.map { (flat / strides[$0]) % shape[$0] }
            let key = shape.indices.map { axes.contains($0) ? 0 : index[$0] }
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(v[flat])
        }
        let outShape = shape.indices.compactMap { axes.contains($0) ? (keepDims ? 1 : nil) : shape[$0] }
        return Tensor(shape: outShape, floats: order.map { Float(f(groups[$0] ?? [])) })
    }

    static let mean: @Sendable ([Double]) -> Double = { $0.reduce(0, +) / Double($0.count) }
    static let sum: @Sendable ([Double]) -> Double = { $0.reduce(0, +) }
    static let maximum: @Sendable ([Double]) -> Double = { $0.max() ?? -.infinity }

    @Test(arguments: [[-1], [2, 3], [1], [0], [0, 2], [1, 3], [0, 1, 2, 3], [-3, -1]])
    func reductionsMatchReference(_ axes: [Int]) throws {
        let x = Self.random([2, 3, 4, 5], seed: 13)
        let normalized = Set(axes.map { $0 < 0 ? $0 + 4 : $0 })
        for keep in [1, 0] {
            let attributes: [String: Attribute] = ["axes": .ints(axes), "keepdims": .int(keep)]
            let axesTensor = Tensor.int64(axes.map(Int64.init))
            Self.expectClose(try Self.compiled("ReduceMean", [x], attributes, opset: 13),
                             Self.referenceReduce(x, axes: normalized, keepDims: keep == 1, Self.mean))
            Self.expectClose(try Self.compiled("ReduceMean", [x, axesTensor], ["keepdims": .int(keep)], opset: 18, constant: [1]),
                             Self.referenceReduce(x, axes: normalized, keepDims: keep == 1, Self.mean))
            Self.expectClose(try Self.compiled("ReduceSum", [x], attributes, opset: 11),
                             Self.referenceReduce(x, axes: normalized, keepDims: keep == 1, Self.sum))
            Self.expectClose(try Self.compiled("ReduceSum", [x, axesTensor], ["keepdims": .int(keep)], opset: 13, constant: [1]),
                             Self.referenceReduce(x, axes: normalized, keepDims: keep == 1, Self.sum))
            Self.expectClose(try Self.compiled("ReduceMax", [x], attributes, opset: 13),
                             Self.referenceReduce(x, axes: normalized, keepDims: keep == 1, Self.maximum))
        }
    }

    @Test func reductionLayoutsAreFastPaths() throws {
        let lastAxis = ReduceGeometry(shape: [2, 8, 64], axes: [2], keepDims: true)
        #expect(lastAxis.layout == .trailing(outer: 16, length: 64))
        #expect(lastAxis.outputShape == [2, 8, 1])
        let spatial = ReduceGeometry(shape: [2, 16, 7, 7], axes: [2, 3], keepDims: false)
        #expect(spatial.layout == .trailing(outer: 32, length: 49))
        #expect(spatial.outputShape == [2, 16])
        let channels = ReduceGeometry(shape: [2, 16, 7, 7], axes: [1], keepDims: true)
        #expect(channels.layout == .middle(outer: 2, length: 16, inner: 49))
        // Large inputs exercise the parallel loops.
        let big = Self.random([2, 32, 40, 40], seed: 17)
        Self.expectClose(try Self.compiled("ReduceMean", [big], ["axes": .ints([2, 3])], opset: 13),
                         Self.referenceReduce(big, axes: [2, 3], keepDims: true, Self.mean), tolerance: 1e-4)
        Self.expectClose(try Self.compiled("ReduceSum", [big], ["axes": .ints([1])], opset: 11),
                         Self.referenceReduce(big, axes: [1], keepDims: true, Self.sum), tolerance: 1e-4)
        Self.expectClose(try Self.compiled("ReduceMax", [big], ["axes": .ints([-1])], opset: 13),
                         Self.referenceReduce(big, axes: [3], keepDims: true, Self.maximum))
    }

    @Test func reductionEmptyAxes() throws {
        let x = Self.random([2, 3, 4], seed: 19)
        // No axes: reduce everything.
        let all = try Self.compiled("ReduceSum", [x], ["keepdims": .int(0)], opset: 13)
        #expect(all.shape == [])
        Self.expectClose(all, Tensor(shape: [], floats: [Float(Self.sum(x.floats.map(Double.init)))]))
        let allKept = try Self.compiled("ReduceMean", [x], opset: 18)
        #expect(allKept.shape == [1, 1, 1])
        // noop_with_empty_axes: identity.
        Self.expectClose(try Self.compiled("ReduceMean", [x], ["noop_with_empty_axes": .int(1)], opset: 18), x)
        Self.expectClose(try Self.compiled("ReduceSum", [x, Tensor.int64([])], ["noop_with_empty_axes": .int(1)], opset: 13, constant: [1]), x)
    }

    @Test func reductionErrors() throws {
        let x = Self.random([2, 3, 4], seed: 19)
        #expect(throws: WhittleError.self) { _ = try Self.compiled("ReduceMean", [x], ["axes": .ints([3])], opset: 13) }
        #expect(throws: WhittleError.self) { _ = try Self.compiled("ReduceMean", [x], ["axes": .ints([1, -2])], opset: 13) }
        #expect(throws: WhittleError.self) {
            _ = try Self.compiled("ReduceSum", [x, Tensor.int64([1])], opset: 13, constant: [])
        }
    }

    // MARK: Integer constant folding

    @Test func integerArithmeticFoldsInInt64() throws {
        let a = Tensor.int64([7, -7, 8, 9]), two = Tensor.int64([2], shape: [])
        let div = try Self.evaluate("Div", [a, two])
        #expect(div.elementType == .int64)
        #expect(div.ints == [3, -3, 4, 4])
        #expect(try Self.evaluate("Mul", [a, two]).ints == [14, -14, 16, 18])
        #expect(try Self.evaluate("Sub", [two, a]).ints == [-5, 9, -6, -7])
        let column = Tensor(shape: [2, 1], ints: [1, 10])
        let add = try Self.evaluate("Add", [column, Tensor.int64([1, 2, 3])])
        #expect(add.shape == [2, 3] && add.ints == [2, 3, 4, 11, 12, 13])
        // Big values stay exact (Float would round them).
        let big = try Self.evaluate("Add", [Tensor.int64([Int64(1) << 40 + 1]), Tensor.int64([1])])
        #expect(big.ints == [(Int64(1) << 40) + 2])
        // int32 keeps its type.
        let int32 = try Self.evaluate("Mul", [Tensor(shape: [2], ints: [3, 4], elementType: .int32),
                                               Tensor(shape: [], ints: [5], elementType: .int32)])
        #expect(int32.elementType == .int32 && int32.ints == [15, 20])
        #expect(try Self.evaluate("Neg", [a]).ints == [-7, 7, -8, -9])
        #expect(try Self.evaluate("Abs", [a]).ints == [7, 7, 8, 9])
        #expect(try Self.evaluate("Max", [a, Tensor.int64([0], shape: [])]).ints == [7, 0, 8, 9])
        #expect(try Self.evaluate("Min", [a, Tensor.int64([0], shape: []), Tensor.int64([-8, 0, 0, 0])]).ints == [-8, -7, 0, 0])
        #expect(try Self.evaluate("Sum", [a, a, a]).ints == [21, -21, 24, 27])
        #expect(try Self.evaluate("Pow", [Tensor.int64([2, 3, -2]), Tensor.int64([10, 2, 3])]).ints == [1024, 9, -8])
        #expect(try Self.evaluate("ReduceSum", [Tensor(shape: [2, 2], ints: [1, 2, 3, 4]), Tensor.int64([0])], ["keepdims": .int(0)]).ints == [4, 6])
        #expect(try Self.evaluate("ReduceMax", [Tensor(shape: [2, 2], ints: [1, 5, 3, 4])], ["axes": .ints([1])]).ints == [5, 4])
        #expect(try Self.evaluate("Clip", [a, Tensor.int64([0], shape: []), Tensor.int64([8], shape: [])], opset: 13).ints == [7, 0, 8, 8])
        let identity = try Self.evaluate("Identity", [a])
        #expect(identity == a)
    }

    @Test func integerDivisionByZeroIsAnError() throws {
        do {
            _ = try Self.evaluate("Div", [Tensor.int64([1, 2]), Tensor.int64([1, 0])])
            Issue.record("expected an error")
        } catch let error as WhittleError {
            #expect(error.description.contains("division by zero"))
        }
    }

    @Test func floatFoldingKeepsElementType() throws {
        let a = Tensor(shape: [2], floats: [1.5, 2], elementType: .float64)
        let b = Tensor(shape: [2], floats: [0.5, 4], elementType: .float64)
        let sum = try Self.evaluate("Add", [a, b])
        #expect(sum.elementType == .float64 && sum.floats == [2, 6])
        let mixed = try Self.evaluate("Mul", [Tensor.int64([3]), Tensor(shape: [1], floats: [0.5])])
        #expect(mixed.elementType == .float32 && mixed.floats == [1.5])
    }

    // MARK: Identity and Dropout

    @Test func identityAndDropoutPassThrough() throws {
        let x = Self.random([2, 3], seed: 23)
        Self.expectClose(try Self.compiled("Identity", [x]), x)
        Self.expectClose(try Self.compiled("Dropout", [x]), x)
        Self.expectClose(try Self.compiled("Dropout", [x, Tensor(shape: [], floats: [0.3])], opset: 13, constant: [1]), x)
        #expect(OperatorRegistry.spec(for: "Dropout")?.isDataMovement == true)
        // Requesting the mask is refused.
        let node = Self.node("Dropout", inputs: 1, outputs: 2)
        do {
            _ = try OperatorRegistry.evaluate(node: node, inputs: [x], opsetVersion: 13)
            Issue.record("expected an error")
        } catch let error as WhittleError {
            #expect(error.description.contains("mask"))
        }
        // Training mode is refused.
        #expect(throws: WhittleError.self) {
            _ = try Self.evaluate("Dropout", [x, Tensor(shape: [], floats: [0.5]), Tensor(shape: [], ints: [1], elementType: .bool)])
        }
    }

    @Test func everyRequestedOperatorIsRegistered() {
        for op in ["Relu", "Clip", "LeakyRelu", "PRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Softmax",
                   "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "ReduceMean", "Identity", "Dropout", "Exp", "Log",
                   "Neg", "Abs", "Erf", "Reciprocal", "Max", "Min", "Sum", "Mean", "ReduceSum", "ReduceMax"] {
            #expect(OperatorRegistry.spec(for: op) != nil, "\(op) missing")
        }
    }
}

extension ElementwiseKernelTests {
    @Test func foldRefusesNonConstantInputs() throws {
        let node = Self.node("Add", inputs: 2)
        let context = NodeContext(node: node, inputs: [TensorInfo(shape: [2]), TensorInfo(shape: [2])],
                                  constants: [Tensor(shape: [2], floats: [1, 2]), nil], opsetVersion: 13)
        let fold = try #require(OperatorRegistry.spec(for: "Add")?.fold)
        #expect(throws: WhittleError.self) { _ = try fold(context) }
    }
}

// MARK: Fast paths (vectorisable exponential, in-place loops, chunked parallel loops)

extension ElementwiseKernelTests {
    /// Compiles `op` with every input known only at run time and runs it with output 0
    /// written over input 0's buffer (the in-place case an executor may produce).
    static func runInPlace(_ op: String, _ inputs: [Tensor], _ attributes: [String: Attribute] = [:],
                           opset: Int = 13) throws -> Tensor {
        let node = node(op, inputs: inputs.count, attributes)
        let infos: [TensorInfo?] = inputs.map { TensorInfo(shape: $0.shape) }
        let context = NodeContext(node: node, inputs: infos, constants: inputs.map { _ in nil }, opsetVersion: opset)
        let spec = try #require(OperatorRegistry.spec(for: op))
        let outputs = try spec.inferShapes(context)
        #expect(outputs[0].shape == inputs[0].shape)
        let make = try #require(spec.makeKernel)
        let kernel = try make(context, outputs)
        let buffers = inputs.map { input -> UnsafeMutablePointer<Float> in
            let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, input.count))
            pointer.initialize(from: input.floats, count: input.count)
            return pointer
        }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, kernel.scratchCount))
        defer {
            buffers.forEach { $0.deallocate() }
            scratch.deallocate()
        }
        kernel.run(inputs: buffers.map { UnsafePointer($0) }, outputs: [buffers[0]], scratch: scratch)
        return Tensor(shape: inputs[0].shape, floats: Array(UnsafeBufferPointer(start: buffers[0], count: inputs[0].count)))
    }

    @Test func fastExpIsAccurateAndHandlesSpecialValues() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88.72 {
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(fastExp(x)) - exact) / exact)
            x += 0.0137
        }
        for value in [Float(0), 1e-8, -1e-8, 0.5, -0.3465, 0.3466, 1, -1, 10, -10, 88.4, 88.7, -87.3] {
            let exact = Foundation.exp(Double(value))
            worst = max(worst, abs(Double(fastExp(value)) - exact) / exact)
        }
        #expect(worst < 5e-7, "max relative error \(worst)")
        #expect(fastExp(0) == 1)
        #expect(fastExp(-Float.infinity) == 0)
        #expect(fastExp(-200) == 0)
        #expect(fastExp(Float.infinity) == Float.infinity)
        #expect(fastExp(100) == Float.infinity)
        #expect(fastExp(Float.nan).isNaN)
    }

    @Test(arguments: ["Relu", "Clip", "HardSwish", "Sigmoid", "Exp", "LeakyRelu"])
    func unaryRunsInPlace(_ op: String) throws {
        // Large enough to be split over threads, with a length that is not a multiple of 16.
        let x = Self.random([3, 5, 71, 67], seed: 31, low: -9, high: 9)
        let attributes: [String: Attribute] = op == "Clip" ? ["min": .float(-1), "max": .float(6)] : [:]
        let reference: (Float) -> Float
        switch op {
        case "Relu": reference = { max($0, 0) }
        case "Clip": reference = { min(max($0, -1), 6) }
        case "HardSwish": reference = { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        case "Sigmoid": reference = { Float(1 / (1 + Foundation.exp(-Double($0)))) }
        case "Exp": reference = { Float(Foundation.exp(Double($0))) }
        default: reference = { $0 >= 0 ? $0 : 0.01 * $0 }
        }
        let expected = Self.map(x, reference)
        Self.expectClose(try Self.runInPlace(op, [x], attributes, opset: op == "Clip" ? 6 : 13), expected)
        Self.expectClose(try Self.compiled(op, [x], attributes, opset: op == "Clip" ? 6 : 13), expected)
    }

    @Test func binaryRunsInPlace() throws {
        let x = Self.random([2, 16, 48, 48], seed: 41)
        for shape in [[2, 16, 48, 48], [1, 16, 1, 1], [1], [48]] {
            let y = Self.random(shape, seed: 42)
            Self.expectClose(try Self.runInPlace("Add", [x, y]), Self.referenceBroadcast(x, y, +))
            Self.expectClose(try Self.runInPlace("Div", [x, y]), Self.referenceBroadcast(x, y, /))
            Self.expectClose(try Self.runInPlace("PRelu", [x, y]),
                             Self.referenceBroadcast(x, y) { $0 < 0 ? $1 * $0 : $0 })
        }
    }

    @Test func largeVariadicAccumulatesInPlace() throws {
        let a = Self.random([2, 8, 50, 50], seed: 51), b = Self.random([8, 1, 1], seed: 52)
        let c = Self.random([2, 8, 50, 50], seed: 53), d = Self.random([50], seed: 54)
        let sum = Self.referenceBroadcast(Self.referenceBroadcast(Self.referenceBroadcast(a, b, +), c, +), d, +)
        Self.expectClose(try Self.compiled("Sum", [a, b, c, d]), sum)
        Self.expectClose(try Self.compiled("Mean", [a, b, c, d]), Self.map(sum) { $0 / 4 })
        let maximum = Self.referenceBroadcast(Self.referenceBroadcast(Self.referenceBroadcast(a, b, max), c, max), d, max)
        Self.expectClose(try Self.compiled("Max", [a, b, c, d]), maximum)
    }

    @Test func elementChunksCoverEveryIndexOnce() {
        for count in [0, 1, 15, elementwiseParallelChunk - 1, 2 * elementwiseParallelChunk + 37, 5 * elementwiseParallelChunk + 5] {
            let visits = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, count))
            defer { visits.deallocate() }
            visits.initialize(repeating: 0, count: max(1, count))
            forEachElementChunk(count) { start, end in
                for i in start..<end { visits[i] += 1 }
            }
            #expect((0..<count).allSatisfy { visits[$0] == 1 }, "count \(count)")
            var rows = [Int32](repeating: 0, count: 301)
            rows.withUnsafeMutableBufferPointer { buffer in
                let pointer = buffer.baseAddress!
                forEachRowRange(301, elementsPerRow: count / 301 + 1) { first, last in
                    for row in first..<last { pointer[row] += 1 }
                }
            }
            #expect(rows.allSatisfy { $0 == 1 }, "rows for count \(count)")
        }
    }

    @Test func largeBroadcastOverManyAlternatingAxes() throws {
        // Outer axes alternate between the operands, and the thread split starts mid-odometer.
        let a = Self.random([6, 1, 20, 1, 33], seed: 61), b = Self.random([1, 8, 1, 9, 1], seed: 62)
        Self.expectClose(try Self.compiled("Sub", [a, b]), Self.referenceBroadcast(a, b, -))
        Self.expectClose(try Self.compiled("Mul", [b, a]), Self.referenceBroadcast(b, a, *))
    }

    @Test func largeSoftmaxRowsUseFastExponential() throws {
        var x = Self.random([64, 1001], seed: 71, low: -40, high: 40)
        var values = x.floats
        for row in 0..<64 { values[row * 1001 + row] = -Float.infinity }
        x = Tensor(shape: [64, 1001], floats: values)
        let y = try Self.compiled("Softmax", [x], opset: 13)
        Self.expectClose(y, Self.referenceSoftmax(x, outer: 64, axis: 1001, inner: 1))
        #expect((0..<64).allSatisfy { y.floats[$0 * 1001 + $0] == 0 })
        let columns = Self.random([4, 40, 30, 30], seed: 72, low: -20, high: 20)
        Self.expectClose(try Self.compiled("Softmax", [columns], ["axis": .int(1)], opset: 13),
                         Self.referenceSoftmax(columns, outer: 4, axis: 40, inner: 900))
    }

    @Test func reductionRowsWithRaggedLengths() throws {
        for length in [1, 7, 8, 9, 13, 1000] {
            let x = Self.random([40, length], seed: UInt64(length), low: -5, high: 5)
            Self.expectClose(try Self.compiled("ReduceSum", [x], ["axes": .ints([1])], opset: 11),
                             Self.referenceReduce(x, axes: [1], keepDims: true, Self.sum), tolerance: 1e-4)
            Self.expectClose(try Self.compiled("ReduceMax", [x], ["axes": .ints([1])], opset: 13),
                             Self.referenceReduce(x, axes: [1], keepDims: true, Self.maximum))
        }
    }
}

import Testing
@testable import WhittleEngine

// MARK: - Harness

/// Builds a node whose inputs are named `in0`, `in1`, … ("" for nil) and outputs `out0`, ….
private func makeNode(_ opType: String, inputs: [Tensor?], outputs: Int, attributes: [String: Attribute]) -> Node {
    Node(name: "n", opType: opType,
         inputs: inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" },
         outputs: (0..<outputs).map { "out\($0)" }, attributes: attributes)
}

/// Runs a node both ways the engine can: folded (`evaluate`, every input constant) and, when
/// the data is float and the operator has a kernel, compiled with the inputs in `runtime`
/// unknown at compile time. Checks the two agree and returns the folded result.
private func run(_ opType: String, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                 opset: Int = 13, outputs: Int = 1, runtime: Set<Int> = [0]) throws -> [Tensor] {
    let node = makeNode(opType, inputs: inputs, outputs: outputs, attributes: attributes)
    let folded = try OperatorRegistry.evaluate(node: node, inputs: inputs, opsetVersion: opset)
    let spec = try #require(OperatorRegistry.spec(for: opType))
    let infos = inputs.map { $0.map { TensorInfo(shape: $0.shape, elementType: $0.elementType) } }
    let constants = inputs.enumerated().map { runtime.contains($0.offset) ? nil : $0.element }
    let context = NodeContext(node: node, inputs: infos, constants: constants, opsetVersion: opset)
    let outputInfos = try spec.inferShapes(context)
    #expect(outputInfos.map(\.shape) == folded.map(\.shape))
    #expect(outputInfos.map(\.elementType) == folded.map(\.elementType))
    let dataIsFloat = runtime.allSatisfy { inputs[$0]?.isFloatingPoint ?? true }
    if let makeKernel = spec.makeKernel, dataIsFloat, !runtime.isEmpty {
        let kernel = try makeKernel(context, outputInfos)
        let compiled = OperatorRegistry.runOnce(kernel: kernel, inputs: inputs, outputInfos: outputInfos)
        #expect(compiled.map(\.floats) == folded.map(\.floats), "kernel and fold disagree for \(opType)")
    }
    return folded
}

/// Compiles a node with the inputs in `runtime` unknown and returns the error, if any.
private func compileError(_ opType: String, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                          opset: Int = 13, outputs: Int = 1, runtime: Set<Int> = [0]) -> WhittleError? {
    let node = makeNode(opType, inputs: inputs, outputs: outputs, attributes: attributes)
    let spec = OperatorRegistry.spec(for: opType)
    let infos = inputs.map { $0.map { TensorInfo(shape: $0.shape, elementType: $0.elementType) } }
    let constants = inputs.enumerated().map { runtime.contains($0.offset) ? nil : $0.element }
    let context = NodeContext(node: node, inputs: infos, constants: constants, opsetVersion: opset)
    do {
        let outputs = try spec?.inferShapes(context) ?? []
        _ = try spec?.makeKernel?(context, outputs)
        return nil
    } catch let error as WhittleError {
        return error
    } catch {
        return WhittleError(.invalidData, "", "\(error)")
    }
}

/// A float tensor holding 0, 1, 2, … (or a deterministic pseudo-random pattern).
private func ramp(_ shape: [Int], scrambled: Bool = false) -> Tensor {
    let count = shape.reduce(1, *)
    return Tensor(shape: shape, floats: (0..<count).map { scrambled ? Float(($0 * 7919 + 13) % 1009) - 500 : Float($0) })
}

private func ints(_ values: [Int], shape: [Int]? = nil) -> Tensor { Tensor.int64(values.map(Int64.init), shape: shape) }

private func coordinates(_ flat: Int, _ shape: [Int]) -> [Int] {
    var result = [Int](repeating: 0, count: shape.count)
    var remaining = flat
    for axis in shape.indices.reversed() {
        result[axis] = remaining % shape[axis]
        remaining /= shape[axis]
    }
    return result
}

private func flat(_ coordinates: [Int], _ shape: [Int]) -> Int {
    zip(coordinates, shape).reduce(0) { $0 * $1.1 + $1.0 }
}

/// Reference: output element at each coordinate taken from `input[pick(coordinates)]`.
private func reference(_ input: Tensor, outputShape: [Int], pick: ([Int]) -> [Int]) -> [Float] {
    let values = input.floats
    return (0..<outputShape.reduce(1, *)).map { values[flat(pick(coordinates($0, outputShape)), input.shape)] }
}

// MARK: - Reshape family

@Suite struct LayoutReshapeTests {
    @Test func flattenAxes() throws {
        let x = ramp([2, 3, 4, 5])
        #expect(try run("Flatten", [x])[0].shape == [2, 60])
        #expect(try run("Flatten", [x], ["axis": .int(0)])[0].shape == [1, 120])
        #expect(try run("Flatten", [x], ["axis": .int(-1)])[0].shape == [24, 5])
        #expect(try run("Flatten", [x], ["axis": .int(4)])[0].shape == [120, 1])
        #expect(try run("Flatten", [x], ["axis": .int(3)])[0].floats == x.floats)
        #expect(compileError("Flatten", [x], ["axis": .int(5)]) != nil)
    }

    @Test func reshapeZeroAndMinusOne() throws {
        let x = ramp([2, 3, 4])
        let a = try run("Reshape", [x, ints([0, -1])], runtime: [0])[0]
        #expect(a.shape == [2, 12])
        #expect(a.floats == x.floats)
        #expect(try run("Reshape", [x, ints([-1, 0, 2])])[0].shape == [4, 3, 2])
        #expect(try run("Reshape", [x, ints([0, 0, -1])])[0].shape == [2, 3, 4])
        #expect(try run("Reshape", [x, ints([4, 0, -1])])[0].shape == [4, 3, 2])
        #expect(try run("Reshape", [x, ints([-1])])[0].shape == [24])
        // allowzero: a 0 stays an empty dimension (only valid for empty tensors).
        let empty = Tensor(shape: [0, 3], floats: [])
        #expect(try run("Reshape", [empty, ints([3, 0])], ["allowzero": .int(1)], opset: 14)[0].shape == [3, 0])
        // Without allowzero the 0 copies dimension 1 (3), giving 9 elements instead of 0.
        #expect(compileError("Reshape", [empty, ints([3, 0])], opset: 14)?.kind == .shapeMismatch)
        // Int64 data keeps its type when folded.
        let shapeVector = ints([1, 2, 3, 4])
        let folded = try run("Reshape", [shapeVector, ints([2, -1])], runtime: [])[0]
        #expect(folded.elementType == .int64 && folded.ints == [1, 2, 3, 4] && folded.shape == [2, 2])
    }

    @Test func reshapeErrors() throws {
        let x = ramp([2, 3, 4])
        let incompatible = compileError("Reshape", [x, ints([5, -1])])
        #expect(incompatible?.kind == .shapeMismatch)
        #expect(compileError("Reshape", [x, ints([5, 5])])?.kind == .shapeMismatch)
        #expect(compileError("Reshape", [x, ints([-1, -1])]) != nil)
        let dynamic = compileError("Reshape", [x, ints([24])], runtime: [0, 1])
        #expect(dynamic?.description.contains("compile-time constant") == true)
        #expect(dynamic?.subject == "node 'n' (Reshape)")
        #expect(compileError("Reshape", [x, ints([24])]) == nil)
    }

    @Test func squeezeAndUnsqueeze() throws {
        let x = ramp([1, 3, 1, 2])
        #expect(try run("Squeeze", [x])[0].shape == [3, 2])
        #expect(try run("Squeeze", [x, ints([-2])])[0].shape == [1, 3, 2])
        #expect(try run("Squeeze", [x], ["axes": .ints([0])], opset: 11)[0].shape == [3, 1, 2])
        #expect(compileError("Squeeze", [x, ints([1])]) != nil)
        let y = ramp([3, 2])
        #expect(try run("Unsqueeze", [y, ints([0, -1])])[0].shape == [1, 3, 2, 1])
        #expect(try run("Unsqueeze", [y, ints([1, 3])])[0].shape == [3, 1, 2, 1])
        #expect(try run("Unsqueeze", [y], ["axes": .ints([0])], opset: 11)[0].shape == [1, 3, 2])
        #expect(try run("Unsqueeze", [y, ints([0])])[0].floats == y.floats)
        #expect(compileError("Unsqueeze", [y, ints([0, 0])]) != nil)
        let scalar = try run("Unsqueeze", [Tensor.int64([7], shape: []), ints([0])], runtime: [])[0]
        #expect(scalar.shape == [1] && scalar.ints == [7] && scalar.elementType == .int64)
    }
}

// MARK: - Views

@Suite struct LayoutViewTests {
    /// All permutations of `0..<n`.
    private func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { var q = p; q.insert(n - 1, at: $0); return q } }
    }

    @Test func transposeEveryPermutation() throws {
        let x = ramp([2, 3, 4, 5], scrambled: true)
        for perm in permutations(4) {
            let out = try run("Transpose", [x], ["perm": .ints(perm)])[0]
            let outShape = perm.map { x.shape[$0] }
            #expect(out.shape == outShape)
            let expected = reference(x, outputShape: outShape) { c in
                var input = [Int](repeating: 0, count: 4)
                for (i, axis) in perm.enumerated() { input[axis] = c[i] }
                return input
            }
            #expect(out.floats == expected, "perm \(perm)")
        }
    }

    @Test func transposeLargeAndDefault() throws {
        // Big enough for the tiled path and for more than one thread.
        let x = ramp([2, 67, 9, 45], scrambled: true)
        for perm in [[0, 2, 3, 1], [0, 3, 1, 2], [3, 2, 1, 0], [1, 0, 3, 2]] {
            let out = try run("Transpose", [x], ["perm": .ints(perm)])[0]
            let outShape = perm.map { x.shape[$0] }
            let expected = reference(x, outputShape: outShape) { c in
                var input = [Int](repeating: 0, count: 4)
                for (i, axis) in perm.enumerated() { input[axis] = c[i] }
                return input
            }
            #expect(out.floats == expected, "perm \(perm)")
        }
        let m = ramp([2, 3])
        let t = try run("Transpose", [m])[0]
        #expect(t.shape == [3, 2] && t.floats == [0, 3, 1, 4, 2, 5])
        #expect(compileError("Transpose", [m], ["perm": .ints([0, 0])]) != nil)
    }

    /// The indices ONNX Slice picks along one axis, as its spec words it: negative values get
    /// `size` added, then starts clamp to `[0, size]` (`[0, size - 1]` for negative steps) and
    /// ends to `[0, size]` (`[-1, size - 1]`). Unlike Python, a start below `-size` with a
    /// negative step still selects element 0.
    private func onnxSlice(_ start: Int, _ end: Int, _ step: Int, size: Int) -> [Int] {
        func adjust(_ v: Int) -> Int { v < 0 ? (v < -size ? -size - 1 : v + size) : v }
        let s = step > 0 ? min(max(adjust(start), 0), size) : min(max(adjust(start), 0), size - 1)
        let e = step > 0 ? min(max(adjust(end), 0), size) : min(max(adjust(end), -1), size - 1)
        return Array(stride(from: s, to: e, by: step))
    }

    @Test func sliceHandExamples() throws {
        let x = ramp([2, 5])
        // Negative step over the whole row: ends = INT64_MIN.
        let reversed = try run("Slice", [x, ints([-1]), Tensor.int64([Int64.min]), ints([1]), ints([-1])])[0]
        #expect(reversed.floats == [4, 3, 2, 1, 0, 9, 8, 7, 6, 5])
        // INT64_MAX end clamps to the axis size; negative axis.
        let tail = try run("Slice", [x, ints([2]), Tensor.int64([Int64.max]), ints([-1])])[0]
        #expect(tail.shape == [2, 3] && tail.floats == [2, 3, 4, 7, 8, 9])
        // Step 2 from the end backwards: 4, 2, 0.
        let everyOther = try run("Slice", [x, ints([Int(Int64.max)]), ints([-100]), ints([1]), ints([-2])])[0]
        #expect(everyOther.floats == [4, 2, 0, 9, 7, 5])
        // Empty result.
        #expect(try run("Slice", [x, ints([3]), ints([1]), ints([1])])[0].shape == [2, 0])
        // Opset 9: attributes.
        let old = try run("Slice", [x], ["starts": .ints([1, 1]), "ends": .ints([2, 1000])], opset: 9)[0]
        #expect(old.shape == [1, 4] && old.floats == [6, 7, 8, 9])
        #expect(compileError("Slice", [x, ints([0]), ints([1]), ints([0]), ints([0])]) != nil)
        #expect(compileError("Slice", [x, ints([0]), ints([1])], runtime: [0, 2]) != nil)
        // Folding int64 shape vectors (shape[2:]).
        let dims = try run("Slice", [ints([1, 3, 224, 224]), ints([2]), Tensor.int64([Int64.max])], runtime: [])[0]
        #expect(dims.ints == [224, 224] && dims.elementType == .int64)
    }

    @Test func sliceMatchesSpecSemantics() throws {
        let x = ramp([4, 6, 5], scrambled: true)
        let bounds = [Int(Int64.min), -9, -6, -3, -1, 0, 1, 2, 4, 5, 6, 9, Int(Int64.max)]
        let steps = [Int(Int64.min), -3, -1, 1, 2, Int(Int64.max)]
        var checked = 0
        for (index, start) in bounds.enumerated() {
            let end = bounds[(index * 5 + 3) % bounds.count]
            for step in steps {
                let axis = (index + step & 3) % 3
                let signedAxis = index % 2 == 0 ? axis : axis - 3
                let picks = onnxSlice(start, end, step, size: x.shape[axis])
                var outShape = x.shape
                outShape[axis] = picks.count
                let out = try run("Slice", [x, Tensor.int64([Int64(start)]), Tensor.int64([Int64(end)]),
                                            ints([signedAxis]), Tensor.int64([Int64(step)])])[0]
                let expected = reference(x, outputShape: outShape) { c in
                    var input = c
                    input[axis] = picks[c[axis]]
                    return input
                }
                #expect(out.shape == outShape && out.floats == expected, "start \(start) end \(end) step \(step) axis \(axis)")
                checked += 1
            }
        }
        // Several axes at once, one reversed.
        let multi = try run("Slice", [x, ints([1, -1]), ints([3, -6]), ints([0, 2]), ints([1, -2])])[0]
        let expected = reference(x, outputShape: [2, 6, 3]) { c in [c[0] + 1, c[1], 4 - 2 * c[2]] }
        #expect(multi.shape == [2, 6, 3] && multi.floats == expected)
        #expect(checked == bounds.count * steps.count)
    }

    @Test func expandBroadcasts() throws {
        let x = ramp([3, 1])
        let out = try run("Expand", [x, ints([2, 1, 4])])[0]
        #expect(out.shape == [2, 3, 4])
        #expect(out.floats == reference(x, outputShape: [2, 3, 4]) { c in [c[1], 0] })
        #expect(try run("Expand", [x, ints([1])])[0].shape == [3, 1])
        #expect(compileError("Expand", [x, ints([2, 2])]) != nil)
        let folded = try run("Expand", [Tensor.int64([5], shape: []), ints([3])], runtime: [])[0]
        #expect(folded.ints == [5, 5, 5] && folded.elementType == .int64)
    }
}

// MARK: - Concat, Split, Gather

@Suite struct LayoutJoinTests {
    @Test func concatAxes() throws {
        let a = ramp([2, 2, 3]), b = ramp([2, 1, 3], scrambled: true)
        for axis in [1, -2] {
            let out = try run("Concat", [a, b], ["axis": .int(axis)], runtime: [0, 1])[0]
            #expect(out.shape == [2, 3, 3])
            let reference = (0..<18).map { i -> Float in
                let c = coordinates(i, [2, 3, 3])
                return c[1] < 2 ? a.floats[flat(c, [2, 2, 3])] : b.floats[flat([c[0], 0, c[2]], [2, 1, 3])]
            }
            #expect(out.floats == reference)
        }
        let shapeVector = try run("Concat", [ints([1, 3]), ints([-1])], ["axis": .int(0)], runtime: [])[0]
        #expect(shapeVector.ints == [1, 3, -1] && shapeVector.elementType == .int64)
        #expect(compileError("Concat", [a, ramp([2, 2, 4])], ["axis": .int(1)], runtime: [0, 1])?.kind == .shapeMismatch)
        // Many rows, exercising the threaded path.
        let big1 = ramp([300, 40]), big2 = ramp([300, 8], scrambled: true)
        let big = try run("Concat", [big1, big2], ["axis": .int(-1)], runtime: [0, 1])[0]
        #expect(big.floats[48 * 299 + 40] == big2.floats[8 * 299])
    }

    @Test func splitForms() throws {
        let x = ramp([2, 7])
        let sizes = try run("Split", [x, ints([2, 5])], ["axis": .int(1)], outputs: 2)
        #expect(sizes.map(\.shape) == [[2, 2], [2, 5]])
        #expect(sizes[0].floats == [0, 1, 7, 8])
        #expect(sizes[1].floats == [2, 3, 4, 5, 6, 9, 10, 11, 12, 13])
        let attribute = try run("Split", [x], ["axis": .int(-1), "split": .ints([3, 4])], opset: 11, outputs: 2)
        #expect(attribute.map(\.shape) == [[2, 3], [2, 4]])
        let uneven = try run("Split", [x], ["axis": .int(1), "num_outputs": .int(3)], opset: 18, outputs: 3)
        #expect(uneven.map(\.shape) == [[2, 3], [2, 3], [2, 1]])
        #expect(uneven[2].floats == [6, 13])
        let equal = try run("Split", [x], [:], outputs: 2)
        #expect(equal.map(\.shape) == [[1, 7], [1, 7]] && equal[1].floats == Array(x.floats[7...]))
        #expect(compileError("Split", [x], ["axis": .int(1)], outputs: 2)?.kind == .shapeMismatch)
        #expect(compileError("Split", [x, ints([2, 4])], ["axis": .int(1)], outputs: 2)?.kind == .shapeMismatch)
    }

    @Test func gatherShapeVectors() throws {
        let shape = ints([1, 3, 224, 224])
        let last = try run("Gather", [shape, Tensor.int64([-1], shape: [])], runtime: [])[0]
        #expect(last.shape == [] && last.ints == [224] && last.elementType == .int64)
        let picked = try run("Gather", [shape, ints([0, 2, -3])], runtime: [])[0]
        #expect(picked.shape == [3] && picked.ints == [1, 224, 3])
        #expect(compileError("Gather", [shape, ints([4])], runtime: []) != nil)
        let node = makeNode("Gather", inputs: [shape, ints([4])], outputs: 1, attributes: [:])
        #expect(throws: WhittleError.self) {
            try OperatorRegistry.evaluate(node: node, inputs: [shape, ints([4])], opsetVersion: 13)
        }
    }

    @Test func gatherFloatData() throws {
        let x = ramp([2, 4, 3], scrambled: true)
        let indices = ints([3, -4, 1, -1, 0, 2], shape: [2, 3])
        let out = try run("Gather", [x, indices], ["axis": .int(-2)])[0]
        #expect(out.shape == [2, 2, 3, 3])
        let normalized = [3, 0, 1, 3, 0, 2]
        #expect(out.floats == reference(x, outputShape: [2, 2, 3, 3]) { c in [c[0], normalized[c[1] * 3 + c[2]], c[3]] })
        let lastAxis = try run("Gather", [x, ints([2, 0])], ["axis": .int(2)])[0]
        #expect(lastAxis.floats == reference(x, outputShape: [2, 4, 2]) { c in [c[0], c[1], [2, 0][c[2]]] })
        let dynamic = compileError("Gather", [x, indices], runtime: [0, 1])
        #expect(dynamic?.description.contains("compile-time constant") == true)
    }
}

// MARK: - Pad

@Suite struct LayoutPadTests {
    /// numpy-style padding reference, by explicit reflection/clamping loops.
    private func padReference(_ x: Tensor, pads: [Int], mode: String, value: Float) -> (shape: [Int], values: [Float]) {
        let rank = x.rank
        let outShape = (0..<rank).map { x.shape[$0] + pads[$0] + pads[$0 + rank] }
        let values = (0..<outShape.reduce(1, *)).map { i -> Float in
            var c = coordinates(i, outShape)
            for axis in 0..<rank {
                var p = c[axis] - pads[axis]
                let size = x.shape[axis]
                switch mode {
                case "edge": p = min(max(p, 0), size - 1)
                case "reflect":
                    while p < 0 || p >= size {
                        if p < 0 { p = -p }
                        if p >= size { p = 2 * (size - 1) - p }
                    }
                default:
                    if p < 0 || p >= size { return value }
                }
                c[axis] = p
            }
            return x.floats[flat(c, x.shape)]
        }
        return (outShape, values)
    }

    @Test func padModes() throws {
        let x = ramp([2, 3, 4], scrambled: true)
        let padLists = [[0, 1, 2, 0, 2, 1], [1, 0, 0, 0, 2, 3], [0, 2, 3, 0, 2, 3], [0, -1, 1, 1, 0, -2]]
        for mode in ["constant", "reflect", "edge"] {
            for pads in padLists {
                let out = try run("Pad", [x, ints(pads), Tensor(shape: [], floats: [2.5])], ["mode": .string(mode)])[0]
                let expected = padReference(x, pads: pads, mode: mode, value: 2.5)
                #expect(out.shape == expected.shape && out.floats == expected.values, "\(mode) \(pads)")
            }
        }
        // Hand-checked reflect and edge rows.
        let row = Tensor(shape: [1, 3], floats: [1, 2, 3])
        #expect(try run("Pad", [row, ints([0, 2, 0, 2])], ["mode": .string("reflect")])[0].floats == [3, 2, 1, 2, 3, 2, 1])
        #expect(try run("Pad", [row, ints([0, 2, 0, 1])], ["mode": .string("edge")])[0].floats == [1, 1, 1, 2, 3, 3])
        #expect(try run("Pad", [row, ints([0, 1, 0, -2])])[0].floats == [0, 1])
    }

    @Test func padOpsetFormsAndErrors() throws {
        let x = ramp([1, 1, 2, 2])
        let old = try run("Pad", [x], ["pads": .ints([0, 0, 1, 0, 0, 0, 0, 1]), "value": .float(-1)], opset: 2)[0]
        #expect(old.shape == [1, 1, 3, 3])
        #expect(old.floats == [-1, -1, -1, 0, 1, -1, 2, 3, -1])
        let axes = try run("Pad", [x, ints([1, 1]), nil, ints([-1])], opset: 18)[0]
        #expect(axes.shape == [1, 1, 2, 4] && axes.floats == [0, 0, 1, 0, 0, 2, 3, 0])
        let folded = try run("Pad", [ints([5, 6]), ints([1, 2]), Tensor.int64([9], shape: [])], runtime: [])[0]
        #expect(folded.ints == [9, 5, 6, 9, 9] && folded.elementType == .int64)
        #expect(compileError("Pad", [x, ints([0, 0, 0, -3, 0, 0, 0, 0])])?.kind == .shapeMismatch)
        #expect(compileError("Pad", [x, ints([1, 1])]) != nil)
        #expect(compileError("Pad", [x, ints([0, 0, 0, 0, 0, 0, 0, 0])], runtime: [0, 1]) != nil)
    }
}

// MARK: - Resize

@Suite struct LayoutResizeTests {
    private let square = Tensor(shape: [1, 1, 2, 2], floats: [1, 2, 3, 4])
    private func scales(_ values: [Float]) -> Tensor { Tensor(shape: [values.count], floats: values) }
    private let noRoi = Tensor(shape: [0], floats: [])

    private func resize(_ x: Tensor, scales s: [Float]? = nil, sizes: [Int]? = nil, _ attributes: [String: Attribute],
                        opset: Int = 13) throws -> Tensor {
        let inputs: [Tensor?] = [x, noRoi, s.map(scales) ?? nil, sizes.map { ints($0) }]
        return try run("Resize", inputs, attributes, opset: opset)[0]
    }

    @Test func linearHandComputed() throws {
        let halfPixel = try resize(square, scales: [1, 1, 2, 2], ["mode": .string("linear")])
        #expect(halfPixel.shape == [1, 1, 4, 4])
        #expect(halfPixel.floats == [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4])
        let asymmetric = try resize(square, scales: [1, 1, 2, 2],
                                    ["mode": .string("linear"), "coordinate_transformation_mode": .string("asymmetric")])
        #expect(asymmetric.floats == [1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4])
        let corners = try resize(square, sizes: [1, 1, 4, 4],
                                 ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")])
        let expected = (0..<16).map { Float(1) + Float($0 % 4) / 3 + 2 * Float($0 / 4) / 3 }
        #expect(zip(corners.floats, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        // pytorch_half_pixel: an output length of 1 samples coordinate 0.
        let single = try resize(square, sizes: [1, 1, 1, 4],
                                ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")])
        #expect(single.floats == [1, 1.25, 1.75, 2])
    }

    /// Reference: every output element computed directly from the ONNX formulas.
    private func linearReference(_ x: Tensor, outH: Int, outW: Int, mode: String, scaleH: Double, scaleW: Double) -> [Float] {
        let n = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        func source(_ o: Int, _ scale: Double, _ length: Int, _ outLength: Int) -> Double {
            let v: Double
            switch mode {
            case "asymmetric": v = Double(o) / scale
            case "align_corners": v = outLength == 1 ? 0 : Double(o) * Double(length - 1) / Double(outLength - 1)
            case "pytorch_half_pixel": v = outLength > 1 ? (Double(o) + 0.5) / scale - 0.5 : 0
            default: v = (Double(o) + 0.5) / scale - 0.5
            }
            return min(max(v, 0), Double(length - 1))
        }
        let values = x.floats
        var result: [Float] = []
        for p in 0..<n {
            for oy in 0..<outH {
                for ox in 0..<outW {
                    let sy = source(oy, scaleH, h, outH), sx = source(ox, scaleW, w, outW)
                    let y0 = Int(sy), x0 = Int(sx)
                    let y1 = min(y0 + 1, h - 1), x1 = min(x0 + 1, w - 1)
                    let dy = sy - Double(y0), dx = sx - Double(x0)
                    func at(_ row: Int, _ column: Int) -> Double { Double(values[(p * h + row) * w + column]) }
                    let v = (1 - dy) * ((1 - dx) * at(y0, x0) + dx * at(y0, x1)) + dy * ((1 - dx) * at(y1, x0) + dx * at(y1, x1))
                    result.append(Float(v))
                }
            }
        }
        return result
    }

    @Test func linearMatchesReference() throws {
        let x = ramp([2, 3, 5, 4], scrambled: true)
        for mode in ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"] {
            let attributes: [String: Attribute] = ["mode": .string("linear"), "coordinate_transformation_mode": .string(mode)]
            let up = try resize(x, scales: [1, 1, 1.5, 2.25], attributes)
            #expect(up.shape == [2, 3, 7, 9])
            let expectedUp = linearReference(x, outH: 7, outW: 9, mode: mode, scaleH: 1.5, scaleW: 2.25)
            #expect(zip(up.floats, expectedUp).allSatisfy { abs($0 - $1) < 1e-3 }, "\(mode) up")
            let down = try resize(x, sizes: [2, 3, 3, 3], attributes)
            let expectedDown = linearReference(x, outH: 3, outW: 3, mode: mode, scaleH: 3.0 / 5.0, scaleW: 3.0 / 4.0)
            #expect(zip(down.floats, expectedDown).allSatisfy { abs($0 - $1) < 1e-3 }, "\(mode) down")
        }
    }

    @Test func nearestHandComputed() throws {
        let pair = Tensor(shape: [1, 2], floats: [1, 2])
        func nearest(_ rounding: String, _ coordinates: String) throws -> [Float] {
            try resize(pair, scales: [1, 2], ["nearest_mode": .string(rounding),
                                              "coordinate_transformation_mode": .string(coordinates)]).floats
        }
        #expect(try nearest("round_prefer_floor", "asymmetric") == [1, 1, 2, 2])
        #expect(try nearest("round_prefer_ceil", "asymmetric") == [1, 2, 2, 2])
        #expect(try nearest("floor", "asymmetric") == [1, 1, 2, 2])
        #expect(try nearest("ceil", "asymmetric") == [1, 2, 2, 2])
        #expect(try nearest("round_prefer_floor", "half_pixel") == [1, 1, 2, 2])
        #expect(try nearest("round_prefer_ceil", "align_corners") == [1, 1, 2, 2])
        let row = Tensor(shape: [1, 4], floats: [10, 20, 30, 40])
        let down = try resize(row, scales: [1, 0.6], [:])
        #expect(down.shape == [1, 2] && down.floats == [10, 30])
        // Default mode is nearest with half_pixel and round_prefer_floor.
        let up = try resize(square, scales: [1, 1, 2, 2], [:])
        #expect(up.floats == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    }

    /// Reference nearest lookup written straight from the ONNX formulas.
    private func nearestIndex(_ o: Int, scale: Double, length: Int, outLength: Int, coordinates: String, rounding: String) -> Int {
        let v: Double
        switch coordinates {
        case _ where scale == 1 && length == outLength: return o
        case "asymmetric": v = Double(o) / scale
        case "align_corners": v = outLength == 1 ? 0 : Double(o) * Double(length - 1) / Double(outLength - 1)
        case "pytorch_half_pixel": v = outLength > 1 ? (Double(o) + 0.5) / scale - 0.5 : 0
        case "tf_half_pixel_for_nn": v = (Double(o) + 0.5) / scale
        default: v = (Double(o) + 0.5) / scale - 0.5
        }
        let r: Double
        switch rounding {
        case "floor": r = v.rounded(.down)
        case "ceil": r = v.rounded(.up)
        case "round_prefer_ceil": r = v - v.rounded(.down) == 0.5 ? v.rounded(.up) : v.rounded()
        default: r = v - v.rounded(.down) == 0.5 ? v.rounded(.down) : v.rounded()
        }
        return min(max(Int(r), 0), length - 1)
    }

    @Test func nearestMatchesReference() throws {
        let x = ramp([1, 2, 5, 6], scrambled: true)
        for coordinates in ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn"] {
            for rounding in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
                for (sh, sw) in [(2.0, 3.0), (0.6, 0.5), (1.5, 1.0)] as [(Float, Float)] {
                    let out = try resize(x, scales: [1, 1, sh, sw], ["coordinate_transformation_mode": .string(coordinates),
                                                                     "nearest_mode": .string(rounding)])
                    let outH = Int(Double(5) * Double(sh)), outW = Int(Double(6) * Double(sw))
                    #expect(out.shape == [1, 2, outH, outW])
                    let expected = reference(x, outputShape: [1, 2, outH, outW]) { c in
                        [c[0], c[1],
                         nearestIndex(c[2], scale: Double(sh), length: 5, outLength: outH, coordinates: coordinates, rounding: rounding),
                         nearestIndex(c[3], scale: Double(sw), length: 6, outLength: outW, coordinates: coordinates, rounding: rounding)]
                    }
                    #expect(out.floats == expected, "\(coordinates) \(rounding) \(sh)x\(sw)")
                }
            }
        }
    }

    @Test func upsampleAndOldResize() throws {
        let x = ramp([1, 3, 4, 5], scrambled: true)
        let expected = reference(x, outputShape: [1, 3, 8, 15]) { c in [c[0], c[1], c[2] / 2, c[3] / 3] }
        let upsample9 = try run("Upsample", [x, scales([1, 1, 2, 3])], opset: 9)[0]
        #expect(upsample9.floats == expected)
        let upsample7 = try run("Upsample", [x], ["scales": .floats([1, 1, 2, 3])], opset: 7)[0]
        #expect(upsample7.floats == expected)
        let resize10 = try run("Resize", [x, scales([1, 1, 2, 3])], opset: 10)[0]
        #expect(resize10.floats == expected)
        let linear = try run("Upsample", [square, scales([1, 1, 2, 2])], ["mode": .string("linear")], opset: 9)[0]
        #expect(linear.floats == [1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4])
    }

    @Test func resizeErrors() throws {
        let crop = compileError("Resize", [square, noRoi, scales([1, 1, 2, 2])],
                                ["coordinate_transformation_mode": .string("tf_crop_and_resize")])
        #expect(crop?.kind == .unsupportedOperator)
        #expect(crop?.description.contains("tf_crop_and_resize") == true)
        #expect(compileError("Resize", [square, noRoi, scales([1, 1, 2, 2])], ["mode": .string("cubic")])?.kind == .unsupportedOperator)
        #expect(compileError("Resize", [square, noRoi, scales([1, 1, 2, 2])], runtime: [0, 2])?.kind == .unsupportedOperator)
        #expect(compileError("Resize", [square, noRoi, scales([1, 2, 2, 2])], ["mode": .string("linear")]) != nil)
        #expect(compileError("Resize", [square, noRoi, scales([1, 1, 2])]) != nil)
    }
}

// MARK: - Constants, Shape, Cast

@Suite struct LayoutConstantTests {
    @Test func constantForms() throws {
        let t = Tensor(shape: [2], floats: [1, 2])
        #expect(try run("Constant", [], ["value": .tensor(t)], runtime: [])[0] == t)
        #expect(try run("Constant", [], ["value_float": .float(3)], runtime: [])[0] == Tensor(shape: [], floats: [3]))
        #expect(try run("Constant", [], ["value_ints": .ints([1, -1])], runtime: [])[0] == ints([1, -1]))
        #expect(try run("Constant", [], ["value_int": .int(4)], runtime: [])[0] == Tensor.int64([4], shape: []))
        #expect(try run("Constant", [], ["value_floats": .floats([0.5])], runtime: [])[0].floats == [0.5])
        #expect(compileError("Constant", [], ["value_string": .string("x")], runtime: []) != nil)
    }

    @Test func shapeStartEnd() throws {
        let x = ramp([2, 3, 4, 5])
        let node = { (attributes: [String: Attribute]) in makeNode("Shape", inputs: [x], outputs: 1, attributes: attributes) }
        func shape(_ attributes: [String: Attribute] = [:], opset: Int = 15) throws -> [Int64] {
            // The input is a run-time tensor: only its info is known.
            let context = NodeContext(node: node(attributes), inputs: [TensorInfo(shape: x.shape)], constants: [nil],
                                      opsetVersion: opset)
            let spec = try #require(OperatorRegistry.spec(for: "Shape"))
            let fold = try #require(spec.fold)
            let result = try fold(context)[0]
            #expect(try spec.inferShapes(context)[0] == TensorInfo(shape: [result.count], elementType: .int64))
            #expect(result.elementType == .int64)
            return result.ints
        }
        #expect(try shape() == [2, 3, 4, 5])
        #expect(try shape(["start": .int(1)]) == [3, 4, 5])
        #expect(try shape(["start": .int(-2)]) == [4, 5])
        #expect(try shape(["end": .int(-1)]) == [2, 3, 4])
        #expect(try shape(["start": .int(1), "end": .int(3)]) == [3, 4])
        #expect(try shape(["start": .int(-10), "end": .int(10)]) == [2, 3, 4, 5])
        #expect(try shape(["start": .int(3), "end": .int(1)]) == [])
        #expect(try shape(["start": .int(2)], opset: 13) == [2, 3, 4, 5])
    }

    @Test func constantOfShapeAndCast() throws {
        let zeros = try run("ConstantOfShape", [ints([2, 3])], runtime: [])[0]
        #expect(zeros.shape == [2, 3] && zeros.floats == [Float](repeating: 0, count: 6) && zeros.elementType == .float32)
        let ones = try run("ConstantOfShape", [ints([2])], ["value": .tensor(Tensor.int64([1], shape: [1]))], runtime: [])[0]
        #expect(ones.ints == [1, 1] && ones.elementType == .int64)

        let floats = Tensor(shape: [5], floats: [1.7, -1.7, 300, .nan, 0])
        let toInt = try run("Cast", [floats], ["to": .int(7)], runtime: [])[0]
        #expect(toInt.ints == [1, -1, 300, 0, 0] && toInt.elementType == .int64)
        #expect(try run("Cast", [floats], ["to": .int(2)], runtime: [])[0].ints == [1, 255, 44, 0, 0])
        #expect(try run("Cast", [floats], ["to": .int(9)], runtime: [])[0].ints == [1, 1, 1, 1, 0])
        let toFloat = try run("Cast", [ints([3, -2])], ["to": .int(1)], runtime: [])[0]
        #expect(toFloat.floats == [3, -2] && toFloat.elementType == .float32 && toFloat.isFloatingPoint)
        // Run time: float to float is a copy; float to an integer type is rejected clearly.
        #expect(try run("Cast", [ramp([2, 2])], ["to": .int(1)])[0].floats == [0, 1, 2, 3])
        let error = compileError("Cast", [ramp([2, 2])], ["to": .int(7)])
        #expect(error?.kind == .unsupportedOperator && error?.description.contains("int64") == true)
        #expect(compileError("Cast", [ramp([2])], ["to": .int(10)]) != nil)
    }

    @Test func dataMovementFlags() {
        for op in ["Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Gather", "Expand"] {
            #expect(OperatorRegistry.spec(for: op)?.isDataMovement == true, "\(op)")
        }
        for op in ["Pad", "Resize", "Cast", "Constant"] {
            #expect(OperatorRegistry.spec(for: op)?.isDataMovement == false, "\(op)")
        }
    }
}

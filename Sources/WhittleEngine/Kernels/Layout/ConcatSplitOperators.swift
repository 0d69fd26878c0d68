/// Concat and Split: joining tensors along an axis and cutting one apart.
extension OperatorRegistry {
    /// Concat (opset 4+; negative `axis` from opset 11): all inputs have the same rank and
    /// the same dimensions except along `axis`.
    static let concatSpec = OperatorSpec(
        opType: "Concat", isDataMovement: true,
        inferShapes: { context in
            let plan = try concatPlan(context)
            return [TensorInfo(shape: plan.shape, elementType: plan.elementType)]
        },
        makeKernel: { context, _ in LayoutKernel(routine: try concatPlan(context).routine) },
        fold: { context in
            let plan = try concatPlan(context)
            return try foldRoutine(plan.routine, context: context, dataInputs: Array(context.node.inputs.indices),
                                   outputShapes: [plan.shape])
        })

    static func concatPlan(_ context: NodeContext) throws -> (shape: [Int], elementType: ElementType, routine: ConcatRoutine) {
        let infos = try context.node.inputs.indices.map { try context.input($0) }
        guard let first = infos.first else { throw context.error("Concat needs at least one input") }
        let rank = first.rank
        let axis = try context.normalizedAxis(try context.int("axis"), rank: rank)
        var shape = first.shape
        shape[axis] = 0
        for info in infos {
            var expected = first.shape
            expected[axis] = info.rank == rank ? info.shape[axis] : -1
            guard info.shape == expected else {
                throw context.error("cannot concatenate \(infos.map(\.shape)) along axis \(axis)", kind: .shapeMismatch)
            }
            shape[axis] += info.shape[axis]
        }
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        let blocks = infos.map { $0.shape[axis] * inner }
        var offsets: [Int] = []
        var running = 0
        for block in blocks { offsets.append(running); running += block }
        return (shape, first.elementType, ConcatRoutine(outer: outer, blocks: blocks, offsets: offsets, outputBlock: running))
    }

    /// Split (opset 2+). Sizes come from the `split` attribute (opset < 13) or input
    /// (opset ≥ 13); otherwise the axis is cut into `num_outputs` (opset 18) or as many parts
    /// as there are outputs: equal parts, or with `num_outputs`, parts of `ceil(d / n)` with a
    /// smaller last one, as the ONNX spec defines.
    static let splitSpec = OperatorSpec(
        opType: "Split", isDataMovement: true,
        inferShapes: { context in
            let plan = try splitPlan(context)
            let type = try context.dataInput().elementType
            return plan.shapes.map { TensorInfo(shape: $0, elementType: type) }
        },
        makeKernel: { context, _ in LayoutKernel(routine: try splitPlan(context).routine) },
        fold: { context in
            let plan = try splitPlan(context)
            return try foldRoutine(plan.routine, context: context, dataInputs: [0], outputShapes: plan.shapes)
        })

    static func splitPlan(_ context: NodeContext) throws -> (shapes: [[Int]], routine: StridedViewRoutine) {
        let shape = try context.dataInput().shape
        let axis = try context.normalizedAxis(try context.int("axis", default: 0), rank: shape.count)
        let size = shape[axis]
        let outputs = context.node.outputs.count
        var sizes: [Int]
        if context.opsetVersion >= 13, context.hasInput(1) {
            sizes = try context.constantInts(1, name: "split")
        } else if context.opsetVersion < 13, context.hasAttribute("split") {
            sizes = try context.ints("split")
        } else if context.hasAttribute("num_outputs") {
            let parts = try context.int("num_outputs")
            guard parts > 0, parts == outputs else {
                throw context.error("num_outputs \(parts) does not match the node's \(outputs) outputs")
            }
            let chunk = (size + parts - 1) / parts
            sizes = (0..<parts).map { min(chunk, max(0, size - $0 * chunk)) }
        } else {
            guard outputs > 0, size % outputs == 0 else {
                throw context.error("cannot split axis \(axis) of size \(size) into \(outputs) equal parts", kind: .shapeMismatch)
            }
            sizes = [Int](repeating: size / outputs, count: outputs)
        }
        guard sizes.count == outputs, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == size else {
            throw context.error("split sizes \(sizes) do not cut axis \(axis) of size \(size) into \(outputs) outputs",
                                kind: .shapeMismatch)
        }
        let strides = contiguousStrides(shape)
        var shapes: [[Int]] = []
        var views: [StridedCopy] = []
        var start = 0
        for part in sizes {
            var partShape = shape
            partShape[axis] = part
            shapes.append(partShape)
            views.append(StridedCopy(shape: partShape, strides: strides, offset: start * strides[axis]))
            start += part
        }
        return (shapes, StridedViewRoutine(views: views))
    }
}

/// Concat as block copies: for each of the `outer` positions before the axis, input `k`
/// contributes one contiguous block of `blocks[k]` elements at `offsets[k]` of the output's
/// block of `outputBlock` elements.
struct ConcatRoutine: LayoutRoutine {
    let outer: Int
    let blocks: [Int]
    let offsets: [Int]
    let outputBlock: Int

    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>]) {
        let destination = outputs[0]
        let grain = max(1, StridedCopy.grainElements / max(1, outputBlock))
        parallelFor(outer, grain: grain) { position in
            let row = destination + position * outputBlock
            for index in 0..<blocks.count {
                let block = blocks[index]
                if block > 0 {
                    (row + offsets[index]).update(from: inputs[index] + position * block, count: block)
                }
            }
        }
    }
}

/// Transpose, Slice and Expand: each output is a strided view of the input, copied by
/// `StridedCopy` (precomputed strides, tiled 2-D transposes, `parallelFor` over rows).
extension OperatorRegistry {
    /// Builds the spec of an operator whose single output is a strided view of input 0.
    static func viewSpec(_ opType: String, view: @escaping @Sendable (NodeContext) throws -> (shape: [Int], copy: StridedCopy)) -> OperatorSpec {
        OperatorSpec(
            opType: opType, isDataMovement: true,
            inferShapes: { context in
                let data = try context.dataInput()
                return [TensorInfo(shape: try view(context).shape, elementType: data.elementType)]
            },
            makeKernel: { context, _ in
                LayoutKernel(routine: StridedViewRoutine(views: [try view(context).copy]))
            },
            fold: { context in
                let (shape, copy) = try view(context)
                return try foldRoutine(StridedViewRoutine(views: [copy]), context: context, dataInputs: [0], outputShapes: [shape])
            })
    }

    /// Transpose: `out.shape[i] = in.shape[perm[i]]`; `perm` defaults to the reversed axes.
    static let transposeSpec = viewSpec("Transpose") { context in
        let shape = try context.dataInput().shape
        let rank = shape.count
        let perm = try context.ints("perm", default: Array((0..<rank).reversed()))
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw context.error("perm \(perm) is not a permutation of the \(rank) axes of \(shape)")
        }
        let inputStrides = contiguousStrides(shape)
        let outputShape = perm.map { shape[$0] }
        return (outputShape, StridedCopy(shape: outputShape, strides: perm.map { inputStrides[$0] }, offset: 0))
    }

    /// Slice. Opset ≥ 10: inputs `starts`, `ends`, optional `axes` and `steps`; before 10:
    /// attributes `starts`, `ends`, `axes`. Following the ONNX spec, per sliced axis of size
    /// `d`: negative starts/ends get `d` added; with a positive step, start and end are clamped
    /// to `[0, d]`; with a negative step, start to `[0, d-1]` and end to `[-1, d-1]` (so
    /// `INT64_MAX` / `INT64_MIN` mean "to the end"). The length is
    /// `max(0, ceil((end - start) / step))`.
    static let sliceSpec = viewSpec("Slice") { context in
        let shape = try context.dataInput().shape
        let rank = shape.count
        let starts: [Int], ends: [Int], axesList: [Int]?, steps: [Int]?
        if context.opsetVersion >= 10 {
            starts = try context.constantInts(1, name: "starts")
            ends = try context.constantInts(2, name: "ends")
            axesList = context.hasInput(3) ? try context.constantInts(3, name: "axes") : nil
            steps = context.hasInput(4) ? try context.constantInts(4, name: "steps") : nil
        } else {
            starts = try context.ints("starts")
            ends = try context.ints("ends")
            axesList = context.hasAttribute("axes") ? try context.ints("axes") : nil
            steps = nil
        }
        let axes = try context.normalizedAxes(axesList ?? Array(0..<starts.count), rank: rank)
        guard starts.count == ends.count, axes.count == starts.count, steps.map({ $0.count == starts.count }) ?? true else {
            throw context.error("starts (\(starts.count)), ends (\(ends.count)), axes and steps must have the same length")
        }
        let inputStrides = contiguousStrides(shape)
        var outputShape = shape
        var strides = inputStrides
        var offset = 0
        for (index, axis) in axes.enumerated() {
            let size = shape[axis]
            let rawStep = steps?[index] ?? 1
            guard rawStep != 0 else { throw context.error("slice step must not be 0") }
            // A step longer than the axis selects at most one element: clamping it avoids overflow.
            let limit = max(size, 1)
            let step = min(max(rawStep, -limit), limit)
            var start = starts[index]
            var end = ends[index]
            if start < 0 { start = start < -size ? -1 : start + size }
            if end < 0 { end = end < -size ? -1 : end + size }
            let length: Int
            if step > 0 {
                start = min(max(start, 0), size)
                end = min(max(end, 0), size)
                length = end > start ? (end - start + step - 1) / step : 0
            } else {
                start = min(max(start, 0), size - 1)
                end = min(max(end, -1), size - 1)
                length = start > end ? (start - end - step - 1) / -step : 0
            }
            outputShape[axis] = length
            strides[axis] = inputStrides[axis] * step
            if length > 0 { offset += start * inputStrides[axis] }
        }
        return (outputShape, StridedCopy(shape: outputShape, strides: strides, offset: offset))
    }

    /// Expand (opset 8+): broadcasts the input to `shape` with numpy rules in both
    /// directions (a 1 in `shape` keeps the input's dimension). Broadcast dimensions get
    /// stride 0.
    static let expandSpec = viewSpec("Expand") { context in
        let shape = try context.dataInput().shape
        let target = try context.constantInts(1, name: "shape")
        let rank = max(shape.count, target.count)
        let inputStrides = contiguousStrides(shape)
        var outputShape = [Int](repeating: 1, count: rank)
        var strides = [Int](repeating: 0, count: rank)
        for axis in 0..<rank {
            let inputAxis = axis - (rank - shape.count)
            let targetAxis = axis - (rank - target.count)
            let have = inputAxis >= 0 ? shape[inputAxis] : 1
            let want = targetAxis >= 0 ? target[targetAxis] : 1
            guard have == want || have == 1 || want == 1, want >= 0 else {
                throw context.error("cannot expand \(shape) to \(target)", kind: .shapeMismatch)
            }
            outputShape[axis] = have == 1 ? want : have
            strides[axis] = (inputAxis >= 0 && have != 1) ? inputStrides[inputAxis] : 0
        }
        return (outputShape, StridedCopy(shape: outputShape, strides: strides, offset: 0))
    }
}

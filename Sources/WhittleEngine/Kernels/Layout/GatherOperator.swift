/// Gather (opset 1-13): selects entries of `data` along `axis` by `indices`:
///
///     out[i_0…i_(axis-1), j_0…j_(q-1), i_(axis+1)…] = data[i_0…i_(axis-1), indices[j…], i_(axis+1)…]
///
/// so the output shape is `data.shape[..<axis] + indices.shape + data.shape[(axis+1)...]`.
/// Negative indices count from the end of the axis. Indices must be known at compile time
/// (they always are in the CNNs Whittle targets: shape arithmetic, channel picks); the data
/// may be a run-time float tensor, or any constant when folding.
extension OperatorRegistry {
    static let gatherSpec = OperatorSpec(
        opType: "Gather", isDataMovement: true,
        inferShapes: { context in
            let (shape, _) = try gatherShape(context)
            return [TensorInfo(shape: shape, elementType: try context.dataInput().elementType)]
        },
        makeKernel: { context, _ in LayoutKernel(routine: try gatherRoutine(context)) },
        fold: { context in
            let (shape, _) = try gatherShape(context)
            return try foldRoutine(try gatherRoutine(context), context: context, dataInputs: [0], outputShapes: [shape])
        })

    static func gatherShape(_ context: NodeContext) throws -> (shape: [Int], axis: Int) {
        let data = try context.dataInput().shape
        let indices = try context.input(1).shape
        let axis = try context.normalizedAxis(try context.int("axis", default: 0), rank: data.count)
        return (Array(data[..<axis]) + indices + Array(data[(axis + 1)...]), axis)
    }

    static func gatherRoutine(_ context: NodeContext) throws -> GatherRoutine {
        let data = try context.dataInput().shape
        let (_, axis) = try gatherShape(context)
        let size = data[axis]
        let indices = try context.constantInts(1, name: "indices").map { index -> Int in
            guard index >= -size && index < size else {
                throw context.error("index \(index) is out of range for axis \(axis) of size \(size)")
            }
            return index < 0 ? index + size : index
        }
        return GatherRoutine(outer: data[..<axis].reduce(1, *), axisSize: size,
                             inner: data[(axis + 1)...].reduce(1, *), indices: indices)
    }
}

/// Gather as block copies: output row `(o, k)` is the `inner`-element block
/// `data[o, indices[k], :]`.
struct GatherRoutine: LayoutRoutine {
    let outer: Int
    let axisSize: Int
    let inner: Int
    let indices: [Int]

    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>]) {
        let source = inputs[0]
        let destination = outputs[0]
        let count = indices.count
        parallelFor(outer * count, grain: max(1, StridedCopy.grainElements / max(1, inner))) { row in
            let position = row / count
            let index = indices[row - position * count]
            let from = source + (position * axisSize + index) * inner
            let to = destination + row * inner
            if inner == 1 {
                to.pointee = from.pointee
            } else {
                to.update(from: from, count: inner)
            }
        }
    }
}

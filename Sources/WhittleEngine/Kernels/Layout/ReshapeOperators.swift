/// Flatten, Reshape, Squeeze and Unsqueeze: the elements stay in the same row-major order,
/// only the shape changes.
///
/// Their kernels are a plain copy (`PlainCopyRoutine`), and a no-op when the compiler gives
/// the input and output the same buffer, which it may do for these operators. Folding keeps
/// the tensor's storage and element type and only replaces the shape.
extension OperatorRegistry {
    /// Builds the spec of an operator that only changes the shape.
    static func reshapeLikeSpec(_ opType: String, outputShape: @escaping @Sendable (NodeContext) throws -> [Int]) -> OperatorSpec {
        OperatorSpec(
            opType: opType, isDataMovement: true,
            inferShapes: { context in
                let data = try context.dataInput()
                return [TensorInfo(shape: try outputShape(context), elementType: data.elementType)]
            },
            makeKernel: { _, outputs in
                LayoutKernel(routine: PlainCopyRoutine(count: outputs[0].count))
            },
            fold: { context in
                guard var tensor = context.constant(0) else { throw context.error("input #0 is not a compile-time constant") }
                tensor.shape = try outputShape(context)
                return [tensor]
            })
    }

    /// Flatten (ONNX opset 1-13): `[d0 … d(axis-1)] × [d(axis) … d(n-1)]` as a 2-D shape;
    /// `axis` defaults to 1 and may be negative (opset ≥ 11), valid in `[-rank, rank]`.
    static let flattenSpec = reshapeLikeSpec("Flatten") { context in
        let shape = try context.dataInput().shape
        let axis = try context.normalizedAxis(try context.int("axis", default: 1), rank: shape.count, inclusiveEnd: true)
        return [shape[..<axis].reduce(1, *), shape[axis...].reduce(1, *)]
    }

    /// Reshape (ONNX opset 5-19; opset 1-4 used a `shape` attribute). In the target shape
    /// a 0 copies the input's dimension at that position (unless `allowzero = 1`, opset 14,
    /// where 0 means an empty dimension) and one -1 is inferred from the element count.
    static let reshapeSpec = reshapeLikeSpec("Reshape") { context in
        let input = try context.dataInput()
        let requested: [Int]
        if context.hasInput(1) {
            requested = try context.constantInts(1, name: "shape")
        } else if context.hasAttribute("shape") {
            requested = try context.ints("shape")
        } else {
            throw context.error("missing required input 'shape'")
        }
        let allowZero = try context.int("allowzero", default: 0) != 0
        return try resolveReshape(requested, input: input.shape, allowZero: allowZero, context: context)
    }

    /// Resolves 0 and -1 entries of a Reshape target shape (see `reshapeSpec`).
    static func resolveReshape(_ requested: [Int], input: [Int], allowZero: Bool, context: NodeContext) throws -> [Int] {
        var shape = requested
        var inferred: Int?
        for (index, size) in requested.enumerated() {
            switch size {
            case -1:
                guard inferred == nil else { throw context.error("shape \(requested) has more than one -1") }
                inferred = index
            case 0 where !allowZero:
                guard index < input.count else {
                    throw context.error("shape \(requested) copies dimension \(index) (0) but the input \(input) has rank \(input.count)")
                }
                shape[index] = input[index]
            case ..<0:
                throw context.error("shape \(requested) has a negative dimension \(size)")
            default:
                break
            }
        }
        let total = input.reduce(1, *)
        if let inferred {
            let known = shape.enumerated().reduce(1) { $1.offset == inferred ? $0 : $0 * $1.element }
            guard known != 0, total % known == 0 else {
                throw context.error("cannot reshape \(input) (\(total) elements) to \(requested)", kind: .shapeMismatch)
            }
            shape[inferred] = total / known
        }
        guard shape.reduce(1, *) == total else {
            throw context.error("cannot reshape \(input) (\(total) elements) to \(requested)", kind: .shapeMismatch)
        }
        return shape
    }

    /// The axes of Squeeze/Unsqueeze: an attribute before opset 13, an optional input from 13.
    static func squeezeAxes(_ context: NodeContext) throws -> [Int]? {
        if context.opsetVersion >= 13 {
            return context.hasInput(1) ? try context.constantInts(1, name: "axes") : nil
        }
        return context.hasAttribute("axes") ? try context.ints("axes") : nil
    }

    /// Squeeze: removes the listed size-1 axes (negative allowed), or every size-1 axis when
    /// no axes are given.
    static let squeezeSpec = reshapeLikeSpec("Squeeze") { context in
        let shape = try context.dataInput().shape
        guard let axes = try squeezeAxes(context) else { return shape.filter { $0 != 1 } }
        let resolved = Set(try context.normalizedAxes(axes, rank: shape.count))
        for axis in resolved where shape[axis] != 1 {
            throw context.error("cannot squeeze axis \(axis) of \(shape): its size is not 1", kind: .shapeMismatch)
        }
        return shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element)
    }

    /// Unsqueeze: inserts size-1 axes at the listed positions of the *output* (negative
    /// positions count from the end of the output rank).
    static let unsqueezeSpec = reshapeLikeSpec("Unsqueeze") { context in
        let shape = try context.dataInput().shape
        guard let axes = try squeezeAxes(context) else { throw context.error("missing 'axes'") }
        let rank = shape.count + axes.count
        let resolved = Set(try context.normalizedAxes(axes, rank: rank))
        var output: [Int] = []
        var next = shape.makeIterator()
        for axis in 0..<rank {
            if resolved.contains(axis) {
                output.append(1)
            } else if let size = next.next() {
                output.append(size)
            }
        }
        return output
    }
}

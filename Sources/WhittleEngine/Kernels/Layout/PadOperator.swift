/// Pad (opset 2-19). Opset < 11: attributes `pads`, `mode`, `value`; opset ≥ 11: inputs
/// `pads`, optional `constant_value` and (opset 18) optional `axes`. `pads` lists all
/// begins then all ends, `[x1_begin, x2_begin, …, x1_end, x2_end, …]`; negative pads crop.
///
/// For output coordinate `j` of an axis of input size `d` padded by `begin`, the input
/// coordinate is `x = j - begin`; outside `[0, d)` the modes give:
/// - `constant`: the constant value;
/// - `edge`: `clamp(x, 0, d - 1)`;
/// - `reflect`: mirror without repeating the edge, period `2(d - 1)` (numpy "reflect");
/// - `wrap`: `x mod d`.
extension OperatorRegistry {
    static let padSpec = OperatorSpec(
        opType: "Pad",
        inferShapes: { context in
            let routine = try padRoutine(context)
            return [TensorInfo(shape: routine.outputShape, elementType: try context.dataInput().elementType)]
        },
        makeKernel: { context, _ in LayoutKernel(routine: try padRoutine(context)) },
        fold: { context in
            let routine = try padRoutine(context)
            return try foldRoutine(routine, context: context, dataInputs: [0, 2], outputShapes: [routine.outputShape])
        })

    static func padRoutine(_ context: NodeContext) throws -> PadRoutine {
        let shape = try context.dataInput().shape
        let rank = shape.count
        let mode = try context.string("mode", default: "constant")
        guard ["constant", "reflect", "edge", "wrap"].contains(mode) else {
            throw context.error("unsupported Pad mode '\(mode)' (expected constant, reflect, edge or wrap)",
                                kind: .unsupportedOperator)
        }
        var pads: [Int]
        var value: Float = 0
        var axes = Array(0..<rank)
        if context.opsetVersion >= 11 {
            pads = try context.constantInts(1, name: "pads")
            if context.hasInput(3) {
                axes = try context.normalizedAxes(try context.constantInts(3, name: "axes"), rank: rank)
            }
        } else {
            pads = try context.ints("pads")
            value = try context.float("value", default: 0)
        }
        guard pads.count == 2 * axes.count else {
            throw context.error("pads has \(pads.count) values; expected \(2 * axes.count) for \(axes.count) axes")
        }
        var begins = [Int](repeating: 0, count: rank)
        var ends = [Int](repeating: 0, count: rank)
        for (index, axis) in axes.enumerated() {
            begins[axis] = pads[index]
            ends[axis] = pads[index + axes.count]
        }
        // A 0-d tensor is treated as one element of a 1-d tensor.
        let paddedShape = rank == 0 ? [1] : shape
        if rank == 0 { begins = [0]; ends = [0] }
        var outputShape: [Int] = []
        var maps: [Int] = []
        var mapStarts: [Int] = []
        for axis in paddedShape.indices {
            let size = paddedShape[axis]
            let length = size + begins[axis] + ends[axis]
            guard length >= 0 else {
                throw context.error("pads \(pads) crop axis \(axis) of size \(size) below zero", kind: .shapeMismatch)
            }
            if size == 0 && length > 0 && mode != "constant" {
                throw context.error("cannot pad the empty axis \(axis) in \(mode) mode", kind: .shapeMismatch)
            }
            outputShape.append(length)
            mapStarts.append(maps.count)
            for j in 0..<length {
                let x = j - begins[axis]
                if x >= 0 && x < size {
                    maps.append(x)
                    continue
                }
                switch mode {
                case "edge":
                    maps.append(min(max(x, 0), size - 1))
                case "reflect":
                    if size == 1 {
                        maps.append(0)
                    } else {
                        let period = 2 * (size - 1)
                        let folded = ((x % period) + period) % period
                        maps.append(folded < size ? folded : period - folded)
                    }
                case "wrap":
                    maps.append(((x % size) + size) % size)
                default:
                    maps.append(-1)
                }
            }
        }
        let last = paddedShape.count - 1
        let interiorStart = min(max(begins[last], 0), outputShape[last])
        let interiorEnd = max(interiorStart, min(outputShape[last], begins[last] + paddedShape[last]))
        return PadRoutine(
            outputShape: rank == 0 ? [] : outputShape, shape: outputShape,
            inputStrides: contiguousStrides(paddedShape), maps: maps, mapStarts: mapStarts,
            interiorStart: interiorStart, interiorEnd: interiorEnd, interiorSource: interiorStart - begins[last],
            valueFromInput: context.opsetVersion >= 11 && context.hasInput(2), value: value)
    }
}

/// Pad through per-axis coordinate maps (input coordinate, or -1 for the constant value).
/// Output rows are spread over threads; the interior of each row is one block copy.
struct PadRoutine: LayoutRoutine {
    /// Output shape as the node reports it.
    let outputShape: [Int]
    /// Output shape used for iteration (rank ≥ 1).
    let shape: [Int]
    let inputStrides: [Int]
    let maps: [Int]
    let mapStarts: [Int]
    /// Output range of the last axis that copies the input row `[interiorSource, …)` verbatim.
    let interiorStart: Int
    let interiorEnd: Int
    let interiorSource: Int
    let valueFromInput: Bool
    let value: Float

    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>]) {
        let fill: T = valueFromInput ? inputs[2].pointee : T.choose(float: value, int: Int64(value))
        let source = inputs[0]
        let destination = outputs[0]
        let rank = shape.count
        let width = shape[rank - 1]
        guard width > 0 else { return }
        let rows = shape.reduce(1, *) / width
        let lastMap = mapStarts[rank - 1]
        let lastStride = inputStrides[rank - 1]
        parallelFor(rows, grain: max(1, StridedCopy.grainElements / width)) { row in
            let to = destination + row * width
            var remaining = row
            var position = 0
            var inside = true
            var axis = rank - 2
            while axis >= 0 {
                let size = shape[axis]
                let coordinate = maps[mapStarts[axis] + remaining % size]
                remaining /= size
                if coordinate < 0 { inside = false; break }
                position += coordinate * inputStrides[axis]
                axis -= 1
            }
            guard inside else {
                to.update(repeating: fill, count: width)
                return
            }
            let from = source + position
            for j in 0..<interiorStart {
                let coordinate = maps[lastMap + j]
                to[j] = coordinate < 0 ? fill : from[coordinate * lastStride]
            }
            if interiorEnd > interiorStart {
                (to + interiorStart).update(from: from + interiorSource, count: interiorEnd - interiorStart)
            }
            for j in interiorEnd..<width {
                let coordinate = maps[lastMap + j]
                to[j] = coordinate < 0 ? fill : from[coordinate * lastStride]
            }
        }
    }
}

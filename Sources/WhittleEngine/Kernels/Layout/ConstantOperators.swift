/// Constant, Shape, ConstantOfShape and Cast: operators that create tensors or change their
/// element type. Their outputs are nearly always compile-time constants (Whittle compiles
/// for fixed shapes), so they are mostly folded.
extension OperatorRegistry {
    /// Constant (opset 1-19): the tensor in `value`, or a float/int scalar or list from
    /// `value_float`, `value_floats`, `value_int`, `value_ints` (opset 12+). Always folded.
    static let constantSpec = OperatorSpec(
        opType: "Constant",
        inferShapes: { context in
            let tensor = try constantValue(context)
            return [TensorInfo(shape: tensor.shape, elementType: tensor.elementType)]
        },
        makeKernel: nil,
        fold: { context in [try constantValue(context)] })

    static func constantValue(_ context: NodeContext) throws -> Tensor {
        let attributes = context.node.attributes
        guard attributes.count == 1, let (name, attribute) = attributes.first else {
            throw context.error("Constant needs exactly one value attribute, found \(attributes.keys.sorted())")
        }
        switch (name, attribute) {
        case ("value", .tensor(let tensor)): return tensor
        case ("value_float", .float(let value)): return Tensor(shape: [], floats: [value])
        case ("value_float", .int(let value)): return Tensor(shape: [], floats: [Float(value)])
        case ("value_floats", .floats(let values)): return Tensor(shape: [values.count], floats: values)
        case ("value_int", .int(let value)): return Tensor(shape: [], ints: [Int64(value)])
        case ("value_ints", .ints(let values)): return Tensor(shape: [values.count], ints: values.map(Int64.init))
        default:
            throw context.error("unsupported Constant attribute '\(name)' (\(attribute))", kind: .unsupportedOperator)
        }
    }

    /// Shape (opset 1-19): the input's shape as an int64 vector, optionally only dimensions
    /// `start..<end` (opset 15; negative values count from the end, both clamped to
    /// `[0, rank]`).
    ///
    /// Shapes are static, so this only reads the input's *info*: `fold` works even when the
    /// input itself is a run-time tensor, and there is no kernel. The compiler must fold
    /// Shape nodes regardless of whether their input is constant.
    static let shapeSpec = OperatorSpec(
        opType: "Shape",
        inferShapes: { context in
            [TensorInfo(shape: [try shapeValues(context).count], elementType: .int64)]
        },
        makeKernel: nil,
        fold: { context in [Tensor.int64(try shapeValues(context).map(Int64.init))] })

    static func shapeValues(_ context: NodeContext) throws -> [Int] {
        let shape = try context.dataInput().shape
        let rank = shape.count
        func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + rank : value, 0), rank) }
        let start = context.opsetVersion >= 15 ? clamp(try context.int("start", default: 0)) : 0
        let end = context.opsetVersion >= 15 ? clamp(try context.int("end", default: rank)) : rank
        return start < end ? Array(shape[start..<end]) : []
    }

    /// ConstantOfShape (opset 9+): a tensor of the shape given by input 0 (compile-time
    /// constant) filled with the single element of the `value` tensor attribute (default
    /// float32 zero); the output takes `value`'s element type.
    static let constantOfShapeSpec = OperatorSpec(
        opType: "ConstantOfShape",
        inferShapes: { context in
            let (shape, value) = try constantOfShapePlan(context)
            return [TensorInfo(shape: shape, elementType: value.elementType)]
        },
        makeKernel: { context, outputs in
            let (_, value) = try constantOfShapePlan(context)
            return FillKernel(value: value.floats.first ?? 0, count: outputs[0].count)
        },
        fold: { context in
            let (shape, value) = try constantOfShapePlan(context)
            let count = shape.reduce(1, *)
            switch value.storage {
            case .float(let values):
                return [Tensor(shape: shape, floats: [Float](repeating: values.first ?? 0, count: count), elementType: value.elementType)]
            case .int(let values):
                return [Tensor(shape: shape, ints: [Int64](repeating: values.first ?? 0, count: count), elementType: value.elementType)]
            }
        })

    static func constantOfShapePlan(_ context: NodeContext) throws -> (shape: [Int], value: Tensor) {
        let shape = try context.constantInts(0, name: "input")
        guard shape.allSatisfy({ $0 >= 0 }) else { throw context.error("shape \(shape) has a negative dimension") }
        var value = Tensor(shape: [1], floats: [0])
        switch context.node.attributes["value"] {
        case .tensor(let tensor)?:
            guard tensor.count == 1 else { throw context.error("'value' must hold exactly one element, found \(tensor.count)") }
            value = tensor
        case nil:
            break
        case let other?:
            throw context.error("attribute 'value' must be a tensor, found \(other)")
        }
        return (shape, value)
    }

    /// Cast (opset 6-19) to float32, float64, int64, int32, int8, uint8 or bool (ONNX
    /// `TensorProto.DataType` codes 1, 11, 7, 6, 3, 2, 9). Folding converts: floats to
    /// integers truncate toward zero (NaN → 0, saturating at the int64 range) and wrap to
    /// narrower widths; bool is `x != 0`. At run time only float-to-float casts exist (a copy);
    /// a run-time tensor cast to an integer type is rejected.
    static let castSpec = OperatorSpec(
        opType: "Cast",
        inferShapes: { context in
            [TensorInfo(shape: try context.dataInput().shape, elementType: try castTarget(context))]
        },
        makeKernel: { context, outputs in
            let target = try castTarget(context)
            guard target == .float32 || target == .float64 else {
                throw context.error("cannot cast a run-time tensor to \(target.rawValue): run-time tensors are float32 "
                                    + "(integer tensors must be compile-time constants)", kind: .unsupportedOperator)
            }
            return LayoutKernel(routine: PlainCopyRoutine(count: outputs[0].count))
        },
        fold: { context in
            let target = try castTarget(context)
            guard let tensor = context.constant(0) else { throw context.error("input #0 is not a compile-time constant") }
            return [castTensor(tensor, to: target)]
        })

    static func castTarget(_ context: NodeContext) throws -> ElementType {
        let code = try context.int("to")
        switch code {
        case 1: return .float32
        case 2: return .uint8
        case 3: return .int8
        case 4: return .uint16
        case 5: return .int16
        case 6: return .int32
        case 7: return .int64
        case 9: return .bool
        case 11: return .float64
        default:
            throw context.error("unsupported Cast target type \(code) (supported: float, double, int64, int32, int16, uint16, int8, uint8, bool)",
                                kind: .unsupportedOperator)
        }
    }

    /// Converts a tensor's elements to `target` (see `castSpec`).
    static func castTensor(_ tensor: Tensor, to target: ElementType) -> Tensor {
        switch target {
        case .float32, .float64:
            return Tensor(shape: tensor.shape, floats: tensor.floats, elementType: target)
        case .bool:
            let values: [Int64]
            switch tensor.storage {
            case .float(let floats): values = floats.map { $0 != 0 ? 1 : 0 }
            case .int(let ints): values = ints.map { $0 != 0 ? 1 : 0 }
            }
            return Tensor(shape: tensor.shape, ints: values, elementType: .bool)
        case .int64, .int32, .int16, .uint16, .int8, .uint8:
            let wide: [Int64]
            switch tensor.storage {
            case .int(let ints): wide = ints
            case .float(let floats): wide = floats.map(truncatedInteger)
            }
            let values: [Int64]
            switch target {
            case .int32: values = wide.map { Int64(Int32(truncatingIfNeeded: $0)) }
            case .int8: values = wide.map { Int64(Int8(truncatingIfNeeded: $0)) }
            case .uint8: values = wide.map { Int64(UInt8(truncatingIfNeeded: $0)) }
            case .int16: values = wide.map { Int64(Int16(truncatingIfNeeded: $0)) }
            case .uint16: values = wide.map { Int64(UInt16(truncatingIfNeeded: $0)) }
            default: values = wide
            }
            return Tensor(shape: tensor.shape, ints: values, elementType: target)
        }
    }

    /// A float truncated toward zero, NaN as 0 and saturated to the int64 range.
    static func truncatedInteger(_ value: Float) -> Int64 {
        guard !value.isNaN else { return 0 }
        if value >= 9.223372e18 { return Int64.max }
        if value <= -9.223372e18 { return Int64.min }
        return Int64(value.rounded(.towardZero))
    }
}

/// Fills the output with one value (ConstantOfShape when it is not folded).
struct FillKernel: Kernel {
    let value: Float
    let count: Int

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        outputs[0].update(repeating: value, count: count)
    }
}

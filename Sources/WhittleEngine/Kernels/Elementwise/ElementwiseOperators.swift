#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Activations, broadcasting arithmetic, Softmax and reductions (ONNX opsets 11 to 18).
extension OperatorRegistry {
    static let elementwiseOperators: [OperatorSpec] = [
        // Activations and other unary maps.
        unarySpec("Relu") { _ in .relu },
        unarySpec("LeakyRelu") { .leakyRelu(alpha: try $0.float("alpha", default: 0.01)) },
        unarySpec("HardSigmoid") {
            .hardSigmoid(alpha: try $0.float("alpha", default: 0.2), beta: try $0.float("beta", default: 0.5))
        },
        unarySpec("HardSwish") { _ in .hardSwish },
        unarySpec("Sigmoid") { _ in .sigmoid },
        unarySpec("Tanh") { _ in .tanh },
        unarySpec("Sqrt") { _ in .sqrt },
        unarySpec("Exp") { _ in .exp },
        unarySpec("Log") { _ in .log },
        unarySpec("Erf") { _ in .erf },
        unarySpec("Reciprocal") { _ in .reciprocal },
        unarySpec("Neg", integer: { 0 &- $0 }) { _ in .neg },
        unarySpec("Abs", integer: { $0 < 0 ? 0 &- $0 : $0 }) { _ in .abs },
        clipSpec,
        passThroughSpec("Identity"),
        passThroughSpec("Dropout"),
        preluSpec,
        softmaxSpec,
        // Broadcasting arithmetic.
        binarySpec("Add", .add, integer: { a, b in a &+ b }),
        binarySpec("Sub", .sub, integer: { a, b in a &- b }),
        binarySpec("Mul", .mul, integer: { a, b in a &* b }),
        binarySpec("Div", .div, integer: { a, b in
            guard b != 0 else { throw IntegerFoldError.divisionByZero }
            return a.dividedReportingOverflow(by: b).partialValue
        }),
        powSpec,
        variadicSpec("Sum", .add, integer: { a, b in a &+ b }),
        variadicSpec("Mean", .add, integer: nil, averages: true),
        variadicSpec("Max", .max, integer: { a, b in Swift.max(a, b) }),
        variadicSpec("Min", .min, integer: { a, b in Swift.min(a, b) }),
        // Reductions.
        reduceSpec("ReduceMean", axesInputSince: 18),
        reduceSpec("ReduceSum", axesInputSince: 13),
        reduceSpec("ReduceMax", axesInputSince: 18),
    ]

    /// The activation the compiler may fuse into the producing Conv/Gemm/MatMul: `.relu` for
    /// Relu, `.clip` for Clip whose bounds are attributes (opset < 11) or compile-time constant
    /// inputs (opset >= 11); nil for anything else.
    public static func fusedActivation(for context: NodeContext) -> FusedActivation? {
        guard context.node.domain.isEmpty || context.node.domain == "ai.onnx" else { return nil }
        switch context.node.opType {
        case "Relu":
            return .relu
        case "Clip":
            guard let bounds = try? clipBounds(context) else { return nil }
            return .clip(min: bounds.low, max: bounds.high)
        default:
            return nil
        }
    }
}

/// Failures of integer constant folding, turned into node errors by `integerFold`.
enum IntegerFoldError: Error {
    case divisionByZero
}

// MARK: Shared helpers

extension OperatorRegistry {
    /// Whether `type` holds integers (or booleans) rather than floating-point values.
    static func isIntegral(_ type: ElementType) -> Bool {
        type != .float32 && type != .float64
    }

    /// The element type of an arithmetic result: the inputs' common type, or the first
    /// floating-point type when integer and floating inputs are mixed.
    static func resultType(_ infos: [TensorInfo?]) -> ElementType {
        let present = infos.compactMap { $0 }
        if let floating = present.first(where: { !isIntegral($0.elementType) }) { return floating.elementType }
        return present.first?.elementType ?? .float32
    }

    /// The present constant inputs when every present input is a constant holding integers;
    /// nil otherwise (the fold then runs the float kernel).
    static func integerConstants(_ context: NodeContext) -> [Tensor]? {
        var tensors: [Tensor] = []
        for index in context.inputs.indices where context.hasInput(index) {
            guard let tensor = context.constant(index), !tensor.isFloatingPoint else { return nil }
            tensors.append(tensor)
        }
        return tensors.isEmpty ? nil : tensors
    }

    /// A copy of `spec` whose `fold` first tries `integer` (returning nil when the inputs are
    /// not integers) and otherwise compiles the float kernel and runs it once, keeping a
    /// float64 result typed as float64.
    static func foldingThroughKernel(_ spec: OperatorSpec,
                                     integer: (@Sendable (NodeContext) throws -> [Tensor]?)? = nil) -> OperatorSpec {
        var spec = spec
        let infer = spec.inferShapes
        let make = spec.makeKernel
        spec.fold = { context in
            if let integer, let result = try integer(context) { return result }
            for index in context.inputs.indices where context.hasInput(index) && context.constant(index) == nil {
                throw context.error("cannot fold: input #\(index) is not a compile-time constant")
            }
            let infos = try infer(context)
            guard let make else { throw context.error("cannot be evaluated") }
            let kernel = try make(context, infos)
            var results = runOnce(kernel: kernel, inputs: context.constants, outputInfos: infos)
            for index in results.indices where index < infos.count {
                let type = infos[index].elementType
                results[index].elementType = isIntegral(type) ? .float32 : type
            }
            return results
        }
        return spec
    }

    /// Normalises `axis` against `rank` (negative axes count from the end).
    static func normalizedAxis(_ axis: Int, rank: Int, context: NodeContext) throws -> Int {
        guard axis >= -rank && axis < rank else {
            throw context.error("axis \(axis) is out of range for a rank-\(rank) input")
        }
        return axis < 0 ? axis + rank : axis
    }
}

// MARK: Unary operators

extension OperatorRegistry {
    /// A shape-preserving unary operator; `integer` (Neg, Abs) also folds integer constants.
    static func unarySpec(_ opType: String,
                          integer: (@Sendable (Int64) -> Int64)? = nil,
                          _ operation: @escaping @Sendable (NodeContext) throws -> UnaryOperation) -> OperatorSpec {
        let spec = OperatorSpec(
            opType: opType,
            inferShapes: { context in [try context.input(0)] },
            makeKernel: { context, outputs in
                UnaryKernel(count: outputs[0].count, operation: try operation(context))
            })
        guard let integer else { return spec }
        return foldingThroughKernel(spec) { context in
            guard let input = integerConstants(context)?.first else { return nil }
            return [Tensor(shape: input.shape, ints: input.ints.map(integer), elementType: input.elementType)]
        }
    }

    /// Identity and inference-mode Dropout: output 0 is input 0 (any element type when folded).
    /// Dropout's optional mask output is refused, and so is a constant `training_mode` of true.
    static func passThroughSpec(_ opType: String) -> OperatorSpec {
        @Sendable func check(_ context: NodeContext) throws -> [TensorInfo] {
            let input = try context.input(0)
            guard opType == "Dropout" else { return [input] }
            if context.node.outputs.count > 1 && !context.node.outputs[1].isEmpty {
                throw context.error("Dropout's mask output is not supported (inference only)",
                                    kind: .unsupportedOperator)
            }
            if context.hasInput(2) {
                guard let mode = context.constant(2) else {
                    throw context.error("Dropout's training_mode (input #2) must be a compile-time constant")
                }
                if mode.ints.contains(where: { $0 != 0 }) {
                    throw context.error("Dropout in training mode is not supported (inference only)",
                                        kind: .unsupportedOperator)
                }
            }
            // An omitted mask output (empty name) still gets an info, so infos match outputs.
            let extra = Swift.max(0, context.node.outputs.count - 1)
            return [input] + Array(repeating: TensorInfo(shape: input.shape, elementType: .bool), count: extra)
        }
        return OperatorSpec(
            opType: opType, isDataMovement: true,
            inferShapes: check,
            makeKernel: { _, outputs in CopyKernel(count: outputs[0].count) },
            fold: { context in
                let infos = try check(context)
                guard let input = context.constant(0) else { throw context.error("input #0 is not a constant") }
                let masks = infos.dropFirst().map { Tensor(shape: $0.shape, ints: [Int64](repeating: 1, count: $0.count), elementType: .bool) }
                return [input] + masks
            })
    }

    /// Clip's bounds: `min`/`max` attributes before opset 11, optional constant inputs 1 and 2
    /// from opset 11 on; an absent bound is -inf / +inf.
    static func clipBounds(_ context: NodeContext) throws -> (low: Float, high: Float) {
        if context.opsetVersion < 11 {
            return (try context.float("min", default: -Float.infinity), try context.float("max", default: Float.infinity))
        }
        func bound(_ index: Int, _ name: String, _ absent: Float) throws -> Float {
            guard context.hasInput(index) else { return absent }
            guard let tensor = context.constant(index) else {
                throw context.error("Clip's \(name) (input #\(index)) must be a compile-time constant")
            }
            guard tensor.count == 1 else {
                throw context.error("Clip's \(name) (input #\(index)) must be a scalar, got shape \(tensor.shape)")
            }
            return tensor.floats[0]
        }
        return (try bound(1, "min", -Float.infinity), try bound(2, "max", Float.infinity))
    }

    static let clipSpec: OperatorSpec = foldingThroughKernel(
        OperatorSpec(
            opType: "Clip",
            inferShapes: { context in [try context.input(0)] },
            makeKernel: { context, outputs in
                let bounds = try clipBounds(context)
                return UnaryKernel(count: outputs[0].count, operation: .clip(low: bounds.low, high: bounds.high))
            }),
        integer: { context in
            guard context.opsetVersion >= 11, let input = context.constant(0), !input.isFloatingPoint else { return nil }
            let low = context.hasInput(1) ? context.constant(1)?.ints.first ?? Int64.min : Int64.min
            let high = context.hasInput(2) ? context.constant(2)?.ints.first ?? Int64.max : Int64.max
            let values = input.ints.map { Swift.min(Swift.max($0, low), high) }
            return [Tensor(shape: input.shape, ints: values, elementType: input.elementType)]
        })

    /// PRelu: `slope` broadcasts unidirectionally to X (typically `[C,1,1]` or `[C]` per channel).
    static let preluSpec = OperatorSpec(
        opType: "PRelu",
        inferShapes: { context in
            let x = try context.input(0), slope = try context.input(1)
            guard Broadcasting.shape([x.shape, slope.shape]) == x.shape else {
                throw context.error("slope shape \(slope.shape) does not broadcast to input shape \(x.shape)",
                                    kind: .shapeMismatch)
            }
            return [x]
        },
        makeKernel: { context, outputs in
            let slope = try context.input(1)
            return BinaryKernel(plan: BroadcastPlan(a: outputs[0].shape, b: slope.shape, output: outputs[0].shape),
                                operation: .prelu)
        })

    /// The `[outer, axis, inner]` view Softmax normalises over.
    static func softmaxGeometry(_ context: NodeContext) throws -> (outer: Int, axis: Int, inner: Int) {
        let shape = try context.input(0).shape
        guard !shape.isEmpty else { throw context.error("Softmax needs an input of rank >= 1") }
        if context.opsetVersion < 13 {
            // Opset 1-12: coerce to 2-D at `axis` and normalise each row of the flattened trailing dims.
            let axis = try normalizedAxis(try context.int("axis", default: 1), rank: shape.count, context: context)
            return (shape[..<axis].reduce(1, *), shape[axis...].reduce(1, *), 1)
        }
        let axis = try normalizedAxis(try context.int("axis", default: -1), rank: shape.count, context: context)
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    static let softmaxSpec = OperatorSpec(
        opType: "Softmax",
        inferShapes: { context in
            _ = try softmaxGeometry(context)
            return [try context.input(0)]
        },
        makeKernel: { context, _ in
            let geometry = try softmaxGeometry(context)
            return SoftmaxKernel(outer: geometry.outer, axis: geometry.axis, inner: geometry.inner)
        })
}

// MARK: Broadcasting binary and variadic operators

extension OperatorRegistry {
    static func binaryInfer(_ context: NodeContext) throws -> [TensorInfo] {
        let a = try context.input(0), b = try context.input(1)
        let shape = try Broadcasting.shape([a.shape, b.shape], context: context)
        return [TensorInfo(shape: shape, elementType: resultType([a, b]))]
    }

    /// Integer folding of a broadcasting binary operator, or nil when the inputs are not integers.
    static func integerBinaryFold(_ context: NodeContext,
                                  _ function: @Sendable (Int64, Int64) throws -> Int64) throws -> [Tensor]? {
        guard let tensors = integerConstants(context), tensors.count == 2 else { return nil }
        let shape = try Broadcasting.shape([tensors[0].shape, tensors[1].shape], context: context)
        do {
            let values = try Broadcasting.mapInts(tensors[0], tensors[1], output: shape, function)
            return [Tensor(shape: shape, ints: values, elementType: tensors[0].elementType)]
        } catch IntegerFoldError.divisionByZero {
            throw context.error("integer division by zero", kind: .invalidData)
        }
    }

    /// Add, Sub, Mul, Div: numpy broadcasting; integer constants fold in Int64 (Div truncates).
    static func binarySpec(_ opType: String, _ operation: BinaryOperation,
                                              integer: @escaping @Sendable (Int64, Int64) throws -> Int64) -> OperatorSpec {
        foldingThroughKernel(
            OperatorSpec(
                opType: opType,
                inferShapes: binaryInfer,
                makeKernel: { context, outputs in
                    let a = try context.input(0), b = try context.input(1)
                    return BinaryKernel(plan: BroadcastPlan(a: a.shape, b: b.shape, output: outputs[0].shape),
                                        operation: operation)
                }),
            integer: { context in try integerBinaryFold(context, integer) })
    }

    /// `base ^ exponent` in integers: exact by squaring for exponents >= 0 (wrapping on
    /// overflow), truncated toward zero for negative exponents.
    static func integerPower(_ base: Int64, _ exponent: Int64) -> Int64 {
        if exponent < 0 {
            if base == 1 { return 1 }
            if base == -1 { return exponent % 2 == 0 ? 1 : -1 }
            return 0
        }
        var result: Int64 = 1, factor = base, remaining = exponent
        while remaining > 0 {
            if remaining & 1 == 1 { result = result &* factor }
            factor = factor &* factor
            remaining >>= 1
        }
        return result
    }

    /// Pow: a scalar constant exponent becomes a unary kernel (2 → `x*x`, 0.5 → `sqrt`,
    /// 1 → copy, 3 → `x*x*x`, -1 → `1/x`, otherwise `powf` with the constant); anything else
    /// broadcasts.
    static let powSpec = foldingThroughKernel(
        OperatorSpec(
            opType: "Pow",
            inferShapes: { context in
                let a = try context.input(0), b = try context.input(1)
                let shape = try Broadcasting.shape([a.shape, b.shape], context: context)
                // The result has the base's type (ONNX Pow allows a different exponent type).
                return [TensorInfo(shape: shape, elementType: a.elementType)]
            },
            makeKernel: { context, outputs in
                let a = try context.input(0), b = try context.input(1)
                let count = outputs[0].count
                if let exponent = context.constant(1), exponent.count == 1, count == a.count {
                    switch exponent.floats[0] {
                    case 2: return UnaryKernel(count: count, operation: .square)
                    case 0.5: return UnaryKernel(count: count, operation: .sqrt)
                    case 1: return CopyKernel(count: count)
                    case 3: return UnaryKernel(count: count, operation: .cube)
                    case -1: return UnaryKernel(count: count, operation: .reciprocal)
                    case let value: return UnaryKernel(count: count, operation: .powConstant(exponent: value))
                    }
                }
                return BinaryKernel(plan: BroadcastPlan(a: a.shape, b: b.shape, output: outputs[0].shape),
                                    operation: .pow)
            }),
        integer: { context in
            guard let base = context.constant(0), !base.isFloatingPoint,
                  let exponent = context.constant(1) else { return nil }
            let shape = try Broadcasting.shape([base.shape, exponent.shape], context: context)
            let values: [Int64]
            if exponent.isFloatingPoint {
                let powers = exponent.floats
                let indices = Tensor(shape: exponent.shape, ints: (0..<Int64(exponent.count)).map { $0 })
                values = Broadcasting.mapInts(base, indices, output: shape) { x, index in
                    let value = powf(Float(x), powers[Int(index)])
                    guard value.isFinite else { return value > 0 ? Int64.max : Int64.min }
                    return Int64(exactly: value.rounded(.towardZero)) ?? (value > 0 ? Int64.max : Int64.min)
                }
            } else {
                values = Broadcasting.mapInts(base, exponent, output: shape, integerPower)
            }
            return [Tensor(shape: shape, ints: values, elementType: base.elementType)]
        })

    /// Sum, Mean, Max, Min: any number (>= 1) of inputs, all broadcast together.
    static func variadicSpec(_ opType: String, _ operation: BinaryOperation,
                                                integer: (@Sendable (Int64, Int64) -> Int64)?,
                                                averages: Bool = false) -> OperatorSpec {
        @Sendable func infer(_ context: NodeContext) throws -> [TensorInfo] {
            var infos: [TensorInfo] = []
            for index in context.inputs.indices { infos.append(try context.input(index)) }
            guard !infos.isEmpty else { throw context.error("\(opType) needs at least one input") }
            let shape = try Broadcasting.shape(infos.map(\.shape), context: context)
            return [TensorInfo(shape: shape, elementType: resultType(infos))]
        }
        let spec = OperatorSpec(
            opType: opType,
            inferShapes: infer,
            makeKernel: { context, outputs in
                let output = outputs[0].shape
                let shapes = try (0..<context.inputs.count).map { try context.input($0).shape }
                var plans: [BroadcastPlan] = []
                if shapes.count >= 2 {
                    plans.append(BroadcastPlan(a: shapes[0], b: shapes[1], output: output))
                    for shape in shapes.dropFirst(2) { plans.append(BroadcastPlan(a: output, b: shape, output: output)) }
                } else if shapes[0] != output {
                    throw context.error("single input shape \(shapes[0]) differs from output \(output)")
                }
                return VariadicKernel(plans: plans, count: outputs[0].count, operation: operation,
                                      scale: averages ? 1 / Float(shapes.count) : 1)
            })
        guard let integer else { return foldingThroughKernel(spec) }
        return foldingThroughKernel(spec) { context in
            guard let tensors = integerConstants(context), tensors.count == context.inputs.count,
                  var result = tensors.first else { return nil }
            for tensor in tensors.dropFirst() {
                let shape = try Broadcasting.shape([result.shape, tensor.shape], context: context)
                result = Tensor(shape: shape, ints: Broadcasting.mapInts(result, tensor, output: shape, integer),
                                elementType: result.elementType)
            }
            return [result]
        }
    }
}

// MARK: Reductions

extension OperatorRegistry {
    /// The reduction geometry, or nil when the node is a no-op (empty axes with
    /// `noop_with_empty_axes`). Axes come from the `axes` attribute before `axesInputSince`
    /// and from the optional constant input 1 from that opset on; empty axes reduce everything.
    static func reduceGeometry(_ context: NodeContext, axesInputSince: Int) throws -> ReduceGeometry? {
        let shape = try context.input(0).shape
        var axes: [Int] = []
        if context.opsetVersion >= axesInputSince && context.hasInput(1) {
            guard let tensor = context.constant(1) else {
                throw context.error("axes (input #1) must be a compile-time constant")
            }
            axes = tensor.ints.map { Int($0) }
        } else if context.hasAttribute("axes") {
            axes = try context.ints("axes")
        }
        let keepDims = try context.int("keepdims", default: 1) != 0
        if axes.isEmpty {
            if try context.int("noop_with_empty_axes", default: 0) != 0 { return nil }
            axes = Array(shape.indices)
        }
        var normalized = Set<Int>()
        for axis in axes {
            let value = try normalizedAxis(axis, rank: shape.count, context: context)
            guard normalized.insert(value).inserted else { throw context.error("axis \(axis) is repeated in axes \(axes)") }
        }
        return ReduceGeometry(shape: shape, axes: normalized, keepDims: keepDims)
    }

    static func reduceSpec(_ opType: String, axesInputSince: Int) -> OperatorSpec {
        let spec = OperatorSpec(
            opType: opType,
            inferShapes: { context in
                let input = try context.input(0)
                guard let geometry = try reduceGeometry(context, axesInputSince: axesInputSince) else { return [input] }
                return [TensorInfo(shape: geometry.outputShape, elementType: input.elementType)]
            },
            makeKernel: { context, outputs in
                guard let geometry = try reduceGeometry(context, axesInputSince: axesInputSince) else {
                    return CopyKernel(count: outputs[0].count)
                }
                switch opType {
                case "ReduceMax":
                    return ReduceKernel(layout: geometry.layout, operation: .max)
                case "ReduceMean":
                    return ReduceKernel(layout: geometry.layout,
                                        operation: .sum(scale: 1 / Float(geometry.reducedCount)))
                default:
                    return ReduceKernel(layout: geometry.layout, operation: .sum(scale: 1))
                }
            })
        return foldingThroughKernel(spec) { context in
            guard let input = context.constant(0), !input.isFloatingPoint else { return nil }
            guard let geometry = try reduceGeometry(context, axesInputSince: axesInputSince) else { return [input] }
            var values: [Int64]
            switch opType {
            case "ReduceMax":
                values = geometry.reduceInts(input.ints, initial: Int64.min) { Swift.max($0, $1) }
            default:
                values = geometry.reduceInts(input.ints, initial: 0) { $0 &+ $1 }
                if opType == "ReduceMean" && geometry.reducedCount > 0 {
                    let divisor = Int64(geometry.reducedCount)
                    values = values.map { $0 / divisor }
                }
            }
            return [Tensor(shape: geometry.outputShape, ints: values, elementType: input.elementType)]
        }
    }
}

/// Layout operators: operators that rearrange, select, pad, resize or create tensors rather
/// than compute new values per element (ONNX opsets 11 to 18, with the older attribute forms
/// where a model may still use them).
extension OperatorRegistry {
    static let layoutOperators: [OperatorSpec] = [
        // Reshape family (ReshapeOperators.swift).
        flattenSpec, reshapeSpec, squeezeSpec, unsqueezeSpec,
        // Strided views (ViewOperators.swift).
        transposeSpec, sliceSpec, expandSpec,
        // Joining and splitting (ConcatSplitOperators.swift).
        concatSpec, splitSpec,
        // Index selection (GatherOperator.swift).
        gatherSpec,
        // Padding (PadOperator.swift).
        padSpec,
        // Resampling (ResizeOperators.swift).
        resizeSpec, upsampleSpec,
        // Constants and type changes (ConstantOperators.swift).
        constantSpec, shapeSpec, constantOfShapeSpec, castSpec,
    ]
}

// MARK: - Element abstraction

/// An element type the layout routines can move: `Float` for run-time activations and
/// float constants, `Int64` for integer constants (shapes, axes, indices) during folding.
protocol LayoutElement: BitwiseCopyable, Sendable {
    static var zero: Self { get }
    /// The value of a scalar attribute in this element type.
    static func choose(float: Float, int: Int64) -> Self
}

extension Float: LayoutElement {
    @inline(__always) static func choose(float: Float, int: Int64) -> Float { float }
}

extension Int64: LayoutElement {
    @inline(__always) static func choose(float: Float, int: Int64) -> Int64 { int }
}

/// A layout operation compiled for fixed shapes, generic over the element type so that one
/// implementation serves both the float32 kernel and constant folding of int64 tensors.
///
/// `inputs` and `outputs` are parallel to the node's inputs and outputs. Inputs that do not
/// carry elements of the data type (shapes, axes, indices) are read at build time and get a
/// pointer to a single zero here.
protocol LayoutRoutine: Sendable {
    func apply<T: LayoutElement>(inputs: [UnsafePointer<T>], outputs: [UnsafeMutablePointer<T>])
}

/// The float32 kernel of a layout routine.
///
/// The routine is held as a closed enum rather than a generic parameter so that every call
/// below is a direct call on a concrete type, which the optimizer specializes for `Float`
/// (a generic kernel type called through `any Kernel` would run unspecialized code).
struct LayoutKernel: Kernel {
    enum Routine: Sendable {
        case copy(PlainCopyRoutine)
        case view(StridedViewRoutine)
        case concat(ConcatRoutine)
        case gather(GatherRoutine)
        case pad(PadRoutine)
        case nearest(NearestResizeRoutine)
    }

    let routine: Routine

    init(routine: PlainCopyRoutine) { self.routine = .copy(routine) }
    init(routine: StridedViewRoutine) { self.routine = .view(routine) }
    init(routine: ConcatRoutine) { self.routine = .concat(routine) }
    init(routine: GatherRoutine) { self.routine = .gather(routine) }
    init(routine: PadRoutine) { self.routine = .pad(routine) }
    init(routine: NearestResizeRoutine) { self.routine = .nearest(routine) }

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        switch routine {
        case .copy(let routine): routine.apply(inputs: inputs, outputs: outputs)
        case .view(let routine): routine.apply(inputs: inputs, outputs: outputs)
        case .concat(let routine): routine.apply(inputs: inputs, outputs: outputs)
        case .gather(let routine): routine.apply(inputs: inputs, outputs: outputs)
        case .pad(let routine): routine.apply(inputs: inputs, outputs: outputs)
        case .nearest(let routine): routine.apply(inputs: inputs, outputs: outputs)
        }
    }
}

/// Runs a routine on compile-time constant tensors and keeps the element type.
///
/// - Parameters:
///   - dataInputs: node inputs whose elements the routine reads (all others get a zero).
///     When every present data input holds integers the routine runs on `Int64`, otherwise
///     on `Float`.
///   - outputShapes: the shape of each output.
func foldRoutine(_ routine: some LayoutRoutine, context: NodeContext, dataInputs: [Int],
                 outputShapes: [[Int]]) throws -> [Tensor] {
    var tensors = [Tensor?](repeating: nil, count: context.node.inputs.count)
    var elementType = ElementType.float32
    var allInts = true
    var first = true
    for index in dataInputs where context.hasInput(index) {
        guard let tensor = context.constant(index) else {
            throw context.error("input #\(index) is not a compile-time constant")
        }
        if first { elementType = tensor.elementType; first = false }
        if tensor.isFloatingPoint { allInts = false }
        tensors[index] = tensor
    }
    if allInts && !first {
        let inputs = tensors.map { $0?.ints }
        let results = runRoutine(routine, inputs: inputs, outputCounts: outputShapes.map { $0.reduce(1, *) })
        return zip(outputShapes, results).map { Tensor(shape: $0, ints: $1, elementType: elementType) }
    }
    let inputs = tensors.map { $0?.floats }
    let results = runRoutine(routine, inputs: inputs, outputCounts: outputShapes.map { $0.reduce(1, *) })
    return zip(outputShapes, results).map { Tensor(shape: $0, floats: $1, elementType: elementType) }
}

/// Runs a routine on arrays (nil for inputs it does not read); allocates, so only for folding.
func runRoutine<T: LayoutElement>(_ routine: some LayoutRoutine, inputs: [[T]?], outputCounts: [Int]) -> [[T]] {
    let zero = UnsafeMutablePointer<T>.allocate(capacity: 1)
    zero.initialize(to: T.zero)
    let inputBuffers = inputs.map { values -> UnsafeMutableBufferPointer<T>? in
        guard let values else { return nil }
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, values.count))
        buffer.initialize(repeating: T.zero)
        _ = buffer.initialize(from: values)
        return buffer
    }
    let outputBuffers = outputCounts.map { count -> UnsafeMutableBufferPointer<T> in
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, count))
        buffer.initialize(repeating: T.zero)
        return buffer
    }
    defer {
        zero.deallocate()
        inputBuffers.forEach { $0?.deallocate() }
        outputBuffers.forEach { $0.deallocate() }
    }
    let inputPointers = inputBuffers.map { buffer -> UnsafePointer<T> in
        UnsafePointer(buffer?.baseAddress ?? zero)
    }
    let outputPointers = outputBuffers.map { $0.baseAddress ?? zero }
    routine.apply(inputs: inputPointers, outputs: outputPointers)
    return zip(outputBuffers, outputCounts).map { Array($0.prefix($1)) }
}

// MARK: - Shared helpers

/// Copies `count` elements unless source and destination are the same buffer (the compiler
/// may alias the input and output of pure reshapes).
@inline(__always)
func copyElements<T>(_ source: UnsafePointer<T>, _ destination: UnsafeMutablePointer<T>, _ count: Int) {
    if count > 0 && UnsafeRawPointer(source) != UnsafeRawPointer(destination) {
        destination.update(from: source, count: count)
    }
}

extension NodeContext {
    /// Resolves a possibly negative axis against `rank` (ONNX: `axis + rank` when negative;
    /// valid range `[-rank, rank - 1]`, or `[-rank, rank]` when `inclusiveEnd`).
    func normalizedAxis(_ axis: Int, rank: Int, name: String = "axis", inclusiveEnd: Bool = false) throws -> Int {
        let upper = inclusiveEnd ? rank : rank - 1
        guard axis >= -rank && axis <= upper else {
            throw error("\(name) \(axis) is out of range for rank \(rank) (valid: \(-rank)...\(upper))")
        }
        return axis < 0 ? axis + rank : axis
    }

    /// Resolves a list of axes, rejecting duplicates.
    func normalizedAxes(_ axes: [Int], rank: Int, name: String = "axes") throws -> [Int] {
        let resolved = try axes.map { try normalizedAxis($0, rank: rank, name: name) }
        guard Set(resolved).count == resolved.count else {
            throw error("\(name) \(axes) repeats an axis")
        }
        return resolved
    }

    /// The integer values of an input that must be known at compile time (shapes, axes,
    /// pads), or an error explaining that Whittle compiles for static shapes.
    func constantInts(_ index: Int, name: String) throws -> [Int] {
        guard hasInput(index) else { throw error("missing required input '\(name)'") }
        guard let tensor = constant(index) else {
            throw error("input '\(name)' must be a compile-time constant; it is computed at run time",
                        kind: .unsupportedOperator)
        }
        return tensor.ints.map { Int(truncatingIfNeeded: $0) }
    }

    /// The float values of an input that must be known at compile time (Resize scales).
    func constantFloats(_ index: Int, name: String) throws -> [Float] {
        guard hasInput(index) else { throw error("missing required input '\(name)'") }
        guard let tensor = constant(index) else {
            throw error("input '\(name)' must be a compile-time constant; it is computed at run time",
                        kind: .unsupportedOperator)
        }
        return tensor.floats
    }

    /// The data input's info (input 0), which every layout operator requires.
    func dataInput() throws -> TensorInfo { try input(0) }
}

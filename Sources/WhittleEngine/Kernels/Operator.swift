/// What the compiler knows about one node when it infers shapes or builds a kernel.
public struct NodeContext: Sendable {
    public let node: Node
    /// Shape and type of each input, parallel to `node.inputs`; nil for an omitted optional input.
    public let inputs: [TensorInfo?]
    /// The value of each input when it is known at compile time (weights, folded shapes).
    public let constants: [Tensor?]
    /// Default-domain opset of the model (attribute vs input forms differ across opsets).
    public let opsetVersion: Int

    public init(node: Node, inputs: [TensorInfo?], constants: [Tensor?], opsetVersion: Int) {
        self.node = node
        self.inputs = inputs
        self.constants = constants
        self.opsetVersion = opsetVersion
    }

    /// How errors name this node: `node 'conv1' (Conv)`.
    public var label: String { "node '\(node.name)' (\(node.opType))" }

    public func error(_ message: String, kind: WhittleError.Kind = .invalidModel) -> WhittleError {
        WhittleError(kind, label, message)
    }

    /// The info of a required input, or an error naming the node.
    public func input(_ index: Int) throws -> TensorInfo {
        guard index < inputs.count, let info = inputs[index] else {
            throw error("missing required input #\(index)")
        }
        return info
    }

    /// The compile-time value of an input, or nil when it is only known at run time.
    public func constant(_ index: Int) -> Tensor? { index < constants.count ? constants[index] : nil }

    /// Whether input `index` is present (not omitted).
    public func hasInput(_ index: Int) -> Bool { index < inputs.count && inputs[index] != nil }

    // MARK: Attributes

    public func int(_ name: String, default value: Int? = nil) throws -> Int {
        switch node.attributes[name] {
        case .int(let v)?: return v
        case nil:
            if let value { return value }
            throw error("missing attribute '\(name)'")
        case let other?: throw error("attribute '\(name)' must be an int, found \(other)")
        }
    }

    public func ints(_ name: String, default value: [Int]? = nil) throws -> [Int] {
        switch node.attributes[name] {
        case .ints(let v)?: return v
        case .int(let v)?: return [v]
        case nil:
            if let value { return value }
            throw error("missing attribute '\(name)'")
        case let other?: throw error("attribute '\(name)' must be ints, found \(other)")
        }
    }

    public func float(_ name: String, default value: Float? = nil) throws -> Float {
        switch node.attributes[name] {
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        case nil:
            if let value { return value }
            throw error("missing attribute '\(name)'")
        case let other?: throw error("attribute '\(name)' must be a float, found \(other)")
        }
    }

    public func string(_ name: String, default value: String? = nil) throws -> String {
        switch node.attributes[name] {
        case .string(let v)?: return v
        case nil:
            if let value { return value }
            throw error("missing attribute '\(name)'")
        case let other?: throw error("attribute '\(name)' must be a string, found \(other)")
        }
    }

    public func hasAttribute(_ name: String) -> Bool { node.attributes[name] != nil }
}

/// A kernel compiled for fixed shapes: the unit the executor runs.
///
/// `run` gets one pointer per node input (in `node.inputs` order; an omitted optional input
/// gets a pointer to a single zero) and one per output, plus a scratch area of
/// `scratchCount` floats that is shared by all kernels and not preserved between calls.
/// `run` must not allocate, and may use both cores (BLAS threads, or `parallelFor` for
/// loops that do not call BLAS).
public protocol Kernel: Sendable {
    var scratchCount: Int { get }
    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>)
}

extension Kernel {
    public var scratchCount: Int { 0 }
}

/// How an ONNX operator is compiled: shape inference, a float kernel, and (optionally)
/// constant evaluation for any element type.
public struct OperatorSpec: Sendable {
    public var opType: String
    /// Output infos for the node's outputs, in order.
    public var inferShapes: @Sendable (NodeContext) throws -> [TensorInfo]
    /// Builds the float32 kernel. nil for operators that only ever fold (e.g. Shape, Constant).
    public var makeKernel: (@Sendable (NodeContext, [TensorInfo]) throws -> any Kernel)?
    /// Evaluates the node when every present input is a compile-time constant, for any
    /// element type (integer shape arithmetic). nil: fold by running the float kernel.
    public var fold: (@Sendable (NodeContext) throws -> [Tensor])?
    /// True when the output keeps the input's values in another arrangement (Reshape,
    /// Transpose, Concat, MaxPool ...): quantization keeps the input's encoding on it.
    public var isDataMovement: Bool

    public init(opType: String,
                isDataMovement: Bool = false,
                inferShapes: @escaping @Sendable (NodeContext) throws -> [TensorInfo],
                makeKernel: (@Sendable (NodeContext, [TensorInfo]) throws -> any Kernel)?,
                fold: (@Sendable (NodeContext) throws -> [Tensor])? = nil) {
        self.opType = opType
        self.isDataMovement = isDataMovement
        self.inferShapes = inferShapes
        self.makeKernel = makeKernel
        self.fold = fold
    }
}

/// An activation the compiler may fuse into the producing Conv/Gemm/MatMul kernel's output
/// loop, when nothing else reads the pre-activation tensor.
public enum FusedActivation: Sendable, Equatable {
    case none
    case relu
    /// Clamp to [min, max] (ReLU6 is `clip(0, 6)`).
    case clip(min: Float, max: Float)

    @inlinable public func apply(_ value: Float) -> Float {
        switch self {
        case .none: return value
        case .relu: return max(value, 0)
        case .clip(let low, let high): return min(max(value, low), high)
        }
    }
}

/// A per-tensor FakeQuantize (see FakeQuantizeOperators.swift) the compiler fused into the
/// producing Conv kernel: applied to each output block after the activation, while the block
/// is still in cache, instead of as its own pass over the whole tensor. The arithmetic is the
/// FakeQuantize kernel's (`whittle_fake_quantize`), so fusing changes no value.
public struct FusedQuantizer: Sendable, Equatable {
    public var scale: Float
    /// Grid ends divided by `scale` (an encoding's offset and offset + steps).
    public var low: Float
    public var high: Float

    public init(scale: Float, low: Float, high: Float) {
        self.scale = scale
        self.low = low
        self.high = high
    }
}

/// Element types Whittle understands. Activations at run time are always `float32`;
/// the integer types appear in constants (shapes, indices) that are folded at compile time.
public enum ElementType: String, Sendable, Codable, Equatable, CaseIterable {
    case float32, float64, int64, int32, int16, uint16, uint8, int8, bool

    /// Bytes one element occupies in memory / on disk.
    public var byteWidth: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .int16, .uint16: return 2
        case .uint8, .int8, .bool: return 1
        }
    }
}

/// A dense, contiguous, row-major (C order, NCHW for images) tensor.
///
/// Floating-point data (float32/float64 on load) is held as `[Float]`; integer and boolean
/// data as `[Int64]`. `elementType` records what the tensor *is*, so export writes it back
/// in its own type.
public struct Tensor: Sendable, Equatable {
    public enum Storage: Sendable, Equatable {
        case float([Float])
        case int([Int64])
    }

    public var shape: [Int]
    public var elementType: ElementType
    public var storage: Storage

    public init(shape: [Int], floats: [Float], elementType: ElementType = .float32) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not match \(floats.count) elements")
        self.shape = shape
        self.elementType = elementType
        self.storage = .float(floats)
    }

    public init(shape: [Int], ints: [Int64], elementType: ElementType = .int64) {
        precondition(shape.reduce(1, *) == ints.count, "shape \(shape) does not match \(ints.count) elements")
        self.shape = shape
        self.elementType = elementType
        self.storage = .int(ints)
    }

    /// A float32 tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, floats: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// A 0-d or 1-d int64 tensor, as used for shapes and axes.
    public static func int64(_ values: [Int64], shape: [Int]? = nil) -> Tensor {
        Tensor(shape: shape ?? [values.count], ints: values)
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var isFloatingPoint: Bool { if case .float = storage { return true } else { return false } }

    /// The data as floats (integers converted).
    public var floats: [Float] {
        switch storage {
        case .float(let f): return f
        case .int(let i): return i.map { Float($0) }
        }
    }

    /// The data as integers (floats truncated toward zero).
    public var ints: [Int64] {
        switch storage {
        case .int(let i): return i
        case .float(let f): return f.map { Int64($0) }
        }
    }

    /// A copy with another shape holding the same elements.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var copy = self
        precondition(newShape.reduce(1, *) == count)
        copy.shape = newShape
        return copy
    }

    /// Bytes the data occupies in its own element type.
    public var byteCount: Int { count * elementType.byteWidth }
}

/// Shape and element type of a value flowing through a graph, known at compile time.
public struct TensorInfo: Sendable, Equatable, CustomStringConvertible {
    public var shape: [Int]
    public var elementType: ElementType

    public init(shape: [Int], elementType: ElementType = .float32) {
        self.shape = shape
        self.elementType = elementType
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var description: String { "\(elementType.rawValue)[\(shape.map(String.init).joined(separator: "x"))]" }
}

/// Row-major strides for a shape.
public func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= shape[axis]
    }
    return strides
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A scalar float function of one argument, applied element by element. Kernels are generic
/// over it so every operator gets its own specialised, vectorisable loop.
protocol UnaryFunction: Sendable {
    func callAsFunction(_ x: Float) -> Float
}

/// A scalar float function of two arguments, applied element by element after broadcasting.
protocol BinaryFunction: Sendable {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

// MARK: Unary functions

/// `max(x, 0)`.
struct ReluFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? x : 0 }
}

/// `x >= 0 ? x : alpha * x` (ONNX LeakyRelu, alpha default 0.01).
struct LeakyReluFunction: UnaryFunction {
    var alpha: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x >= 0 ? x : alpha * x }
}

/// `min(max(x, low), high)`; with `low > high` every value becomes `high`, as ONNX Clip specifies.
struct ClipFunction: UnaryFunction {
    var low: Float
    var high: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.min(Swift.max(x, low), high) }
}

/// `max(0, min(1, alpha * x + beta))` (ONNX HardSigmoid).
struct HardSigmoidFunction: UnaryFunction {
    var alpha: Float
    var beta: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        Swift.max(0, Swift.min(1, alpha * x + beta))
    }
}

/// `x * max(0, min(1, x / 6 + 0.5))` (ONNX HardSwish: HardSigmoid with alpha 1/6, beta 0.5).
struct HardSwishFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        x * Swift.max(0, Swift.min(1, x * (1 / 6 as Float) + 0.5))
    }
}

/// `1 / (1 + exp(-x))`; for very negative x `exp(-x)` overflows to +inf and the result is 0.
struct SigmoidFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
}

struct TanhFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { tanhf(x) }
}

struct SqrtFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x.squareRoot() }
}

struct ExpFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { expf(x) }
}

struct LogFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { logf(x) }
}

struct NegFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { -x }
}

struct AbsFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.abs(x) }
}

struct ErfFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { erff(x) }
}

struct ReciprocalFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / x }
}

/// `x * x`: Pow with the constant exponent 2.
struct SquareFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x }
}

/// `x * x * x`: Pow with the constant exponent 3.
struct CubeFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x * x }
}

/// `x ^ exponent` for a constant exponent without a cheaper special case.
struct PowConstantFunction: UnaryFunction {
    var exponent: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { powf(x, exponent) }
}

/// `x * factor`: Mean's final division, and Pow with exponent 1 (factor 1).
struct ScaleFunction: UnaryFunction {
    var factor: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * factor }
}

// MARK: Binary functions

struct AddFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b }
}

struct SubFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b }
}

struct MulFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b }
}

struct DivFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b }
}

struct PowFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { powf(a, b) }
}

struct MaxFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a >= b ? a : b }
}

struct MinFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a <= b ? a : b }
}

/// PRelu: `x < 0 ? slope * x : x` with the slope broadcast to x.
struct PReluFunction: BinaryFunction {
    @inline(__always) func callAsFunction(_ x: Float, _ slope: Float) -> Float { x < 0 ? slope * x : x }
}

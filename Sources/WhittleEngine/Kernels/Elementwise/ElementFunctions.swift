#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A scalar float function of one argument, applied element by element. Loops are generic
/// over it, but kernels never store one: they hold a `UnaryOperation` and switch once per
/// run, so every loop is called with a concrete function and specialised (a generic kernel
/// erased to `any Kernel` would call the function through a witness table per element).
protocol UnaryFunction: Sendable {
    func callAsFunction(_ x: Float) -> Float
}

/// A scalar float function of two arguments, applied element by element after broadcasting
/// (kernels hold a `BinaryOperation`, for the reason given on `UnaryFunction`).
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
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }
}

struct TanhFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { tanhf(x) }
}

struct SqrtFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x.squareRoot() }
}

struct ExpFunction: UnaryFunction {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { fastExp(x) }
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

// MARK: Vectorisable exponential

/// `e^x` in float32 without a library call, so loops using it vectorise.
///
/// Range reduction `x = n ln2 + r` with `n = round(x / ln2)` and `|r| <= ln2 / 2`, where
/// `n ln2` is subtracted in two parts (Cody and Waite) to keep `r` exact to float precision;
/// `e^r` is its Taylor series to degree 7 (truncation error below `0.35^8 / 8! < 6e-9`,
/// under half an ulp) and `2^n` is built directly in exponent bits (as two factors). `n` is
/// rounded by adding `1.5 * 2^23`, which leaves it in the low mantissa bits, so no float-to-int
/// conversion (a checked, scalar operation in Swift) is needed.
/// Results below the smallest normal float (x < -87.33) flush to 0; x > 88.72 gives +inf;
/// NaN stays NaN. Relative error is a few ulp (about 2e-7).
@inline(__always)
func fastExp(_ x: Float) -> Float {
    let high: Float = 88.72283, low: Float = -87.33654
    let clamped = x > high ? high : (x < low ? low : x)
    let magic: Float = 12_582_912 // 1.5 * 2^23
    let shifted = clamped * 1.442_695_04 + magic
    let n = shifted - magic
    // ln2 = 0.693359375 - 2.12194440e-4 (the first part has few bits, so n * part is exact).
    var r = clamped - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p: Float = 1 / 5040
    p = p * r + 1 / 720
    p = p * r + 1 / 120
    p = p * r + 1 / 24
    p = p * r + 1 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // 2^n in two factors: n reaches 128 just below the overflow threshold, past the largest
    // biased exponent a single float scale can hold.
    let exponent = Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: magic.bitPattern)
    let half = exponent &>> 1
    let scale = Float(bitPattern: UInt32(bitPattern: (half &+ 127) &<< 23))
    let rest = Float(bitPattern: UInt32(bitPattern: (exponent &- half &+ 127) &<< 23))
    let value = p * scale * rest
    return x > high ? Float.infinity : (x < low ? 0 : value)
}

// MARK: Closed operation sets

/// The unary maps a kernel can run, resolved once per run so each loop is specialised.
enum UnaryOperation: Sendable, Equatable {
    case relu
    case leakyRelu(alpha: Float)
    case clip(low: Float, high: Float)
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case sigmoid
    case tanh
    case sqrt
    case exp
    case log
    case neg
    case abs
    case erf
    case reciprocal
    case square
    case cube
    case powConstant(exponent: Float)
    case scale(factor: Float)

    /// `out[i] = f(x[i])` for `i` in `0..<n`; `out` may equal `x`.
    @inline(__always)
    func apply(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .relu: mapElements(ReluFunction(), x, out, n)
        case .leakyRelu(let alpha): mapElements(LeakyReluFunction(alpha: alpha), x, out, n)
        case .clip(let low, let high): mapElements(ClipFunction(low: low, high: high), x, out, n)
        case .hardSigmoid(let alpha, let beta): mapElements(HardSigmoidFunction(alpha: alpha, beta: beta), x, out, n)
        case .hardSwish: mapElements(HardSwishFunction(), x, out, n)
        case .sigmoid: mapElements(SigmoidFunction(), x, out, n)
        case .tanh: mapElements(TanhFunction(), x, out, n)
        case .sqrt: mapElements(SqrtFunction(), x, out, n)
        case .exp: mapElements(ExpFunction(), x, out, n)
        case .log: mapElements(LogFunction(), x, out, n)
        case .neg: mapElements(NegFunction(), x, out, n)
        case .abs: mapElements(AbsFunction(), x, out, n)
        case .erf: mapElements(ErfFunction(), x, out, n)
        case .reciprocal: mapElements(ReciprocalFunction(), x, out, n)
        case .square: mapElements(SquareFunction(), x, out, n)
        case .cube: mapElements(CubeFunction(), x, out, n)
        case .powConstant(let exponent): mapElements(PowConstantFunction(exponent: exponent), x, out, n)
        case .scale(let factor): mapElements(ScaleFunction(factor: factor), x, out, n)
        }
    }
}

/// The broadcasting binary operations, resolved once per run like `UnaryOperation`.
enum BinaryOperation: Sendable, Equatable {
    case add
    case sub
    case mul
    case div
    case pow
    case max
    case min
    /// PRelu with the slope as the second operand.
    case prelu

    /// Runs `plan` with this operation's concrete element function.
    @inline(__always)
    func apply(_ plan: BroadcastPlan, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
               _ out: UnsafeMutablePointer<Float>) {
        switch self {
        case .add: plan.apply(AddFunction(), a, b, out)
        case .sub: plan.apply(SubFunction(), a, b, out)
        case .mul: plan.apply(MulFunction(), a, b, out)
        case .div: plan.apply(DivFunction(), a, b, out)
        case .pow: plan.apply(PowFunction(), a, b, out)
        case .max: plan.apply(MaxFunction(), a, b, out)
        case .min: plan.apply(MinFunction(), a, b, out)
        case .prelu: plan.apply(PReluFunction(), a, b, out)
        }
    }
}

/// `out[i] = function(x[i])`: a plain counted loop on raw pointers (no bounds or overflow
/// checks) that the compiler vectorises once `function` is concrete. In-place runs get their
/// own loop: the vectoriser's runtime overlap check would reject `x == out` and fall back to
/// scalar code.
@inline(__always)
func mapElements<F: UnaryFunction>(_ function: F, _ x: UnsafePointer<Float>,
                                   _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    if x == UnsafePointer(out) {
        while i < n {
            out[i] = function(out[i])
            i = i &+ 1
        }
        return
    }
    while i < n {
        out[i] = function(x[i])
        i = i &+ 1
    }
}

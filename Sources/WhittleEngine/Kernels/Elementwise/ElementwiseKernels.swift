/// `out[i] = f(x[i])` over a contiguous tensor, split over threads in large chunks.
///
/// Not generic: the operation is a closed enum switched once per chunk, so the loop inside
/// is specialised and vectorised even though the executor calls `run` through `any Kernel`.
struct UnaryKernel: Kernel {
    let count: Int
    let operation: UnaryOperation

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        let x = inputs[0], out = outputs[0], operation = self.operation
        forEachElementChunk(count) { start, end in
            operation.apply(x + start, out + start, end &- start)
        }
    }
}

/// Copies input 0 to output 0 (Identity, inference-mode Dropout, single-input Sum/Max/Min).
struct CopyKernel: Kernel {
    let count: Int

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        if inputs[0] != UnsafePointer(outputs[0]) { outputs[0].update(from: inputs[0], count: count) }
    }
}

/// A broadcasting binary operator: `out = operation(a, b)` following a precomputed plan.
struct BinaryKernel: Kernel {
    let plan: BroadcastPlan
    let operation: BinaryOperation

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        operation.apply(plan, inputs[0], inputs[1], outputs[0])
    }
}

/// A variadic broadcasting operator (Sum, Mean, Max, Min): `out = f(in0, in1)`, then
/// `out = f(out, in_k)` for each further input, then an optional scale (Mean's `1/n`).
struct VariadicKernel: Kernel {
    /// `plans[0]` combines inputs 0 and 1; `plans[k]` combines the output with input k + 1.
    let plans: [BroadcastPlan]
    /// Elements of the output (a single input is copied as is).
    let count: Int
    let operation: BinaryOperation
    /// Multiplies the result when not 1 (Mean).
    let scale: Float

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        let out = outputs[0]
        if plans.isEmpty {
            out.update(from: inputs[0], count: count)
        } else {
            operation.apply(plans[0], inputs[0], inputs[1], out)
            var k = 1
            while k < plans.count {
                operation.apply(plans[k], UnsafePointer(out), inputs[k + 1], out)
                k += 1
            }
        }
        if scale != 1 {
            let factor = scale
            forEachElementChunk(count) { start, end in
                UnaryOperation.scale(factor: factor).apply(out + start, out + start, end &- start)
            }
        }
    }
}

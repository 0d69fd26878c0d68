/// `out[i] = function(x[i])` over a contiguous tensor, split over threads in large chunks.
struct UnaryKernel<Function: UnaryFunction>: Kernel {
    let count: Int
    let function: Function

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        let x = inputs[0], out = outputs[0], function = self.function
        forEachElementChunk(count) { start, end in
            for i in start..<end { out[i] = function(x[i]) }
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

/// A broadcasting binary operator: `out = function(a, b)` following a precomputed plan.
struct BinaryKernel<Function: BinaryFunction>: Kernel {
    let plan: BroadcastPlan
    let function: Function

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        plan.apply(function, inputs[0], inputs[1], outputs[0])
    }
}

/// A variadic broadcasting operator (Sum, Mean, Max, Min): `out = f(in0, in1)`, then
/// `out = f(out, in_k)` for each further input, then an optional scale (Mean's `1/n`).
struct VariadicKernel<Function: BinaryFunction>: Kernel {
    /// `plans[0]` combines inputs 0 and 1; `plans[k]` combines the output with input k + 1.
    let plans: [BroadcastPlan]
    /// Elements of the output (a single input is copied as is).
    let count: Int
    let function: Function
    /// Multiplies the result when not 1 (Mean).
    let scale: Float

    func run(inputs: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>],
             scratch: UnsafeMutablePointer<Float>) {
        let out = outputs[0]
        if plans.isEmpty {
            out.update(from: inputs[0], count: count)
        } else {
            plans[0].apply(function, inputs[0], inputs[1], out)
            var k = 1
            while k < plans.count {
                plans[k].apply(function, UnsafePointer(out), inputs[k + 1], out)
                k += 1
            }
        }
        if scale != 1 {
            let factor = scale
            forEachElementChunk(count) { start, end in
                for i in start..<end { out[i] *= factor }
            }
        }
    }
}

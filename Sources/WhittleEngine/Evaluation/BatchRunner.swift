import Foundation

/// Runs a graph over many samples in fixed-size batches, reusing one compiled plan per batch
/// size (the full size and, when the sample count is not a multiple, the remainder).
///
/// Every consumer of whole-dataset passes — evaluation, calibration, sensitivity sweeps —
/// goes through this runner so that batching, buffer reuse and cancellation live in one place.
public final class BatchRunner: @unchecked Sendable {
    public let graph: Graph
    public let batchSize: Int
    public let options: CompileOptions
    private var plans: [Int: Plan] = [:]
    /// The graph plans are compiled from (after `options.prepare`, e.g. BatchNorm folded).
    private let compiledGraph: Graph
    /// Per-sample shape of each input (without the batch dimension). Taken from the declared
    /// dimensions, and from the data for symbolic ones once `validate(inputs:)` has seen it.
    public private(set) var sampleShapes: [String: [Int]]

    public init(graph: Graph, batchSize: Int, options: CompileOptions = CompileOptions()) throws {
        guard batchSize >= 1 else {
            throw WhittleError(.invalidArgument, "--batch", "must be at least 1, got \(batchSize)")
        }
        self.graph = graph
        self.batchSize = batchSize
        self.options = options
        self.compiledGraph = try options.prepare(graph)
        var shapes: [String: [Int]] = [:]
        for input in graph.runtimeInputs {
            shapes[input.name] = input.dimensions.dropFirst().map { $0.fixedValue ?? 0 }
        }
        self.sampleShapes = shapes
    }

    /// The plan for `size` samples, compiled on first use.
    public func plan(forBatch size: Int) throws -> Plan {
        if let plan = plans[size] { return plan }
        var infos: [String: TensorInfo] = [:]
        for input in graph.runtimeInputs {
            let sample = sampleShapes[input.name] ?? []
            if let axis = sample.firstIndex(of: 0) {
                throw WhittleError(.invalidArgument, "input '\(input.name)'",
                                   "dimension \(axis + 1) is symbolic; its size comes from the data")
            }
            infos[input.name] = TensorInfo(shape: [size] + sample, elementType: input.elementType)
        }
        let plan = try Plan(analysis: GraphAnalysis(graph: compiledGraph, inputInfos: infos), options: options)
        plans[size] = plan
        return plan
    }

    /// Checks that `inputs` hold every runtime input with one batch dimension and the
    /// declared size on every fixed dimension; symbolic dimensions take the data's sizes.
    /// Returns the number of samples.
    @discardableResult
    public func validate(inputs: [String: Tensor]) throws -> Int {
        var count: Int?
        var shapes: [String: [Int]] = [:]
        for input in graph.runtimeInputs {
            let name = input.name
            guard let tensor = inputs[name] else {
                throw WhittleError(.invalidData, "input '\(name)'", "missing from the data (found: \(inputs.keys.sorted().joined(separator: ", ")))")
            }
            let declared = input.dimensions.dropFirst().map { $0.fixedValue.map(String.init) ?? "?" }.joined(separator: "x")
            let fits = tensor.rank == input.dimensions.count && tensor.rank >= 1
                && zip(tensor.shape.dropFirst(), input.dimensions.dropFirst()).allSatisfy { size, dimension in
                    size >= 1 && (dimension.fixedValue.map { $0 == size } ?? true)
                }
            guard fits else {
                throw WhittleError(.shapeMismatch, "input '\(name)'",
                                   "data has shape \(tensor.shape), the model expects [N x \(declared)]")
            }
            if let count, count != tensor.shape[0] {
                throw WhittleError(.invalidData, "input '\(name)'", "has \(tensor.shape[0]) samples, other inputs have \(count)")
            }
            count = tensor.shape[0]
            shapes[name] = Array(tensor.shape.dropFirst())
        }
        if shapes != sampleShapes {
            sampleShapes = shapes
            plans = [:]
        }
        return count ?? 0
    }

    /// Runs every batch of `inputs` and hands the plan (with outputs in its buffers) to `body`
    /// together with the sample range. `shouldStop` is checked between batches. `observe`, when
    /// given, is called after every step of every batch (the step's outputs are readable through
    /// `plan.outputBuffer` at that moment), for calibration statistics and per-layer data.
    public func forEachBatch(inputs: [String: Tensor], range: Range<Int>? = nil,
                             shouldStop: () -> Bool = { false },
                             observe: ((Plan, Int, Plan.Step) -> Void)? = nil,
                             _ body: (Range<Int>, Plan) throws -> Void) throws {
        let total = try validate(inputs: inputs)
        let samples = range ?? 0..<total
        guard samples.lowerBound >= 0, samples.upperBound <= total else {
            throw WhittleError(.invalidArgument, "range", "samples \(samples) outside 0..<\(total)")
        }
        let sources: [(name: String, values: [Float], rowSize: Int)] = graph.runtimeInputs.map(\.name).map { name in
            let tensor = inputs[name] ?? Tensor.zeros([1])
            return (name, tensor.floats, tensor.count / max(1, tensor.shape.first ?? 1))
        }
        var start = samples.lowerBound
        while start < samples.upperBound {
            if shouldStop() { throw WhittleError(.cancelled, "", "cancelled") }
            let end = min(start + batchSize, samples.upperBound)
            let plan = try self.plan(forBatch: end - start)
            for source in sources {
                guard let buffer = plan.inputBuffer(source.name), let destination = buffer.baseAddress else { continue }
                source.values.withUnsafeBufferPointer { values in
                    guard let base = values.baseAddress else { return }
                    destination.update(from: base + start * source.rowSize, count: (end - start) * source.rowSize)
                }
            }
            if let observe {
                plan.execute { index, step in observe(plan, index, step) }
            } else {
                plan.execute()
            }
            try body(start..<end, plan)
            start = end
        }
    }

    /// Runs all samples and returns every model output, concatenated along dimension 0.
    public func outputs(inputs: [String: Tensor], range: Range<Int>? = nil) throws -> [String: Tensor] {
        var collected: [String: [Float]] = [:]
        var shapes: [String: [Int]] = [:]
        var samples = 0
        try forEachBatch(inputs: inputs, range: range) { batch, plan in
            samples += batch.count
            for name in plan.outputNames {
                guard let buffer = plan.outputBuffer(name), let info = plan.info(name) else { continue }
                collected[name, default: []].append(contentsOf: buffer.prefix(info.count))
                shapes[name] = info.shape
            }
        }
        var result: [String: Tensor] = [:]
        for (name, values) in collected {
            var shape = shapes[name] ?? [values.count]
            if !shape.isEmpty { shape[0] = samples }
            if shape.reduce(1, *) != values.count { shape = [values.count] }
            result[name] = Tensor(shape: shape, floats: values)
        }
        return result
    }
}

/// Index of the largest value in each row of a [rows x width] buffer.
public func argmaxRows(_ values: UnsafeBufferPointer<Float>, rows: Int, width: Int) -> [Int] {
    (0..<rows).map { row in
        var best = 0
        var bestValue = -Float.infinity
        for column in 0..<width where values[row * width + column] > bestValue {
            bestValue = values[row * width + column]
            best = column
        }
        return best
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Options for compiling a plan.
public struct CompileOptions: Sendable {
    /// Fuse a Relu/Clip into the Conv/Gemm/MatMul that feeds it when nothing else reads the
    /// pre-activation tensor.
    public var fuseActivations: Bool
    /// Tensors that must stay readable after a run (observers, per-layer outputs): they get
    /// their own memory and are never fused away.
    public var preservedTensors: Set<String>
    /// Fold inference BatchNormalization into the preceding Conv/ConvTranspose/Gemm before
    /// compiling (what every float runtime does; tensor names are kept).
    public var foldBatchNorm: Bool
    /// Tensors an observer reads during `execute(observe:)` right after the step that writes
    /// them: never fused away, but (unlike preserved tensors) they share the arena, so their
    /// values are only valid inside the observe callback of their step.
    public var observedTensors: Set<String>
    /// Run a Conv (+ activation) whose output only feeds a depthwise Conv (+ activation) as one
    /// strip-by-strip step, so the intermediate tensor stays in cache (needs `fuseActivations`).
    public var fuseDepthwiseChains: Bool

    public init(fuseActivations: Bool = true, preservedTensors: Set<String> = [], foldBatchNorm: Bool = true,
                observedTensors: Set<String> = [], fuseDepthwiseChains: Bool = true) {
        self.fuseActivations = fuseActivations
        self.preservedTensors = preservedTensors
        self.foldBatchNorm = foldBatchNorm
        self.observedTensors = observedTensors
        self.fuseDepthwiseChains = fuseDepthwiseChains
    }

    /// The graph a plan is actually compiled from under these options.
    public func prepare(_ graph: Graph) throws -> Graph {
        foldBatchNorm ? try BatchNormFolding.fold(graph, preserving: preservedTensors.union(observedTensors)).graph : graph
    }
}

/// A graph compiled for fixed input shapes: one kernel per runtime node, chosen once, and
/// every activation assigned to a slot of one arena by liveness. Running allocates nothing.
///
/// A plan owns mutable buffers: use it from one thread at a time (make one plan per thread).
public final class Plan: @unchecked Sendable {
    /// Operators whose kernels read and write element i at the same index only, so their
    /// output may overwrite their first input.
    static let inPlaceOpTypes: Set<String> = [OperatorRegistry.fakeQuantizeOpType, OperatorRegistry.fakeQuantizeFloat16OpType]

    /// One executed step.
    public struct Step: Sendable {
        public let nodeName: String
        public let opType: String
        /// Names of the node outputs this step writes (a fused activation writes the
        /// activation's outputs).
        public let outputs: [String]
        /// Op types fused into this step after the main op (e.g. ["Clip"]).
        public let fused: [String]
        let kernel: any Kernel
        let inputPointers: UncheckedSendableBox<[UnsafePointer<Float>]>
        let outputPointers: UncheckedSendableBox<[UnsafeMutablePointer<Float>]>
    }

    public let analysis: GraphAnalysis
    public let steps: [Step]
    /// Floats in the shared activation arena.
    public let arenaFloats: Int
    /// Floats of kernel scratch (shared by all steps).
    public let scratchFloats: Int
    /// Bytes held by the plan: arena, scratch, input/output buffers and constant copies.
    public let totalBytes: Int
    public let inputNames: [String]
    public let outputNames: [String]

    private let arena: FloatStorage
    private let scratch: FloatStorage
    private let ownedBuffers: [FloatStorage]
    private let tensorBuffers: [String: FloatStorage]

    /// Compiles `graph` for the given batch size (symbolic dimension 0 of every input).
    public convenience init(graph: Graph, batchSize: Int, dimensions: [String: Int] = [:],
                            options: CompileOptions = CompileOptions()) throws {
        try self.init(analysis: GraphAnalysis(graph: options.prepare(graph), batchSize: batchSize, dimensions: dimensions), options: options)
    }

    /// Compiles an analysed graph as it is (`options.prepare` is the caller's business here).
    public init(analysis: GraphAnalysis, options: CompileOptions = CompileOptions()) throws {
        self.analysis = analysis
        let graph = analysis.graph
        let outputNames = graph.outputs.map(\.name)
        let inputNames = graph.runtimeInputs.map(\.name)
        self.inputNames = inputNames
        self.outputNames = outputNames
        let outputSet = Set(outputNames)

        // Who reads each tensor at run time.
        var readers: [String: Int] = [:]
        for runtime in analysis.runtimeNodes {
            for name in runtime.node.inputs where !name.isEmpty && analysis.constants[name] == nil {
                readers[name, default: 0] += 1
            }
        }
        // The (last) runtime node reading each tensor; only used when there is exactly one reader.
        var nodeByReader: [String: Int] = [:]
        for (position, runtime) in analysis.runtimeNodes.enumerated() {
            for name in runtime.node.inputs where !name.isEmpty { nodeByReader[name] = position }
        }

        // 1. Choose kernels, fusing activations where allowed.
        struct PendingStep {
            var runtime: GraphAnalysis.RuntimeNode
            var kernel: any Kernel
            var outputs: [String]
            var fused: [String]
            /// Constant inputs of fused nodes, passed after the node's own inputs.
            var extraInputs: [String] = []
        }
        var pending: [PendingStep] = []
        var skipped = Set<Int>()
        for (position, runtime) in analysis.runtimeNodes.enumerated() where !skipped.contains(position) {
            let node = runtime.node
            if options.fuseActivations && options.fuseDepthwiseChains, let chain = try depthwiseChain(for: position) {
                skipped.formUnion(chain.consumed)
                pending.append(PendingStep(runtime: runtime, kernel: chain.kernel,
                                           outputs: analysis.runtimeNodes[chain.consumed[chain.consumed.count - 1]].node.outputs,
                                           fused: chain.consumed.map { analysis.runtimeNodes[$0].node.opType },
                                           extraInputs: chain.extraInputs))
                continue
            }
            if options.fuseActivations, let fusion = try fusedStep(for: position) {
                skipped.formUnion(fusion.consumed)
                pending.append(PendingStep(runtime: runtime, kernel: fusion.kernel,
                                           outputs: analysis.runtimeNodes[fusion.consumed[fusion.consumed.count - 1]].node.outputs,
                                           fused: fusion.consumed.map { analysis.runtimeNodes[$0].node.opType }))
                continue
            }
            guard let makeKernel = OperatorRegistry.spec(for: node.opType)?.makeKernel else {
                throw runtime.context.error("has no run-time kernel", kind: .unsupportedOperator)
            }
            pending.append(PendingStep(runtime: runtime, kernel: try makeKernel(runtime.context, runtime.outputInfos),
                                       outputs: node.outputs, fused: []))
        }

        /// A kernel for the node at `position` with the activation and (for Conv) fake
        /// quantizer that follow it fused in; `consumed` are the positions it absorbs, in order.
        func fusedStep(for position: Int) throws -> (kernel: any Kernel, consumed: [Int])? {
            let runtime = analysis.runtimeNodes[position]
            let node = runtime.node
            guard node.outputs.count == 1, let produced = node.outputs.first,
                  FusionRules.canFuseActivation(into: node.opType) else { return nil }
            let tail = epilogue(after: produced, quantizer: FusionRules.canFuseQuantizer(into: node.opType))
            guard !tail.consumed.isEmpty,
                  let kernel = try FusionRules.makeKernel(context: runtime.context, outputs: runtime.outputInfos,
                                                          activation: tail.activation, quantizer: tail.quantizer)
            else { return nil }
            return (kernel, tail.consumed)
        }

        /// What a producing kernel can apply to `tensor` in its output loop: the activation
        /// reading it, then the per-tensor FakeQuantize reading that (when `quantizer`), each
        /// present only if it is the sole reader of what it reads. `output` is the last tensor
        /// computed (`tensor` itself when nothing follows).
        func epilogue(after tensor: String, quantizer allowQuantizer: Bool)
            -> (activation: FusedActivation, quantizer: FusedQuantizer?, consumed: [Int], output: String) {
            var consumed: [Int] = []
            var activation = FusedActivation.none
            var quantizer: FusedQuantizer?
            var current = tensor
            if let reader = soleReader(of: current), analysis.runtimeNodes[reader].node.outputs.count == 1,
               let fused = FusionRules.activation(of: analysis.runtimeNodes[reader].context) {
                activation = fused
                consumed.append(reader)
                current = analysis.runtimeNodes[reader].node.outputs[0]
            }
            if allowQuantizer, let reader = soleReader(of: current), let fused = fusableQuantizer(at: reader) {
                quantizer = fused
                consumed.append(reader)
                current = analysis.runtimeNodes[reader].node.outputs[0]
            }
            return (activation, quantizer, consumed, current)
        }

        /// The FakeQuantize at `position` as a quantizer a kernel can apply: one output, and one
        /// constant scale and grid end each (per-tensor).
        func fusableQuantizer(at position: Int) -> FusedQuantizer? {
            let node = analysis.runtimeNodes[position].node
            guard node.opType == OperatorRegistry.fakeQuantizeOpType, node.domain == OperatorRegistry.whittleDomain,
                  node.inputs.count == 4, node.outputs.count == 1, !node.outputs[0].isEmpty,
                  let scale = analysis.constants[node.inputs[1]], scale.count == 1,
                  let low = analysis.constants[node.inputs[2]], low.count == 1,
                  let high = analysis.constants[node.inputs[3]], high.count == 1
            else { return nil }
            return FusedQuantizer(scale: scale.floats[0], low: low.floats[0], high: high.floats[0])
        }

        /// The node reading `tensor` when it is the only reader (one input slot in all, so no
        /// other input of it) and reads it as its first input, and nothing needs `tensor`
        /// itself (graph output, preserved, observed).
        func soleReader(of tensor: String) -> Int? {
            guard !outputSet.contains(tensor), !options.preservedTensors.contains(tensor),
                  !options.observedTensors.contains(tensor), readers[tensor] == 1,
                  let reader = nodeByReader[tensor], analysis.runtimeNodes[reader].node.inputs.first == tensor
            else { return nil }
            return reader
        }

        /// Conv at `position` -> [activation] -> [FakeQuantize] -> depthwise Conv -> [activation]
        /// -> [FakeQuantize], as one step (LinearConvDepthwiseChainKernel); `consumed` are the
        /// positions it absorbs, in order.
        func depthwiseChain(for position: Int) throws -> (kernel: any Kernel, consumed: [Int], extraInputs: [String])? {
            let producer = analysis.runtimeNodes[position]
            guard producer.node.opType == "Conv", producer.node.outputs.count == 1, let produced = producer.node.outputs.first
            else { return nil }
            let head = epilogue(after: produced, quantizer: true)
            guard let next = soleReader(of: head.output) else { return nil }
            var consumed = head.consumed
            let depthwise = analysis.runtimeNodes[next]
            let inputs = depthwise.node.inputs
            guard depthwise.node.opType == "Conv", depthwise.node.domain.isEmpty || depthwise.node.domain == "ai.onnx",
                  depthwise.node.outputs.count == 1, let depthwiseOutput = depthwise.node.outputs.first,
                  inputs.count >= 2, analysis.constants[inputs[1]] != nil,
                  inputs.count < 3 || inputs[2].isEmpty || analysis.constants[inputs[2]] != nil
            else { return nil }
            consumed.append(next)
            let tail = epilogue(after: depthwiseOutput, quantizer: true)
            consumed += tail.consumed
            guard let kernel = try LinearConv.makeDepthwiseChainKernel(
                producer: producer.context, producerActivation: head.activation, producerQuantizer: head.quantizer,
                depthwise: depthwise.context, depthwiseActivation: tail.activation, depthwiseQuantizer: tail.quantizer,
                depthwiseWeightInput: producer.node.inputs.count)
            else { return nil }
            return (kernel, consumed, [inputs[1], inputs.count >= 3 ? inputs[2] : ""])
        }

        // 2. Liveness of every runtime tensor written by a step.
        var firstStep: [String: Int] = [:]
        var lastStep: [String: Int] = [:]
        for (stepIndex, step) in pending.enumerated() {
            for name in step.outputs where !name.isEmpty { firstStep[name] = stepIndex; lastStep[name] = max(lastStep[name] ?? stepIndex, stepIndex) }
            for name in step.runtime.node.inputs where !name.isEmpty && analysis.constants[name] == nil {
                lastStep[name] = max(lastStep[name] ?? stepIndex, stepIndex)
            }
        }
        // In-place steps: an elementwise step (fake quantization) whose input is an arena
        // tensor read for the last time by that step writes its output over the input, so a
        // quantization simulation needs no more memory than the float model.
        func isDedicated(_ name: String) -> Bool {
            outputSet.contains(name) || options.preservedTensors.contains(name) || options.observedTensors.contains(name)
        }
        var sharesSlotOf: [String: String] = [:]
        for (stepIndex, step) in pending.enumerated() {
            guard step.fused.isEmpty, Self.inPlaceOpTypes.contains(step.runtime.node.opType),
                  step.outputs.count == 1, let output = step.outputs.first, !output.isEmpty, !isDedicated(output),
                  let input = step.runtime.node.inputs.first, !input.isEmpty, firstStep[input] != nil, !isDedicated(input),
                  lastStep[input] == stepIndex,
                  step.runtime.node.inputs.dropFirst().allSatisfy({ $0 != input }),
                  let inputCount = analysis.infos[input]?.count, analysis.infos[output]?.count == inputCount
            else { continue }
            let root = sharesSlotOf[input] ?? input
            sharesSlotOf[output] = root
            lastStep[root] = max(lastStep[root] ?? stepIndex, lastStep[output] ?? stepIndex)
        }
        var arenaNames: [String] = []
        var requests: [MemoryPlanner.Request] = []
        var dedicatedNames: [String] = inputNames
        for (name, first) in firstStep.sorted(by: { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            if outputSet.contains(name) || options.preservedTensors.contains(name) { dedicatedNames.append(name); continue }
            guard sharesSlotOf[name] == nil, let info = analysis.infos[name] else { continue }
            arenaNames.append(name)
            requests.append(MemoryPlanner.Request(size: max(1, info.count), firstStep: first, lastStep: lastStep[name] ?? first))
        }
        // Graph outputs that are constants or inputs still need a buffer to be read from.
        for name in outputNames where firstStep[name] == nil && !dedicatedNames.contains(name) { dedicatedNames.append(name) }
        let (offsets, arenaSize) = MemoryPlanner.plan(requests)

        // 3. Allocate and wire pointers.
        let arena = FloatStorage(count: arenaSize)
        var buffers: [String: FloatStorage] = [:]
        for (name, offset) in zip(arenaNames, offsets) {
            buffers[name] = FloatStorage(pointer: arena.pointer + offset, count: max(1, analysis.infos[name]?.count ?? 1))
        }
        for (name, root) in sharesSlotOf {
            guard let slot = buffers[root] else { continue }
            buffers[name] = FloatStorage(pointer: slot.pointer, count: max(1, analysis.infos[name]?.count ?? 1))
        }
        var owned: [FloatStorage] = []
        func ownedBuffer(_ values: [Float], count: Int) -> UnsafeMutablePointer<Float> {
            let storage = FloatStorage(count: count, values: values)
            owned.append(storage)
            return storage.pointer
        }
        for name in dedicatedNames where buffers[name] == nil {
            let count = analysis.infos[name]?.count ?? 1
            buffers[name] = FloatStorage(pointer: ownedBuffer(analysis.constants[name]?.floats ?? [], count: count), count: max(1, count))
        }
        let zero = ownedBuffer([0], count: 1)
        var constantPointers: [String: UnsafeMutablePointer<Float>] = [:]
        var steps: [Step] = []
        var scratchFloats = 0
        for step in pending {
            var inputPointers: [UnsafePointer<Float>] = []
            for name in step.runtime.node.inputs + step.extraInputs {
                if name.isEmpty { inputPointers.append(UnsafePointer(zero)); continue }
                if let constant = analysis.constants[name] {
                    let pointer = constantPointers[name] ?? ownedBuffer(constant.floats, count: constant.count)
                    constantPointers[name] = pointer
                    inputPointers.append(UnsafePointer(pointer))
                } else if let buffer = buffers[name] {
                    inputPointers.append(UnsafePointer(buffer.pointer))
                } else {
                    throw step.runtime.context.error("input '\(name)' has no buffer")
                }
            }
            var outputPointers: [UnsafeMutablePointer<Float>] = []
            for name in step.outputs {
                if name.isEmpty { outputPointers.append(ownedBuffer([], count: 1)); continue }
                guard let buffer = buffers[name] else { throw step.runtime.context.error("output '\(name)' has no buffer") }
                outputPointers.append(buffer.pointer)
            }
            // Unnamed trailing outputs the kernel may still write.
            while outputPointers.count < step.runtime.outputInfos.count {
                outputPointers.append(ownedBuffer([], count: step.runtime.outputInfos[outputPointers.count].count))
            }
            scratchFloats = max(scratchFloats, step.kernel.scratchCount)
            steps.append(Step(nodeName: step.runtime.node.name, opType: step.runtime.node.opType, outputs: step.outputs,
                              fused: step.fused, kernel: step.kernel,
                              inputPointers: UncheckedSendableBox(inputPointers),
                              outputPointers: UncheckedSendableBox(outputPointers)))
        }
        let scratch = FloatStorage(count: scratchFloats)
        self.arena = arena
        self.scratch = scratch
        self.ownedBuffers = owned
        self.tensorBuffers = buffers
        self.steps = steps
        self.arenaFloats = arenaSize
        self.scratchFloats = scratchFloats
        self.totalBytes = 4 * (arena.count + scratch.count + owned.reduce(0) { $0 + $1.count })
    }

    deinit {
        arena.release()
        scratch.release()
        for buffer in ownedBuffers { buffer.release() }
    }

    /// Shape of a model input as compiled.
    public func inputInfo(_ name: String) -> TensorInfo? { analysis.inputInfos[name] }
    public func info(_ name: String) -> TensorInfo? { analysis.infos[name] }

    /// The buffer a model input is read from: fill it, then call `execute()`.
    public func inputBuffer(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard inputNames.contains(name), let storage = tensorBuffers[name] else { return nil }
        return UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count)
    }

    /// The buffer holding a model output or a preserved tensor after `execute()`.
    public func outputBuffer(_ name: String) -> UnsafeBufferPointer<Float>? {
        tensorBuffers[name].map { UnsafeBufferPointer(start: $0.pointer, count: $0.count) }
    }

    /// Runs every step once on the current input buffers. Allocates nothing.
    public func execute() {
        let scratchBase = scratch.pointer
        for step in steps {
            step.kernel.run(inputs: step.inputPointers.value, outputs: step.outputPointers.value, scratch: scratchBase)
        }
    }

    /// Runs every step, calling `observe` after each (for statistics and per-layer outputs).
    public func execute(observe: (Int, Step) -> Void) {
        let scratchBase = scratch.pointer
        for (index, step) in steps.enumerated() {
            step.kernel.run(inputs: step.inputPointers.value, outputs: step.outputPointers.value, scratch: scratchBase)
            observe(index, step)
        }
    }

    /// Convenience: copies `inputs` in, runs, and returns every model output as a tensor.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        for name in inputNames {
            guard let tensor = inputs[name] else {
                throw WhittleError(.invalidArgument, "input '\(name)'", "missing; the model needs \(inputNames.joined(separator: ", "))")
            }
            guard let info = inputInfo(name), let buffer = inputBuffer(name) else { continue }
            guard tensor.shape == info.shape else {
                throw WhittleError(.shapeMismatch, "input '\(name)'", "expected shape \(info.shape), got \(tensor.shape)")
            }
            let values = tensor.floats
            _ = UnsafeMutableBufferPointer(rebasing: buffer[0..<values.count]).update(fromContentsOf: values)
        }
        execute()
        var result: [String: Tensor] = [:]
        for name in outputNames {
            guard let info = analysis.infos[name], let buffer = outputBuffer(name) else { continue }
            result[name] = Tensor(shape: info.shape, floats: Array(buffer.prefix(info.count)))
        }
        return result
    }
}

/// A run of floats the plan owns (or a slice of the arena): allocated zeroed, at least one
/// element so the pointer is always valid.
///
/// Buffers of 2 MiB and more (activation arenas, scratch) get an anonymous mapping of their
/// own, advised for transparent huge pages: the kernel hands the pages over already zeroed,
/// and on first touch faults once per 2 MiB instead of once per 4 KiB. A score table
/// compiles two suffix plans per layer (tens of MB each), so this is most of their setup cost.
struct FloatStorage {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    /// The mapping behind a large buffer (nil: heap memory, or a view into another buffer).
    private let mapping: UnsafeMutableRawBufferPointer?

    static let hugePageBytes = 2 << 20

    init(pointer: UnsafeMutablePointer<Float>, count: Int) {
        self.pointer = pointer
        self.count = count
        mapping = nil
    }

    /// Allocates `max(1, count)` floats, zeroed, then copies in up to `count` of `values`.
    init(count: Int, values: [Float] = []) {
        let capacity = max(1, count)
        if capacity * MemoryLayout<Float>.stride >= Self.hugePageBytes, let (start, region) = Self.mapZeroed(floats: capacity) {
            pointer = start
            mapping = region
        } else {
            pointer = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
            pointer.initialize(repeating: 0, count: capacity)
            mapping = nil
        }
        self.count = capacity
        let copied = min(values.count, capacity)
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: copied) }
        }
    }

    /// Frees a buffer made by `init(count:values:)` (never a view).
    func release() {
        if let mapping {
            #if canImport(Glibc)
            munmap(mapping.baseAddress, mapping.count)
            #endif
        } else {
            pointer.deallocate()
        }
    }

    /// A zeroed anonymous mapping holding `floats` floats from a 2 MiB boundary, advised for
    /// huge pages; nil when the system refuses (the caller then uses the heap).
    private static func mapZeroed(floats: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutableRawBufferPointer)? {
        #if canImport(Glibc)
        let bytes = (floats * MemoryLayout<Float>.stride + hugePageBytes - 1) / hugePageBytes * hugePageBytes
        let length = bytes + hugePageBytes
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              base != UnsafeMutableRawPointer(bitPattern: -1) else { return nil }
        let aligned = (Int(bitPattern: base) + hugePageBytes - 1) / hugePageBytes * hugePageBytes
        guard let start = UnsafeMutableRawPointer(bitPattern: aligned) else {
            munmap(base, length)
            return nil
        }
        _ = madvise(start, bytes, Int32(MADV_HUGEPAGE))
        return (start.bindMemory(to: Float.self, capacity: floats), UnsafeMutableRawBufferPointer(start: base, count: length))
        #else
        return nil
        #endif
    }
}

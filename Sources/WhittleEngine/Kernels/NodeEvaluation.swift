/// Evaluating single nodes on concrete tensors: constant folding at import and compile
/// time, and the reference path kernel tests use.
extension OperatorRegistry {
    /// Runs one node on concrete input tensors (nil for omitted optional inputs).
    ///
    /// Uses the operator's `fold` when it has one (any element type), otherwise compiles its
    /// float kernel for these shapes and runs it once.
    public static func evaluate(node: Node, inputs: [Tensor?], opsetVersion: Int) throws -> [Tensor] {
        guard let spec = spec(for: node.opType) else {
            throw WhittleError(.unsupportedOperator, "node '\(node.name)' (\(node.opType))",
                               "operator \(node.opType) is not supported")
        }
        let infos = inputs.map { $0.map { TensorInfo(shape: $0.shape, elementType: $0.elementType) } }
        let context = NodeContext(node: node, inputs: infos, constants: inputs, opsetVersion: opsetVersion)
        if let fold = spec.fold {
            return try fold(context)
        }
        guard let makeKernel = spec.makeKernel else {
            throw context.error("cannot be evaluated")
        }
        let outputInfos = try spec.inferShapes(context)
        let kernel = try makeKernel(context, outputInfos)
        return runOnce(kernel: kernel, inputs: inputs, outputInfos: outputInfos)
    }

    /// Runs a compiled kernel once on fresh buffers (not for hot paths: it allocates).
    public static func runOnce(kernel: any Kernel, inputs: [Tensor?], outputInfos: [TensorInfo]) -> [Tensor] {
        let inputBuffers = inputs.map { FloatStorage(count: $0?.count ?? 1, values: $0?.floats ?? [0]) }
        let outputBuffers = outputInfos.map { FloatStorage(count: $0.count) }
        let scratch = FloatStorage(count: kernel.scratchCount)
        defer {
            (inputBuffers + outputBuffers + [scratch]).forEach { $0.release() }
        }
        kernel.run(inputs: inputBuffers.map { UnsafePointer($0.pointer) },
                   outputs: outputBuffers.map(\.pointer),
                   scratch: scratch.pointer)
        return zip(outputInfos, outputBuffers).map { info, buffer in
            Tensor(shape: info.shape, floats: Array(UnsafeBufferPointer(start: buffer.pointer, count: info.count)))
        }
    }
}

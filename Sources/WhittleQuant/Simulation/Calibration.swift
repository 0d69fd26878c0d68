import WhittleEngine

/// Computes encodings: params from their values, activations from data streamed through the
/// model in batches (aimet.md §1.3-1.4, §5).
///
/// Activation statistics are gathered on the model with its weights already fake-quantized
/// (and activations in float), so the ranges describe what the quantized layers really
/// produce. Each batch runs once through a compiled plan; observers read every quantized
/// tensor right after the step that writes it, so no activation is kept longer than the plan
/// keeps it anyway.
public enum Calibration {
    /// Min-max encodings of every enabled param quantizer (per tensor or per channel).
    public static func paramEncodings(graph: Graph, placement: QuantizerPlacement) throws -> [String: TensorEncoding] {
        var result: [String: TensorEncoding] = [:]
        for (tensor, settings) in placement.quantizers where settings.role == .param && settings.enabled {
            guard let values = graph.initializers[tensor] else { continue }
            result[tensor] = try paramEncoding(values, settings: settings, name: tensor)
        }
        return result
    }

    /// The min-max encoding of one weight tensor under `settings`.
    public static func paramEncoding(_ tensor: Tensor, settings: QuantizerSettings, name: String) throws -> TensorEncoding {
        if settings.float16 { return .float(bitWidth: 16) }
        let floats = tensor.floats
        let symmetry = resolvedSymmetry(settings)
        do throws(QuantizationError) {
            if let axis = settings.perChannelAxis, tensor.rank >= 1 {
                var analyzer = try PerChannelEncodingAnalyzer(MinMaxEncodingAnalyzer(), shape: tensor.shape, axis: axis)
                try analyzer.observe(floats)
                return try analyzer.tensorEncoding(bitWidth: settings.bitWidth, symmetry: symmetry)
            }
            var analyzer = MinMaxEncodingAnalyzer()
            try analyzer.observe(floats)
            return .perTensor(try analyzer.encoding(bitWidth: settings.bitWidth, symmetry: symmetry))
        } catch {
            throw error.whittleError(subject: "param '\(name)'")
        }
    }

    /// The symmetry to ask an analyzer for: unsigned symmetric where the config allows it (the
    /// computation falls back to signed symmetric when the range has negative values).
    static func resolvedSymmetry(_ settings: QuantizerSettings) -> QuantizationSymmetry {
        settings.unsignedSymmetricAllowed && settings.symmetry.isSymmetric ? .unsignedSymmetric : settings.symmetry
    }

    /// Streams `inputs` through `model` (params quantized with `model.encodings`) and returns
    /// `model` with an encoding for every enabled activation quantizer added.
    ///
    /// Progress is reported per batch (phase "calibrate"); cancellation is checked between
    /// batches. NaN or Inf in an observed tensor is an error naming the tensor.
    public static func calibrateActivations(
        _ model: QuantizedModel, scheme: CalibrationScheme, inputs: [String: Tensor], batchSize: Int = 32,
        job: JobContext = .silent
    ) throws -> QuantizedModel {
        let activationTensors = model.placement.quantizers.filter { $0.value.role == .activation && $0.value.enabled }
        var analyzers: [String: any EncodingAnalyzer] = [:]
        var fixed: [String: TensorEncoding] = [:]
        for (tensor, settings) in activationTensors {
            if settings.float16 {
                fixed[tensor] = .float(bitWidth: 16)
            } else if let constraint = settings.encodingConstraint {
                do throws(QuantizationError) {
                    fixed[tensor] = .perTensor(try QuantizationEncoding.compute(
                        min: constraint.min, max: constraint.max, bitWidth: settings.bitWidth, symmetry: resolvedSymmetry(settings)))
                } catch {
                    throw error.whittleError(subject: "activation '\(tensor)'")
                }
            } else {
                do throws(QuantizationError) { analyzers[tensor] = try scheme.makeAnalyzer() } catch {
                    throw error.whittleError(subject: "activation '\(tensor)'")
                }
            }
        }
        var result = model
        for (tensor, encoding) in fixed { result.encodings[tensor] = encoding }
        guard !analyzers.isEmpty else { return result }

        let simulated = try model.simulationGraph(.paramsOnly)
        let graphInputs = Set(simulated.runtimeInputs.map(\.name))
        let observed = Set(analyzers.keys).subtracting(graphInputs)
        let runner = try BatchRunner(graph: simulated, batchSize: batchSize,
                                     options: CompileOptions(foldBatchNorm: false, observedTensors: observed))
        let total = try runner.validate(inputs: inputs)
        // Non-finite data would surface as NaN in some later layer; name the input instead.
        for input in simulated.runtimeInputs {
            guard let tensor = inputs[input.name] else { continue }
            let values = tensor.floats
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                let row = values.count / max(1, tensor.shape.first ?? 1)
                throw WhittleError(.invalidData, "input '\(input.name)'",
                                   "calibration data contains \(values[bad].isNaN ? "NaN" : "Inf") (sample \(bad / max(1, row)))")
            }
        }
        var failure: WhittleError?
        func observe(_ tensor: String, _ buffer: UnsafeBufferPointer<Float>) {
            guard failure == nil else { return }
            // In place: a copy taken out of the dictionary would copy a histogram's counts on every batch.
            do throws(QuantizationError) {
                try analyzers[tensor]?.observe(buffer)
            } catch {
                failure = error.whittleError(subject: "activation '\(tensor)'")
            }
        }
        let inputSources = inputs.filter { graphInputs.contains($0.key) && analyzers[$0.key] != nil }
        var done = 0
        try runner.forEachBatch(inputs: inputs, shouldStop: { job.isCancelled }, observe: { plan, _, step in
            for name in step.outputs where analyzers[name] != nil {
                guard let info = plan.info(name), let buffer = plan.outputBuffer(name) else { continue }
                observe(name, UnsafeBufferPointer(rebasing: buffer[0..<min(info.count, buffer.count)]))
            }
        }) { batch, _ in
            for (name, tensor) in inputSources {
                let row = tensor.count / max(1, tensor.shape.first ?? 1)
                let values = tensor.floats
                values.withUnsafeBufferPointer { all in
                    observe(name, UnsafeBufferPointer(rebasing: all[(batch.lowerBound * row)..<(batch.upperBound * row)]))
                }
            }
            if let failure { throw failure }
            done = batch.upperBound
            job.report(phase: "calibrate", completed: done, total: total)
        }
        if let failure { throw failure }
        if job.isCancelled { throw WhittleError(.cancelled, "calibration", "cancelled") }
        // The grid searches (SQNR, MSE) are independent per tensor: run them in parallel.
        let pending = analyzers.sorted { $0.key < $1.key }.compactMap { entry -> (String, any EncodingAnalyzer, QuantizerSettings)? in
            guard let settings = model.placement.quantizers[entry.key] else { return nil }
            return (entry.key, entry.value, settings)
        }
        for (tensor, analyzer, _) in pending where analyzer.observedCount == 0 {
            throw WhittleError(.invalidData, "activation '\(tensor)'", "no values were observed during calibration (is it computed by the model?)")
        }
        var computed = [Result<QuantizationEncoding, QuantizationError>](repeating: .failure(.noData), count: pending.count)
        computed.withUnsafeMutableBufferPointer { slots in
            parallelFor(pending.count) { index in
                let (_, analyzer, settings) = pending[index]
                do throws(QuantizationError) {
                    slots[index] = .success(try analyzer.encoding(bitWidth: settings.bitWidth, symmetry: resolvedSymmetry(settings)))
                } catch {
                    slots[index] = .failure(error)
                }
            }
        }
        for (index, (tensor, _, _)) in pending.enumerated() {
            switch computed[index] {
            case .success(let encoding): result.encodings[tensor] = .perTensor(encoding)
            case .failure(let error): throw error.whittleError(subject: "activation '\(tensor)'")
            }
        }
        return result
    }
}

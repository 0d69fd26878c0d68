import Foundation
import WhittleEngine

/// Per-layer quantization diagnostics in the spirit of AIMET's QuantAnalyzer (aimet.md §1.13):
/// where does the error come from, and which quantizers matter.
public enum QuantizationAnalysis {
    /// The SQNR (dB) of every quantized activation of the simulated model against the same
    /// tensor of the float model, on the same inputs: the error accumulated up to that point.
    public struct TensorSQNR: Sendable, Equatable, Codable {
        public var tensor: String
        public var producer: String
        public var sqnrDB: Double
    }

    /// Runs float and simulated models side by side over `inputs` and measures every quantized
    /// activation (in execution order).
    public static func perTensorSQNR(_ model: QuantizedModel, inputs: [String: Tensor], batchSize: Int = 8,
                                     job: JobContext = .silent) throws -> [TensorSQNR] {
        let simulated = try model.simulationGraph()
        let producers = model.graph.producers()
        let tensors = model.activeQuantizers().filter { $0.settings.role == .activation && producers[$0.tensor] != nil }.map(\.tensor)
        let options = CompileOptions(fuseActivations: true, preservedTensors: Set(tensors), foldBatchNorm: false)
        let floatRunner = try BatchRunner(graph: model.graph, batchSize: batchSize, options: options)
        let simRunner = try BatchRunner(graph: simulated, batchSize: batchSize, options: options)
        let total = try floatRunner.validate(inputs: inputs)
        _ = try simRunner.validate(inputs: inputs)
        var signal = [String: Double](), noise = [String: Double]()
        var start = 0
        while start < total {
            try job.checkCancellation("per-layer SQNR")
            let range = start..<min(total, start + batchSize)
            var reference: [String: [Float]] = [:]
            try floatRunner.forEachBatch(inputs: inputs, range: range) { _, plan in
                for name in tensors {
                    guard let info = plan.info(name), let buffer = plan.outputBuffer(name) else { continue }
                    reference[name] = Array(buffer.prefix(info.count))
                }
            }
            try simRunner.forEachBatch(inputs: inputs, range: range) { _, plan in
                for name in tensors {
                    guard let expected = reference[name], let buffer = plan.outputBuffer(name) else { continue }
                    var s = 0.0, n = 0.0
                    for index in expected.indices {
                        let r = Double(expected[index])
                        let d = r - Double(buffer[index])
                        s += r * r
                        n += d * d
                    }
                    signal[name, default: 0] += s
                    noise[name, default: 0] += n
                }
            }
            start = range.upperBound
            job.report(phase: "per-layer SQNR", completed: start, total: total)
        }
        return tensors.sorted { (producers[$0] ?? 0) < (producers[$1] ?? 0) }.map { name in
            let n = noise[name] ?? 0, s = signal[name] ?? 0
            let db = n == 0 ? Double.infinity : 10 * log10(s / n)
            return TensorSQNR(tensor: name, producer: producers[name].map { model.graph.nodes[$0].name } ?? "", sqnrDB: db)
        }
    }
}

extension QuantizationAnalysis {
    /// The effect of one quantizer on the model output.
    public struct QuantizerEffect: Sendable, Equatable, Codable {
        public var tensor: String
        public var role: String
        /// Output SQNR with only this quantizer enabled.
        public var enableOneSQNR: Double
        /// Output SQNR with every quantizer but this one enabled.
        public var disableOneSQNR: Double
        public var enableOneAccuracy: Double?
        public var disableOneAccuracy: Double?
    }

    /// Enable-one and disable-one sweeps: two evaluations per quantizer (aimet.md §1.13).
    public static func sweep(_ model: QuantizedModel, inputs: [String: Tensor], labels: [Int]?, batchSize: Int = 32,
                             job: JobContext = .silent) throws -> [QuantizerEffect] {
        let reference = try OutputComparison.firstOutput(model.graph, inputs: inputs, batchSize: batchSize, job: .silent, phase: "float")
        let quantizers = model.activeQuantizers()
        let all = Set(quantizers.map(\.tensor))
        var effects: [QuantizerEffect] = []
        for (index, quantizer) in quantizers.enumerated() {
            try job.checkCancellation("quantizer sweep")
            job.report(phase: "sweep", completed: index, total: quantizers.count, detail: quantizer.tensor)
            let onlyThis = try OutputComparison.firstOutput(
                model.simulationGraph(.init(excluded: all.subtracting([quantizer.tensor]))), inputs: inputs,
                batchSize: batchSize, job: .silent, phase: "enable-one")
            let allButThis = try OutputComparison.firstOutput(
                model.simulationGraph(.init(excluded: [quantizer.tensor])), inputs: inputs, batchSize: batchSize,
                job: .silent, phase: "disable-one")
            let enable = OutputComparison.compare(reference: reference, test: onlyThis, labels: labels)
            let disable = OutputComparison.compare(reference: reference, test: allButThis, labels: labels)
            effects.append(QuantizerEffect(tensor: quantizer.tensor, role: quantizer.settings.role.rawValue,
                                           enableOneSQNR: enable.sqnrDB, disableOneSQNR: disable.sqnrDB,
                                           enableOneAccuracy: enable.quantizedAccuracy, disableOneAccuracy: disable.quantizedAccuracy))
        }
        job.report(phase: "sweep", completed: quantizers.count, total: quantizers.count)
        return effects
    }
}

import WhittleEngine

/// What `PostTrainingQuantization.run` did, step by step, for the CLI, the workbench and the
/// report.
public struct QuantizationReport: Sendable, Equatable {
    public var foldedBatchNorms: Int = 0
    public var steps: [String] = []
    public var seconds: [String: Double] = [:]
}

/// The post-training pipeline: fold BatchNorm, (equalize), place quantizers from the config,
/// compute weight encodings, (round weights, correct biases), calibrate activations.
public enum PostTrainingQuantization {
    /// Quantizes `graph` under `recipe`, calibrating on `calibration` (model inputs by name).
    public static func run(graph input: Graph, recipe: QuantizationRecipe, calibration: [String: Tensor],
                           job: JobContext = .silent) throws -> (model: QuantizedModel, report: QuantizationReport) {
        try recipe.validate()
        var report = QuantizationReport()
        let clock = ContinuousClock()
        func timed<T>(_ step: String, _ body: () throws -> T) rethrows -> T {
            let start = clock.now
            let value = try body()
            let elapsed = clock.now - start
            report.seconds[step, default: 0] += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            report.steps.append(step)
            return value
        }

        // 1. BatchNorm folding (AIMET folds before quantizing; tensor names are kept).
        let folded = try timed("fold batchnorm") { try BatchNormFolding.fold(input, preserving: []) }
        report.foldedBatchNorms = folded.folds.count
        let graph = folded.graph

        // 2. Quantizer placement from the config, with per-layer overrides.
        let config = try recipe.loadConfig()
        var placement = try QuantizerPlacement.resolve(graph: graph, config: config,
                                                       defaultActivationBits: recipe.activationBits,
                                                       defaultParamBits: recipe.weightBits)
        try applyOverrides(recipe, graph: graph, placement: &placement)
        try job.checkCancellation("quantization")

        // 3. Weight encodings (min-max, per tensor or per channel).
        var model = QuantizedModel(graph: graph, placement: placement)
        model.encodings = try timed("weight encodings") { try Calibration.paramEncodings(graph: graph, placement: placement) }

        // 4. Activation encodings from data.
        model = try timed("calibrate (\(recipe.scheme))") {
            try Calibration.calibrateActivations(model, scheme: recipe.scheme, inputs: calibration,
                                                 batchSize: recipe.batchSize, job: job)
        }
        return (model, report)
    }

    /// Applies the recipe's bit overrides and disabled tensors. A name may be a tensor or a
    /// node; a node stands for its weight and its outputs.
    static func applyOverrides(_ recipe: QuantizationRecipe, graph: Graph, placement: inout QuantizerPlacement) throws {
        func targets(_ name: String) throws -> [String] {
            if placement.quantizers[name] != nil { return [name] }
            if let node = graph.nodes.first(where: { $0.name == name }) {
                let tensors = (node.inputs.filter { placement.quantizers[$0]?.role == .param && placement.quantizers[$0]?.paramType == "weight" }
                               + node.outputs.filter { placement.quantizers[$0] != nil })
                if !tensors.isEmpty { return tensors }
                throw WhittleError(.invalidArgument, "layer '\(name)'", "has no quantizer of its own under this config")
            }
            if placement.encodingSource(for: name) != nil {
                throw WhittleError(.invalidArgument, "tensor '\(name)'", "keeps the encoding of '\(placement.encodingSource(for: name) ?? "")'; name that tensor instead")
            }
            throw WhittleError(.invalidArgument, "'\(name)'", "is neither a quantized tensor nor a layer of the model")
        }
        for (name, bits) in recipe.bitOverrides.sorted(by: { $0.key < $1.key }) {
            for tensor in try targets(name) { try placement.override(tensor: tensor, bitWidth: bits) }
        }
        for name in recipe.disabled.sorted() {
            for tensor in try targets(name) { try placement.disable(tensor: tensor) }
        }
    }
}

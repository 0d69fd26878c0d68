import WhittleEngine

/// What `PostTrainingQuantization.run` did, step by step, for the CLI, the workbench and the
/// report.
public struct QuantizationReport: Sendable, Equatable {
    public var foldedBatchNorms: Int = 0
    /// Elementwise Mul/Div/Add/Sub by constants folded into the Conv before them.
    public var foldedScaleShifts: Int = 0
    public var equalizedSets: Int = 0
    /// ReLU6 (Clip) nodes that cross-layer equalization turned into Relu.
    public var replacedActivations: [String] = []
    public var correctedBiases: Int = 0
    public var analyticallyCorrectedBiases: Int = 0
    /// Layers whose bias the activation-aware correction changed.
    public var activationCorrectedBiases: Int = 0
    public var roundedLayers: Int = 0
    public var steps: [String] = []
    public var seconds: [String: Double] = [:]
}

/// The post-training pipeline: fold BatchNorm (and constant scale/shift ops) into convolutions,
/// (equalize), place quantizers from the config, compute weight encodings, (round weights,
/// correct biases), calibrate activations, (correct biases for the whole simulation).
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

        // 1. BatchNorm folding in both directions (AIMET folds before quantizing; tensor names
        //    are kept), with the
        //    recipe's `foldScaleShift` constant Mul/Div/Add/Sub after a Conv folded into it
        //    (Qualcomm's converters squash them the same way, so the device quantizes only the
        //    last tensor of such a chain), and cross-layer equalization with high-bias absorption
        //    (which folds BatchNorm itself).
        var graph: Graph
        // BatchNorm statistics of the layer outputs, for analytical bias correction (CLE keeps
        // them scaled along with its layers).
        var statistics: [String: ChannelDistribution] = [:]
        func squash(_ graph: Graph) -> Graph {
            guard recipe.foldScaleShift else { return graph }
            let squashed = timed("fold scale/shift") { ScaleShiftFolding.fold(graph) }
            report.foldedScaleShifts = squashed.folds.count
            return squashed.graph
        }
        if recipe.crossLayerEqualization {
            let squashed = squash(input)
            let equalized = try timed("cross-layer equalization") { try CrossLayerEqualization.apply(squashed) }
            report.foldedBatchNorms = equalized.report.batchNormFolds.backward.count + equalized.report.batchNormFolds.forward.count
            report.equalizedSets = equalized.report.sets.count
            report.replacedActivations = equalized.report.replacedActivations
            statistics = equalized.report.statistics
            graph = equalized.graph
        } else {
            // Both directions: Conv/Gemm -> BN, then BN -> unpadded Conv/Gemm (aimet.md §1.5).
            if recipe.analyticalBiasCorrection { statistics = BatchNormStatistics.capture(input) }
            let folded = try timed("fold batchnorm") { try BatchNormFoldingPass.apply(input) }
            report.foldedBatchNorms = folded.report.backward.count + folded.report.forward.count
            graph = squash(folded.graph)
        }

        // 2. Quantizer placement from the config, with per-layer overrides.
        let config = try recipe.loadConfig()
        var placement = try QuantizerPlacement.resolve(graph: graph, config: config,
                                                       defaultActivationBits: recipe.activationBits,
                                                       defaultParamBits: recipe.weightBits)
        try applyOverrides(recipe, graph: graph, placement: &placement)
        try job.checkCancellation("quantization")

        // 3. Weight encodings: min-max, or searched layer by layer (Sequential MSE).
        var encodings = try timed("weight encodings") { try Calibration.paramEncodings(graph: graph, placement: placement) }
        // Integer weight grids (a float16 pass-through has no grid to search).
        let weightEncodings = encodings.filter { entry in
            if case .float = entry.value { return false }
            return placement.quantizers[entry.key]?.paramType == "weight"
        }
        if recipe.sequentialMSE {
            let searched = try timed("sequential MSE") {
                try SeqMse.apply(graph: graph, weightEncodings: weightEncodings, data: calibration, job: job)
            }
            encodings.merge(searched.encodings) { _, new in new }
        }

        // 4. Bias correction (empirical, weights quantized as simulated; before AdaRound, whose
        //    rounding would otherwise hide the error it corrects).
        if recipe.biasCorrection {
            let quantizer = weightQuantizer(encodings)
            let corrected = try timed("bias correction") {
                try BiasCorrection.empirical(graph: graph, data: subset(calibration, samples: recipe.biasCorrectionSamples),
                                             batchSize: recipe.batchSize, context: job, weightQuantizer: quantizer)
            }
            report.correctedBiases = corrected.report.corrected.count
            graph = corrected.graph
        }

        // 4b. Analytical bias correction: the same shift from BN statistics instead of data.
        if recipe.analyticalBiasCorrection {
            let quantizer = weightQuantizer(encodings)
            let corrected = try timed("analytical bias correction") {
                try BiasCorrection.analytical(graph: graph, statistics: statistics, weightQuantizer: quantizer)
            }
            report.analyticallyCorrectedBiases = corrected.report.corrected.count
            graph = corrected.graph
        }

        // 5. AdaRound: weights rounded up or down to fit the float outputs.
        if recipe.adaRound {
            let finalWeights = encodings.filter { placement.quantizers[$0.key]?.paramType == "weight" }
            let rounded = try timed("adaround") {
                try AdaRound.apply(graph: graph, weightEncodings: finalWeights, data: calibration,
                                   options: AdaRoundOptions(iterations: recipe.adaRoundIterations), job: job)
            }
            report.roundedLayers = rounded.layers.count
            graph = rounded.graph
        }

        // 6. Activation encodings from data.
        var model = QuantizedModel(graph: graph, placement: placement, encodings: encodings)
        model = try timed("calibrate (\(recipe.scheme))") {
            try Calibration.calibrateActivations(model, scheme: recipe.scheme, inputs: calibration,
                                                 batchSize: recipe.batchSize, job: job)
        }

        // 7. Activation-aware bias correction: every Conv/Gemm bias shifted so the layer's
        //    output mean in the full simulation (weights and activations quantized) matches
        //    float; the activation encodings stay as calibrated.
        if recipe.activationBiasCorrection {
            let corrected = try timed("activation bias correction") {
                try BiasCorrection.simulated(model, data: subset(calibration, samples: recipe.biasCorrectionSamples),
                                             batchSize: recipe.batchSize, context: job)
            }
            report.activationCorrectedBiases = corrected.report.corrected.count
            model = corrected.model
        }
        return (model, report)
    }

    /// Quantize-dequantize of a layer's weights with the encoding computed for them.
    static func weightQuantizer(_ encodings: [String: TensorEncoding]) -> WeightQuantizer {
        { node, weights in
            guard node.inputs.count > 1, let encoding = encodings[node.inputs[1]] else { return weights }
            var values = weights.floats
            do throws(QuantizationError) {
                let quantizer = try TensorQuantizer(encoding: encoding, shape: weights.shape)
                try values.withUnsafeMutableBufferPointer { buffer throws(QuantizationError) in try quantizer.quantizeDequantize(buffer) }
            } catch {
                throw error.whittleError(subject: "weights of '\(node.name)'")
            }
            return Tensor(shape: weights.shape, floats: values, elementType: weights.elementType)
        }
    }

    /// The first `samples` samples of every input.
    static func subset(_ inputs: [String: Tensor], samples: Int) -> [String: Tensor] {
        inputs.mapValues { tensor in
            guard let count = tensor.shape.first, count > samples else { return tensor }
            let row = tensor.count / max(1, count)
            var shape = tensor.shape
            shape[0] = samples
            return Tensor(shape: shape, floats: Array(tensor.floats.prefix(samples * row)), elementType: tensor.elementType)
        }
    }

    /// Applies the recipe's bit overrides and disabled tensors. A name may be a tensor or a
    /// node; a node stands for its weight and its outputs.
    static func applyOverrides(_ recipe: QuantizationRecipe, graph: Graph, placement: inout QuantizerPlacement) throws {
        func targets(_ name: String) throws -> [String] {
            if placement.quantizers[name] != nil { return [name] }
            // `op:TYPE` stands for the outputs of every node of that op type.
            if name.hasPrefix("op:") {
                let opType = String(name.dropFirst(3))
                let tensors = graph.nodes.filter { $0.opType == opType }.flatMap(\.outputs).filter { placement.quantizers[$0] != nil }
                guard !tensors.isEmpty else {
                    throw WhittleError(.invalidArgument, "'\(name)'", "no \(opType) node of the model has a quantized output")
                }
                return tensors
            }
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
        for name in recipe.float16.sorted() {
            for tensor in try targets(name) { try placement.setFloat16(tensor: tensor) }
        }
        for name in recipe.disabled.sorted() {
            for tensor in try targets(name) { try placement.disable(tensor: tensor) }
        }
    }
}

import ArgumentParser
import Foundation
import WhittleIO
import WhittleQuant

/// `whittle quantize`: post-training quantization with AIMET-compatible export.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model after training and export it for Qualcomm's tool chain.",
        discussion: """
            Writes DIR/MODEL.onnx (the float model with folded BatchNorm and any weight changes, \
            tensor names preserved), DIR/MODEL.encodings (AIMET encodings for those tensor names) and \
            DIR/MODEL.qdq.onnx (QuantizeLinear/DequantizeLinear model for onnxruntime), then prints \
            float vs simulated accuracy (or top-1 agreement and SQNR without labels).
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Calibration data .npz (inputs under the model's input names or `x`).")
    var data: String

    @Option(name: .long, help: "Evaluation data .npz (optional labels `y`); default: the calibration data.")
    var eval: String?

    @OptionGroup var recipeOptions: RecipeOptions

    @Option(name: .long, help: "Encodings file version: 0.6.1, 1.0.0 or 2.0.0.")
    var encodingsVersion = "1.0.0"

    @Option(name: .long, help: "Output folder (created if missing).")
    var out: String

    @Flag(name: .long, help: "AutoQuant: try calibration schemes, CLE, bias correction, activation bias correction and AdaRound in turn, scored on --eval; keep the first within --allowed-drop of float (else the best). Writes DIR/MODEL.recipe.json.")
    var auto = false

    @Option(name: .long, help: "With --auto: acceptable drop below float, in points of accuracy (agreement without labels).")
    var allowedDrop: Double = 1

    @OptionGroup var engine: EngineOptions

    struct Report: Codable {
        var model: String
        var outputs: [String]
        var recipe: QuantizationRecipe
        var comparison: OutputComparison
        var quantizers: Int
        var seconds: [String: Double]
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard let version = EncodingsVersion(rawValue: encodingsVersion) else {
                throw WhittleError(.invalidArgument, "--encodings-version '\(encodingsVersion)'",
                                   "unknown; use \(EncodingsVersion.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var recipe = try recipeOptions.recipe()
            let graph = try loadModel(model)
            let calibration = try recipeOptions.calibrationData(data, for: graph)
            let evaluation = try eval.map { try loadDataset($0, for: graph) } ?? calibration
            if let eval { try requireFiniteInputs(evaluation, path: eval) }
            let folder = URL(fileURLWithPath: out)
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            } catch {
                throw WhittleError(.io, out, "cannot create the output folder (\(error.localizedDescription))")
            }

            let progress = ProgressBar()
            let job = progress.context()
            let searched = try autoQuantize(graph: graph, recipe: recipe, calibration: calibration, evaluation: evaluation, job: job)
            if let searched { recipe = searched.chosen.recipe }
            let (quantized, report) = try searched.map { ($0.model, $0.report) }
                ?? PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: calibration.inputs, job: job)
            // Against the model as loaded: the exported float graph carries AdaRound's rounded
            // weights and corrected biases, so it is not the float reference.
            let comparison = try searched?.comparison ?? OutputComparison.measure(float: graph, quantized: try quantized.simulationGraph(),
                                                          inputs: evaluation.inputs, labels: evaluation.labels,
                                                          batchSize: recipe.batchSize, job: job)
            progress.finish()

            let stem = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
            let floatURL = folder.appendingPathComponent("\(stem).onnx")
            let encodingsURL = folder.appendingPathComponent("\(stem).encodings")
            let qdqURL = folder.appendingPathComponent("\(stem).qdq.onnx")
            try ONNXExporter.write(quantized.graph, to: floatURL)
            try quantized.encodingsFile(scheme: recipe.scheme).write(to: encodingsURL, version: version)
            try ONNXExporter.write(try QDQExport.graph(quantized), to: qdqURL)

            var outputs = [floatURL.path, encodingsURL.path, qdqURL.path]
            if let searched { outputs.append(try writeRecipe(searched, folder: folder, stem: stem)) }
            if engine.json {
                try printJSON(Report(model: model, outputs: outputs, recipe: recipe, comparison: comparison,
                                     quantizers: quantized.activeQuantizers().count, seconds: report.seconds))
                return
            }
            if let searched { printAutoQuantTable(searched) }
            let params = quantized.activeQuantizers().filter { $0.settings.role == .param }.count
            var summary = "quantized \(model): W\(recipe.weightBits)A\(recipe.activationBits), config \(recipe.config), "
            summary += "scheme \(recipe.scheme), \(params) weight and \(quantized.activeQuantizers().count - params) activation quantizers, "
            summary += "\(report.foldedBatchNorms) BatchNorms folded"
            if recipe.foldScaleShift { summary += ", \(report.foldedScaleShifts) constant scale/shift ops folded into convolutions" }
            if recipe.crossLayerEqualization {
                summary += ", CLE on \(report.equalizedSets) layer sets (\(report.replacedActivations.count) ReLU6 replaced by ReLU)"
            }
            if recipe.biasCorrection { summary += ", \(report.correctedBiases) biases corrected" }
            if recipe.analyticalBiasCorrection { summary += ", \(report.analyticallyCorrectedBiases) biases corrected from BatchNorm statistics" }
            if recipe.activationBiasCorrection { summary += ", \(report.activationCorrectedBiases) biases corrected against the full simulation" }
            if recipe.adaRound { summary += ", \(report.roundedLayers) layers AdaRounded" }
            print(summary)
            print(comparisonLine(comparison, samples: evaluation.sampleCount))
            for path in outputs { print("wrote \(path)") }
        }
    }
}

/// One line: float vs quantized accuracy, agreement and SQNR.
func comparisonLine(_ comparison: OutputComparison, samples: Int) -> String {
    var line = "\(samples) samples:"
    if let floatAccuracy = comparison.floatAccuracy, let quantizedAccuracy = comparison.quantizedAccuracy {
        line += String(format: " top-1 float %.2f%% -> quantized %.2f%% (%+.2f points),", floatAccuracy * 100,
                       quantizedAccuracy * 100, (quantizedAccuracy - floatAccuracy) * 100)
    }
    line += String(format: " agreement %.4f, SQNR %.2f dB", comparison.agreement, comparison.sqnrDB)
    return line
}

/// The recipe flags `quantize` and `quant-analyze` share.
struct RecipeOptions: ParsableArguments {
    @Option(name: .long, help: "Quantsim config: a preset (\(QuantsimConfig.presetNames.joined(separator: ", "))) or a JSON file.")
    var config = "default"

    @Option(name: .long, help: "Activation range scheme: minmax, sqnr, percentile[:P] or mse.")
    var scheme = "minmax"

    @Option(name: .long, help: "Weight bit width (4-16).")
    var weights = 8

    @Option(name: .long, help: "Activation bit width (4-16).")
    var activations = 8

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Per-channel weight encodings (default: as the config says).")
    var perChannel: Bool?

    @Option(name: .long, parsing: .upToNextOption, help: "Bit width per layer or tensor: NAME=BITS ... (op:TYPE=BITS for the outputs of every TYPE node, e.g. op:Add=16)")
    var bits: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Layers or tensors to leave in float.")
    var float: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Layers or tensors to pass through as float16 (AIMET's float quantizer at 16 bits: rounded to the nearest float16, no integer grid; exported as Cast to float16 and back).")
    var float16: [String] = []

    @Flag(name: .long, help: "Fold constant Mul/Div/Add/Sub that follow a Conv into the Conv before quantizing (as Qualcomm's converters squash them), so the chain is quantized once.")
    var foldScaleShift = false

    @Flag(name: .long, help: "Cross-layer equalization (ReLU6 becomes ReLU) with high-bias absorption.")
    var cle = false

    @Flag(name: .long, help: "Empirical bias correction on calibration data.")
    var biasCorrection = false

    @Flag(name: .long, help: "Data-free bias correction from BatchNorm statistics, for layers whose input is a BatchNorm output (optionally through Relu/Clip).")
    var analyticalBiasCorrection = false

    @Flag(name: .long, help: "After calibration, correct every Conv/Gemm bias so its output mean in the full simulation (weights and activations quantized) matches float; removes the mean shift activation quantization causes.")
    var activationBiasCorrection = false

    @Flag(name: .long, help: "AdaRound: learn each weight's rounding on calibration data.")
    var adaround = false

    @Option(name: .long, help: "AdaRound iterations per layer (default with --adaround: 10000 at 8 bits, 15000 below; the default recipe uses 1000 at 8 bits).")
    var adaroundIterations: Int?

    @Flag(name: .long, help: "Sequential MSE search of weight encodings.")
    var seqMse = false

    @Flag(name: .long, help: "No techniques at all (BatchNorm folding and calibration only), instead of the default recipe.")
    var plain = false

    @Option(name: .long, help: "Use only the first N calibration samples.")
    var calibrationSamples: Int?

    @Option(name: .long, help: "Calibration samples the bias corrections average over (one pass per corrected layer).")
    var biasCorrectionSamples = 64

    @Option(name: .long, help: "Samples per batch.")
    var batch = 32

    func recipe() throws -> QuantizationRecipe {
        var overrides: [String: Int] = [:]
        for entry in bits {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let value = Int(parts[1]) else {
                throw WhittleError(.invalidArgument, "--bits '\(entry)'", "expected NAME=BITS, e.g. conv1=16")
            }
            overrides[parts[0]] = value
        }
        let explicit = cle || biasCorrection || analyticalBiasCorrection || activationBiasCorrection || adaround || seqMse
        if plain && explicit {
            throw WhittleError(.invalidArgument, "--plain",
                               "cannot be combined with --cle, --bias-correction, --analytical-bias-correction, --activation-bias-correction, --adaround or --seq-mse")
        }
        var recipe = QuantizationRecipe(config: config, scheme: try CalibrationScheme(parsing: scheme),
                                        weightBits: weights, activationBits: activations, perChannel: perChannel,
                                        bitOverrides: overrides, disabled: Set(float), batchSize: batch)
        recipe.float16 = Set(float16)
        recipe.biasCorrectionSamples = biasCorrectionSamples
        recipe.foldScaleShift = foldScaleShift
        if explicit {
            recipe.crossLayerEqualization = cle
            recipe.biasCorrection = biasCorrection
            recipe.analyticalBiasCorrection = analyticalBiasCorrection
            recipe.activationBiasCorrection = activationBiasCorrection
            recipe.adaRound = adaround
            recipe.sequentialMSE = seqMse
        } else if !plain {
            recipe.applyDefaultTechniques()
        }
        if let adaroundIterations {
            guard adaroundIterations >= 1 else {
                throw WhittleError(.invalidArgument, "--adaround-iterations", "must be at least 1, got \(adaroundIterations)")
            }
            recipe.adaRoundIterations = adaroundIterations
        }
        try recipe.validate()
        // Load the config now: a bad file fails before any data is read, and keys it does not
        // know (a typo such as "is_output_quantised") are reported instead of silently ignored.
        for warning in try recipe.loadConfig().warnings { printError("warning: \(warning)") }
        return recipe
    }


    /// The calibration data set, cut to `--calibration-samples`.
    func calibrationData(_ path: String, for graph: Graph) throws -> Dataset {
        var calibration = try loadDataset(path, for: graph)
        if let calibrationSamples {
            guard calibrationSamples >= 1 else {
                throw WhittleError(.invalidArgument, "--calibration-samples", "must be at least 1, got \(calibrationSamples)")
            }
            calibration = calibration.subset(first: min(calibrationSamples, calibration.sampleCount))
        }
        try requireFiniteInputs(calibration, path: path)
        return calibration
    }
}

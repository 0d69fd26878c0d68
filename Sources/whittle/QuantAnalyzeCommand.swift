import ArgumentParser
import Foundation
import WhittleIO
import WhittleQuant

/// `whittle quant-analyze`: where quantization error comes from, layer by layer.
struct QuantAnalyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quant-analyze",
        abstract: "Per-layer quantization sensitivity (AIMET QuantAnalyzer style).",
        discussion: """
            Quantizes the model with the recipe flags, then reports weight-only vs activation-only \
            quantization, the SQNR of every quantized activation against float (error accumulated up \
            to that layer), and with --sweep the effect of quantizing one quantizer alone \
            (enable-one) and of leaving one quantizer in float (disable-one).
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "Calibration data .npz.")
    var data: String

    @Option(name: .long, help: "Evaluation data .npz (optional labels `y`); default: the calibration data.")
    var eval: String?

    @Flag(name: .long, help: "Also run enable-one and disable-one sweeps over every quantizer (one evaluation each).")
    var sweep = false

    @Option(name: .long, help: "Show the N worst layers (0: all).")
    var top = 15

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var engine: EngineOptions

    struct Report: Codable {
        var weightsOnly: OutputComparison
        var activationsOnly: OutputComparison
        var all: OutputComparison
        var perTensor: [QuantizationAnalysis.TensorSQNR]
        var sweep: [QuantizationAnalysis.QuantizerEffect]?
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard top >= 0 else { throw WhittleError(.invalidArgument, "--top", "must be >= 0, got \(top)") }
            let recipe = try recipeOptions.recipe()
            let graph = try loadModel(model)
            let calibration = try recipeOptions.calibrationData(data, for: graph)
            let evaluation = try eval.map { try loadDataset($0, for: graph) } ?? calibration
            if let eval { try requireFiniteInputs(evaluation, path: eval) }
            let progress = ProgressBar()
            let job = progress.context()
            let (quantized, _) = try PostTrainingQuantization.run(graph: graph, recipe: recipe, calibration: calibration.inputs, job: job)
            // Output comparisons against the model as loaded (the quantized model's graph carries
            // AdaRound's rounded weights and corrected biases); per-tensor SQNR uses that graph.
            func measure(_ selection: QuantizedModel.Selection) throws -> OutputComparison {
                try OutputComparison.measure(float: graph, quantized: quantized.simulationGraph(selection),
                                             inputs: evaluation.inputs, labels: evaluation.labels, batchSize: recipe.batchSize, job: job)
            }
            let weightsOnly = try measure(.paramsOnly)
            let activationsOnly = try measure(.activationsOnly)
            let all = try measure(.all)
            let perTensor = try QuantizationAnalysis.perTensorSQNR(quantized, inputs: evaluation.inputs, job: job)
            let effects = sweep ? try QuantizationAnalysis.sweep(quantized, inputs: evaluation.inputs, labels: evaluation.labels,
                                                                  batchSize: recipe.batchSize, job: job) : nil
            progress.finish()
            if engine.json {
                try printJSON(Report(weightsOnly: weightsOnly, activationsOnly: activationsOnly, all: all, perTensor: perTensor, sweep: effects))
                return
            }
            print("weights only:     " + comparisonLine(weightsOnly, samples: evaluation.sampleCount))
            print("activations only: " + comparisonLine(activationsOnly, samples: evaluation.sampleCount))
            print("both:             " + comparisonLine(all, samples: evaluation.sampleCount))
            let worst = perTensor.sorted { $0.sqnrDB < $1.sqnrDB }
            print("\nactivation SQNR vs float (accumulated), worst first:")
            for entry in (top == 0 ? worst : Array(worst.prefix(top))) {
                print(String(format: "  %7.2f dB  %@ (%@)", entry.sqnrDB, entry.tensor, entry.producer))
            }
            if let effects {
                print("\nquantizer sweeps (output SQNR dB; enable-one: only this quantizer on; disable-one: all but this one):")
                for effect in effects.sorted(by: { $0.disableOneSQNR - $0.enableOneSQNR > $1.disableOneSQNR - $1.enableOneSQNR }).prefix(top == 0 ? effects.count : top) {
                    print(String(format: "  enable-one %7.2f  disable-one %7.2f  %@ %@", effect.enableOneSQNR, effect.disableOneSQNR,
                                 effect.role, effect.tensor))
                }
            }
        }
    }
}

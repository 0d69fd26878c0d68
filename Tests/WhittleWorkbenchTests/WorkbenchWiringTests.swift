import Foundation
import Synchronization
import Testing
import WhittleCompress
import WhittleEngine
import WhittleIO
import WhittleQuant
import WhittleSession
import WhittleTUI
@testable import WhittleWorkbench

/// The bundled sample model and its data, loaded once per test.
struct Sample {
    let graph: Graph
    let model: ModelSummary
    let calibration: Dataset
    let evaluation: Dataset

    init(model name: String = "digits-cnn", samples: Int = 48) throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("SampleModels")
        graph = try ONNXImporter.load(contentsOf: folder.appendingPathComponent("\(name).onnx"))
        model = try ModelSummary(graph: graph, path: "\(name).onnx")
        let inputs = graph.inputs.map(\.name)
        calibration = try Dataset.load(from: folder.appendingPathComponent("digits-calib.npz"), inputNames: inputs).subset(first: samples)
        evaluation = try Dataset.load(from: folder.appendingPathComponent("digits-test.npz"), inputNames: inputs).subset(first: samples)
    }
}

/// Collects what a job thread hands back.
final class Collected<T: Sendable>: Sendable {
    let items = Mutex<[T]>([])
    func append(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
}

@Suite("Workbench wiring")
struct WorkbenchWiringTests {
    @Test func recipeCarriesTheSessionRecipeAndMapsLayerBitsToTensors() throws {
        let sample = try Sample()
        var settings = SessionSettings()
        settings.recipe.weightBits = 6
        settings.recipe.scheme = .percentile(99.9)
        settings.recipe.perChannel = true
        settings.recipe.adaRound = true
        settings.bitWidthOverrides = ["conv2": BitWidthOverride(weightBits: 4, activationBits: 16), "nonexistent": BitWidthOverride(weightBits: 5)]
        let recipe = try WorkbenchWiring.recipe(settings, model: sample.model)
        let conv2 = try #require(sample.model.layers.first { $0.name == "conv2" })
        let weight = try #require(conv2.weightName), output = try #require(conv2.outputs.first)
        #expect(recipe.bitOverrides == [weight: 4, output: 16])
        #expect(recipe.weightBits == 6 && recipe.scheme == .percentile(99.9) && recipe.perChannel == true && recipe.adaRound)
        #expect(recipe.config == "default")

        settings.recipe.weightBits = 2
        #expect(throws: WhittleError.self) { try WorkbenchWiring.recipe(settings, model: sample.model) }
    }

    /// A per-layer weight bit width on a compressed layer follows the layer into the compressed
    /// graph: to both SVD factors. It used to name the layer's original weight, which the split
    /// replaces, and quantization (and the encodings and QDQ exports) failed with "'conv3.weight':
    /// is neither a quantized tensor nor a layer of the model".
    @Test func bitOverridesFollowACompressedLayer() throws {
        let sample = try Sample(samples: 16)
        var settings = SessionSettings()
        settings.compression.ratios = ["conv3": 0.5]
        settings.bitWidthOverrides = ["conv3": BitWidthOverride(weightBits: 4), "conv2": BitWidthOverride(weightBits: 6)]
        let (quantized, recipe) = try WorkbenchWiring.quantize(graph: sample.graph, model: sample.model, settings: settings,
                                                               calibration: sample.calibration, evaluation: sample.evaluation,
                                                               context: .silent)
        let conv2 = try #require(sample.model.layers.first { $0.name == "conv2" }?.weightName)
        let split = recipe.bitOverrides.keys.filter { $0.hasPrefix("conv3_svd_") }.sorted()
        #expect(split == ["conv3_svd_a.weight", "conv3_svd_b.weight"])
        #expect(recipe.bitOverrides[conv2] == 6 && split.allSatisfy { recipe.bitOverrides[$0] == 4 })
        #expect(recipe.bitOverrides.count == 3, "\(recipe.bitOverrides)")
        for tensor in split {
            let bits: Int?
            switch quantized.encodings[tensor] {
            case .perTensor(let encoding)?: bits = encoding.bitWidth
            case .perChannel(_, let encodings)?: bits = encodings.first?.bitWidth
            default: bits = nil
            }
            #expect(bits == 4, "\(tensor): \(String(describing: quantized.encodings[tensor]))")
        }
    }

    /// With `auto` on, quantization runs the AutoQuant search on the evaluation data and
    /// returns the recipe it chose (here the first candidate, plain min-max, is within the drop).
    @Test func autoQuantRunsTheSearch() throws {
        let sample = try Sample(samples: 32)
        var settings = SessionSettings()
        settings.recipe = QuantizationRecipe()
        settings.recipe.perChannel = true
        settings.autoQuant = true
        let progress = Collected<ProgressEvent>()
        let (quantized, recipe) = try WorkbenchWiring.quantize(graph: sample.graph, model: sample.model, settings: settings,
                                                               calibration: sample.calibration, evaluation: sample.evaluation,
                                                               context: JobContext { progress.append($0) })
        #expect(progress.all.contains { $0.phase.hasPrefix("AutoQuant") })
        #expect(recipe.scheme == .minMax && !recipe.adaRound)
        #expect(!quantized.encodings.isEmpty)
    }

    @Test func techniqueNamesMapOntoTheCompressionLibrary() throws {
        for technique in WhittleSession.CompressionTechnique.builtIn {
            #expect(try WorkbenchWiring.technique(technique).rawValue == technique.rawValue)
        }
        #expect(throws: WhittleError.self) { try WorkbenchWiring.technique(WhittleSession.CompressionTechnique(rawValue: "magic")) }
    }

    @Test func compressionRequestFollowsTheSettings() throws {
        let sample = try Sample(samples: 8)
        var settings = SessionSettings()
        settings.compression.defaultTechnique = .channelPruning
        settings.compression.candidates = [0.25, 0.5, 0.75]
        settings.compression.ignoredLayers = ["conv1"]
        let request = try WorkbenchWiring.compressionRequest(target: 0.6, settings: settings, data: sample.evaluation)
        #expect(request.scheme == [.channelPruning] && request.candidateCount == 4 && request.ignore == ["conv1"])
        #expect(request.metric == .accuracy)
        #expect(request.options.reconstructionInputs != nil, "channel pruning reconstructs from the data")
        let unlabelled = try Dataset(inputs: sample.evaluation.inputs)
        #expect(try WorkbenchWiring.compressionRequest(target: 0.6, settings: SessionSettings(), data: unlabelled).metric == .agreement)
    }

    /// Auto-select streams one score update per layer, in order, before it returns; the
    /// streamed points are exactly the scores of the final outcome.
    @Test func autoSelectStreamsScoresLayerByLayer() throws {
        let sample = try Sample(samples: 16)
        var settings = SessionSettings()
        settings.compression.candidates = [0.25, 0.5, 0.75]
        let updates = Collected<ScoreUpdate>()
        let progress = Collected<ProgressEvent>()
        let context = JobContext { progress.append($0) }
        let outcome = try WorkbenchWiring.autoSelect(graph: sample.graph, target: 0.8, settings: settings, data: sample.evaluation,
                                                     cache: nil, context: context) { updates.append($0) }
        let streamed = updates.all
        let eligible = try Compressor.eligibility(of: sample.graph, technique: .spatialSVD).filter(\.eligible).map(\.layer)
        #expect(streamed.map(\.layer) == eligible)
        #expect(streamed.map(\.layersDone) == Array(1...eligible.count))
        #expect(streamed.allSatisfy { $0.layersTotal == eligible.count && $0.points.map(\.ratio) == [0.25, 0.5, 0.75] })
        let final = try #require(outcome.scores)
        for update in streamed {
            #expect(final.curve(technique: .spatialSVD, layer: update.layer) == update.points)
        }
        #expect(streamed.first?.metric == "accuracy" && streamed.first?.baseline == final.baseline)
        #expect(!outcome.ratios.isEmpty && (outcome.metrics.macs ?? .max) <= Int(Double(sample.model.totalMACs) * 0.801))
        // Progress counts candidates over all layers, "layer k of n" in the detail.
        let scoring = progress.all.filter { $0.phase == "scoring spatial-svd" && $0.total == eligible.count * 3 }
        #expect(scoring.contains { $0.detail?.hasPrefix("layer 2 of \(eligible.count): ") == true })
        #expect(scoring.contains { $0.completed == 3 && $0.total == eligible.count * 3 })
    }

    @Test func autoSelectStopsWhenCancelledAfterTheFirstLayer() throws {
        let sample = try Sample(samples: 8)
        var settings = SessionSettings()
        settings.compression.candidates = [0.5]
        let flag = CancellationFlag()
        let updates = Collected<ScoreUpdate>()
        #expect(throws: WhittleError.self) {
            try WorkbenchWiring.autoSelect(graph: sample.graph, target: 0.7, settings: settings, data: sample.evaluation, cache: nil,
                                           context: JobContext(cancellation: flag)) { update in
                updates.append(update)
                flag.cancel()
            }
        }
        #expect(updates.all.count == 1)
    }

    /// Every layer with weights gets a per-layer SQNR after quantization, on both samples
    /// (the CNN's Conv+Relu layers and the MobileNet's Conv+BatchNorm+Relu ones).
    @Test(arguments: ["digits-cnn", "digits-mobilenet"])
    func quantizationReportsSQNRForEveryQuantizedLayer(_ name: String) throws {
        let sample = try Sample(model: name, samples: 24)
        let metrics = try WorkbenchWiring.quantizeMetrics(graph: sample.graph, model: sample.model, settings: SessionSettings(),
                                                          calibration: sample.calibration, evaluation: sample.evaluation, context: .silent)
        let weighted = sample.model.layers.filter { $0.weightName != nil }.map(\.name)
        #expect(!weighted.isEmpty)
        let missing = weighted.filter { metrics.layers[$0]?.sqnr == nil }
        #expect(missing.isEmpty, "no SQNR for \(missing)")
        #expect(metrics.sqnr != nil && metrics.accuracy != nil)
    }

    /// The reasons panel 3 shows are the compression library's, for exactly the layers it
    /// refuses (digits-mobilenet's depthwise Convs for SVD).
    @Test func ineligibleLayersComeWithTheLibrarysReason() throws {
        let sample = try Sample(model: "digits-mobilenet", samples: 1)
        let reasons = WorkbenchWiring.ineligibility(of: sample.graph)
        for method in WhittleCompress.CompressionTechnique.allCases {
            let table = try #require(reasons[WhittleSession.CompressionTechnique(rawValue: method.rawValue)])
            let refused = try Compressor.eligibility(of: sample.graph, technique: method).filter { !$0.eligible }
            #expect(Set(table.keys) == Set(refused.map(\.layer)), "\(method)")
        }
        let svd = try #require(reasons[.spatialSVD])
        #expect(svd.values.contains { $0.contains("depthwise") }, "\(svd)")
    }

    /// The quantize job's result carries the encodings the quantizer computed (not the
    /// estimate from the weight range): per-tensor scale and offset, per-channel scale range,
    /// and the layer's output activation grid.
    @Test(arguments: [false, true])
    func quantizationResultCarriesTheRealEncodings(_ perChannel: Bool) throws {
        let sample = try Sample(model: "digits-cnn", samples: 16)
        var settings = SessionSettings()
        settings.recipe.perChannel = perChannel
        let metrics = try WorkbenchWiring.quantizeMetrics(graph: sample.graph, model: sample.model, settings: settings,
                                                          calibration: sample.calibration, evaluation: sample.evaluation, context: .silent)
        let (quantized, _) = try WorkbenchWiring.quantize(graph: sample.graph, model: sample.model, settings: settings,
                                                          calibration: sample.calibration, evaluation: sample.evaluation, context: .silent)
        let weighted = sample.model.layers.filter { $0.weightName != nil }
        #expect(!weighted.isEmpty)
        for layer in weighted {
            let entry = try #require(metrics.layers[layer.name], "\(layer.name)")
            let weight = try #require(entry.weightEncoding, "\(layer.name) has no weight encoding")
            #expect(weight.bitWidth == 8)
            switch quantized.encodings[try #require(layer.weightName)] {
            case .perTensor(let grid):
                #expect(!perChannel && weight.channels == nil && weight.offset == grid.offset && weight.scale == Double(grid.scale))
            case .perChannel(_, let grids):
                #expect(perChannel && weight.channels == grids.count && weight.offset == nil)
                #expect(weight.scale == Double(grids.map(\.scale).min() ?? 0) && weight.maximumScale == Double(grids.map(\.scale).max() ?? 0))
                #expect(weight.scale < weight.maximumScale)
            default:
                Issue.record("\(layer.name): unexpected weight encoding")
            }
            let activation = try #require(entry.activationEncoding, "\(layer.name) has no output encoding")
            #expect(activation.bitWidth == 8 && activation.channels == nil && activation.offset != nil && activation.scale > 0)
        }
    }

    /// The detail panel's rank/channels kept follow the compression library's own rule for
    /// every layer, technique and ratio.
    @Test(arguments: ["digits-cnn", "digits-mobilenet"])
    func keptStructuresMatchTheCompressionLibrary(_ name: String) throws {
        let sample = try Sample(model: name, samples: 1)
        let structures = WorkbenchWiring.structures(of: sample.graph)
        for method in WhittleCompress.CompressionTechnique.allCases {
            let table = try #require(structures[WhittleSession.CompressionTechnique(rawValue: method.rawValue)])
            let eligible = try Compressor.eligibility(of: sample.graph, technique: method).filter(\.eligible).map(\.layer)
            #expect(Set(table.keys) == Set(eligible), "\(method)")
            for layer in eligible {
                let structure = try #require(table[layer])
                for ratio in (1...20).map({ Double($0) / 20 }) + [0.437, 0.013, 0.999] {
                    let (rank, full) = try Compressor.rank(of: layer, in: sample.graph, technique: method, ratio: ratio)
                    #expect(structure.kept(ratio: ratio) == rank && structure.full == full, "\(method) \(layer) at \(ratio)")
                }
            }
        }
    }

    /// The encodings export writes the version chosen in the session (the Export panel's
    /// choice), through the same service `:export encodings` uses; a missing folder fails
    /// before any quantization with the folder's name.
    @Test(arguments: EncodingsVersion.allCases)
    func encodingsExportWritesTheSessionsVersion(_ version: EncodingsVersion) throws {
        let sample = try Sample(samples: 16)
        let services = WorkbenchWiring.services(graph: sample.graph, model: sample.model, evaluation: sample.evaluation,
                                                calibration: sample.calibration, searchSamples: 8)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var session = Session(modelPath: "digits-cnn.onnx")
        session.exports.encodingsVersion = version
        let path = directory.appendingPathComponent("m-encodings.json").path
        let result = try services.run(.export(.encodings, path: path, session: session), context: .silent)
        #expect(result == .exported(.encodings, path: path))
        let written = try EncodingsFile.decode(try Data(contentsOf: URL(fileURLWithPath: path)), source: path)
        #expect(written.version == version)
        #expect(!written.file.params.isEmpty && !written.file.activations.isEmpty)

        let missing = directory.appendingPathComponent("no-such-folder/m-encodings.json").path
        #expect(throws: WhittleError(.io, directory.appendingPathComponent("no-such-folder").path,
                                     "no such folder to export into (f in panel 7 sets the export folder)")) {
            try services.run(.export(.encodings, path: missing, session: session), context: .silent)
        }
    }
}

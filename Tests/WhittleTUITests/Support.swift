import Foundation
import Testing
import WhittleEngine
import WhittleSession
@testable import WhittleTUI

/// A small residual CNN: conv → relu → conv → relu → add(skip) → conv → pool → flatten → gemm.
func residualGraph() -> Graph {
    var generator = SplitMix64(seed: 7)
    func weights(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextUnit() * 2 - 1) * 0.5 })
    }
    let nodes = [
        Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["c0"], attributes: ["pads": .ints([1, 1, 1, 1])]),
        Node(name: "stem_relu", opType: "Relu", inputs: ["c0"], outputs: ["r0"]),
        Node(name: "block_conv1", opType: "Conv", inputs: ["r0", "w1"], outputs: ["c1"], attributes: ["pads": .ints([1, 1, 1, 1])]),
        Node(name: "block_relu", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
        Node(name: "block_conv2", opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"], attributes: ["pads": .ints([1, 1, 1, 1])]),
        Node(name: "residual_add", opType: "Add", inputs: ["c2", "r0"], outputs: ["a0"]),
        Node(name: "head_conv", opType: "Conv", inputs: ["a0", "w3"], outputs: ["c3"], attributes: ["strides": .ints([2, 2])]),
        Node(name: "pool", opType: "GlobalAveragePool", inputs: ["c3"], outputs: ["p0"]),
        Node(name: "flatten", opType: "Flatten", inputs: ["p0"], outputs: ["f0"]),
        Node(name: "classifier", opType: "Gemm", inputs: ["f0", "wf", "bf"], outputs: ["y"], attributes: ["transB": .int(1)]),
    ]
    return Graph(name: "resnet_tiny", nodes: nodes,
                 initializers: ["w0": weights([8, 1, 3, 3]), "b0": weights([8]), "w1": weights([8, 8, 3, 3]), "w2": weights([8, 8, 3, 3]),
                                "w3": weights([16, 8, 1, 1]), "wf": weights([10, 16]), "bf": weights([10])],
                 inputs: [ValueInfo(name: "x", dimensions: [.symbolic("N"), .fixed(1), .fixed(16), .fixed(16)])],
                 outputs: [ValueInfo(name: "y", dimensions: [.symbolic("N"), .fixed(10)])])
}

/// A fresh workbench state on the residual model.
func makeState(size: Size = Size(width: 80, height: 24), capabilities: Set<JobKind> = [.autoSelect, .quantize, .evaluate, .export(.onnx), .export(.encodings)]) throws -> WorkbenchState {
    let model = try ModelSummary(graph: residualGraph(), path: "/models/resnet_tiny.onnx")
    let session = Session(modelPath: "/models/resnet_tiny.onnx", calibrationDataPath: "/data/calib.npz", evaluationDataPath: "/data/test.npz")
    return WorkbenchState(session: session, model: model, size: size, themeName: "dark", themeNames: ["dark", "light", "mono", "terminal"],
                          capabilities: capabilities, configPresets: ["default", "default-per-channel", "htp-v73"])
}

/// A state with every panel's data present: ratios, scores, quantization result,
/// activation histograms, snapshots and jobs in every phase.
func richState(size: Size) throws -> WorkbenchState {
    var state = try makeState(size: size)
    state.session.takeSnapshot(named: "float", metrics: SessionMetrics(accuracy: 0.95, macs: 400_000, parameters: 2_000, sizeBytes: 8_000),
                               at: Date(timeIntervalSince1970: 0))
    state.session.compression.ratios = ["block_conv1": 0.5, "head_conv": 0.75]
    state.session.compression.targetMACRatio = 0.6
    state.session.bitWidthOverrides["classifier"] = BitWidthOverride(weightBits: 4)
    var scores = ScoreTables(metric: "accuracy", baseline: 0.95)
    for (layer, sensitivity) in [("stem", 0.30), ("block_conv1", 0.05), ("block_conv2", 0.12), ("head_conv", 0.02), ("classifier", 0.5)] {
        for ratio in stride(from: 0.1, through: 0.9, by: 0.2) {
            scores.record(technique: .spatialSVD, layer: layer, ratio: ratio, score: 0.95 - sensitivity * (1 - ratio) * (1 - ratio))
        }
    }
    state.session.scores = scores
    var quantized = SessionMetrics(accuracy: 0.93, sqnr: 28.5)
    for (i, layer) in state.model.layers.enumerated() where layer.weightName != nil {
        quantized.layers[layer.name] = LayerMetrics(sqnr: 40 - Double(i) * 3.5)
    }
    // block_conv1 (the selected layer) has real encodings: per-channel weights and its
    // output's grid; the other layers show the estimate.
    quantized.layers["block_conv1"]?.weightEncoding = EncodingSummary(bitWidth: 8, symmetric: true, channels: 8, scale: 0.00215, maximumScale: 0.00394)
    quantized.layers["block_conv1"]?.activationEncoding = EncodingSummary(bitWidth: 8, symmetric: false, scale: 0.0123, offset: -37)
    state.quantizationResult = quantized
    state.baseline = SessionMetrics(accuracy: 0.95)
    for layer in state.model.layers {
        state.activationHistograms[layer.name] = Histogram(low: -1, high: 3, counts: (0..<48).map { i in max(0, 40 - abs(i - 12) * 3) })
    }
    state.session.takeSnapshot(named: "half-macs", metrics: state.currentMetrics, at: Date(timeIntervalSince1970: 60))
    state.snapshotMark = 0
    state.snapshotSelection = 1
    var running = JobEntry(id: 1, title: "auto-select ratios (target 0.6 MACs)", kind: .autoSelect)
    running.progress = ProgressEvent(phase: "scoring", completed: 7, total: 20, detail: "block_conv2 @ 0.5")
    running.secondsRemaining = 42
    var done = JobEntry(id: 2, title: "quantize W8A8 sqnr", kind: .quantize)
    done.phase = .finished
    done.message = "top-1 93.00%"
    var failed = JobEntry(id: 3, title: "export qdq → m-qdq.onnx", kind: .export(.qdq))
    failed.phase = .failed
    failed.message = "m-qdq.onnx: disk full"
    state.jobs = [running, done, failed]
    state.nextJobID = 4
    state.capabilities.formUnion([.export(.qdq), .export(.report)])
    state.session.exports.encodingsVersion = .v2_0_0
    state.structures[.spatialSVD] = ["block_conv1": LayerStructure(channels: false, full: 24, perRatio: 40)]
    state.exportRecords[.onnx] = ExportRecord(job: 0, path: "/models/resnet_tiny-whittled.onnx", outcome: .written)
    state.exportRecords[.qdq] = ExportRecord(job: 3, path: "/models/m-qdq.onnx", outcome: .failed("m-qdq.onnx: disk full"))
    state.selectedLayer = state.model.index(of: "block_conv1") ?? 0
    return state
}

/// Applies keys in order, collecting effects.
func press(_ keys: [Key], on state: WorkbenchState) -> (WorkbenchState, [WorkbenchEffect]) {
    var current = state
    var all: [WorkbenchEffect] = []
    for key in keys {
        let (next, effects) = Workbench.update(current, .key(key))
        current = next
        all += effects
    }
    return (current, all)
}

func type(_ text: String) -> [Key] { text.map { Key.character($0) } }

/// The repository root (for Themes/ and golden files).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

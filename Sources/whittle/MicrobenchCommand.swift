import ArgumentParser
import Foundation
import WhittleIO

struct MicrobenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "microbench",
        abstract: "Achieved GFLOP/s of Whittle's 1x1 convolutions against raw cblas_sgemm on the same shapes; with --model, the raw cblas_sgemm time of a model's convolutions against its run time.")

    @Option(name: .long, help: "Timed repeats per shape.")
    var repeats = 10

    @Option(name: .long, help: "An ONNX model: time raw cblas_sgemm on the GEMM of each of its non-depthwise convolutions (the floor for an im2col/GEMM engine on this BLAS) and the whole model's run, side by side.")
    var model: String?

    @Option(name: .long, help: "Batch size for --model.")
    var batch = 32

    @OptionGroup var engine: EngineOptions

    struct Report: Codable {
        var rows: [Microbench.Row]
        var sgemmPeakGFLOPS: Double
    }

    struct FloorReport: Codable {
        var model: String
        var batch: Int
        var threads: Int
        var shapes: [Microbench.GemmFloorRow]
        var gemmFloorMilliseconds: Double
        var modelMilliseconds: Double
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard repeats >= 1 else { throw WhittleError(.invalidArgument, "--repeats", "must be at least 1") }
            if let model {
                try runFloor(model)
                return
            }
            let rows = try Microbench.pointwise(repeats: repeats)
            let peak = Microbench.sgemmPeak(repeats: max(3, repeats / 2))
            if engine.json { try printJSON(Report(rows: rows, sgemmPeakGFLOPS: peak)); return }
            for row in rows {
                print(String(format: "%-40@ conv %6.1f GFLOP/s  sgemm %6.1f GFLOP/s  ratio %.2f  (%.0f%% of sgemm peak)",
                             row.label, row.convGFLOPS, row.sgemmGFLOPS, row.ratio, 100 * row.convGFLOPS / max(peak, 1e-9)))
            }
            print(String(format: "sgemm peak (1024^3): %.1f GFLOP/s", peak))
        }
    }

    private func runFloor(_ path: String) throws {
        guard batch >= 1 else { throw WhittleError(.invalidArgument, "--batch", "must be at least 1, got \(batch)") }
        let graph = try loadModel(path)
        let shapes = try Microbench.gemmFloor(graph: graph, batchSize: batch, repeats: repeats)
        let plan = try Plan(graph: graph, batchSize: batch)
        var generator = SplitMix64(seed: 42)
        for name in plan.inputNames {
            guard let buffer = plan.inputBuffer(name) else { continue }
            for index in buffer.indices { buffer[index] = Float(generator.nextUnit() * 2 - 1) }
        }
        let modelSeconds = Microbench.medianSeconds(repeats) { plan.execute() }
        let floor = shapes.reduce(0) { $0 + $1.floorSeconds * Double($1.layers.count) }
        let report = FloorReport(model: path, batch: batch, threads: EngineThreads.count, shapes: shapes,
                                 gemmFloorMilliseconds: floor * 1000, modelMilliseconds: modelSeconds * 1000)
        if engine.json { try printJSON(report); return }
        print("raw cblas_sgemm per layer (ms, median of \(repeats)), batch \(batch), \(EngineThreads.count) thread(s):")
        print("  layers                                 m      k      n  per image  whole batch")
        for row in shapes {
            let names = row.layers.count == 1 ? row.layers[0] : "\(row.layers[0]) (+\(row.layers.count - 1) more)"
            print("  " + names.padding(toLength: max(34, names.count), withPad: " ", startingAt: 0)
                + String(format: " %6d %6d %6d %10.2f %12.2f", row.m, row.k, row.n,
                         row.perImageSeconds * 1000, row.wholeBatchSeconds * 1000))
        }
        print(String(format: "GEMM floor of %d convolutions (faster call form each): %.1f ms; whole model run: %.1f ms (%.2fx the floor)",
                     shapes.reduce(0) { $0 + $1.layers.count }, floor * 1000, modelSeconds * 1000, modelSeconds / max(floor, 1e-12)))
    }
}

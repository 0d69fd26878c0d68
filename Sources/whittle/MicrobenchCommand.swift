import ArgumentParser
import Foundation
import WhittleIO

struct MicrobenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "microbench",
        abstract: "Achieved GFLOP/s of Whittle's 1x1 convolutions against raw cblas_sgemm on the same shapes.")

    @Option(name: .long, help: "Timed repeats per shape.")
    var repeats = 10

    @OptionGroup var engine: EngineOptions

    struct Report: Codable {
        var rows: [Microbench.Row]
        var sgemmPeakGFLOPS: Double
    }

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard repeats >= 1 else { throw WhittleError(.invalidArgument, "--repeats", "must be at least 1") }
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
}

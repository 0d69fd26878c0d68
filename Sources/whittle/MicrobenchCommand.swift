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

    func run() throws {
        try reportingErrors {
            try engine.apply()
            guard repeats >= 1 else { throw WhittleError(.invalidArgument, "--repeats", "must be at least 1") }
            let rows = try Microbench.pointwise(repeats: repeats)
            if engine.json { try printJSON(rows); return }
            for row in rows {
                print(String(format: "%-40@ conv %6.1f GFLOP/s  sgemm %6.1f GFLOP/s  ratio %.2f", row.label, row.convGFLOPS, row.sgemmGFLOPS, row.ratio))
            }
        }
    }
}

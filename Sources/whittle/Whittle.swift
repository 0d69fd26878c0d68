import ArgumentParser
import Foundation
import WhittleIO

@main
enum Entry {
    static func main() {
        StartupClock.start = ContinuousClock.now
        OpenBLASEnvironment.ensureShortThreadTimeout()
        Whittle.main()
    }
}

struct Whittle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whittle",
        abstract: "Make trained neural networks small and fast for phones and NPUs.",
        discussion: "With no command, opens the workbench on the bundled sample model (digits-cnn) when run in a terminal; otherwise shows the sample and evaluates it on its test data.",
        version: WhittleVersion.string,
        subcommands: [Inspect.self, Run.self, Eval.self, Bench.self, Export.self, Quantize.self, QuantAnalyze.self,
                      Compress.self, Sensitivity.self, ReportCommand.self, MicrobenchCommand.self, TUI.self, Sample.self],
        defaultSubcommand: Sample.self)
}

enum WhittleVersion {
    static let string = "0.1.0"
}

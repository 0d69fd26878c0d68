import Foundation
import Testing
@testable import WhittleCompress
import WhittleEngine

/// Accuracy table for the README (run with `WHITTLE_COMPRESS_MEASURE=1 swift test --filter CompressionMeasurements`).
@Suite("Compression measurements", .enabled(if: ProcessInfo.processInfo.environment["WHITTLE_COMPRESS_MEASURE"] != nil))
struct CompressionMeasurements {
    @Test("every eligible layer at 0.5, each technique, with and without reconstruction")
    func table() throws {
        let calibration = try Fixture.data("digits-calib")
        let test = try Fixture.data("digits-test")
        for name in ["digits-cnn", "digits-mobilenet"] {
            let graph = try Fixture.model(name)
            let base = try Fixture.accuracy(graph, test)
            print("\(name): float accuracy \(base)")
            for technique in CompressionTechnique.allCases {
                let eligibility = try Compressor.eligibility(of: graph, technique: technique)
                let choices = eligibility.filter(\.eligible).map { LayerChoice(layer: $0.layer, technique: technique, ratio: 0.5) }
                for reconstruct in [false, true] {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let outcome = try Compressor.compress(
                        graph, choices: choices,
                        options: CompressionOptions(reconstructionInputs: reconstruct ? calibration.inputs : nil), job: .silent)
                    let seconds = clock.now - start
                    let accuracy = try Fixture.accuracy(outcome.graph, test)
                    let before = outcome.baselineCost?.totalMACs ?? 0, after = outcome.cost?.totalMACs ?? 0
                    let pb = outcome.baselineCost?.totalParameters ?? 0, pa = outcome.cost?.totalParameters ?? 0
                    print("| \(name) | \(technique.rawValue) | \(choices.count)/\(eligibility.count) layers | reconstruction \(reconstruct ? "yes" : "no") | MACs \(before) -> \(after) (\(String(format: "%.3f", Double(after) / Double(before)))) | params \(pb) -> \(pa) | accuracy \(String(format: "%.3f", accuracy)) | \(seconds) |")
                }
            }
        }
    }
}

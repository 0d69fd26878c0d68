import Foundation
import Testing
@testable import WhittleSession
import WhittleQuant

@Suite struct SessionModelTests {
    @Test func calibrationSchemeProfileTextRoundTrips() throws {
        for scheme in CalibrationScheme.workbenchChoices + [.percentile(99), .percentile(99.5)] {
            #expect(try CalibrationScheme(parsing: scheme.profileText) == scheme)
        }
        #expect(CalibrationScheme.percentile(99).profileText == "percentile:99")
        #expect(CalibrationScheme.percentile(99.99).profileText == "percentile:99.99")
        #expect(CalibrationScheme.minMax.profileText == "minmax")
        #expect(throws: WhittleError.self) { try CalibrationScheme(parsing: "median") }
    }
}

@Suite struct SessionEditingTests {
    @Test func settersKeepDictionariesMinimal() {
        var session = Session(modelPath: "m.onnx")
        session.setRatio(0.5, for: "a")
        session.setRatio(1, for: "b")
        session.setRatio(-3, for: "c")
        #expect(session.compression.ratios == ["a": 0.5, "c": 1e-6])
        session.setRatio(nil, for: "a")
        #expect(session.compression.ratios["a"] == nil)
        session.setTechnique(.channelPruning, for: "a")
        session.setTechnique(.spatialSVD, for: "b")  // the default
        #expect(session.compression.techniques == ["a": .channelPruning])
        session.setBitWidths(weight: 4, activation: 8, for: "fc")
        #expect(session.bitWidthOverrides == ["fc": BitWidthOverride(weightBits: 4)])
        #expect(session.bitWidths(for: "fc") == (4, 8))
        session.setBitWidths(weight: 8, activation: 8, for: "fc")
        #expect(session.bitWidthOverrides.isEmpty)
    }

    @Test func durationsFormatShortly() {
        #expect(ETAEstimator.format(seconds: 0) == "0s")
        #expect(ETAEstimator.format(seconds: 44.2) == "45s")
        #expect(ETAEstimator.format(seconds: 184) == "3m 04s")
        #expect(ETAEstimator.format(seconds: 7500) == "2h 05m")
        #expect(ETAEstimator.format(seconds: .nan) == "?")
    }

    @Test func contentHashesDifferAndMatch() {
        #expect(ContentHash.fnv1a64(Data()) == "cbf29ce484222325")
        #expect(ContentHash.fnv1a64(Data("a".utf8)) == "af63dc4c8601ec8c")
        var tables = ScoreTables(metric: "accuracy", modelHash: "m1")
        #expect(tables.matches(modelHash: "m1", datasetHash: "d", metric: "accuracy"))
        #expect(!tables.matches(modelHash: "m2", datasetHash: "d", metric: "accuracy"))
        #expect(!tables.matches(modelHash: "m1", datasetHash: "d", metric: "sqnr"))
        tables.modelHash = nil
        #expect(tables.matches(modelHash: "m2", datasetHash: nil, metric: "accuracy"))
    }
}

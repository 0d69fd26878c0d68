import Foundation
import Testing
@testable import WhittleSession
import WhittleQuant

/// A fresh temporary directory per test.
struct TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-session-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A session with every member set to a non-default value.
func fullSession(in directory: URL) -> Session {
    var session = Session(
        modelPath: directory.appendingPathComponent("models/net.onnx").path,
        calibrationDataPath: directory.appendingPathComponent("data/calib.npz").path,
        evaluationDataPath: "/elsewhere/eval.npz",
        recipe: QuantizationRecipe(config: "htp-v73", scheme: .percentile(99.9), weightBits: 4, activationBits: 16,
                                   perChannel: true, crossLayerEqualization: true, biasCorrection: true, adaRound: true,
                                   sequentialMSE: true, batchSize: 16),
        autoQuant: true,
        bitWidthOverrides: ["conv1": BitWidthOverride(weightBits: 8), "fc": BitWidthOverride(weightBits: 6, activationBits: 8)],
        compression: CompressionSettings(defaultTechnique: .channelPruning, techniques: ["conv2": .spatialSVD],
                                         ratios: ["conv2": 0.5, "conv3": 0.25], targetMACRatio: 0.6,
                                         ignoredLayers: ["conv1"], candidates: [0.25, 0.5, 0.75]),
        currentMetrics: SessionMetrics(accuracy: 0.91, sqnr: 23.5, macs: 1_000_000, parameters: 50_000, sizeBytes: 60_000,
                                       layers: ["conv2": LayerMetrics(ratio: 0.5, weightBits: 4, activationBits: 16, sqnr: 30.25)]),
        exports: ExportSettings(encodingsVersion: .v2_0_0, directory: directory.appendingPathComponent("out").path),
        ui: SessionUIState(selectedLayer: "conv2", focusedPanel: "compression", theme: "light", extra: ["filter": "conv"]))
    session.scores = ScoreTables(metric: "agreement", baseline: 0.99, modelHash: "abc", datasetHash: "def")
    session.scores.record(technique: .spatialSVD, layer: "conv2", ratio: 0.5, score: 0.9)
    session.scores.record(technique: .spatialSVD, layer: "conv2", ratio: 0.25, score: 0.7)
    session.scores.record(technique: .channelPruning, layer: "conv3", ratio: 0.75, score: 0.95)
    session.quantizationResult = SessionMetrics(accuracy: 0.9, sqnr: 21.75, layers: [
        "conv2": LayerMetrics(sqnr: 27.5, weightEncoding: EncodingSummary(bitWidth: 4, symmetric: true, channels: 16, scale: 0.0125, maximumScale: 0.5),
                              activationEncoding: EncodingSummary(bitWidth: 16, symmetric: false, scale: 0.000244140625, offset: -4096)),
        "conv3": LayerMetrics(sqnr: 33.25, weightEncoding: EncodingSummary(bitWidth: 8, symmetric: true, scale: 0.0078125, offset: -128)),
    ])
    session.compressionResult = SessionMetrics(macs: 612_345, parameters: 41_234)
    session.takeSnapshot(named: "baseline", at: Date(timeIntervalSince1970: 1_700_000_000))
    session.compression.ratios["conv2"] = 0.75
    session.takeSnapshot(named: "lighter", metrics: SessionMetrics(accuracy: 0.93, macs: 1_200_000), at: Date(timeIntervalSince1970: 1_700_000_100))
    return session
}

@Suite struct SessionProfileTests {
    @Test func fullSessionRoundTrips() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let session = fullSession(in: dir.url)
        let url = dir.file("tuning.json")
        try SessionProfile.save(session, to: url)
        let loaded = try SessionProfile.load(from: url)
        #expect(loaded.session == session)
        #expect(!loaded.recoveredFromAutosave)
        #expect(loaded.fileVersion == Session.formatVersion)
        #expect(loaded.source == url)

        // Stored paths: relative under the profile's directory, absolute elsewhere.
        let object = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        #expect(object["version"] as? Int == Session.formatVersion)
        #expect(object["model"] as? String == "models/net.onnx")
        #expect(object["calibrationData"] as? String == "data/calib.npz")
        #expect(object["evaluationData"] as? String == "/elsewhere/eval.npz")
        #expect(object["exports"] as? [String: String] == ["encodingsVersion": "2.0.0", "directory": "out"])
        // No temporary files left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["tuning.json"])
    }

    /// Version 3 keeps the last quantization result and exact compression totals; a version 2
    /// profile (which has neither) still loads, migrated, with both absent.
    @Test func resultsRoundTripAndVersion2Migrates() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let session = fullSession(in: dir.url)
        let url = dir.file("results.json")
        try SessionProfile.save(session, to: url)
        let loaded = try SessionProfile.load(from: url).session
        #expect(loaded.quantizationResult == session.quantizationResult && loaded.quantizationResult != nil)
        #expect(loaded.compressionResult?.macs == 612_345 && loaded.compressionResult?.parameters == 41_234)
        #expect(loaded.quantizationResult?.layers["conv2"]?.weightEncoding?.channels == 16)

        let (old, version) = try SessionProfile.decode(Data(#"{"version": 2, "model": "m.onnx", "exports": {"encodingsVersion": "2.0.0"}}"#.utf8), file: "v2.json")
        #expect(version == 2 && old.quantizationResult == nil && old.compressionResult == nil)
        #expect(old.exports.encodingsVersion == .v2_0_0)
        #expect(throws: WhittleError.self) {
            try SessionProfile.decode(Data(#"{"version": 2, "model": "m.onnx", "quantizationResult": 5}"#.utf8), file: "v2.json")
        }
    }

    @Test func minimalProfileTakesDefaults() throws {
        let (session, version) = try SessionProfile.decode(Data(#"{"version": 1, "model": "m.onnx"}"#.utf8), file: "p.json")
        #expect(version == 1)
        #expect(session == Session(modelPath: "m.onnx"))
        #expect(session.recipe.config == "default")
        #expect(session.recipe.scheme == .sqnr && session.recipe.perChannel == nil && !session.autoQuant)
        #expect(session.compression.ratio(for: "any") == 1)
    }

    @Test func relativePathsUseParentDirectories() {
        #expect(SessionProfile.relativePath("/work/a/m.onnx", from: "/work/b/c") == "../../a/m.onnx")
        #expect(SessionProfile.relativePath("/work/b/m.onnx", from: "/work/b") == "m.onnx")
        #expect(SessionProfile.relativePath("/opt/m.onnx", from: "/work/b") == "/opt/m.onnx")
        let resolved = SessionProfile.resolvingPaths(of: Session(modelPath: "../a/m.onnx"), against: URL(fileURLWithPath: "/work/b/p.json"))
        #expect(resolved.modelPath == "/work/a/m.onnx")
    }

    /// (file content, expected fragment of the message)
    static let brokenProfiles: [(String, String)] = [
        ("", "empty file"),
        ("{\n  \"version\": 1,\n  \"model\": \"m.onnx\",,\n}", "not valid JSON (line 3, column"),
        ("{\"version\": 1, \"model\": ", "not valid JSON"),
        ("[1, 2]", "expected a JSON object at the top level, found an array"),
        ("{\"model\": \"m.onnx\"}", "missing key 'version'"),
        ("{\"version\": \"one\", \"model\": \"m.onnx\"}", "'version' must be a whole number, found a string"),
        ("{\"version\": true, \"model\": \"m.onnx\"}", "'version' must be a whole number, found true or false"),
        ("{\"version\": 7, \"model\": \"m.onnx\"}", "made by a newer Whittle (version 7, this one reads up to \(Session.formatVersion))"),
        ("{\"version\": 0, \"model\": \"m.onnx\"}", "unknown profile version 0"),
        ("{\"version\": 1}", "missing key 'model'"),
        ("{\"version\": 1, \"model\": 5}", "wrong type at 'model': expected a string, found number"),
        ("{\"version\": 1, \"model\": \"m\", \"recipe\": {\"weightBits\": \"eight\"}}", "wrong type at 'recipe.weightBits': expected a whole number"),
        ("{\"version\": 1, \"model\": \"m\", \"recipe\": {\"weightBits\": 0}}", "invalid value at 'recipe.weightBits': bit width must be 1 to 32"),
        ("{\"version\": 1, \"model\": \"m\", \"recipe\": {\"scheme\": \"median\"}}", "unknown range scheme 'median'"),
        ("{\"version\": 1, \"model\": \"m\", \"compression\": {\"ratios\": {\"c1\": 1.5}}}", "at 'compression.ratios.c1': ratio must be in (0, 1]"),
        ("{\"version\": 1, \"model\": \"m\", \"snapshots\": [{\"created\": \"2024-01-01T00:00:00Z\"}]}", "missing key 'name' in 'snapshots[0]'"),
        ("{\"version\": 1, \"model\": \"m\", \"snapshots\": [{\"name\": \"a\", \"created\": \"yesterday\"}]}", "invalid value at 'snapshots[0].created'"),
        ("{\"version\": 1, \"model\": null}", "expected a string, found null"),
        ("{\"version\": 2, \"model\": \"m\", \"exports\": {\"encodingsVersion\": \"3.0\"}}",
         "invalid value at 'exports.encodingsVersion': unknown encodings version '3.0' (use 0.6.1, 1.0.0 or 2.0.0)"),
        ("{\"version\": 1, \"model\": \"m\", \"ui\": {\"extra\": {\"encodings-version\": \"9\"}}}",
         "cannot migrate from version 1: ui.extra.encodings-version: '9' is not an encodings version (use 0.6.1, 1.0.0 or 2.0.0)"),
    ]

    @Test(arguments: brokenProfiles.indices)
    func brokenProfileGivesOneClearLineAndIsUntouched(_ index: Int) throws {
        let (content, expected) = Self.brokenProfiles[index]
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("broken.json")
        try Data(content.utf8).write(to: url)
        let before = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date
        do {
            _ = try SessionProfile.load(from: url)
            Issue.record("loaded a broken profile: \(content)")
        } catch let error as WhittleError {
            #expect(error.subject == url.path)
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(!error.description.contains("\n"))
        }
        #expect(try Data(contentsOf: url) == Data(content.utf8))
        #expect(try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["broken.json"])
    }

    @Test func syntaxErrorPointsAtLineAndColumn() throws {
        let text = "{\n  \"version\": 1,\n  \"model\": [1, 2,, 3]\n}"
        do {
            _ = try SessionProfile.decode(Data(text.utf8), file: "p.json")
            Issue.record("decoded invalid JSON")
        } catch let error as WhittleError {
            #expect(error.message.contains("line 3, column 18"), "\(error.message)")
        }
    }

    @Test func missingProfileIsNamed() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("nope.json")
        #expect(throws: WhittleError(.io, url.path, "no such profile")) { try SessionProfile.load(from: url) }
    }

    /// Version 1 kept the encodings version in `ui.extra["encodings-version"]`; it moves to
    /// `exports.encodingsVersion` and the other `extra` entries stay. Saving writes the current version.
    @Test func version1EncodingsVersionMovesToTheExportSettings() throws {
        let text = #"{"version": 1, "model": "m.onnx", "ui": {"theme": "light", "extra": {"encodings-version": "0.6.1", "filter": "conv"}}}"#
        let (session, version) = try SessionProfile.decode(Data(text.utf8), file: "p.json")
        #expect(version == 1)
        #expect(session.exports == ExportSettings(encodingsVersion: .v0_6_1))
        #expect(session.ui.extra == ["filter": "conv"] && session.ui.theme == "light")
        let written = try #require(JSONSerialization.jsonObject(with: SessionProfile.encode(session)) as? [String: Any])
        #expect(written["version"] as? Int == Session.formatVersion)
        #expect((written["exports"] as? [String: String])?["encodingsVersion"] == "0.6.1")
        // Without the old key: the default version, nothing else changes.
        let (plain, _) = try SessionProfile.decode(Data(#"{"version": 1, "model": "m.onnx", "ui": {"extra": {"filter": "x"}}}"#.utf8), file: "p.json")
        #expect(plain.exports == ExportSettings() && plain.ui.extra == ["filter": "x"])
    }

    @Test func olderVersionsMigrateForward() throws {
        let format = ProfileFormat(currentVersion: 3, migrations: [
            1: { object in object["model"] = object.removeValue(forKey: "modelFile") },
            2: { object in object["ui"] = ["theme": "migrated"] },
        ])
        let (session, version) = try SessionProfile.decode(Data(#"{"version": 1, "modelFile": "old.onnx"}"#.utf8), file: "p.json", format: format)
        #expect(version == 1)
        #expect(session.modelPath == "old.onnx")
        #expect(session.ui.theme == "migrated")
        // Written with the format's version.
        let written = try JSONSerialization.jsonObject(with: SessionProfile.encode(session, format: format)) as? [String: Any]
        #expect(written?["version"] as? Int == 3)
        // A gap in the migrations is an error, not a guess.
        let gappy = ProfileFormat(currentVersion: 2)
        #expect(throws: WhittleError.self) { try SessionProfile.decode(Data(#"{"version": 1, "model": "m"}"#.utf8), file: "p", format: gappy) }
    }

    @Test func newerAutosaveWinsAndSaveClearsIt() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("work.json")
        var session = fullSession(in: dir.url)
        try SessionProfile.save(session, to: url)
        #expect(SessionProfile.autosaveStatus(for: url) == .none)
        #expect(SessionProfile.autosaveURL(for: url).lastPathComponent == "work.autosave.json")

        session.compression.ratios["conv3"] = 0.5
        try SessionProfile.autosave(session, for: url)
        try setModificationDate(of: SessionProfile.autosaveURL(for: url), to: Date().addingTimeInterval(10))
        guard case .newer = SessionProfile.autosaveStatus(for: url) else {
            Issue.record("autosave not reported newer")
            return
        }
        let recovered = try SessionProfile.load(from: url)
        #expect(recovered.recoveredFromAutosave)
        #expect(recovered.session == session)
        #expect(recovered.source.lastPathComponent == "work.autosave.json")
        // Opting out reads the profile itself.
        let plain = try SessionProfile.load(from: url, useNewerAutosave: false)
        #expect(plain.session.compression.ratios["conv3"] == 0.25)

        // An explicit save supersedes the autosave.
        try SessionProfile.save(session, to: url)
        #expect(SessionProfile.autosaveStatus(for: url) == .none)
    }

    @Test func olderAutosaveIsIgnored() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("work.json")
        let session = fullSession(in: dir.url)
        var stale = session
        stale.ui.theme = "stale"
        try SessionProfile.autosave(stale, for: url)
        try SessionProfile.save(session, to: url)  // removes it; write it back, older
        try SessionProfile.autosave(stale, for: url)
        try setModificationDate(of: SessionProfile.autosaveURL(for: url), to: Date().addingTimeInterval(-60))
        #expect(SessionProfile.autosaveStatus(for: url) == .older)
        let loaded = try SessionProfile.load(from: url)
        #expect(!loaded.recoveredFromAutosave)
        #expect(loaded.session.ui.theme == "light")
    }

    @Test func brokenAutosaveFallsBackWithWarning() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("work.json")
        let session = fullSession(in: dir.url)
        try SessionProfile.save(session, to: url)
        let autosave = SessionProfile.autosaveURL(for: url)
        try Data("{oops".utf8).write(to: autosave)
        try setModificationDate(of: autosave, to: Date().addingTimeInterval(10))
        let loaded = try SessionProfile.load(from: url)
        #expect(!loaded.recoveredFromAutosave)
        #expect(loaded.session == session)
        #expect(loaded.warnings.count == 1)
        #expect(loaded.warnings.first?.contains("work.autosave.json") == true)
        #expect(try Data(contentsOf: autosave) == Data("{oops".utf8))
    }

    @Test func autosaveStandsInForMissingProfile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("never-saved.json")
        let session = fullSession(in: dir.url)
        try SessionProfile.autosave(session, for: url)
        let loaded = try SessionProfile.load(from: url)
        #expect(loaded.recoveredFromAutosave)
        #expect(loaded.session == session)
    }

    @Test func corruptProfileMentionsItsAutosave() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let url = dir.file("work.json")
        try SessionProfile.autosave(fullSession(in: dir.url), for: url)
        try setModificationDate(of: SessionProfile.autosaveURL(for: url), to: Date().addingTimeInterval(-60))
        try Data("{\"version\": 1}".utf8).write(to: url)
        do {
            _ = try SessionProfile.load(from: url)
            Issue.record("loaded a profile without a model")
        } catch let error as WhittleError {
            #expect(error.message.contains("missing key 'model'"))
            #expect(error.message.contains("an autosave exists: work.autosave.json"))
        }
    }

    @Test func snapshotsReplaceAndRestore() throws {
        var session = Session(modelPath: "m.onnx")
        session.compression.ratios["a"] = 0.5
        session.takeSnapshot(named: "one", metrics: SessionMetrics(accuracy: 0.8))
        session.compression.ratios["a"] = 0.25
        session.takeSnapshot(named: "one", metrics: SessionMetrics(accuracy: 0.7))
        #expect(session.snapshots.count == 1)
        #expect(session.snapshot(named: "one")?.settings.compression.ratios["a"] == 0.25)
        session.compression.ratios["a"] = 0.9
        let restored = session.restoreSnapshot(named: "one")
        #expect(restored)
        #expect(session.compression.ratios["a"] == 0.25)
        #expect(session.currentMetrics?.accuracy == 0.7)
        let missing = session.restoreSnapshot(named: "two")
        #expect(!missing)
    }

    @Test func scoreTablesStaySorted() {
        var tables = ScoreTables()
        tables.record(technique: .weightSVD, layer: "fc", ratio: 0.5, score: 0.5)
        tables.record(technique: .weightSVD, layer: "fc", ratio: 0.25, score: 0.25)
        tables.record(technique: .weightSVD, layer: "fc", ratio: 0.75, score: 0.75)
        tables.record(technique: .weightSVD, layer: "fc", ratio: 0.5, score: 0.55)
        #expect(tables.curve(technique: .weightSVD, layer: "fc").map(\.ratio) == [0.25, 0.5, 0.75])
        #expect(tables.score(technique: .weightSVD, layer: "fc", ratio: 0.5) == 0.55)
        #expect(tables.score(technique: .spatialSVD, layer: "fc", ratio: 0.5) == nil)
        #expect(tables.techniques == [.weightSVD])
        #expect(tables.layers(technique: .weightSVD) == ["fc"])
    }
}

func setModificationDate(of url: URL, to date: Date) throws {
    try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: url.path)
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

/// Shared helpers for the encodings and quantsim config tests.
enum QuantFormatsTestSupport {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func fixture(_ name: String) -> URL { fixtures.appendingPathComponent(name) }

    /// Runs `body`, which must throw an error whose description contains every part.
    static func expectError(_ parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error containing \(parts)", sourceLocation: sourceLocation)
        } catch {
            let text = "\(error)"
            for part in parts {
                #expect(text.contains(part), "error \"\(text)\" does not contain \"\(part)\"", sourceLocation: sourceLocation)
            }
            #expect(!text.contains("\n"), "error is not one line: \(text)", sourceLocation: sourceLocation)
        }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("whittle-quantformats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

@Suite("Encodings files")
struct EncodingsFileTests {
    typealias Support = QuantFormatsTestSupport

    static func grid(_ bits: Int, _ scale: Float, _ offset: Int, _ symmetry: QuantizationSymmetry) -> QuantizationEncoding {
        QuantizationEncoding(bitWidth: bits, scale: scale, offset: offset, symmetry: symmetry)
    }

    /// A file using every representable kind of encoding, with awkward float values.
    static func richFile() -> EncodingsFile {
        EncodingsFile(
            activations: [
                "input": .perTensor(grid(8, 0.018658, -114, .asymmetric)),
                "/conv1/Conv_output_0": .perTensor(grid(16, 1.1920929e-07, 0, .asymmetric)),
                "relu \"quoted\"": .perTensor(grid(8, 0.1 + 0.2, -255, .asymmetric)),
                "ln_out": .float(bitWidth: 16),
            ],
            params: [
                "conv1.weight": .perChannel(axis: 0, [grid(8, 0.004, -128, .signedSymmetric), grid(8, 3.3333333e-05, -128, .signedSymmetric),
                                                      grid(8, 123.456, -128, .signedSymmetric)]),
                "fc.weight": .perChannel(axis: 1, [grid(4, 0.5, -7, .strictSymmetric), grid(4, 0.25, -7, .strictSymmetric)]),
                "fc.bias": .perTensor(grid(16, 0.000123, -32768, .signedSymmetric)),
                "bn.weight": .perTensor(grid(8, 0.01, 0, .unsignedSymmetric)),
                "emb": .perTensor(grid(8, 0.02, -3, .asymmetric)),
            ],
            excludedLayers: ["head", "aux"],
            quantizerArgs: QuantizerArgs(activationBitwidth: 8, paramBitwidth: 8, dtype: "int", isSymmetric: true,
                                         perChannelQuantization: true, quantScheme: "post_training_tf"))
    }

    static let axes: [String: Int] = ["conv1.weight": 0, "fc.weight": 1]
    static let context = EncodingsFile.ReadContext(channelAxis: { axes[$0] ?? 0 })

    @Test(arguments: [EncodingsVersion.v0_6_1, .v1_0_0])
    func roundTripsExactly(version: EncodingsVersion) throws {
        let file = Self.richFile()
        let data = try file.encoded(version: version)
        let (read, readVersion) = try EncodingsFile.decode(data, source: "mem", context: Self.context)
        #expect(readVersion == version)
        #expect(read == file)
        // Deterministic: the same value encodes to the same bytes.
        #expect(try read.encoded(version: version) == data)
    }

    @Test func roundTripsVersion2() throws {
        // 2.0.0 stores no symmetry flag: use encodings it represents exactly (asymmetric
        // activations, signed-symmetric or asymmetric params).
        var file = Self.richFile()
        file.params["fc.weight"] = .perChannel(axis: 1, [Self.grid(4, 0.5, -8, .signedSymmetric), Self.grid(4, 0.25, -8, .signedSymmetric)])
        file.params["bn.weight"] = .perTensor(Self.grid(8, 0.01, 0, .asymmetric))
        file.params["asym.pc"] = .perChannel(axis: 0, [Self.grid(8, 0.01, -10, .asymmetric), Self.grid(8, 0.02, 0, .asymmetric)])
        let params = Set(file.params.keys)
        let context = EncodingsFile.ReadContext(channelAxis: { _ in 99 }, isParameter: { params.contains($0) })
        let data = try file.encoded(version: .v2_0_0)
        let (read, version) = try EncodingsFile.decode(data, source: "mem", context: context)
        #expect(version == .v2_0_0)
        #expect(read == file)
    }

    @Test func version2LossyCasesKeepTheGrid() throws {
        // A strict-symmetric param is written signed (zero point 0); a symmetric activation
        // is written unsigned with zero point 2^(b-1) and reads back asymmetric, same grid.
        let file = EncodingsFile(activations: ["a": .perTensor(Self.grid(8, 0.1, -128, .signedSymmetric))],
                                 params: ["w": .perTensor(Self.grid(8, 0.1, -127, .strictSymmetric))])
        let text = String(decoding: try file.encoded(version: .v2_0_0), as: UTF8.self)
        #expect(text.contains("\"y_zero_point\": 128"))
        let read = try EncodingsFile.decode(Data(text.utf8), source: "mem").file
        #expect(read.activations["a"] == .perTensor(Self.grid(8, 0.1, -128, .asymmetric)))
        #expect(read.params["w"] == .perTensor(Self.grid(8, 0.1, -128, .signedSymmetric)))
    }

    @Test func floatsRoundTripBitForBit() throws {
        var generator = SystemRandomNumberGenerator()
        var channels: [QuantizationEncoding] = []
        for _ in 0..<500 {
            let scale = Float(bitPattern: UInt32.random(in: 0x3300_0000...0x4700_0000, using: &generator))
            channels.append(Self.grid(8, scale, -Int.random(in: 0...255, using: &generator), .asymmetric))
        }
        let file = EncodingsFile(params: ["w": .perChannel(axis: 0, channels)])
        for version in [EncodingsVersion.v0_6_1, .v1_0_0] {
            let read = try EncodingsFile.decode(try file.encoded(version: version), source: "mem").file
            guard case .perChannel(_, let back)? = read.params["w"] else { Issue.record("not per-channel"); continue }
            #expect(back.map(\.scale.bitPattern) == channels.map(\.scale.bitPattern))
        }
    }

    @Test func writesAtomicallyAndReadsBack() throws {
        let directory = try Support.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.encodings")
        try Self.richFile().write(to: url, version: .v1_0_0)
        #expect(try EncodingsFile.read(from: url, context: Self.context) == Self.richFile())
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(leftovers == ["model.encodings"])
    }

    @Test func writesSortedKeysAndAIMETSpellings() throws {
        let text = String(decoding: try Self.richFile().encoded(version: .v0_6_1), as: UTF8.self)
        #expect(text.contains("\"is_symmetric\": \"True\""))
        #expect(text.contains("\"is_symmetric\": \"False\""))
        let conv = try #require(text.range(of: "\"/conv1/Conv_output_0\""))
        let input = try #require(text.range(of: "\"input\": ["))
        #expect(conv.lowerBound < input.lowerBound)
        let v1 = String(decoding: try Self.richFile().encoded(version: .v1_0_0), as: UTF8.self)
        #expect(v1.contains("\"enc_type\": \"PER_CHANNEL\""))
        #expect(v1.contains("\"is_sym\": true"))
        #expect(v1.contains("\"offset\": [-7, -7]"))
    }

    @Test func readsLegacyExample() throws {
        let file = try EncodingsFile.read(from: Support.fixture("encodings_v0_6_1.json"))
        #expect(file.activations.count == 2)
        #expect(file.activations["input"] == .perTensor(Self.grid(8, 0.018658, -114, .asymmetric)))
        #expect(file.activations["/conv1/Conv_output_0"] == .perTensor(Self.grid(8, 0.024, 0, .asymmetric)))
        #expect(file.params["conv1.weight"] == .perChannel(axis: 0, [Self.grid(8, 0.004, -128, .signedSymmetric),
                                                                    Self.grid(8, 0.002, -128, .signedSymmetric)]))
        #expect(file.params["ln.weight"] == .float(bitWidth: 16))
        #expect(file.excludedLayers.isEmpty)
        #expect(file.quantizerArgs == QuantizerArgs(activationBitwidth: 8, paramBitwidth: 8, dtype: "int", isSymmetric: true,
                                                    perChannelQuantization: true, quantScheme: "post_training_tf_enhanced"))
        // The exported min/max are the grid-adjusted values (within the example's rounding).
        guard case .perTensor(let input)? = file.activations["input"] else { return }
        #expect(abs(input.min - -2.1271) < 1e-3)
        #expect(abs(input.max - 2.6308) < 1e-3)
    }

    @Test func readsVersion1ExampleAndRejectsItsLPBQEntry() throws {
        let url = Support.fixture("encodings_v1_0_0.json")
        Support.expectError([url.path, "param_encodings[\"fc.weight\"].enc_type", "LPBQ", "not supported", "fc.weight"]) {
            _ = try EncodingsFile.read(from: url)
        }
        // The same example without the LPBQ entry reads with the example's values.
        var text = try String(contentsOf: url, encoding: .utf8)
        let start = try #require(text.range(of: ",\n    {\"name\": \"fc.weight\""))
        let end = try #require(text.range(of: "5]}", range: start.upperBound..<text.endIndex))
        text.removeSubrange(start.lowerBound..<end.upperBound)
        let context = EncodingsFile.ReadContext(channelAxis: { $0 == "conv1.weight" ? 0 : 7 })
        let file = try EncodingsFile.decode(Data(text.utf8), source: "v1", context: context).file
        #expect(file.activations == ["input": .perTensor(Self.grid(8, 0.018658, -114, .asymmetric))])
        #expect(file.params == ["conv1.weight": .perChannel(axis: 0, [Self.grid(8, 0.004, -128, .signedSymmetric),
                                                                      Self.grid(8, 0.002, -128, .signedSymmetric)])])
        #expect(file.quantizerArgs?.quantScheme == "post_training_tf")
    }

    @Test func readsVersion2ExampleAndRejectsItsLPBQEntry() throws {
        let url = Support.fixture("encodings_v2_0_0.json")
        Support.expectError([url.path, "fc.weight", "LPBQ", "not supported"]) {
            _ = try EncodingsFile.read(from: url)
        }
        var text = try String(contentsOf: url, encoding: .utf8)
        let start = try #require(text.range(of: ",\n    {\"name\": \"fc.weight\""))
        let end = try #require(text.range(of: "\"block_size\": 64}", range: start.upperBound..<text.endIndex))
        text.removeSubrange(start.lowerBound..<end.upperBound)
        let file = try EncodingsFile.decode(Data(text.utf8), source: "v2").file
        #expect(file.activations == ["input": .perTensor(Self.grid(8, 0.018658, -114, .asymmetric))])
        #expect(file.params == ["conv1.weight": .perChannel(axis: 0, [Self.grid(8, 0.004, -128, .signedSymmetric),
                                                                      Self.grid(8, 0.002, -128, .signedSymmetric)])])
    }

    @Test func convertsAcrossVersions() throws {
        let legacy = try EncodingsFile.read(from: Support.fixture("encodings_v0_6_1.json"))
        let v1Text = String(decoding: try legacy.encoded(version: .v1_0_0), as: UTF8.self)
        #expect(v1Text.contains("\"offset\": [-114]"))
        let v1 = try EncodingsFile.decode(Data(v1Text.utf8), source: "v1").file
        #expect(v1 == legacy)
        let v2Data = try v1.encoded(version: .v2_0_0)
        let root = try JSONValue.parse(v2Data, source: "v2")
        guard case .array(let entries)? = root["encodings"] else { Issue.record("no encodings list"); return }
        let byName = Dictionary(uniqueKeysWithValues: entries.compactMap { entry -> (String, JSONValue)? in
            guard case .string(let name)? = entry["name"] else { return nil }
            return (name, entry)
        })
        // Zero point = -offset, activations unsigned.
        #expect(byName["input"]?["y_zero_point"] == .number("114"))
        #expect(byName["input"]?["output_dtype"] == .string("uint8"))
        #expect(byName["input"]?["y_scale"] == .number("0.018658"))
        #expect(byName["input"]?["axis"] == .null)
        #expect(byName["/conv1/Conv_output_0"]?["y_zero_point"] == .null)
        #expect(byName["conv1.weight"]?["output_dtype"] == .string("int8"))
        #expect(byName["conv1.weight"]?["y_zero_point"] == .null)
        #expect(byName["conv1.weight"]?["axis"] == .number("0"))
        #expect(byName["conv1.weight"]?["y_scale"] == .array([.number("0.004"), .number("0.002")]))
        #expect(byName["ln.weight"]?["output_dtype"] == .string("float16"))
        let params = Set(legacy.params.keys)
        let v2 = try EncodingsFile.decode(v2Data, source: "v2", context: EncodingsFile.ReadContext(isParameter: { params.contains($0) })).file
        #expect(v2.activations == legacy.activations)
        #expect(v2.params == legacy.params)
    }

    @Test func channelAxesComeFromConsumers() {
        let graph = Graph(
            nodes: [
                Node(name: "conv", opType: "Conv", inputs: ["x", "cw"], outputs: ["c"]),
                Node(name: "deconv", opType: "ConvTranspose", inputs: ["c", "tw"], outputs: ["d"]),
                Node(name: "gemm_t", opType: "Gemm", inputs: ["d", "g1"], outputs: ["e"], attributes: ["transB": .int(1)]),
                Node(name: "gemm", opType: "Gemm", inputs: ["e", "g2"], outputs: ["f"]),
                Node(name: "mm", opType: "MatMul", inputs: ["f", "m"], outputs: ["g"]),
            ],
            initializers: ["m": Tensor(shape: [2, 3, 4], floats: [Float](repeating: 0, count: 24))])
        let axes = ParameterSlots.channelAxes(in: graph)
        #expect(axes["cw"] == 0)
        #expect(axes["tw"] == 1)
        #expect(axes["g1"] == 0)
        #expect(axes["g2"] == 1)
        #expect(axes["m"] == 2)
        #expect(axes["x"] == 0)
        let context = EncodingsFile.ReadContext.graph(graph)
        #expect(context.channelAxis("tw") == 1)
        #expect(context.channelAxis("unknown") == 0)
        #expect(context.isParameter("m") == true)
        #expect(context.isParameter("c") == false)
    }
}

import Foundation
import Testing
import WhittleEngine
@testable import WhittleQuant

@Suite("Encodings file errors")
struct EncodingsErrorTests {
    typealias Support = QuantFormatsTestSupport

    /// Decoding `json` must fail naming the file and every part.
    func expectDecodeError(_ json: String, _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        Support.expectError(["bad.encodings"] + parts, sourceLocation: sourceLocation) {
            _ = try EncodingsFile.decode(Data(json.utf8), source: "bad.encodings")
        }
    }

    func legacy(_ entry: String, name: String = "act") -> String {
        "{\"version\": \"0.6.1\", \"activation_encodings\": {\"\(name)\": [\(entry)]}, \"param_encodings\": {}}"
    }

    func v1(_ entry: String) -> String {
        "{\"version\": \"1.0.0\", \"activation_encodings\": [], \"param_encodings\": [\(entry)]}"
    }

    func v2(_ entry: String) -> String {
        "{\"version\": \"2.0.0\", \"encodings\": [\(entry)]}"
    }

    @Test func malformedJSON() {
        expectDecodeError("{\"version\": \"1.0.0\",\n \"activation_encodings\": [,]}", ["malformed JSON", "line 2", "','"])
        expectDecodeError("{\"version\": \"1.0.0\"", ["malformed JSON", "end of file"])
        expectDecodeError("[1, 2]", ["expected a JSON object", "[1,2]"])
    }

    @Test func unknownOrMissingVersion() {
        expectDecodeError("{\"version\": \"3.1\", \"encodings\": []}", ["version", "unknown encodings version", "3.1"])
        expectDecodeError("{\"activation_encodings\": {}}", ["version", "missing"])
        expectDecodeError("{\"version\": 1.0}", ["version", "expected a string", "1.0"])
    }

    @Test func missingFields() {
        expectDecodeError("{\"version\": \"0.6.1\", \"activation_encodings\": {}}", ["param_encodings", "missing"])
        expectDecodeError(legacy("{\"bitwidth\": 8, \"dtype\": \"int\", \"is_symmetric\": \"False\", \"offset\": 0}"),
                          ["activation_encodings.act[0].scale", "missing"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_TENSOR\", \"is_sym\": true, \"scale\": [1.0], \"offset\": [-128]}"),
                          ["param_encodings[\"w\"].bw", "missing"])
        expectDecodeError(v2("{\"name\": \"a\", \"y_scale\": 0.1}"), ["encodings[\"a\"].output_dtype", "missing"])
    }

    @Test func bitWidthOutOfRange() {
        expectDecodeError(legacy("{\"bitwidth\": 32, \"dtype\": \"int\", \"is_symmetric\": \"False\", \"offset\": 0, \"scale\": 0.1}"),
                          ["activation_encodings.act[0].bitwidth", "4...16", "32"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_TENSOR\", \"bw\": 3, \"is_sym\": true, \"scale\": [1.0], \"offset\": [-4]}"),
                          ["param_encodings[\"w\"].bw", "4...16", "3"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"FLOAT\", \"enc_type\": \"PER_TENSOR\", \"bw\": 8}"),
                          ["param_encodings[\"w\"].bw", "float bit width must be 16", "8"])
        expectDecodeError(legacy("{\"bitwidth\": 32, \"dtype\": \"float\"}"), ["act[0].bitwidth", "16", "32"])
        expectDecodeError(v2("{\"name\": \"b\", \"output_dtype\": \"int32\", \"y_scale\": 0.1, \"y_zero_point\": null, \"axis\": null, \"block_size\": null}"),
                          ["encodings[\"b\"].output_dtype", "4...16", "int32"])
    }

    @Test func badScales() {
        expectDecodeError(legacy("{\"bitwidth\": 8, \"dtype\": \"int\", \"is_symmetric\": \"False\", \"offset\": 0, \"scale\": 0}"),
                          ["act[0].scale", "> 0", "0.0"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_CHANNEL\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1, -0.5], \"offset\": [-128, -128]}"),
                          ["param_encodings[\"w\"].scale[1]", "-0.5"])
        expectDecodeError(v2("{\"name\": \"a\", \"output_dtype\": \"uint8\", \"y_scale\": 1e39, \"y_zero_point\": 3, \"axis\": null, \"block_size\": null}"),
                          ["encodings[\"a\"].y_scale", "finite", "inf"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_TENSOR\", \"bw\": 8, \"is_sym\": true, \"scale\": [\"big\"], \"offset\": [-128]}"),
                          ["param_encodings[\"w\"].scale[0]", "expected a number", "\"big\""])
    }

    @Test func offsetsOutOfRange() {
        expectDecodeError(legacy("{\"bitwidth\": 8, \"dtype\": \"int\", \"is_symmetric\": \"False\", \"offset\": -256, \"scale\": 0.1}"),
                          ["act[0].offset", "-255...0", "-256"])
        expectDecodeError(legacy("{\"bitwidth\": 8, \"dtype\": \"int\", \"is_symmetric\": \"False\", \"offset\": 3, \"scale\": 0.1}"),
                          ["act[0].offset", "3"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_TENSOR\", \"bw\": 4, \"is_sym\": true, \"scale\": [0.1], \"offset\": [-128]}"),
                          ["param_encodings[\"w\"].offset[0]", "-8", "-128"])
        expectDecodeError(v2("{\"name\": \"a\", \"output_dtype\": \"uint8\", \"y_scale\": 0.1, \"y_zero_point\": 300, \"axis\": null, \"block_size\": null}"),
                          ["encodings[\"a\"].y_zero_point", "300"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_CHANNEL\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1, 0.2], \"offset\": [-128]}"),
                          ["param_encodings[\"w\"].offset", "1 entries", "2"])
    }

    @Test func emptyPerChannelLists() {
        expectDecodeError("{\"version\": \"0.6.1\", \"activation_encodings\": {}, \"param_encodings\": {\"w\": []}}",
                          ["param_encodings.w", "empty"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_CHANNEL\", \"bw\": 8, \"is_sym\": true, \"scale\": [], \"offset\": []}"),
                          ["param_encodings[\"w\"].scale", "empty"])
        expectDecodeError(v2("{\"name\": \"w\", \"output_dtype\": \"int8\", \"y_scale\": [], \"y_zero_point\": null, \"axis\": 0, \"block_size\": null}"),
                          ["encodings[\"w\"].y_scale", "empty"])
    }

    @Test func unsupportedEncodingKinds() {
        for kind in ["PER_BLOCK", "LPBQ", "VECTOR"] {
            expectDecodeError(v1("{\"name\": \"blk.w\", \"dtype\": \"INT\", \"enc_type\": \"\(kind)\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1], \"offset\": [-128], \"block_size\": 32}"),
                              ["\(kind) encodings are not supported", "blk.w"])
        }
        expectDecodeError(v2("{\"name\": \"blk.w\", \"output_dtype\": \"int4\", \"y_scale\": [0.1, 0.2], \"y_zero_point\": null, \"axis\": 1, \"block_size\": 32}"),
                          ["encodings[\"blk.w\"].block_size", "PER_BLOCK", "not supported", "32"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_ROW\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1], \"offset\": [-128]}"),
                          ["enc_type", "unknown", "PER_ROW"])
    }

    @Test func wrongTypes() {
        expectDecodeError(legacy("{\"bitwidth\": 8, \"dtype\": \"int\", \"is_symmetric\": \"yes\", \"offset\": 0, \"scale\": 0.1}"),
                          ["act[0].is_symmetric", "\"yes\""])
        expectDecodeError(legacy("{\"bitwidth\": 8.5, \"dtype\": \"int\", \"is_symmetric\": \"False\", \"offset\": 0, \"scale\": 0.1}"),
                          ["act[0].bitwidth", "integer", "8.5"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT8\", \"enc_type\": \"PER_TENSOR\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1], \"offset\": [-128]}"),
                          ["param_encodings[\"w\"].dtype", "INT8"])
        expectDecodeError("{\"version\": \"1.0.0\", \"activation_encodings\": {}, \"param_encodings\": []}",
                          ["activation_encodings", "expected an array", "object"])
        expectDecodeError(v1("{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_TENSOR\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1], \"offset\": [-128]},"
                             + "{\"name\": \"w\", \"dtype\": \"INT\", \"enc_type\": \"PER_TENSOR\", \"bw\": 8, \"is_sym\": true, \"scale\": [0.1], \"offset\": [-128]}"),
                          ["duplicate", "\"w\""])
    }

    @Test func readingAMissingFileNamesIt() {
        Support.expectError(["/nonexistent/dir/x.encodings", "cannot read"]) {
            _ = try EncodingsFile.read(from: URL(fileURLWithPath: "/nonexistent/dir/x.encodings"))
        }
    }

    @Test func writingInvalidValuesFails() throws {
        let bad = EncodingsFile(params: ["w": .perTensor(QuantizationEncoding(bitWidth: 8, scale: .nan, offset: -128, symmetry: .signedSymmetric))])
        Support.expectError(["out.encodings", "param_encodings.w.scale", "nan"]) {
            _ = try bad.encoded(version: .v1_0_0, source: "out.encodings")
        }
        let wide = EncodingsFile(activations: ["a": .perTensor(QuantizationEncoding(bitWidth: 32, scale: 1, offset: 0, symmetry: .asymmetric))])
        Support.expectError(["out.encodings", "activation_encodings.a.bitwidth", "32"]) {
            _ = try wide.encoded(version: .v0_6_1, source: "out.encodings")
        }
        let empty = EncodingsFile(params: ["w": .perChannel(axis: 0, [])])
        Support.expectError(["out.encodings", "param_encodings.w", "empty"]) {
            _ = try empty.encoded(version: .v2_0_0, source: "out.encodings")
        }
        let mislabelled = EncodingsFile(params: ["w": .perTensor(QuantizationEncoding(bitWidth: 8, scale: 1, offset: -5, symmetry: .signedSymmetric))])
        Support.expectError(["out.encodings", "param_encodings.w.offset", "-5"]) {
            _ = try mislabelled.encoded(version: .v1_0_0, source: "out.encodings")
        }
        let directory = try Support.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bad.encodings")
        Support.expectError([url.path, "nan"]) { try bad.write(to: url, version: .v1_0_0) }
        #expect(!FileManager.default.fileExists(atPath: url.path))
    }

    @Test func validatesNamesAgainstTheGraph() throws {
        let graph = Graph(
            name: "net",
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["input", "w"], outputs: ["c"])],
            initializers: ["w": Tensor(shape: [2, 1, 1, 1], floats: [1, 2])],
            inputs: [ValueInfo(name: "input", dimensions: [.fixed(1), .fixed(1), .fixed(2), .fixed(2)])])
        let grid = QuantizationEncoding(bitWidth: 8, scale: 0.1, offset: -128, symmetry: .signedSymmetric)
        var file = EncodingsFile(activations: ["input": .perTensor(grid), "c": .perTensor(grid)],
                                 params: ["w": .perChannel(axis: 0, [grid, grid])])
        try file.validate(against: graph, source: "m.encodings")
        file.activations["/missing/Relu_output_0"] = .perTensor(grid)
        Support.expectError(["m.encodings", "/missing/Relu_output_0", "not in graph", "net"]) {
            try file.validate(against: graph, source: "m.encodings")
        }
        file.activations["/missing/Relu_output_0"] = nil
        file.params["w"] = .perChannel(axis: 0, [grid, grid, grid])
        Support.expectError(["m.encodings", "param_encodings.w", "3 per-channel", "2 channels"]) {
            try file.validate(against: graph, source: "m.encodings")
        }
    }
}

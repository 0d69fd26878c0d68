import Foundation
import Testing
import WhittleIO

@Suite struct DatasetTests {
    /// 5 samples of shape [2, 3], element (n, i) = n * 10 + i.
    static let images = Tensor(shape: [5, 2, 3], floats: (0..<5).flatMap { n in (0..<6).map { Float(n * 10 + $0) } })
    static let labels = Tensor(shape: [5], ints: [4, 3, 2, 1, 0], elementType: .int64)

    func write(_ arrays: [(String, Tensor)]) throws -> (URL, URL) {
        let dir = try makeScratchDirectory()
        let url = dir.appendingPathComponent("data.npz")
        try NumPyFile.writeArchive(arrays, to: url)
        return (dir, url)
    }

    @Test func loadsXAndLabels() throws {
        let (dir, url) = try write([("x", Self.images), ("y", Self.labels)])
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try Dataset.load(from: url, inputNames: ["input.1"])
        #expect(data.sampleCount == 5)
        #expect(data.labels == [4, 3, 2, 1, 0])
        #expect(data.inputs.keys.sorted() == ["input.1"])
        #expect(data.inputs["input.1"] == Self.images)
    }

    @Test func loadsByInputNamesAndConvertsToFloat32() throws {
        let second = Tensor(shape: [5, 2], ints: (0..<10).map { Int64($0) }, elementType: .uint8)
        let (dir, url) = try write([("image", Self.images), ("meta", second), ("x", Self.images)])
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try Dataset.load(from: url, inputNames: ["image", "meta"])
        #expect(data.labels == nil)
        #expect(data.inputs["meta"] == Tensor(shape: [5, 2], floats: (0..<10).map { Float($0) }, elementType: .float32))
        // With one input, its own name wins over `x`.
        let only = try Dataset.load(from: url, inputNames: ["meta"])
        #expect(only.inputs["meta"]?.shape == [5, 2])
    }

    @Test func loadsFloat64FixtureWithWholeFloatLabels() throws {
        let data = try Dataset.load(from: NumPyFixtures.url("dataset_f8.npz"), inputNames: ["data"])
        #expect(data.sampleCount == 4)
        #expect(data.labels == [3, 0, 2, 1])
        let x = try #require(data.inputs["data"])
        #expect(x.elementType == .float32 && x.shape == [4, 1, 2, 3])
        #expect(x.floats == (0..<24).map { Float($0) / 8 })
    }

    @Test func missingInputListsKeys() throws {
        let (dir, url) = try write([("a", Self.images), ("y", Self.labels)])
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = whittleError { _ = try Dataset.load(from: url, inputNames: ["input"]) }
        #expect(error?.subject == url.path)
        #expect(error?.message.contains("'input' or 'x'") == true)
        #expect(error?.message.contains("'a', 'y'") == true)
        // With two inputs, `x` is not a fallback.
        let (dir2, url2) = try write([("x", Self.images)])
        defer { try? FileManager.default.removeItem(at: dir2) }
        let two = whittleError { _ = try Dataset.load(from: url2, inputNames: ["p", "q"]) }
        #expect(two?.message.contains("model input 'p'") == true)
    }

    @Test func sampleCountsMustAgree() throws {
        let (dir, url) = try write([("a", Self.images), ("b", Tensor.zeros([4, 2]))])
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = whittleError { _ = try Dataset.load(from: url, inputNames: ["a", "b"]) }
        #expect(error?.message.contains("sample counts disagree") == true)
    }

    @Test func labelErrors() throws {
        let cases: [(Tensor, String)] = [
            (Tensor(shape: [5, 1], ints: [0, 1, 2, 3, 4]), "must be 1-D"),
            (Tensor(shape: [4], ints: [0, 1, 2, 3]), "4 labels but 5 samples"),
            (Tensor(shape: [5], floats: [0, 1, 2.5, 3, 4], elementType: .float64), "element 2 is 2.5"),
            (Tensor(shape: [], ints: [1]), "must be 1-D"),
        ]
        for (y, expected) in cases {
            let (dir, url) = try write([("x", Self.images), ("y", y)])
            defer { try? FileManager.default.removeItem(at: dir) }
            let error = whittleError { _ = try Dataset.load(from: url, inputNames: ["in"]) }
            #expect(error?.message.contains(expected) == true, "\(expected): \(String(describing: error))")
        }
    }

    @Test func zeroDimensionalInputIsRejected() {
        let error = whittleError { _ = try Dataset(inputs: ["x": Tensor(shape: [], floats: [1])]) }
        #expect(error?.message.contains("batch dimension") == true)
        #expect(whittleError { _ = try Dataset(arrays: ["x": Self.images], inputNames: []) } != nil)
    }

    /// Reference slice: element by element.
    static func referenceRows(_ t: Tensor, _ rows: Range<Int>) -> [Float] {
        let row = t.count / t.shape[0]
        var out: [Float] = []
        for n in rows { for i in 0..<row { out.append(t.floats[n * row + i]) } }
        return out
    }

    @Test func batchSlicesRows() throws {
        let data = try Dataset(inputs: ["x": Self.images], labels: [4, 3, 2, 1, 0])
        for range in [0..<2, 2..<5, 1..<2, 3..<3, 0..<5] {
            let batch = try #require(data.batch(range)["x"])
            #expect(batch.shape == [range.count, 2, 3])
            #expect(batch.floats == Self.referenceRows(Self.images, range))
            #expect(data.batchLabels(range) == Array([4, 3, 2, 1, 0][range]))
        }
        // Out-of-range requests are clamped.
        #expect(data.batch(3..<9)["x"]?.shape == [2, 2, 3])
        #expect(data.batch(7..<9)["x"]?.shape == [0, 2, 3])
        #expect(data.batchLabels(-2..<1) == [4])
        #expect(data.batchRanges(size: 2) == [0..<2, 2..<4, 4..<5])
    }

    @Test func subsetKeepsFirstSamples() throws {
        let data = try Dataset(inputs: ["x": Self.images], labels: [4, 3, 2, 1, 0])
        let first = data.subset(first: 2)
        #expect(first.sampleCount == 2)
        #expect(first.labels == [4, 3])
        #expect(first.inputs["x"]?.floats == Self.referenceRows(Self.images, 0..<2))
        #expect(data.subset(first: 10).sampleCount == 5)
        #expect(data.subset(first: 0).inputs["x"]?.shape == [0, 2, 3])
    }
}

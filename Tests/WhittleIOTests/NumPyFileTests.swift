import Foundation
import Testing
import WhittleIO

/// Fixture files written by Scripts/reference/make_npy_fixtures.py (committed; no Python at test time).
enum NumPyFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/numpy")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func bytes(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }

    /// The float fixture values: arange(6).reshape(2, 3) * 0.5 - 1.
    static let floatValues: [Float] = [-1, -0.5, 0, 0.5, 1, 1.5]
}

/// A fresh empty directory for files a test writes.
func makeScratchDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("whittle-numpy-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The error thrown by `body`, for message checks.
func whittleError(_ body: () throws -> Void) -> WhittleError? {
    do {
        try body()
        return nil
    } catch let error as WhittleError {
        return error
    } catch {
        return nil
    }
}

@Suite struct NumPyFileTests {
    // MARK: Round trips

    static let roundTripCases: [Tensor] = [
        Tensor(shape: [2, 3], floats: [0, -1.5, 3.25, .infinity, -.infinity, -0.0], elementType: .float32),
        Tensor(shape: [3], floats: [1e-30, 123456.5, -7.75], elementType: .float64),
        Tensor(shape: [5], ints: [0, -1, Int64.max, Int64.min, 1 << 40], elementType: .int64),
        Tensor(shape: [2, 2], ints: [Int64(Int32.max), Int64(Int32.min), 0, -5], elementType: .int32),
        Tensor(shape: [4], ints: [0, 1, 128, 255], elementType: .uint8),
        Tensor(shape: [4], ints: [-128, -1, 0, 127], elementType: .int8),
        Tensor(shape: [1, 3], ints: [1, 0, 1], elementType: .bool),
        Tensor(shape: [], floats: [4.5], elementType: .float32),
        Tensor(shape: [], ints: [-9], elementType: .int64),
        Tensor(shape: [0, 3], floats: [], elementType: .float32),
        Tensor(shape: [2, 0], ints: [], elementType: .int32),
    ]

    @Test(arguments: roundTripCases)
    func roundTripInMemory(_ tensor: Tensor) throws {
        let data = try NumPyFile.arrayData(tensor)
        let back = try NumPyFile.readArray(data: data, name: "mem")
        #expect(back == tensor)
        // Header: magic, version 1.0, data 64-byte aligned, newline-terminated.
        #expect(Array(data.prefix(8)) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        #expect(data[9 + headerLength] == UInt8(ascii: "\n"))
        #expect(data.count == 10 + headerLength + tensor.byteCount)
    }

    @Test func roundTripNaN() throws {
        let tensor = Tensor(shape: [2], floats: [.nan, 1], elementType: .float32)
        let back = try NumPyFile.readArray(data: try NumPyFile.arrayData(tensor), name: "nan")
        #expect(back.floats[0].isNaN && back.floats[1] == 1)
        let double = Tensor(shape: [1], floats: [.nan], elementType: .float64)
        #expect(try NumPyFile.readArray(data: try NumPyFile.arrayData(double), name: "nan").floats[0].isNaN)
    }

    @Test func roundTripThroughFile() throws {
        let dir = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("a.npy")
        let tensor = Tensor(shape: [3, 4], floats: (0..<12).map { Float($0) * 0.25 })
        try NumPyFile.writeArray(tensor, to: url)
        #expect(try NumPyFile.readArray(from: url) == tensor)
        // Overwriting replaces the file and leaves no temporary files behind.
        let other = Tensor(shape: [2], ints: [7, 8], elementType: .int32)
        try NumPyFile.writeArray(other, to: url)
        #expect(try NumPyFile.readArray(from: url) == other)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["a.npy"])
    }

    @Test func headerIsExactlyNumPys() throws {
        let data = try NumPyFile.arrayData(Tensor(shape: [2, 3], floats: NumPyFixtures.floatValues))
        // Byte-identical to what np.save writes for the same array.
        #expect(data == (try NumPyFixtures.bytes("f4.npy")))
        let scalar = try NumPyFile.arrayData(Tensor(shape: [], floats: [2.5]))
        #expect(scalar == (try NumPyFixtures.bytes("scalar_f4.npy")))
    }

    @Test func intStorageWritesAsFloatAndBack() throws {
        let tensor = Tensor(shape: [3], ints: [1, -2, 3], elementType: .float32)
        let back = try NumPyFile.readArray(data: try NumPyFile.arrayData(tensor), name: "t")
        #expect(back.elementType == .float32 && back.floats == [1, -2, 3])
        let floatsAsInts = Tensor(shape: [2], floats: [3, -4], elementType: .int8)
        #expect(try NumPyFile.readArray(data: try NumPyFile.arrayData(floatsAsInts), name: "t").ints == [3, -4])
    }

    @Test func hugeHeaderUsesVersion2() throws {
        // 30000 dimensions of extent 1 make a header longer than 65535 bytes.
        let shape = [Int](repeating: 1, count: 30000)
        let tensor = Tensor(shape: shape, floats: [1.5])
        let data = try NumPyFile.arrayData(tensor)
        #expect(data[6] == 2 && data[7] == 0)
        let headerLength = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
        #expect((12 + headerLength) % 64 == 0)
        #expect(try NumPyFile.readArray(data: data, name: "big") == tensor)
    }

    @Test func largeArrayDecodesContiguously() throws {
        let count = 1 << 20
        let values = (0..<count).map { Float($0 % 1000) - 500 }
        let tensor = Tensor(shape: [count / 1024, 1024], floats: values)
        let back = try NumPyFile.readArray(data: try NumPyFile.arrayData(tensor), name: "large")
        #expect(back == tensor)
    }

    // MARK: Unrepresentable values

    @Test func writeRejectsOutOfRangeValues() {
        let cases: [Tensor] = [
            Tensor(shape: [2], ints: [0, 1 << 40], elementType: .int32),
            Tensor(shape: [1], ints: [256], elementType: .uint8),
            Tensor(shape: [1], ints: [-1], elementType: .uint8),
            Tensor(shape: [1], ints: [128], elementType: .int8),
            Tensor(shape: [1], floats: [1.5], elementType: .int64),
            Tensor(shape: [1], floats: [.nan], elementType: .int32),
        ]
        for tensor in cases {
            let error = whittleError { _ = try NumPyFile.arrayData(tensor) }
            #expect(error?.message.contains("cannot be stored as \(tensor.elementType.rawValue)") == true)
        }
        var broken = Tensor(shape: [2], floats: [1, 2])
        broken.shape = [3]
        #expect(whittleError { _ = try NumPyFile.arrayData(broken) }?.message.contains("needs 3 elements") == true)
    }

    // MARK: Python-made fixtures

    @Test func readsEveryDtypeFromNumPy() throws {
        let f4 = try NumPyFile.readArray(from: NumPyFixtures.url("f4.npy"))
        #expect(f4 == Tensor(shape: [2, 3], floats: NumPyFixtures.floatValues, elementType: .float32))
        let f8 = try NumPyFile.readArray(from: NumPyFixtures.url("f8.npy"))
        #expect(f8 == Tensor(shape: [2, 3], floats: NumPyFixtures.floatValues.map { $0 + 0.125 }, elementType: .float64))
        let i8 = try NumPyFile.readArray(from: NumPyFixtures.url("i8.npy"))
        #expect(i8 == Tensor(shape: [5], ints: [0, -3, 1 << 40, -(1 << 40), 7], elementType: .int64))
        let i4 = try NumPyFile.readArray(from: NumPyFixtures.url("i4.npy"))
        #expect(i4 == Tensor(shape: [2, 2], ints: [1, -2, Int64(Int32.max), Int64(Int32.min)], elementType: .int32))
        let u1 = try NumPyFile.readArray(from: NumPyFixtures.url("u1.npy"))
        #expect(u1 == Tensor(shape: [4], ints: [0, 1, 128, 255], elementType: .uint8))
        let i1 = try NumPyFile.readArray(from: NumPyFixtures.url("i1.npy"))
        #expect(i1 == Tensor(shape: [4], ints: [-128, -1, 0, 127], elementType: .int8))
        let b1 = try NumPyFile.readArray(from: NumPyFixtures.url("b1.npy"))
        #expect(b1 == Tensor(shape: [3], ints: [1, 0, 1], elementType: .bool))
    }

    @Test func readsScalarAndEmpty() throws {
        let scalar = try NumPyFile.readArray(from: NumPyFixtures.url("scalar_f4.npy"))
        #expect(scalar.shape == [] && scalar.floats == [2.5])
        let empty = try NumPyFile.readArray(from: NumPyFixtures.url("empty_f4.npy"))
        #expect(empty.shape == [0, 3] && empty.floats.isEmpty)
    }

    @Test func convertsBigEndian() throws {
        for (big, little) in [("f4_be.npy", "f4.npy"), ("f8_be.npy", "f8.npy"), ("i8_be.npy", "i8.npy"), ("i4_be.npy", "i4.npy")] {
            let a = try NumPyFile.readArray(from: NumPyFixtures.url(big))
            let b = try NumPyFile.readArray(from: NumPyFixtures.url(little))
            #expect(a == b, "\(big)")
        }
    }

    @Test func readsFormatVersions2And3() throws {
        for name in ["f4_v2.npy", "f4_v3.npy"] {
            let data = try NumPyFixtures.bytes(name)
            #expect(data[6] == (name.contains("v2") ? 2 : 3))
            let tensor = try NumPyFile.readArray(data: data, name: name)
            #expect(tensor == Tensor(shape: [2, 3], floats: NumPyFixtures.floatValues))
        }
    }

    // MARK: Errors

    @Test func rejectsFortranOrder() {
        let error = whittleError { _ = try NumPyFile.readArray(from: NumPyFixtures.url("fortran_f4.npy")) }
        #expect(error?.kind == .invalidData)
        #expect(error?.subject.hasSuffix("fortran_f4.npy") == true)
        #expect(error?.message.contains("Fortran") == true)
    }

    @Test func rejectsObjectArrays() {
        let error = whittleError { _ = try NumPyFile.readArray(from: NumPyFixtures.url("object.npy")) }
        #expect(error?.subject.hasSuffix("object.npy") == true)
        #expect(error?.message.contains("'|O'") == true)
        #expect(error?.message.contains("object arrays") == true)
    }

    @Test func rejectsUnsupportedDtype() {
        let error = whittleError { _ = try NumPyFile.readArray(from: NumPyFixtures.url("f2.npy")) }
        #expect(error?.subject.hasSuffix("f2.npy") == true)
        #expect(error?.description.contains("unsupported dtype '<f2'") == true)
    }

    @Test func rejectsTruncatedData() throws {
        let full = try NumPyFixtures.bytes("f4.npy")
        // Data cut short, header cut short, preamble cut short, empty file.
        for length in [full.count - 1, 128, 100, 9, 0] {
            let error = whittleError { _ = try NumPyFile.readArray(data: full.prefix(length), name: "cut.npy") }
            #expect(error != nil, "length \(length)")
            #expect(error?.subject == "cut.npy")
        }
        let dataError = whittleError { _ = try NumPyFile.readArray(data: full.prefix(full.count - 1), name: "cut.npy") }
        #expect(dataError?.message.contains("truncated data") == true)
        let headerError = whittleError { _ = try NumPyFile.readArray(data: full.prefix(100), name: "cut.npy") }
        #expect(headerError?.message.contains("truncated .npy header") == true)
    }

    @Test func rejectsBadMagicAndVersion() throws {
        var data = try NumPyFixtures.bytes("f4.npy")
        data[1] = UInt8(ascii: "X")
        #expect(whittleError { _ = try NumPyFile.readArray(data: data, name: "m") }?.message.contains("magic") == true)
        let text = Data("just some text, definitely not numpy".utf8)
        #expect(whittleError { _ = try NumPyFile.readArray(data: text, name: "m") }?.message.contains("magic") == true)
        var version = try NumPyFixtures.bytes("f4.npy")
        version[6] = 9
        #expect(whittleError { _ = try NumPyFile.readArray(data: version, name: "m") }?.message.contains("version 9.0") == true)
    }

    /// A version 1.0 image with the given header text (not padded) and `dataBytes` zero bytes.
    static func image(header: String, dataBytes: Int = 24) -> Data {
        let text = Array(header.utf8)
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(text.count & 0xFF), UInt8(text.count >> 8)]
        out += text
        out += [UInt8](repeating: 0, count: dataBytes)
        return Data(out)
    }

    @Test(arguments: [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",  // unterminated dict
        "{'descr': '<f4', 'fortran_order': False}\n",  // no shape
        "{'fortran_order': False, 'shape': (2, 3)}\n",  // no descr
        "{'descr': '<f4', 'shape': (2, 3)}\n",  // no fortran_order
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}\n",  // non-bool order
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}\n",  // negative extent
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a')}\n",  // non-integer extent
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} junk\n",  // trailing text
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}\n",  // broken quoting
        "['descr', '<f4']\n",  // not a dict
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999)}\n",  // overflow
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}\n",  // structured dtype
        "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2, 3)}\n",  // unknown identifier
        "((((((((((((((((((((((((((((((((((((((((((((\n",  // deep nesting
        "",  // empty header
    ])
    func rejectsMalformedHeader(_ header: String) {
        let error = whittleError { _ = try NumPyFile.readArray(data: Self.image(header: header), name: "bad.npy") }
        #expect(error?.kind == .invalidData)
        #expect(error?.subject == "bad.npy")
    }

    @Test func acceptsHeaderVariants() throws {
        // Key order, double quotes, Python 2 long suffixes, native '=' order and no trailing comma.
        let header = "{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"=f4\"}   \n"
        var data = Self.image(header: header, dataBytes: 0)
        for value in NumPyFixtures.floatValues { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        #expect(try NumPyFile.readArray(data: data, name: "v") == Tensor(shape: [2, 3], floats: NumPyFixtures.floatValues))
    }

    @Test func missingFileIsAnIOError() {
        let error = whittleError { _ = try NumPyFile.readArray(from: URL(fileURLWithPath: "/nonexistent/whittle/a.npy")) }
        #expect(error?.kind == .io)
        #expect(error?.subject == "/nonexistent/whittle/a.npy")
    }
}

import Foundation
import Testing
import WhittleIO

@Suite struct NumPyArchiveTests {
    static let x = Tensor(shape: [4, 1, 2, 3], floats: (0..<24).map { Float($0) / 8 })
    static let y = Tensor(shape: [4], ints: [3, 0, 2, 1], elementType: .int64)

    @Test func readsSavez() throws {
        let arrays = try NumPyFile.readArchive(from: NumPyFixtures.url("archive.npz"))
        #expect(arrays.keys.sorted() == ["x", "y"])
        #expect(arrays["x"] == Self.x)
        #expect(arrays["y"] == Self.y)
    }

    @Test func readsSavezCompressed() throws {
        let arrays = try NumPyFile.readArchive(from: NumPyFixtures.url("compressed.npz"))
        #expect(arrays.keys.sorted() == ["mask", "x", "y"])
        #expect(arrays["x"] == Self.x)
        #expect(arrays["y"] == Self.y)
        #expect(arrays["mask"] == Tensor(shape: [2], ints: [1, 0], elementType: .bool))
    }

    @Test(arguments: [false, true])
    func roundTripsEveryDtype(compressed: Bool) throws {
        let dir = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("all.npz")
        let arrays: [(String, Tensor)] = [
            ("f4", Tensor(shape: [2, 2], floats: [1, -2, 3.5, 0], elementType: .float32)),
            ("f8", Tensor(shape: [3], floats: [0.1, -0.2, 1e20], elementType: .float64)),
            ("i8", Tensor(shape: [2], ints: [Int64.min, Int64.max], elementType: .int64)),
            ("i4", Tensor(shape: [1, 2], ints: [-7, 7], elementType: .int32)),
            ("u1", Tensor(shape: [2], ints: [0, 255], elementType: .uint8)),
            ("i1", Tensor(shape: [2], ints: [-128, 127], elementType: .int8)),
            ("b1", Tensor(shape: [2], ints: [0, 1], elementType: .bool)),
            ("scalar", Tensor(shape: [], floats: [3], elementType: .float32)),
            ("big", Tensor(shape: [64, 64], floats: (0..<4096).map { Float($0 % 7) })),
        ]
        try NumPyFile.writeArchive(arrays, to: url, compressed: compressed)
        let back = try NumPyFile.readArchive(from: url)
        #expect(back.count == arrays.count)
        for (key, tensor) in arrays { #expect(back[key] == tensor, "\(key)") }
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int ?? 0
        // The repetitive 16 KiB array shrinks a lot when deflated.
        #expect(compressed ? size < 8000 : size > 16384)
    }

    @Test func dictionaryOverloadAndInMemoryRead() throws {
        let dir = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("d.npz")
        try NumPyFile.writeArchive(["y": Self.y, "x": Self.x], to: url)
        let back = try NumPyFile.readArchive(data: try Data(contentsOf: url), name: "mem.npz")
        #expect(back == ["x": Self.x, "y": Self.y])
    }

    @Test func failedWriteLeavesDestinationUntouched() throws {
        let dir = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("keep.npz")
        try NumPyFile.writeArchive([("x", Self.x)], to: url)
        let before = try Data(contentsOf: url)
        // The second array cannot be stored as int32.
        let bad = Tensor(shape: [1], ints: [1 << 40], elementType: .int32)
        let error = whittleError { try NumPyFile.writeArchive([("a", Self.x), ("bad", bad)], to: url) }
        #expect(error?.subject.hasSuffix("keep.npz: bad") == true)
        #expect(try Data(contentsOf: url) == before)
        let duplicate = whittleError { try NumPyFile.writeArchive([("a", Self.x), ("a", Self.y)], to: url) }
        #expect(duplicate?.message.contains("duplicate") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["keep.npz"])
    }

    @Test func writeIntoMissingDirectoryFails() {
        let url = URL(fileURLWithPath: "/nonexistent-whittle-dir/out.npz")
        let error = whittleError { try NumPyFile.writeArchive([("x", Self.x)], to: url) }
        #expect(error?.kind == .io)
        #expect(FileManager.default.fileExists(atPath: url.path) == false)
        let npyError = whittleError { try NumPyFile.writeArray(Self.x, to: URL(fileURLWithPath: "/nonexistent-whittle-dir/a.npy")) }
        #expect(npyError?.kind == .io)
    }

    @Test func rejectsNonArchivesAndBadMembers() throws {
        let notZip = whittleError { _ = try NumPyFile.readArchive(from: NumPyFixtures.url("f4.npy")) }
        #expect(notZip?.kind == .invalidData)
        #expect(notZip?.message.contains("not a valid .npz") == true)
        let missing = whittleError { _ = try NumPyFile.readArchive(from: URL(fileURLWithPath: "/nonexistent/a.npz")) }
        #expect(missing?.kind == .io)
        // Truncating the archive breaks its central directory.
        let data = try NumPyFixtures.bytes("archive.npz")
        #expect(whittleError { _ = try NumPyFile.readArchive(data: data.prefix(data.count - 30), name: "cut.npz") } != nil)
        // A corrupted member payload fails the CRC check (byte 250 lies inside x.npy's data).
        var corrupt = data
        corrupt[250] ^= 0xFF
        let crc = whittleError { _ = try NumPyFile.readArchive(data: corrupt, name: "bad.npz") }
        #expect(crc?.subject == "bad.npz: x.npy")
        #expect(crc?.message.contains("CRC") == true)
    }

    @Test func memberErrorsNameArchiveAndMember() throws {
        let dir = try makeScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // An archive whose member is an object array, copied from the fixture.
        let objectBytes = try NumPyFixtures.bytes("object.npy")
        let archiveURL = dir.appendingPathComponent("raw.npz")
        try writeRawArchive(members: [("o.npy", objectBytes)], to: archiveURL)
        let error = whittleError { _ = try NumPyFile.readArchive(from: archiveURL) }
        #expect(error?.subject == "\(archiveURL.path): o.npy")
        #expect(error?.message.contains("'|O'") == true)
    }
}

/// Builds a stored ZIP archive by hand (local headers, central directory, end record), so the
/// tests can place arbitrary bytes in a member.
func writeRawArchive(members: [(String, Data)], to url: URL) throws {
    var out = Data()
    var central = Data()
    func le16(_ v: Int, _ d: inout Data) { d.append(UInt8(v & 0xFF)); d.append(UInt8((v >> 8) & 0xFF)) }
    func le32(_ v: UInt32, _ d: inout Data) { for i in 0..<4 { d.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
    for (name, bytes) in members {
        let crc = crc32(bytes)
        let offset = UInt32(out.count)
        le32(0x0403_4B50, &out); le16(20, &out); le16(0, &out); le16(0, &out); le16(0, &out); le16(0x21, &out)
        le32(crc, &out); le32(UInt32(bytes.count), &out); le32(UInt32(bytes.count), &out)
        le16(name.utf8.count, &out); le16(0, &out); out.append(contentsOf: Array(name.utf8)); out.append(bytes)
        le32(0x0201_4B50, &central); le16(20, &central); le16(20, &central); le16(0, &central); le16(0, &central)
        le16(0, &central); le16(0x21, &central); le32(crc, &central); le32(UInt32(bytes.count), &central)
        le32(UInt32(bytes.count), &central); le16(name.utf8.count, &central); le16(0, &central); le16(0, &central)
        le16(0, &central); le16(0, &central); le32(0, &central); le32(offset, &central)
        central.append(contentsOf: Array(name.utf8))
    }
    let centralOffset = UInt32(out.count)
    out.append(central)
    le32(0x0605_4B50, &out); le16(0, &out); le16(0, &out); le16(members.count, &out); le16(members.count, &out)
    le32(UInt32(central.count), &out); le32(centralOffset, &out); le16(0, &out)
    try out.write(to: url)
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit by bit.
func crc32(_ data: Data) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    return ~crc
}

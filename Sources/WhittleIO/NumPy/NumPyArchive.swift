import Foundation
import ZIPFoundation

extension NumPyFile {
    /// Reads every array of a `.npz` archive (as written by `np.savez` or
    /// `np.savez_compressed`), keyed by member name without the `.npy` suffix.
    /// Members that are not `.npy` files are ignored, as `np.load` does for arrays.
    public static func readArchive(from url: URL) throws -> [String: Tensor] {
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) {
                throw WhittleError(.io, url.path, "cannot read file (no such file)")
            }
            throw WhittleError(.invalidData, url.path, "not a valid .npz archive (\(error))")
        }
        return try readMembers(of: archive, name: url.path)
    }

    /// Reads every array of an in-memory `.npz` image; `name` is used as the subject of errors.
    public static func readArchive(data: Data, name: String) throws -> [String: Tensor] {
        let archive: Archive
        do {
            archive = try Archive(data: data, accessMode: .read)
        } catch {
            throw WhittleError(.invalidData, name, "not a valid .npz archive (\(error))")
        }
        return try readMembers(of: archive, name: name)
    }

    /// Chunk size for extracting and adding archive members.
    private static let chunkSize = 1 << 20

    private static func readMembers(of archive: Archive, name: String) throws -> [String: Tensor] {
        var arrays: [String: Tensor] = [:]
        for entry in archive where entry.type == .file && entry.path.hasSuffix(".npy") {
            let key = String(entry.path.dropLast(4))
            let memberName = "\(name): \(entry.path)"
            guard arrays[key] == nil else {
                throw WhittleError(.invalidData, memberName, "duplicate array name '\(key)' in archive")
            }
            guard entry.uncompressedSize <= UInt64(Int.max / 2) else {
                throw WhittleError(.invalidData, memberName, "member is too large (\(entry.uncompressedSize) bytes)")
            }
            var contents = Data()
            contents.reserveCapacity(Int(entry.uncompressedSize))
            do {
                // ZIPFoundation's portable CRC-32 is slow on Linux; verify with our own instead.
                _ = try archive.extract(entry, bufferSize: chunkSize, skipCRC32: true) { chunk in
                    contents.append(chunk)
                }
            } catch {
                throw WhittleError(.invalidData, memberName, "cannot extract archive member (\(error))")
            }
            let checksum = contents.withUnsafeBytes { CRC32Checksum.checksum($0) }
            guard checksum == entry.checksum else {
                throw WhittleError(.invalidData, memberName, "archive member is corrupt (CRC-32 mismatch)")
            }
            arrays[key] = try readArray(data: contents, name: memberName)
        }
        return arrays
    }

    /// Writes arrays as a `.npz` archive, atomically, members in the given order, each named
    /// `key + ".npy"`. Members are stored (like `np.savez`) or deflated when `compressed`
    /// (like `np.savez_compressed`).
    public static func writeArchive(_ arrays: [(String, Tensor)], to url: URL, compressed: Bool = false) throws {
        var seen = Set<String>()
        for (key, _) in arrays {
            guard !key.isEmpty else { throw WhittleError(.invalidArgument, url.path, "array names must not be empty") }
            guard seen.insert(key).inserted else {
                throw WhittleError(.invalidArgument, url.path, "duplicate array name '\(key)'")
            }
        }
        // Encode everything first so that a bad tensor fails before any file is touched.
        var members: [(String, Data)] = []
        members.reserveCapacity(arrays.count)
        for (key, tensor) in arrays {
            do {
                members.append((key + ".npy", try arrayData(tensor)))
            } catch let error as WhittleError {
                throw WhittleError(error.kind, "\(url.path): \(key)", error.message)
            }
        }
        try AtomicFile.write(to: url) { temporary in
            // The archive is closed when it goes out of scope, before the rename.
            let archive = try Archive(url: temporary, accessMode: .create)
            for (path, data) in members {
                try archive.addEntry(
                    with: path, type: .file, uncompressedSize: Int64(data.count),
                    modificationDate: fixedModificationDate,
                    compressionMethod: compressed ? .deflate : .none, bufferSize: chunkSize
                ) { position, size in
                    let start = Int(position)
                    return data.subdata(in: start..<(start + size))
                }
            }
        }
    }

    /// Writes arrays as a `.npz` archive with members sorted by name.
    public static func writeArchive(_ arrays: [String: Tensor], to url: URL, compressed: Bool = false) throws {
        try writeArchive(arrays.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, to: url, compressed: compressed)
    }

    /// Members get a fixed timestamp (noon, 1 January 1980, the earliest ZIP date, as NumPy
    /// uses) so that identical arrays produce identical archives.
    private static let fixedModificationDate = Date(timeIntervalSince1970: 315_576_000)
}

import Foundation

/// Reading and writing NumPy `.npy` arrays and `.npz` archives.
///
/// Supported element types: float32 (`<f4`), float64 (`<f8`), int64 (`<i8`), int32 (`<i4`),
/// uint8 (`|u1`), int8 (`|i1`) and bool (`|b1`), little- or big-endian on read, C order only.
/// Floating-point arrays load into `.float` storage (float64 narrowed to `Float`, with
/// `elementType` kept as `.float64`); integer and boolean arrays load into `.int` storage.
/// Writing uses the tensor's `elementType`, little-endian, with the header padded so the
/// data starts at a multiple of 64 bytes.
public enum NumPyFile {
    /// Supported dtypes, for error messages.
    static let supportedTypes = "float32 (<f4), float64 (<f8), int64 (<i8), int32 (<i4), uint8 (|u1), int8 (|i1) and bool (|b1)"

    // MARK: - .npy reading

    /// Reads one `.npy` file.
    public static func readArray(from url: URL) throws -> Tensor {
        let data = try readFile(url)
        return try readArray(data: data, name: url.path)
    }

    /// Decodes an in-memory `.npy` image; `name` is used as the subject of errors.
    public static func readArray(data: Data, name: String) throws -> Tensor {
        try data.withUnsafeBytes { bytes in try decode(bytes, name: name) }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws -> Tensor {
        let header = try NumPyHeader.parse(bytes, name: name)
        guard let descriptor = NumPyDescriptor(descr: header.descr) else {
            let detail = header.descr.hasSuffix("O")
                ? "object arrays are not supported"
                : "Whittle reads \(supportedTypes)"
            throw WhittleError(.invalidData, name, "unsupported dtype '\(header.descr)' (\(detail))")
        }
        let count = try elementCount(header.shape, name: name)
        if header.fortranOrder {
            throw WhittleError(
                .invalidData, name,
                "Fortran-order (column-major) arrays are not supported; save a C-order array, e.g. np.save(path, np.ascontiguousarray(a))")
        }
        let width = descriptor.elementType.byteWidth
        let (needed, overflow) = count.multipliedReportingOverflow(by: width)
        guard !overflow else { throw WhittleError(.invalidData, name, "shape \(header.shape) is too large") }
        let available = bytes.count - header.dataOffset
        guard available >= needed else {
            throw WhittleError(
                .invalidData, name,
                "truncated data: shape \(header.shape) of \(descriptor.elementType.rawValue) needs \(needed) bytes but the file holds \(available)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[header.dataOffset..<(header.dataOffset + needed)])
        return decodePayload(payload, shape: header.shape, count: count, descriptor: descriptor)
    }

    static func elementCount(_ shape: [Int], name: String) throws -> Int {
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw WhittleError(.invalidData, name, "shape \(shape) is too large") }
            count = product
        }
        return count
    }

    private static let hostIsLittleEndian = 1.littleEndian == 1

    /// Converts raw element bytes into tensor storage. `payload` holds exactly
    /// `count * byteWidth` bytes, possibly unaligned.
    static func decodePayload(
        _ payload: UnsafeRawBufferPointer, shape: [Int], count: Int, descriptor: NumPyDescriptor
    ) -> Tensor {
        let big = descriptor.bigEndian
        let type = descriptor.elementType
        switch type {
        case .float32:
            let floats = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                if big == !hostIsLittleEndian {
                    if let source = payload.baseAddress, let target = buffer.baseAddress, count > 0 {
                        UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: count * 4)
                    }
                } else {
                    for i in 0..<count {
                        let bits = payload.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)
                        buffer[i] = Float(bitPattern: bits.byteSwapped)
                    }
                }
                initialized = count
            }
            return Tensor(shape: shape, floats: floats, elementType: type)
        case .float64:
            let floats = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let raw = payload.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)
                    buffer[i] = Float(Double(bitPattern: big ? UInt64(bigEndian: raw) : UInt64(littleEndian: raw)))
                }
                initialized = count
            }
            return Tensor(shape: shape, floats: floats, elementType: type)
        case .int64:
            let ints = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
                if big == !hostIsLittleEndian {
                    if let source = payload.baseAddress, let target = buffer.baseAddress, count > 0 {
                        UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: count * 8)
                    }
                } else {
                    for i in 0..<count {
                        buffer[i] = payload.loadUnaligned(fromByteOffset: i &* 8, as: Int64.self).byteSwapped
                    }
                }
                initialized = count
            }
            return Tensor(shape: shape, ints: ints, elementType: type)
        case .int32:
            let ints = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let raw = payload.loadUnaligned(fromByteOffset: i &* 4, as: Int32.self)
                    buffer[i] = Int64(big ? Int32(bigEndian: raw) : Int32(littleEndian: raw))
                }
                initialized = count
            }
            return Tensor(shape: shape, ints: ints, elementType: type)
        case .int16, .uint16:
            let ints = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let raw = payload.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)
                    let bits = big ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw)
                    buffer[i] = type == .int16 ? Int64(Int16(bitPattern: bits)) : Int64(bits)
                }
                initialized = count
            }
            return Tensor(shape: shape, ints: ints, elementType: type)
        case .uint8, .int8, .bool:
            let ints = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let byte = payload[i]
                    switch type {
                    case .int8: buffer[i] = Int64(Int8(bitPattern: byte))
                    case .bool: buffer[i] = byte == 0 ? 0 : 1
                    default: buffer[i] = Int64(byte)
                    }
                }
                initialized = count
            }
            return Tensor(shape: shape, ints: ints, elementType: type)
        }
    }

    // MARK: - .npy writing

    /// Encodes a tensor as a `.npy` image in its `elementType`.
    ///
    /// Throws when the shape does not match the element count, or when a value cannot be
    /// represented in the element type (an integer out of range, a non-integral or
    /// non-finite float stored into an integer type).
    public static func arrayData(_ tensor: Tensor) throws -> Data {
        let type = tensor.elementType
        let count = try elementCount(tensor.shape, name: "tensor")
        let storedCount: Int
        switch tensor.storage {
        case .float(let f): storedCount = f.count
        case .int(let i): storedCount = i.count
        }
        guard storedCount == count else {
            throw WhittleError(
                .invalidArgument, "tensor",
                "shape \(tensor.shape) needs \(count) elements but the tensor holds \(storedCount)")
        }
        let header = NumPyHeader.encode(descr: NumPyDescriptor.descr(for: type), shape: tensor.shape)
        var data = Data(count: header.count + count * type.byteWidth)
        try data.withUnsafeMutableBytes { (out: UnsafeMutableRawBufferPointer) in
            out.copyBytes(from: header)
            let body = UnsafeMutableRawBufferPointer(rebasing: out[header.count...])
            try encodePayload(tensor.storage, type: type, count: count, into: body)
        }
        return data
    }

    /// Writes one tensor as a `.npy` file, atomically.
    public static func writeArray(_ tensor: Tensor, to url: URL) throws {
        let data = try arrayData(tensor)
        try AtomicFile.write(data, to: url)
    }

    /// Writes `count` elements of `storage` as little-endian `type` into `body`.
    static func encodePayload(
        _ storage: Tensor.Storage, type: ElementType, count: Int, into body: UnsafeMutableRawBufferPointer
    ) throws {
        func outOfRange(_ index: Int, _ value: String) -> WhittleError {
            WhittleError(.invalidArgument, "tensor", "element \(index) (\(value)) cannot be stored as \(type.rawValue)")
        }
        switch (storage, type) {
        case (.float(let floats), .float32):
            floats.withUnsafeBytes { source in
                if hostIsLittleEndian {
                    if let base = source.baseAddress, count > 0 {
                        body.baseAddress?.copyMemory(from: base, byteCount: count * 4)
                    }
                } else {
                    for i in 0..<count { body.storeBytes(of: floats[i].bitPattern.littleEndian, toByteOffset: i &* 4, as: UInt32.self) }
                }
            }
        case (.float(let floats), .float64):
            for i in 0..<count {
                body.storeBytes(of: Double(floats[i]).bitPattern.littleEndian, toByteOffset: i &* 8, as: UInt64.self)
            }
        case (.int(let ints), .float32):
            for i in 0..<count {
                body.storeBytes(of: Float(ints[i]).bitPattern.littleEndian, toByteOffset: i &* 4, as: UInt32.self)
            }
        case (.int(let ints), .float64):
            for i in 0..<count {
                body.storeBytes(of: Double(ints[i]).bitPattern.littleEndian, toByteOffset: i &* 8, as: UInt64.self)
            }
        case (.int(let ints), _):
            try storeIntegers(ints, count: count, type: type, into: body, outOfRange: outOfRange)
        case (.float(let floats), _):
            // Floats stored into an integer type must be whole numbers in range.
            var ints = [Int64](repeating: 0, count: count)
            for i in 0..<count {
                guard let value = Int64(exactly: floats[i]) else { throw outOfRange(i, "\(floats[i])") }
                ints[i] = value
            }
            try storeIntegers(ints, count: count, type: type, into: body, outOfRange: outOfRange)
        }
    }

    /// Stores integers as `type` (an integer or bool type), range-checked.
    private static func storeIntegers(
        _ ints: [Int64], count: Int, type: ElementType, into body: UnsafeMutableRawBufferPointer,
        outOfRange: (Int, String) -> WhittleError
    ) throws {
        switch type {
        case .int64:
            ints.withUnsafeBytes { source in
                if hostIsLittleEndian {
                    if let base = source.baseAddress, count > 0 {
                        body.baseAddress?.copyMemory(from: base, byteCount: count * 8)
                    }
                } else {
                    for i in 0..<count { body.storeBytes(of: ints[i].littleEndian, toByteOffset: i &* 8, as: Int64.self) }
                }
            }
        case .int32:
            for i in 0..<count {
                guard let v = Int32(exactly: ints[i]) else { throw outOfRange(i, "\(ints[i])") }
                body.storeBytes(of: v.littleEndian, toByteOffset: i &* 4, as: Int32.self)
            }
        case .int16:
            for i in 0..<count {
                guard let v = Int16(exactly: ints[i]) else { throw outOfRange(i, "\(ints[i])") }
                body.storeBytes(of: v.littleEndian, toByteOffset: i &* 2, as: Int16.self)
            }
        case .uint16:
            for i in 0..<count {
                guard let v = UInt16(exactly: ints[i]) else { throw outOfRange(i, "\(ints[i])") }
                body.storeBytes(of: v.littleEndian, toByteOffset: i &* 2, as: UInt16.self)
            }
        case .int8:
            for i in 0..<count {
                guard let v = Int8(exactly: ints[i]) else { throw outOfRange(i, "\(ints[i])") }
                body.storeBytes(of: UInt8(bitPattern: v), toByteOffset: i, as: UInt8.self)
            }
        case .uint8:
            for i in 0..<count {
                guard let v = UInt8(exactly: ints[i]) else { throw outOfRange(i, "\(ints[i])") }
                body.storeBytes(of: v, toByteOffset: i, as: UInt8.self)
            }
        case .bool:
            for i in 0..<count {
                body.storeBytes(of: UInt8(ints[i] == 0 ? 0 : 1), toByteOffset: i, as: UInt8.self)
            }
        case .float32, .float64:
            break  // Handled by the caller.
        }
    }

    // MARK: - Files

    /// Reads a whole file, memory-mapped when possible (the data is then copied once, from
    /// the page cache straight into the tensor).
    static func readFile(_ url: URL) throws -> Data {
        if let mapped = try? Data(contentsOf: url, options: .alwaysMapped) { return mapped }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw WhittleError(.io, url.path, "cannot read file (\(describe(error)))")
        }
    }

    static func describe(_ error: Error) -> String {
        if let whittle = error as? WhittleError { return whittle.description }
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, let code = POSIXErrorCode(rawValue: Int32(underlying.code)) {
            return String(describing: code)
        }
        return ns.localizedDescription
    }
}

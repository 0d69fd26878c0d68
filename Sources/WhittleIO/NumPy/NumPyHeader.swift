import Foundation

/// The element type and byte order named by a `.npy` header's `descr` field.
///
/// NumPy writes a type string of a byte-order character (`<` little-endian, `>` big-endian,
/// `|` not applicable, `=` native), a kind character (`f` float, `i` signed integer,
/// `u` unsigned integer, `b` boolean) and the element width in bytes.
struct NumPyDescriptor: Equatable, Sendable {
    var elementType: ElementType
    /// Whether multi-byte elements are stored most-significant byte first.
    var bigEndian: Bool

    /// The descriptor string this Whittle writes for an element type (always little-endian).
    static func descr(for elementType: ElementType) -> String {
        switch elementType {
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .int64: return "<i8"
        case .int32: return "<i4"
        case .int16: return "<i2"
        case .uint16: return "<u2"
        case .uint8: return "|u1"
        case .int8: return "|i1"
        case .bool: return "|b1"
        }
    }

    /// Parses a type string, or returns nil when Whittle does not support it.
    init?(descr: String) {
        var chars = Array(descr.unicodeScalars)
        var bigEndian = false
        if let first = chars.first, "<>|=".unicodeScalars.contains(first) {
            // `=` means native order; every platform Whittle runs on is little-endian.
            bigEndian = first == ">"
            chars.removeFirst()
        }
        guard chars.count >= 2 else { return nil }
        let kind = chars[0]
        guard let width = Int(String(String.UnicodeScalarView(chars[1...]))) else { return nil }
        switch (kind, width) {
        case ("f", 4): elementType = .float32
        case ("f", 8): elementType = .float64
        case ("i", 8): elementType = .int64
        case ("i", 4): elementType = .int32
        case ("i", 2): elementType = .int16
        case ("u", 2): elementType = .uint16
        case ("i", 1): elementType = .int8
        case ("u", 1): elementType = .uint8
        case ("b", 1): elementType = .bool
        default: return nil
        }
        // Byte order is meaningless for single-byte elements.
        self.bigEndian = width > 1 && bigEndian
    }
}

/// The parsed header of a `.npy` file.
///
/// Layout (NumPy format specification, `numpy.lib.format`): the magic string `\x93NUMPY`,
/// one byte major and one byte minor version, the header length (little-endian `UInt16` in
/// version 1.0, `UInt32` in 2.0 and 3.0), then the header: an ASCII (1.0, 2.0) or UTF-8
/// (3.0) Python dict literal with keys `descr`, `fortran_order` and `shape`, padded with
/// spaces and ended by a newline. The array data follows immediately.
struct NumPyHeader: Equatable, Sendable {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"
    /// NumPy aligns the start of the data to this many bytes.
    static let alignment = 64

    var descr: String
    var fortranOrder: Bool
    var shape: [Int]
    /// Byte offset of the first data byte.
    var dataOffset: Int
    var version: (major: UInt8, minor: UInt8)

    static func == (lhs: NumPyHeader, rhs: NumPyHeader) -> Bool {
        lhs.descr == rhs.descr && lhs.fortranOrder == rhs.fortranOrder && lhs.shape == rhs.shape
            && lhs.dataOffset == rhs.dataOffset && lhs.version == rhs.version
    }

    /// Parses the preamble and header dict of a `.npy` image.
    static func parse(_ bytes: UnsafeRawBufferPointer, name: String) throws -> NumPyHeader {
        func fail(_ message: String) -> WhittleError { WhittleError(.invalidData, name, message) }
        guard bytes.count >= 10, bytes.prefix(6).elementsEqual(magic) else {
            throw fail("not a NumPy .npy file (the file does not start with the \\x93NUMPY magic string)")
        }
        let major = bytes[6], minor = bytes[7]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy format version \(major).\(minor) (Whittle reads 1.0, 2.0 and 3.0)")
        }
        guard bytes.count - headerStart >= headerLength else {
            throw fail("truncated .npy header: it declares \(headerLength) bytes but the file has \(bytes.count - headerStart) after the preamble")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[headerStart..<(headerStart + headerLength)])
        let text: String
        if major == 3 {
            guard let decoded = String(validating: headerBytes, as: UTF8.self) else {
                throw fail("malformed .npy header: not valid UTF-8")
            }
            text = decoded
        } else {
            // Versions 1.0 and 2.0 store the header in latin-1: each byte is one code point.
            text = String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))
        }
        let dict: [String: PythonLiteral]
        do {
            var parser = PythonLiteralParser(text)
            dict = try parser.parseHeaderDict()
        } catch let error as PythonLiteralParser.Failure {
            let shown = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let excerpt = shown.count > 200 ? String(shown.prefix(200)) + "…" : shown
            throw fail("malformed .npy header dict (\(error.message)): \(excerpt)")
        }
        let descr: String
        switch dict["descr"] {
        case .string(let text)?:
            descr = text
        case let other?:
            throw fail("unsupported dtype \(other) (structured arrays are not supported)")
        case nil:
            throw fail("malformed .npy header: missing 'descr'")
        }
        guard case .bool(let fortranOrder)? = dict["fortran_order"] else {
            throw fail("malformed .npy header: missing or non-boolean 'fortran_order'")
        }
        guard case .sequence(let items)? = dict["shape"] else {
            throw fail("malformed .npy header: missing 'shape' tuple")
        }
        var shape: [Int] = []
        shape.reserveCapacity(items.count)
        for item in items {
            guard case .int(let extent) = item, extent >= 0 else {
                throw fail("malformed .npy header: shape entries must be non-negative integers, got \(PythonLiteral.sequence(items).description)")
            }
            shape.append(extent)
        }
        return NumPyHeader(
            descr: descr, fortranOrder: fortranOrder, shape: shape,
            dataOffset: headerStart + headerLength, version: (major, minor))
    }

    /// The preamble and padded header for an array, in format 1.0 when the header fits
    /// (< 65536 bytes) and 2.0 otherwise, as NumPy does.
    static func encode(descr: String, shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        let dict = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }".utf8)
        for (major, lengthBytes) in [(UInt8(1), 2), (UInt8(2), 4)] {
            let preamble = magic.count + 2 + lengthBytes
            // Pad with spaces so that preamble + dict + padding + "\n" is a multiple of 64.
            let unpadded = preamble + dict.count + 1
            let padding = (alignment - unpadded % alignment) % alignment
            let headerLength = dict.count + padding + 1
            if major == 1 && headerLength > Int(UInt16.max) { continue }
            var out = magic
            out.reserveCapacity(preamble + headerLength)
            out.append(major)
            out.append(0)
            for byte in 0..<lengthBytes { out.append(UInt8(truncatingIfNeeded: headerLength >> (8 * byte))) }
            out.append(contentsOf: dict)
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
            out.append(UInt8(ascii: "\n"))
            return out
        }
        return []  // Unreachable: format 2.0 admits headers up to 4 GiB.
    }
}

/// The subset of Python literals that appear in `.npy` headers.
enum PythonLiteral: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    /// A tuple or a list.
    case sequence([PythonLiteral])
    case dict([String: PythonLiteral])

    var description: String {
        switch self {
        case .string(let s): return "'\(s)'"
        case .int(let i): return String(i)
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .sequence(let items): return "(" + items.map(\.description).joined(separator: ", ") + ")"
        case .dict(let d): return "{" + d.keys.sorted().map { "'\($0)': \(d[$0]?.description ?? "")" }.joined(separator: ", ") + "}"
        }
    }
}

/// A recursive-descent parser for Python dict/tuple/list/str/int/bool/None literals.
struct PythonLiteralParser {
    struct Failure: Error { var message: String }

    private let scalars: [Unicode.Scalar]
    private var index = 0

    init(_ text: String) { scalars = Array(text.unicodeScalars) }

    /// Parses one dict with string keys, allowing only whitespace after it.
    mutating func parseHeaderDict() throws -> [String: PythonLiteral] {
        skipWhitespace()
        guard case .dict(let dict) = try parseValue(depth: 0) else {
            throw Failure(message: "the header is not a dict")
        }
        skipWhitespace()
        guard index == scalars.count else { throw Failure(message: "unexpected text after the dict") }
        return dict
    }

    private var current: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

    private mutating func skipWhitespace() {
        while let c = current, c == " " || c == "\t" || c == "\n" || c == "\r" { index += 1 }
    }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        skipWhitespace()
        guard current == c else { throw Failure(message: "expected '\(c)' at offset \(index)") }
        index += 1
    }

    private mutating func parseValue(depth: Int) throws -> PythonLiteral {
        guard depth < 32 else { throw Failure(message: "nesting too deep") }
        skipWhitespace()
        guard let c = current else { throw Failure(message: "unexpected end of header") }
        switch c {
        case "{": return try parseDict(depth: depth)
        case "(": return try parseSequence(close: ")", depth: depth)
        case "[": return try parseSequence(close: "]", depth: depth)
        case "'", "\"": return .string(try parseString())
        case "-", "+", "0"..."9": return .int(try parseInt())
        default:
            let start = index
            while let ch = current, ch.properties.isAlphabetic || ch == "_" { index += 1 }
            let word = String(String.UnicodeScalarView(scalars[start..<index]))
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw Failure(message: "unexpected token '\(word.isEmpty ? String(c) : word)' at offset \(start)")
            }
        }
    }

    private mutating func parseDict(depth: Int) throws -> PythonLiteral {
        index += 1  // "{"
        var result: [String: PythonLiteral] = [:]
        while true {
            skipWhitespace()
            if current == "}" { index += 1; return .dict(result) }
            guard case .string(let key) = try parseValue(depth: depth + 1) else {
                throw Failure(message: "dict keys must be strings")
            }
            try expect(":")
            guard result[key] == nil else { throw Failure(message: "duplicate key '\(key)'") }
            result[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            if current == "," { index += 1; continue }
            try expect("}")
            return .dict(result)
        }
    }

    private mutating func parseSequence(close: Unicode.Scalar, depth: Int) throws -> PythonLiteral {
        index += 1  // "(" or "["
        var items: [PythonLiteral] = []
        while true {
            skipWhitespace()
            if current == close { index += 1; return .sequence(items) }
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if current == "," { index += 1; continue }
            try expect(close)
            return .sequence(items)
        }
    }

    private mutating func parseString() throws -> String {
        guard let quote = current else { throw Failure(message: "unexpected end of header") }
        index += 1
        var out = String.UnicodeScalarView()
        while let c = current {
            index += 1
            if c == quote { return String(out) }
            if c == "\\" {
                guard let escaped = current else { break }
                index += 1
                out.append(escaped)
            } else {
                out.append(c)
            }
        }
        throw Failure(message: "unterminated string")
    }

    private mutating func parseInt() throws -> Int {
        let start = index
        if current == "-" || current == "+" { index += 1 }
        let digitsStart = index
        while let c = current, ("0"..."9").contains(c) { index += 1 }
        let text = String(String.UnicodeScalarView(scalars[start..<index]))
        guard index > digitsStart, let value = Int(text) else {
            throw Failure(message: "invalid integer '\(text)' at offset \(start)")
        }
        // Headers written by Python 2 may carry a long-integer suffix.
        if current == "L" || current == "l" { index += 1 }
        return value
    }
}

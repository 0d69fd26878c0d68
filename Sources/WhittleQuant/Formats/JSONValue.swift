import Foundation
import WhittleEngine

/// A parsed JSON document that keeps what the quantization file formats need and
/// `JSONSerialization` loses: object member order, duplicate keys, the difference between
/// `true` and `1`, and the exact text of every number (so a float32 written as its shortest
/// round-trip decimal reads back bit for bit). RFC 8259 grammar.
enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's literal text, e.g. `-0.018658`, `1e-07`, `8`.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order; duplicate keys are kept (lookups take the last one,
    /// as Python's `json` module does).
    case object([JSONMember])

    /// A member of a JSON object.
    struct JSONMember: Equatable, Sendable {
        var key: String
        var value: JSONValue
        init(_ key: String, _ value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The member named `key` (the last one when the key repeats), for objects.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    /// The JSON type name used in error messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// A short rendering of the value for error messages (long values are cut).
    var excerpt: String {
        let text = compactText
        return text.count > 60 ? String(text.prefix(57)) + "..." : text
    }

    /// The value as one line of JSON.
    var compactText: String {
        var output = ""
        JSONValue.write(self, into: &output, indent: nil, level: 0)
        return output
    }

    /// Pretty-printed JSON (2-space indentation; arrays of scalars stay on one line), ending
    /// with a newline.
    var prettyText: String {
        var output = ""
        JSONValue.write(self, into: &output, indent: "  ", level: 0)
        output += "\n"
        return output
    }

    // MARK: Numbers

    /// A JSON number for a float32, written as its shortest decimal that reads back exactly.
    /// Non-finite values have no JSON spelling; callers validate before writing.
    static func float(_ value: Float) -> JSONValue { .number(value.description) }

    /// A JSON number for an integer.
    static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    // MARK: Parsing

    /// Parses `data` as one JSON document. Errors name `source` and the line and column.
    static func parse(_ data: Data, source: String) throws -> JSONValue {
        var parser = Parser(bytes: [UInt8](data), source: source)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index < parser.bytes.count {
            throw parser.failure("unexpected text after the JSON value")
        }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        let source: String
        var index = 0

        init(bytes: [UInt8], source: String) {
            // Skip a UTF-8 byte order mark.
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
                self.bytes = Array(bytes.dropFirst(3))
            } else {
                self.bytes = bytes
            }
            self.source = source
        }

        func failure(_ message: String) -> WhittleError {
            var line = 1
            var column = 1
            for byte in bytes[..<Swift.min(index, bytes.count)] {
                if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else { column += 1 }
            }
            let found: String
            if index >= bytes.count {
                found = "end of file"
            } else {
                let scalar = Unicode.Scalar(bytes[index])
                found = "'\(scalar.isASCII && bytes[index] >= 0x20 ? String(Character(scalar)) : String(format: "\\x%02X", bytes[index]))'"
            }
            return WhittleError(.invalidData, source, "malformed JSON at line \(line), column \(column): \(message) (found \(found))")
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: String, _ value: JSONValue) throws -> JSONValue {
            let expected = Array(literal.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else {
                throw failure("expected a JSON value")
            }
            index += expected.count
            return value
        }

        mutating func parseValue(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw failure("nesting deeper than 512 levels") }
            guard index < bytes.count else { throw failure("expected a JSON value") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth)
            case UInt8(ascii: "["): return try parseArray(depth: depth)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw failure("expected a JSON value")
            }
        }

        mutating func parseObject(depth: Int) throws -> JSONValue {
            index += 1
            var members: [JSONMember] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                index += 1
                skipWhitespace()
                members.append(JSONMember(key, try parseValue(depth: depth + 1)))
                skipWhitespace()
                guard index < bytes.count else { throw failure("expected ',' or '}'") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                throw failure("expected ',' or '}'")
            }
        }

        mutating func parseArray(depth: Int) throws -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw failure("expected ',' or ']'") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(elements) }
                throw failure("expected ',' or ']'")
            }
        }

        mutating func parseHex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw failure("incomplete \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw failure("invalid hex digit in \\u escape")
                }
                value = value * 16 + digit
                index += 1
            }
            return value
        }

        mutating func parseString() throws -> String {
            index += 1
            var buffer: [UInt8] = []
            while true {
                guard index < bytes.count else { throw failure("unterminated string") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    guard let text = String(validating: buffer, as: UTF8.self) else {
                        throw failure("string is not valid UTF-8")
                    }
                    return text
                }
                if byte < 0x20 { throw failure("control character in string") }
                if byte != UInt8(ascii: "\\") {
                    buffer.append(byte)
                    index += 1
                    continue
                }
                index += 1
                guard index < bytes.count else { throw failure("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): buffer.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): buffer.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): buffer.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw failure("unpaired surrogate in \\u escape")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw failure("unpaired surrogate in \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw failure("unpaired surrogate in \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw failure("invalid \\u escape") }
                    buffer.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    index -= 1
                    throw failure("invalid escape")
                }
            }
        }

        mutating func parseNumber() throws -> JSONValue {
            let start = index
            func digits(_ parser: inout Parser) -> Int {
                let begin = parser.index
                while parser.index < parser.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.index]) {
                    parser.index += 1
                }
                return parser.index - begin
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw failure("incomplete number") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if digits(&self) == 0 {
                throw failure("expected digits")
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                if digits(&self) == 0 { throw failure("expected digits after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                if digits(&self) == 0 { throw failure("expected exponent digits") }
            }
            return .number(String(decoding: bytes[start..<index], as: UTF8.self))
        }
    }

    // MARK: Writing

    private static func isScalar(_ value: JSONValue) -> Bool {
        switch value {
        case .array, .object: return false
        default: return true
        }
    }

    private static func write(_ value: JSONValue, into output: inout String, indent: String?, level: Int) {
        switch value {
        case .null: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .number(let text): output += text
        case .string(let text): writeString(text, into: &output)
        case .array(let elements):
            if elements.isEmpty { output += "[]"; return }
            guard let indent, !elements.allSatisfy(isScalar) else {
                output += "["
                for (position, element) in elements.enumerated() {
                    if position > 0 { output += indent == nil ? "," : ", " }
                    write(element, into: &output, indent: indent, level: level)
                }
                output += "]"
                return
            }
            let inner = String(repeating: indent, count: level + 1)
            output += "[\n"
            for (position, element) in elements.enumerated() {
                output += inner
                write(element, into: &output, indent: indent, level: level + 1)
                output += position + 1 < elements.count ? ",\n" : "\n"
            }
            output += String(repeating: indent, count: level) + "]"
        case .object(let members):
            if members.isEmpty { output += "{}"; return }
            guard let indent else {
                output += "{"
                for (position, member) in members.enumerated() {
                    if position > 0 { output += "," }
                    writeString(member.key, into: &output)
                    output += ":"
                    write(member.value, into: &output, indent: nil, level: level)
                }
                output += "}"
                return
            }
            let inner = String(repeating: indent, count: level + 1)
            output += "{\n"
            for (position, member) in members.enumerated() {
                output += inner
                writeString(member.key, into: &output)
                output += ": "
                write(member.value, into: &output, indent: indent, level: level + 1)
                output += position + 1 < members.count ? ",\n" : "\n"
            }
            output += String(repeating: indent, count: level) + "}"
        }
    }

    private static func writeString(_ text: String, into output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 {
                    output += String(format: "\\u%04x", scalar.value)
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }
}

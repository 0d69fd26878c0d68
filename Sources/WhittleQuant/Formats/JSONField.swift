import WhittleEngine

/// A JSON value together with where it sits (file and key path), so every type or range
/// error can name the file, the key and the offending value in one line.
struct JSONField {
    let value: JSONValue
    /// Key path from the document root, e.g. `param_encodings["conv1.weight"][0].scale`.
    let path: String
    /// The file (or preset name) the document came from.
    let source: String

    /// An error about this field: `source: path: message`.
    func failure(_ message: String) -> WhittleError {
        WhittleError(.invalidData, source, path.isEmpty ? message : "\(path): \(message)")
    }

    /// The key path of member `key` below `path`.
    /// Identifier-like keys are appended as `.key`, optionally with an element index
    /// (`scale[1]`); any other key as `["key"]`.
    static func childPath(_ path: String, key: String) -> String {
        func isIdentifier(_ text: Substring) -> Bool {
            !text.isEmpty && !("0"..."9").contains(text.unicodeScalars.first ?? "0")
                && text.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
        }
        var plain = isIdentifier(Substring(key))
        if !plain, let bracket = key.firstIndex(of: "["), key.hasSuffix("]") {
            let index = key[key.index(after: bracket)..<key.index(before: key.endIndex)]
            plain = isIdentifier(key[..<bracket]) && !index.isEmpty && index.allSatisfy(\.isNumber)
        }
        if plain { return path.isEmpty ? key : "\(path).\(key)" }
        let quoted = key.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\(path)[\"\(quoted)\"]"
    }

    func child(_ key: String, _ value: JSONValue) -> JSONField {
        JSONField(value: value, path: JSONField.childPath(path, key: key), source: source)
    }

    /// Member `key`; nil when absent. (A JSON `null` is returned as a field holding `.null`.)
    func optional(_ key: String) -> JSONField? {
        value[key].map { child(key, $0) }
    }

    /// Member `key`, which must be present.
    func required(_ key: String) throws -> JSONField {
        guard let field = optional(key) else {
            throw WhittleError(.invalidData, source, "\(JSONField.childPath(path, key: key)): missing required field")
        }
        return field
    }

    var isNull: Bool { value == .null }

    func typeFailure(_ expected: String) -> WhittleError {
        failure("expected \(expected), got \(value.typeName) \(value.excerpt)")
    }

    /// The members of an object, as fields, in document order (duplicate keys: last wins,
    /// at the position of the first occurrence).
    func members() throws -> [(key: String, field: JSONField)] {
        guard case .object(let members) = value else { throw typeFailure("an object") }
        var order: [String] = []
        var latest: [String: JSONValue] = [:]
        for member in members {
            if latest[member.key] == nil { order.append(member.key) }
            latest[member.key] = member.value
        }
        return order.compactMap { key in latest[key].map { (key, child(key, $0)) } }
    }

    func elements() throws -> [JSONField] {
        guard case .array(let elements) = value else { throw typeFailure("an array") }
        return elements.enumerated().map { JSONField(value: $1, path: "\(path)[\($0)]", source: source) }
    }

    func string() throws -> String {
        guard case .string(let text) = value else { throw typeFailure("a string") }
        return text
    }

    /// An integer; a number with an integral value written with a fraction or exponent
    /// (`8.0`, `1e1`) is accepted.
    func int() throws -> Int {
        guard case .number(let text) = value else { throw typeFailure("an integer") }
        if let exact = Int(text) { return exact }
        if let real = Double(text), real.rounded() == real, abs(real) < 9.0e15 { return Int(real) }
        throw failure("expected an integer, got \(text)")
    }

    /// A float32 parsed directly from the literal text (no double rounding).
    func float() throws -> Float {
        guard case .number(let text) = value else { throw typeFailure("a number") }
        guard let number = Float(text) else { throw failure("expected a number, got \(text)") }
        return number
    }

    /// A boolean: JSON `true`/`false`, and (when `allowStrings`) the strings AIMET writes,
    /// "True"/"False" (case-insensitive).
    func bool(allowStrings: Bool = true) throws -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .string(let text) where allowStrings:
            switch text.lowercased() {
            case "true": return true
            case "false": return false
            default: throw failure("expected \"True\" or \"False\", got \(value.excerpt)")
            }
        default: throw typeFailure(allowStrings ? "\"True\"/\"False\" or a boolean" : "a boolean")
        }
    }
}

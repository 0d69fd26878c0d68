import Foundation
import WhittleIO

/// The profile file format: the version this build writes and how older files are brought
/// forward. A migration takes the top-level JSON object of version `v` and rewrites it in
/// place into version `v + 1` (rename keys, fill new required members, ...).
public struct ProfileFormat: Sendable {
    public typealias Migration = @Sendable (inout [String: Any]) throws -> Void

    public var currentVersion: Int
    /// Keyed by the version a migration reads.
    public var migrations: [Int: Migration]

    public init(currentVersion: Int, migrations: [Int: Migration] = [:]) {
        self.currentVersion = currentVersion
        self.migrations = migrations
    }

    /// This build's format: version `Session.formatVersion`, with every migration from version 1.
    public static let standard = ProfileFormat(currentVersion: Session.formatVersion,
                                               migrations: [1: ExportSettings.migrateFromVersion1,
                                                                2: Session.migrateFromVersion2])
}

/// What `SessionProfile.load` found.
public struct LoadedProfile: Sendable {
    public var session: Session
    /// The file the session was read from: the profile or its autosave.
    public var source: URL
    /// True when the newer autosave was used instead of the profile.
    public var recoveredFromAutosave: Bool
    /// The version of the file before migration.
    public var fileVersion: Int
    /// Things the user should hear about (e.g. an unreadable autosave that was skipped).
    public var warnings: [String]
}

/// Whether a profile has an autosave the user may want back.
public enum AutosaveStatus: Sendable, Equatable {
    case none
    /// The autosave is not newer than the profile (nothing to recover).
    case older
    /// The autosave is newer than the profile, or the profile does not exist.
    case newer(Date)
}

/// Session profiles: versioned JSON files (`{"version": 2, "model": ..., ...}`) written
/// atomically, with paths relative to the profile where possible, and an autosave sibling
/// (`NAME.autosave.json`). Loading never changes the file it reads, and every failure is one
/// line naming the file and what is wrong.
public enum SessionProfile {
    /// Writes `session` to `url` atomically and removes the profile's autosave (now stale).
    public static func save(_ session: Session, to url: URL, format: ProfileFormat = .standard) throws {
        try write(session, to: url, pathsRelativeTo: url, format: format)
        try? FileManager.default.removeItem(at: autosaveURL(for: url))
    }

    /// Writes `session` to the autosave sibling of `profile`, leaving the profile alone.
    public static func autosave(_ session: Session, for profile: URL, format: ProfileFormat = .standard) throws {
        try write(session, to: autosaveURL(for: profile), pathsRelativeTo: profile, format: format)
    }

    /// `dir/NAME.json` -> `dir/NAME.autosave.json` (other names get `.autosave.json` appended).
    public static func autosaveURL(for profile: URL) -> URL {
        let name = profile.lastPathComponent
        let base = name.lowercased().hasSuffix(".json") ? String(name.dropLast(5)) : name
        return profile.deletingLastPathComponent().appendingPathComponent("\(base).autosave.json")
    }

    /// Whether `profile` has an autosave newer than itself.
    public static func autosaveStatus(for profile: URL) -> AutosaveStatus {
        let autosave = autosaveURL(for: profile)
        guard let autosaveDate = modificationDate(autosave) else { return .none }
        guard let profileDate = modificationDate(profile) else { return .newer(autosaveDate) }
        return autosaveDate > profileDate ? .newer(autosaveDate) : .older
    }

    /// Removes the autosave of `profile`, if any.
    public static func discardAutosave(for profile: URL) {
        try? FileManager.default.removeItem(at: autosaveURL(for: profile))
    }

    /// Loads the profile at `url`. With `useNewerAutosave`, a readable autosave newer than the
    /// profile (or standing in for a missing profile) is used instead and the result says so;
    /// an unreadable autosave is skipped with a warning. Throws a `WhittleError` whose subject
    /// is the file and whose message says what is wrong; no file is modified.
    public static func load(from url: URL, useNewerAutosave: Bool = true, format: ProfileFormat = .standard) throws -> LoadedProfile {
        var warnings: [String] = []
        let autosave = autosaveURL(for: url)
        if useNewerAutosave, case .newer = autosaveStatus(for: url) {
            do {
                let (session, version) = try read(autosave, pathsRelativeTo: url, format: format)
                return LoadedProfile(session: session, source: autosave, recoveredFromAutosave: true,
                                     fileVersion: version, warnings: [])
            } catch let error as WhittleError {
                warnings.append("skipped the autosave: \(error.description)")
            }
        }
        do {
            let (session, version) = try read(url, pathsRelativeTo: url, format: format)
            return LoadedProfile(session: session, source: url, recoveredFromAutosave: false, fileVersion: version, warnings: warnings)
        } catch var error as WhittleError {
            if FileManager.default.fileExists(atPath: autosave.path), !useNewerAutosave || warnings.isEmpty {
                error.message += " (an autosave exists: \(autosave.lastPathComponent))"
            }
            throw error
        }
    }

    /// Reads and decodes one profile file (no autosave logic); paths are resolved against
    /// `base`'s directory. Returns the session and the file's version before migration.
    public static func read(_ file: URL, pathsRelativeTo base: URL, format: ProfileFormat = .standard) throws -> (Session, Int) {
        let path = file.path
        let data: Data
        do {
            data = try Data(contentsOf: file)
        } catch {
            let exists = FileManager.default.fileExists(atPath: path)
            throw WhittleError(.io, path, exists ? "cannot read the profile" : "no such profile")
        }
        let (session, version) = try decode(data, file: path, format: format)
        return (resolvingPaths(of: session, against: base), version)
    }

    /// Decodes profile JSON. `file` names the source in errors.
    public static func decode(_ data: Data, file: String, format: ProfileFormat = .standard) throws -> (Session, Int) {
        func fail(_ message: String) -> WhittleError { WhittleError(.invalidData, file, message) }
        if data.allSatisfy({ [0x20, 0x09, 0x0a, 0x0d].contains($0) }) { throw fail("empty file, not a session profile") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw fail("not valid JSON (\(ProfileErrors.syntaxLocation(of: error, in: data)))")
        }
        guard var top = object as? [String: Any] else {
            throw fail("not a session profile (expected a JSON object at the top level, found \(ProfileErrors.typeName(object)))")
        }
        guard let rawVersion = top["version"] else { throw fail("not a session profile (missing key 'version')") }
        guard let version = ProfileErrors.integer(rawVersion) else {
            throw fail("'version' must be a whole number, found \(ProfileErrors.typeName(rawVersion))")
        }
        guard version <= format.currentVersion else {
            throw fail("made by a newer Whittle (version \(version), this one reads up to \(format.currentVersion))")
        }
        guard version >= 1 else { throw fail("unknown profile version \(version)") }
        var migrated = data
        if version < format.currentVersion {
            for from in version..<format.currentVersion {
                guard let migration = format.migrations[from] else {
                    throw fail("cannot read version \(from) profiles (no migration to version \(from + 1))")
                }
                do {
                    try migration(&top)
                } catch {
                    throw fail("cannot migrate from version \(from): \(describeError(error))")
                }
                top["version"] = from + 1
            }
            migrated = try JSONSerialization.data(withJSONObject: top, options: [])
        }
        do {
            return (try makeDecoder().decode(Session.self, from: migrated), version)
        } catch let error as DecodingError {
            throw fail(ProfileErrors.describe(error))
        }
    }

    /// Encodes `session` as profile JSON (pretty, sorted keys), paths as held.
    public static func encode(_ session: Session, format: ProfileFormat = .standard) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(Envelope(version: format.currentVersion, session: session))
    }

    // MARK: - Paths

    /// `session` with its paths rewritten relative to `profile`'s directory where they share a
    /// top-level directory with it; others stay absolute.
    public static func relativizingPaths(of session: Session, to profile: URL) -> Session {
        let base = profile.deletingLastPathComponent().standardizedFileURL.path
        var copy = session
        copy.modelPath = relativePath(session.modelPath, from: base)
        copy.calibrationDataPath = session.calibrationDataPath.map { relativePath($0, from: base) }
        copy.evaluationDataPath = session.evaluationDataPath.map { relativePath($0, from: base) }
        copy.exports.directory = session.exports.directory.map { relativePath($0, from: base) }
        return copy
    }

    /// `session` with relative paths resolved against `profile`'s directory.
    public static func resolvingPaths(of session: Session, against profile: URL) -> Session {
        let base = profile.deletingLastPathComponent().standardizedFileURL
        func resolve(_ path: String) -> String {
            path.hasPrefix("/") || path.isEmpty ? path : base.appendingPathComponent(path).standardizedFileURL.path
        }
        var copy = session
        copy.modelPath = resolve(session.modelPath)
        copy.calibrationDataPath = session.calibrationDataPath.map(resolve)
        copy.evaluationDataPath = session.evaluationDataPath.map(resolve)
        copy.exports.directory = session.exports.directory.map(resolve)
        return copy
    }

    static func relativePath(_ path: String, from base: String) -> String {
        guard !path.isEmpty else { return path }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let target = absolute.split(separator: "/", omittingEmptySubsequences: true)
        let from = base.split(separator: "/", omittingEmptySubsequences: true)
        var common = 0
        while common < target.count, common < from.count, target[common] == from[common] { common += 1 }
        guard common > 0 else { return absolute }
        let ups = Array(repeating: "..", count: from.count - common)
        let parts = ups + target[common...].map(String.init)
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    // MARK: - Internals

    private struct Envelope: Encodable {
        var version: Int
        var session: Session
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: SessionCodingKey.self)
            try container.encode(version, forKey: SessionCodingKey("version"))
            try session.encode(to: encoder)
        }
    }

    private static func makeDecoder() -> JSONDecoder { JSONDecoder() }

    private static func write(_ session: Session, to url: URL, pathsRelativeTo profile: URL, format: ProfileFormat) throws {
        let data = try encode(relativizingPaths(of: session, to: profile), format: format)
        try AtomicFile.write(data, to: url)
    }

    private static func modificationDate(_ url: URL) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date
    }
}

/// Turns JSON and decoding failures into short, specific text.
enum ProfileErrors {
    /// `line L, column C` of a JSONSerialization syntax error (from its "around character N"),
    /// or the error's own text when it gives no position.
    static func syntaxLocation(of error: any Error, in data: Data) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? String(describing: error)
        if let range = text.range(of: "character "),
           let offset = Int(text[range.upperBound...].prefix { $0.isNumber }) {
            let (line, column) = lineAndColumn(offset: offset, in: data)
            var reason = text
            if let around = reason.range(of: " around character") { reason = String(reason[..<around.lowerBound]) }
            reason = reason.trimmingCharacters(in: CharacterSet(charactersIn: ". "))
            return "line \(line), column \(column): \(reason.isEmpty ? "syntax error" : lowercasedFirst(reason))"
        }
        return lowercasedFirst(text.trimmingCharacters(in: CharacterSet(charactersIn: ". ")))
    }

    /// 1-based line and column of byte `offset` (columns count characters, not bytes).
    static func lineAndColumn(offset: Int, in data: Data) -> (Int, Int) {
        let prefix = data.prefix(max(0, min(offset, data.count)))
        var line = 1
        var lineStart = prefix.startIndex
        for index in prefix.indices where prefix[index] == 0x0a {
            line += 1
            lineStart = index + 1
        }
        let column = String(decoding: prefix[lineStart...], as: UTF8.self).count + 1
        return (line, column)
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "missing key '\(key.stringValue)'" + location(context.codingPath, prefix: " in ")
        case .typeMismatch(let type, let context):
            return "wrong type" + location(context.codingPath, prefix: " at ") + ": expected \(typeName(type))" + found(context)
        case .valueNotFound(let type, let context):
            return "missing value" + location(context.codingPath, prefix: " at ") + ": expected \(typeName(type)), found null"
        case .dataCorrupted(let context):
            let reason = context.debugDescription.trimmingCharacters(in: CharacterSet(charactersIn: ". "))
            return "invalid value" + location(context.codingPath, prefix: " at ") + ": " + lowercasedFirst(reason)
        @unknown default:
            return String(describing: error)
        }
    }

    /// `snapshots[0].settings.recipe` style path.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    private static func location(_ codingPath: [any CodingKey], prefix: String) -> String {
        codingPath.isEmpty ? "" : prefix + "'\(path(codingPath))'"
    }

    private static func found(_ context: DecodingError.Context) -> String {
        // Foundation says "Expected to decode X but found Y instead."
        let text = context.debugDescription
        guard let range = text.range(of: "but found ") else { return "" }
        let rest = text[range.upperBound...].replacingOccurrences(of: " instead.", with: "")
        return ", found \(rest.trimmingCharacters(in: CharacterSet(charactersIn: ". ")))"
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "a whole number"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is Date.Type: return "an ISO 8601 date string"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array" }
            if name.hasPrefix("Dictionary") || name.contains(":") { return "an object" }
            return "an object"
        }
    }

    static func typeName(_ value: Any) -> String {
        switch value {
        case is String: return "a string"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case is NSNull: return "null"
        case let number as NSNumber:
            return isBoolean(number) ? "true or false" : "a number"
        default: return "a value"
        }
    }

    /// A JSON number that is a whole number (not a boolean, not fractional).
    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
        let double = number.doubleValue
        guard double == double.rounded(), abs(double) < 1e15 else { return nil }
        return Int(double)
    }

    /// JSONSerialization hands booleans back as NSNumbers of Objective-C type `c`.
    private static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    static func lowercasedFirst(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.lowercased() + text.dropFirst()
    }
}

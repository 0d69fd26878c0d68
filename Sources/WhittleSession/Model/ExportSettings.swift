import Foundation
import WhittleQuant

/// How the workbench writes its exports: the AIMET encodings format version and the folder
/// the Export panel (and `:export` without a path) writes into. Saved in the profile as
/// `"exports": {"encodingsVersion": "1.0.0", "directory": "out"}`.
public struct ExportSettings: Codable, Sendable, Equatable {
    /// Format of `export encodings` (AIMET 1.0.0 unless chosen otherwise).
    public var encodingsVersion: EncodingsVersion
    /// Output folder; nil writes next to the model. Held like the session's other paths
    /// (relative to the profile in the file, resolved on load).
    public var directory: String?

    public init(encodingsVersion: EncodingsVersion = .v1_0_0, directory: String? = nil) {
        self.encodingsVersion = encodingsVersion
        self.directory = directory
    }

    enum CodingKeys: String, CodingKey { case encodingsVersion, directory }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try container.decodeIfPresent(String.self, forKey: .encodingsVersion) {
            guard let version = EncodingsVersion(rawValue: text) else {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: container.codingPath + [CodingKeys.encodingsVersion],
                    debugDescription: "unknown encodings version '\(text)' (use \(ExportSettings.versionList))"))
            }
            encodingsVersion = version
        } else {
            encodingsVersion = .v1_0_0
        }
        directory = try container.decodeIfPresent(String.self, forKey: .directory)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(encodingsVersion.rawValue, forKey: .encodingsVersion)
        try container.encodeIfPresent(directory, forKey: .directory)
    }

    /// `0.6.1, 1.0.0 or 2.0.0`.
    public static var versionList: String {
        let names = EncodingsVersion.allCases.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + (names.last ?? "")
    }

    /// Profile migration 1 → 2: version 1 kept the encodings version as a free-form UI string,
    /// `ui.extra["encodings-version"]`; it moves to `exports.encodingsVersion` (and leaves
    /// `extra`). A value that is not a version stops the load with a message naming it.
    public static let migrateFromVersion1: ProfileFormat.Migration = { object in
        guard var ui = object["ui"] as? [String: Any], var extra = ui["extra"] as? [String: Any],
              let value = extra["encodings-version"] else { return }
        guard let text = value as? String, EncodingsVersion(rawValue: text) != nil else {
            throw WhittleError(.invalidData, "ui.extra.encodings-version", "'\(value)' is not an encodings version (use \(versionList))")
        }
        var exports = object["exports"] as? [String: Any] ?? [:]
        exports["encodingsVersion"] = text
        object["exports"] = exports
        extra["encodings-version"] = nil
        ui["extra"] = extra
        object["ui"] = ui
    }
}

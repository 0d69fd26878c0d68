import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that readers never see a half-written file: the content goes to a
/// temporary file in the destination directory, which is then renamed over the destination
/// (`rename(2)` is atomic within one file system). On any error the temporary file is
/// removed and the destination is left as it was.
public enum AtomicFile {
    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { temporary in
            try data.write(to: temporary)
        }
    }

    /// Calls `produce` with a temporary file URL next to `url`; when it returns, the
    /// temporary file replaces `url`. Errors thrown by `produce` are rethrown after clean-up.
    public static func write(to url: URL, _ produce: (URL) throws -> Void) throws {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(
            ".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            try produce(temporary)
            guard rename(temporary.path, url.path) == 0 else {
                let reason = String(cString: strerror(errno))
                throw WhittleError(.io, url.path, "cannot write file (\(reason))")
            }
        } catch let error as WhittleError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw WhittleError(.io, url.path, "cannot write file (\(NumPyFile.describe(error)))")
        }
    }
}

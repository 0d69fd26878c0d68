/// Errors raised by the engine and I/O, each naming where the problem is.
public struct WhittleError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case invalidModel = "invalid model"
        case unsupportedOperator = "unsupported operator"
        case shapeMismatch = "shape mismatch"
        case invalidData = "invalid data"
        case invalidArgument = "invalid argument"
        case io = "i/o error"
        case numerical = "numerical error"
        case cancelled = "cancelled"
    }

    public var kind: Kind
    /// What the error is about: a file path, a node name, a tensor name.
    public var subject: String
    public var message: String

    public init(_ kind: Kind, _ subject: String, _ message: String) {
        self.kind = kind
        self.subject = subject
        self.message = message
    }

    /// One line: `subject: message`.
    public var description: String { subject.isEmpty ? message : "\(subject): \(message)" }

    /// The same error, with a file or context prefix added to its subject.
    public func within(_ context: String) -> WhittleError {
        WhittleError(kind, subject.isEmpty ? context : "\(context): \(subject)", message)
    }
}

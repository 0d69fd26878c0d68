import Foundation
import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes Whittle graphs as ONNX models.
///
/// The model has IR version 8, imports the default domain at `graph.opsetVersion` (plus
/// version 1 of any other domain a node uses), stores initializers as little-endian
/// `raw_data` in their own element type, writes symbolic dimensions as `dim_param` and the
/// metadata as `metadata_props`. Initializers, attributes and metadata are written in name
/// order, so the same graph always gives the same bytes.
public enum ONNXExporter {
    /// IR version written into models (ONNX 1.10+; covers opsets up to 18).
    public static let irVersion: Int64 = 8

    /// Protobuf messages are limited to 2 GiB; larger models need external data.
    private static let maximumSize = Int(Int32.max)

    /// The serialized `ModelProto` for `graph`.
    public static func data(for graph: Graph, producer: String = "whittle") throws -> Data {
        let weightBytes = graph.initializers.values.reduce(0) { $0 + $1.byteCount }
        guard weightBytes < maximumSize else {
            throw WhittleError(.invalidArgument, graph.name,
                               "\(weightBytes) bytes of initializers exceed the 2 GiB ONNX protobuf limit")
        }
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = producer
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(graph.opsetVersion)
        model.opsetImport = [opset]
        let otherDomains = Set(graph.nodes.map(\.domain).filter { !$0.isEmpty && $0 != "ai.onnx" })
        for domain in otherDomains.sorted() {
            var entry = Onnx_OperatorSetIdProto()
            entry.domain = domain
            entry.version = 1
            model.opsetImport.append(entry)
        }
        model.metadataProps = graph.metadata.keys.sorted().map { key in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = graph.metadata[key] ?? ""
            return entry
        }
        model.graph = try encode(graph)
        let bytes: Data
        do {
            bytes = try model.serializedBytes()
        } catch {
            throw WhittleError(.invalidArgument, graph.name, "cannot serialize the model: \(error)")
        }
        return bytes
    }

    /// Writes `graph` to `url` atomically: the bytes go to a temporary file in the same
    /// directory, which is then renamed over the destination.
    public static func write(_ graph: Graph, to url: URL) throws {
        try AtomicFile.write(data(for: graph), to: url)
    }

    private static func encode(_ graph: Graph) throws -> Onnx_GraphProto {
        var proto = Onnx_GraphProto()
        proto.name = graph.name
        proto.node = try graph.nodes.map(encode)
        proto.initializer = try graph.initializers.keys.sorted().compactMap { name in
            guard let tensor = graph.initializers[name] else { return nil }
            return try ONNXTensorCoding.encode(tensor, name: name, label: "initializer '\(name)'")
        }
        proto.input = graph.inputs.map(encode)
        proto.output = graph.outputs.map(encode)
        return proto
    }

    private static func encode(_ node: Node) throws -> Onnx_NodeProto {
        var proto = Onnx_NodeProto()
        proto.name = node.name
        proto.opType = node.opType
        if !node.domain.isEmpty { proto.domain = node.domain }
        proto.input = node.inputs
        proto.output = node.outputs
        proto.attribute = try node.attributes.keys.sorted().compactMap { name in
            guard let value = node.attributes[name] else { return nil }
            return try encode(value, name: name, node: node)
        }
        return proto
    }

    private static func encode(_ value: Attribute, name: String, node: Node) throws -> Onnx_AttributeProto {
        var proto = Onnx_AttributeProto()
        proto.name = name
        switch value {
        case .int(let i):
            proto.type = .int
            proto.i = Int64(i)
        case .float(let f):
            proto.type = .float
            proto.f = f
        case .string(let s):
            proto.type = .string
            proto.s = Data(s.utf8)
        case .ints(let values):
            proto.type = .ints
            proto.ints = values.map { Int64($0) }
        case .floats(let values):
            proto.type = .floats
            proto.floats = values
        case .strings(let values):
            proto.type = .strings
            proto.strings = values.map { Data($0.utf8) }
        case .tensor(let tensor):
            proto.type = .tensor
            proto.t = try ONNXTensorCoding.encode(tensor, name: "", label: "attribute '\(name)' of node '\(node.name)'")
        }
        return proto
    }

    private static func encode(_ info: ValueInfo) -> Onnx_ValueInfoProto {
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = ONNXDataType.code(info.elementType)
        var shape = Onnx_TensorShapeProto()
        shape.dim = info.dimensions.map { dimension in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch dimension {
            case .fixed(let size): dim.dimValue = Int64(size)
            // An empty symbol is an unknown dimension: neither field set.
            case .symbolic(let symbol): if !symbol.isEmpty { dim.dimParam = symbol }
            }
            return dim
        }
        tensorType.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensorType
        var proto = Onnx_ValueInfoProto()
        proto.name = info.name
        proto.type = type
        return proto
    }
}

import Foundation

/// ONNX element-type numbers (`TensorProto.DataType`) and their Whittle counterparts.
enum ONNXDataType {
    static let float: Int32 = 1
    static let uint8: Int32 = 2
    static let int8: Int32 = 3
    static let uint16: Int32 = 4
    static let int16: Int32 = 5
    static let int32: Int32 = 6
    static let int64: Int32 = 7
    static let bool: Int32 = 9
    static let double: Int32 = 11

    /// The Whittle element type for an ONNX data type number, nil when unsupported.
    static func elementType(_ code: Int32) -> ElementType? {
        switch code {
        case float: return .float32
        case double: return .float64
        case int64: return .int64
        case int32: return .int32
        case int8: return .int8
        case uint8: return .uint8
        case int16: return .int16
        case uint16: return .uint16
        case bool: return .bool
        default: return nil
        }
    }

    static func code(_ type: ElementType) -> Int32 {
        switch type {
        case .float32: return float
        case .float64: return double
        case .int64: return int64
        case .int32: return int32
        case .int8: return int8
        case .uint8: return uint8
        case .int16: return int16
        case .uint16: return uint16
        case .bool: return bool
        }
    }

    /// The ONNX spelling of a data type number, for error messages.
    static func name(_ code: Int32) -> String {
        if let known = Onnx_TensorProto.DataType(rawValue: Int(code)) {
            return String(describing: known).uppercased()
        }
        return "data type \(code)"
    }
}

/// Conversion between `TensorProto` and `Tensor`.
enum ONNXTensorCoding {
    /// Decodes a tensor. `label` names it in errors (e.g. `initializer 'conv1.weight'`).
    static func decode(_ proto: Onnx_TensorProto, label: String) throws -> Tensor {
        if proto.dataLocation == .external || !proto.externalData.isEmpty {
            let location = proto.externalData.first { $0.key == "location" }?.value ?? "?"
            throw WhittleError(.invalidModel, label,
                               "data is stored in an external file ('\(location)'), which Whittle does not read; "
                               + "save the model with its data embedded (onnx.save_model(model, path, save_as_external_data=False))")
        }
        guard let type = ONNXDataType.elementType(proto.dataType) else {
            throw WhittleError(.invalidModel, label,
                               "element type \(ONNXDataType.name(proto.dataType)) is not supported "
                               + "(supported: float, double, int64, int32, int16, uint16, int8, uint8, bool)")
        }
        var shape: [Int] = []
        var count = 1
        for dim in proto.dims {
            guard dim >= 0, let size = Int(exactly: dim) else {
                throw WhittleError(.invalidModel, label, "negative dimension \(dim) in shape \(proto.dims)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { throw WhittleError(.invalidModel, label, "shape \(proto.dims) is too large") }
            count = product
            shape.append(size)
        }

        if proto.hasRawData {
            let expected = count * type.byteWidth
            guard proto.rawData.count == expected else {
                throw WhittleError(.invalidModel, label,
                                   "has \(proto.rawData.count) bytes of data, expected \(expected) for shape \(shape) of \(type.rawValue)")
            }
            return decodeRaw(proto.rawData, shape: shape, count: count, type: type)
        }

        func checkCount(_ found: Int, field: String) throws {
            guard found == count else {
                throw WhittleError(.invalidModel, label,
                                   "has \(found) values in \(field), expected \(count) for shape \(shape) of \(type.rawValue)")
            }
        }
        switch type {
        case .float32:
            try checkCount(proto.floatData.count, field: "float_data")
            return Tensor(shape: shape, floats: proto.floatData)
        case .float64:
            try checkCount(proto.doubleData.count, field: "double_data")
            return Tensor(shape: shape, floats: proto.doubleData.map { Float($0) }, elementType: .float64)
        case .int64:
            try checkCount(proto.int64Data.count, field: "int64_data")
            return Tensor(shape: shape, ints: proto.int64Data)
        case .int32, .int16, .uint16, .int8, .uint8, .bool:
            try checkCount(proto.int32Data.count, field: "int32_data")
            let values = proto.int32Data.map { type == .bool ? Int64($0 != 0 ? 1 : 0) : Int64($0) }
            return Tensor(shape: shape, ints: values, elementType: type)
        }
    }

    /// Decodes fixed-width little-endian elements; `data.count` has been checked.
    private static func decodeRaw(_ data: Data, shape: [Int], count: Int, type: ElementType) -> Tensor {
        data.withUnsafeBytes { raw -> Tensor in
            switch type {
            case .float32:
                let values = (0..<count).map {
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
                }
                return Tensor(shape: shape, floats: values)
            case .float64:
                let values = (0..<count).map {
                    Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))))
                }
                return Tensor(shape: shape, floats: values, elementType: .float64)
            case .int64:
                let values = (0..<count).map {
                    Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))
                }
                return Tensor(shape: shape, ints: values)
            case .int32:
                let values = (0..<count).map {
                    Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)))
                }
                return Tensor(shape: shape, ints: values, elementType: .int32)
            case .int8:
                return Tensor(shape: shape, ints: (0..<count).map { Int64(Int8(bitPattern: raw[$0])) }, elementType: .int8)
            case .uint8:
                return Tensor(shape: shape, ints: (0..<count).map { Int64(raw[$0]) }, elementType: .uint8)
            case .int16:
                let values = (0..<count).map {
                    Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)))
                }
                return Tensor(shape: shape, ints: values, elementType: .int16)
            case .uint16:
                let values = (0..<count).map {
                    Int64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))
                }
                return Tensor(shape: shape, ints: values, elementType: .uint16)
            case .bool:
                return Tensor(shape: shape, ints: (0..<count).map { raw[$0] != 0 ? 1 : 0 }, elementType: .bool)
            }
        }
    }

    /// Encodes a tensor as `raw_data` in its own element type (little-endian).
    /// Integer values that do not fit the element type are an error naming `label`.
    static func encode(_ tensor: Tensor, name: String, label: String) throws -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dims = tensor.shape.map { Int64($0) }
        proto.dataType = ONNXDataType.code(tensor.elementType)
        let stored: Int
        switch tensor.storage {
        case .float(let values): stored = values.count
        case .int(let values): stored = values.count
        }
        guard tensor.shape.allSatisfy({ $0 >= 0 }), tensor.count == stored else {
            throw WhittleError(.invalidArgument, label, "shape \(tensor.shape) does not match its \(stored) elements")
        }
        var bytes = Data()
        bytes.reserveCapacity(tensor.byteCount)
        switch tensor.elementType {
        case .float32:
            for value in tensor.floats { appendLittleEndian(value.bitPattern, to: &bytes) }
        case .float64:
            switch tensor.storage {
            case .float(let values): for value in values { appendLittleEndian(Double(value).bitPattern, to: &bytes) }
            case .int(let values): for value in values { appendLittleEndian(Double(value).bitPattern, to: &bytes) }
            }
        case .int64:
            for value in try integers(tensor, label: label) { appendLittleEndian(value, to: &bytes) }
        case .int32:
            for value in try integers(tensor, label: label) {
                guard let narrow = Int32(exactly: value) else { throw rangeError(value, tensor, label) }
                appendLittleEndian(narrow, to: &bytes)
            }
        case .int8:
            for value in try integers(tensor, label: label) {
                guard let narrow = Int8(exactly: value) else { throw rangeError(value, tensor, label) }
                bytes.append(UInt8(bitPattern: narrow))
            }
        case .uint8:
            for value in try integers(tensor, label: label) {
                guard let narrow = UInt8(exactly: value) else { throw rangeError(value, tensor, label) }
                bytes.append(narrow)
            }
        case .int16:
            for value in try integers(tensor, label: label) {
                guard let narrow = Int16(exactly: value) else { throw rangeError(value, tensor, label) }
                appendLittleEndian(narrow, to: &bytes)
            }
        case .uint16:
            for value in try integers(tensor, label: label) {
                guard let narrow = UInt16(exactly: value) else { throw rangeError(value, tensor, label) }
                appendLittleEndian(narrow, to: &bytes)
            }
        case .bool:
            for value in try integers(tensor, label: label) { bytes.append(value != 0 ? 1 : 0) }
        }
        proto.rawData = bytes
        return proto
    }

    /// Integer values of a tensor; float storage must hold whole numbers.
    private static func integers(_ tensor: Tensor, label: String) throws -> [Int64] {
        switch tensor.storage {
        case .int(let values): return values
        case .float(let values):
            return try values.map { value in
                guard let exact = Int64(exactly: value) else {
                    throw WhittleError(.invalidArgument, label, "value \(value) is not a whole number, the tensor is \(tensor.elementType.rawValue)")
                }
                return exact
            }
        }
    }

    private static func rangeError(_ value: Int64, _ tensor: Tensor, _ label: String) -> WhittleError {
        WhittleError(.invalidArgument, label, "value \(value) does not fit \(tensor.elementType.rawValue)")
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
}

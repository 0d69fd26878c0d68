"""Read a legacy (zip-less) PyTorch ``torch.save`` pickle into numpy arrays.

No torch import: a restricted unpickler maps torch's storage classes and
tensor-rebuild functions to small placeholders, then the raw storage bytes that
follow the pickles are read and the tensors materialised as numpy arrays.

Legacy layout: pickle(magic number), pickle(protocol version), pickle(sys info),
pickle(object, storages as persistent ids), pickle(list of storage keys), then
for every key in that order: int64 element count + raw little-endian data.
"""
import collections
import pickle
import struct

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None  # filled after the storage bytes are read


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def materialise(self):
        item = self.storage.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset:],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
        )
        return np.array(arr)  # contiguous copy


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_rest):
    return data


class _Unpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        kind, stype, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(stype.dtype, numel)
        return self.storages[key]


class _Plain(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_state_dict(path):
    """Return an ordered dict name -> numpy array."""
    with open(path, "rb") as f:
        if _Plain(f).load() != MAGIC_NUMBER:
            raise ValueError(f"{path}: not a legacy torch pickle")
        _Plain(f).load()  # protocol version
        _Plain(f).load()  # sys info (dict of plain values)
        storages = {}
        obj = _Unpickler(f, storages).load()
        keys = _Plain(f).load()
        for key in keys:
            st = storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            if count != st.numel:
                raise ValueError(f"storage {key}: {count} elements, expected {st.numel}")
            nbytes = count * st.dtype.itemsize
            buf = f.read(nbytes)
            if len(buf) != nbytes:
                raise ValueError(f"storage {key}: truncated")
            st.data = np.frombuffer(buf, dtype=st.dtype.newbyteorder("<"))
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    out = collections.OrderedDict()
    for name, value in obj.items():
        out[name] = value.materialise() if isinstance(value, _LazyTensor) else value
    return out

/// Arrays of floats too large to be worth zeroing: activations collected over a whole data
/// set (hundreds of MB for an early layer over 128 images), filled batch by batch.
public enum LargeFloatArray {
    /// An array of `count` floats with unspecified contents (the memory is not zeroed): the
    /// caller overwrites every element before reading any.
    public static func unfilled(count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}

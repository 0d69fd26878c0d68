/// `Float(Float16(x))` computed on the float32 bit pattern: round to the nearest IEEE binary16
/// value (ties to even, overflow to +/-Inf, gradual underflow to float16 subnormals) and keep
/// it as float32. Integer bit operations rather than `Float16(x)` so loops vectorise on x86-64
/// targets without F16C (where `Float16(x)` is a library call per element).
@inlinable @inline(__always)
public func roundToFloat16(_ x: Float) -> Float {
    let bits = x.bitPattern
    let sign = bits & 0x8000_0000
    let magnitude = bits & 0x7FFF_FFFF
    // Normal float16 range: drop 13 mantissa bits with round-half-to-even on the bit
    // pattern; a carry moves into the exponent correctly.
    let normal = (magnitude &+ 0x0FFF &+ ((magnitude >> 13) & 1)) & ~UInt32(0x1FFF)
    // Below 2^-14 float16 is subnormal with a fixed step 2^-24: adding 0.75 (whose float32
    // ulp is 2^-24) rounds to that step, ties to even.
    let tiny = ((Float(bitPattern: magnitude) + 0.75) - 0.75).bitPattern
    var result = magnitude < 0x3880_0000 ? tiny : normal
    // 65520 (halfway between 65504 and 65536) and above round to infinity.
    result = magnitude >= 0x477F_F000 ? 0x7F80_0000 : result
    // NaN stays NaN (quiet).
    result = magnitude > 0x7F80_0000 ? (magnitude | 0x0040_0000) : result
    return Float(bitPattern: sign | result)
}

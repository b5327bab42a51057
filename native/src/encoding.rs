//! Signature encodings (SPEC §6.4) and strict decoding (SPEC §7).
//!
//! Everything here is byte work plus point decompression; no scalar
//! multiplication or hash-to-group happens before a signature has passed
//! every check below.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;

use crate::errors::{Error, ErrorKind, Result};
use crate::keys::decode_point;

/// Tag byte of the compact format.
pub const TAG_COMPACT: u8 = 0x01;
/// Tag byte of the batchable format.
pub const TAG_BATCHABLE: u8 = 0x02;

/// The two wire formats (SPEC §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `0x01 ‖ I ‖ c_0 ‖ s_0..s_{n-1}`.
    Compact,
    /// `0x02 ‖ I ‖ c_0 ‖ s_0..s_{n-1} ‖ (L_i ‖ R_i)_{i<n}`.
    Batchable,
}

/// Signature length for a ring of `n` (SPEC §6.4): 65 + 32n or 65 + 96n.
/// `None` on arithmetic overflow (impossible for n ≤ 65536).
pub fn signature_length(n: usize, format: Format) -> Option<usize> {
    let per = match format {
        Format::Compact => 32,
        Format::Batchable => 96,
    };
    n.checked_mul(per)?.checked_add(65)
}

/// A signature that passed SPEC §7 steps 1–5. Carried L/R (batchable) are
/// kept as bytes; [`decode_carried`] performs step 6.
pub struct Decoded<'a> {
    /// Which format the bytes were.
    pub format: Format,
    /// Encoding of I.
    pub key_image_bytes: [u8; 32],
    /// Decoded I (never the identity).
    pub key_image: RistrettoPoint,
    /// c_0.
    pub c0: Scalar,
    /// s_0..s_{n-1}.
    pub s: Vec<Scalar>,
    /// Carried `L_0 ‖ R_0 ‖ …` bytes (batchable only; 64n bytes).
    pub carried: &'a [u8],
}

fn arr32(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(b);
    out
}

fn scalar_at(sig: &[u8], off: usize, name: &dyn Fn() -> String) -> Result<Scalar> {
    let bytes = sig
        .get(off..off + 32)
        .map(arr32)
        .ok_or_else(|| Error::new(ErrorKind::Length, "truncated scalar"))?;
    Option::<Scalar>::from(Scalar::from_canonical_bytes(bytes)).ok_or_else(|| {
        Error::new(
            ErrorKind::NonCanonicalScalar,
            format!(
                "{} is not a canonical scalar (value >= group order)",
                name()
            ),
        )
    })
}

/// Strict decoding, SPEC §7 steps 1–5, for a ring of `n` members.
pub fn decode(sig: &[u8], n: usize) -> Result<Decoded<'_>> {
    let compact_len = signature_length(n, Format::Compact);
    let batch_len = signature_length(n, Format::Batchable);
    // Step 1: exact length.
    let by_len = if Some(sig.len()) == compact_len {
        Format::Compact
    } else if Some(sig.len()) == batch_len {
        Format::Batchable
    } else {
        return Err(Error::new(
            ErrorKind::Length,
            format!(
                "signature length {} does not match ring of {}: expected {} (compact) or {} (batchable)",
                sig.len(),
                n,
                compact_len.unwrap_or(0),
                batch_len.unwrap_or(0)
            ),
        ));
    };
    // Steps 2-3: known tag, consistent with the length.
    let by_tag = match sig.first().copied() {
        Some(TAG_COMPACT) => Format::Compact,
        Some(TAG_BATCHABLE) => Format::Batchable,
        Some(t) => {
            return Err(Error::new(
                ErrorKind::UnknownTag,
                format!(
                    "unknown signature tag 0x{t:02x} (expected 0x01 compact or 0x02 batchable)"
                ),
            ))
        }
        None => return Err(Error::new(ErrorKind::Length, "empty signature")),
    };
    if by_tag != by_len {
        return Err(Error::new(
            ErrorKind::TagMismatch,
            format!(
                "signature tag says {:?} but its length {} is that of a {:?} signature for a ring of {}",
                by_tag,
                sig.len(),
                by_len,
                n
            ),
        ));
    }
    // Step 4: canonical scalars c_0, s_0..s_{n-1}.
    let c0 = scalar_at(sig, 33, &|| "c_0".to_string())?;
    let mut s = Vec::with_capacity(n);
    for i in 0..n {
        s.push(scalar_at(sig, 65 + 32 * i, &|| format!("response s_{i}"))?);
    }
    // Step 5: key image, not the identity, canonical.
    let key_image_bytes = arr32(sig.get(1..33).unwrap_or(&[0u8; 32]));
    if key_image_bytes == [0u8; 32] {
        return Err(Error::new(
            ErrorKind::IdentityKeyImage,
            "key image is the identity point",
        ));
    }
    let key_image = decode_point(&key_image_bytes).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidPoint,
            "key image is not a canonical ristretto255 encoding",
        )
    })?;
    let carried = match by_len {
        Format::Compact => &sig[sig.len()..],
        Format::Batchable => sig.get(65 + 32 * n..).unwrap_or(&[]),
    };
    Ok(Decoded {
        format: by_len,
        key_image_bytes,
        key_image,
        c0,
        s,
        carried,
    })
}

/// The carried encodings of (L_i, R_i) for i in 0..n.
pub fn carried_pairs(carried: &[u8]) -> impl Iterator<Item = ([u8; 32], [u8; 32])> + '_ {
    carried
        .chunks_exact(64)
        .map(|c| (arr32(&c[..32]), arr32(&c[32..])))
}

/// SPEC §7 step 6: decode every carried L_i, R_i (identity allowed).
pub fn decode_carried(carried: &[u8]) -> Result<(Vec<RistrettoPoint>, Vec<RistrettoPoint>)> {
    let n = carried.len() / 64;
    let mut ls = Vec::with_capacity(n);
    let mut rs = Vec::with_capacity(n);
    for (i, (l, r)) in carried_pairs(carried).enumerate() {
        ls.push(decode_point(&l).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidPoint,
                format!("carried L_{i} is not a canonical ristretto255 encoding"),
            )
        })?);
        rs.push(decode_point(&r).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidPoint,
                format!("carried R_{i} is not a canonical ristretto255 encoding"),
            )
        })?);
    }
    Ok((ls, rs))
}

/// Serialise a signature (SPEC §6.4). `lr` must be `Some` for batchable.
pub(crate) fn encode(
    format: Format,
    key_image: &[u8; 32],
    c0: &Scalar,
    s: &[Scalar],
    lr: &[([u8; 32], [u8; 32])],
) -> Vec<u8> {
    let n = s.len();
    let mut out = Vec::with_capacity(signature_length(n, format).unwrap_or(0));
    out.push(match format {
        Format::Compact => TAG_COMPACT,
        Format::Batchable => TAG_BATCHABLE,
    });
    out.extend_from_slice(key_image);
    out.extend_from_slice(c0.as_bytes());
    for si in s {
        out.extend_from_slice(si.as_bytes());
    }
    if format == Format::Batchable {
        for (l, r) in lr {
            out.extend_from_slice(l);
            out.extend_from_slice(r);
        }
    }
    out
}

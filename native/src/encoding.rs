//! Signature encodings and strict decoding: plain ring signatures (SPEC
//! §6.4–§6.5) and vote signatures (SPEC §7.3–§7.4).
//!
//! Everything here is byte work plus point decompression; no scalar
//! multiplication or hash-to-group happens before a signature has passed
//! every check below.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;

use crate::errors::{Error, ErrorKind, Result};
use crate::keys::decode_point;

/// Tag byte of the compact plain ring signature.
pub const TAG_COMPACT: u8 = 0x01;
/// Tag byte of the batchable plain ring signature.
pub const TAG_BATCHABLE: u8 = 0x02;
/// Tag byte of the compact vote signature.
pub const TAG_VOTE_COMPACT: u8 = 0x11;
/// Tag byte of the batchable vote signature.
pub const TAG_VOTE_BATCHABLE: u8 = 0x12;

/// The two wire formats of each scheme (SPEC §6.4, §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Responses only (`0x01` plain, `0x11` vote).
    Compact,
    /// Responses plus the carried points (`0x02` plain, `0x12` vote).
    Batchable,
}

/// Which signature scheme a byte string is decoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain bLSAG ring signature (SPEC §6).
    Plain,
    /// Vote signature: bLSAG + slot tag + DLEQ (SPEC §7).
    Vote,
}

impl Scheme {
    /// Tag byte of `format` in this scheme.
    pub fn tag(self, format: Format) -> u8 {
        match (self, format) {
            (Scheme::Plain, Format::Compact) => TAG_COMPACT,
            (Scheme::Plain, Format::Batchable) => TAG_BATCHABLE,
            (Scheme::Vote, Format::Compact) => TAG_VOTE_COMPACT,
            (Scheme::Vote, Format::Batchable) => TAG_VOTE_BATCHABLE,
        }
    }

    /// Bytes before `c_0`: the tag, I, and for votes T and the DLEQ fields.
    pub fn header_len(self, format: Format) -> usize {
        match (self, format) {
            (Scheme::Plain, _) => 33,
            (Scheme::Vote, Format::Compact) => 129, // tag I T e t
            (Scheme::Vote, Format::Batchable) => 161, // tag I T A A' t
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Plain => "signature",
            Scheme::Vote => "vote signature",
        }
    }
}

/// Plain signature length for a ring of `n` (SPEC §6.4): 65 + 32n or 65 + 96n.
/// `None` on arithmetic overflow (impossible for n ≤ 65536).
pub fn signature_length(n: usize, format: Format) -> Option<usize> {
    scheme_length(Scheme::Plain, n, format)
}

/// Vote signature length for a ring of `n` (SPEC §7.3): 161 + 32n or
/// 193 + 96n.
pub fn vote_signature_length(n: usize, format: Format) -> Option<usize> {
    scheme_length(Scheme::Vote, n, format)
}

/// Length of `format` in `scheme` for a ring of `n`.
pub fn scheme_length(scheme: Scheme, n: usize, format: Format) -> Option<usize> {
    let per = match format {
        Format::Compact => 32,
        Format::Batchable => 96,
    };
    n.checked_mul(per)?
        .checked_add(scheme.header_len(format) + 32)
}

/// A signature that passed the strict decoding steps that do not touch the
/// carried `L_i`/`R_i` (SPEC §6.5 steps 1–5, §7.4 steps 1–7 except the
/// `L_i`/`R_i`). [`decode_carried`] performs the last step.
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

/// The DLEQ part of a vote signature as carried on the wire (SPEC §7.3).
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, one per signature
pub enum DleqWire {
    /// Compact: the challenge `e` and response `t`.
    Compact {
        /// e.
        e: Scalar,
        /// t.
        t: Scalar,
    },
    /// Batchable: the commitments `A`, `A'` (decoded, identity allowed) and `t`.
    Batchable {
        /// Encoding of A.
        a_bytes: [u8; 32],
        /// Encoding of A'.
        a2_bytes: [u8; 32],
        /// A = β·H_ctx.
        a: RistrettoPoint,
        /// A' = β·G_slot.
        a2: RistrettoPoint,
        /// t.
        t: Scalar,
    },
}

/// A vote signature that passed strict decoding (SPEC §7.4) except the
/// carried `L_i`/`R_i`.
pub struct DecodedVote<'a> {
    /// The bLSAG part (format, I, c_0, s, carried L/R bytes).
    pub ring: Decoded<'a>,
    /// Encoding of the slot tag T.
    pub tag_bytes: [u8; 32],
    /// Decoded T (never the identity).
    pub tag: RistrettoPoint,
    /// e and t, or A, A' and t.
    pub dleq: DleqWire,
}

fn arr32(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(b);
    out
}

fn bytes_at(sig: &[u8], off: usize) -> [u8; 32] {
    sig.get(off..off + 32).map(arr32).unwrap_or([0u8; 32])
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

/// A point that must not be the identity (I, T): identity rule first, then
/// DECODE.
fn nonidentity_point_at(
    sig: &[u8],
    off: usize,
    kind: ErrorKind,
    what: &str,
) -> Result<([u8; 32], RistrettoPoint)> {
    let bytes = bytes_at(sig, off);
    if bytes == [0u8; 32] {
        return Err(Error::new(kind, format!("{what} is the identity point")));
    }
    let p = decode_point(&bytes).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidPoint,
            format!("{what} is not a canonical ristretto255 encoding"),
        )
    })?;
    Ok((bytes, p))
}

/// A carried point (identity allowed): DECODE only.
fn point_at(sig: &[u8], off: usize, what: &str) -> Result<([u8; 32], RistrettoPoint)> {
    let bytes = bytes_at(sig, off);
    let p = decode_point(&bytes).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidPoint,
            format!("{what} is not a canonical ristretto255 encoding"),
        )
    })?;
    Ok((bytes, p))
}

/// Steps 1–3 of strict decoding (length, tag, tag/length agreement).
fn decode_format(sig: &[u8], n: usize, scheme: Scheme) -> Result<Format> {
    let compact_len = scheme_length(scheme, n, Format::Compact);
    let batch_len = scheme_length(scheme, n, Format::Batchable);
    // Step 1: exact length.
    let by_len = if Some(sig.len()) == compact_len {
        Format::Compact
    } else if Some(sig.len()) == batch_len {
        Format::Batchable
    } else {
        return Err(Error::new(
            ErrorKind::Length,
            format!(
                "{} length {} does not match ring of {}: expected {} (compact) or {} (batchable)",
                scheme.name(),
                sig.len(),
                n,
                compact_len.unwrap_or(0),
                batch_len.unwrap_or(0)
            ),
        ));
    };
    // Steps 2-3: known tag, consistent with the length.
    let first = sig
        .first()
        .copied()
        .ok_or_else(|| Error::new(ErrorKind::Length, "empty signature"))?;
    let by_tag = if first == scheme.tag(Format::Compact) {
        Format::Compact
    } else if first == scheme.tag(Format::Batchable) {
        Format::Batchable
    } else {
        let hint = match (scheme, first) {
            (Scheme::Plain, TAG_VOTE_COMPACT | TAG_VOTE_BATCHABLE) => {
                " (this is a vote signature tag: use verify_vote)"
            }
            (Scheme::Vote, TAG_COMPACT | TAG_BATCHABLE) => {
                " (this is a plain ring signature tag: use verify)"
            }
            _ => "",
        };
        return Err(Error::new(
            ErrorKind::UnknownTag,
            format!(
                "unknown {} tag 0x{first:02x} (expected 0x{:02x} compact or 0x{:02x} batchable){hint}",
                scheme.name(),
                scheme.tag(Format::Compact),
                scheme.tag(Format::Batchable)
            ),
        ));
    };
    if by_tag != by_len {
        return Err(Error::new(
            ErrorKind::TagMismatch,
            format!(
                "{} tag says {:?} but its length {} is that of a {:?} signature for a ring of {}",
                scheme.name(),
                by_tag,
                sig.len(),
                by_len,
                n
            ),
        ));
    }
    Ok(by_len)
}

/// c_0 and s_0..s_{n-1} starting at `off` (step 4 for the ring part).
fn ring_scalars(sig: &[u8], off: usize, n: usize) -> Result<(Scalar, Vec<Scalar>)> {
    let c0 = scalar_at(sig, off, &|| "c_0".to_string())?;
    let mut s = Vec::with_capacity(n);
    for i in 0..n {
        s.push(scalar_at(sig, off + 32 + 32 * i, &|| {
            format!("response s_{i}")
        })?);
    }
    Ok((c0, s))
}

/// Strict decoding of a plain ring signature, SPEC §6.5 steps 1–5, for a
/// ring of `n` members.
pub fn decode(sig: &[u8], n: usize) -> Result<Decoded<'_>> {
    let format = decode_format(sig, n, Scheme::Plain)?;
    // Step 4: canonical scalars c_0, s_0..s_{n-1}.
    let (c0, s) = ring_scalars(sig, 33, n)?;
    // Step 5: key image, not the identity, canonical.
    let (key_image_bytes, key_image) =
        nonidentity_point_at(sig, 1, ErrorKind::IdentityKeyImage, "key image")?;
    let carried = match format {
        Format::Compact => &sig[sig.len()..],
        Format::Batchable => sig.get(65 + 32 * n..).unwrap_or(&[]),
    };
    Ok(Decoded {
        format,
        key_image_bytes,
        key_image,
        c0,
        s,
        carried,
    })
}

/// Strict decoding of a vote signature, SPEC §7.4, for a ring of `n`
/// members; the carried L_i/R_i (last step) are left to [`decode_carried`].
pub fn decode_vote(sig: &[u8], n: usize) -> Result<DecodedVote<'_>> {
    let format = decode_format(sig, n, Scheme::Vote)?;
    let body = Scheme::Vote.header_len(format);
    // Step 4: every scalar canonical, in wire order.
    let dleq_scalars = match format {
        Format::Compact => Some((
            scalar_at(sig, 65, &|| "DLEQ challenge e".to_string())?,
            scalar_at(sig, 97, &|| "DLEQ response t".to_string())?,
        )),
        Format::Batchable => None,
    };
    let t_batch = match format {
        Format::Compact => None,
        Format::Batchable => Some(scalar_at(sig, 129, &|| "DLEQ response t".to_string())?),
    };
    let (c0, s) = ring_scalars(sig, body, n)?;
    // Step 5: key image. Step 6: slot tag.
    let (key_image_bytes, key_image) =
        nonidentity_point_at(sig, 1, ErrorKind::IdentityKeyImage, "key image")?;
    let (tag_bytes, tag) = nonidentity_point_at(sig, 33, ErrorKind::IdentitySlotTag, "slot tag T")?;
    // Step 7 (batchable): A, A' (then L_i, R_i in decode_carried).
    let dleq = match (dleq_scalars, t_batch) {
        (Some((e, t)), _) => DleqWire::Compact { e, t },
        (None, Some(t)) => {
            let (a_bytes, a) = point_at(sig, 65, "DLEQ commitment A")?;
            let (a2_bytes, a2) = point_at(sig, 97, "DLEQ commitment A'")?;
            DleqWire::Batchable {
                a_bytes,
                a2_bytes,
                a,
                a2,
                t,
            }
        }
        (None, None) => return Err(Error::new(ErrorKind::Length, "unreachable")),
    };
    let carried = match format {
        Format::Compact => &sig[sig.len()..],
        Format::Batchable => sig.get(body + 32 + 32 * n..).unwrap_or(&[]),
    };
    Ok(DecodedVote {
        ring: Decoded {
            format,
            key_image_bytes,
            key_image,
            c0,
            s,
            carried,
        },
        tag_bytes,
        tag,
        dleq,
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

/// The DLEQ fields a signer emits (SPEC §7.3).
pub(crate) struct DleqOut {
    pub(crate) a: [u8; 32],
    pub(crate) a2: [u8; 32],
    pub(crate) e: Scalar,
    pub(crate) t: Scalar,
}

/// Serialise a signature (SPEC §6.4, §7.3). `lr` is used for batchable;
/// `vote` is `Some((T, dleq))` for a vote signature.
pub(crate) fn encode(
    format: Format,
    key_image: &[u8; 32],
    vote: Option<(&[u8; 32], &DleqOut)>,
    c0: &Scalar,
    s: &[Scalar],
    lr: &[([u8; 32], [u8; 32])],
) -> Vec<u8> {
    let n = s.len();
    let scheme = if vote.is_some() {
        Scheme::Vote
    } else {
        Scheme::Plain
    };
    let mut out = Vec::with_capacity(scheme_length(scheme, n, format).unwrap_or(0));
    out.push(scheme.tag(format));
    out.extend_from_slice(key_image);
    if let Some((tag, d)) = vote {
        out.extend_from_slice(tag);
        match format {
            Format::Compact => out.extend_from_slice(d.e.as_bytes()),
            Format::Batchable => {
                out.extend_from_slice(&d.a);
                out.extend_from_slice(&d.a2);
            }
        }
        out.extend_from_slice(d.t.as_bytes());
    }
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

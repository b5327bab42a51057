//! Hashing (SPEC §1.2, §2, §6.1): expand_message_xmd, hash-to-group,
//! hash-to-scalar with the length-prefix convention, and the challenge
//! transcript.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use crate::errors::{Error, ErrorKind, Result};

/// The version string every domain tag starts with.
pub const SPEC_VERSION: &str = "ringtally-v1";

/// Domain tags (SPEC §2.3).
pub mod tags {
    /// seed → secret scalar (SPEC §3).
    pub const KEYGEN: &[u8] = b"ringtally-v1:keygen";
    /// DST of the key-image base H_ctx (SPEC §4).
    pub const KEY_IMAGE_BASE: &[u8] = b"ringtally-v1:key-image-base";
    /// Ring digest (SPEC §5).
    pub const RING: &[u8] = b"ringtally-v1:ring";
    /// Transcript prehash T (SPEC §6.1).
    pub const CHALLENGE: &[u8] = b"ringtally-v1:challenge";
    /// Round challenge (SPEC §6.1).
    pub const ROUND: &[u8] = b"ringtally-v1:round";
    /// Hedged nonce seed (SPEC §6.2).
    pub const NONCE_SEED: &[u8] = b"ringtally-v1:nonce-seed";
    /// Nonce expansion (SPEC §6.2).
    pub const NONCE: &[u8] = b"ringtally-v1:nonce";
}

/// Length of a variable field as the u32 big-endian prefix (SPEC §1).
/// Fields of 2^32 bytes or more cannot be encoded and are rejected.
pub(crate) fn lp_len(field: &[u8], what: &str) -> Result<[u8; 4]> {
    u32::try_from(field.len())
        .map(u32::to_be_bytes)
        .map_err(|_| {
            Error::new(
                ErrorKind::BadArgument,
                format!("{what} is longer than 2^32-1 bytes"),
            )
        })
}

/// Absorb `lp(field)` into a SHA-512 state. Callers pass fields whose length
/// was validated with [`lp_len`] or that are compile-time constants.
pub(crate) fn update_lp(h: &mut Sha512, field: &[u8]) {
    // Constants and validated fields are < 2^32 bytes, so this never saturates
    // in practice; saturating keeps it panic-free regardless.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(field);
}

/// A SHA-512 state that has absorbed `lp(tag)`: every hash starts like this.
pub(crate) fn tagged(tag: &[u8]) -> Sha512 {
    let mut h = Sha512::new();
    update_lp(&mut h, tag);
    h
}

/// `H_s(TAG, data)` (SPEC §1.2): SHA-512 over `lp(TAG) ‖ data`, reduced wide.
pub fn hash_to_scalar(tag: &[u8], data: &[&[u8]]) -> Scalar {
    let mut h = tagged(tag);
    for d in data {
        h.update(d);
    }
    Scalar::from_hash(h)
}

/// RFC 9380 §5.3.1 expand_message_xmd with SHA-512 (SPEC §2.1).
///
/// DSTs longer than 255 bytes are rejected rather than hashed: ringtally's own
/// DSTs are short and the oversize rule is an extra code path we do not need.
pub fn expand_message_xmd(msg: &[u8], dst: &[u8], len_in_bytes: usize) -> Result<Vec<u8>> {
    const B_IN_BYTES: usize = 64;
    const S_IN_BYTES: usize = 128;
    // Step 1: ell = ceil(len_in_bytes / b_in_bytes), at most 255.
    let ell = len_in_bytes.div_ceil(B_IN_BYTES);
    if len_in_bytes == 0 || ell > 255 {
        return Err(Error::new(
            ErrorKind::BadArgument,
            format!("expand_message_xmd: len_in_bytes {len_in_bytes} must be in 1..=16320"),
        ));
    }
    let dst_len = u8::try_from(dst.len())
        .ok()
        .filter(|&l| l > 0)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::BadArgument,
                format!("DST length {} must be in 1..=255", dst.len()),
            )
        })?;
    let len_bytes = u16::try_from(len_in_bytes)
        .map_err(|_| Error::new(ErrorKind::BadArgument, "len_in_bytes exceeds 65535"))?
        .to_be_bytes();

    // Steps 2-5: b_0 = H(Z_pad ‖ msg ‖ l_i_b_str ‖ 0x00 ‖ DST ‖ len(DST)).
    let b0: [u8; B_IN_BYTES] = Sha512::new()
        .chain_update([0u8; S_IN_BYTES])
        .chain_update(msg)
        .chain_update(len_bytes)
        .chain_update([0u8])
        .chain_update(dst)
        .chain_update([dst_len])
        .finalize()
        .into();

    // Steps 6-8: b_1 = H(b_0 ‖ 1 ‖ DST'); b_i = H((b_0 XOR b_{i-1}) ‖ i ‖ DST').
    let mut out = Vec::with_capacity(ell * B_IN_BYTES);
    let mut prev = [0u8; B_IN_BYTES];
    for i in 1..=ell {
        let mut x = [0u8; B_IN_BYTES];
        for ((xi, a), b) in x.iter_mut().zip(b0.iter()).zip(prev.iter()) {
            *xi = a ^ b; // for i = 1, prev = 0 so this is b_0 itself
        }
        let counter = u8::try_from(i).unwrap_or(u8::MAX); // i ≤ ell ≤ 255
        prev = Sha512::new()
            .chain_update(x)
            .chain_update([counter])
            .chain_update(dst)
            .chain_update([dst_len])
            .finalize()
            .into();
        out.extend_from_slice(&prev);
    }
    out.truncate(len_in_bytes);
    Ok(out)
}

/// RFC 9380 hash_to_ristretto255 (SPEC §2.2): 64 uniform bytes from
/// expand_message_xmd, then the RFC 9496 element derivation.
pub fn hash_to_group(msg: &[u8], dst: &[u8]) -> Result<RistrettoPoint> {
    let uniform = expand_message_xmd(msg, dst, 64)?;
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&uniform);
    Ok(RistrettoPoint::from_uniform_bytes(&wide))
}

/// H_ctx = hash_to_group(ctx, "ringtally-v1:key-image-base") (SPEC §4).
pub fn key_image_base(ctx: &[u8]) -> RistrettoPoint {
    // The DST is a valid non-empty constant shorter than 255 bytes, so the
    // only error path of hash_to_group cannot trigger; fall back to a value
    // that can never verify rather than panicking.
    hash_to_group(ctx, tags::KEY_IMAGE_BASE).unwrap_or_default()
}

/// The per-signature challenge transcript (SPEC §6.1).
///
/// `T = SHA512(lp("ringtally-v1:challenge") ‖ lp(ctx) ‖ D ‖ I ‖ lp(m))` is
/// computed once; the round hash state with `lp("ringtally-v1:round") ‖ T`
/// absorbed is cloned for every round.
#[derive(Clone)]
pub struct Transcript {
    prehash: [u8; 64],
    round: Sha512,
}

impl Transcript {
    /// Build the transcript for (ctx, ring digest, key image, message).
    pub fn new(
        ctx: &[u8],
        ring_digest: &[u8; 64],
        key_image: &[u8; 32],
        msg: &[u8],
    ) -> Result<Self> {
        let ctx_len = lp_len(ctx, "context")?;
        let msg_len = lp_len(msg, "message")?;
        let prehash: [u8; 64] = tagged(tags::CHALLENGE)
            .chain_update(ctx_len)
            .chain_update(ctx)
            .chain_update(ring_digest)
            .chain_update(key_image)
            .chain_update(msg_len)
            .chain_update(msg)
            .finalize()
            .into();
        let mut round = tagged(tags::ROUND);
        round.update(prehash);
        Ok(Transcript { prehash, round })
    }

    /// The 64-byte prehash T (also an input of the nonce seed, SPEC §6.2).
    pub fn prehash(&self) -> &[u8; 64] {
        &self.prehash
    }

    /// `chal(L, R) = H_s("ringtally-v1:round", T ‖ L ‖ R)`.
    pub fn challenge(&self, l: &[u8; 32], r: &[u8; 32]) -> Scalar {
        let mut h = self.round.clone();
        h.update(l);
        h.update(r);
        Scalar::from_hash(h)
    }
}

//! Hashing (SPEC §1.2, §2, §6.1): expand_message_xmd, hash-to-group,
//! hash-to-scalar with the length-prefix convention, the challenge
//! transcript, and the zeroizing SHA-512 + stack wipe used for secrets (§9).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::errors::{Error, ErrorKind, Result};

/// The version string every domain tag starts with.
pub const SPEC_VERSION: &str = "ringtally-v2";

/// Domain tags (SPEC §2.3).
pub mod tags {
    /// seed → secret scalar (SPEC §3).
    pub const KEYGEN: &[u8] = b"ringtally-v2:keygen";
    /// DST of the key-image base H_ctx (SPEC §4).
    pub const KEY_IMAGE_BASE: &[u8] = b"ringtally-v2:key-image-base";
    /// DST of the slot base G_slot (SPEC §4.2).
    pub const SLOT_BASE: &[u8] = b"ringtally-v2:slot-base";
    /// Ring digest (SPEC §5).
    pub const RING: &[u8] = b"ringtally-v2:ring";
    /// Transcript prehash TR of a plain ring signature (SPEC §6.1).
    pub const CHALLENGE: &[u8] = b"ringtally-v2:challenge";
    /// Transcript prehash TR of a vote signature (SPEC §7.1).
    pub const VOTE_CHALLENGE: &[u8] = b"ringtally-v2:vote-challenge";
    /// Round challenge (SPEC §6.1).
    pub const ROUND: &[u8] = b"ringtally-v2:round";
    /// DLEQ challenge (SPEC §7.2).
    pub const DLEQ: &[u8] = b"ringtally-v2:dleq";
    /// Hedged nonce seed (SPEC §6.2).
    pub const NONCE_SEED: &[u8] = b"ringtally-v2:nonce-seed";
    /// Nonce expansion (SPEC §6.2).
    pub const NONCE: &[u8] = b"ringtally-v2:nonce";
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
/// For public inputs only; secret inputs go through [`secret_hash_to_scalar`].
pub fn hash_to_scalar(tag: &[u8], data: &[&[u8]]) -> Scalar {
    let mut h = tagged(tag);
    for d in data {
        h.update(d);
    }
    Scalar::from_hash(h)
}

/// SHA-512 initial hash value (FIPS 180-4 §5.3.5).
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// SHA-512 for secret inputs (SPEC §9): the chaining state and the pending
/// block live in this struct and are wiped on drop, and the digest is
/// written straight into a caller's (zeroizing) buffer. `sha2::Sha512`
/// (0.10) does not wipe its block buffer or state, so the buffering and
/// padding are done here and only the compression function of the pinned
/// `sha2` is used (`compress` feature; same crate version, no new code).
/// The compression function's own stack (message schedule) is covered by
/// [`with_stack_wipe`].
pub(crate) struct SecretSha512 {
    state: [u64; 8],
    block: [u8; 128],
    pos: usize,
    len: u128,
}

impl SecretSha512 {
    /// A state that has absorbed `lp(tag)`, like [`tagged`].
    pub(crate) fn tagged(tag: &[u8]) -> Self {
        let mut h = SecretSha512 {
            state: SHA512_IV,
            block: [0u8; 128],
            pos: 0,
            len: 0,
        };
        let len = u32::try_from(tag.len()).unwrap_or(u32::MAX);
        h.update(&len.to_be_bytes());
        h.update(tag);
        h
    }

    fn compress(&mut self) {
        sha2::compress512(
            &mut self.state,
            core::slice::from_ref(GenericArray::from_slice(&self.block)),
        );
        self.pos = 0;
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u128);
        while !data.is_empty() {
            let take = (128 - self.pos).min(data.len());
            self.block[self.pos..self.pos + take].copy_from_slice(&data[..take]);
            self.pos += take;
            data = &data[take..];
            if self.pos == 128 {
                self.compress();
            }
        }
    }

    /// FIPS 180-4 padding and the final compression; the digest goes to `out`.
    pub(crate) fn finalize_into(mut self, out: &mut [u8; 64]) {
        let bits = self.len.wrapping_mul(8);
        let pos = self.pos;
        self.block[pos] = 0x80;
        self.block[pos + 1..].fill(0);
        if pos >= 112 {
            self.compress();
            self.block.fill(0);
        }
        self.block[112..].copy_from_slice(&bits.to_be_bytes());
        self.compress();
        for (chunk, word) in out.chunks_exact_mut(8).zip(self.state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        // Drop wipes state and block.
    }
}

impl Drop for SecretSha512 {
    fn drop(&mut self) {
        self.state.zeroize();
        self.block.zeroize();
        self.pos = 0;
        self.len = 0;
    }
}

/// `H_s(TAG, data)` for secret inputs: [`SecretSha512`] into a zeroizing
/// buffer, then the wide reduction (SPEC §1.2, §9). Same value as
/// [`hash_to_scalar`].
pub(crate) fn secret_hash_to_scalar(tag: &[u8], data: &[&[u8]]) -> Scalar {
    let mut h = SecretSha512::tagged(tag);
    for d in data {
        h.update(d);
    }
    let mut wide = Zeroizing::new([0u8; 64]);
    h.finalize_into(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Bytes of dead stack overwritten after every operation on secrets
/// (SPEC §9). Vote signing touches about 11.5 KiB below its caller for any
/// ring size (measured by painting the stack, rings of 1, 16 and 1,024), so
/// this is a > 5× margin; `tests/secret_residue.rs` scans 192 KiB of dead
/// stack after signing for secret-derived bytes.
pub(crate) const STACK_WIPE_BYTES: usize = 64 * 1024;

#[inline(never)]
fn wipe_stack() {
    let mut buf = [0u64; STACK_WIPE_BYTES / 8];
    buf.zeroize(); // volatile writes: cannot be elided
    core::hint::black_box(&buf);
}

#[inline(never)]
fn call_outlined<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Run `f` (which handles secrets) in its own stack frames, then overwrite
/// the [`STACK_WIPE_BYTES`] of stack below the caller, where those frames
/// lived: SHA-512 message schedules, curve25519-dalek's scalar digit
/// arrays and lookup tables, scalar temporaries (SPEC §9).
pub(crate) fn with_stack_wipe<T>(f: impl FnOnce() -> T) -> T {
    let out = call_outlined(f);
    wipe_stack();
    out
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

/// H_ctx = hash_to_group(ctx, "ringtally-v2:key-image-base") (SPEC §4).
pub fn key_image_base(ctx: &[u8]) -> RistrettoPoint {
    // The DST is a valid non-empty constant shorter than 255 bytes, so the
    // only error path of hash_to_group cannot trigger; fall back to a value
    // that can never verify rather than panicking.
    hash_to_group(ctx, tags::KEY_IMAGE_BASE).unwrap_or_default()
}

/// `G_slot = hash_to_group(lp(epoch) ‖ u32be(slot), "ringtally-v2:slot-base")`
/// (SPEC §4.2).
pub fn slot_base(epoch: &[u8], slot: u32) -> Result<RistrettoPoint> {
    let len = lp_len(epoch, "epoch")?;
    let mut msg = Vec::with_capacity(8 + epoch.len());
    msg.extend_from_slice(&len);
    msg.extend_from_slice(epoch);
    msg.extend_from_slice(&slot.to_be_bytes());
    hash_to_group(&msg, tags::SLOT_BASE)
}

/// The per-signature challenge transcript (SPEC §6.1, §7.1).
///
/// `TR = SHA512(lp("ringtally-v2:challenge") ‖ lp(ctx) ‖ D ‖ I ‖ lp(m))`
/// (plain) or `SHA512(lp("ringtally-v2:vote-challenge") ‖ lp(ctx) ‖ D ‖ I ‖
/// lp(epoch) ‖ u32be(j) ‖ T ‖ lp(m))` (vote) is computed once; the round
/// hash state with `lp("ringtally-v2:round") ‖ TR` absorbed is cloned for
/// every round.
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
        Ok(Self::from_prehash(prehash))
    }

    /// Build the transcript of a vote signature (SPEC §7.1).
    pub fn new_vote(
        ctx: &[u8],
        ring_digest: &[u8; 64],
        key_image: &[u8; 32],
        epoch: &[u8],
        slot: u32,
        slot_tag: &[u8; 32],
        msg: &[u8],
    ) -> Result<Self> {
        let ctx_len = lp_len(ctx, "context")?;
        let epoch_len = lp_len(epoch, "epoch")?;
        let msg_len = lp_len(msg, "message")?;
        let prehash: [u8; 64] = tagged(tags::VOTE_CHALLENGE)
            .chain_update(ctx_len)
            .chain_update(ctx)
            .chain_update(ring_digest)
            .chain_update(key_image)
            .chain_update(epoch_len)
            .chain_update(epoch)
            .chain_update(slot.to_be_bytes())
            .chain_update(slot_tag)
            .chain_update(msg_len)
            .chain_update(msg)
            .finalize()
            .into();
        Ok(Self::from_prehash(prehash))
    }

    fn from_prehash(prehash: [u8; 64]) -> Self {
        let mut round = tagged(tags::ROUND);
        round.update(prehash);
        Transcript { prehash, round }
    }

    /// `e = H_s("ringtally-v2:dleq", TR ‖ ENCODE(A) ‖ ENCODE(A'))` (SPEC §7.2).
    pub fn dleq_challenge(&self, a: &[u8; 32], a2: &[u8; 32]) -> Scalar {
        hash_to_scalar(tags::DLEQ, &[&self.prehash, a, a2])
    }

    /// The 64-byte prehash TR (also an input of the nonce seed, SPEC §6.2).
    pub fn prehash(&self) -> &[u8; 64] {
        &self.prehash
    }

    /// `chal(L, R) = H_s("ringtally-v2:round", TR ‖ L ‖ R)`.
    pub fn challenge(&self, l: &[u8; 32], r: &[u8; 32]) -> Scalar {
        let mut h = self.round.clone();
        h.update(l);
        h.update(r);
        Scalar::from_hash(h)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_sha512_matches_sha2_for_every_split() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let msg = &data[..len];
            let want: [u8; 64] = tagged(b"t").chain_update(msg).finalize().into();
            // one update, and two updates split in the middle
            for split in [0, len / 2, len] {
                let mut h = SecretSha512::tagged(b"t");
                h.update(&msg[..split]);
                h.update(&msg[split..]);
                let mut out = [0u8; 64];
                h.finalize_into(&mut out);
                assert_eq!(out, want, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn secret_hash_to_scalar_matches_public_one() {
        for len in [0usize, 1, 63, 64, 100, 111, 112, 127, 128, 129, 300] {
            let d = vec![0xa5u8; len];
            assert_eq!(
                secret_hash_to_scalar(tags::NONCE, &[&d, b"xy"]),
                hash_to_scalar(tags::NONCE, &[&d, b"xy"])
            );
        }
    }

    #[test]
    fn slot_base_is_hash_to_group_of_lp_epoch_and_slot() {
        let want = hash_to_group(b"\x00\x00\x00\x03e-1\x00\x00\x01\x02", tags::SLOT_BASE).unwrap();
        assert_eq!(slot_base(b"e-1", 258).unwrap(), want);
        assert_ne!(slot_base(b"e-1", 259).unwrap(), want);
        assert_ne!(slot_base(b"e-2", 258).unwrap(), want);
    }
}

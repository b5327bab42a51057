//! Single-signature verification (SPEC §8.1 plain, §8.2 vote). Variable
//! time: everything here is public.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

use crate::encoding::{
    carried_pairs, decode, decode_carried, decode_vote, Decoded, DleqWire, Format,
};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{key_image_base, slot_base, Transcript};
use crate::ring::Ring;

/// 1/2 mod ℓ = (ℓ + 1)/2, little-endian. Halving (s, c) lets us compute L/2
/// and R/2 and then encode both with one `double_and_compress_batch` call,
/// which needs a single field inversion for the pair instead of one inverse
/// square root per point.
const HALF_BYTES: [u8; 32] = [
    0xf7, 0xe9, 0x7a, 0x2e, 0x8d, 0x31, 0x09, 0x2c, 0x6b, 0xce, 0x7b, 0x51, 0xef, 0x7c, 0x6f, 0x0a,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08,
];

/// 1/2 mod ℓ from the constant bytes (a canonical scalar: no inversion).
pub(crate) fn half() -> Scalar {
    Scalar::from_bytes_mod_order(HALF_BYTES)
}

/// `(ENCODE(a·P + b·Q), ENCODE(a·R + b·S))`-style pair encoder: given the
/// two halved points, encode their doubles with one shared inversion.
///
/// SECURITY: a batch encoder built on plain Montgomery batch inversion would
/// return zeros for BOTH points when one of them is the identity. A ring
/// member can force `L = 0` (`s = −c·x`) while `R ≠ 0`, and hashing zeros for
/// `R` would let it close the ring under any key image. curve25519-dalek
/// 4.1.3 (pinned) skips zero inputs in `batch_invert`, so this is defence in
/// depth: identity inputs take the plain path regardless of the dependency.
/// `tests/identity_edge.rs` exercises exactly these cases.
fn encode_doubled_pair(l2: &RistrettoPoint, r2: &RistrettoPoint) -> ([u8; 32], [u8; 32]) {
    if l2.is_identity() || r2.is_identity() {
        return (
            (l2 + l2).compress().to_bytes(),
            (r2 + r2).compress().to_bytes(),
        );
    }
    let enc = RistrettoPoint::double_and_compress_batch([l2, r2]);
    match enc.as_slice() {
        [l, r] => (l.to_bytes(), r.to_bytes()),
        _ => (
            (l2 + l2).compress().to_bytes(),
            (r2 + r2).compress().to_bytes(),
        ), // unreachable
    }
}

/// `(ENCODE(L), ENCODE(R))` for `L = s·B + c·P`, `R = s·H + c·I` (SPEC §8.1).
fn ring_step(
    s: &Scalar,
    c: &Scalar,
    p: &RistrettoPoint,
    h: &RistrettoPoint,
    i: &RistrettoPoint,
    half: &Scalar,
) -> ([u8; 32], [u8; 32]) {
    let (s2, c2) = (s * half, c * half);
    let l2 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&c2, p, &s2);
    let r2 = RistrettoPoint::vartime_multiscalar_mul([&s2, &c2], [h, i]);
    encode_doubled_pair(&l2, &r2)
}

/// The bLSAG walk of SPEC §8.1 step 2–3 on a decoded signature. For the
/// batchable format the carried encodings must equal the recomputed ones.
fn walk_ring(
    ring: &Ring,
    d: &Decoded<'_>,
    h: &RistrettoPoint,
    transcript: &Transcript,
) -> Result<()> {
    let half = half();
    let mut c = d.c0;
    let mut carried = carried_pairs(d.carried);
    for (s_i, p_i) in d.s.iter().zip(ring.points()) {
        // L_i = s_i·B + c_i·P_i ; R_i = s_i·H + c_i·I
        let (l, r) = ring_step(s_i, &c, p_i, h, &d.key_image, &half);
        if d.format == Format::Batchable {
            // Carried encodings must equal the recomputed (canonical) ones.
            // On mismatch, classify exactly as decode-first would (SPEC §6.5).
            match carried.next() {
                Some((cl, cr)) if cl == l && cr == r => {}
                _ => {
                    decode_carried(d.carried)?;
                    return Err(Error::new(
                        ErrorKind::CarriedPointMismatch,
                        "carried L_i/R_i do not match the recomputed ring equations",
                    ));
                }
            }
        }
        c = transcript.challenge(&l, &r);
    }
    if c == d.c0 {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::RingNotClosed,
            "ring signature does not verify: challenge chain does not close",
        ))
    }
}

/// Verify one plain ring signature (either format). Returns the key image.
pub fn verify(ring: &Ring, ctx: &[u8], msg: &[u8], sig: &[u8]) -> Result<[u8; 32]> {
    // SPEC §8.1 step 1: strict decoding (§6.5) before any curve arithmetic.
    let d = decode(sig, ring.len())?;
    let transcript = Transcript::new(ctx, ring.digest(), &d.key_image_bytes, msg)?;
    let h = key_image_base(ctx);
    walk_ring(ring, &d, &h, &transcript)?;
    Ok(d.key_image_bytes)
}

/// The key image `I` and slot tag `T` of an accepted vote signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VoteTags {
    /// `I = x·H_ctx`: one per key per context (double-vote detection).
    pub key_image: [u8; 32],
    /// `T = x·G_slot`: one per key per (epoch, slot) (rate limiting).
    pub slot_tag: [u8; 32],
}

/// Verify one vote signature (either format): SPEC §8.2. Returns `(I, T)`.
pub fn verify_vote(
    ring: &Ring,
    ctx: &[u8],
    epoch: &[u8],
    slot: u32,
    msg: &[u8],
    sig: &[u8],
) -> Result<VoteTags> {
    // Step 1: strict decoding (§7.4) before any curve arithmetic.
    let v = decode_vote(sig, ring.len())?;
    let d = &v.ring;
    let transcript = Transcript::new_vote(
        ctx,
        ring.digest(),
        &d.key_image_bytes,
        epoch,
        slot,
        &v.tag_bytes,
        msg,
    )?;
    let h = key_image_base(ctx);
    let g = slot_base(epoch, slot)?;
    // Step 2: the bLSAG ring (which also classifies carried L_i/R_i).
    walk_ring(ring, d, &h, &transcript)?;
    // Step 3: the DLEQ proof log_H(I) = log_G(T).
    let ok = match v.dleq {
        DleqWire::Compact { e, t } => {
            // A = t·H + e·I, A' = t·G + e·T; e must equal H_s(dleq, TR ‖ A ‖ A').
            let half = half();
            let (t2, e2) = (t * half, e * half);
            let a_half = RistrettoPoint::vartime_multiscalar_mul([&t2, &e2], [&h, &d.key_image]);
            let a2_half = RistrettoPoint::vartime_multiscalar_mul([&t2, &e2], [&g, &v.tag]);
            let (a, a2) = encode_doubled_pair(&a_half, &a2_half);
            transcript.dleq_challenge(&a, &a2) == e
        }
        DleqWire::Batchable {
            a_bytes,
            a2_bytes,
            a,
            a2,
            t,
        } => {
            // e = H_s(dleq, TR ‖ A ‖ A'); A = t·H + e·I and A' = t·G + e·T.
            let e = transcript.dleq_challenge(&a_bytes, &a2_bytes);
            RistrettoPoint::vartime_multiscalar_mul([&t, &e], [&h, &d.key_image]) == a
                && RistrettoPoint::vartime_multiscalar_mul([&t, &e], [&g, &v.tag]) == a2
        }
    };
    if ok {
        Ok(VoteTags {
            key_image: d.key_image_bytes,
            slot_tag: v.tag_bytes,
        })
    } else {
        Err(Error::new(
            ErrorKind::DleqFailed,
            "vote signature does not verify: the slot tag's DLEQ proof fails",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::half;
    use curve25519_dalek::scalar::Scalar;

    #[test]
    fn half_is_the_inverse_of_two() {
        assert_eq!(half(), Scalar::from(2u64).invert());
        assert_eq!(half() + half(), Scalar::ONE);
        assert_eq!(
            Scalar::from_canonical_bytes(super::HALF_BYTES)
                .is_some()
                .unwrap_u8(),
            1
        );
    }
}

//! Single-signature verification (SPEC §8.1). Variable time: everything
//! here is public.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

use crate::encoding::{carried_pairs, decode, decode_carried, Format};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{key_image_base, Transcript};
use crate::ring::Ring;

/// 1/2 mod ℓ. Halving (s, c) lets us compute L/2 and R/2 and then encode
/// both with one `double_and_compress_batch` call, which needs a single field
/// inversion for the pair instead of one inverse square root per point.
fn inv2() -> Scalar {
    Scalar::from(2u64).invert()
}

/// `(ENCODE(L), ENCODE(R))` for `L = s·B + c·P`, `R = s·H + c·I` (SPEC §8.1).
///
/// SECURITY: a batch encoder built on plain Montgomery batch inversion would
/// return zeros for BOTH points when one of them is the identity. A ring
/// member can force `L = 0` (`s = −c·x`) while `R ≠ 0`, and hashing zeros for
/// `R` would let it close the ring under any key image. curve25519-dalek
/// 4.1.3 (pinned) skips zero inputs in `batch_invert`, so this is defence in
/// depth: identity inputs take the plain path regardless of the dependency.
/// `tests/identity_edge.rs` exercises exactly these cases.
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
    if l2.is_identity() || r2.is_identity() {
        return (
            (l2 + l2).compress().to_bytes(),
            (r2 + r2).compress().to_bytes(),
        );
    }
    let enc = RistrettoPoint::double_and_compress_batch([&l2, &r2]);
    match enc.as_slice() {
        [l, r] => (l.to_bytes(), r.to_bytes()),
        _ => (
            (l2 + l2).compress().to_bytes(),
            (r2 + r2).compress().to_bytes(),
        ), // unreachable
    }
}

/// Verify one signature (either format). Returns the key image on success.
pub fn verify(ring: &Ring, ctx: &[u8], msg: &[u8], sig: &[u8]) -> Result<[u8; 32]> {
    let n = ring.len();
    // SPEC §8.1 step 1: strict decoding (§7) before any curve arithmetic.
    let d = decode(sig, n)?;
    let transcript = Transcript::new(ctx, ring.digest(), &d.key_image_bytes, msg)?;
    let h = key_image_base(ctx);
    let half = inv2();

    // Step 2: walk the ring from c_0.
    let mut c = d.c0;
    let mut carried = carried_pairs(d.carried);
    for (s_i, p_i) in d.s.iter().zip(ring.points()) {
        // L_i = s_i·B + c_i·P_i ; R_i = s_i·H + c_i·I
        let (l, r) = ring_step(s_i, &c, p_i, &h, &d.key_image, &half);
        if d.format == Format::Batchable {
            // Carried encodings must equal the recomputed (canonical) ones.
            // On mismatch, classify exactly as decode-first would (SPEC §7).
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
    // Step 3: the ring must close.
    if c == d.c0 {
        Ok(d.key_image_bytes)
    } else {
        Err(Error::new(
            ErrorKind::RingNotClosed,
            "ring signature does not verify: challenge chain does not close",
        ))
    }
}

//! Single-signature verification (SPEC §8.1). Variable time: everything
//! here is public.

use curve25519_dalek::ristretto::{RistrettoPoint, VartimeRistrettoPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{VartimeMultiscalarMul, VartimePrecomputedMultiscalarMul};

use crate::encoding::{carried_pairs, decode, decode_carried, Format};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{key_image_base, Transcript};
use crate::ring::Ring;

/// Below this ring size building a precomputed table for (H, I) costs more
/// than it saves (measured; see bench/bench_crypto.py).
const PRECOMP_MIN_RING: usize = 4;

/// Computes `s·H + c·I`, with a precomputed table when the ring is big enough.
enum RPair {
    Table(Box<VartimeRistrettoPrecomputation>),
    Plain(RistrettoPoint, RistrettoPoint),
}

impl RPair {
    fn new(h: RistrettoPoint, i: RistrettoPoint, n: usize) -> Self {
        if n >= PRECOMP_MIN_RING {
            RPair::Table(Box::new(VartimeRistrettoPrecomputation::new([h, i])))
        } else {
            RPair::Plain(h, i)
        }
    }

    fn mul(&self, s: &Scalar, c: &Scalar) -> RistrettoPoint {
        match self {
            RPair::Table(t) => t.vartime_multiscalar_mul([s, c]),
            RPair::Plain(h, i) => RistrettoPoint::vartime_multiscalar_mul([s, c], [h, i]),
        }
    }
}

/// Verify one signature (either format). Returns the key image on success.
pub fn verify(ring: &Ring, ctx: &[u8], msg: &[u8], sig: &[u8]) -> Result<[u8; 32]> {
    let n = ring.len();
    // SPEC §8.1 step 1: strict decoding (§7) before any curve arithmetic.
    let d = decode(sig, n)?;
    let transcript = Transcript::new(ctx, ring.digest(), &d.key_image_bytes, msg)?;
    let h = key_image_base(ctx);
    let rpair = RPair::new(h, d.key_image, n);

    // Step 2: walk the ring from c_0.
    let mut c = d.c0;
    let mut carried = carried_pairs(d.carried);
    for (s_i, p_i) in d.s.iter().zip(ring.points()) {
        // L_i = s_i·B + c_i·P_i ; R_i = s_i·H + c_i·I
        let l = RistrettoPoint::vartime_double_scalar_mul_basepoint(&c, p_i, s_i)
            .compress()
            .to_bytes();
        let r = rpair.mul(s_i, &c).compress().to_bytes();
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

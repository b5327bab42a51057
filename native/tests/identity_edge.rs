//! Identity L_i / R_i edge cases (SPEC §7 step 6 allows them).
//!
//! The single verifier encodes (L_i, R_i) together with
//! `double_and_compress_batch`. A batch encoder that returned zeros for both
//! points when one is the identity would let a ring member j force L_j = 0
//! (s_j = −c_j·x_j) with R_j ≠ 0 and close the ring under an arbitrary key
//! image (a double vote). curve25519-dalek 4.1.3 handles zeros, and
//! verify.rs guards identity inputs anyway; these tests pin the behaviour:
//! the attack is rejected, and legitimate identity L/R are accepted, by
//! both the single and the batch verifier.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_arguments)]

mod common;

use common::*;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use ringcrypto::batch::{verify_batch, BatchItem};
use ringcrypto::hash::{key_image_base, Transcript};
use ringcrypto::{verify, Ring, SecretKey};

const CTX: &[u8] = b"submission-7";
const MSG: &[u8] = b"approve";

/// How step `k` of the walk is filled in.
enum Step {
    /// Decoy with this response.
    Decoy(Scalar),
    /// s_k = −c_k·x (so L_k = 0) for a key we know.
    ZeroL(Scalar),
}

/// Build a signature by hand. The walk starts at `start` with challenge
/// `c_start`, runs over every index once (including `start`), and the
/// response of `start` is fixed up at the end by `close` (given c_start'
/// recomputed). `hash_zero_at` replaces the hashed (L, R) of that index by
/// zeros, emulating the buggy encoder.
fn build(
    ring: &Ring,
    image: RistrettoPoint,
    start: usize,
    first_pair: ([u8; 32], [u8; 32]),
    steps: &dyn Fn(usize) -> Step,
    close: &dyn Fn(&Scalar) -> Scalar,
    hash_zero_at: Option<usize>,
    batchable: bool,
) -> Vec<u8> {
    let n = ring.len();
    let h = key_image_base(CTX);
    let ib = image.compress().to_bytes();
    let t = Transcript::new(CTX, ring.digest(), &ib, MSG).unwrap();
    let mut s = vec![Scalar::ZERO; n];
    let mut c = vec![Scalar::ZERO; n];
    let mut lr = vec![([0u8; 32], [0u8; 32]); n];
    lr[start] = first_pair;
    let hashed = |i: usize, pair: ([u8; 32], [u8; 32])| {
        if hash_zero_at == Some(i) {
            ([0; 32], [0; 32])
        } else {
            pair
        }
    };
    let mut cur = t.challenge(&hashed(start, first_pair).0, &hashed(start, first_pair).1);
    for step in 1..n {
        let k = (start + step) % n;
        c[k] = cur;
        s[k] = match steps(k) {
            Step::Decoy(v) => v,
            Step::ZeroL(x) => -(cur * x),
        };
        let l = s[k] * RistrettoPoint::mul_base(&Scalar::ONE) + cur * ring.points()[k];
        let r = s[k] * h + cur * image;
        lr[k] = (l.compress().to_bytes(), r.compress().to_bytes());
        let hp = hashed(k, lr[k]);
        cur = t.challenge(&hp.0, &hp.1);
    }
    c[start] = cur;
    s[start] = close(&cur);
    let mut out = vec![if batchable { 2u8 } else { 1u8 }];
    out.extend_from_slice(&ib);
    out.extend_from_slice(c[0].as_bytes());
    for si in &s {
        out.extend_from_slice(si.as_bytes());
    }
    if batchable {
        for (l, r) in &lr {
            out.extend_from_slice(l);
            out.extend_from_slice(r);
        }
    }
    out
}

fn setup() -> (Vec<SecretKey>, Ring) {
    keys_and_ring(77_000, 5)
}

fn x_of(k: &SecretKey) -> Scalar {
    scalar(k.export_secret().as_ref())
}

fn check(ring: &Ring, sig: &[u8]) -> (bool, bool) {
    let single = verify(ring, CTX, MSG, sig).is_ok();
    let item = [BatchItem {
        ring,
        ctx: CTX,
        msg: MSG,
        sig,
    }];
    let batch = verify_batch(&item, Some(1)).unwrap()[0].is_ok();
    (single, batch)
}

#[test]
fn forged_key_image_via_zero_l_is_rejected() {
    let (keys, ring) = setup();
    let j = 3;
    let xj = x_of(key_at(&keys, &ring, j));
    let fake_image = RistrettoPoint::mul_base(&Scalar::from(424242u64)); // not x_j·H
    for batchable in [false, true] {
        // The attacker walks from j+1 with c_{j+1} = chal(0, 0) (what the buggy
        // encoder hashes at j), then sets s_j = −c_j·x_j so that L_j = 0.
        let sig = build(
            &ring,
            fake_image,
            j,
            ([0; 32], [0; 32]),
            &|k| Step::Decoy(Scalar::from(1000 + k as u64)),
            &|c_j| -(c_j * xj),
            None,
            batchable,
        );
        assert_eq!(check(&ring, &sig), (false, false), "batchable={batchable}");
    }
}

#[test]
fn valid_signature_with_identity_l_and_r_at_signer_is_accepted() {
    // α = 0: L_π = R_π = identity, a valid (if absurd) signature.
    let (keys, ring) = setup();
    let pi = 1;
    let k = key_at(&keys, &ring, pi);
    let x = x_of(k);
    let image = key_image_base(CTX) * x;
    for batchable in [false, true] {
        let sig = build(
            &ring,
            image,
            pi,
            ([0; 32], [0; 32]),
            &|k| Step::Decoy(Scalar::from(77 + k as u64)),
            &|c| -(c * x),
            None,
            batchable,
        );
        assert_eq!(check(&ring, &sig), (true, true), "batchable={batchable}");
    }
}

#[test]
fn valid_signature_with_identity_l_only_at_decoy_is_accepted() {
    // A signer who also knows a decoy's key can make L_i = 0 with R_i ≠ 0 at
    // that decoy; the signature is valid under the spec and must verify.
    let (keys, ring) = setup();
    let (pi, other) = (0, 2);
    let x = x_of(key_at(&keys, &ring, pi));
    let x_other = x_of(key_at(&keys, &ring, other));
    let h = key_image_base(CTX);
    let image = h * x;
    let alpha = Scalar::from(99u64);
    let first = (
        RistrettoPoint::mul_base(&alpha).compress().to_bytes(),
        (h * alpha).compress().to_bytes(),
    );
    for batchable in [false, true] {
        let sig = build(
            &ring,
            image,
            pi,
            first,
            &|k| {
                if k == other {
                    Step::ZeroL(x_other)
                } else {
                    Step::Decoy(Scalar::from(5 + k as u64))
                }
            },
            &|c| alpha - c * x,
            None,
            batchable,
        );
        let o = 65 + 32 * 5 + 64 * other;
        if batchable {
            assert_eq!(&sig[o..o + 32], &[0u8; 32], "L_other is the identity");
            assert_ne!(&sig[o + 32..o + 64], &[0u8; 32], "R_other is not");
        }
        assert_eq!(check(&ring, &sig), (true, true), "batchable={batchable}");
    }
}

#[test]
fn buggy_zero_hash_variant_of_valid_signature_is_rejected() {
    // Same as above but hashing zeros for the decoy pair (the buggy
    // encoder's view): under the spec this signature is invalid.
    let (keys, ring) = setup();
    let (pi, other) = (0, 2);
    let x = x_of(key_at(&keys, &ring, pi));
    let x_other = x_of(key_at(&keys, &ring, other));
    let h = key_image_base(CTX);
    let alpha = Scalar::from(99u64);
    let first = (
        RistrettoPoint::mul_base(&alpha).compress().to_bytes(),
        (h * alpha).compress().to_bytes(),
    );
    let sig = build(
        &ring,
        h * x,
        pi,
        first,
        &|k| {
            if k == other {
                Step::ZeroL(x_other)
            } else {
                Step::Decoy(Scalar::from(5 + k as u64))
            }
        },
        &|c| alpha - c * x,
        Some(other),
        false,
    );
    assert_eq!(check(&ring, &sig), (false, false));
}

//! Shared helpers for the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use ringcrypto::{Ring, SecretKey};
use sha2::{Digest, Sha512};

/// The test-seed derivation of SPEC §10.
pub fn seed(k: u32) -> [u8; 32] {
    let d = Sha512::digest(format!("ringtally-v2 test seed {k}").as_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(&d[..32]);
    s
}

/// The test-randomness derivation of SPEC §10.
pub fn z(label: &str) -> [u8; 32] {
    let d = Sha512::digest(format!("ringtally-v2 test z {label}").as_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(&d[..32]);
    s
}

pub fn key(k: u32) -> SecretKey {
    SecretKey::from_seed(&seed(k)).unwrap()
}

/// Keys `first..first+n` and their ring.
pub fn keys_and_ring(first: u32, n: usize) -> (Vec<SecretKey>, Ring) {
    let keys: Vec<SecretKey> = (first..first + n as u32).map(key).collect();
    let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.public_key()).collect();
    let ring = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
    (keys, ring)
}

/// The key sitting at canonical index `i` of `ring`.
pub fn key_at<'a>(keys: &'a [SecretKey], ring: &Ring, i: usize) -> &'a SecretKey {
    let pk = ring.members()[i];
    keys.iter().find(|k| k.public_key() == pk).unwrap()
}

pub fn point(b: &[u8]) -> RistrettoPoint {
    CompressedRistretto(b.try_into().unwrap())
        .decompress()
        .unwrap()
}

pub fn scalar(b: &[u8]) -> Scalar {
    Scalar::from_canonical_bytes(b.try_into().unwrap()).unwrap()
}

/// A valid, non-identity point unrelated to anything else.
pub fn other_point(tag: u8) -> [u8; 32] {
    (RistrettoPoint::mul_base(&Scalar::from(1000u64 + tag as u64)))
        .compress()
        .to_bytes()
}

/// ℓ, the group order, little-endian (a non-canonical scalar).
pub const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// 2^255 − 1 (non-canonical scalar, and a non-canonical point encoding).
pub const MAX255: [u8; 32] = {
    let mut a = [0xffu8; 32];
    a[31] = 0x7f;
    a
};

/// Bit 255 set on a valid encoding: the non-canonical alias of a point.
pub fn bit255_alias(enc: &[u8; 32]) -> [u8; 32] {
    let mut a = *enc;
    a[31] |= 0x80;
    a
}

/// Deterministic test scalars (not the spec's nonces).
pub fn test_scalar(label: &str, j: usize) -> Scalar {
    let d = Sha512::digest(format!("ringtally-v2 test scalar {label} {j}").as_bytes());
    Scalar::from_bytes_mod_order_wide(&d.into())
}

/// What the reference vote builder should produce.
pub struct VoteRecipe<'a> {
    pub ring: &'a Ring,
    pub ctx: &'a [u8],
    pub epoch: &'a [u8],
    pub slot: u32,
    pub msg: &'a [u8],
    /// bLSAG signer secret and its canonical index (None: keyless forgery,
    /// the chain is closed by hashing and no equation holds).
    pub signer: Option<(Scalar, usize)>,
    /// Key image to put in the signature (None: x·H_ctx of the signer).
    pub key_image: Option<RistrettoPoint>,
    /// Slot tag to claim (None: x·G_slot of the signer).
    pub tag: Option<RistrettoPoint>,
    /// Secret used in the DLEQ response t = β − e·dleq_x (None: the signer's).
    pub dleq_x: Option<Scalar>,
    pub batchable: bool,
    pub label: &'a str,
}

/// A straightforward, variable-time implementation of SPEC §7 written from
/// the text (independent of src/sign.rs), able to build honest votes and
/// the dishonest ones the tests need (stolen tags, keyless forgeries).
pub fn reference_vote(r: &VoteRecipe<'_>) -> Vec<u8> {
    use ringcrypto::hash::{key_image_base, slot_base, Transcript};
    let n = r.ring.len();
    let h = key_image_base(r.ctx);
    let g = slot_base(r.epoch, r.slot).unwrap();
    let x = r
        .signer
        .map(|(x, _)| x)
        .unwrap_or(test_scalar(r.label, 9999));
    let image = r.key_image.unwrap_or(h * x);
    let tag = r.tag.unwrap_or(g * x);
    let ib = image.compress().to_bytes();
    let tb = tag.compress().to_bytes();
    let tr =
        Transcript::new_vote(r.ctx, r.ring.digest(), &ib, r.epoch, r.slot, &tb, r.msg).unwrap();
    let mut s = vec![Scalar::ZERO; n];
    let mut lr = vec![([0u8; 32], [0u8; 32]); n];
    let c0;
    match r.signer {
        Some((x, pi)) => {
            let alpha = test_scalar(r.label, 0);
            let mut c = vec![Scalar::ZERO; n];
            lr[pi] = (
                RistrettoPoint::mul_base(&alpha).compress().to_bytes(),
                (h * alpha).compress().to_bytes(),
            );
            let mut cn = tr.challenge(&lr[pi].0, &lr[pi].1);
            for step in 1..n {
                let i = (pi + step) % n;
                c[i] = cn;
                s[i] = test_scalar(r.label, i + 1);
                let l = RistrettoPoint::mul_base(&s[i]) + r.ring.points()[i] * c[i];
                let rr = h * s[i] + image * c[i];
                lr[i] = (l.compress().to_bytes(), rr.compress().to_bytes());
                cn = tr.challenge(&lr[i].0, &lr[i].1);
            }
            c[pi] = cn;
            s[pi] = alpha - c[pi] * x;
            c0 = c[0];
        }
        None => {
            // Keyless: arbitrary L_i, R_i and s_i; c_0 closes the chain.
            for i in 0..n {
                s[i] = test_scalar(r.label, 100 + i);
                lr[i] = (
                    RistrettoPoint::mul_base(&test_scalar(r.label, 200 + i))
                        .compress()
                        .to_bytes(),
                    RistrettoPoint::mul_base(&test_scalar(r.label, 300 + i))
                        .compress()
                        .to_bytes(),
                );
            }
            c0 = tr.challenge(&lr[n - 1].0, &lr[n - 1].1);
        }
    }
    let beta = test_scalar(r.label, 5000);
    let a = (h * beta).compress().to_bytes();
    let a2 = (g * beta).compress().to_bytes();
    let e = tr.dleq_challenge(&a, &a2);
    let t = beta - e * r.dleq_x.unwrap_or(x);
    let mut out = vec![if r.batchable { 0x12 } else { 0x11 }];
    out.extend_from_slice(&ib);
    out.extend_from_slice(&tb);
    if r.batchable {
        out.extend_from_slice(&a);
        out.extend_from_slice(&a2);
    } else {
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(t.as_bytes());
    out.extend_from_slice(c0.as_bytes());
    for si in &s {
        out.extend_from_slice(si.as_bytes());
    }
    if r.batchable {
        for (l, rr) in &lr {
            out.extend_from_slice(l);
            out.extend_from_slice(rr);
        }
    }
    out
}

/// A keyless forged batchable *plain* signature whose hash chain closes
/// (arbitrary L_i, R_i, s_i, I): passes the batch verifier's hash-chain
/// stage, fails every curve equation.
pub fn forged_plain_batchable(ring: &Ring, ctx: &[u8], msg: &[u8], label: &str) -> Vec<u8> {
    use ringcrypto::hash::Transcript;
    let n = ring.len();
    let ib = RistrettoPoint::mul_base(&test_scalar(label, 1))
        .compress()
        .to_bytes();
    let tr = Transcript::new(ctx, ring.digest(), &ib, msg).unwrap();
    let mut out = vec![0x02];
    out.extend_from_slice(&ib);
    let lr: Vec<([u8; 32], [u8; 32])> = (0..n)
        .map(|i| {
            (
                RistrettoPoint::mul_base(&test_scalar(label, 200 + i))
                    .compress()
                    .to_bytes(),
                RistrettoPoint::mul_base(&test_scalar(label, 300 + i))
                    .compress()
                    .to_bytes(),
            )
        })
        .collect();
    let c0 = tr.challenge(&lr[n - 1].0, &lr[n - 1].1);
    out.extend_from_slice(c0.as_bytes());
    for i in 0..n {
        out.extend_from_slice(test_scalar(label, 100 + i).as_bytes());
    }
    for (l, r) in &lr {
        out.extend_from_slice(l);
        out.extend_from_slice(r);
    }
    out
}

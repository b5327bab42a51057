//! Shared helpers for the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use ringcrypto::{Ring, SecretKey};
use sha2::{Digest, Sha512};

/// The test-seed derivation of SPEC §10.
pub fn seed(k: u32) -> [u8; 32] {
    let d = Sha512::digest(format!("ringtally-v1 test seed {k}").as_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(&d[..32]);
    s
}

/// The test-randomness derivation of SPEC §10.
pub fn z(label: &str) -> [u8; 32] {
    let d = Sha512::digest(format!("ringtally-v1 test z {label}").as_bytes());
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

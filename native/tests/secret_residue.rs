//! SPEC §9 secret hygiene, checked the way the review found the problem:
//! read the dead stack after signing and look for secret-derived bytes
//! (the key x, the nonce seed, the wide hash outputs and reduced nonces
//! α = k_0 and β = k_{n+1}). A control run shows that the scanner does find
//! such bytes after hashing them with the ordinary `sha2::Sha512`.
//!
//! Reading uninitialised stack is done with volatile reads through a raw
//! pointer; the library itself forbids `unsafe`, this test needs it.
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

mod common;

use common::*;
use curve25519_dalek::scalar::Scalar;
use ringcrypto::hash::{tags, Transcript};
use ringcrypto::hazmat::{sign_vote_with_randomness, sign_with_randomness};
use ringcrypto::{Format, SecretKey};
use sha2::{Digest, Sha512};

const SCAN: usize = 192 * 1024;

fn lp(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// Overwrite the stack below the caller (removes the test's own copies).
#[inline(never)]
fn clear_test_stack() {
    let mut buf = [0u8; SCAN + 16 * 1024];
    for b in buf.iter_mut() {
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    core::hint::black_box(&buf);
}

/// Copy the dead stack below the caller's frame.
#[inline(never)]
fn dump_dead_stack() -> Vec<u8> {
    let mut buf = core::mem::MaybeUninit::<[u8; SCAN]>::uninit();
    let p = buf.as_mut_ptr() as *const u8;
    let out: Vec<u8> = (0..SCAN)
        .map(|i| unsafe { core::ptr::read_volatile(p.add(i)) })
        .collect();
    core::hint::black_box(&buf);
    out
}

/// Every 8-byte piece of every needle that occurs anywhere in `hay`.
fn hits(hay: &[u8], needles: &[(&str, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, n) in needles {
        for (k, piece) in n.chunks_exact(8).enumerate() {
            if hay.windows(8).any(|w| w == piece) {
                found.push(format!("{name}[{}..{}]", 8 * k, 8 * k + 8));
            }
        }
    }
    found
}

/// The secret-derived values of one signature, recomputed from the inputs.
fn needles(key: &SecretKey, tr: &[u8; 64], z: &[u8; 32], n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let x = key.export_secret().to_vec();
    let seed: Vec<u8> = Sha512::new()
        .chain_update(lp(tags::NONCE_SEED))
        .chain_update(&x)
        .chain_update(z)
        .chain_update(tr)
        .finalize()
        .to_vec();
    let wide = |j: u32| -> Vec<u8> {
        Sha512::new()
            .chain_update(lp(tags::NONCE))
            .chain_update(&seed)
            .chain_update(j.to_be_bytes())
            .finalize()
            .to_vec()
    };
    let reduce = |w: &[u8]| {
        Scalar::from_bytes_mod_order_wide(&w.try_into().unwrap())
            .to_bytes()
            .to_vec()
    };
    let (w0, wb) = (wide(0), wide(n as u32 + 1));
    vec![
        ("x", x.clone()),
        ("nonce seed", seed.clone()),
        ("wide k_0", w0.clone()),
        ("alpha", reduce(&w0)),
        ("wide k_n+1", wb.clone()),
        ("beta", reduce(&wb)),
    ]
}

#[inline(never)]
fn sign_vote_here(key: &SecretKey, ring: &ringcrypto::Ring, z: &[u8; 32]) -> Vec<u8> {
    sign_vote_with_randomness(key, ring, b"ctx", b"epoch-7", 3, b"msg", z, Format::Compact).unwrap()
}

#[inline(never)]
fn sign_plain_here(key: &SecretKey, ring: &ringcrypto::Ring, z: &[u8; 32]) -> Vec<u8> {
    sign_with_randomness(key, ring, b"ctx", b"msg", z, Format::Batchable).unwrap()
}

#[inline(never)]
fn hash_with_plain_sha2(needle_input: &[u8]) -> [u8; 64] {
    Sha512::new().chain_update(needle_input).finalize().into()
}

#[test]
fn no_secret_residue_on_the_dead_stack_after_signing() {
    for n in [1usize, 4, 16] {
        let (keys, ring) = keys_and_ring(77_000 + n as u32, n);
        let key = key_at(&keys, &ring, n / 2);
        let z = z("residue");
        let image = key.key_image(b"ctx");
        let tag = key.slot_tag(b"epoch-7", 3).unwrap();
        let tr_vote =
            Transcript::new_vote(b"ctx", ring.digest(), &image, b"epoch-7", 3, &tag, b"msg")
                .unwrap();
        let tr_plain = Transcript::new(b"ctx", ring.digest(), &image, b"msg").unwrap();
        let vote_needles = needles(key, tr_vote.prehash(), &z, n);
        let mut plain_needles = needles(key, tr_plain.prehash(), &z, n);
        plain_needles.truncate(4); // no β in a plain signature

        clear_test_stack();
        let sig = sign_vote_here(key, &ring, &z);
        let dump = dump_dead_stack();
        assert!(!sig.is_empty());
        assert_eq!(
            hits(&dump, &vote_needles),
            Vec::<String>::new(),
            "vote, n={n}"
        );

        clear_test_stack();
        let sig = sign_plain_here(key, &ring, &z);
        let dump = dump_dead_stack();
        assert!(!sig.is_empty());
        assert_eq!(
            hits(&dump, &plain_needles),
            Vec::<String>::new(),
            "plain, n={n}"
        );

        // Key images, slot tags and key loading multiply by / derive x too.
        clear_test_stack();
        let _ = core::hint::black_box(key.key_image(b"other"));
        let _ = core::hint::black_box(key.slot_tag(b"e", 9).unwrap());
        let again = SecretKey::from_bytes(&key.export_secret()[..]).unwrap();
        let dump = dump_dead_stack();
        drop(again);
        let x_only = &vote_needles[..1];
        // export_secret() itself returned x through this frame; only dead
        // stack below it is scanned, where the library ran.
        assert_eq!(hits(&dump, x_only), Vec::<String>::new(), "key ops, n={n}");
    }
}

#[test]
fn from_seed_leaves_no_residue() {
    let seed = seed(4242);
    let key = SecretKey::from_seed(&seed).unwrap();
    let x = key.export_secret().to_vec();
    let mut wide_in = lp(tags::KEYGEN);
    wide_in.extend_from_slice(&seed);
    let wide = Sha512::digest(&wide_in).to_vec();
    let needles = vec![("x", x), ("wide", wide)];
    clear_test_stack();
    let k2 = SecretKey::from_seed(&seed).unwrap();
    let dump = dump_dead_stack();
    drop(k2);
    assert_eq!(hits(&dump, &needles), Vec::<String>::new());
}

#[test]
fn control_the_scanner_finds_plain_sha2_residue() {
    // Hash a secret-looking 64-byte value with sha2::Sha512 (which does not
    // wipe its buffer): the scanner must find a piece of it afterwards.
    let secret: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    clear_test_stack();
    let out = hash_with_plain_sha2(&secret);
    let dump = dump_dead_stack();
    assert_ne!(out, [0u8; 64]);
    assert!(
        !hits(&dump, &[("secret", secret)]).is_empty(),
        "the scanner should see sha2's unwiped block buffer"
    );
}

//! Round trips for ring sizes 1..=64, every signer index for several sizes,
//! key-image properties, and proptest over random sizes/indices/messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::prelude::*;
use ringcrypto::batch::{verify_batch, BatchItem};
use ringcrypto::hazmat::sign_with_randomness;
use ringcrypto::{sign, signature_length, verify, Format, Ring};

fn indices_for(n: usize) -> Vec<usize> {
    if n <= 8 || n == 16 || n == 33 || n == 64 {
        (0..n).collect()
    } else {
        let mut v = vec![0, n / 3, n / 2, n - 1];
        v.dedup();
        v
    }
}

#[test]
fn round_trip_sizes_1_to_64_all_formats() {
    for n in 1..=64usize {
        let (keys, ring) = keys_and_ring(1000 + 100 * n as u32, n);
        let ctx = format!("submission-{n}");
        for pi in indices_for(n) {
            let k = key_at(&keys, &ring, pi);
            let msg = format!("vote {n}/{pi}");
            for format in [Format::Compact, Format::Batchable] {
                let sig = sign(k, &ring, ctx.as_bytes(), msg.as_bytes(), format).unwrap();
                assert_eq!(Some(sig.len()), signature_length(n, format));
                let image = verify(&ring, ctx.as_bytes(), msg.as_bytes(), &sig)
                    .unwrap_or_else(|e| panic!("n={n} pi={pi} {format:?}: {e}"));
                assert_eq!(image, k.key_image(ctx.as_bytes()));
            }
        }
    }
}

#[test]
fn batch_round_trip_every_index() {
    for n in [1usize, 2, 3, 5, 16] {
        let (keys, ring) = keys_and_ring(7000 + n as u32 * 50, n);
        let sigs: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .flat_map(|pi| {
                let k = key_at(&keys, &ring, pi);
                [Format::Compact, Format::Batchable].map(|f| {
                    let msg = format!("m{pi}{f:?}").into_bytes();
                    (msg.clone(), sign(k, &ring, b"ctx", &msg, f).unwrap())
                })
            })
            .collect();
        let items: Vec<BatchItem<'_>> = sigs
            .iter()
            .map(|(m, s)| BatchItem {
                ring: &ring,
                ctx: b"ctx",
                msg: m,
                sig: s,
            })
            .collect();
        for threads in [None, Some(1), Some(2)] {
            let res = verify_batch(&items, threads).unwrap();
            assert!(res.iter().all(|r| r.is_ok()), "n={n} threads={threads:?}");
        }
    }
}

#[test]
fn key_image_same_across_rings_and_distinct_across_contexts() {
    let (keys, ring_a) = keys_and_ring(1, 5);
    let signer = &keys[2];
    let mut others: Vec<[u8; 32]> = (50..60).map(|i| key(i).public_key()).collect();
    others.push(signer.public_key());
    let ring_b = Ring::new(others.iter().map(|p| &p[..]), 1024).unwrap();
    assert_ne!(ring_a.digest(), ring_b.digest());

    let sa = sign(signer, &ring_a, b"sub-1", b"yes", Format::Compact).unwrap();
    let sb = sign(signer, &ring_b, b"sub-1", b"no", Format::Batchable).unwrap();
    let ia = verify(&ring_a, b"sub-1", b"yes", &sa).unwrap();
    let ib = verify(&ring_b, b"sub-1", b"no", &sb).unwrap();
    assert_eq!(ia, ib, "same key + context must link across rings");

    let sc = sign(signer, &ring_a, b"sub-2", b"yes", Format::Compact).unwrap();
    let ic = verify(&ring_a, b"sub-2", b"yes", &sc).unwrap();
    assert_ne!(ia, ic, "different contexts must give different key images");

    let other = sign(&keys[3], &ring_a, b"sub-1", b"yes", Format::Compact).unwrap();
    assert_ne!(verify(&ring_a, b"sub-1", b"yes", &other).unwrap(), ia);
}

#[test]
fn hedged_signing_is_randomized_and_deterministic_with_fixed_z() {
    let (keys, ring) = keys_and_ring(300, 4);
    let k = key_at(&keys, &ring, 1);
    let a = sign(k, &ring, b"c", b"m", Format::Compact).unwrap();
    let b = sign(k, &ring, b"c", b"m", Format::Compact).unwrap();
    assert_ne!(a, b, "fresh randomness per signature");
    let z = z("fixed");
    let c = sign_with_randomness(k, &ring, b"c", b"m", &z, Format::Compact).unwrap();
    let d = sign_with_randomness(k, &ring, b"c", b"m", &z, Format::Compact).unwrap();
    assert_eq!(c, d);
    // The compact signature is the prefix of the batchable one (same z).
    let e = sign_with_randomness(k, &ring, b"c", b"m", &z, Format::Batchable).unwrap();
    assert_eq!(&c[1..], &e[1..c.len()]);
}

#[test]
fn batchable_converts_to_compact_by_design() {
    // SPEC §6.4 "format malleability": stripping L/R and retagging yields the
    // compact signature with the same key image. Dedupe by key image only.
    let (keys, ring) = keys_and_ring(310, 6);
    let k = key_at(&keys, &ring, 4);
    let b = sign(k, &ring, b"c", b"m", Format::Batchable).unwrap();
    let mut c = b[..signature_length(6, Format::Compact).unwrap()].to_vec();
    c[0] = 0x01;
    assert_eq!(
        verify(&ring, b"c", b"m", &c).unwrap(),
        verify(&ring, b"c", b"m", &b).unwrap()
    );
}

#[test]
fn not_in_ring_is_malformed() {
    let (_, ring) = keys_and_ring(400, 3);
    let outsider = key(9999);
    let e = sign(&outsider, &ring, b"c", b"m", Format::Compact).unwrap_err();
    assert_eq!(e.kind(), ringcrypto::ErrorKind::NotInRing);
    assert_eq!(e.class(), ringcrypto::ErrorClass::MalformedInput);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn prop_round_trip_and_any_byte_flip_rejected(
        n in 1usize..12,
        pi_seed in any::<usize>(),
        batchable in any::<bool>(),
        ctx in proptest::collection::vec(any::<u8>(), 0..40),
        msg in proptest::collection::vec(any::<u8>(), 0..200),
        flip_pos in any::<usize>(),
        flip_bit in 0u8..8,
    ) {
        let (keys, ring) = keys_and_ring(20_000 + n as u32 * 31, n);
        let pi = pi_seed % n;
        let k = key_at(&keys, &ring, pi);
        let format = if batchable { Format::Batchable } else { Format::Compact };
        let sig = sign(k, &ring, &ctx, &msg, format).unwrap();
        prop_assert_eq!(verify(&ring, &ctx, &msg, &sig).unwrap(), k.key_image(&ctx));
        let mut bad = sig.clone();
        let pos = flip_pos % bad.len();
        bad[pos] ^= 1 << flip_bit;
        prop_assert!(verify(&ring, &ctx, &msg, &bad).is_err());
        let item = [BatchItem { ring: &ring, ctx: &ctx, msg: &msg, sig: &bad }];
        prop_assert!(verify_batch(&item, Some(1)).unwrap()[0].is_err());
    }
}

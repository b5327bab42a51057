//! Vote signatures (SPEC §7): round trips, the slot tag's properties, a
//! reference implementation cross-check, theft of another key's slot tag,
//! tampering of every field (I, T, e, t, A, A', c_0, s_i, L_i, R_i), wrong
//! context/epoch/slot/message, batch == single on mixed sets, and proptest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

mod common;

use common::*;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use ringcrypto::batch::{verify_vote_batch, verify_vote_batchable_all, VoteItem};
use ringcrypto::hash::{key_image_base, slot_base};
use ringcrypto::hazmat::sign_vote_with_randomness;
use ringcrypto::{
    sign, sign_vote, signature_length, verify, verify_vote, vote_signature_length, ErrorClass,
    ErrorKind, Format, Ring, VoteTags,
};

const CTX: &[u8] = b"submission-42";
const EPOCH: &[u8] = b"2026-W49";
const SLOT: u32 = 2;
const MSG: &[u8] = b"approve";

fn tags_of(key: &ringcrypto::SecretKey, ctx: &[u8], epoch: &[u8], slot: u32) -> VoteTags {
    VoteTags {
        key_image: key.key_image(ctx),
        slot_tag: key.slot_tag(epoch, slot).unwrap(),
    }
}

fn batch_one(ring: &Ring, ctx: &[u8], epoch: &[u8], slot: u32, msg: &[u8], sig: &[u8]) -> bool {
    let item = [VoteItem {
        ring,
        ctx,
        epoch,
        slot,
        msg,
        sig,
    }];
    verify_vote_batch(&item, Some(1)).unwrap()[0].is_ok()
}

#[test]
fn wire_lengths_never_collide() {
    for n in 1..=4096usize {
        let l = [
            signature_length(n, Format::Compact).unwrap(),
            signature_length(n, Format::Batchable).unwrap(),
            vote_signature_length(n, Format::Compact).unwrap(),
            vote_signature_length(n, Format::Batchable).unwrap(),
        ];
        assert_eq!(l[2], 161 + 32 * n);
        assert_eq!(l[3], 193 + 96 * n);
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(l[i], l[j], "n={n}");
            }
        }
    }
}

#[test]
fn round_trip_sizes_and_indices() {
    for n in (1..=20usize).chain([33, 64]) {
        let (keys, ring) = keys_and_ring(20_000 + 100 * n as u32, n);
        let idx: Vec<usize> = if n <= 8 {
            (0..n).collect()
        } else {
            vec![0, n / 2, n - 1]
        };
        for pi in idx {
            let k = key_at(&keys, &ring, pi);
            for format in [Format::Compact, Format::Batchable] {
                let sig = sign_vote(k, &ring, CTX, EPOCH, SLOT, MSG, format).unwrap();
                assert_eq!(Some(sig.len()), vote_signature_length(n, format));
                let got = verify_vote(&ring, CTX, EPOCH, SLOT, MSG, &sig)
                    .unwrap_or_else(|e| panic!("n={n} pi={pi} {format:?}: {e}"));
                assert_eq!(got, tags_of(k, CTX, EPOCH, SLOT));
                // I and T sit at fixed offsets whatever the ring size.
                assert_eq!(&sig[1..33], &got.key_image);
                assert_eq!(&sig[33..65], &got.slot_tag);
                assert!(batch_one(&ring, CTX, EPOCH, SLOT, MSG, &sig));
            }
        }
    }
}

#[test]
fn slot_tag_properties() {
    let (keys, ring_a) = keys_and_ring(30_000, 5);
    let signer = &keys[2];
    let (_, other) = keys_and_ring(30_100, 7);
    let mut pks: Vec<[u8; 32]> = other.members().to_vec();
    pks.push(signer.public_key());
    let ring_b = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
    // Same (epoch, slot): same T whatever the ring, context or message.
    let a = verify_vote(
        &ring_a,
        b"s-1",
        EPOCH,
        0,
        b"yes",
        &sign_vote(signer, &ring_a, b"s-1", EPOCH, 0, b"yes", Format::Compact).unwrap(),
    )
    .unwrap();
    let b = verify_vote(
        &ring_b,
        b"s-2",
        EPOCH,
        0,
        b"no",
        &sign_vote(signer, &ring_b, b"s-2", EPOCH, 0, b"no", Format::Batchable).unwrap(),
    )
    .unwrap();
    assert_eq!(a.slot_tag, b.slot_tag);
    assert_ne!(a.key_image, b.key_image);
    assert_eq!(a.slot_tag, signer.slot_tag(EPOCH, 0).unwrap());
    // Different slot, epoch or key: different T.
    assert_ne!(signer.slot_tag(EPOCH, 1).unwrap(), a.slot_tag);
    assert_ne!(signer.slot_tag(b"2026-W50", 0).unwrap(), a.slot_tag);
    assert_ne!(keys[3].slot_tag(EPOCH, 0).unwrap(), a.slot_tag);
    // T = x·G_slot and I = x·H_ctx.
    let x = scalar(&signer.export_secret()[..]);
    assert_eq!(
        (slot_base(EPOCH, 0).unwrap() * x).compress().to_bytes(),
        a.slot_tag
    );
    assert_eq!(
        (key_image_base(b"s-1") * x).compress().to_bytes(),
        a.key_image
    );
    // Signing is hedged; the hazmat entry point is deterministic.
    let s1 = sign_vote(signer, &ring_a, b"c", EPOCH, 0, b"m", Format::Compact).unwrap();
    let s2 = sign_vote(signer, &ring_a, b"c", EPOCH, 0, b"m", Format::Compact).unwrap();
    assert_ne!(s1, s2);
    let z = z("det");
    assert_eq!(
        sign_vote_with_randomness(signer, &ring_a, b"c", EPOCH, 0, b"m", &z, Format::Compact)
            .unwrap(),
        sign_vote_with_randomness(signer, &ring_a, b"c", EPOCH, 0, b"m", &z, Format::Compact)
            .unwrap()
    );
    // slot = u32::MAX and an empty epoch are fine.
    let s = sign_vote(signer, &ring_a, b"", b"", u32::MAX, b"", Format::Batchable).unwrap();
    assert_eq!(
        verify_vote(&ring_a, b"", b"", u32::MAX, b"", &s).unwrap(),
        tags_of(signer, b"", b"", u32::MAX)
    );
}

#[test]
fn reference_implementation_agrees() {
    // An honest vote built by the independent reference code verifies, in
    // both formats, singly and in batch.
    for n in [1usize, 2, 5, 16] {
        let (keys, ring) = keys_and_ring(31_000 + n as u32, n);
        for pi in [0, n - 1] {
            let x = scalar(&key_at(&keys, &ring, pi).export_secret()[..]);
            for batchable in [false, true] {
                let sig = reference_vote(&VoteRecipe {
                    ring: &ring,
                    ctx: CTX,
                    epoch: EPOCH,
                    slot: SLOT,
                    msg: MSG,
                    signer: Some((x, pi)),
                    key_image: None,
                    tag: None,
                    dleq_x: None,
                    batchable,
                    label: "ref",
                });
                let got = verify_vote(&ring, CTX, EPOCH, SLOT, MSG, &sig).unwrap();
                assert_eq!(got, tags_of(key_at(&keys, &ring, pi), CTX, EPOCH, SLOT));
                assert!(batch_one(&ring, CTX, EPOCH, SLOT, MSG, &sig));
            }
        }
    }
}

#[test]
fn stolen_slot_tag_is_rejected() {
    // Key 2 (a ring member) signs an honest bLSAG but claims key 1's slot
    // tag T1 = x1·G_slot. The bLSAG verifies (the transcript includes T1),
    // the DLEQ cannot: log_H(I2) = x2 ≠ x1 = log_G(T1).
    let (keys, ring) = keys_and_ring(32_000, 4);
    let thief = key_at(&keys, &ring, 2);
    let victim = key_at(&keys, &ring, 1);
    let x2 = scalar(&thief.export_secret()[..]);
    let t1 = common::point(&victim.slot_tag(EPOCH, SLOT).unwrap());
    for batchable in [false, true] {
        for dleq_x in [x2, scalar(&victim.export_secret()[..]), Scalar::ONE] {
            let sig = reference_vote(&VoteRecipe {
                ring: &ring,
                ctx: CTX,
                epoch: EPOCH,
                slot: SLOT,
                msg: MSG,
                signer: Some((x2, 2)),
                key_image: None,
                tag: Some(t1),
                dleq_x: Some(dleq_x),
                batchable,
                label: "theft",
            });
            let e = verify_vote(&ring, CTX, EPOCH, SLOT, MSG, &sig).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DleqFailed, "batchable={batchable}");
            assert!(!batch_one(&ring, CTX, EPOCH, SLOT, MSG, &sig));
        }
    }
    // And a victim's tag pasted into the thief's real signature breaks the
    // transcript (ring-not-closed).
    let mut sig = sign_vote(thief, &ring, CTX, EPOCH, SLOT, MSG, Format::Compact).unwrap();
    sig[33..65].copy_from_slice(&victim.slot_tag(EPOCH, SLOT).unwrap());
    assert_eq!(
        verify_vote(&ring, CTX, EPOCH, SLOT, MSG, &sig)
            .unwrap_err()
            .kind(),
        ErrorKind::RingNotClosed
    );
}

#[test]
fn plain_and_vote_signatures_do_not_mix() {
    let (keys, ring) = keys_and_ring(33_000, 3);
    let k = &keys[0];
    let vote = sign_vote(k, &ring, CTX, EPOCH, SLOT, MSG, Format::Compact).unwrap();
    let plain = sign(k, &ring, CTX, MSG, Format::Compact).unwrap();
    assert_eq!(
        verify(&ring, CTX, MSG, &vote).unwrap_err().kind(),
        ErrorKind::Length
    );
    assert_eq!(
        verify_vote(&ring, CTX, EPOCH, SLOT, MSG, &plain)
            .unwrap_err()
            .kind(),
        ErrorKind::Length
    );
    // Same length by choosing ring sizes: a ring-16 plain compact signature
    // (577 bytes) is as long as a ring-13 vote compact one; the tag decides.
    let (k16, r16) = keys_and_ring(33_100, 16);
    let (_, r13) = keys_and_ring(33_200, 13);
    let plain16 = sign(&k16[0], &r16, CTX, MSG, Format::Compact).unwrap();
    let e = verify_vote(&r13, CTX, EPOCH, SLOT, MSG, &plain16).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownTag);
    assert!(e.detail().contains("use verify"), "{}", e.detail());
}

struct Case {
    name: String,
    ctx: Vec<u8>,
    epoch: Vec<u8>,
    slot: u32,
    msg: Vec<u8>,
    sig: Vec<u8>,
    class: ErrorClass,
    kind: Option<ErrorKind>,
}

const N: usize = 4;

fn cases(format: Format) -> (Ring, Vec<Case>) {
    let (keys, ring) = keys_and_ring(34_000, N);
    let k = key_at(&keys, &ring, 1);
    let sig = sign_vote(k, &ring, CTX, EPOCH, SLOT, MSG, format).unwrap();
    let mut out = Vec::new();
    use ErrorClass::{InvalidSignature as Inv, MalformedInput as Mal};
    let mut add =
        |name: &str, ctx: &[u8], epoch: &[u8], slot: u32, msg: &[u8], sig: Vec<u8>, class, kind| {
            out.push(Case {
                name: format!("{format:?}: {name}"),
                ctx: ctx.to_vec(),
                epoch: epoch.to_vec(),
                slot,
                msg: msg.to_vec(),
                sig,
                class,
                kind,
            })
        };
    add(
        "message",
        CTX,
        EPOCH,
        SLOT,
        b"reject",
        sig.clone(),
        Inv,
        None,
    );
    add(
        "context",
        b"submission-43",
        EPOCH,
        SLOT,
        MSG,
        sig.clone(),
        Inv,
        None,
    );
    add("epoch", CTX, b"2026-W50", SLOT, MSG, sig.clone(), Inv, None);
    add("slot", CTX, EPOCH, SLOT + 1, MSG, sig.clone(), Inv, None);
    add("slot 0", CTX, EPOCH, 0, MSG, sig.clone(), Inv, None);
    let with = |off: usize, bytes: &[u8]| {
        let mut s = sig.clone();
        s[off..off + bytes.len()].copy_from_slice(bytes);
        s
    };
    let plus_one = |off: usize| {
        let v = scalar(&sig[off..off + 32]) + Scalar::ONE;
        with(off, v.as_bytes())
    };
    // Points that must not be the identity: I at 1, T at 33.
    for (name, off, id_kind) in [
        ("key image", 1usize, ErrorKind::IdentityKeyImage),
        ("slot tag", 33, ErrorKind::IdentitySlotTag),
    ] {
        let orig: [u8; 32] = sig[off..off + 32].try_into().unwrap();
        add(
            &format!("{name} replaced"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            with(off, &other_point(3)),
            Inv,
            None,
        );
        add(
            &format!("{name} identity"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            with(off, &[0u8; 32]),
            Mal,
            Some(id_kind),
        );
        add(
            &format!("{name} 2^255-1"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            with(off, &MAX255),
            Mal,
            Some(ErrorKind::InvalidPoint),
        );
        add(
            &format!("{name} bit-255 alias"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            with(off, &bit255_alias(&orig)),
            Mal,
            Some(ErrorKind::InvalidPoint),
        );
    }
    let body = match format {
        Format::Compact => 129,
        Format::Batchable => 161,
    };
    let mut scalars: Vec<(String, usize)> = vec![("c_0".into(), body)];
    for i in 0..N {
        scalars.push((format!("s_{i}"), body + 32 + 32 * i));
    }
    match format {
        Format::Compact => {
            scalars.push(("e".into(), 65));
            scalars.push(("t".into(), 97));
        }
        Format::Batchable => scalars.push(("t".into(), 129)),
    }
    for (name, off) in &scalars {
        add(
            &format!("{name} + 1"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            plus_one(*off),
            Inv,
            None,
        );
        add(
            &format!("{name} = l"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            with(*off, &ELL),
            Mal,
            Some(ErrorKind::NonCanonicalScalar),
        );
        add(
            &format!("{name} = 2^255-1"),
            CTX,
            EPOCH,
            SLOT,
            MSG,
            with(*off, &MAX255),
            Mal,
            Some(ErrorKind::NonCanonicalScalar),
        );
    }
    if format == Format::Batchable {
        let mut pts: Vec<(String, usize)> = vec![("A".into(), 65), ("A'".into(), 97)];
        for i in 0..N {
            pts.push((format!("L_{i}"), body + 32 + 32 * N + 64 * i));
            pts.push((format!("R_{i}"), body + 32 + 32 * N + 64 * i + 32));
        }
        for (name, off) in &pts {
            let orig: [u8; 32] = sig[*off..off + 32].try_into().unwrap();
            add(
                &format!("{name} replaced"),
                CTX,
                EPOCH,
                SLOT,
                MSG,
                with(*off, &other_point(9)),
                Inv,
                None,
            );
            add(
                &format!("{name} = identity"),
                CTX,
                EPOCH,
                SLOT,
                MSG,
                with(*off, &[0u8; 32]),
                Inv,
                None,
            );
            add(
                &format!("{name} 2^255-1"),
                CTX,
                EPOCH,
                SLOT,
                MSG,
                with(*off, &MAX255),
                Mal,
                Some(ErrorKind::InvalidPoint),
            );
            add(
                &format!("{name} bit-255 alias"),
                CTX,
                EPOCH,
                SLOT,
                MSG,
                with(*off, &bit255_alias(&orig)),
                Mal,
                Some(ErrorKind::InvalidPoint),
            );
        }
        // A replaced and the chain still closes (A is not in the round hashes):
        // only the DLEQ equations catch it, in the combined check too.
    }
    add(
        "truncated",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        sig[..sig.len() - 1].to_vec(),
        Mal,
        Some(ErrorKind::Length),
    );
    add(
        "extended",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        [&sig[..], &[0u8]].concat(),
        Mal,
        Some(ErrorKind::Length),
    );
    add(
        "plain compact tag",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        with(0, &[0x01]),
        Mal,
        Some(ErrorKind::UnknownTag),
    );
    add(
        "tag 0x13",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        with(0, &[0x13]),
        Mal,
        Some(ErrorKind::UnknownTag),
    );
    let other_tag = if format == Format::Compact {
        0x12
    } else {
        0x11
    };
    add(
        "other format's tag",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        with(0, &[other_tag]),
        Mal,
        Some(ErrorKind::TagMismatch),
    );
    (ring, out)
}

#[test]
fn every_field_tampered_is_rejected_by_single_and_batch() {
    for format in [Format::Compact, Format::Batchable] {
        let (ring, cs) = cases(format);
        assert!(cs.len() > 30);
        for c in &cs {
            let e = verify_vote(&ring, &c.ctx, &c.epoch, c.slot, &c.msg, &c.sig).unwrap_err();
            assert_eq!(e.class(), c.class, "{}: {e}", c.name);
            if let Some(k) = c.kind {
                assert_eq!(e.kind(), k, "{}", c.name);
            }
        }
        let items: Vec<VoteItem<'_>> = cs
            .iter()
            .map(|c| VoteItem {
                ring: &ring,
                ctx: &c.ctx,
                epoch: &c.epoch,
                slot: c.slot,
                msg: &c.msg,
                sig: &c.sig,
            })
            .collect();
        for threads in [Some(1), Some(2), None] {
            let res = verify_vote_batch(&items, threads).unwrap();
            for (c, r) in cs.iter().zip(&res) {
                assert!(r.is_err(), "{} accepted by batch", c.name);
                if c.class == ErrorClass::MalformedInput {
                    assert_eq!(
                        r.as_ref().unwrap_err().kind(),
                        c.kind.unwrap(),
                        "{}",
                        c.name
                    );
                }
            }
        }
        if format == Format::Batchable {
            for it in &items {
                if it.sig.len() == vote_signature_length(N, Format::Batchable).unwrap() {
                    assert!(!verify_vote_batchable_all(&[*it]));
                }
            }
        }
    }
}

#[test]
fn batch_equals_single_on_mixed_sets() {
    let (keys3, ring3) = keys_and_ring(35_000, 3);
    let (keys8, ring8) = keys_and_ring(35_100, 8);
    let mut owned: Vec<(&Ring, Vec<u8>, Vec<u8>, u32, Vec<u8>, Vec<u8>)> = Vec::new();
    for k in 0..300usize {
        let (ring, keys) = if k % 2 == 1 {
            (&ring3, &keys3)
        } else {
            (&ring8, &keys8)
        };
        let signer = &keys[k % keys.len()];
        let ctx = format!("ctx-{}", k % 5).into_bytes();
        let epoch = format!("ep-{}", k % 3).into_bytes();
        let slot = (k % 4) as u32;
        let msg = format!("m{k}").into_bytes();
        let format = if k % 5 == 0 {
            Format::Compact
        } else {
            Format::Batchable
        };
        let mut sig = sign_vote(signer, ring, &ctx, &epoch, slot, &msg, format).unwrap();
        match k % 9 {
            1 => sig[200] ^= 1, // s or L/R
            // A replaced (batchable): chain closes, DLEQ fails
            3 if format == Format::Batchable => sig[65..97].copy_from_slice(&other_point(4)),
            5 => {
                let forged = reference_vote(&VoteRecipe {
                    ring,
                    ctx: &ctx,
                    epoch: &epoch,
                    slot,
                    msg: &msg,
                    signer: None,
                    key_image: None,
                    tag: None,
                    dleq_x: None,
                    batchable: true,
                    label: &format!("f{k}"),
                });
                sig = forged;
            }
            7 => {
                // stolen tag with an honest bLSAG
                let x = scalar(&signer.export_secret()[..]);
                let pi = ring.index_of(&signer.public_key()).unwrap();
                let other = &keys[(k + 1) % keys.len()];
                sig = reference_vote(&VoteRecipe {
                    ring,
                    ctx: &ctx,
                    epoch: &epoch,
                    slot,
                    msg: &msg,
                    signer: Some((x, pi)),
                    key_image: None,
                    tag: Some(common::point(&other.slot_tag(&epoch, slot).unwrap())),
                    dleq_x: None,
                    batchable: k % 2 == 0,
                    label: &format!("t{k}"),
                });
            }
            _ => {}
        }
        owned.push((ring, ctx, epoch, slot, msg, sig));
    }
    let items: Vec<VoteItem<'_>> = owned
        .iter()
        .map(|(r, c, e, j, m, s)| VoteItem {
            ring: r,
            ctx: c,
            epoch: e,
            slot: *j,
            msg: m,
            sig: s,
        })
        .collect();
    let single: Vec<Option<VoteTags>> = items
        .iter()
        .map(|i| verify_vote(i.ring, i.ctx, i.epoch, i.slot, i.msg, i.sig).ok())
        .collect();
    assert!(single.iter().filter(|s| s.is_some()).count() > 150);
    assert!(single.iter().filter(|s| s.is_none()).count() > 60);
    for threads in [Some(1), Some(2), Some(3), None] {
        let batch: Vec<Option<VoteTags>> = verify_vote_batch(&items, threads)
            .unwrap()
            .into_iter()
            .map(|r| r.ok())
            .collect();
        assert_eq!(batch, single, "threads={threads:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn prop_round_trip_and_byte_flip(
        n in 1usize..9, pi in 0usize..1000, batchable in any::<bool>(),
        ctx in proptest::collection::vec(any::<u8>(), 0..40),
        epoch in proptest::collection::vec(any::<u8>(), 0..20),
        slot in any::<u32>(),
        msg in proptest::collection::vec(any::<u8>(), 0..200),
        pos in 0usize..10_000, bit in 0u8..8,
    ) {
        let (keys, ring) = keys_and_ring(36_000 + n as u32, n);
        let k = key_at(&keys, &ring, pi % n);
        let format = if batchable { Format::Batchable } else { Format::Compact };
        let sig = sign_vote(k, &ring, &ctx, &epoch, slot, &msg, format).unwrap();
        prop_assert_eq!(verify_vote(&ring, &ctx, &epoch, slot, &msg, &sig).unwrap(), tags_of(k, &ctx, &epoch, slot));
        let mut bad = sig.clone();
        let p = pos % bad.len();
        bad[p] ^= 1 << bit;
        prop_assert!(verify_vote(&ring, &ctx, &epoch, slot, &msg, &bad).is_err());
        prop_assert!(!batch_one(&ring, &ctx, &epoch, slot, &msg, &bad));
        prop_assert!(verify_vote(&ring, &ctx, &epoch, slot.wrapping_add(1), &msg, &sig).is_err());
    }
}

#[test]
fn reference_keyless_forgery_passes_the_chain_but_nothing_else() {
    // The forged vote's hash chain closes (so the batch's first stage
    // accepts it); single and batch verification both reject it.
    let (_, ring) = keys_and_ring(37_000, 16);
    let sig = reference_vote(&VoteRecipe {
        ring: &ring,
        ctx: CTX,
        epoch: EPOCH,
        slot: SLOT,
        msg: MSG,
        signer: None,
        key_image: Some(RistrettoPoint::mul_base(&Scalar::from(77u64))),
        tag: None,
        dleq_x: None,
        batchable: true,
        label: "forge",
    });
    let e = verify_vote(&ring, CTX, EPOCH, SLOT, MSG, &sig).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CarriedPointMismatch);
    let item = [VoteItem {
        ring: &ring,
        ctx: CTX,
        epoch: EPOCH,
        slot: SLOT,
        msg: MSG,
        sig: &sig,
    }];
    let r = verify_vote_batch(&item, Some(1)).unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().kind(), ErrorKind::BatchEquation);
}

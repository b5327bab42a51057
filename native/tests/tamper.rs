//! Every part of a signature altered → rejected, with the right class/kind,
//! by both the single verifier and verify_batch; batch and single agree on
//! mixed valid/invalid sets, including an altered L_i whose hash chain still
//! closes (so only the curve equations catch it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

mod common;

use common::*;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use ringcrypto::batch::{verify_batch, verify_batchable_all, BatchItem};
use ringcrypto::hash::{key_image_base, Transcript};
use ringcrypto::{sign, verify, ErrorClass, ErrorKind, Format, Ring};

const N: usize = 5;
const CTX: &[u8] = b"submission-42";
const MSG: &[u8] = b"approve";

struct Case {
    name: String,
    ring: Ring,
    ctx: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
    class: ErrorClass,
    kind: Option<ErrorKind>,
}

fn s_off(i: usize) -> usize {
    65 + 32 * i
}
fn lr_off(i: usize, which: usize) -> usize {
    65 + 32 * N + 64 * i + 32 * which
}

fn cases(format: Format) -> Vec<Case> {
    let (keys, ring) = keys_and_ring(500, N);
    let k = key_at(&keys, &ring, 2);
    let sig = sign(k, &ring, CTX, MSG, format).unwrap();
    let mut out = Vec::new();
    let mut add = |name: &str, ring: &Ring, ctx: &[u8], msg: &[u8], sig: Vec<u8>, class, kind| {
        out.push(Case {
            name: format!("{format:?}: {name}"),
            ring: ring.clone(),
            ctx: ctx.to_vec(),
            msg: msg.to_vec(),
            sig,
            class,
            kind,
        })
    };
    use ErrorClass::{InvalidSignature as Inv, MalformedInput as Mal};

    add("message", &ring, CTX, b"reject", sig.clone(), Inv, None);
    add("empty message", &ring, CTX, b"", sig.clone(), Inv, None);
    add(
        "context",
        &ring,
        b"submission-43",
        MSG,
        sig.clone(),
        Inv,
        None,
    );
    for j in 0..N {
        // Replace member j by an outsider (same size, different digest).
        let mut pks: Vec<[u8; 32]> = ring.members().to_vec();
        pks[j] = key(90_000 + j as u32).public_key();
        let r2 = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
        add(
            &format!("ring member {j} replaced"),
            &r2,
            CTX,
            MSG,
            sig.clone(),
            Inv,
            None,
        );
    }
    // A larger ring containing the signer: the length no longer matches.
    let mut pks: Vec<[u8; 32]> = ring.members().to_vec();
    pks.push(key(91_000).public_key());
    let bigger = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
    add(
        "ring with extra member",
        &bigger,
        CTX,
        MSG,
        sig.clone(),
        Mal,
        Some(ErrorKind::Length),
    );

    let mut s = sig.clone();
    s[1..33].copy_from_slice(&other_point(1));
    add(
        "key image replaced by valid point",
        &ring,
        CTX,
        MSG,
        s,
        Inv,
        None,
    );
    let mut s = sig.clone();
    s[1..33].copy_from_slice(&k.key_image(b"other-context"));
    add(
        "key image of another context",
        &ring,
        CTX,
        MSG,
        s,
        Inv,
        None,
    );
    let mut s = sig.clone();
    s[1..33].copy_from_slice(&[0u8; 32]);
    add(
        "key image identity",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::IdentityKeyImage),
    );
    let mut s = sig.clone();
    s[1..33].copy_from_slice(&MAX255);
    add(
        "key image non-canonical",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::InvalidPoint),
    );

    let mut s = sig.clone();
    let c0 = scalar(&s[33..65]) + Scalar::ONE;
    s[33..65].copy_from_slice(c0.as_bytes());
    add("c_0 + 1", &ring, CTX, MSG, s, Inv, None);
    let mut s = sig.clone();
    s[33..65].copy_from_slice(&ELL);
    add(
        "c_0 = l",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::NonCanonicalScalar),
    );
    for i in 0..N {
        let mut s = sig.clone();
        let v = scalar(&s[s_off(i)..s_off(i) + 32]) + Scalar::ONE;
        s[s_off(i)..s_off(i) + 32].copy_from_slice(v.as_bytes());
        add(&format!("s_{i} + 1"), &ring, CTX, MSG, s, Inv, None);
        let mut s = sig.clone();
        s[s_off(i)..s_off(i) + 32].copy_from_slice(&MAX255);
        add(
            &format!("s_{i} = 2^255-1"),
            &ring,
            CTX,
            MSG,
            s,
            Mal,
            Some(ErrorKind::NonCanonicalScalar),
        );
    }
    if format == Format::Batchable {
        for i in 0..N {
            for (w, name) in [(0, "L"), (1, "R")] {
                let o = lr_off(i, w);
                let mut s = sig.clone();
                s[o..o + 32].copy_from_slice(&other_point(7));
                add(
                    &format!("{name}_{i} replaced by valid point"),
                    &ring,
                    CTX,
                    MSG,
                    s,
                    Inv,
                    None,
                );
                let mut s = sig.clone();
                s[o..o + 32].copy_from_slice(&[0u8; 32]);
                add(
                    &format!("{name}_{i} = identity"),
                    &ring,
                    CTX,
                    MSG,
                    s,
                    Inv,
                    None,
                );
                let mut s = sig.clone();
                s[o..o + 32].copy_from_slice(&MAX255);
                add(
                    &format!("{name}_{i} non-canonical"),
                    &ring,
                    CTX,
                    MSG,
                    s,
                    Mal,
                    Some(ErrorKind::InvalidPoint),
                );
            }
        }
    }
    let len = sig.len();
    add(
        "truncated by 1",
        &ring,
        CTX,
        MSG,
        sig[..len - 1].to_vec(),
        Mal,
        Some(ErrorKind::Length),
    );
    add(
        "truncated by 32",
        &ring,
        CTX,
        MSG,
        sig[..len - 32].to_vec(),
        Mal,
        Some(ErrorKind::Length),
    );
    let mut s = sig.clone();
    s.push(0);
    add(
        "extended by 1",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::Length),
    );
    let mut s = sig.clone();
    s.extend_from_slice(&[0u8; 32]);
    add(
        "extended by 32",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::Length),
    );
    add(
        "empty",
        &ring,
        CTX,
        MSG,
        Vec::new(),
        Mal,
        Some(ErrorKind::Length),
    );
    add(
        "no responses",
        &ring,
        CTX,
        MSG,
        sig[..65].to_vec(),
        Mal,
        Some(ErrorKind::Length),
    );
    let mut s = sig.clone();
    s[0] = 0x03;
    add(
        "unknown tag 0x03",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::UnknownTag),
    );
    let mut s = sig.clone();
    s[0] = 0x00;
    add(
        "unknown tag 0x00",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::UnknownTag),
    );
    let mut s = sig.clone();
    s[0] = if format == Format::Compact {
        0x02
    } else {
        0x01
    };
    add(
        "other format's tag",
        &ring,
        CTX,
        MSG,
        s,
        Mal,
        Some(ErrorKind::TagMismatch),
    );
    out
}

#[test]
fn every_tamper_rejected_single_and_batch() {
    for format in [Format::Compact, Format::Batchable] {
        let cs = cases(format);
        assert!(cs.len() > 20);
        for c in &cs {
            let e = verify(&c.ring, &c.ctx, &c.msg, &c.sig).expect_err(&c.name);
            assert_eq!(e.class(), c.class, "{}: {e}", c.name);
            if let Some(kind) = c.kind {
                assert_eq!(e.kind(), kind, "{}: {e}", c.name);
            }
        }
        let items: Vec<BatchItem<'_>> = cs
            .iter()
            .map(|c| BatchItem {
                ring: &c.ring,
                ctx: &c.ctx,
                msg: &c.msg,
                sig: &c.sig,
            })
            .collect();
        for threads in [Some(1), Some(2)] {
            let res = verify_batch(&items, threads).unwrap();
            for (c, r) in cs.iter().zip(&res) {
                assert!(r.is_err(), "batch accepted {}", c.name);
            }
        }
    }
}

#[test]
fn length_error_message_names_both_lengths() {
    let (keys, ring) = keys_and_ring(600, 16);
    let sig = sign(&keys[0], &ring, b"c", b"m", Format::Compact).unwrap();
    let e = verify(&ring, b"c", b"m", &sig[..97]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "signature length 97 does not match ring of 16: expected 577 (compact) or 1601 (batchable)"
    );
}

/// Re-sign a batchable signature so that carried L_target is replaced by an
/// arbitrary point, yet the hash chain over the carried bytes still closes:
/// only the curve equation for `target` fails.
fn forge_consistent_chain(
    ring: &Ring,
    ctx: &[u8],
    msg: &[u8],
    sig: &[u8],
    target: usize,
) -> Vec<u8> {
    let n = ring.len();
    let mut out = sig.to_vec();
    let image = point(&sig[1..33]);
    let t = Transcript::new(ctx, ring.digest(), sig[1..33].try_into().unwrap(), msg).unwrap();
    let h = key_image_base(ctx);
    let s: Vec<Scalar> = (0..n)
        .map(|i| scalar(&sig[65 + 32 * i..97 + 32 * i]))
        .collect();
    let lr = |out: &Vec<u8>, i: usize| -> ([u8; 32], [u8; 32]) {
        let o = 65 + 32 * n + 64 * i;
        (
            out[o..o + 32].try_into().unwrap(),
            out[o + 32..o + 64].try_into().unwrap(),
        )
    };
    // Replace L_target, then walk the ring once, recomputing every other pair.
    let o = 65 + 32 * n + 64 * target;
    out[o..o + 32].copy_from_slice(&other_point(9));
    let (l, r) = lr(&out, target);
    let mut c = t.challenge(&l, &r);
    for step in 1..n {
        let i = (target + step) % n;
        if i == 0 {
            out[33..65].copy_from_slice(c.as_bytes());
        }
        let li = RistrettoPoint::vartime_double_scalar_mul_basepoint(&c, &ring.points()[i], &s[i]);
        let ri = s[i] * h + c * image;
        let o = 65 + 32 * n + 64 * i;
        out[o..o + 32].copy_from_slice(li.compress().as_bytes());
        out[o + 32..o + 64].copy_from_slice(ri.compress().as_bytes());
        let (l, r) = lr(&out, i);
        c = t.challenge(&l, &r);
    }
    if target == 0 {
        out[33..65].copy_from_slice(c.as_bytes());
    }
    out
}

#[test]
fn batch_and_single_agree_on_mixed_sets() {
    let (keys3, ring3) = keys_and_ring(700, 3);
    let (keys8, ring8) = keys_and_ring(800, 8);
    let mut items: Vec<(Ring, Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
    for k in 0..200usize {
        // > 2 chunks of MIN_CHUNK, so chunking is exercised
        let (keys, ring) = if k % 2 == 0 {
            (&keys3, &ring3)
        } else {
            (&keys8, &ring8)
        };
        let signer = &keys[k % keys.len()];
        let ctx = format!("ctx-{}", k % 3).into_bytes();
        let msg = format!("msg-{k}").into_bytes();
        let format = if k % 5 == 0 {
            Format::Compact
        } else {
            Format::Batchable
        };
        let mut sig = sign(signer, ring, &ctx, &msg, format).unwrap();
        match k % 7 {
            1 => {
                // s_0 altered: hash chain over carried bytes still closes.
                let v = scalar(&sig[65..97]) + Scalar::ONE;
                sig[65..97].copy_from_slice(v.as_bytes());
            }
            3 if format == Format::Batchable => {
                sig = forge_consistent_chain(ring, &ctx, &msg, &sig, k % ring.len());
            }
            5 => sig.truncate(sig.len() - 3),
            6 if format == Format::Batchable => {
                let o = sig.len() - 32;
                sig[o..].copy_from_slice(&other_point(3)); // R_{n-1}: chain breaks
            }
            _ => {}
        }
        items.push((ring.clone(), ctx, msg, sig));
    }
    let singles: Vec<Option<[u8; 32]>> = items
        .iter()
        .map(|(r, c, m, s)| verify(r, c, m, s).ok())
        .collect();
    assert!(singles.iter().filter(|x| x.is_some()).count() >= 20);
    assert!(singles.iter().filter(|x| x.is_none()).count() >= 10);
    let batch_items: Vec<BatchItem<'_>> = items
        .iter()
        .map(|(r, c, m, s)| BatchItem {
            ring: r,
            ctx: c,
            msg: m,
            sig: s,
        })
        .collect();
    for threads in [None, Some(1), Some(2), Some(3)] {
        let res: Vec<Option<[u8; 32]>> = verify_batch(&batch_items, threads)
            .unwrap()
            .into_iter()
            .map(|r| r.ok())
            .collect();
        assert_eq!(res, singles, "threads={threads:?}");
    }
}

#[test]
fn altered_l_with_closing_chain_is_caught_by_equations() {
    let (keys, ring) = keys_and_ring(900, 6);
    for target in 0..6 {
        let sig = sign(&keys[1], &ring, b"c", b"m", Format::Batchable).unwrap();
        let forged = forge_consistent_chain(&ring, b"c", b"m", &sig, target);
        let e = verify(&ring, b"c", b"m", &forged).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CarriedPointMismatch, "target {target}");
        let item = BatchItem {
            ring: &ring,
            ctx: b"c",
            msg: b"m",
            sig: &forged,
        };
        let good = BatchItem {
            ring: &ring,
            ctx: b"c",
            msg: b"m",
            sig: &sig,
        };
        assert!(!verify_batchable_all(&[item]));
        assert!(!verify_batchable_all(&[good, item]));
        assert!(verify_batchable_all(&[good]));
        let res = verify_batch(&[good, item, good], Some(2)).unwrap();
        assert!(res[0].is_ok() && res[2].is_ok());
        assert_eq!(
            res[1].as_ref().unwrap_err().kind(),
            ErrorKind::BatchEquation
        );
    }
}

#[test]
fn ring_validation() {
    let pk = key(1).public_key();
    let pk2 = key(2).public_key();
    let kind = |r: Result<Ring, ringcrypto::Error>| r.unwrap_err().kind();
    assert_eq!(
        kind(Ring::new(Vec::<&[u8]>::new(), 1024)),
        ErrorKind::RingSize
    );
    assert_eq!(
        kind(Ring::new([&pk[..], &pk[..]], 1024)),
        ErrorKind::DuplicateMember
    );
    assert_eq!(
        kind(Ring::new([&pk[..], &[0u8; 32][..]], 1024)),
        ErrorKind::IdentityMember
    );
    assert_eq!(
        kind(Ring::new([&pk[..], &MAX255[..]], 1024)),
        ErrorKind::InvalidPoint
    );
    assert_eq!(
        kind(Ring::new([&pk[..], &pk2[..31]], 1024)),
        ErrorKind::BadLength
    );
    assert_eq!(kind(Ring::new([&pk[..], &pk2[..]], 1)), ErrorKind::RingSize);
    assert_eq!(kind(Ring::new([&pk[..]], 0)), ErrorKind::RingSize);
    assert_eq!(kind(Ring::new([&pk[..]], 65537)), ErrorKind::RingSize);
    let a = Ring::new([&pk[..], &pk2[..]], 1024).unwrap();
    let b = Ring::new([&pk2[..], &pk[..]], 1024).unwrap();
    assert_eq!(
        a.digest(),
        b.digest(),
        "canonical order is independent of input order"
    );
    assert!(a.members()[0] < a.members()[1]);
}

#[test]
fn ring_memory_under_one_mib() {
    let (_, ring) = keys_and_ring(10_000, 1024);
    assert!(ring.memory_size() < 1 << 20, "{}", ring.memory_size());
}

//! Generates `native/test-vectors.json` deterministically (SPEC §10):
//!
//!     cd native && cargo run --release --no-default-features --example gen_vectors > test-vectors.json
//!
//! Fixed seeds, fixed randomness; the same bytes on every run and machine.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

// The reference (non-constant-time) vote builder of the tests, for the
// stolen-slot-tag negative vector.
#[path = "../tests/common/mod.rs"]
mod common;

use curve25519_dalek::scalar::Scalar;
use ringcrypto::hash::{expand_message_xmd, hash_to_group, key_image_base, slot_base, tags};
use ringcrypto::hazmat::{sign_vote_with_randomness, sign_with_randomness};
use ringcrypto::{verify, verify_vote, Format, Ring, SecretKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

fn seed(k: u32) -> [u8; 32] {
    let d = Sha512::digest(format!("ringtally-v2 test seed {k}").as_bytes());
    d[..32].try_into().unwrap()
}

fn z(label: &str) -> [u8; 32] {
    let d = Sha512::digest(format!("ringtally-v2 test z {label}").as_bytes());
    d[..32].try_into().unwrap()
}

fn hx(b: &[u8]) -> String {
    hex::encode(b)
}

const CTX: &[u8] = b"ringtally-test-submission-0001";
const MSG: &[u8] = b"vote:approve";
const EPOCH: &[u8] = b"2026-W49";
const SLOT: u32 = 2;

fn main() {
    let keys: Vec<SecretKey> = (0..22)
        .map(|k| SecretKey::from_seed(&seed(k)).unwrap())
        .collect();

    let mut xmd = Vec::new();
    let mut h2g = Vec::new();
    for (msg, dst) in [
        (&b""[..], tags::KEY_IMAGE_BASE),
        (&b"abc"[..], tags::KEY_IMAGE_BASE),
        (CTX, tags::KEY_IMAGE_BASE),
        // lp("2026-W49") ‖ u32be(2): the slot base message of §4.2
        (
            &b"\x00\x00\x00\x082026-W49\x00\x00\x00\x02"[..],
            tags::SLOT_BASE,
        ),
        (&b"ringtally"[..], &b"ringtally-v2:test-dst"[..]),
    ] {
        xmd.push(json!({
            "msg": hx(msg), "dst": String::from_utf8(dst.to_vec()).unwrap(), "len_in_bytes": 64,
            "uniform_bytes": hx(&expand_message_xmd(msg, dst, 64).unwrap()),
        }));
        h2g.push(json!({
            "msg": hx(msg), "dst": String::from_utf8(dst.to_vec()).unwrap(),
            "point": hx(hash_to_group(msg, dst).unwrap().compress().as_bytes()),
        }));
    }

    let key_json: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(k, key)| {
            json!({"index": k, "seed": hx(&seed(k as u32)), "secret": hx(key.export_secret().as_ref()),
                   "public_key": hx(&key.public_key())})
        })
        .collect();

    let mut images = Vec::new();
    for k in [0usize, 1, 6] {
        for ctx in [CTX, &b""[..], &b"ringtally-test-submission-0002"[..]] {
            images.push(json!({
                "key": k, "context": hx(ctx), "key_image": hx(&keys[k].key_image(ctx)),
                "key_image_base": hx(key_image_base(ctx).compress().as_bytes()),
            }));
        }
    }

    let mut slot_tags = Vec::new();
    for k in [0usize, 1, 6] {
        for (epoch, slot) in [
            (EPOCH, 0u32),
            (EPOCH, SLOT),
            (&b"2026-W50"[..], 0),
            (&b""[..], u32::MAX),
        ] {
            slot_tags.push(json!({
                "key": k, "epoch": hx(epoch), "slot": slot,
                "slot_base": hx(slot_base(epoch, slot).unwrap().compress().as_bytes()),
                "slot_tag": hx(&keys[k].slot_tag(epoch, slot).unwrap()),
            }));
        }
    }

    let ring_defs: Vec<(&str, Vec<usize>)> = vec![
        ("ring1", vec![0]),
        ("ring2", vec![1, 2]),
        ("ring3", vec![3, 4, 5]),
        ("ring16", (6..22).collect()),
    ];
    let mut rings_json = Vec::new();
    let mut rings = Vec::new();
    for (name, idx) in &ring_defs {
        let pks: Vec<[u8; 32]> = idx.iter().map(|&i| keys[i].public_key()).collect();
        let ring = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
        rings_json.push(json!({
            "name": name, "keys": idx,
            "public_keys": ring.members().iter().map(|m| hx(m)).collect::<Vec<_>>(),
            "digest": hx(ring.digest()),
        }));
        rings.push((name.to_string(), idx.clone(), ring));
    }

    let mut sigs = Vec::new();
    let mut base_sigs = std::collections::HashMap::new();
    for (name, idx, ring) in &rings {
        let positions: Vec<usize> = if ring.len() <= 3 {
            (0..ring.len()).collect()
        } else {
            vec![0, 7, 15]
        };
        for pi in positions {
            let k = idx
                .iter()
                .copied()
                .find(|&i| keys[i].public_key() == ring.members()[pi])
                .unwrap();
            for (format, fname) in [
                (Format::Compact, "compact"),
                (Format::Batchable, "batchable"),
            ] {
                let label = format!("{name}/{pi}/{fname}");
                let sig =
                    sign_with_randomness(&keys[k], ring, CTX, MSG, &z(&label), format).unwrap();
                let image = verify(ring, CTX, MSG, &sig).unwrap();
                sigs.push(json!({
                    "ring": name, "signer_key": k, "signer_index": pi, "context": hx(CTX),
                    "message": hx(MSG), "randomness_label": label, "randomness": hx(&z(&label)),
                    "format": fname, "signature": hx(&sig), "key_image": hx(&image),
                }));
                base_sigs.insert((name.clone(), pi, fname), sig);
            }
        }
    }

    let mut vote_sigs = Vec::new();
    let mut base_votes = std::collections::HashMap::new();
    for (name, idx, ring) in &rings {
        let positions: Vec<usize> = if ring.len() <= 3 {
            (0..ring.len()).collect()
        } else {
            vec![0, 7, 15]
        };
        for pi in positions {
            let k = idx
                .iter()
                .copied()
                .find(|&i| keys[i].public_key() == ring.members()[pi])
                .unwrap();
            for (format, fname) in [
                (Format::Compact, "compact"),
                (Format::Batchable, "batchable"),
            ] {
                let label = format!("vote/{name}/{pi}/{fname}");
                let sig = sign_vote_with_randomness(
                    &keys[k],
                    ring,
                    CTX,
                    EPOCH,
                    SLOT,
                    MSG,
                    &z(&label),
                    format,
                )
                .unwrap();
                let tags = verify_vote(ring, CTX, EPOCH, SLOT, MSG, &sig).unwrap();
                vote_sigs.push(json!({
                    "ring": name, "signer_key": k, "signer_index": pi, "context": hx(CTX),
                    "epoch": hx(EPOCH), "slot": SLOT,
                    "message": hx(MSG), "randomness_label": label, "randomness": hx(&z(&label)),
                    "format": fname, "signature": hx(&sig), "key_image": hx(&tags.key_image),
                    "slot_tag": hx(&tags.slot_tag),
                }));
                base_votes.insert((name.clone(), pi, fname), sig);
            }
        }
    }

    // Negative vectors, all derived from the ring3 signatures with signer index 1.
    let c = &base_sigs[&("ring3".to_string(), 1, "compact")];
    let b = &base_sigs[&("ring3".to_string(), 1, "batchable")];
    let n = 3;
    let mut neg = Vec::new();
    let mut add = |name: &str, ring: &str, ctx: &[u8], msg: &[u8], sig: &[u8]| {
        let r = &rings.iter().find(|r| r.0 == ring).unwrap().2;
        let e = verify(r, ctx, msg, sig).unwrap_err();
        neg.push(json!({
            "name": name, "ring": ring, "context": hx(ctx), "message": hx(msg), "signature": hx(sig),
            "error_class": format!("{:?}", e.class()), "error_kind": e.kind().as_str(),
        }));
    };
    let with = |sig: &[u8], off: usize, bytes: &[u8]| {
        let mut s = sig.to_vec();
        s[off..off + bytes.len()].copy_from_slice(bytes);
        s
    };
    let plus_one = |sig: &[u8], off: usize| {
        let v = Scalar::from_canonical_bytes(sig[off..off + 32].try_into().unwrap()).unwrap()
            + Scalar::ONE;
        with(sig, off, v.as_bytes())
    };
    let ell: [u8; 32] =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap()
            .try_into()
            .unwrap();
    let max255: [u8; 32] =
        hex::decode("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
            .unwrap()
            .try_into()
            .unwrap();
    let other = keys[0].public_key();
    add("message altered", "ring3", CTX, b"vote:reject", c);
    add(
        "context altered",
        "ring3",
        b"ringtally-test-submission-0002",
        MSG,
        c,
    );
    add(
        "ring3 signature cut to ring2 length, verified against ring2",
        "ring2",
        CTX,
        MSG,
        &c[..c.len() - 32],
    );
    add(
        "verified against a ring of another size",
        "ring16",
        CTX,
        MSG,
        c,
    );
    add("c_0 + 1", "ring3", CTX, MSG, &plus_one(c, 33));
    add("s_1 + 1", "ring3", CTX, MSG, &plus_one(c, 65 + 32));
    add("key image replaced", "ring3", CTX, MSG, &with(c, 1, &other));
    add(
        "key image identity",
        "ring3",
        CTX,
        MSG,
        &with(c, 1, &[0u8; 32]),
    );
    add(
        "key image non-canonical",
        "ring3",
        CTX,
        MSG,
        &with(c, 1, &max255),
    );
    add(
        "c_0 = l (non-canonical)",
        "ring3",
        CTX,
        MSG,
        &with(c, 33, &ell),
    );
    add(
        "s_2 = 2^255-1 (non-canonical)",
        "ring3",
        CTX,
        MSG,
        &with(c, 65 + 64, &max255),
    );
    add("truncated", "ring3", CTX, MSG, &c[..c.len() - 1]);
    add("extended", "ring3", CTX, MSG, &[&c[..], &[0u8]].concat());
    add("empty", "ring3", CTX, MSG, &[]);
    add("unknown tag", "ring3", CTX, MSG, &with(c, 0, &[0x03]));
    add(
        "tag mismatch (compact bytes, batchable tag)",
        "ring3",
        CTX,
        MSG,
        &with(c, 0, &[0x02]),
    );
    add(
        "tag mismatch (batchable bytes, compact tag)",
        "ring3",
        CTX,
        MSG,
        &with(b, 0, &[0x01]),
    );
    add(
        "batchable L_1 replaced",
        "ring3",
        CTX,
        MSG,
        &with(b, 65 + 32 * n + 64, &other),
    );
    add(
        "batchable R_2 replaced",
        "ring3",
        CTX,
        MSG,
        &with(b, 65 + 32 * n + 128 + 32, &other),
    );
    add(
        "batchable L_0 non-canonical",
        "ring3",
        CTX,
        MSG,
        &with(b, 65 + 32 * n, &max255),
    );
    add("batchable s_0 + 1", "ring3", CTX, MSG, &plus_one(b, 65));
    let alias = |sig: &[u8], off: usize| {
        let mut s = sig.to_vec();
        s[off + 31] |= 0x80;
        s
    };
    add(
        "key image with bit 255 set (alias of the valid I)",
        "ring3",
        CTX,
        MSG,
        &alias(c, 1),
    );
    add(
        "batchable L_1 with bit 255 set (alias of the valid L_1)",
        "ring3",
        CTX,
        MSG,
        &alias(b, 65 + 32 * n + 64),
    );
    add(
        "vote signature given to the plain verifier",
        "ring3",
        CTX,
        MSG,
        &base_votes[&("ring3".to_string(), 1, "compact")],
    );

    // Vote negatives, derived from the ring3 vote signatures with signer index 1.
    let vc = &base_votes[&("ring3".to_string(), 1, "compact")];
    let vb = &base_votes[&("ring3".to_string(), 1, "batchable")];
    let mut vneg = Vec::new();
    let mut vadd = |name: &str, ctx: &[u8], epoch: &[u8], slot: u32, msg: &[u8], sig: &[u8]| {
        let r = &rings.iter().find(|r| r.0 == "ring3").unwrap().2;
        let e = verify_vote(r, ctx, epoch, slot, msg, sig).unwrap_err();
        vneg.push(json!({
            "name": name, "ring": "ring3", "context": hx(ctx), "epoch": hx(epoch), "slot": slot,
            "message": hx(msg), "signature": hx(sig),
            "error_class": format!("{:?}", e.class()), "error_kind": e.kind().as_str(),
        }));
    };
    let ring3 = &rings.iter().find(|r| r.0 == "ring3").unwrap().2;
    let signer3 = ring_defs[2]
        .1
        .iter()
        .copied()
        .find(|&i| keys[i].public_key() == ring3.members()[1])
        .unwrap();
    let victim3 = ring_defs[2]
        .1
        .iter()
        .copied()
        .find(|&i| keys[i].public_key() == ring3.members()[0])
        .unwrap();
    let stolen = keys[victim3].slot_tag(EPOCH, SLOT).unwrap();
    vadd("message altered", CTX, EPOCH, SLOT, b"vote:reject", vc);
    vadd(
        "context altered",
        b"ringtally-test-submission-0002",
        EPOCH,
        SLOT,
        MSG,
        vc,
    );
    vadd("epoch altered", CTX, b"2026-W50", SLOT, MSG, vc);
    vadd("slot altered", CTX, EPOCH, SLOT + 1, MSG, vc);
    vadd(
        "slot tag replaced by another member's tag (same epoch and slot)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 33, &stolen),
    );
    vadd(
        "slot tag identity",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 33, &[0u8; 32]),
    );
    vadd(
        "slot tag with bit 255 set (alias of the valid T)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &alias(vc, 33),
    );
    vadd(
        "key image with bit 255 set (alias of the valid I)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &alias(vc, 1),
    );
    vadd(
        "key image identity",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 1, &[0u8; 32]),
    );
    vadd("e + 1", CTX, EPOCH, SLOT, MSG, &plus_one(vc, 65));
    vadd("t + 1", CTX, EPOCH, SLOT, MSG, &plus_one(vc, 97));
    vadd(
        "e = l (non-canonical)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 65, &ell),
    );
    vadd(
        "t = 2^255-1 (non-canonical)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 97, &max255),
    );
    vadd("c_0 + 1", CTX, EPOCH, SLOT, MSG, &plus_one(vc, 129));
    vadd(
        "s_2 + 1",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &plus_one(vc, 129 + 32 * 3),
    );
    vadd("truncated", CTX, EPOCH, SLOT, MSG, &vc[..vc.len() - 1]);
    vadd(
        "plain ring signature given to the vote verifier",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        c,
    );
    vadd(
        "plain compact tag on a vote signature",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 0, &[0x01]),
    );
    vadd(
        "tag mismatch (compact bytes, batchable tag)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vc, 0, &[0x12]),
    );
    vadd(
        "batchable A replaced (chain still closes)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vb, 65, &other),
    );
    vadd(
        "batchable A' replaced (chain still closes)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vb, 97, &other),
    );
    vadd(
        "batchable A with bit 255 set (alias of the valid A)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &alias(vb, 65),
    );
    vadd(
        "batchable A' non-canonical",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vb, 97, &max255),
    );
    vadd("batchable t + 1", CTX, EPOCH, SLOT, MSG, &plus_one(vb, 129));
    vadd(
        "batchable L_1 with bit 255 set (alias of the valid L_1)",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &alias(vb, 161 + 32 * 4 + 64),
    );
    vadd(
        "batchable R_2 replaced",
        CTX,
        EPOCH,
        SLOT,
        MSG,
        &with(vb, 161 + 32 * 4 + 128 + 32, &other),
    );
    // Theft: an honest bLSAG by the signer over a transcript that claims the
    // victim's T, with a DLEQ computed from the signer's own secret
    // (reference builder; alpha, decoys and beta from its test scalars).
    for batchable in [false, true] {
        let x = Scalar::from_canonical_bytes(keys[signer3].export_secret()[..].try_into().unwrap())
            .unwrap();
        let sig = common::reference_vote(&common::VoteRecipe {
            ring: ring3,
            ctx: CTX,
            epoch: EPOCH,
            slot: SLOT,
            msg: MSG,
            signer: Some((x, 1)),
            key_image: None,
            tag: Some(common::point(&stolen)),
            dleq_x: None,
            batchable,
            label: "stolen-tag",
        });
        vadd(
            if batchable {
                "stolen slot tag: honest bLSAG claiming another member's T, DLEQ with own key (batchable)"
            } else {
                "stolen slot tag: honest bLSAG claiming another member's T, DLEQ with own key (compact)"
            },
            CTX,
            EPOCH,
            SLOT,
            MSG,
            &sig,
        );
    }

    let mut neg_rings = Vec::new();
    let pk = |i: usize| hx(&keys[i].public_key());
    for (name, pks, max_size) in [
        ("empty ring", vec![], 1024usize),
        ("duplicate member", vec![pk(1), pk(1)], 1024),
        ("identity member", vec![pk(1), hx(&[0u8; 32])], 1024),
        ("non-canonical member", vec![pk(1), hx(&max255)], 1024),
        (
            "member with bit 255 set (alias of a valid key)",
            vec![
                pk(1),
                hx(&{
                    let mut a = keys[2].public_key();
                    a[31] |= 0x80;
                    a
                }),
            ],
            1024,
        ),
        (
            "first failure in input order: bad member at input 1 before identity at input 2",
            vec![pk(3), hx(&max255), hx(&[0u8; 32])],
            1024,
        ),
        ("short member", vec![pk(1), pk(2)[..62].to_string()], 1024),
        ("oversize ring", vec![pk(1), pk(2), pk(3)], 2),
    ] {
        let bytes: Vec<Vec<u8>> = pks.iter().map(|p| hex::decode(p).unwrap()).collect();
        let e = Ring::new(bytes.iter().map(|b| &b[..]), max_size).unwrap_err();
        neg_rings.push(json!({
            "name": name, "public_keys": pks, "max_size": max_size,
            "error_class": format!("{:?}", e.class()), "error_kind": e.kind().as_str(),
            "detail": e.detail(),
        }));
    }

    let doc = json!({
        "spec": ringcrypto::SPEC_VERSION,
        "generator": "cd native && cargo run --release --no-default-features --example gen_vectors > test-vectors.json",
        "seed_derivation": "seed_k = SHA512(ascii(\"ringtally-v2 test seed \" + decimal(k)))[0..32]",
        "randomness_derivation": "z = SHA512(ascii(\"ringtally-v2 test z \" + randomness_label))[0..32]",
        "encoding": "all byte strings are lowercase hex; dst fields are ASCII",
        "expand_message_xmd": xmd,
        "hash_to_group": h2g,
        "keys": key_json,
        "key_images": images,
        "slot_tags": slot_tags,
        "rings": rings_json,
        "signatures": sigs,
        "vote_signatures": vote_sigs,
        "negative_signatures": neg,
        "negative_vote_signatures": vneg,
        "negative_rings": neg_rings,
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}
